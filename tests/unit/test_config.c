/* Unit tests for config.c (and cfgval.c): loading, every key and every
 * default, and each problem with its exact FILE:LINE. Secrets, the api
 * group, warnings and the *_same comparisons are in test_config_more.c. */
#include "config_helpers.h"

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
	tcase_add_test(tc, test_many_errors);
	tcase_add_test(tc, test_example_file);
	tcase_add_test(tc, test_errors_accumulate);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
