/*
 * daemon: what imaphookd's parts share. One event loop; per configured
 * connection one IMAP pool; per trigger one poller; one outbox and one
 * webhook sender; optionally the HTTP API.
 */
#ifndef IMAPHOOKD_DAEMON_H
#define IMAPHOOKD_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "imap_pool.h"
#include "metrics.h"
#include "outbox.h"
#include "webhook.h"

struct trigger;
struct api;
struct push;

/* One IMAP pool per configured connection. */
struct pool_slot {
	char *name;
	struct imap_pool *pool;
	struct cfg_connection *cfg;     /* owned copy: outlives reloads */
	bool keep;                      /* reload bookkeeping */
};

struct daemon {
	struct event_base *base;
	struct evdns_base *dns;
	struct imap_tls_cache *tls;     /* TLS contexts shared between pools */
	struct config *config;
	const char *config_path;
	int lock_fd;
	bool once;
	bool stopping;
	int exit_code;

	struct pool_slot *pools;
	size_t npools;
	struct trigger **triggers;
	size_t ntriggers;

	struct outbox *outbox;
	struct webhook_sender *sender;
	struct api *api;
	struct push *push;              /* watchers of mode = "idle" triggers */
	struct metrics metrics;

	struct event *sig_term, *sig_int, *sig_hup;
	struct event *watchdog;
	struct event *stop_timer;
	struct event *state_sync_ev;    /* one syncfs for many baselines */
	bool state_sync_due;
	unsigned once_pending;          /* --once: triggers still polling */
	time_t started;
};

/* The pool of a connection name, or NULL. */
struct imap_pool *daemon_pool(struct daemon *d, const char *connection);
/* --once: a trigger finished its single poll (ok says how). */
void daemon_once_trigger_done(struct daemon *d, int exit_code);
/* Starts the orderly shutdown (exit code code). */
void daemon_stop(struct daemon *d, int code);
/* A state file was saved with state_save_nosync(): make it durable within
 * DAEMON_STATE_SYNC_MS, together with the others saved meanwhile. */
void daemon_state_sync_later(struct daemon *d);

#define DAEMON_STATE_SYNC_MS 50

#endif
