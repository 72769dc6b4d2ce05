/* Unit tests for config.c, continued from test_config.c: secrets
 * (passwords, OAuth2 token commands, webhook secrets and headers), the api
 * group, warnings about readable secrets and plain text, no secret in any
 * message, and config_*_same for SIGHUP. */
#include "config_helpers.h"

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

/* The command-line tool reads only the secret of the connection it uses. */
START_TEST(test_cli_reads_one_secret)
{
	static const char text[] =
	    "connections = (\n"
	    "  { name = \"work\"; host = \"h\"; username = \"me\"; password_file = \"pw\"; },\n"
	    "  { name = \"other\"; host = \"h\"; username = \"me\";\n"
	    "    password_env = \"IMAPHOOK_TEST_UNSET\"; } );\n"
	    "webhooks = ( { name = \"crm\"; url = \"https://h/x\"; secret_file = \"no-secret\"; } );\n"
	    "api = { listen = \"127.0.0.1:8025\"; token_file = \"no-token\"; };\n";

	free(write_file("pw", "from-file\n", 0600));
	unsetenv("IMAPHOOK_TEST_UNSET");
	/* the daemon needs them all */
	ck_assert_int_eq(load(text), -1);
	ck_assert_uint_eq(errs.count, 3);
	config_errors_free(&errs);
	/* imaphook --connection work: only work's */
	ck_assert_int_eq(config_load_cli(conf_path, "work", &cfg, &errs), 0);
	ck_assert_str_eq(cfg->connections[0].password, "from-file");
	config_free(&cfg);
	/* imaphook --connection other: its variable is unset */
	ck_assert_int_eq(config_load_cli(conf_path, "other", &cfg, &errs), -1);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "IMAPHOOK_TEST_UNSET"));
	config_errors_free(&errs);
	/* without --connection: every connection's (it picks one later) */
	ck_assert_int_eq(config_load_cli(conf_path, NULL, &cfg, &errs), -1);
	ck_assert_uint_eq(errs.count, 1);
	config_errors_free(&errs);
	/* the form of the others is still checked */
	ck_assert_int_eq(load("connections = ( { name = \"work\"; host = \"h\"; "
	    "username = \"me\"; password = \"pw\"; } );\n"
	    "webhooks = ( { name = \"crm\"; url = \"https://h/x\";\n"
	    "  secret = \"s\"; secret_file = \"f\"; } );\n"), -1);
	config_errors_free(&errs);
	ck_assert_int_eq(config_load_cli(conf_path, "work", &cfg, &errs), -1);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "mutually exclusive"));
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
	/* the sender sets these itself (and would drop them) */
	fail_one(HOOK_S("headers = ( \"Content-Type: text/plain\" );"), "headers",
	    "\"content-type\" is set by imaphook");
	fail_one(HOOK_S("headers = ( \"Expect: 100-continue\" );"), "headers",
	    "\"expect\" is set by imaphook");
	/* a webhook's name is a directory's */
	load_ok(CONN "webhooks = ( { name = \"CRM prod\"; url = \"https://h/x\"; } );\n");
	fail_one(CONN "webhooks = ( { name = \"crm/prod\";\n  url = \"https://h/x\"; } );\n",
	    "crm/prod", "\"name\" must be 1 to 200 bytes without \"/\"");
	fail_one(CONN "webhooks = ( { name = \"..\";\n  url = \"https://h/x\"; } );\n",
	    "\"..\"", "not \".\" or \"..\"");
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

int
main(void)
{
	Suite *s = suite_create("config_more");
	TCase *tc = tcase_create("config");
	SRunner *sr;
	int failed;

	log_init("test_config_more");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_password);
	tcase_add_test(tc, test_cli_reads_one_secret);
	tcase_add_test(tc, test_xoauth2);
	tcase_add_test(tc, test_webhook_secret);
	tcase_add_test(tc, test_webhook_url_headers);
	tcase_add_test(tc, test_api);
	tcase_add_test(tc, test_warnings);
	tcase_add_test(tc, test_no_secrets_in_messages);
	tcase_add_test(tc, test_same);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
