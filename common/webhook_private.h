/*
 * webhook_private: what webhook.c (targets, queues, back-off, dead
 * letters, drain, the public API) and webhook_http.c (building and signing
 * requests, the libcurl-multi/libevent glue) share. Nothing else includes
 * this.
 */
#ifndef IMAPHOOK_WEBHOOK_PRIVATE_H
#define IMAPHOOK_WEBHOOK_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "webhook.h"

/* A webhook as configured (copied), with its counters. Never freed before
 * the sender: queues point at it. */
struct wh_target {
	char *name;
	char *url;
	unsigned char *secret;
	size_t secret_len;
	char **headers;         /* extra headers, NULL-terminated */
	unsigned timeout;       /* seconds */
	bool configured;
	bool warned;            /* "not configured" logged */
	bool changed;           /* by the last webhook_sender_set_config */
	uint64_t delivered;
	uint64_t retried;
	uint64_t dead;
};

enum wq_state {
	WQ_IDLE,                /* nothing in flight, no timer */
	WQ_INFLIGHT,
	WQ_WAITING,             /* back-off timer pending */
	WQ_STOPPED,             /* once mode: failed, stays stopped */
};

struct attempt;

/* Delivery state of one outbox queue. */
struct wh_queue {
	struct webhook_sender *ws;
	struct outbox_queue *q;
	struct wh_target *target;
	enum wq_state state;
	unsigned failures;      /* consecutive */
	bool redirect_logged;   /* the 3xx error logged in this run of failures */
	struct event *retry_ev;
	struct attempt *attempt;
	CURL *easy;             /* the last request's handle, for the next */
};

/* One request in flight. */
struct attempt {
	struct wh_queue *wq;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	size_t len;
	uint64_t key;
	char *id;
	uint64_t started_ms;
	char errbuf[CURL_ERROR_SIZE];
	char resp[WEBHOOK_REASON_BODY + 1];
	size_t resp_len;
};

/* A socket curl asked us to watch. */
struct sock {
	struct webhook_sender *ws;
	curl_socket_t fd;
	struct event *ev;
	struct sock *prev;
	struct sock *next;
};

struct webhook_sender {
	struct event_base *base;
	struct outbox *ob;
	CURLM *multi;
	struct event *timer_ev;         /* curl's timeout */
	struct event *drain_ev;         /* deferred drain callback */
	struct wh_target **targets;
	size_t ntargets;
	struct wh_queue **queues;       /* index i = outbox queue i */
	size_t nqueues;
	struct sock *socks;
	unsigned backoff_max;           /* seconds */
	size_t inflight;
	bool once;
	bool draining;
	bool drain_pending;             /* drain_ev is active */
	void (*drain_cb)(void *);
	void *drain_arg;
};

/* webhook.c */
/* A finished request (res from curl): counts it, removes, retries or
 * buries its event, frees a and starts the queue's next event. */
void webhook_attempt_done(struct webhook_sender *ws, struct attempt *a, CURLcode res);
/* Schedules the drain callback when the sender has drained. */
void webhook_check_drain(struct webhook_sender *ws);

/* webhook_http.c */
/* Starts the request of event key; takes body and id. Returns 0, or -1
 * (everything freed). */
int webhook_http_attempt_start(struct wh_queue *wq, uint64_t key, char *body, size_t len,
    char *id);
void webhook_http_attempt_free(struct attempt *a);
/* Creates ws->multi and ws->timer_ev and hands curl our socket and timer
 * callbacks. Returns 0, or -1 (what was made is left for
 * webhook_http_free). */
int webhook_http_init(struct webhook_sender *ws);
/* Frees ws->multi, the watched sockets and ws->timer_ev (after every easy
 * handle has been removed). */
void webhook_http_free(struct webhook_sender *ws);

#endif
