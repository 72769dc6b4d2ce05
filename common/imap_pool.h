/*
 * imap_pool: up to max_connections authenticated connections per configured
 * account, leased to one user at a time and returned. Connections that fail
 * to open put the pool into capped exponential back-off with jitter (1 s
 * doubling to poll_backoff_max, or to auth_backoff_max after an
 * authentication failure, so a wrong password does not lock the account).
 */
#ifndef IMAPHOOK_IMAP_POOL_H
#define IMAPHOOK_IMAP_POOL_H

#include "imap_conn.h"

struct imap_pool;
struct imap_lease;

/* conn is a ready connection now leased to the caller (return it with
 * imap_pool_release), or NULL with err saying why none could be had. */
typedef void imap_lease_cb(struct imap_conn *conn, const struct imap_error *err, void *arg);

struct imap_pool_stats {
	unsigned open;          /* ready connections (busy + idle) */
	unsigned busy;
	unsigned connecting;
	unsigned waiting;       /* leases not yet served */
	unsigned failures;      /* consecutive failed connection attempts */
	const char *state;      /* "connected", "connecting", "idle", "backoff" */
	const char *last_error; /* of the last failed attempt, or NULL */
};

/* cfg must outlive the pool. tls (may be NULL: a context of its own)
 * shares TLS contexts between pools. Returns NULL with err set if the TLS
 * context cannot be built (bad ca_file...). */
struct imap_pool *imap_pool_new(struct event_base *base, struct evdns_base *dns,
    const struct cfg_connection *cfg, struct imap_tls_cache *tls, unsigned backoff_max,
    unsigned auth_backoff_max, struct imap_error *err);
/* New caps of the back-off (seconds; a reload), for the next failure on. */
void imap_pool_set_backoff(struct imap_pool *pool, unsigned backoff_max,
    unsigned auth_backoff_max);
/* Closes every connection (LOGOUT for idle ones); pending leases fail. */
void imap_pool_free(struct imap_pool **pool);

/* Asks for a connection; cb is called later from the event loop, exactly
 * once unless the lease is cancelled first. */
struct imap_lease *imap_pool_lease(struct imap_pool *pool, imap_lease_cb *cb, void *arg);
/* Withdraws a lease that has not been served yet; NULLs *lease. */
void imap_pool_cancel(struct imap_lease **lease);
/* Returns a leased connection. A connection that is not ready, or when
 * reusable is false, is closed instead of kept. */
void imap_pool_release(struct imap_pool *pool, struct imap_conn *conn, bool reusable);

/* Asks to hear (once) when the leased conn dies while it is held: for a
 * holder that may have no command pending (a NOTIFY watcher). Cleared when
 * the connection is released. */
void imap_pool_watch(struct imap_pool *pool, struct imap_conn *conn, imap_conn_cb *lost_cb,
    void *arg);

void imap_pool_stats(const struct imap_pool *pool, struct imap_pool_stats *st_r);
const struct cfg_connection *imap_pool_config(const struct imap_pool *pool);

/* An evdns base that reads /etc/resolv.conf and /etc/hosts and does not
 * keep the event loop alive while no lookup is running. NULL on failure. */
struct evdns_base *imap_dns_new(struct event_base *base);

/* Runs base until only its own bookkeeping is left (LOGOUTs written,
 * deferred frees done), at most ms milliseconds. For the end of a program,
 * after its pools are freed. */
void imap_loop_finish(struct event_base *base, unsigned ms);

/* The back-off before attempt n+1 after n consecutive failures: 1 s
 * doubling, capped, with jitter in [0.8, 1.2) of the step (never above the
 * cap). In milliseconds. */
uint64_t backoff_delay_ms(unsigned failures, unsigned cap_seconds);

#endif
