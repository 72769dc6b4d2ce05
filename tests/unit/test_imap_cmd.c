/*
 * Unit tests for imap_cmd: how commands are encoded, checked on the bytes
 * the connection actually writes to the scripted server of fake_imap.h.
 * Strings (atom, quoted with escapes, literal for 8-bit, control bytes,
 * CR and LF; NIL quoted), mailbox names (INBOX normalised, modified
 * UTF-7), literals with and without LITERAL+ (the command held in
 * segments until each "+"), and secrets kept out of the debug log.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "fake_imap.h"
#include "imap_conn.h"
#include "log.h"
#include "util.h"

static struct event_base *base;
static struct fake_srv srv;
static struct cfg_connection cfg;
static struct imap_conn *conn;
static int ready_calls;
static bool ready_ok;

struct res {
	int done;
	enum imap_status status;
	enum imap_err kind;
};

static void
setup(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	fake_start(&srv, base);
	fake_cfg(&cfg, &srv);
	conn = NULL;
	ready_calls = 0;
	ready_ok = false;
}

static void
teardown(void)
{
	imap_conn_unref(&conn);
	fake_run_ms(&srv, 20);
	fake_stop(&srv);
	event_base_free(base);
}

static void
ready_cb(struct imap_conn *c ATTR_UNUSED, const struct imap_error *err, void *arg ATTR_UNUSED)
{
	ready_calls++;
	ready_ok = err == NULL;
}

static void
res_done(struct imap_conn *c ATTR_UNUSED, const struct imap_reply *reply, void *arg)
{
	struct res *r = arg;

	r->done++;
	r->status = reply->status;
	r->kind = reply->err.kind;
}

static struct fake_peer *
start(void)
{
	conn = imap_conn_new(base, NULL, &cfg, NULL, "c");
	imap_conn_connect(conn, ready_cb, NULL);
	return fake_peer(&srv, srv.npeers);
}

/* A ready connection whose server announces caps; next tag A2. */
static struct fake_peer *
start_ready(const char *caps)
{
	struct fake_peer *p = start();

	fake_login(p, caps);
	FAKE_WAIT(&srv, ready_calls == 1);
	ck_assert(ready_ok);
	return p;
}

static void
send_cmd(struct imap_cmd *cmd, struct res *r)
{
	imap_cmd_send(cmd, res_done, NULL, r);
}

/* Answers tag OK and waits for the command to complete. */
static void
answer(struct fake_peer *p, const char *tag, struct res *r)
{
	char *line = xasprintf("%s OK done\r\n", tag);

	fake_send(p, line);
	free(line);
	FAKE_WAIT(&srv, r->done == 1);
	ck_assert_int_eq(r->status, IMAP_STATUS_OK);
}

/* Sends "X <astring of s[0..len)>" and expects want on the wire (with
 * the tag tag). Without LITERAL+ a literal needs the server's "+": when
 * want has "}\r\n", what follows is expected only after sending "+". */
static void
astring_case(struct fake_peer *p, const char *tag, const char *s, size_t len,
    const char *want, size_t want_len)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);
	struct res r = { 0 };
	const char *brace = memmem(want, want_len, "}\r\n", 3);
	char *head;

	imap_cmd_add(cmd, "X ");
	imap_cmd_astring(cmd, s, len);
	send_cmd(cmd, &r);
	head = xasprintf("%s ", tag);
	fake_expect(p, head);
	free(head);
	if (brace != NULL && brace[-1] != '+') {
		size_t n = (size_t)(brace + 3 - want);

		fake_expect_n(p, want, n);
		fake_quiet(p, 20);      /* held until "+" */
		fake_send(p, "+ go on\r\n");
		fake_expect_n(p, want + n, want_len - n);
	} else {
		fake_expect_n(p, want, want_len);
	}
	fake_expect(p, "\r\n");
	answer(p, tag, &r);
}

#define ACASE(p, tag, s, want) \
	astring_case(p, tag, s, sizeof(s) - 1, "X " want, sizeof("X " want) - 1)

START_TEST(test_astring)
{
	struct fake_peer *p = start_ready("");

	/* atoms */
	ACASE(p, "A2", "INBOX", "INBOX");
	ACASE(p, "A3", "Sent_Mail.2026/x+y~z&[1@b", "Sent_Mail.2026/x+y~z&[1@b");
	ACASE(p, "A4", "NILS", "NILS");
	/* quoted: empty, NIL in any case, specials, with escapes */
	ACASE(p, "A5", "", "\"\"");
	ACASE(p, "A6", "NIL", "\"NIL\"");
	ACASE(p, "A7", "nil", "\"nil\"");
	ACASE(p, "A8", "My Folder", "\"My Folder\"");
	ACASE(p, "A9", "a(b)c", "\"a(b)c\"");
	ACASE(p, "A10", "{5}", "\"{5}\"");
	ACASE(p, "A11", "50%", "\"50%\"");
	ACASE(p, "A12", "*", "\"*\"");
	ACASE(p, "A13", "[Gmail]/Sent", "\"[Gmail]/Sent\"");
	ACASE(p, "A14", "say \"hi\"", "\"say \\\"hi\\\"\"");
	ACASE(p, "A15", "C:\\dir\\", "\"C:\\\\dir\\\\\"");
	/* literals: 8-bit, CR, LF, TAB, DEL, NUL */
	ACASE(p, "A16", "caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9");
	ACASE(p, "A17", "a\rb", "{3}\r\na\rb");
	ACASE(p, "A18", "two\r\nlines", "{10}\r\ntwo\r\nlines");
	ACASE(p, "A19", "a\tb", "{3}\r\na\tb");
	ACASE(p, "A20", "a\x7f", "{2}\r\na\x7f");
	ACASE(p, "A21", "a\0b", "{3}\r\na\0b");
	ACASE(p, "A22", "\"q\" caf\xc3\xa9", "{9}\r\n\"q\" caf\xc3\xa9");
}
END_TEST

START_TEST(test_astring_literal_plus)
{
	struct fake_peer *p = start_ready("LITERAL+");

	/* non-synchronizing: everything in one go */
	ACASE(p, "A2", "caf\xc3\xa9", "{5+}\r\ncaf\xc3\xa9");
	ACASE(p, "A3", "a\r\n", "{3+}\r\na\r\n");
	ACASE(p, "A4", "plain", "plain");
	ACASE(p, "A5", "a b", "\"a b\"");
}
END_TEST

/* Beyond 1 KiB a string goes as a literal even when it could be an atom
 * or quoted: the command line stays short. */
START_TEST(test_astring_long)
{
	struct fake_peer *p = start_ready("");
	char s[1100], *want;
	size_t i;

	for (i = 0; i < sizeof(s); i++)
		s[i] = i % 7 == 6 ? ' ' : 'a';
	/* 1024 bytes: still an atom, still quoted */
	want = xasprintf("X %.*s", 1024, s);
	memset(want + 2, 'a', 1024);
	astring_case(p, "A2", want + 2, 1024, want, strlen(want));
	free(want);
	want = xasprintf("X \"%.*s\"", 1024, s);
	astring_case(p, "A3", s, 1024, want, strlen(want));
	free(want);
	/* 1025: a literal, atom or not */
	want = xasprintf("X {1025}\r\n%.*s", 1025, s);
	astring_case(p, "A4", s, 1025, want, strlen(want));
	free(want);
	memset(s, 'b', sizeof(s));
	want = xasprintf("X {1100}\r\n%.*s", (int)sizeof(s), s);
	astring_case(p, "A5", s, sizeof(s), want, strlen(want));
	free(want);
}
END_TEST

/* Mailbox names: "X <mailbox>" for each UTF-8 name. */
START_TEST(test_mailbox)
{
	static const struct {
		const char *utf8, *wire;
	} cases[] = {
		{ "INBOX", "INBOX" },
		{ "inbox", "INBOX" },
		{ "InBoX", "INBOX" },
		{ "INBOX/Sub", "INBOX/Sub" },           /* only INBOX itself */
		{ "inbox/Sub", "inbox/Sub" },
		{ "Archive/2026", "Archive/2026" },
		{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
		{ "\xc3\xa9t\xc3\xa9", "&AOk-t&AOk-" },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },
		{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
		{ "R&D", "R&-D" },
		{ "My Folder", "\"My Folder\"" },
		{ "Sent Items/\xc3\xa9", "\"Sent Items/&AOk-\"" },
		{ "NIL", "\"NIL\"" },
		{ "50%", "\"50%\"" },
		{ "a\"b", "\"a\\\"b\"" },
		{ "", "\"\"" },
	};
	struct fake_peer *p = start_ready("");
	struct imap_cmd *cmd;
	struct res r;
	char tag[16], *want;
	size_t i;
	unsigned n = 2;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		memset(&r, 0, sizeof(r));
		cmd = imap_cmd_new(conn);
		imap_cmd_add(cmd, "X ");
		ck_assert_int_eq(imap_cmd_mailbox(cmd, cases[i].utf8), 0);
		send_cmd(cmd, &r);
		snprintf(tag, sizeof(tag), "A%u", n++);
		want = xasprintf("%s X %s\r\n", tag, cases[i].wire);
		fake_expect(p, want);
		free(want);
		answer(p, tag, &r);
	}
	/* not UTF-8: refused, nothing added */
	memset(&r, 0, sizeof(r));
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "X ");
	ck_assert_int_eq(imap_cmd_mailbox(cmd, "Gr\xfc\xdf" "e"), -1);
	ck_assert_int_eq(imap_cmd_mailbox(cmd, "\xed\xa0\x80"), -1);
	ck_assert_int_eq(imap_cmd_mailbox(cmd, "\xc0\xaf"), -1);
	imap_cmd_addf(cmd, "%s-%u", "end", 7u);
	send_cmd(cmd, &r);
	snprintf(tag, sizeof(tag), "A%u", n++);
	want = xasprintf("%s X end-7\r\n", tag);
	fake_expect(p, want);
	free(want);
	answer(p, tag, &r);
	/* a command built and thrown away sends nothing */
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "DELETE Everything");
	imap_cmd_discard(&cmd);
	ck_assert_ptr_null(cmd);
	imap_cmd_discard(&cmd);
	fake_quiet(p, 20);
}
END_TEST

/* Literals hold the command, and the queue behind it, until each "+". */
START_TEST(test_literal_segments)
{
	struct fake_peer *p = start_ready("");
	struct imap_cmd *cmd;
	struct res a = { 0 }, b = { 0 }, c = { 0 };

	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "APPEND INBOX (\\Seen) ");
	imap_cmd_literal(cmd, "Subject: x\r\n\r\nhi", 16);
	send_cmd(cmd, &a);
	imap_conn_cmd(conn, "NOOP", res_done, NULL, &b);
	ck_assert_uint_eq(imap_conn_pending(conn), 2);
	fake_expect(p, "A2 APPEND INBOX (\\Seen) {16}\r\n");
	fake_quiet(p, 30);              /* neither the data nor A3 */
	fake_send(p, "+ Ready for literal data\r\n");
	fake_expect(p, "Subject: x\r\n\r\nhi\r\nA3 NOOP\r\n");
	fake_send(p, "A2 OK [APPENDUID 1 5] done\r\nA3 OK\r\n");
	FAKE_WAIT(&srv, b.done == 1);
	ck_assert_int_eq(a.status, IMAP_STATUS_OK);

	/* two literals in one command, and an empty one */
	memset(&a, 0, sizeof(a));
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "LOGIN ");
	imap_cmd_astring(cmd, "m\xc3\xa9", 3);
	imap_cmd_add(cmd, " ");
	imap_cmd_literal(cmd, "", 0);
	send_cmd(cmd, &a);
	imap_conn_cmd(conn, "NOOP", res_done, NULL, &c);
	fake_expect(p, "A4 LOGIN {3}\r\n");
	fake_quiet(p, 20);
	fake_send(p, "+\r\n");
	fake_expect(p, "m\xc3\xa9 {0}\r\n");
	fake_quiet(p, 20);
	fake_send(p, "+\r\n");
	fake_expect(p, "\r\nA5 NOOP\r\n");
	fake_send(p, "A4 NO [AUTHENTICATIONFAILED] no\r\nA5 OK\r\n");
	FAKE_WAIT(&srv, c.done == 1);
	ck_assert_int_eq(a.status, IMAP_STATUS_NO);

	/* the server may refuse the literal instead of "+" */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "APPEND INBOX ");
	imap_cmd_literal(cmd, "Subject: big", 12);
	send_cmd(cmd, &a);
	imap_conn_cmd(conn, "NOOP", res_done, NULL, &b);
	fake_expect(p, "A6 APPEND INBOX {12}\r\n");
	fake_send(p, "A6 NO [TOOBIG] too big\r\n");
	FAKE_WAIT(&srv, a.done == 1);
	ck_assert_int_eq(a.status, IMAP_STATUS_NO);
	fake_expect(p, "A7 NOOP\r\n");
	answer(p, "A7", &b);
}
END_TEST

START_TEST(test_literal_plus)
{
	struct fake_peer *p = start_ready("LITERAL+");
	struct imap_cmd *cmd;
	struct res a = { 0 }, b = { 0 };

	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "APPEND INBOX ");
	imap_cmd_literal(cmd, "Subject: x\r\n\r\nhi", 16);
	send_cmd(cmd, &a);
	imap_conn_cmd(conn, "NOOP", res_done, NULL, &b);
	fake_expect(p, "A2 APPEND INBOX {16+}\r\nSubject: x\r\n\r\nhi\r\nA3 NOOP\r\n");
	fake_send(p, "A2 OK\r\nA3 OK\r\n");
	FAKE_WAIT(&srv, b.done == 1);
	ck_assert_int_eq(a.status, IMAP_STATUS_OK);
}
END_TEST

/* The log-in command uses the same encoding. */
START_TEST(test_login_encoding)
{
	struct fake_peer *p;

	cfg.username = (char *)"me@example.com";
	cfg.password = (char *)"pa ss\"w\\rd";
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1] hi\r\n");
	fake_expect(p, "A1 LOGIN me@example.com \"pa ss\\\"w\\\\rd\"\r\n");
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	FAKE_WAIT(&srv, ready_calls == 1);
	ck_assert(ready_ok);
	imap_conn_unref(&conn);
	fake_run_ms(&srv, 10);

	/* 8-bit: a literal, held until "+" during the set-up too */
	ready_calls = 0;
	cfg.password = (char *)"p\xc3\xa4ss";
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1] hi\r\n");
	fake_expect(p, "A1 LOGIN me@example.com {5}\r\n");
	fake_quiet(p, 20);
	fake_send(p, "+ go\r\n");
	fake_expect(p, "p\xc3\xa4ss\r\n");
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	FAKE_WAIT(&srv, ready_calls == 1);
	ck_assert(ready_ok);
}
END_TEST

/* ---- secrets in the debug log ---- */

static char *log_path;
static int saved_stderr = -1;

static void
capture_start(void)
{
	int fd;

	log_path = xasprintf("/tmp/test_imap_cmd.%d.log", (int)getpid());
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_set_level(LOG_LEVEL_DEBUG);
}

/* Returns what was logged (caller frees). */
static char *
capture_end(void)
{
	char *out;
	size_t len;

	log_set_level(LOG_LEVEL_ERROR);
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	ck_assert_int_eq(read_file(log_path, 1 << 20, &out, &len), 0);
	unlink(log_path);
	free(log_path);
	return out;
}

START_TEST(test_secrets_not_logged)
{
	struct fake_peer *p;
	struct imap_cmd *cmd;
	struct res a = { 0 }, b = { 0 };
	char *out;

	capture_start();
	/* LOGIN, and a command marked secret by its caller */
	p = start_ready("");
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "ID (\"token\" ");
	imap_cmd_astring(cmd, "tok-SECRET-1", 12);
	imap_cmd_add(cmd, ")");
	imap_cmd_secret(cmd);
	send_cmd(cmd, &a);
	/* an ordinary one is logged whole, its literal data is not */
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "APPEND INBOX ");
	imap_cmd_literal(cmd, "Subject: body-SECRET-2", 22);
	send_cmd(cmd, &b);
	fake_expect(p, "A2 ID (\"token\" tok-SECRET-1)\r\nA3 APPEND INBOX {22}\r\n");
	fake_send(p, "A2 OK\r\n+\r\n");
	fake_expect(p, "Subject: body-SECRET-2\r\n");
	answer(p, "A3", &b);
	imap_conn_unref(&conn);
	fake_run_ms(&srv, 10);
	/* AUTHENTICATE PLAIN, with and without SASL-IR */
	ready_calls = 0;
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n");
	fake_expect(p, "A1 AUTHENTICATE PLAIN AG1lAHMzY3IzdA==\r\n");
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	FAKE_WAIT(&srv, ready_calls == 1);
	imap_conn_unref(&conn);
	fake_run_ms(&srv, 10);
	ready_calls = 0;
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
	fake_expect(p, "A1 AUTHENTICATE PLAIN\r\n");
	fake_send(p, "+\r\n");
	fake_expect(p, "AG1lAHMzY3IzdA==\r\n");
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	FAKE_WAIT(&srv, ready_calls == 1);
	out = capture_end();

	ck_assert_msg(strstr(out, "c: C: A1 LOGIN <secret>\n") != NULL, "log: %s", out);
	ck_assert_msg(strstr(out, "c: C: A2 ID <secret>\n") != NULL, "log: %s", out);
	ck_assert_msg(strstr(out, "c: C: A3 APPEND INBOX {22}\n") != NULL, "log: %s", out);
	ck_assert_msg(strstr(out, "c: C: A1 AUTHENTICATE <secret>\n") != NULL, "log: %s", out);
	ck_assert_msg(strstr(out, "s3cr3t") == NULL, "password logged: %s", out);
	ck_assert_msg(strstr(out, "AG1lAHMzY3IzdA") == NULL, "credentials logged: %s", out);
	ck_assert_msg(strstr(out, "SECRET") == NULL, "secret logged: %s", out);
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("imap_cmd");
	TCase *tc = tcase_create("imap_cmd");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_astring);
	tcase_add_test(tc, test_astring_literal_plus);
	tcase_add_test(tc, test_astring_long);
	tcase_add_test(tc, test_mailbox);
	tcase_add_test(tc, test_literal_segments);
	tcase_add_test(tc, test_literal_plus);
	tcase_add_test(tc, test_login_encoding);
	tcase_add_test(tc, test_secrets_not_logged);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
