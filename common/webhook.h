/*
 * webhook: delivers the outbox's events as signed HTTP POSTs (Standard
 * Webhooks), with libcurl's multi interface driven by the daemon's libevent
 * loop (the hiperfifo pattern, without globals).
 *
 * Per (webhook, trigger) queue exactly one request is in flight, strictly
 * in key order; different queues proceed in parallel over one CURLM, which
 * keeps connections alive and reuses them.
 *
 * Outcome of an attempt:
 *   2xx (whatever happens to the rest      the event is removed
 *     of the answer)
 *   408, 429, 5xx, time-out, any transport  the queue waits, then retries
 *     error (connect, DNS, TLS...)          the same event
 *   3xx                                    the same, redirects are never
 *                                          followed; an error is logged
 *                                          once per run of failures
 *   anything else (other 4xx, 1xx)         the event goes to dead letters
 *                                          (see outbox_bury) and the queue
 *                                          goes on with the next one
 * A queued event that cannot be read or holds no "id" goes to dead letters.
 *
 * Back-off: the n-th consecutive failure of a queue waits
 * step = min(2^(n-1) s, cap) plus up to 25 % random jitter (never beyond
 * the cap); once the step reaches the cap the jitter goes below it instead
 * (0.75 cap .. cap), so queues that fail together spread out. Never less
 * than 1 s. A Retry-After (seconds or HTTP-date) replaces this computation,
 * capped the same way. cap = config->webhook_backoff_max seconds (0 means
 * WEBHOOK_BACKOFF_MAX_DEFAULT). A success or a dead letter resets n, and so
 * does a reload that changes the webhook's settings (its waiting queues
 * retry at once).
 *
 * Request: POST url; Content-Type: application/json; User-Agent:
 * imaphook/<version>; webhook-id (the body's "id"); webhook-timestamp (Unix
 * seconds); webhook-signature when the webhook has a secret; the configured
 * extra headers (except ones that would replace Content-Type or a webhook-*
 * header, which are dropped with a warning); no "Expect: 100-continue". No
 * redirects are followed; the webhook's timeout bounds the whole attempt.
 * The response body is discarded but for its first WEBHOOK_REASON_BODY
 * bytes, kept for a dead letter's reason; after a 2xx no more is read.
 *
 * Logs: a warning per failed attempt, an error per dead letter, debug per
 * delivery. URLs (but for the scheme, host and port a 3xx points to),
 * secrets and bodies are never logged.
 */
#ifndef IMAPHOOK_WEBHOOK_H
#define IMAPHOOK_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "outbox.h"

#define WEBHOOK_BACKOFF_MAX_DEFAULT 300
#define WEBHOOK_TIMEOUT_DEFAULT 10
#define WEBHOOK_REASON_BODY 200

struct webhook_sender;

struct webhook_stats {
	uint64_t delivered;     /* 2xx answers */
	uint64_t retried;       /* failed attempts whose event stays queued */
	uint64_t dead;          /* events moved to dead letters */
	size_t outbox_depth;    /* deliverable events queued for this webhook */
	size_t in_flight;       /* requests in flight now */
	bool configured;        /* false: removed from the config, queue kept */
};

/*
 * Creates a sender on base for the events of ob (which must outlive it),
 * applies config (see webhook_sender_set_config) and starts delivering what
 * is already queued. Returns NULL only when libcurl cannot be initialised
 * (logged). Free with webhook_sender_free().
 */
struct webhook_sender *webhook_sender_new(struct event_base *base,
    struct outbox *ob, const struct config *config);
/*
 * Applies the webhooks and webhook_backoff_max of config. Everything needed
 * is copied: config may be freed afterwards. Requests in flight finish with
 * the settings they started with. The queues of a webhook whose url,
 * secret, headers or timeout changed forget their failures and retry at
 * once. Queues of a webhook no longer configured
 * stay on disk and are not delivered (logged once per webhook); the same
 * webhook configured again resumes them.
 */
void webhook_sender_set_config(struct webhook_sender *ws, const struct config *config);
/*
 * Once mode (imaphookd --once): a failed attempt is not retried, its queue
 * stops with the event left on disk. Permanent failures still go to dead
 * letters and the queue goes on.
 */
void webhook_sender_set_once(struct webhook_sender *ws, bool once);
/* Starts an attempt on every queue that is ready (call after outbox_commit). */
void webhook_sender_kick(struct webhook_sender *ws);
/*
 * Calls cb(arg) once, from the event loop (never from within this call),
 * when no request is in flight and, in once mode, no queue has deliverable
 * events left. In normal mode no new attempt starts after this call and
 * pending retries are cancelled (their events stay queued). cb may free the
 * sender. A second call replaces the callback.
 */
void webhook_sender_drain(struct webhook_sender *ws, void (*cb)(void *arg), void *arg);
/*
 * Counters of webhook. Returns false when the sender knows nothing of that
 * name (neither configured nor queued).
 */
bool webhook_sender_stats(const struct webhook_sender *ws, const char *webhook,
    struct webhook_stats *st_r);
/* The webhooks the sender knows (configured or with queues), for /metrics:
 * a count and the name of the i-th (owned by the sender). */
size_t webhook_sender_webhook_count(const struct webhook_sender *ws);
const char *webhook_sender_webhook_name(const struct webhook_sender *ws, size_t i);
/* Aborts requests in flight (their events stay queued) and frees. */
void webhook_sender_free(struct webhook_sender **ws);

/*
 * The Standard Webhooks signature header value "v1,<base64 HMAC-SHA256>"
 * over "<id>.<timestamp>.<body>" with key[0..keylen). Returns a malloc'd
 * string, or NULL when OpenSSL fails.
 */
char *webhook_signature(const unsigned char *key, size_t keylen, const char *id,
    const char *timestamp, const char *body, size_t len);

#endif
