/*
 * Unit tests for imap_pool: backoff_delay_ms's bounds, and leasing against
 * the scripted server of fake_imap.h: max_connections, FIFO service,
 * release and reuse, failed attempts (the waiters fail, the pool backs
 * off and fails new leases at once without connecting, then tries again),
 * cancel, stats, imap_pool_watch, and freeing a pool with waiters.
 *
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "fake_imap.h"
#include "imap_pool.h"
#include "log.h"
#include "oauth2.h"
#include "tmpdir.h"
#include "util.h"

static struct event_base *base;
static struct fake_srv srv;
static struct cfg_connection cfg;
static struct imap_pool *pool;
static bool in_api;
static int served;              /* lease callbacks so far, for their order */

struct lease_res {
	int calls;
	int order;
	struct imap_conn *conn;
	struct imap_error err;
};

struct watch_res {
	int calls;
	struct imap_error err;
};

static void
setup(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	fake_start(&srv, base);
	fake_cfg(&cfg, &srv);
	pool = NULL;
	in_api = false;
	served = 0;
}

static void
teardown(void)
{
	imap_pool_free(&pool);
	fake_run_ms(&srv, 20);
	fake_stop(&srv);
	event_base_free(base);
}

static void
new_pool(unsigned backoff_max, unsigned auth_backoff_max)
{
	struct imap_error err;

	pool = imap_pool_new(base, NULL, &cfg, NULL, backoff_max, auth_backoff_max, &err);
	ck_assert_ptr_nonnull(pool);
	ck_assert_ptr_eq(imap_pool_config(pool), &cfg);
}

static void
lease_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct lease_res *r = arg;

	ck_assert_msg(!in_api, "lease callback inside an API call");
	ck_assert_int_eq(r->calls, 0);
	ck_assert((conn == NULL) != (err == NULL));
	r->calls++;
	r->order = ++served;
	r->conn = conn;
	if (err != NULL)
		r->err = *err;
	else
		ck_assert(imap_conn_is_ready(conn));
}

static struct imap_lease *
lease(struct lease_res *r)
{
	struct imap_lease *l;

	memset(r, 0, sizeof(*r));
	in_api = true;
	l = imap_pool_lease(pool, lease_cb, r);
	in_api = false;
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(r->calls, 0);
	return l;
}

static void
release(struct imap_conn *conn, bool reusable)
{
	in_api = true;
	imap_pool_release(pool, conn, reusable);
	in_api = false;
}

static void
watch_cb(struct imap_conn *conn ATTR_UNUSED, const struct imap_error *err, void *arg)
{
	struct watch_res *w = arg;

	w->calls++;
	w->err = *err;
}

static struct imap_pool_stats
stats(void)
{
	struct imap_pool_stats st;

	imap_pool_stats(pool, &st);
	return st;
}

/* ---- back-off ---- */

START_TEST(test_backoff_bounds)
{
	static const struct {
		unsigned failures, cap;
		uint64_t step;
	} cases[] = {
		{ 0, 60, 1000 }, { 1, 60, 1000 }, { 2, 60, 2000 }, { 3, 60, 4000 },
		{ 4, 60, 8000 }, { 6, 60, 32000 }, { 7, 60, 60000 }, { 30, 60, 60000 },
		{ 1000, 60, 60000 }, { UINT32_MAX, 900, 900000 }, { 5, 1, 1000 },
		{ 40, UINT32_MAX, (uint64_t)UINT32_MAX * 1000 },
	};
	uint64_t d, lo, hi, min, max;
	size_t i, k;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		uint64_t cap = (uint64_t)cases[i].cap * 1000, step = cases[i].step;

		lo = step * 8 / 10;
		hi = step * 12 / 10;
		min = UINT64_MAX;
		max = 0;
		for (k = 0; k < 2000; k++) {
			d = backoff_delay_ms(cases[i].failures, cases[i].cap);
			ck_assert_msg(d >= lo && d < hi, "failures %u cap %u: %llu not in "
			    "[%llu, %llu)", cases[i].failures, cases[i].cap,
			    (unsigned long long)d, (unsigned long long)lo,
			    (unsigned long long)hi);
			ck_assert_msg(d <= cap, "above the cap: %llu", (unsigned long long)d);
			if (d < min)
				min = d;
			if (d > max)
				max = d;
		}
		/* jitter: spread over the range (below the cap) */
		ck_assert_msg(min < step * 85 / 100, "case %zu: min %llu", i,
		    (unsigned long long)min);
		if (step * 12 / 10 <= cap)
			ck_assert_msg(max > step * 115 / 100, "case %zu: max %llu", i,
			    (unsigned long long)max);
		else
			ck_assert_uint_eq(max, cap);    /* the cap is reached, not passed */
	}
	/* a zero cap: no waiting at all */
	ck_assert_uint_eq(backoff_delay_ms(1, 0), 0);
	ck_assert_uint_eq(backoff_delay_ms(9, 0), 0);
}
END_TEST

/* ---- leasing ---- */

START_TEST(test_stats_fresh)
{
	struct imap_pool_stats st;

	new_pool(60, 900);
	st = stats();
	ck_assert_uint_eq(st.open, 0);
	ck_assert_uint_eq(st.busy, 0);
	ck_assert_uint_eq(st.connecting, 0);
	ck_assert_uint_eq(st.waiting, 0);
	ck_assert_uint_eq(st.failures, 0);
	ck_assert_str_eq(st.state, "idle");
	ck_assert_ptr_null(st.last_error);
	/* no lease: no connection */
	fake_run_ms(&srv, 50);
	ck_assert_uint_eq(srv.npeers, 0);
}
END_TEST

START_TEST(test_max_connections_fifo_reuse)
{
	struct lease_res a, b, c;
	struct fake_peer *p0, *p1;
	struct imap_pool_stats st;
	struct imap_conn *ca;

	new_pool(60, 900);
	lease(&a);
	lease(&b);
	lease(&c);
	p0 = fake_peer(&srv, 0);
	p1 = fake_peer(&srv, 1);
	fake_run_ms(&srv, 100);
	ck_assert_uint_eq(srv.npeers, 2);       /* max_connections = 2 */
	st = stats();
	ck_assert_uint_eq(st.connecting, 2);
	ck_assert_uint_eq(st.waiting, 3);
	ck_assert_str_eq(st.state, "connecting");
	/* the second connection is ready first: it goes to the oldest lease */
	fake_login(p1, "");
	FAKE_WAIT(&srv, a.calls == 1);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_str_eq(imap_conn_name(a.conn), "fake#2");
	fake_login(p0, "");
	FAKE_WAIT(&srv, b.calls == 1);
	ck_assert_str_eq(imap_conn_name(b.conn), "fake#1");
	ck_assert_int_lt(a.order, b.order);
	fake_run_ms(&srv, 50);
	ck_assert_int_eq(c.calls, 0);
	st = stats();
	ck_assert_uint_eq(st.open, 2);
	ck_assert_uint_eq(st.busy, 2);
	ck_assert_uint_eq(st.connecting, 0);
	ck_assert_uint_eq(st.waiting, 1);
	ck_assert_str_eq(st.state, "connected");

	/* a released connection is reused by the next waiter */
	ca = a.conn;
	release(ca, true);
	FAKE_WAIT(&srv, c.calls == 1);
	ck_assert_ptr_eq(c.conn, ca);
	ck_assert_int_lt(b.order, c.order);
	fake_quiet(p1, 20);             /* no LOGOUT, no new log-in */
	ck_assert_uint_eq(srv.npeers, 2);
	/* and it works */
	imap_conn_cmd(c.conn, "NOOP", NULL, NULL, NULL);
	fake_expect(p1, "A2 NOOP\r\n");
	fake_send(p1, "A2 OK\r\n");
	FAKE_WAIT(&srv, imap_conn_pending(c.conn) == 0);
	release(b.conn, true);
	release(c.conn, true);
	st = stats();
	ck_assert_uint_eq(st.open, 2);
	ck_assert_uint_eq(st.busy, 0);
	ck_assert_str_eq(st.state, "connected");
	/* releasing something the pool does not know is ignored */
	release(NULL, true);
	fake_run_ms(&srv, 20);
	ck_assert_uint_eq(stats().open, 2);
}
END_TEST

START_TEST(test_release_not_reusable)
{
	struct lease_res a, b;
	struct fake_peer *p0, *p1;

	new_pool(60, 900);
	lease(&a);
	p0 = fake_peer(&srv, 0);
	fake_login(p0, "");
	FAKE_WAIT(&srv, a.calls == 1);
	release(a.conn, false);
	ck_assert_uint_eq(stats().open, 0);
	FAKE_WAIT(&srv, p0->eof);
	/* the next lease opens a new connection */
	lease(&b);
	p1 = fake_peer(&srv, 1);
	fake_login(p1, "");
	FAKE_WAIT(&srv, b.calls == 1);
	ck_assert_ptr_nonnull(b.conn);
	ck_assert_str_eq(imap_conn_name(b.conn), "fake#2");

	/* a leased connection that died is dropped when it comes back */
	fake_close(p1);
	FAKE_WAIT(&srv, !imap_conn_is_ready(b.conn));
	ck_assert_uint_eq(stats().busy, 1);
	release(b.conn, true);
	ck_assert_uint_eq(stats().open, 0);
	ck_assert_uint_eq(stats().busy, 0);
}
END_TEST

/*
 * Fixed bug (imap_pool.c entry_free + imap_conn.c): "a connection that is not
 * reusable is closed", and imap_pool_free promises "LOGOUT for idle
 * ones", but entry_free() calls imap_conn_close() (which only queues
 * LOGOUT in the bufferevent) and then drops the pool's reference, the
 * last one: imap_conn_unref() closes the transport at once and the queued
 * LOGOUT is never written. The server only sees the connection drop.
 */
START_TEST(test_release_sends_logout)
{
	struct lease_res a;
	struct fake_peer *p0;

	new_pool(60, 900);
	lease(&a);
	p0 = fake_peer(&srv, 0);
	fake_login(p0, "");
	FAKE_WAIT(&srv, a.calls == 1);
	release(a.conn, false);
	fake_expect(p0, "A2 LOGOUT\r\n");
}
END_TEST

START_TEST(test_failed_attempt_backoff)
{
	struct lease_res a, b, c, d;
	struct fake_peer *p0, *p1;
	struct imap_pool_stats st;

	new_pool(1, 900);
	lease(&a);
	lease(&b);
	p0 = fake_peer(&srv, 0);
	fake_run_ms(&srv, 50);
	/* one connection for two waiters? no: two */
	ck_assert_uint_eq(srv.npeers, 2);
	fake_send(p0, "* BYE [UNAVAILABLE] too busy\r\n");
	/* the other attempt is still on its way: nobody fails yet */
	fake_run_ms(&srv, 50);
	ck_assert_int_eq(a.calls + b.calls, 0);
	st = stats();
	ck_assert_uint_eq(st.failures, 1);
	ck_assert_ptr_nonnull(strstr(st.last_error, "too busy"));
	fake_send(&srv.peers[1], "* BYE [UNAVAILABLE] too busy\r\n");
	FAKE_WAIT(&srv, a.calls == 1 && b.calls == 1);
	ck_assert_ptr_null(a.conn);
	ck_assert_int_eq(a.err.kind, IMAP_ERR_CLOSED);
	ck_assert_ptr_nonnull(strstr(a.err.msg, "server refused the connection: too busy"));
	ck_assert_int_lt(a.order, b.order);
	st = stats();
	ck_assert_uint_eq(st.failures, 2);
	ck_assert_str_eq(st.state, "backoff");
	ck_assert_uint_eq(st.open + st.connecting + st.waiting, 0);

	/* during the back-off a lease fails at once, without connecting */
	lease(&c);
	FAKE_WAIT(&srv, c.calls == 1);
	ck_assert_int_eq(c.err.kind, IMAP_ERR_CLOSED);
	ck_assert_str_eq(c.err.msg, a.err.msg);
	fake_run_ms(&srv, 100);
	ck_assert_uint_eq(srv.npeers, 2);
	ck_assert_uint_eq(stats().failures, 2);

	/* afterwards (cap 1 s) it tries again; success resets the failures */
	fake_run_ms(&srv, 1100);
	lease(&d);
	p1 = fake_peer(&srv, 2);
	fake_login(p1, "");
	FAKE_WAIT(&srv, d.calls == 1);
	ck_assert_ptr_nonnull(d.conn);
	st = stats();
	ck_assert_uint_eq(st.failures, 0);
	ck_assert_ptr_null(st.last_error);
	ck_assert_str_eq(st.state, "connected");
}
END_TEST

/*
 * Fixed bug (imap_pool.c pool_run): a connection attempt failed while
 * another connection was open and busy (a push watcher holds one for
 * hours); the waiter stayed queued through the back-off, but nothing ran
 * the pool when the back-off ended: it waited until some other lease or
 * release came, and a trigger's poll stalled for as long.
 */
START_TEST(test_retry_while_another_is_busy)
{
	struct lease_res a, b;
	struct fake_peer *p0;

	new_pool(1, 900);
	lease(&a);
	p0 = fake_peer(&srv, 0);
	fake_login(p0, "");
	FAKE_WAIT(&srv, a.calls == 1);
	lease(&b);                      /* a keeps its connection */
	fake_run_ms(&srv, 50);
	ck_assert_uint_eq(srv.npeers, 2);
	fake_send(&srv.peers[1], "* BYE [UNAVAILABLE] too busy\r\n");
	fake_run_ms(&srv, 50);
	ck_assert_int_eq(b.calls, 0);   /* a's connection may come back */
	ck_assert_uint_eq(stats().failures, 1);
	/* the back-off (at most 1 s) ends: a new attempt, without any call */
	fake_run_ms(&srv, 1300);
	ck_assert_uint_eq(srv.npeers, 3);
	fake_login(fake_peer(&srv, 2), "");
	FAKE_WAIT(&srv, b.calls == 1);
	ck_assert_ptr_nonnull(b.conn);
	ck_assert_ptr_ne(b.conn, a.conn);
	release(a.conn, true);
	release(b.conn, true);
}
END_TEST

/* A reload's new caps apply to a pool that is kept (they were fixed at
 * creation: a lowered poll_backoff_max never reached unchanged
 * connections). */
START_TEST(test_set_backoff)
{
	struct lease_res a, b, c;

	new_pool(600, 900);
	imap_pool_set_backoff(pool, 1, 1);
	lease(&a);
	fake_run_ms(&srv, 50);
	fake_send(fake_peer(&srv, 0), "* BYE [UNAVAILABLE] too busy\r\n");
	FAKE_WAIT(&srv, a.calls == 1);
	fake_run_ms(&srv, 1300);        /* the first back-off: at most 1.2 s */
	lease(&b);
	fake_send(fake_peer(&srv, 1), "* BYE [UNAVAILABLE] too busy\r\n");
	FAKE_WAIT(&srv, b.calls == 1);
	/* the second: 1.6 to 2.4 s with a cap of 600 s, at most 1 s now */
	fake_run_ms(&srv, 1100);
	lease(&c);
	fake_login(fake_peer(&srv, 2), "");
	FAKE_WAIT(&srv, c.calls == 1);
	ck_assert_ptr_nonnull(c.conn);
	release(c.conn, true);
}
END_TEST

START_TEST(test_connect_refused)
{
	struct lease_res a;
	struct fake_srv other;
	uint16_t port;

	/* a port nobody listens on (any more) */
	fake_start(&other, base);
	port = other.port;
	fake_stop(&other);
	cfg.port = port;
	new_pool(60, 900);
	lease(&a);
	FAKE_WAIT(&srv, a.calls == 1);
	ck_assert_int_eq(a.err.kind, IMAP_ERR_CONNECT);
	ck_assert_ptr_nonnull(strstr(a.err.msg, "cannot connect to 127.0.0.1:"));
	ck_assert_str_eq(stats().state, "backoff");
}
END_TEST

/* An authentication failure backs off with auth_backoff_max: after two,
 * the pool waits 1.6 s or more, where backoff_max would allow 1 s. */
START_TEST(test_auth_backoff)
{
	struct lease_res a, b, c;
	struct fake_peer *p;

	cfg.max_connections = 1;
	new_pool(1, 100);
	lease(&a);
	p = fake_peer(&srv, 0);
	fake_send(p, "* OK [CAPABILITY IMAP4rev1] hi\r\n");
	fake_expect(p, "A1 LOGIN me s3cr3t\r\n");
	fake_send(p, "A1 NO [AUTHENTICATIONFAILED] wrong\r\n");
	FAKE_WAIT(&srv, a.calls == 1);
	ck_assert_int_eq(a.err.kind, IMAP_ERR_AUTH);
	ck_assert_uint_eq(stats().failures, 1);
	fake_run_ms(&srv, 1250);
	lease(&b);
	p = fake_peer(&srv, 1);
	fake_send(p, "* OK [CAPABILITY IMAP4rev1] hi\r\n");
	fake_expect(p, "A1 LOGIN me s3cr3t\r\n");
	fake_send(p, "A1 NO [AUTHENTICATIONFAILED] wrong\r\n");
	FAKE_WAIT(&srv, b.calls == 1);
	ck_assert_uint_eq(stats().failures, 2);
	fake_run_ms(&srv, 1100);
	lease(&c);
	FAKE_WAIT(&srv, c.calls == 1);
	ck_assert_int_eq(c.err.kind, IMAP_ERR_AUTH);
	ck_assert_uint_eq(srv.npeers, 2);
}
END_TEST

START_TEST(test_cancel)
{
	struct lease_res a, b;
	struct imap_lease *l;
	struct fake_peer *p0;
	struct imap_pool_stats st;

	new_pool(60, 900);
	l = lease(&a);
	p0 = fake_peer(&srv, 0);
	ck_assert_uint_eq(stats().waiting, 1);
	in_api = true;
	imap_pool_cancel(&l);
	in_api = false;
	ck_assert_ptr_null(l);
	imap_pool_cancel(&l);           /* NULL: harmless */
	ck_assert_uint_eq(stats().waiting, 0);
	/* the connection opened for it is kept, idle */
	fake_login(p0, "");
	FAKE_WAIT(&srv, stats().open == 1);
	fake_run_ms(&srv, 30);
	ck_assert_int_eq(a.calls, 0);
	st = stats();
	ck_assert_uint_eq(st.busy, 0);
	ck_assert_uint_eq(st.waiting, 0);
	/* and serves the next lease without connecting */
	lease(&b);
	FAKE_WAIT(&srv, b.calls == 1);
	ck_assert_ptr_nonnull(b.conn);
	ck_assert_uint_eq(srv.npeers, 1);
	ck_assert_uint_eq(stats().busy, 1);
}
END_TEST

START_TEST(test_watch)
{
	struct lease_res a, b, c, d;
	struct watch_res w = { 0 }, w2 = { 0 };
	struct fake_peer *p0, *p1, *p2;

	new_pool(60, 900);
	lease(&a);
	p0 = fake_peer(&srv, 0);
	fake_login(p0, "");
	FAKE_WAIT(&srv, a.calls == 1);
	imap_pool_watch(pool, a.conn, watch_cb, &w);
	/* the holder has no command pending: the watch is how it hears */
	fake_send(p0, "* BYE [UNAVAILABLE] restarting\r\n");
	fake_close(p0);
	FAKE_WAIT(&srv, w.calls == 1);
	ck_assert_int_eq(w.err.kind, IMAP_ERR_CLOSED);
	ck_assert_msg(strstr(w.err.msg, "restarting") != NULL, "%s", w.err.msg);
	fake_run_ms(&srv, 20);
	ck_assert_int_eq(w.calls, 1);   /* once */
	ck_assert_uint_eq(stats().busy, 1);
	release(a.conn, true);
	ck_assert_uint_eq(stats().open, 0);

	/* released: the watch is cleared, the next holder is not watched */
	lease(&b);
	p1 = fake_peer(&srv, 1);
	fake_login(p1, "");
	FAKE_WAIT(&srv, b.calls == 1);
	imap_pool_watch(pool, b.conn, watch_cb, &w2);
	release(b.conn, true);
	lease(&c);
	FAKE_WAIT(&srv, c.calls == 1);
	ck_assert_ptr_eq(c.conn, b.conn);
	fake_close(p1);
	FAKE_WAIT(&srv, !imap_conn_is_ready(c.conn));
	fake_run_ms(&srv, 20);
	ck_assert_int_eq(w2.calls, 0);
	release(c.conn, true);
	ck_assert_uint_eq(stats().open, 0);

	/* an idle connection that is lost is dropped */
	lease(&d);
	p2 = fake_peer(&srv, 2);
	fake_login(p2, "");
	FAKE_WAIT(&srv, d.calls == 1);
	release(d.conn, true);
	ck_assert_uint_eq(stats().open, 1);
	fake_close(p2);
	FAKE_WAIT(&srv, stats().open == 0);
	ck_assert_str_eq(stats().state, "idle");
	/* watching a connection the pool does not hold is ignored */
	imap_pool_watch(pool, NULL, watch_cb, &w2);
}
END_TEST

START_TEST(test_free_with_waiters)
{
	struct lease_res a, b;
	struct fake_peer *p0;

	new_pool(60, 900);
	cfg.max_connections = 1;
	lease(&a);
	lease(&b);
	p0 = fake_peer(&srv, 0);
	fake_login(p0, "");
	FAKE_WAIT(&srv, a.calls == 1);
	/* b gets the connection a gives back; a asks again and waits */
	release(a.conn, true);
	FAKE_WAIT(&srv, b.calls == 1);
	lease(&a);
	fake_run_ms(&srv, 20);
	ck_assert_uint_eq(stats().waiting, 1);
	/* freeing the pool fails the waiter and closes the connection */
	imap_pool_free(&pool);
	ck_assert_ptr_null(pool);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_ptr_null(a.conn);
	ck_assert_int_eq(a.err.kind, IMAP_ERR_CLOSED);
	ck_assert_str_eq(a.err.msg, "fake: shutting down");
	FAKE_WAIT(&srv, p0->eof);
	imap_pool_free(&pool);          /* NULL: harmless */
}
END_TEST

/*
 * Fixed bug (imap_pool.c pool_run, with imap_conn_connect calling back
 * synchronously, see test_imap_conn.c): when the connect fails inside
 * imap_conn_connect() (an address connect(2) refuses at once: here
 * 255.255.255.255, ENETUNREACH; also an IPv6 literal without a route,
 * EMFILE, EPERM), pool_ready_cb -> pool_attempt_failed ->
 * pool_fail_waiting() frees every waiting lease while pool_run() is
 * iterating over them (TAILQ_FOREACH(l, &pool->waiting, ...) around
 * pool_connect()): heap-use-after-free, reported by ASan. With the
 * daemon's evdns base a numeric host (or one from /etc/hosts) is resolved
 * synchronously too, so this is reachable from a configuration.
 */
START_TEST(test_sync_connect_failure)
{
	struct lease_res a, b;

	cfg.host = (char *)"255.255.255.255";
	new_pool(60, 900);
	lease(&a);
	lease(&b);
	FAKE_WAIT(&srv, a.calls == 1 && b.calls == 1);
	ck_assert_int_eq(a.err.kind, IMAP_ERR_CONNECT);
	ck_assert_int_eq(b.err.kind, IMAP_ERR_CONNECT);
}
END_TEST

/* The server's side of an XOAUTH2 log-in with token: refused (NO) or
 * accepted (OK). The client's next tag is A2. */
static void
fake_xoauth2(struct fake_peer *p, const char *token, bool ok)
{
	char *ir = oauth2_xoauth2_response("me", token);
	char *line = xasprintf("A1 AUTHENTICATE XOAUTH2 %s\r\n", ir);

	fake_send(p, "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n");
	fake_expect(p, line);
	fake_send(p, ok ? "A1 OK [CAPABILITY IMAP4rev1] logged in\r\n" :
	    "A1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
	free(line);
	free(ir);
}

/*
 * Fixed bug (imap_pool.c pool_ready_cb): two connections refused with
 * the same expired token: the first refusal fetched a new token, the
 * second found none (or the new one) and failed every waiter with an
 * authentication error, the new token never tried.
 */
START_TEST(test_token_refused_twice_at_once)
{
	char *script, *runs, *data;
	char *argv[4] = { (char *)"/bin/sh", (char *)"-c", NULL, NULL };
	struct lease_res a, b;
	size_t len;

	tmpdir_make();
	/* tok1, then (a little later) tok2 */
	runs = xasprintf("%s/runs", tmpdir);
	script = xasprintf("n=$(cat %s 2>/dev/null || echo 0); echo $((n + 1)) > %s; "
	    "if [ $n -eq 0 ]; then echo tok1; else sleep 0.3; echo tok2; fi", runs, runs);
	argv[2] = script;
	cfg.auth = CFG_AUTH_XOAUTH2;
	cfg.password = NULL;
	cfg.oauth2_token_command = argv;
	new_pool(60, 900);
	lease(&a);
	lease(&b);
	/* both refuse tok1 */
	fake_xoauth2(fake_peer(&srv, 0), "tok1", false);
	fake_xoauth2(fake_peer(&srv, 1), "tok1", false);
	/* the waiters wait for a new token, tried by both */
	FAKE_WAIT(&srv, srv.npeers > 2 || a.calls + b.calls > 0);
	ck_assert_msg(a.calls + b.calls == 0, "a waiter failed: %s%s", a.err.msg, b.err.msg);
	fake_xoauth2(fake_peer(&srv, 2), "tok2", true);
	fake_xoauth2(fake_peer(&srv, 3), "tok2", true);
	FAKE_WAIT(&srv, a.calls == 1 && b.calls == 1);
	ck_assert_msg(a.conn != NULL, "%s", a.err.msg);
	ck_assert_msg(b.conn != NULL, "%s", b.err.msg);
	ck_assert_uint_eq(stats().failures, 0);
	ck_assert_int_eq(read_file(runs, 64, &data, &len), 0);
	ck_assert_str_eq(data, "2\n");
	free(data);
	free(runs);
	release(a.conn, true);
	release(b.conn, true);
	imap_pool_free(&pool);
	tmpdir_remove();
	free(script);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("imap_pool");
	TCase *tc = tcase_create("imap_pool");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_backoff_bounds);
	tcase_add_test(tc, test_stats_fresh);
	tcase_add_test(tc, test_max_connections_fifo_reuse);
	tcase_add_test(tc, test_retry_while_another_is_busy);
	tcase_add_test(tc, test_set_backoff);
	tcase_add_test(tc, test_release_not_reusable);
	tcase_add_test(tc, test_failed_attempt_backoff);
	tcase_add_test(tc, test_connect_refused);
	tcase_add_test(tc, test_auth_backoff);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_watch);
	tcase_add_test(tc, test_free_with_waiters);
	tcase_add_test(tc, test_release_sends_logout);
	tcase_add_test(tc, test_sync_connect_failure);
	tcase_add_test(tc, test_token_refused_twice_at_once);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
