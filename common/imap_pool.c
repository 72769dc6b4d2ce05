/* imap_pool: see imap_pool.h */
#include "imap_pool.h"

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "log.h"
#include "oauth2.h"
#include "util.h"

/* Idle connections older than this are closed rather than reused: servers
 * may log out an idle client after 30 minutes (RFC 3501 5.4). */
#define POOL_IDLE_MAX_MS (25u * 60u * 1000u)

struct pool_entry {
	TAILQ_ENTRY(pool_entry) entry;
	struct imap_pool *pool;
	struct imap_conn *conn;
	bool ready;
	bool busy;
	imap_conn_cb *holder_lost;      /* imap_pool_watch */
	void *holder_arg;
	bool dying;                     /* entry_free in progress */
	unsigned token_gen;             /* pool->token_gen when it connected */
};
TAILQ_HEAD(pool_entry_list, pool_entry);

struct imap_lease {
	TAILQ_ENTRY(imap_lease) entry;
	struct imap_pool *pool;
	imap_lease_cb *cb;
	void *arg;
};
TAILQ_HEAD(imap_lease_list, imap_lease);

struct imap_pool {
	struct event_base *base;
	struct evdns_base *dns;
	const struct cfg_connection *cfg;
	SSL_CTX *ssl_ctx;
	unsigned backoff_max, auth_backoff_max;
	struct pool_entry_list conns;
	struct imap_lease_list waiting;
	struct event *run_ev;   /* deferred pool_run; the end of a back-off */
	unsigned seq;           /* for connection names */
	unsigned failures;
	uint64_t retry_at;      /* monotonic ms; no new attempt before */
	struct imap_error last_err;
	bool have_err;
	/* auth = xoauth2 */
	char *token;
	uint64_t token_expires;         /* monotonic ms; 0: not said */
	bool token_fresh;               /* fetched, not yet used to connect */
	struct oauth2_fetch *fetch;
	bool token_rejected;            /* the server refused the token once */
	unsigned token_gen;             /* changes whenever token does */
};

/* A cached token is used until 60 s before the command said it expires;
 * a token just fetched once in any case (one that lives less than that
 * would otherwise run the command again and again). */
#define TOKEN_MARGIN_MS 60000u

static void pool_schedule(struct imap_pool *);
static void pool_attempt_failed(struct imap_pool *, const struct imap_error *);

static void
pool_forget_token(struct imap_pool *pool)
{
	if (pool->token != NULL) {
		explicit_bzero(pool->token, strlen(pool->token));
		free(pool->token);
		pool->token = NULL;
	}
	pool->token_expires = 0;
	pool->token_gen++;
}

static bool
pool_token_valid(const struct imap_pool *pool)
{
	return pool->token != NULL && (pool->token_fresh || pool->token_expires == 0 ||
	    monotonic_ms() + TOKEN_MARGIN_MS < pool->token_expires);
}

static void
pool_token_cb(const char *token, uint64_t expires_in, const char *error, void *arg)
{
	struct imap_pool *pool = arg;
	struct imap_error err;

	pool->fetch = NULL;
	if (token == NULL) {
		imap_error_set(&err, IMAP_ERR_AUTH, "%s: %s", pool->cfg->name, error);
		pool_attempt_failed(pool, &err);
		return;
	}
	pool_forget_token(pool);
	pool->token = xstrdup(token);
	pool->token_expires = expires_in > 0 ? monotonic_ms() + expires_in * 1000u : 0;
	pool->token_fresh = true;
	log_debug("%s: new OAuth2 token%s", pool->cfg->name,
	    expires_in > 0 ? " with an expiry" : "");
	pool_schedule(pool);
}

/* auth = xoauth2: true when a usable token is at hand; otherwise starts
 * the token command (once) and the pool runs again when it is done. */
static bool
pool_have_token(struct imap_pool *pool)
{
	struct imap_error err;
	char *error = NULL;

	if (pool->cfg->auth != CFG_AUTH_XOAUTH2 || pool_token_valid(pool))
		return true;
	if (pool->fetch != NULL)
		return false;
	pool->fetch = oauth2_fetch_start(pool->base, pool->cfg->oauth2_token_command,
	    pool->cfg->timeout, pool->cfg->name, pool_token_cb, pool, &error);
	if (pool->fetch == NULL) {
		imap_error_set(&err, IMAP_ERR_AUTH, "%s: %s", pool->cfg->name, error);
		free(error);
		pool_attempt_failed(pool, &err);
	}
	return false;
}

uint64_t
backoff_delay_ms(unsigned failures, unsigned cap_seconds)
{
	uint64_t step = 1000, cap = (uint64_t)cap_seconds * 1000u, d;
	unsigned i, r = 0;

	for (i = 1; i < failures && step < cap; i++)
		step *= 2;
	if (step > cap)
		step = cap;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned)random();
	d = step * (800u + r % 400u) / 1000u;
	return d > cap ? cap : d;
}

static void
finish_guard_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	*(bool *)arg = true;
}

void
imap_loop_finish(struct event_base *base, unsigned ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	bool expired = false;
	struct event *guard = evtimer_new(base, finish_guard_cb, &expired);

	evtimer_add(guard, &tv);
	/* more than the guard itself: a LOGOUT being written, a deferred
	 * free, a connection timing out */
	while (!expired && event_base_get_num_events(base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) > 1)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	event_base_loop(base, EVLOOP_NONBLOCK);
}

struct evdns_base *
imap_dns_new(struct event_base *base)
{
	struct evdns_base *dns;

	/* libevent 2.1 applies DISABLE_WHEN_INACTIVE only to name servers
	 * added after it: so add them afterwards */
	dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (dns == NULL)
		return NULL;
	if (evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, "/etc/resolv.conf") != 0)
		log_debug("cannot read /etc/resolv.conf; using defaults");
	return dns;
}

struct imap_pool *
imap_pool_new(struct event_base *base, struct evdns_base *dns,
    const struct cfg_connection *cfg, struct imap_tls_cache *tls, unsigned backoff_max,
    unsigned auth_backoff_max, struct imap_error *err)
{
	struct imap_pool *pool;
	SSL_CTX *ctx = NULL;

	if (cfg->secure || cfg->starttls) {
		ctx = tls != NULL ? imap_tls_cache_get(tls, cfg, err) : imap_tls_ctx_new(cfg, err);
		if (ctx == NULL)
			return NULL;
	}
	pool = xcalloc(1, sizeof(*pool));
	pool->base = base;
	pool->dns = dns;
	pool->cfg = cfg;
	pool->ssl_ctx = ctx;
	pool->backoff_max = backoff_max;
	pool->auth_backoff_max = auth_backoff_max;
	TAILQ_INIT(&pool->conns);
	TAILQ_INIT(&pool->waiting);
	return pool;
}

static void
entry_free(struct pool_entry *e)
{
	/* closing a connection that is still opening reports to
	 * pool_ready_cb: it must not free the entry a second time */
	e->dying = true;
	TAILQ_REMOVE(&e->pool->conns, e, entry);
	imap_conn_set_lost_cb(e->conn, NULL, NULL);
	imap_conn_close(e->conn);
	imap_conn_unref(&e->conn);
	free(e);
}

static void
pool_fail_waiting(struct imap_pool *pool, const struct imap_error *err)
{
	struct imap_lease *l;
	unsigned n = 0;

	/* callbacks may lease again: those wait for the next round */
	TAILQ_FOREACH(l, &pool->waiting, entry)
		n++;
	while (n-- > 0 && (l = TAILQ_FIRST(&pool->waiting)) != NULL) {
		TAILQ_REMOVE(&pool->waiting, l, entry);
		l->cb(NULL, err, l->arg);
		free(l);
	}
}

void
imap_pool_free(struct imap_pool **poolp)
{
	struct imap_pool *pool = *poolp;
	struct imap_error err;

	*poolp = NULL;
	if (pool == NULL)
		return;
	imap_error_set(&err, IMAP_ERR_CLOSED, "%s: shutting down", pool->cfg->name);
	pool_fail_waiting(pool, &err);
	while (!TAILQ_EMPTY(&pool->conns))
		entry_free(TAILQ_FIRST(&pool->conns));
	if (pool->run_ev != NULL)
		event_free(pool->run_ev);
	if (pool->ssl_ctx != NULL)
		SSL_CTX_free(pool->ssl_ctx);
	oauth2_fetch_cancel(&pool->fetch);
	pool_forget_token(pool);
	free(pool);
}

static void
pool_lost_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct pool_entry *e = arg;
	struct imap_pool *pool = e->pool;

	if (e->dying)
		return;
	if (!e->busy)
		log_debug("%s: idle connection lost: %s", pool->cfg->name, err->msg);
	else
		log_info("%s: connection lost: %s", pool->cfg->name, err->msg);
	e->ready = false;
	if (!e->busy) {
		entry_free(e);
		pool_schedule(pool);
	} else if (e->holder_lost != NULL) {
		imap_conn_cb *cb = e->holder_lost;

		e->holder_lost = NULL;
		cb(conn, err, e->holder_arg);
	}
	/* a busy one is dropped when its user releases it */
}

void
imap_pool_watch(struct imap_pool *pool, struct imap_conn *conn, imap_conn_cb *lost_cb,
    void *arg)
{
	struct pool_entry *e;

	TAILQ_FOREACH(e, &pool->conns, entry) {
		if (e->conn == conn) {
			e->holder_lost = lost_cb;
			e->holder_arg = arg;
		}
	}
}

static void
pool_ready_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct pool_entry *e = arg;
	struct imap_pool *pool = e->pool;
	bool stale_token = e->token_gen != pool->token_gen;

	if (e->dying)
		return;
	if (err == NULL) {
		e->ready = true;
		pool->failures = 0;
		pool->have_err = false;
		pool->token_rejected = false;
		imap_conn_set_lost_cb(conn, pool_lost_cb, e);
		log_debug("%s: connected (%s)", imap_conn_name(conn),
		    imap_conn_tls_version(conn) != NULL ? imap_conn_tls_version(conn) : "plain");
		pool_schedule(pool);
		return;
	}
	entry_free(e);
	if (err->kind == IMAP_ERR_AUTH && pool->cfg->auth == CFG_AUTH_XOAUTH2 &&
	    stale_token) {
		/* refused a token already replaced (another connection's
		 * refusal of it came first): it says nothing of the new one */
		log_debug("%s: the server refused a replaced OAuth2 token",
		    pool->cfg->name);
		pool_schedule(pool);
		return;
	}
	if (err->kind == IMAP_ERR_AUTH && pool->cfg->auth == CFG_AUTH_XOAUTH2 &&
	    pool->token != NULL && !pool->token_rejected) {
		/* a token may expire early: fetch a new one and try once more */
		log_info("%s: the server refused the OAuth2 token; fetching a new one",
		    pool->cfg->name);
		pool->token_rejected = true;
		pool_forget_token(pool);
		pool_schedule(pool);
		return;
	}
	pool->token_rejected = false;
	pool_attempt_failed(pool, err);
}

/* A connection attempt (or token fetch) failed: back off, and tell the
 * waiters when nobody else can serve them. */
static void
pool_attempt_failed(struct imap_pool *pool, const struct imap_error *err)
{
	unsigned cap;

	pool->failures++;
	pool->last_err = *err;
	pool->have_err = true;
	cap = err->kind == IMAP_ERR_AUTH ? pool->auth_backoff_max : pool->backoff_max;
	pool->retry_at = monotonic_ms() + backoff_delay_ms(pool->failures, cap);
	if (TAILQ_EMPTY(&pool->conns))
		pool_fail_waiting(pool, err);
	else
		pool_schedule(pool);
}

static void
pool_connect(struct imap_pool *pool)
{
	struct pool_entry *e = xcalloc(1, sizeof(*e));
	char name[256];

	snprintf(name, sizeof(name), "%s#%u", pool->cfg->name, ++pool->seq);
	e->pool = pool;
	e->conn = imap_conn_new(pool->base, pool->dns, pool->cfg, pool->ssl_ctx, name);
	if (pool->token != NULL)
		imap_conn_set_oauth2_token(e->conn, pool->token);
	e->token_gen = pool->token_gen;
	pool->token_fresh = false;
	TAILQ_INSERT_TAIL(&pool->conns, e, entry);
	imap_conn_connect(e->conn, pool_ready_cb, e);
}

static void
pool_run(struct imap_pool *pool)
{
	struct pool_entry *e, *next;
	struct imap_lease *l;
	unsigned total = 0, connecting = 0;
	uint64_t now = monotonic_ms();

	/* drop idle connections the server may have forgotten */
	for (e = TAILQ_FIRST(&pool->conns); e != NULL; e = next) {
		next = TAILQ_NEXT(e, entry);
		if (e->ready && !e->busy &&
		    now - imap_conn_last_used(e->conn) > POOL_IDLE_MAX_MS)
			entry_free(e);
	}
	/* hand idle connections to the oldest waiters; a callback may change
	 * the lists, so look again from the start each time */
	while ((l = TAILQ_FIRST(&pool->waiting)) != NULL) {
		TAILQ_FOREACH(e, &pool->conns, entry)
			if (e->ready && !e->busy)
				break;
		if (e == NULL)
			break;
		TAILQ_REMOVE(&pool->waiting, l, entry);
		e->busy = true;
		l->cb(e->conn, NULL, l->arg);
		free(l);
	}
	TAILQ_FOREACH(e, &pool->conns, entry) {
		total++;
		if (!e->ready)
			connecting++;
	}
	l = TAILQ_FIRST(&pool->waiting);
	if (l == NULL)
		return;
	if (pool->failures > 0 && now < pool->retry_at) {
		if (total == 0) {
			pool_fail_waiting(pool, &pool->last_err);
		} else {
			/* the others are busy (a push watcher may hold one
			 * for hours): try again when the back-off ends */
			struct timeval tv;
			uint64_t ms = pool->retry_at - now;

			tv.tv_sec = (time_t)(ms / 1000u);
			tv.tv_usec = (suseconds_t)(ms % 1000u) * 1000;
			evtimer_add(pool->run_ev, &tv);
		}
		return;
	}
	/* open more while there are more waiters than connections coming */
	TAILQ_FOREACH(l, &pool->waiting, entry) {
		if (connecting > 0) {
			connecting--;
			continue;
		}
		if (total >= pool->cfg->max_connections)
			break;
		if (!pool_have_token(pool))
			break;
		pool_connect(pool);
		total++;
	}
}

static void
pool_run_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	pool_run(arg);
}

static void
pool_schedule(struct imap_pool *pool)
{
	if (pool->run_ev == NULL)
		pool->run_ev = evtimer_new(pool->base, pool_run_cb, pool);
	event_active(pool->run_ev, EV_TIMEOUT, 0);
}

void
imap_pool_set_backoff(struct imap_pool *pool, unsigned backoff_max, unsigned auth_backoff_max)
{
	pool->backoff_max = backoff_max;
	pool->auth_backoff_max = auth_backoff_max;
}

struct imap_lease *
imap_pool_lease(struct imap_pool *pool, imap_lease_cb *cb, void *arg)
{
	struct imap_lease *l = xcalloc(1, sizeof(*l));

	l->pool = pool;
	l->cb = cb;
	l->arg = arg;
	TAILQ_INSERT_TAIL(&pool->waiting, l, entry);
	pool_schedule(pool);
	return l;
}

void
imap_pool_cancel(struct imap_lease **leasep)
{
	struct imap_lease *l = *leasep;

	*leasep = NULL;
	if (l == NULL)
		return;
	TAILQ_REMOVE(&l->pool->waiting, l, entry);
	free(l);
}

void
imap_pool_release(struct imap_pool *pool, struct imap_conn *conn, bool reusable)
{
	struct pool_entry *e;

	TAILQ_FOREACH(e, &pool->conns, entry)
		if (e->conn == conn)
			break;
	if (e == NULL)
		return;
	e->busy = false;
	e->holder_lost = NULL;
	if (!reusable || !e->ready || !imap_conn_is_ready(conn))
		entry_free(e);
	pool_schedule(pool);
}

void
imap_pool_stats(const struct imap_pool *pool, struct imap_pool_stats *st_r)
{
	const struct pool_entry *e;
	const struct imap_lease *l;

	memset(st_r, 0, sizeof(*st_r));
	TAILQ_FOREACH(e, &pool->conns, entry) {
		if (e->ready)
			st_r->open++;
		else
			st_r->connecting++;
		if (e->busy)
			st_r->busy++;
	}
	TAILQ_FOREACH(l, &pool->waiting, entry)
		st_r->waiting++;
	st_r->failures = pool->failures;
	st_r->last_error = pool->have_err ? pool->last_err.msg : NULL;
	if (st_r->open > 0)
		st_r->state = "connected";
	else if (st_r->connecting > 0)
		st_r->state = "connecting";
	else if (pool->failures > 0)
		st_r->state = "backoff";
	else
		st_r->state = "idle";
}

const struct cfg_connection *
imap_pool_config(const struct imap_pool *pool)
{
	return pool->cfg;
}
