/*
 * Unit tests for imap_conn, against the scripted server of fake_imap.h:
 * what a real server cannot be made to do on demand. Greetings (with and
 * without [CAPABILITY], PREAUTH, BYE, nonsense), LOGIN and AUTHENTICATE
 * PLAIN (SASL-IR or the "+" continuation), STARTTLS refusals, pipelining
 * and the routing of untagged responses, IDLE, and every way a connection
 * fails: unexpected "+", garbage, unknown tags, time-outs, the server
 * closing. Callbacks must never run inside the call that caused them.
 *
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "fake_imap.h"
#include "imap_conn.h"
#include "log.h"
#include "oauth2.h"
#include "util.h"

#ifdef __SANITIZE_ADDRESS__
/* libasan's count of the bytes allocated and not yet freed (declared in
 * clang's sanitizer/allocator_interface.h, which GCC does not ship) */
size_t __sanitizer_get_current_allocated_bytes(void);
#define HEAP_BYTES() __sanitizer_get_current_allocated_bytes()
#else
#define HEAP_BYTES() ((size_t)0)        /* unit tests run under ASan */
#endif

static struct event_base *base;
static struct fake_srv srv;
static struct cfg_connection cfg;
static struct imap_conn *conn;
/* Set around calls that promise not to call back from inside. */
static bool in_api;

struct conn_rec {
	int calls;
	bool ok;
	struct imap_error err;
};
static struct conn_rec ready, lost;

/* What a command got: its reply and, in order, its untagged responses. */
struct res {
	int done;
	enum imap_status status;
	enum imap_err kind;
	char msg[512];
	char text[256];
	char untagged[512];
	int idling;
};

static void
setup(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	fake_start(&srv, base);
	fake_cfg(&cfg, &srv);
	memset(&ready, 0, sizeof(ready));
	memset(&lost, 0, sizeof(lost));
	conn = NULL;
	in_api = false;
}

static void
teardown(void)
{
	imap_conn_unref(&conn);
	fake_run_ms(&srv, 20);          /* the deferred free */
	fake_stop(&srv);
	event_base_free(base);
	ck_assert_int_le(ready.calls, 1);
	ck_assert_int_le(lost.calls, 1);
}

static void
conn_cb(struct imap_conn *c, const struct imap_error *err, void *arg)
{
	struct conn_rec *r = arg;

	ck_assert_msg(!in_api, "callback inside an API call");
	ck_assert_ptr_eq(c, conn);
	r->calls++;
	r->ok = err == NULL;
	if (err != NULL)
		r->err = *err;
}

static void
describe(char *buf, size_t size, const struct imap_resp *resp)
{
	static const char *const st[] = { "", "OK", "NO", "BAD", "BYE", "PREAUTH" };
	size_t n = strlen(buf);

	if (resp->status != IMAP_STATUS_NONE)
		snprintf(buf + n, size - n, "%s %s;", st[resp->status], resp->text);
	else if (resp->has_number)
		snprintf(buf + n, size - n, "%u %s;", resp->number, resp->name);
	else
		snprintf(buf + n, size - n, "%s;", resp->name);
}

static void
res_done(struct imap_conn *c, const struct imap_reply *reply, void *arg)
{
	struct res *r = arg;

	ck_assert_msg(!in_api, "done inside an API call");
	ck_assert(conn == NULL || c == conn);   /* NULL: inside the last unref */
	ck_assert_int_eq(r->done, 0);   /* exactly once */
	r->done++;
	r->status = reply->status;
	r->kind = reply->err.kind;
	snprintf(r->msg, sizeof(r->msg), "%s", reply->err.msg);
	ck_assert((reply->status == IMAP_STATUS_NONE) == (reply->resp == NULL));
	if (reply->resp != NULL) {
		ck_assert_int_eq(reply->resp->kind, IMAP_RESP_TAGGED);
		snprintf(r->text, sizeof(r->text), "%s", reply->resp->text);
	}
	if (reply->status == IMAP_STATUS_OK)
		ck_assert_int_eq(reply->err.kind, IMAP_ERR_NONE);
}

static void
res_untagged(struct imap_conn *c ATTR_UNUSED, const struct imap_resp *resp, void *arg)
{
	struct res *r = arg;

	ck_assert_msg(!in_api, "untagged inside an API call");
	ck_assert_int_eq(r->done, 0);
	describe(r->untagged, sizeof(r->untagged), resp);
}

static void
res_idling(struct imap_conn *c ATTR_UNUSED, void *arg)
{
	struct res *r = arg;

	ck_assert_msg(!in_api, "idling inside an API call");
	r->idling++;
}

static char unsolicited[512];

static void
unsolicited_cb(struct imap_conn *c ATTR_UNUSED, const struct imap_resp *resp, void *arg ATTR_UNUSED)
{
	describe(unsolicited, sizeof(unsolicited), resp);
}

static void
send_text(const char *text, struct res *r)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_add(cmd, text);
	in_api = true;
	imap_cmd_send(cmd, res_done, res_untagged, r);
	in_api = false;
}

/* Starts connecting; returns the server's side of it. */
static struct fake_peer *
start(void)
{
	conn = imap_conn_new(base, NULL, &cfg, NULL, "t");
	imap_conn_set_lost_cb(conn, conn_cb, &lost);
	in_api = true;
	imap_conn_connect(conn, conn_cb, &ready);
	in_api = false;
	ck_assert_int_eq(ready.calls, 0);
	return fake_peer(&srv, srv.npeers);
}

/* start() with the OAuth2 access token "tok". */
static struct fake_peer *
start_token(void)
{
	conn = imap_conn_new(base, NULL, &cfg, NULL, "t");
	imap_conn_set_oauth2_token(conn, "tok");
	imap_conn_set_lost_cb(conn, conn_cb, &lost);
	in_api = true;
	imap_conn_connect(conn, conn_cb, &ready);
	in_api = false;
	ck_assert_int_eq(ready.calls, 0);
	return fake_peer(&srv, srv.npeers);
}

/* A ready connection (greeting and LOGIN announcing caps); next tag A2. */
static struct fake_peer *
start_ready(const char *caps)
{
	struct fake_peer *p = start();

	fake_login(p, caps);
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_msg(ready.ok, "%s", ready.err.msg);
	ck_assert(imap_conn_is_ready(conn));
	return p;
}

/* Drops conn (and lets its deferred free run) to start another. */
static void
drop(void)
{
	imap_conn_unref(&conn);
	fake_run_ms(&srv, 10);
	memset(&ready, 0, sizeof(ready));
	memset(&lost, 0, sizeof(lost));
}

/* ---- greetings and log-in ---- */

START_TEST(test_greeting_with_caps)
{
	struct fake_peer *p = start();
	const char *const *caps;

	/* nothing is said before the greeting */
	fake_quiet(p, 50);
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_GREETING);
	ck_assert_str_eq(imap_conn_state_name(imap_conn_state(conn)), "greeting");
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] hi\r\n");
	fake_expect(p, "A1 LOGIN me s3cr3t\r\n");
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_AUTH);
	ck_assert_int_eq(ready.calls, 0);
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE UIDPLUS] in\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(ready.ok);
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_READY);
	/* the caps came with the OK: no CAPABILITY command */
	fake_quiet(p, 50);
	caps = imap_conn_caps(conn);
	ck_assert_str_eq(caps[0], "IMAP4rev1");
	ck_assert_str_eq(caps[1], "LITERAL+");
	ck_assert_str_eq(caps[2], "IDLE");
	ck_assert_str_eq(caps[3], "UIDPLUS");
	ck_assert_ptr_null(caps[4]);
	ck_assert(imap_conn_has_cap(conn, "uidplus"));
	ck_assert(!imap_conn_has_cap(conn, "UIDPLUS2"));
	ck_assert(!imap_conn_has_cap(conn, "UID"));
	ck_assert_uint_eq(imap_conn_pending(conn), 0);
	ck_assert_ptr_null(imap_conn_tls_version(conn));
	ck_assert_str_eq(imap_conn_name(conn), "t");
	ck_assert_ptr_eq(imap_conn_config(conn), &cfg);
	ck_assert(!imap_conn_idling(conn));
}
END_TEST

START_TEST(test_greeting_without_caps)
{
	struct fake_peer *p = start();

	fake_send(p, "* OK hi\r\n");
	fake_expect(p, "A1 CAPABILITY\r\n");
	fake_send(p, "* CAPABILITY IMAP4rev1 AUTH=LOGIN\r\nA1 OK done\r\n");
	fake_expect(p, "A2 LOGIN me s3cr3t\r\n");
	/* a plain OK: capabilities may change after log-in, so ask again */
	fake_send(p, "A2 OK logged in\r\n");
	fake_expect(p, "A3 CAPABILITY\r\n");
	fake_quiet(p, 30);
	ck_assert_int_eq(ready.calls, 0);
	fake_send(p, "* CAPABILITY IMAP4rev1 IDLE MOVE\r\nA3 OK\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(ready.ok);
	ck_assert(imap_conn_has_cap(conn, "MOVE"));
	ck_assert(!imap_conn_has_cap(conn, "AUTH=LOGIN"));
	/* the next command gets the next tag */
	imap_conn_cmd(conn, "NOOP", NULL, NULL, NULL);
	fake_expect(p, "A4 NOOP\r\n");
}
END_TEST

START_TEST(test_preauth)
{
	struct fake_peer *p = start();

	fake_send(p, "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] welcome back\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(ready.ok);
	fake_quiet(p, 30);              /* no LOGIN, no CAPABILITY */
	ck_assert(imap_conn_has_cap(conn, "IDLE"));
	drop();

	p = start();
	fake_send(p, "* PREAUTH hi\r\n");
	fake_expect(p, "A1 CAPABILITY\r\n");
	fake_send(p, "* CAPABILITY IMAP4rev1\r\nA1 OK\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(ready.ok);
	fake_quiet(p, 30);
}
END_TEST

START_TEST(test_bad_greetings)
{
	static const struct {
		const char *greeting;
		enum imap_err kind;
		const char *msg;
	} cases[] = {
		{ "* BYE [UNAVAILABLE] too many connections\r\n", IMAP_ERR_CLOSED,
		  "t: server refused the connection: too many connections" },
		{ "* NO go away\r\n", IMAP_ERR_PROTOCOL, "t: bad greeting" },
		{ "* BAD what\r\n", IMAP_ERR_PROTOCOL, "t: bad greeting" },
		{ "A1 OK hi\r\n", IMAP_ERR_PROTOCOL, "t: response with unknown tag A1" },
		{ "* 1 EXISTS\r\n", IMAP_ERR_PROTOCOL, "t: bad greeting" },
		{ "+ hi\r\n", IMAP_ERR_PROTOCOL, "unexpected continuation" },
		{ "HTTP/1.1 400 Bad Request\r\n", IMAP_ERR_PROTOCOL, "t: bad response from server" },
	};
	struct fake_peer *p;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		p = start();
		fake_send(p, cases[i].greeting);
		FAKE_WAIT(&srv, ready.calls == 1);
		ck_assert_msg(!ready.ok, "case %zu", i);
		ck_assert_msg(ready.err.kind == cases[i].kind, "case %zu: %s", i,
		    imap_err_name(ready.err.kind));
		ck_assert_msg(strstr(ready.err.msg, cases[i].msg) != NULL, "case %zu: %s", i,
		    ready.err.msg);
		ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_CLOSED);
		ck_assert_int_eq(lost.calls, 0);        /* never was ready */
		fake_expect_eof(p);
		drop();
	}
}
END_TEST

START_TEST(test_auth_plain)
{
	/* "\0me\0s3cr3t" */
	static const char b64[] = "AG1lAHMzY3IzdA==";
	struct fake_peer *p;
	char *line;

	/* SASL-IR: the credentials ride on the command */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n");
	line = xasprintf("A1 AUTHENTICATE PLAIN %s\r\n", b64);
	fake_expect(p, line);
	free(line);
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(ready.ok);
	drop();

	/* without: they wait for the server's "+" */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
	fake_expect(p, "A1 AUTHENTICATE PLAIN\r\n");
	fake_quiet(p, 50);
	fake_send(p, "+ \r\n");
	line = xasprintf("%s\r\n", b64);
	fake_expect(p, line);
	free(line);
	fake_send(p, "A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(ready.ok);
	drop();

	/* a second challenge is cancelled with "*"; the NO fails the log-in */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
	fake_expect(p, "A1 AUTHENTICATE PLAIN\r\n");
	fake_send(p, "+ \r\n");
	fake_expect(p, b64);
	fake_expect(p, "\r\n");
	fake_send(p, "+ bW9yZQ==\r\n");
	fake_expect(p, "*\r\n");
	fake_send(p, "A1 BAD [AUTHENTICATIONFAILED] cancelled\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(!ready.ok);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_AUTH);
	ck_assert_str_eq(ready.err.msg, "t: authentication failed for me: cancelled");
}
END_TEST

/*
 * Fixed bug (imap_queue.c imap_conn_continuation): every "+" during
 * AUTHENTICATE was answered with the mechanism's cancel (or empty) reply
 * and restarted the time-out, so a hostile server could keep the
 * connection in the auth state for ever. One error challenge is answered;
 * a second one is a protocol error.
 */
START_TEST(test_auth_challenge_loop)
{
	/* "\0me\0s3cr3t" */
	static const char b64[] = "AG1lAHMzY3IzdA==";
	struct fake_peer *p;
	char *line, *ir;

	/* SASL-IR: the first "+" is already an error challenge */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n");
	line = xasprintf("A1 AUTHENTICATE PLAIN %s\r\n", b64);
	fake_expect(p, line);
	free(line);
	fake_send(p, "+ \r\n");
	fake_expect(p, "*\r\n");
	fake_send(p, "+ \r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_msg(ready.err.kind == IMAP_ERR_PROTOCOL, "%s: %s",
	    imap_err_name(ready.err.kind), ready.err.msg);
	fake_expect_eof(p);
	drop();

	/* without SASL-IR the first "+" asks for the credentials */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
	fake_expect(p, "A1 AUTHENTICATE PLAIN\r\n");
	fake_send(p, "+ \r\n");
	line = xasprintf("%s\r\n", b64);
	fake_expect(p, line);
	free(line);
	fake_send(p, "+ bW9yZQ==\r\n");
	fake_expect(p, "*\r\n");
	fake_send(p, "+ bW9yZQ==\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_PROTOCOL);
	fake_expect_eof(p);
	drop();

	/* XOAUTH2 as servers do it: "+ <base64 JSON>", an empty line, NO */
	cfg.auth = CFG_AUTH_XOAUTH2;
	ir = oauth2_xoauth2_response("me", "tok");
	line = xasprintf("A1 AUTHENTICATE XOAUTH2 %s\r\n", ir);
	p = start_token();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n");
	fake_expect(p, line);
	fake_send(p, "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n");
	fake_expect(p, "\r\n");
	fake_send(p, "A1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_AUTH);
	ck_assert_str_eq(ready.err.msg, "t: authentication failed for me: "
	    "Invalid credentials");
	fake_expect_eof(p);
	drop();

	/* and the same loop refused */
	p = start_token();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n");
	fake_expect(p, line);
	fake_send(p, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
	fake_expect(p, "\r\n");
	fake_send(p, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_PROTOCOL);
	fake_expect_eof(p);
	free(line);
	free(ir);
}
END_TEST

START_TEST(test_auth_refused)
{
	struct fake_peer *p = start();

	fake_send(p, "* OK [CAPABILITY IMAP4rev1] hi\r\n");
	fake_expect(p, "A1 LOGIN me s3cr3t\r\n");
	fake_send(p, "A1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(!ready.ok);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_AUTH);
	ck_assert_str_eq(ready.err.msg, "t: authentication failed for me: Invalid credentials");
	ck_assert_ptr_null(strstr(ready.err.msg, "s3cr3t"));
	fake_expect_eof(p);
	drop();

	/* LOGINDISABLED and no AUTH=PLAIN: nothing to try */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=GSSAPI] hi\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(ready.err.msg, "disables LOGIN and offers no AUTH=PLAIN"));
	fake_expect_eof(p);
	drop();

	/* a failing CAPABILITY during set-up is a protocol error */
	p = start();
	fake_send(p, "* OK hi\r\n");
	fake_expect(p, "A1 CAPABILITY\r\n");
	fake_send(p, "A1 BAD no\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_PROTOCOL);
	ck_assert_str_eq(ready.err.msg, "t: capability failed: no");
}
END_TEST

START_TEST(test_starttls_refusals)
{
	struct fake_peer *p;

	cfg.starttls = true;
	/* not offered */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1] hi\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_TLS);
	ck_assert_ptr_nonnull(strstr(ready.err.msg, "does not offer STARTTLS"));
	fake_expect_eof(p);
	drop();
	/* refused */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
	fake_expect(p, "A1 STARTTLS\r\n");
	fake_send(p, "A1 NO not today\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_TLS);
	ck_assert_str_eq(ready.err.msg, "t: STARTTLS refused: not today");
	drop();
	/* plain-text bytes after the OK (an injection) are refused */
	p = start();
	fake_send(p, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
	fake_expect(p, "A1 STARTTLS\r\n");
	fake_send(p, "A1 OK begin\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] forged\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_PROTOCOL);
	ck_assert_str_eq(ready.err.msg, "t: data after STARTTLS response");
	fake_expect_eof(p);
}
END_TEST

/*
 * Fixed bug (imap_conn.c conn_greeting): with starttls = true a man in the
 * middle could replace the greeting with a PREAUTH one; the client went on
 * to STARTTLS but then skipped the log-in because of the PREAUTH, and was
 * ready unauthenticated. A PREAUTH greeting means STARTTLS is impossible
 * (RFC 3501 6.2.1, RFC 2595 3.1): the connection fails.
 */
START_TEST(test_preauth_before_starttls)
{
	struct fake_peer *p;

	cfg.starttls = true;
	p = start();
	fake_send(p, "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert(!ready.ok);
	ck_assert_msg(ready.err.kind == IMAP_ERR_TLS, "%s: %s",
	    imap_err_name(ready.err.kind), ready.err.msg);
	ck_assert_ptr_nonnull(strstr(ready.err.msg, "PREAUTH"));
	fake_expect_eof(p);
	ck_assert_ptr_null(strstr(p->in.data, "STARTTLS"));
	drop();

	/* without [CAPABILITY]: refused before asking for it */
	p = start();
	fake_send(p, "* PREAUTH hi\r\n");
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_TLS);
	fake_expect_eof(p);
	ck_assert_uint_eq(p->in.len, 0);
}
END_TEST

/* ---- commands ---- */

START_TEST(test_pipelining_and_routing)
{
	struct fake_peer *p = start_ready("IDLE");
	struct res a = { 0 }, b = { 0 }, c = { 0 };

	imap_conn_set_unsolicited_cb(conn, unsolicited_cb, NULL);
	send_text("SELECT INBOX", &a);
	send_text("NOOP", &b);
	send_text("STATUS Sent (MESSAGES)", &c);
	ck_assert_uint_eq(imap_conn_pending(conn), 3);
	/* all three go out before any answer */
	fake_expect(p, "A2 SELECT INBOX\r\nA3 NOOP\r\nA4 STATUS Sent (MESSAGES)\r\n");
	/* untagged responses go to the oldest pending command */
	fake_send(p, "* 3 EXISTS\r\n* FLAGS (\\Seen)\r\n");
	/* answers may come out of order */
	fake_send(p, "A3 OK noop done\r\n");
	FAKE_WAIT(&srv, b.done == 1);
	ck_assert_int_eq(a.done, 0);
	ck_assert_int_eq(b.status, IMAP_STATUS_OK);
	ck_assert_str_eq(b.text, "noop done");
	ck_assert_str_eq(b.untagged, "");
	ck_assert_uint_eq(imap_conn_pending(conn), 2);
	fake_send(p, "* OK [UIDVALIDITY 7] ok\r\nA2 OK [READ-WRITE] selected\r\n"
	    "* STATUS Sent (MESSAGES 2)\r\nA4 NO [NONEXISTENT] no Sent\r\n");
	FAKE_WAIT(&srv, c.done == 1);
	ck_assert_int_eq(a.status, IMAP_STATUS_OK);
	ck_assert_str_eq(a.untagged, "3 EXISTS;FLAGS;OK ok;");
	ck_assert_str_eq(c.untagged, "STATUS;");
	ck_assert_int_eq(c.status, IMAP_STATUS_NO);
	ck_assert_int_eq(c.kind, IMAP_ERR_NO);
	ck_assert_str_eq(c.msg, "no Sent");
	/* with nothing pending: the unsolicited handler */
	ck_assert_str_eq(unsolicited, "");
	fake_send(p, "* 4 EXISTS\r\n* 1 EXPUNGE\r\n");
	FAKE_WAIT(&srv, strlen(unsolicited) == strlen("4 EXISTS;1 EXPUNGE;"));
	ck_assert_str_eq(unsolicited, "4 EXISTS;1 EXPUNGE;");
	ck_assert(imap_conn_is_ready(conn));
	ck_assert_uint_eq(imap_conn_pending(conn), 0);
	ck_assert_int_eq(lost.calls, 0);
}
END_TEST

START_TEST(test_tagged_no_bad)
{
	struct fake_peer *p = start_ready("");
	struct res a = { 0 }, b = { 0 }, c = { 0 };
	uint64_t before;

	send_text("SELECT Nope", &a);
	send_text("FROB", &b);
	fake_expect(p, "A2 SELECT Nope\r\nA3 FROB\r\n");
	before = imap_conn_last_used(conn);
	fake_send(p, "A2 NO [NONEXISTENT] Mailbox doesn't exist\r\nA3 BAD Unknown command\r\n");
	FAKE_WAIT(&srv, b.done == 1);
	ck_assert_int_eq(a.status, IMAP_STATUS_NO);
	ck_assert_int_eq(a.kind, IMAP_ERR_NO);
	ck_assert_str_eq(a.msg, "Mailbox doesn't exist");
	ck_assert_int_eq(b.status, IMAP_STATUS_BAD);
	ck_assert_int_eq(b.kind, IMAP_ERR_BAD);
	ck_assert_str_eq(b.text, "Unknown command");
	ck_assert_uint_ge(imap_conn_last_used(conn), before);
	/* still usable */
	ck_assert(imap_conn_is_ready(conn));
	send_text("NOOP", &c);
	fake_expect(p, "A4 NOOP\r\n");
	fake_send(p, "A4 OK\r\n");
	FAKE_WAIT(&srv, c.done == 1);
	ck_assert_int_eq(c.status, IMAP_STATUS_OK);
	ck_assert_int_eq(lost.calls, 0);
}
END_TEST

/* The connection failing: every pending command, sent or still queued,
 * fails with the same error, in order; lost_cb hears of it once. */
static void
expect_failed(struct res *r, int n, enum imap_err kind, const char *msg)
{
	int i;

	FAKE_WAIT(&srv, lost.calls == 1);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(r[i].done, 1);
		ck_assert_int_eq(r[i].status, IMAP_STATUS_NONE);
		ck_assert_msg(r[i].kind == kind, "command %d: %s", i, imap_err_name(r[i].kind));
		ck_assert_msg(strstr(r[i].msg, msg) != NULL, "command %d: %s", i, r[i].msg);
	}
	ck_assert_int_eq(lost.err.kind, kind);
	ck_assert_ptr_nonnull(strstr(lost.err.msg, msg));
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_CLOSED);
	ck_assert(!imap_conn_is_ready(conn));
	ck_assert_uint_eq(imap_conn_pending(conn), 0);
}

START_TEST(test_garbage)
{
	struct fake_peer *p = start_ready("");
	struct res r[4] = { { 0 } };
	struct imap_cmd *cmd;

	imap_conn_set_selected(conn, "INBOX", false);
	send_text("SELECT INBOX", &r[0]);
	send_text("NOOP", &r[1]);
	/* a synchronizing literal holds the queue: the last one is unsent */
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "LOGIN x ");
	imap_cmd_literal(cmd, "y", 1);
	in_api = true;
	imap_cmd_send(cmd, res_done, res_untagged, &r[2]);
	in_api = false;
	send_text("NOOP", &r[3]);
	fake_expect(p, "A2 SELECT INBOX\r\nA3 NOOP\r\nA4 LOGIN x {1}\r\n");
	fake_send(p, "* 1 EXISTS\r\n)(garbage\r\n");
	expect_failed(r, 4, IMAP_ERR_PROTOCOL, "t: bad response from server");
	ck_assert_str_eq(r[0].untagged, "1 EXISTS;");
	/* a failed connection has nothing selected */
	ck_assert_ptr_null(imap_conn_selected(conn, NULL));
	fake_expect_eof(p);
}
END_TEST

START_TEST(test_unexpected_continuation)
{
	struct fake_peer *p = start_ready("");
	struct res r[1] = { { 0 } };

	send_text("NOOP", &r[0]);
	fake_expect(p, "A2 NOOP\r\n");
	fake_send(p, "+ go ahead\r\n");
	expect_failed(r, 1, IMAP_ERR_PROTOCOL, "t: unexpected continuation from server");
	fake_expect_eof(p);
	drop();

	/* with nothing pending too */
	p = start_ready("");
	fake_send(p, "+\r\n");
	FAKE_WAIT(&srv, lost.calls == 1);
	ck_assert_int_eq(lost.err.kind, IMAP_ERR_PROTOCOL);
}
END_TEST

START_TEST(test_unknown_tag)
{
	struct fake_peer *p = start_ready("");
	struct res r[1] = { { 0 } };

	send_text("NOOP", &r[0]);
	fake_expect(p, "A2 NOOP\r\n");
	fake_send(p, "A7 OK what\r\n");
	expect_failed(r, 1, IMAP_ERR_PROTOCOL, "t: response with unknown tag A7");
	fake_expect_eof(p);
	drop();

	/* a tag already answered is unknown too */
	p = start_ready("");
	memset(r, 0, sizeof(r));
	fake_send(p, "A1 OK again\r\n");
	FAKE_WAIT(&srv, lost.calls == 1);
	ck_assert_int_eq(lost.err.kind, IMAP_ERR_PROTOCOL);
}
END_TEST

START_TEST(test_timeout_mid_literal)
{
	struct fake_peer *p;
	struct res r[1] = { { 0 } };
	static char big[5000];
	uint64_t t0;

	cfg.timeout = 1;
	p = start_ready("");
	send_text("UID FETCH 1 BODY.PEEK[]", &r[0]);
	fake_expect(p, "A2 UID FETCH 1 BODY.PEEK[]\r\n");
	/* 4 KiB or more of a response restart the clock */
	memset(big, 'x', sizeof(big));
	fake_send(p, "* 1 FETCH (UID 1 BODY[] {20000}\r\n");
	fake_run_ms(&srv, 600);
	fake_sendn(p, big, sizeof(big));
	fake_run_ms(&srv, 600);
	ck_assert_int_eq(r[0].done, 0);
	/* a trickle does not: the server stops being useful and is cut off */
	t0 = monotonic_ms();
	fake_send(p, "abc");
	fake_run_ms(&srv, 300);
	fake_send(p, "def");
	expect_failed(r, 1, IMAP_ERR_TIMEOUT, "127.0.0.1:");
	ck_assert_ptr_nonnull(strstr(r[0].msg, "no answer within 1 s (ready)"));
	ck_assert_uint_le(monotonic_ms() - t0, 2500);
	fake_expect_eof(p);
}
END_TEST

/* The parser's buffers for a big response are given back once it was
 * dispatched, not kept until the server next says something (here: a
 * server that takes its time before the tagged OK). */
START_TEST(test_big_response_memory)
{
	static const size_t lit_len = 10 * 1024 * 1024;
	struct fake_peer *p = start_ready("");
	struct res r = { 0 };
	char *lit;
	size_t heap;

	fake_run_ms(&srv, 10);
	heap = HEAP_BYTES();
	send_text("UID FETCH 1 BODY.PEEK[]", &r);
	fake_expect(p, "A2 UID FETCH 1 BODY.PEEK[]\r\n");
	fake_send(p, "* 1 FETCH (UID 1 BODY[] {10485760}\r\n");
	lit = xmalloc(lit_len);
	memset(lit, 'z', lit_len);
	fake_sendn(p, lit, lit_len);
	free(lit);
	fake_send(p, ")\r\n");
	FAKE_WAIT(&srv, strcmp(r.untagged, "1 FETCH;") == 0);
	ck_assert_int_eq(r.done, 0);
	ck_assert_msg(HEAP_BYTES() < heap + 1024 * 1024, "%zu bytes kept",
	    HEAP_BYTES() - heap);
	fake_send(p, "A2 OK done\r\n");
	FAKE_WAIT(&srv, r.done == 1);
	ck_assert_int_eq(r.status, IMAP_STATUS_OK);
}
END_TEST

START_TEST(test_timeout_greeting)
{
	struct fake_peer *p;

	cfg.timeout = 1;
	p = start();
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(ready.err.msg, "no answer within 1 s (greeting)"));
	fake_expect_eof(p);
}
END_TEST

/* A ready connection with nothing to do never times out. */
START_TEST(test_no_timeout_when_idle)
{
	struct fake_peer *p;
	struct res r = { 0 };

	cfg.timeout = 1;
	p = start_ready("");
	fake_run_ms(&srv, 1500);
	ck_assert_int_eq(lost.calls, 0);
	send_text("NOOP", &r);
	fake_expect(p, "A2 NOOP\r\n");
	fake_send(p, "A2 OK\r\n");
	FAKE_WAIT(&srv, r.done == 1);
	ck_assert_int_eq(r.status, IMAP_STATUS_OK);
}
END_TEST

START_TEST(test_server_closes)
{
	struct fake_peer *p = start_ready("");
	struct res r[2] = { { 0 } };

	send_text("NOOP", &r[0]);
	send_text("NOOP", &r[1]);
	fake_expect(p, "A2 NOOP\r\nA3 NOOP\r\n");
	fake_close(p);
	expect_failed(r, 2, IMAP_ERR_CLOSED, "t: server closed the connection");
	drop();

	/* a BYE first: its text explains; it reaches the pending command */
	p = start_ready("");
	memset(r, 0, sizeof(r));
	send_text("NOOP", &r[0]);
	fake_expect(p, "A2 NOOP\r\n");
	fake_send(p, "* BYE [UNAVAILABLE] shutting down for maintenance\r\n");
	fake_run_ms(&srv, 20);
	fake_close(p);
	expect_failed(r, 1, IMAP_ERR_CLOSED,
	    "t: server closed the connection: shutting down for maintenance");
	ck_assert_str_eq(r[0].untagged, "BYE shutting down for maintenance;");
	drop();

	/* while idle with nothing pending: only lost_cb */
	p = start_ready("");
	fake_close(p);
	FAKE_WAIT(&srv, lost.calls == 1);
	ck_assert_int_eq(lost.err.kind, IMAP_ERR_CLOSED);
}
END_TEST

/* ---- IDLE ---- */

START_TEST(test_idle)
{
	struct fake_peer *p = start_ready("IDLE");
	struct res idle = { 0 }, noop = { 0 };

	in_api = true;
	imap_conn_idle(conn, res_done, res_untagged, res_idling, &idle);
	in_api = false;
	fake_expect(p, "A2 IDLE\r\n");
	ck_assert(!imap_conn_idling(conn));
	fake_quiet(p, 30);
	ck_assert_int_eq(idle.idling, 0);
	fake_send(p, "+ idling\r\n");
	FAKE_WAIT(&srv, idle.idling == 1);
	ck_assert(imap_conn_idling(conn));
	fake_send(p, "* 4 EXISTS\r\n* 1 RECENT\r\n");
	FAKE_WAIT(&srv, strstr(idle.untagged, "RECENT") != NULL);
	ck_assert_str_eq(idle.untagged, "4 EXISTS;1 RECENT;");
	in_api = true;
	imap_conn_idle_done(conn);
	in_api = false;
	ck_assert(!imap_conn_idling(conn));
	fake_expect(p, "DONE\r\n");
	/* a second DONE is a no-op */
	imap_conn_idle_done(conn);
	fake_quiet(p, 20);
	fake_send(p, "A2 OK IDLE terminated\r\n");
	FAKE_WAIT(&srv, idle.done == 1);
	ck_assert_int_eq(idle.status, IMAP_STATUS_OK);
	ck_assert_int_eq(idle.idling, 1);

	/* another command ends the IDLE first, and waits for its end */
	memset(&idle, 0, sizeof(idle));
	imap_conn_idle(conn, res_done, res_untagged, res_idling, &idle);
	fake_expect(p, "A3 IDLE\r\n");
	fake_send(p, "+ idling\r\n");
	FAKE_WAIT(&srv, idle.idling == 1);
	send_text("NOOP", &noop);
	fake_expect(p, "DONE\r\n");
	fake_quiet(p, 30);
	fake_send(p, "A3 OK done\r\n");
	fake_expect(p, "A4 NOOP\r\n");
	ck_assert_int_eq(idle.done, 1);
	fake_send(p, "A4 OK\r\n");
	FAKE_WAIT(&srv, noop.done == 1);

	/* DONE asked for before the "+": sent right after it, no idling call */
	memset(&idle, 0, sizeof(idle));
	imap_conn_idle(conn, res_done, res_untagged, res_idling, &idle);
	imap_conn_idle_done(conn);
	fake_expect(p, "A5 IDLE\r\n");
	fake_quiet(p, 20);
	fake_send(p, "+ idling\r\n");
	fake_expect(p, "DONE\r\n");
	fake_send(p, "A5 OK\r\n");
	FAKE_WAIT(&srv, idle.done == 1);
	ck_assert_int_eq(idle.idling, 0);

	/* refused: no DONE, and the queue moves on */
	memset(&idle, 0, sizeof(idle));
	memset(&noop, 0, sizeof(noop));
	imap_conn_idle(conn, res_done, res_untagged, res_idling, &idle);
	send_text("NOOP", &noop);
	fake_expect(p, "A6 IDLE\r\n");
	fake_send(p, "A6 BAD no IDLE here\r\n");
	fake_expect(p, "A7 NOOP\r\n");
	ck_assert_int_eq(idle.status, IMAP_STATUS_BAD);
	ck_assert_int_eq(idle.idling, 0);
	fake_send(p, "A7 OK\r\n");
	FAKE_WAIT(&srv, noop.done == 1);
	ck_assert_int_eq(lost.calls, 0);
}
END_TEST

/* The command time-out does not run while idling. */
START_TEST(test_idle_no_timeout)
{
	struct fake_peer *p;
	struct res idle = { 0 };

	cfg.timeout = 1;
	p = start_ready("IDLE");
	imap_conn_idle(conn, res_done, res_untagged, res_idling, &idle);
	fake_expect(p, "A2 IDLE\r\n");
	fake_send(p, "+ idling\r\n");
	FAKE_WAIT(&srv, idle.idling == 1);
	fake_run_ms(&srv, 1600);
	ck_assert_int_eq(lost.calls, 0);
	ck_assert_int_eq(idle.done, 0);
	/* once DONE is sent, the server must answer in time */
	imap_conn_idle_done(conn);
	fake_expect(p, "DONE\r\n");
	FAKE_WAIT(&srv, idle.done == 1);
	ck_assert_int_eq(idle.kind, IMAP_ERR_TIMEOUT);
}
END_TEST

/* ---- life cycle ---- */

START_TEST(test_no_callback_inside_send)
{
	struct fake_peer *p;
	struct res r[3] = { { 0 } };

	/* never connected */
	conn = imap_conn_new(base, NULL, &cfg, NULL, "t");
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_INIT);
	send_text("NOOP", &r[0]);
	ck_assert_int_eq(r[0].done, 0);
	FAKE_WAIT(&srv, r[0].done == 1);
	ck_assert_int_eq(r[0].kind, IMAP_ERR_CLOSED);
	ck_assert_str_eq(r[0].msg, "t: connection is not open");
	drop();

	/* closed by the server */
	p = start_ready("");
	fake_close(p);
	FAKE_WAIT(&srv, lost.calls == 1);
	send_text("NOOP", &r[1]);
	ck_assert_int_eq(r[1].done, 0);
	FAKE_WAIT(&srv, r[1].done == 1);
	ck_assert_int_eq(r[1].kind, IMAP_ERR_CLOSED);

	/* ready, and the answer already waiting in the socket: still later */
	drop();
	p = start_ready("");
	ck_assert_int_eq(write(bufferevent_getfd(p->bev), "A2 OK\r\n", 7), 7);
	send_text("NOOP", &r[2]);
	ck_assert_int_eq(r[2].done, 0);
	fake_expect(p, "A2 NOOP\r\n");
	FAKE_WAIT(&srv, r[2].done == 1);
	ck_assert_int_eq(r[2].status, IMAP_STATUS_OK);
}
END_TEST

START_TEST(test_close_and_unref)
{
	struct fake_peer *p = start_ready("");
	struct res r = { 0 };

	/* idle: LOGOUT, then close once it is written */
	imap_conn_close(conn);
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_LOGOUT);
	imap_conn_close(conn);          /* twice is harmless */
	fake_expect(p, "A2 LOGOUT\r\n");
	fake_expect_eof(p);
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_CLOSED);
	ck_assert_int_eq(lost.calls, 0);        /* we closed it: not "lost" */
	drop();

	/* with a command pending: it fails now, no LOGOUT */
	p = start_ready("");
	send_text("NOOP", &r);
	fake_expect(p, "A2 NOOP\r\n");
	imap_conn_close(conn);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.kind, IMAP_ERR_CLOSED);
	fake_expect_eof(p);
	drop();

	/* the last unref fails what is pending, without lost_cb; the
	 * connection is freed on the next loop turn (ASan: no leak) */
	memset(&r, 0, sizeof(r));
	p = start_ready("");
	send_text("NOOP", &r);
	fake_expect(p, "A2 NOOP\r\n");
	imap_conn_ref(conn);
	{
		struct imap_conn *extra = conn;

		imap_conn_unref(&extra);
		ck_assert_ptr_null(extra);
		ck_assert_int_eq(r.done, 0);    /* still referenced */
	}
	imap_conn_unref(&conn);
	ck_assert_ptr_null(conn);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.kind, IMAP_ERR_CLOSED);
	ck_assert_int_eq(lost.calls, 0);
	fake_expect_eof(p);
}
END_TEST

/*
 * Fixed bug (imap_conn.c imap_conn_close): during LOGOUT the read callback
 * was NULL but EV_READ stayed on, so whatever the server sent piled up in
 * the input buffer until the LOGOUT was written or the time-out. That
 * lasts while the server does not read: here it refuses an APPEND without
 * reading the rest of its literal, then floods. The input must be thrown
 * away as it comes, and the server closing must still end the connection.
 */
START_TEST(test_logout_discards_input)
{
	static const size_t lit_len = 16 * 1024 * 1024;
	static const size_t flood = 48 * 1024 * 1024;
	static char line[4096];
	struct fake_peer *p = start_ready("LITERAL+");
	struct res r = { 0 };
	struct imap_cmd *cmd;
	struct evbuffer *srv_out;
	uint64_t deadline;
	size_t heap, sent = 0, i;
	int rcvbuf = 16 * 1024;
	char *lit;

	/* the server reads no more, into a small socket buffer */
	ck_assert_int_eq(setsockopt(bufferevent_getfd(p->bev), SOL_SOCKET,
	    SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	bufferevent_disable(p->bev, EV_READ);
	lit = xmalloc(lit_len);
	memset(lit, 'x', lit_len);
	cmd = imap_cmd_new(conn);
	imap_cmd_add(cmd, "APPEND INBOX ");
	imap_cmd_literal(cmd, lit, lit_len);
	free(lit);
	in_api = true;
	imap_cmd_send(cmd, res_done, res_untagged, &r);
	in_api = false;
	fake_send(p, "A2 NO [TOOBIG] message too big\r\n");
	FAKE_WAIT(&srv, r.done == 1);
	ck_assert_int_eq(r.kind, IMAP_ERR_NO);

	/* the LOGOUT waits behind the rest of the literal */
	imap_conn_close(conn);
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_LOGOUT);
	memset(line, 'y', sizeof(line));
	memcpy(line, "* OK ", 5);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	fake_run_ms(&srv, 20);
	heap = HEAP_BYTES();
	srv_out = bufferevent_get_output(p->bev);
	deadline = monotonic_ms() + FAKE_WAIT_MS;
	while (sent < flood) {
		ck_assert_msg(monotonic_ms() < deadline, "flood stalled at %zu", sent);
		if (evbuffer_get_length(srv_out) < 256 * 1024) {
			for (i = 0; i < 64; i++)
				fake_sendn(p, line, sizeof(line));
			sent += 64 * sizeof(line);
		}
		event_base_loop(base, EVLOOP_ONCE);
	}
	FAKE_WAIT(&srv, evbuffer_get_length(srv_out) == 0);
	ck_assert_int_eq(imap_conn_state(conn), IMAP_CONN_LOGOUT);
	ck_assert_msg(HEAP_BYTES() < heap + 4 * 1024 * 1024, "heap grew by %zu "
	    "bytes while %zu were sent", HEAP_BYTES() - heap, sent);
	/* EOF (here a reset: unread data) still ends it, and not as "lost" */
	fake_close(p);
	FAKE_WAIT(&srv, imap_conn_state(conn) == IMAP_CONN_CLOSED);
	ck_assert_int_eq(lost.calls, 0);
}
END_TEST

START_TEST(test_selected_and_errors)
{
	bool ro = false;

	conn = imap_conn_new(base, NULL, &cfg, NULL, "t");
	ck_assert_ptr_null(imap_conn_selected(conn, &ro));
	imap_conn_set_selected(conn, "Archive", true);
	ck_assert_str_eq(imap_conn_selected(conn, &ro), "Archive");
	ck_assert(ro);
	imap_conn_set_selected(conn, "INBOX", false);
	ck_assert_str_eq(imap_conn_selected(conn, &ro), "INBOX");
	ck_assert(!ro);
	imap_conn_set_selected(conn, NULL, false);
	ck_assert_ptr_null(imap_conn_selected(conn, NULL));
	/* an empty capability list before connecting */
	ck_assert_ptr_null(imap_conn_caps(conn)[0]);

	ck_assert_str_eq(imap_err_name(IMAP_ERR_NONE), "none");
	ck_assert_str_eq(imap_err_name(IMAP_ERR_TIMEOUT), "timeout");
	ck_assert_str_eq(imap_err_name((enum imap_err)42), "unknown");
	ck_assert(!imap_err_is_conn(IMAP_ERR_NONE));
	ck_assert(!imap_err_is_conn(IMAP_ERR_NO));
	ck_assert(!imap_err_is_conn(IMAP_ERR_BAD));
	ck_assert(imap_err_is_conn(IMAP_ERR_CLOSED));
	ck_assert(imap_err_is_conn(IMAP_ERR_AUTH));
	ck_assert_str_eq(imap_conn_state_name(IMAP_CONN_CAPABILITY_AUTH), "capability-auth");
	imap_error_set(NULL, IMAP_ERR_NO, "ignored");
}
END_TEST

/*
 * Fixed bug (imap_conn.c imap_conn_connect): the header promises that ready_cb
 * is called "from the event loop", and the code says "report from the
 * loop, as promised", but a failure found inside imap_conn_connect() calls
 * conn_fail() at once, so ready_cb runs inside imap_conn_connect(): with
 * secure = true and no SSL_CTX, and whenever libevent reports the connect
 * failure synchronously (a numeric address, or a name from /etc/hosts,
 * that connect(2) refuses at once: ENETUNREACH for 255.255.255.255 or an
 * IPv6 address without a route, EMFILE, EPERM from a local firewall).
 * imap_pool depends on the promise: see test_imap_pool.c.
 */
START_TEST(test_connect_fails_from_loop)
{
	cfg.secure = true;
	conn = imap_conn_new(base, NULL, &cfg, NULL, "t");
	in_api = true;
	imap_conn_connect(conn, conn_cb, &ready);
	in_api = false;
	ck_assert_int_eq(ready.calls, 0);
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_TLS);
	drop();

	cfg.secure = false;
	cfg.host = (char *)"255.255.255.255";
	conn = imap_conn_new(base, NULL, &cfg, NULL, "t");
	in_api = true;
	imap_conn_connect(conn, conn_cb, &ready);
	in_api = false;
	ck_assert_int_eq(ready.calls, 0);
	FAKE_WAIT(&srv, ready.calls == 1);
	ck_assert_int_eq(ready.err.kind, IMAP_ERR_CONNECT);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("imap_conn");
	TCase *tc = tcase_create("imap_conn");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_greeting_with_caps);
	tcase_add_test(tc, test_greeting_without_caps);
	tcase_add_test(tc, test_preauth);
	tcase_add_test(tc, test_bad_greetings);
	tcase_add_test(tc, test_auth_plain);
	tcase_add_test(tc, test_auth_challenge_loop);
	tcase_add_test(tc, test_auth_refused);
	tcase_add_test(tc, test_starttls_refusals);
	tcase_add_test(tc, test_preauth_before_starttls);
	tcase_add_test(tc, test_pipelining_and_routing);
	tcase_add_test(tc, test_tagged_no_bad);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_unexpected_continuation);
	tcase_add_test(tc, test_unknown_tag);
	tcase_add_test(tc, test_timeout_mid_literal);
	tcase_add_test(tc, test_big_response_memory);
	tcase_add_test(tc, test_timeout_greeting);
	tcase_add_test(tc, test_no_timeout_when_idle);
	tcase_add_test(tc, test_server_closes);
	tcase_add_test(tc, test_idle);
	tcase_add_test(tc, test_idle_no_timeout);
	tcase_add_test(tc, test_no_callback_inside_send);
	tcase_add_test(tc, test_close_and_unref);
	tcase_add_test(tc, test_logout_discards_input);
	tcase_add_test(tc, test_selected_and_errors);
	tcase_add_test(tc, test_connect_fails_from_loop);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
