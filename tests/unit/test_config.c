/* Unit tests for config.c (and cfgval.c): every key, every default, and
 * each problem with its exact FILE:LINE. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "config.h"

static char *dir;               /* a fresh temporary directory per test */
static char *conf_path;         /* dir/imaphook.conf */
static const char *conf_text;   /* what was written there */
static struct config *cfg;
static struct config_errors errs;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	char tmpl[] = "/tmp/imaphook-test-config-XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	dir = xstrdup(tmpl);
	conf_path = xasprintf("%s/imaphook.conf", dir);
	cfg = NULL;
	memset(&errs, 0, sizeof(errs));
}

static void
teardown(void)
{
	config_free(&cfg);
	config_errors_free(&errs);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(conf_path);
	free(dir);
}

/* Writes dir/name with the given mode; returns the path (caller frees). */
static char *
write_file(const char *name, const char *text, int mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
	return path;
}

/* All messages, one a line, for failure reports. */
static const char *
all_msgs(void)
{
	static char buf[8192];
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < errs.count && off < sizeof(buf) - 1; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\n  %s",
		    errs.msgs[i]);
	return buf;
}

/* Writes text as the config with the given mode and loads it. */
static int
load_mode(const char *text, int mode)
{
	char *p;

	config_free(&cfg);
	config_errors_free(&errs);
	conf_text = text;
	p = write_file("imaphook.conf", text, mode);
	free(p);
	return config_load(conf_path, &cfg, &errs);
}

static int
load(const char *text)
{
	return load_mode(text, 0600);
}

static void
load_ok(const char *text)
{
	ck_assert_msg(load(text) == 0, "load failed:%s", all_msgs());
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(errs.count, 0);
}

static void
load_fail(const char *text)
{
	ck_assert_msg(load(text) == -1, "load succeeded");
	ck_assert_ptr_null(cfg);
	ck_assert_uint_ge(errs.count, 1);
}

/* Line (1-based) of the first line of conf_text containing marker. */
static int
line_of(const char *marker)
{
	const char *hit = strstr(conf_text, marker), *p;
	int line = 1;

	ck_assert_msg(hit != NULL, "marker %s not in config", marker);
	for (p = conf_text; p < hit; p++) {
		if (*p == '\n')
			line++;
	}
	return line;
}

/* Asserts a message "<conf_path>:<line>: ...<substr>...". */
static void
expect_at(int line, const char *substr)
{
	char *prefix = xasprintf("%s:%d: ", conf_path, line);
	size_t i;
	bool found = false;

	for (i = 0; i < errs.count && !found; i++) {
		found = strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs.msgs[i], substr) != NULL;
	}
	ck_assert_msg(found, "no \"%s...%s\" among:%s", prefix, substr,
	    all_msgs());
	free(prefix);
}

/* Same, at the line holding marker. */
static void
expect(const char *marker, const char *substr)
{
	expect_at(line_of(marker), substr);
}

/* Loads text, which must fail with exactly one message at marker. */
static void
fail_one(const char *text, const char *marker, const char *substr)
{
	load_fail(text);
	ck_assert_msg(errs.count == 1, "expected one message:%s", all_msgs());
	expect(marker, substr);
}

#define CONN "connections = ( { name = \"work\"; " \
	"host = \"imap.example.com\"; username = \"me\"; password = \"pw\"; } );\n"
#define HOOK "webhooks = ( { name = \"crm\"; " \
	"url = \"https://h.example/x\"; } );\n"
#define TRIG "triggers = ( { name = \"t1\"; connection = \"work\"; " \
	"mailbox = \"INBOX\"; webhooks = \"crm\"; } );\n"
#define BASE CONN HOOK TRIG

/* A connection group with extra settings: CONN_WITH("port = 1;"). */
#define CONN_WITH(x) "connections = ( { name = \"work\"; host = \"h\";\n" \
	"  username = \"me\"; password = \"pw\";\n  " x "\n} );\n"
#define HOOK_WITH(x) "webhooks = ( { name = \"crm\"; " \
	"url = \"https://h/x\";\n  " x "\n} );\n"
#define TRIG_WITH(x) "triggers = ( { name = \"t1\"; connection = \"work\";\n" \
	"  mailbox = \"INBOX\"; webhooks = \"crm\";\n  " x "\n} );\n"

START_TEST(test_full)
{
	char *pw = write_file("work.password", "s3cret\n", 0600);
	char *tok = write_file("api-token", "apitoken", 0600);
	char *text = xasprintf(
	    "state_dir = \"/srv/imaphook\";\n"
	    "log_level = \"debug\";\n"
	    "log_format = \"json\";\n"
	    "poll_backoff_max = 5;\n"
	    "auth_backoff_max = 6;\n"
	    "webhook_backoff_max = 7;\n"
	    "api = { listen = \"[::1]:9000\"; token_file = \"%s\"; };\n"
	    "connections = (\n"
	    "  {\n"
	    "    name = \"work\"; host = \"imap.example.com\"; port = 1993;\n"
	    "    secure = false; starttls = true; username = \"me@example.com\";\n"
	    "    password_file = \"work.password\"; auth = \"login\";\n"
	    "    min_tls_version = \"TLSv1.2\"; max_tls_version = \"TLSv1.2\";\n"
	    "    min_dh_size = 2048; tls_verify = false; ca_file = \"%s\";\n"
	    "    max_connections = 5; timeout = 30;\n"
	    "  },\n"
	    "  {\n"
	    "    name = \"gmail\"; host = \"imap.gmail.com\"; auth = \"xoauth2\";\n"
	    "    username = \"me@gmail.com\";\n"
	    "    oauth2_token_command = [ \"/bin/tok\", \"--account\", \"me\" ];\n"
	    "  }\n"
	    ");\n"
	    "webhooks = (\n"
	    "  { name = \"crm\"; url = \"https://hooks.example.com/mail\";\n"
	    "    secret = \"whsec_aGVsbG8gd29ybGQh\";\n"
	    "    headers = ( \"X-Team:  support \", \"X-A: b\" ); timeout = 3; },\n"
	    "  { name = \"raw\"; url = \"http://10.0.0.1:8080/x\"; secret = \"k\"; }\n"
	    ");\n"
	    "triggers = (\n"
	    "  { name = \"support-inbox\"; connection = \"work\";\n"
	    "    mailbox = \"Entw\xc3\xbcrfe/2026\"; interval = 15; mode = \"idle\";\n"
	    "    fetch_content = true; mark_as_read = true;\n"
	    "    webhooks = [ \"raw\", \"crm\" ]; start_from = \"all\";\n"
	    "    max_content_size = 1024; }\n"
	    ");\n", tok, pw);
	struct cfg_connection *c;
	struct cfg_webhook *w;
	struct cfg_trigger *t;

	load_ok(text);
	ck_assert_str_eq(cfg->path, conf_path);
	ck_assert_str_eq(cfg->state_dir, "/srv/imaphook");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(cfg->log_format, LOG_FORMAT_JSON);
	ck_assert_uint_eq(cfg->poll_backoff_max, 5);
	ck_assert_uint_eq(cfg->auth_backoff_max, 6);
	ck_assert_uint_eq(cfg->webhook_backoff_max, 7);

	ck_assert_ptr_nonnull(cfg->api);
	ck_assert_str_eq(cfg->api->listen, "[::1]:9000");
	ck_assert_str_eq(cfg->api->host, "::1");
	ck_assert_uint_eq(cfg->api->port, 9000);
	ck_assert(cfg->api->loopback);
	ck_assert_str_eq(cfg->api->token, "apitoken");
	ck_assert_int_eq(cfg->api->line, 7);

	ck_assert_uint_eq(cfg->nconnections, 2);
	c = &cfg->connections[0];
	ck_assert_str_eq(c->name, "work");
	ck_assert_str_eq(c->host, "imap.example.com");
	ck_assert_uint_eq(c->port, 1993);
	ck_assert(!c->secure);
	ck_assert(c->starttls);
	ck_assert_str_eq(c->username, "me@example.com");
	ck_assert_str_eq(c->password, "s3cret");
	ck_assert_int_eq(c->auth, CFG_AUTH_LOGIN);
	ck_assert_ptr_null(c->oauth2_token_command);
	ck_assert_int_eq(c->min_tls_version, TLS1_2_VERSION);
	ck_assert_int_eq(c->max_tls_version, TLS1_2_VERSION);
	ck_assert_uint_eq(c->min_dh_size, 2048);
	ck_assert(!c->tls_verify);
	ck_assert_str_eq(c->ca_file, pw);
	ck_assert_uint_eq(c->max_connections, 5);
	ck_assert_uint_eq(c->timeout, 30);
	ck_assert_int_eq(c->line, 9);
	c = &cfg->connections[1];
	ck_assert_str_eq(c->name, "gmail");
	ck_assert_int_eq(c->auth, CFG_AUTH_XOAUTH2);
	ck_assert_ptr_null(c->password);
	ck_assert_str_eq(c->username, "me@gmail.com");
	ck_assert_ptr_nonnull(c->oauth2_token_command);
	ck_assert_str_eq(c->oauth2_token_command[0], "/bin/tok");
	ck_assert_str_eq(c->oauth2_token_command[1], "--account");
	ck_assert_str_eq(c->oauth2_token_command[2], "me");
	ck_assert_ptr_null(c->oauth2_token_command[3]);
	ck_assert_uint_eq(c->port, 993);
	ck_assert(c->secure);
	ck_assert_int_eq(c->line, 17);

	ck_assert_uint_eq(cfg->nwebhooks, 2);
	w = &cfg->webhooks[0];
	ck_assert_str_eq(w->name, "crm");
	ck_assert_str_eq(w->url, "https://hooks.example.com/mail");
	ck_assert_uint_eq(w->secret_len, 12);
	ck_assert_mem_eq(w->secret, "hello world!", 12);
	ck_assert_str_eq(w->headers[0], "X-Team: support");
	ck_assert_str_eq(w->headers[1], "X-A: b");
	ck_assert_ptr_null(w->headers[2]);
	ck_assert_uint_eq(w->timeout, 3);
	ck_assert_int_eq(w->line, 24);
	w = &cfg->webhooks[1];
	ck_assert_str_eq(w->url, "http://10.0.0.1:8080/x");
	ck_assert_uint_eq(w->secret_len, 1);
	ck_assert_mem_eq(w->secret, "k", 1);

	ck_assert_uint_eq(cfg->ntriggers, 1);
	t = &cfg->triggers[0];
	ck_assert_str_eq(t->name, "support-inbox");
	ck_assert_ptr_eq(t->connection, &cfg->connections[0]);
	ck_assert_str_eq(t->mailbox, "Entw\xc3\xbcrfe/2026");
	ck_assert_uint_eq(t->interval, 15);
	ck_assert_int_eq(t->mode, CFG_MODE_IDLE);
	ck_assert(t->fetch_content);
	ck_assert(t->mark_as_read);
	ck_assert_uint_eq(t->nwebhooks, 2);
	ck_assert_ptr_eq(t->webhooks[0], &cfg->webhooks[1]);
	ck_assert_ptr_eq(t->webhooks[1], &cfg->webhooks[0]);
	ck_assert_int_eq(t->start_from, CFG_START_ALL);
	ck_assert_uint_eq(t->max_content_size, 1024);
	ck_assert_int_eq(t->line, 30);

	ck_assert_ptr_eq(config_find_connection(cfg, "gmail"), &cfg->connections[1]);
	ck_assert_ptr_eq(config_find_webhook(cfg, "raw"), &cfg->webhooks[1]);
	ck_assert_ptr_eq(config_find_trigger(cfg, "support-inbox"), t);
	ck_assert_ptr_null(config_find_connection(cfg, "nope"));
	ck_assert_ptr_null(config_find_webhook(cfg, "nope"));
	ck_assert_ptr_null(config_find_trigger(cfg, "nope"));
	free(text);
	free(pw);
	free(tok);
}
END_TEST

START_TEST(test_minimal_defaults)
{
	struct cfg_connection *c;
	struct cfg_webhook *w;
	struct cfg_trigger *t;

	load_ok(BASE);
	ck_assert_str_eq(cfg->state_dir, "/var/lib/imaphook");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_int_eq(cfg->log_format, LOG_FORMAT_TEXT);
	ck_assert_uint_eq(cfg->poll_backoff_max, 60);
	ck_assert_uint_eq(cfg->auth_backoff_max, 900);
	ck_assert_uint_eq(cfg->webhook_backoff_max, 300);
	ck_assert_ptr_null(cfg->api);
	c = &cfg->connections[0];
	ck_assert_uint_eq(c->port, 993);
	ck_assert(c->secure);
	ck_assert(!c->starttls);
	ck_assert_int_eq(c->auth, CFG_AUTH_LOGIN);
	ck_assert_str_eq(c->password, "pw");
	ck_assert_int_eq(c->min_tls_version, TLS1_1_VERSION);
	ck_assert_int_eq(c->max_tls_version, TLS1_3_VERSION);
	ck_assert_uint_eq(c->min_dh_size, 1024);
	ck_assert(c->tls_verify);
	ck_assert_ptr_null(c->ca_file);
	ck_assert_uint_eq(c->max_connections, 2);
	ck_assert_uint_eq(c->timeout, 60);
	w = &cfg->webhooks[0];
	ck_assert_ptr_null(w->secret);
	ck_assert_uint_eq(w->secret_len, 0);
	ck_assert_ptr_nonnull(w->headers);
	ck_assert_ptr_null(w->headers[0]);
	ck_assert_uint_eq(w->timeout, 10);
	t = &cfg->triggers[0];
	ck_assert_uint_eq(t->interval, 60);
	ck_assert_int_eq(t->mode, CFG_MODE_POLL);
	ck_assert(!t->fetch_content);
	ck_assert(!t->mark_as_read);
	ck_assert_int_eq(t->start_from, CFG_START_NOW);
	ck_assert_uint_eq(t->max_content_size, 4194304);
	ck_assert_uint_eq(t->nwebhooks, 1);
	ck_assert_ptr_eq(t->webhooks[0], &cfg->webhooks[0]);

	/* secure = false means port 143; no triggers or webhooks is fine */
	load_ok("connections = ( { name = \"work\"; host = \"localhost\";\n"
	    "  username = \"me\"; password = \"pw\"; secure = false; } );\n");
	ck_assert_uint_eq(cfg->connections[0].port, 143);
	ck_assert_uint_eq(cfg->nwebhooks, 0);
	ck_assert_uint_eq(cfg->ntriggers, 0);
	load_ok(CONN "webhooks = ();\ntriggers = [];\n");
	ck_assert_uint_eq(cfg->ntriggers, 0);
	/* relative state_dir: next to the config file */
	load_ok("state_dir = \"st\";\n" CONN);
	ck_assert_str_eq(cfg->state_dir + strlen(dir), "/st");
	ck_assert_mem_eq(cfg->state_dir, dir, strlen(dir));
}
END_TEST

START_TEST(test_syntax_error)
{
	fail_one(CONN "x = ;\n", "x =", "syntax error");
	fail_one("", "", "no connections defined");
	fail_one(CONN "connections = ();\n", "connections = ();",
	    "duplicate setting");
}
END_TEST

START_TEST(test_missing_file)
{
	char *path = xasprintf("%s/nope.conf", dir);
	char *want = xasprintf("%s: cannot read the config file: %s", path,
	    strerror(ENOENT));

	ck_assert_int_eq(config_load(path, &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.msgs[0], want);
	config_errors_free(&errs);
	ck_assert_int_eq(config_load(dir, &cfg, &errs), -1);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "is a directory"));
	free(path);
	free(want);
}
END_TEST

START_TEST(test_include)
{
	char *inc = write_file("inc.conf", "webhooks = ( { name = \"crm\";\n"
	    "  url = \"https://h/x\";\n  tiemout = 3; } );\n", 0600);
	char *text = xasprintf(CONN "@include \"%s\"\n" TRIG, inc);
	char *want = xasprintf("%s:3: webhooks[0] (\"crm\"): unknown key "
	    "\"tiemout\"", inc);

	load_fail(text);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.msgs[0], want);
	free(text);
	free(want);
	free(inc);
}
END_TEST

START_TEST(test_unknown_keys)
{
	load_fail("colour = 1;\n"
	    "api = { listen = \"127.0.0.1:1\";\n  tokn = \"x\"; };\n"
	    CONN_WITH("pasword = \"x\";")
	    HOOK_WITH("secrt = \"x\";")
	    TRIG_WITH("intervall = 5;"));
	ck_assert_uint_eq(errs.count, 5);
	expect("colour", "unknown key \"colour\"");
	expect("tokn", "api: unknown key \"tokn\"");
	expect("pasword", "connections[0] (\"work\"): unknown key \"pasword\"");
	expect("secrt", "webhooks[0] (\"crm\"): unknown key \"secrt\"");
	expect("intervall", "triggers[0] (\"t1\"): unknown key \"intervall\"");
}
END_TEST

START_TEST(test_wrong_types)
{
	fail_one(CONN_WITH("port = \"993\";"), "port",
	    "\"port\" must be an integer between 1 and 65535 (got a string)");
	fail_one(CONN_WITH("port = 993.0;"), "port", "(got a floating-point");
	fail_one(CONN_WITH("secure = \"yes\";"), "secure",
	    "\"secure\" must be true or false (got a string)");
	fail_one(CONN_WITH("tls_verify = 1;"), "tls_verify",
	    "\"tls_verify\" must be true or false (got an integer)");
	fail_one("log_level = 3;\n" CONN, "log_level",
	    "\"log_level\" must be a string (got an integer)");
	fail_one(CONN "api = \"127.0.0.1:1\";\n", "api =",
	    "\"api\" must be a group");
	fail_one("connections = { name = \"x\"; };\n", "connections",
	    "\"connections\" must be a list of groups");
	fail_one(CONN "webhooks = ( \"crm\" );\n", "webhooks",
	    "webhooks[0] must be a group");
	fail_one(CONN HOOK "triggers = [ 1 ];\n", "triggers",
	    "\"triggers\" must be a list of groups");
	fail_one(CONN HOOK TRIG_WITH("mode = [ \"poll\" ];"), "mode",
	    "\"mode\" must be a string (got an array)");
	fail_one(BASE "poll_backoff_max = true;\n", "poll_backoff_max",
	    "must be an integer between 1 and");
	/* 64-bit integers are fine in range, refused out of it */
	load_ok(CONN_WITH("port = 993L; timeout = 5L;"));
	ck_assert_uint_eq(cfg->connections[0].port, 993);
	ck_assert_uint_eq(cfg->connections[0].timeout, 5);
	fail_one(CONN_WITH("timeout = 4294967297L;"), "timeout",
	    "\"timeout\" must be an integer between 1 and");
	/* hexadecimal is an integer too */
	load_ok(CONN_WITH("max_connections = 0x10;"));
	ck_assert_uint_eq(cfg->connections[0].max_connections, 16);
}
END_TEST

START_TEST(test_missing_required)
{
	load_fail("connections = (\n"
	    "  { host = \"h\"; username = \"u\"; password = \"p\"; },\n"
	    "  { name = \"b\";\n"
	    "    password = \"p\"; }\n"
	    ");\n"
	    "webhooks = (\n"
	    "  { url = \"https://h/\"; },\n"
	    "  { name = \"w\"; }\n"
	    ");\n"
	    "triggers = (\n"
	    "  { connection = \"b\"; mailbox = \"INBOX\"; webhooks = \"w\"; },\n"
	    "  {\n"
	    "    name = \"t\";\n"
	    "  }\n"
	    ");\n");
	expect_at(2, "connections[0]: missing required key \"name\"");
	expect_at(3, "connections[1] (\"b\"): missing required key \"host\"");
	expect_at(3, "connections[1] (\"b\"): missing required key \"username\"");
	expect_at(7, "webhooks[0]: missing required key \"name\"");
	expect_at(8, "webhooks[1] (\"w\"): missing required key \"url\"");
	expect_at(11, "triggers[0]: missing required key \"name\"");
	expect_at(12, "triggers[1] (\"t\"): missing required key \"connection\"");
	expect_at(12, "triggers[1] (\"t\"): missing required key \"mailbox\"");
	expect_at(12, "triggers[1] (\"t\"): missing required key \"webhooks\"");
	ck_assert_msg(errs.count == 9, "%s", all_msgs());
	fail_one("connections = ();\n", "connections", "no connections defined");
}
END_TEST

START_TEST(test_duplicates)
{
	load_fail("connections = (\n"
	    "  { name = \"a\"; host = \"h\"; username = \"u\"; password = \"p\"; },\n"
	    "  { name = \"a\"; host = \"h\"; username = \"u\"; password = \"p\"; }\n"
	    ");\n"
	    "webhooks = (\n"
	    "  { name = \"w\"; url = \"https://h/\"; },\n"
	    "  { name = \"w\"; url = \"https://h/\"; }\n"
	    ");\n"
	    "triggers = (\n"
	    "  { name = \"t\"; connection = \"a\"; mailbox = \"I\"; "
	    "webhooks = \"w\"; },\n"
	    "  { name = \"t\"; connection = \"a\"; mailbox = \"I\"; "
	    "webhooks = \"w\"; }\n"
	    ");\n");
	ck_assert_msg(errs.count == 3, "%s", all_msgs());
	expect_at(3, "duplicate connection name \"a\" (first defined at line 2)");
	expect_at(7, "duplicate webhook name \"w\" (first defined at line 6)");
	expect_at(11, "duplicate trigger name \"t\" (first defined at line 10)");
}
END_TEST

START_TEST(test_dangling_references)
{
	load_fail(CONN HOOK "triggers = ( {\n"
	    "  name = \"support-inbox\";\n"
	    "  connection = \"wrok\";\n"
	    "  mailbox = \"INBOX\";\n"
	    "  webhooks = [ \"crm\",\n"
	    "    \"crmm\", \"crm\" ];\n"
	    "} );\n");
	ck_assert_msg(errs.count == 3, "%s", all_msgs());
	expect("wrok", "triggers[0] (\"support-inbox\"): connection \"wrok\" "
	    "is not defined");
	expect("\"crmm\"", "triggers[0] (\"support-inbox\"): webhook \"crmm\" "
	    "is not defined");
	expect("\"crmm\"", "webhook \"crm\" is listed twice");
}
END_TEST

START_TEST(test_trigger_webhooks_forms)
{
	fail_one(CONN "triggers = ( { name = \"t\"; connection = \"work\";\n"
	    "  mailbox = \"INBOX\"; webhooks = \"crm\"; } );\n",
	    "webhooks = \"crm\"", "webhook \"crm\" is not defined");
	fail_one(CONN HOOK "triggers = ( { name = \"t\"; connection = \"work\";\n"
	    "  mailbox = \"INBOX\"; webhooks = [ ]; } );\n",
	    "webhooks = [", "\"webhooks\" must name at least one webhook");
	fail_one(CONN HOOK "triggers = ( { name = \"t\"; connection = \"work\";\n"
	    "  mailbox = \"INBOX\";\n  webhooks = ( \"crm\", 3 ); } );\n",
	    "3 )", "\"webhooks\" must contain only strings (element 1 is an "
	    "integer)");
	load_ok(CONN HOOK "triggers = ( { name = \"t\"; connection = \"work\";\n"
	    "  mailbox = \"INBOX\"; webhooks = ( \"crm\" ); } );\n");
	ck_assert_uint_eq(cfg->triggers[0].nwebhooks, 1);
}
END_TEST


/* A trigger whose name and mailbox are the given libconfig values. */
#define TRIG_NM(name, mbox) CONN HOOK "triggers = ( {\n  name = " name ";\n" \
	"  connection = \"work\"; webhooks = \"crm\";\n  mailbox = " mbox "; } );\n"

START_TEST(test_trigger_name_and_mailbox)
{
	load_ok(TRIG_NM("\"Support_Inbox.2026-a\"", "\"Archive/2026\""));
	ck_assert_str_eq(cfg->triggers[0].name, "Support_Inbox.2026-a");
	fail_one(TRIG_NM("\"support inbox\"", "\"INBOX\""), "name = \"s",
	    "\"name\" must be 1 to 128 characters from [A-Za-z0-9_.-]");
	fail_one(TRIG_NM("\"a/b\"", "\"INBOX\""), "\"a/b\"", "[A-Za-z0-9_.-]");
	fail_one(TRIG_NM("\"..\"", "\"INBOX\""), "\"..\"", "not \".\" or \"..\"");
	fail_one(TRIG_NM("\"\"", "\"INBOX\""), "name = \"\"",
	    "\"name\" must not be empty");
	fail_one(TRIG_NM("\"t\"", "\"\""), "mailbox =",
	    "\"mailbox\" must not be empty");
	fail_one(TRIG_NM("\"t\"", "\"Bad\\xff\\xfe\""), "mailbox =",
	    "\"mailbox\" is not valid UTF-8");
	fail_one(TRIG_NM("\"t\"", "\"IN\\nBOX\""), "mailbox =",
	    "\"mailbox\" must not contain control characters");
}
END_TEST

START_TEST(test_enums)
{
	fail_one(CONN HOOK TRIG_WITH("mode = \"push\";"), "mode",
	    "\"mode\" must be \"poll\" or \"idle\" (got \"push\")");
	fail_one(CONN HOOK TRIG_WITH("start_from = \"first\";"), "start_from",
	    "\"start_from\" must be \"now\" or \"all\"");
	fail_one("log_level = \"verbose\";\n" CONN, "log_level",
	    "\"log_level\" must be \"error\", \"warn\", \"info\" or \"debug\"");
	fail_one("log_format = \"xml\";\n" CONN, "log_format",
	    "\"log_format\" must be \"text\" or \"json\"");
	fail_one(CONN_WITH("auth = \"plain\";"), "auth",
	    "\"auth\" must be \"login\" or \"xoauth2\"");
	fail_one(CONN_WITH("min_tls_version = \"SSLv3\";"), "min_tls",
	    "\"min_tls_version\" must be \"TLSv1\", \"TLSv1.1\", \"TLSv1.2\" or "
	    "\"TLSv1.3\"");
	fail_one(CONN_WITH("max_tls_version = \"tlsv1.3\";"), "max_tls",
	    "\"max_tls_version\" must be");
	fail_one(CONN_WITH("min_tls_version = \"TLSv1.3\";\n"
	    "max_tls_version = \"TLSv1.2\";"), "min_tls",
	    "\"min_tls_version\" (TLSv1.3) is higher than \"max_tls_version\" "
	    "(TLSv1.2)");
	fail_one(CONN_WITH("max_tls_version = \"TLSv1\";"), "max_tls",
	    "\"min_tls_version\" (TLSv1.1) is higher");
	load_ok(CONN_WITH("min_tls_version = \"TLSv1\";\n"
	    "max_tls_version = \"TLSv1\";"));
	ck_assert_int_eq(cfg->connections[0].min_tls_version, TLS1_VERSION);
	ck_assert_int_eq(cfg->connections[0].max_tls_version, TLS1_VERSION);
	load_ok(CONN_WITH("min_tls_version = \"TLSv1.3\";"));
	ck_assert_int_eq(cfg->connections[0].min_tls_version, TLS1_3_VERSION);
	load_ok("log_level = \"warn\";\n" CONN);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_WARN);
}
END_TEST

START_TEST(test_tls_names)
{
	static const char *const names[] = {
		"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"
	};
	static const int versions[] = {
		TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION
	};
	size_t i;
	int v;

	for (i = 0; i < 4; i++) {
		v = -1;
		ck_assert_int_eq(config_tls_version_parse(names[i], &v), 0);
		ck_assert_int_eq(v, versions[i]);
		ck_assert_str_eq(config_tls_version_name(versions[i]), names[i]);
	}
	ck_assert_int_eq(config_tls_version_parse("TLSv1.4", &v), -1);
	ck_assert_int_eq(config_tls_version_parse("", &v), -1);
	ck_assert_str_eq(config_tls_version_name(0), "unknown");
}
END_TEST

START_TEST(test_ranges)
{
	fail_one(CONN_WITH("port = 0;"), "port",
	    "\"port\" must be an integer between 1 and 65535");
	fail_one(CONN_WITH("port = 65536;"), "port",
	    "\"port\" must be an integer between 1 and 65535");
	fail_one(CONN_WITH("port = -1;"), "port", "between 1 and 65535");
	load_ok(CONN_WITH("port = 65535;"));
	ck_assert_uint_eq(cfg->connections[0].port, 65535);
	fail_one(CONN_WITH("timeout = 0;"), "timeout",
	    "\"timeout\" must be an integer between 1 and");
	fail_one(CONN_WITH("max_connections = 0;"), "max_connections",
	    "\"max_connections\" must be an integer between 1 and");
	fail_one(CONN_WITH("min_dh_size = 16385;"), "min_dh_size",
	    "\"min_dh_size\" must be an integer between 0 and 16384");
	load_ok(CONN_WITH("min_dh_size = 0;"));
	ck_assert_uint_eq(cfg->connections[0].min_dh_size, 0);
	fail_one(CONN HOOK TRIG_WITH("interval = 0;"), "interval",
	    "\"interval\" must be an integer between 1 and");
	fail_one(CONN HOOK TRIG_WITH("max_content_size = 1023;"),
	    "max_content_size", "between 1024 and 67108864");
	fail_one(CONN HOOK TRIG_WITH("max_content_size = 67108865;"),
	    "max_content_size", "between 1024 and 67108864");
	load_ok(CONN HOOK TRIG_WITH("max_content_size = 67108864;"));
	ck_assert_uint_eq(cfg->triggers[0].max_content_size, 67108864);
	fail_one(CONN HOOK_WITH("timeout = 0;"), "timeout",
	    "\"timeout\" must be an integer between 1 and");
	fail_one("auth_backoff_max = 0;\n" CONN, "auth_backoff_max",
	    "between 1 and");
	fail_one("webhook_backoff_max = -5;\n" CONN, "webhook_backoff_max",
	    "between 1 and");
}
END_TEST

START_TEST(test_secure_starttls)
{
	fail_one(CONN_WITH("starttls = true;"), "starttls",
	    "\"starttls = true\" contradicts \"secure = true\"");
	fail_one(CONN_WITH("secure = true; starttls = true;"), "starttls",
	    "contradicts");
	load_ok(CONN_WITH("secure = false; starttls = true;"));
	ck_assert(!cfg->connections[0].secure);
	ck_assert(cfg->connections[0].starttls);
	ck_assert_uint_eq(cfg->connections[0].port, 143);
}
END_TEST

#define CONN_PW(x) "connections = ( {\n  name = \"work\"; host = \"h\";\n" \
	"  username = \"me\";\n  " x "\n} );\n"

START_TEST(test_password)
{
	/* the sources themselves are tested in test_cfgval */
	free(write_file("pw", "from-file\n", 0600));
	load_ok(CONN_PW("password_file = \"pw\";"));
	ck_assert_str_eq(cfg->connections[0].password, "from-file");
	ck_assert_int_eq(setenv("IMAPHOOK_TEST_PW", "from-env", 1), 0);
	load_ok(CONN_PW("password_env = \"IMAPHOOK_TEST_PW\";"));
	ck_assert_str_eq(cfg->connections[0].password, "from-env");
	unsetenv("IMAPHOOK_TEST_PW");
	fail_one(CONN_PW("password_env = \"IMAPHOOK_TEST_PW\";"), "password_env",
	    "connections[0] (\"work\"): \"password_env\": environment variable "
	    "\"IMAPHOOK_TEST_PW\" is not set");
	fail_one(CONN_PW(""), "connections",
	    "missing \"password\", \"password_file\" or \"password_env\"");
	fail_one(CONN_PW("password = \"a\";\n  password_file = \"pw\";"),
	    "password_file", "\"password\" and \"password_file\" are mutually "
	    "exclusive");
	fail_one(CONN_PW("password = \"\";"), "password",
	    "\"password\" must not be empty");
	fail_one(CONN_PW("password_file = \"nope\";"), "password_file",
	    "\"password_file\": cannot read");
}
END_TEST

START_TEST(test_xoauth2)
{
	char **argv;

	load_ok(CONN_PW("auth = \"xoauth2\";\n"
	    "  oauth2_token_command = \"/usr/local/bin/tok\";"));
	argv = cfg->connections[0].oauth2_token_command;
	ck_assert_str_eq(argv[0], "/usr/local/bin/tok");
	ck_assert_ptr_null(argv[1]);
	ck_assert_ptr_null(cfg->connections[0].password);
	ck_assert_str_eq(cfg->connections[0].username, "me");
	/* XOAUTH2 names the user too: username is required; a list works
	 * like an array */
	fail_one("connections = ( { name = \"g\"; host = \"h\"; auth = \"xoauth2\";\n"
	    "  oauth2_token_command = \"tok\"; } );\n", "connections",
	    "missing required key \"username\"");
	load_ok("connections = ( { name = \"g\"; host = \"h\"; auth = \"xoauth2\";\n"
	    "  username = \"u\"; oauth2_token_command = ( \"tok\", \"-v\" ); } );\n");
	ck_assert_str_eq(cfg->connections[0].username, "u");
	ck_assert_str_eq(cfg->connections[0].oauth2_token_command[1], "-v");

	fail_one(CONN_PW("auth = \"xoauth2\";"), "connections",
	    "auth = \"xoauth2\" requires \"oauth2_token_command\"");
	load_fail(CONN_PW("auth = \"xoauth2\"; oauth2_token_command = \"t\";\n"
	    "  password = \"p\";\n  password_env = \"E\";"));
	ck_assert_uint_eq(errs.count, 2);
	expect("password =", "\"password\" cannot be used with auth = \"xoauth2\"");
	expect("password_env", "\"password_env\" cannot be used with auth = "
	    "\"xoauth2\"");
	fail_one(CONN_PW("auth = \"xoauth2\";\n  oauth2_token_command = [];"),
	    "oauth2_token_command", "must name a program");
	fail_one(CONN_PW("auth = \"xoauth2\";\n"
	    "  oauth2_token_command = [ \"\", \"x\" ];"),
	    "oauth2_token_command", "must name a program");
	fail_one(CONN_PW("auth = \"xoauth2\";\n  oauth2_token_command = 1;"),
	    "oauth2_token_command", "\"oauth2_token_command\" must be a string "
	    "or [");
	fail_one(CONN_PW("auth = \"xoauth2\";\n"
	    "  oauth2_token_command = ( \"a\", 2 );"),
	    "oauth2_token_command", "must contain only strings");
	fail_one(CONN_PW("password = \"p\";\n  oauth2_token_command = \"t\";"),
	    "oauth2_token_command", "\"oauth2_token_command\" needs auth = "
	    "\"xoauth2\"");
}
END_TEST

#define HOOK_S(x) CONN "webhooks = ( {\n" \
	"  name = \"crm\"; url = \"https://h/x\";\n" \
	"  " x "\n} );\n"

START_TEST(test_webhook_secret)
{
	/* Standard Webhooks: the key is the base64-decoded part */
	load_ok(HOOK_S("secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\";"));
	ck_assert_uint_eq(cfg->webhooks[0].secret_len, 24);
	ck_assert_mem_eq(cfg->webhooks[0].secret,
	    "\x31\xf2\x90\xf6\xbf\x06\x29\x8a\xab\x4f\x08\xd4\x3c\x3f\x08\x2c"
	    "\xf6\x48\xa3\x62\xda\x2d\xa4\xb0", 24);
	/* from a file, with its trailing newline dropped */
	free(write_file("crm.secret", "whsec_aGVsbG8gd29ybGQh\n", 0600));
	load_ok(HOOK_S("secret_file = \"crm.secret\";"));
	ck_assert_uint_eq(cfg->webhooks[0].secret_len, 12);
	ck_assert_mem_eq(cfg->webhooks[0].secret, "hello world!", 12);
	/* without the prefix the raw bytes are the key */
	load_ok(HOOK_S("secret = \"plain key\";"));
	ck_assert_uint_eq(cfg->webhooks[0].secret_len, 9);
	ck_assert_mem_eq(cfg->webhooks[0].secret, "plain key", 9);

	fail_one(HOOK_S("secret = \"whsec_not*base64!\";"), "secret",
	    "\"secret\": invalid base64 after \"whsec_\"");
	fail_one(HOOK_S("secret = \"whsec_\";"), "secret",
	    "\"secret\": empty key after \"whsec_\"");
	fail_one(HOOK_S("secret = \"\";"), "secret", "\"secret\" must not be empty");
	fail_one(HOOK_S("secret = \"a\";\n  secret_file = \"crm.secret\";"),
	    "secret_file", "\"secret\" and \"secret_file\" are mutually exclusive");
	free(write_file("empty.secret", "", 0600));
	fail_one(HOOK_S("secret_file = \"empty.secret\";"), "secret_file",
	    "is empty");
	fail_one(HOOK_S("secret_file = \"nope.secret\";"), "secret_file",
	    "\"secret_file\": cannot read");
}
END_TEST

START_TEST(test_webhook_url_headers)
{
	load_ok(HOOK_S("headers = \"Authorization: Bearer abc\";"));
	ck_assert_str_eq(cfg->webhooks[0].headers[0], "Authorization: Bearer abc");
	ck_assert_ptr_null(cfg->webhooks[0].headers[1]);
	load_ok(HOOK_S("headers = [ \"X-A:1\", \"x_b-c.d: two words\" ];"));
	ck_assert_str_eq(cfg->webhooks[0].headers[0], "X-A: 1");
	ck_assert_str_eq(cfg->webhooks[0].headers[1], "x_b-c.d: two words");

	fail_one(CONN "webhooks = ( { name = \"crm\";\n  url = \"ftp://h/x\"; } );\n",
	    "url", "\"url\" must be an http:// or https:// URL");
	fail_one(CONN "webhooks = ( { name = \"crm\";\n  url = \"https://\"; } );\n",
	    "url", "\"url\" must be an http:// or https:// URL");
	fail_one(CONN "webhooks = ( { name = \"crm\";\n"
	    "  url = \"http://h/a b\"; } );\n",
	    "url", "\"url\" must be an http:// or https:// URL");
	fail_one(CONN "webhooks = ( { name = \"crm\";\n  url = \"\"; } );\n",
	    "url", "\"url\" must not be empty");
	fail_one(HOOK_S("headers = ( \"X-A: 1\",\n    \"X-B: 2\\r\\nX-C: 3\" );"),
	    "X-B", "headers[1] must not contain CR or LF");
	fail_one(HOOK_S("headers = ( \"X A: 1\" );"), "headers",
	    "headers[0] must be \"Name: value\"");
	fail_one(HOOK_S("headers = ( \": 1\" );"), "headers",
	    "headers[0] must be \"Name: value\"");
	fail_one(HOOK_S("headers = ( \"X-A\" );"), "headers",
	    "headers[0] must be \"Name: value\"");
	fail_one(HOOK_S("headers = ( \"X-A:  \" );"), "headers",
	    "headers[0] (\"X-A\") needs a non-empty value");
	fail_one(HOOK_S("headers = ( \"Webhook-Signature: v1,x\" );"), "headers",
	    "\"webhook-signature\" is set by imaphook");
	fail_one(HOOK_S("headers = 5;"), "headers",
	    "\"headers\" must be a string or [");
}
END_TEST

#define API(x) "api = {\n  " x "\n};\n" CONN

START_TEST(test_api)
{
	load_ok(API("listen = \"127.0.0.1:8025\";"));
	ck_assert_str_eq(cfg->api->host, "127.0.0.1");
	ck_assert_uint_eq(cfg->api->port, 8025);
	ck_assert(cfg->api->loopback);
	ck_assert_ptr_null(cfg->api->token);
	ck_assert_int_eq(cfg->api->line, 1);
	load_ok(API("listen = \"127.8.9.10:1\";"));
	ck_assert(cfg->api->loopback);
	load_ok(API("listen = \"localhost:65535\";"));
	ck_assert(cfg->api->loopback);
	ck_assert_uint_eq(cfg->api->port, 65535);
	load_ok(API("listen = \"[::1]:80\";"));
	ck_assert(cfg->api->loopback);
	load_ok(API("listen = \"0.0.0.0:8025\"; token = \"tok\";"));
	ck_assert(!cfg->api->loopback);
	ck_assert_str_eq(cfg->api->host, "0.0.0.0");
	ck_assert_str_eq(cfg->api->token, "tok");
	load_ok(API("listen = \"[2001:db8::1]:8025\"; token = \"tok\";"));
	ck_assert_str_eq(cfg->api->host, "2001:db8::1");
	ck_assert(!cfg->api->loopback);

	fail_one(API("listen = \"0.0.0.0:8025\";"), "listen",
	    "api: \"listen\" (0.0.0.0) is not a loopback address, so \"token\" "
	    "or \"token_file\" is required");
	fail_one(API("listen = \"[::]:8025\";"), "listen", "is not a loopback");
	fail_one(API("listen = \"mail.example.com:8025\";"), "listen",
	    "is not a loopback");
	fail_one(API("listen = \"127.0.0.1\";"), "listen",
	    "api: \"listen\" must be HOST:PORT or [IPV6]:PORT");
	fail_one(API("listen = \"127.0.0.1:0\";"), "listen", "must be HOST:PORT");
	fail_one(API("listen = \"127.0.0.1:http\";"), "listen", "must be HOST:PORT");
	fail_one(API("listen = \":8025\";"), "listen", "must be HOST:PORT");
	fail_one(API("listen = \"[::1]\";"), "listen", "must be HOST:PORT");
	fail_one(API("listen = \"[nope]:80\";"), "listen", "must be HOST:PORT");
	fail_one(API("listen = \"::1:80\";"), "listen", "must be HOST:PORT");
	fail_one(API("token = \"t\";"), "api =", "api: missing required key "
	    "\"listen\"");
	fail_one(API("listen = \"127.0.0.1:1\"; token = \"\";"), "token",
	    "\"token\" must not be empty");
	fail_one(API("listen = \"127.0.0.1:1\";\n  token = \"a\";\n"
	    "  token_file = \"f\";"), "token_file",
	    "\"token\" and \"token_file\" are mutually exclusive");
	free(write_file("tok", "abc\r\n", 0600));
	load_ok(API("listen = \"0.0.0.0:1\"; token_file = \"tok\";"));
	ck_assert_str_eq(cfg->api->token, "abc");
}
END_TEST

/* Loads text (config mode mode) with stderr captured; returns what was
 * logged (caller frees). */
static char *
load_capturing(const char *text, int mode, int *rc_r)
{
	char *log_path = xasprintf("%s/stderr.log", dir), *out;
	size_t len;
	int fd, saved;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	*rc_r = load_mode(text, mode);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_file(log_path, 65536, &out, &len), 0);
	unlink(log_path);
	free(log_path);
	return out;
}

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; (hay = strstr(hay, needle)) != NULL; hay++)
		n++;
	return n;
}

START_TEST(test_warnings)
{
	char *out, *want;
	int rc;

	/* the config holds secrets inline: warned about once, by name */
	out = load_capturing(CONN HOOK_WITH("secret = \"hunter2\";"), 0644, &rc);
	ck_assert_int_eq(rc, 0);
	want = xasprintf("%s: holds a secret and is readable by group/others "
	    "(mode 0644); chmod 600 it", conf_path);
	ck_assert_msg(count_of(out, want) == 1, "got: %s", out);
	ck_assert_ptr_null(strstr(out, "hunter2"));
	free(out);
	free(want);
	/* no inline secret: a readable config is fine */
	free(write_file("pw", "s3cr3t", 0600));
	out = load_capturing(CONN_PW("password_file = \"pw\";"), 0644, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "");
	free(out);

	/* plain text to a remote server is worth a warning, not to loopback */
	out = load_capturing(CONN_WITH("secure = false;"), 0600, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(strstr(out, "connection \"work\": secure = false "
	    "and starttls = false"));
	free(out);
	out = load_capturing("connections = ( { name = \"l\"; host = \"127.0.0.1\";"
	    "\n  username = \"me\"; password = \"pw\"; secure = false; } );\n",
	    0600, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "");
	free(out);
}
END_TEST

START_TEST(test_many_errors)
{
	static const int lines[] = { 1, 3, 4, 5, 7, 8, 9, 10 };
	char *prefix;
	size_t i;

	load_fail("log_level = \"loud\";\n"
	    "connections = (\n"
	    "  { name = \"work\"; host = \"h\"; username = \"u\";\n"
	    "    pasword = \"hunter2\";\n"
	    "    port = 0; }\n"
	    ");\n"
	    "webhooks = ( { name = \"crm\"; url = \"mailto:x\"; } );\n"
	    "triggers = ( { name = \"bad name\"; connection = \"work\";\n"
	    "  mailbox = \"INBOX\"; webhooks = [ \"crmm\" ];\n"
	    "  mode = \"often\"; } );\n");
	ck_assert_msg(errs.count == 8, "%s", all_msgs());
	expect_at(1, "\"log_level\" must be");
	expect_at(3, "missing \"password\", \"password_file\" or "
	    "\"password_env\"");
	expect_at(4, "unknown key \"pasword\"");
	expect_at(5, "\"port\" must be an integer between 1 and 65535");
	expect_at(7, "\"url\" must be an http:// or https:// URL");
	expect_at(8, "triggers[0] (\"bad name\"): \"name\" must be");
	expect_at(9, "webhook \"crmm\" is not defined");
	expect_at(10, "\"mode\" must be \"poll\" or \"idle\"");
	/* in file order, whatever order they were found in */
	for (i = 0; i < N_ELEMENTS(lines); i++) {
		prefix = xasprintf("%s:%d: ", conf_path, lines[i]);
		ck_assert_msg(strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0,
		    "%zu: %s", i, errs.msgs[i]);
		free(prefix);
	}
}
END_TEST

START_TEST(test_no_secrets_in_messages)
{
	size_t i;

	ck_assert_int_eq(setenv("IMAPHOOK_TEST_SECRET", "envsecret9", 1), 0);
	load_fail("api = { listen = \"nowhere\"; token = \"tokensecret9\"; };\n"
	    "connections = (\n"
	    "  { name = \"a\"; host = \"h\"; username = \"u\";\n"
	    "    password = \"pwsecret9\";\n"
	    "    password_env = \"IMAPHOOK_TEST_SECRET\"; },\n"
	    "  { name = \"b\"; host = \"h\"; username = \"u\"; auth = \"xoauth2\";\n"
	    "    password = \"pwsecret9\"; oauth2_token_command = \"x\"; }\n"
	    ");\n"
	    "webhooks = ( { name = \"w\"; url = \"https://user:urlsecret9@h/\";\n"
	    "  secret = \"whsec_whsecret9!\";\n"
	    "  headers = [ \"Authorization: Bearer hdrsecret9\\x01\" ]; },\n"
	    "  { name = \"v\"; url = \"https://h/\"; secret = \"rawsecret9\";\n"
	    "  timeout = 0; }\n"
	    ");\n");
	unsetenv("IMAPHOOK_TEST_SECRET");
	ck_assert_msg(errs.count == 6, "%s", all_msgs());
	for (i = 0; i < errs.count; i++)
		ck_assert_msg(strstr(errs.msgs[i], "secret9") == NULL,
		    "secret leaked: %s", errs.msgs[i]);
}
END_TEST

/* Loads a, then b; returns both configs (caller frees). */
static void
load_pair(const char *a, const char *b, struct config **a_r,
    struct config **b_r)
{
	load_ok(a);
	*a_r = cfg;
	cfg = NULL;
	load_ok(b);
	*b_r = cfg;
	cfg = NULL;
}

/* A config whose connection "a", webhook "w" and trigger "t" get extra
 * settings; the trigger uses connection tconn and webhooks thooks. */
static char *
same_text(const char *c, const char *w, const char *t, const char *tconn,
    const char *thooks)
{
	return xasprintf("connections = (\n"
	    "  { name = \"a\"; host = \"h\"; username = \"u\"; %s },\n"
	    "  { name = \"b\"; host = \"h\"; username = \"u\"; password = \"p\"; }\n"
	    ");\n"
	    "webhooks = ( { name = \"w\"; url = \"https://h/\"; %s },\n"
	    "  { name = \"v\"; url = \"https://h/\"; } );\n"
	    "triggers = ( { name = \"t\"; connection = \"%s\"; mailbox = \"I\";\n"
	    "  webhooks = %s; %s } );\n", c, w, tconn, thooks, t);
}

START_TEST(test_same)
{
	static const struct {
		const char *c, *w, *t, *tconn, *thooks;
		bool conn_same, hook_same, trig_same;
	} cases[] = {
		{ "password = \"p\";", "", "", "a", "\"w\"", true, true, true },
		/* line numbers do not matter ("b" moves down a line) */
		{ "password = \"p\";\n", "", "", "a", "[ \"w\" ]", true, true, true },
		/* the same password from elsewhere is the same */
		{ "password_env = \"IMAPHOOK_TEST_P\";", "", "", "a", "\"w\"",
		    true, true, true },
		{ "password_env = \"IMAPHOOK_TEST_Q\";", "", "", "a", "\"w\"",
		    false, true, false },
		{ "password = \"p\"; port = 994;", "", "", "a", "\"w\"",
		    false, true, false },
		{ "password = \"p\"; min_dh_size = 2048;", "", "", "a", "\"w\"",
		    false, true, false },
		{ "password = \"p\"; max_tls_version = \"TLSv1.2\";", "", "", "a",
		    "\"w\"", false, true, false },
		{ "password = \"p\"; tls_verify = false;", "", "", "a", "\"w\"",
		    false, true, false },
		{ "password = \"p\"; timeout = 61;", "", "", "a", "\"w\"",
		    false, true, false },
		{ "password = \"p\";", "secret = \"k\";", "", "a", "\"w\"",
		    true, false, true },
		{ "password = \"p\";", "headers = \"X-A: 1\";", "", "a", "\"w\"",
		    true, false, true },
		{ "password = \"p\";", "timeout = 11;", "", "a", "\"w\"",
		    true, false, true },
		{ "password = \"p\";", "", "interval = 61;", "a", "\"w\"",
		    true, true, false },
		{ "password = \"p\";", "", "mode = \"idle\";", "a", "\"w\"",
		    true, true, false },
		{ "password = \"p\";", "", "mark_as_read = true;", "a", "\"w\"",
		    true, true, false },
		{ "password = \"p\";", "", "fetch_content = true;", "a", "\"w\"",
		    true, true, false },
		{ "password = \"p\";", "", "max_content_size = 1024;", "a", "\"w\"",
		    true, true, false },
		{ "password = \"p\";", "", "start_from = \"all\";", "a", "\"w\"",
		    true, true, false },
		{ "password = \"p\";", "", "", "b", "\"w\"", true, true, false },
		{ "password = \"p\";", "", "", "a", "\"v\"", true, true, false },
		{ "password = \"p\";", "", "", "a", "[ \"w\", \"v\" ]",
		    true, true, false },
	};
	struct config *a, *b;
	char *ta, *tb;
	size_t i;

	ck_assert_int_eq(setenv("IMAPHOOK_TEST_P", "p", 1), 0);
	ck_assert_int_eq(setenv("IMAPHOOK_TEST_Q", "q", 1), 0);
	ta = same_text("password = \"p\";", "", "", "a", "\"w\"");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		tb = same_text(cases[i].c, cases[i].w, cases[i].t, cases[i].tconn,
		    cases[i].thooks);
		load_pair(ta, tb, &a, &b);
		ck_assert_msg(config_connection_same(&a->connections[0],
		    &b->connections[0]) == cases[i].conn_same, "case %zu", i);
		ck_assert(config_connection_same(&a->connections[1],
		    &b->connections[1]));
		ck_assert_msg(config_webhook_same(&a->webhooks[0],
		    &b->webhooks[0]) == cases[i].hook_same, "case %zu", i);
		ck_assert(config_webhook_same(&a->webhooks[1], &b->webhooks[1]));
		ck_assert_msg(config_trigger_same(&a->triggers[0],
		    &b->triggers[0]) == cases[i].trig_same, "case %zu", i);
		ck_assert(!config_connection_same(&a->connections[0],
		    &b->connections[1]));
		ck_assert(!config_webhook_same(&a->webhooks[0], &b->webhooks[1]));
		config_free(&a);
		config_free(&b);
		free(tb);
	}
	unsetenv("IMAPHOOK_TEST_P");
	unsetenv("IMAPHOOK_TEST_Q");
	free(ta);

	/* token command argv */
	ta = same_text("auth = \"xoauth2\"; oauth2_token_command = [ \"t\", \"1\" ];",
	    "", "", "a", "\"w\"");
	tb = same_text("auth = \"xoauth2\"; oauth2_token_command = [ \"t\", \"2\" ];",
	    "", "", "a", "\"w\"");
	load_pair(ta, ta, &a, &b);
	ck_assert(config_connection_same(&a->connections[0], &b->connections[0]));
	config_free(&b);
	load_ok(tb);
	b = cfg;
	cfg = NULL;
	ck_assert(!config_connection_same(&a->connections[0], &b->connections[0]));
	ck_assert(!config_trigger_same(&a->triggers[0], &b->triggers[0]));
	config_free(&a);
	config_free(&b);
	free(ta);
	free(tb);
}
END_TEST

/* The installed example must hold only known keys with valid values: the
 * only problems allowed are its secret files and variables, which do not
 * exist here. */
START_TEST(test_example_file)
{
	const char *me = __FILE__, *tail = "tests/unit/test_config.c";
	char *path;
	size_t i;

	ck_assert(strlen(me) >= strlen(tail));
	path = xasprintf("%.*sconfig/imaphook.conf.example",
	    (int)(strlen(me) - strlen(tail)), me);
	ck_assert_int_eq(setenv("IMAPHOOK_SHARED_PASSWORD", "x", 1), 0);
	if (config_load(path, &cfg, &errs) == 0) {
		ck_assert_uint_eq(cfg->nconnections, 3);
	} else {
		for (i = 0; i < errs.count; i++) {
			ck_assert_msg(strstr(errs.msgs[i], "cannot read \"/etc/"
			    "imaphook/") != NULL, "unexpected: %s", errs.msgs[i]);
		}
		ck_assert_uint_le(errs.count, 3);
	}
	unsetenv("IMAPHOOK_SHARED_PASSWORD");
	free(path);
}
END_TEST

START_TEST(test_errors_accumulate)
{
	ck_assert_int_eq(load("x = 1;\n" CONN), -1);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_int_eq(config_load(conf_path, &cfg, &errs), -1);
	ck_assert_uint_eq(errs.count, 2);
	ck_assert_str_eq(errs.msgs[0], errs.msgs[1]);
	config_errors_free(&errs);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_ptr_null(errs.msgs);
	config_errors_free(&errs);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	SRunner *sr;
	int failed;

	log_init("test_config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_include);
	tcase_add_test(tc, test_unknown_keys);
	tcase_add_test(tc, test_wrong_types);
	tcase_add_test(tc, test_missing_required);
	tcase_add_test(tc, test_duplicates);
	tcase_add_test(tc, test_dangling_references);
	tcase_add_test(tc, test_trigger_webhooks_forms);
	tcase_add_test(tc, test_trigger_name_and_mailbox);
	tcase_add_test(tc, test_enums);
	tcase_add_test(tc, test_tls_names);
	tcase_add_test(tc, test_ranges);
	tcase_add_test(tc, test_secure_starttls);
	tcase_add_test(tc, test_password);
	tcase_add_test(tc, test_xoauth2);
	tcase_add_test(tc, test_webhook_secret);
	tcase_add_test(tc, test_webhook_url_headers);
	tcase_add_test(tc, test_api);
	tcase_add_test(tc, test_warnings);
	tcase_add_test(tc, test_many_errors);
	tcase_add_test(tc, test_no_secrets_in_messages);
	tcase_add_test(tc, test_same);
	tcase_add_test(tc, test_example_file);
	tcase_add_test(tc, test_errors_accumulate);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
