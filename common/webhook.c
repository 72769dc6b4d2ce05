/*
 * webhook: see webhook.h. This file holds the delivery logic (targets,
 * queues, back-off, dead letters, drain) and the public API; building and
 * signing requests and the libcurl-multi/libevent glue are in
 * webhook_http.c.
 */
#include "webhook_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "log.h"
#include "util.h"

#define EVENT_ID_MAX 256

static void queue_start(struct wh_queue *wq);

/* --- targets (configured webhooks) --- */

static struct wh_target *
target_find(const struct webhook_sender *ws, const char *name)
{
	size_t i;

	for (i = 0; i < ws->ntargets; i++) {
		if (strcmp(ws->targets[i]->name, name) == 0)
			return ws->targets[i];
	}
	return NULL;
}

static struct wh_target *
target_get(struct webhook_sender *ws, const char *name)
{
	struct wh_target *t = target_find(ws, name);

	if (t != NULL)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	ws->targets = xreallocarray(ws->targets, ws->ntargets + 1,
	    sizeof(*ws->targets));
	ws->targets[ws->ntargets++] = t;
	return t;
}

static void
target_clear_settings(struct wh_target *t)
{
	size_t i;

	free(t->url);
	t->url = NULL;
	if (t->secret != NULL)
		OPENSSL_cleanse(t->secret, t->secret_len);
	free(t->secret);
	t->secret = NULL;
	t->secret_len = 0;
	for (i = 0; t->headers != NULL && t->headers[i] != NULL; i++)
		free(t->headers[i]);
	free(t->headers);
	t->headers = NULL;
}

static void
target_free(struct wh_target *t)
{
	target_clear_settings(t);
	free(t->name);
	free(t);
}

/* Whether an extra header may be sent: one line, "Name: value", and not
 * one of the headers this module owns. */
static bool
extra_header_ok(const char *webhook, const char *h)
{
	static const char *const owned[] = {
		"content-type", "content-length", "expect", "webhook-id",
		"webhook-timestamp", "webhook-signature",
	};
	const char *colon = strchr(h, ':');
	size_t i, n;

	if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL) {
		log_warn("webhook %s: ignoring malformed extra header", webhook);
		return false;
	}
	n = (size_t)(colon - h);
	for (i = 0; i < N_ELEMENTS(owned); i++) {
		if (strlen(owned[i]) == n && strncasecmp(h, owned[i], n) == 0) {
			log_warn("webhook %s: ignoring extra header %.*s: "
			    "imaphook sets it", webhook, (int)n, h);
			return false;
		}
	}
	return true;
}

/* Whether t's settings (a configured webhook's) equal n's. */
static bool
target_same(const struct wh_target *t, const struct wh_target *n)
{
	size_t i;

	if (t->url == NULL || strcmp(t->url, n->url) != 0 || t->timeout != n->timeout ||
	    t->secret_len != n->secret_len ||
	    (t->secret_len > 0 && CRYPTO_memcmp(t->secret, n->secret, t->secret_len) != 0))
		return false;
	for (i = 0; t->headers[i] != NULL && n->headers[i] != NULL; i++) {
		if (strcmp(t->headers[i], n->headers[i]) != 0)
			return false;
	}
	return t->headers[i] == NULL && n->headers[i] == NULL;
}

/* Applies cw to t; returns whether its settings changed (or t was not
 * configured). */
static bool
target_configure(struct wh_target *t, const struct cfg_webhook *cw)
{
	struct wh_target n;
	size_t i, k = 0;
	bool changed;

	memset(&n, 0, sizeof(n));
	n.url = xstrdup(cw->url);
	if (cw->secret != NULL) {
		n.secret = xmalloc(cw->secret_len);
		memcpy(n.secret, cw->secret, cw->secret_len);
		n.secret_len = cw->secret_len;
	}
	for (i = 0; cw->headers != NULL && cw->headers[i] != NULL; i++)
		;
	n.headers = xcalloc(i + 1, sizeof(*n.headers));
	for (i = 0; cw->headers != NULL && cw->headers[i] != NULL; i++) {
		if (extra_header_ok(cw->name, cw->headers[i]))
			n.headers[k++] = xstrdup(cw->headers[i]);
	}
	n.timeout = cw->timeout > 0 ? cw->timeout : WEBHOOK_TIMEOUT_DEFAULT;
	changed = !target_same(t, &n);
	target_clear_settings(t);
	t->url = n.url;
	t->secret = n.secret;
	t->secret_len = n.secret_len;
	t->headers = n.headers;
	t->timeout = n.timeout;
	t->configured = true;
	t->warned = false;
	return changed;
}

/* --- queues --- */

/* Creates the wh_queue of every outbox queue that appeared since. */
static void
sync_queues(struct webhook_sender *ws)
{
	size_t n = outbox_queue_count(ws->ob);

	if (n == ws->nqueues)
		return;
	ws->queues = xreallocarray(ws->queues, n, sizeof(*ws->queues));
	for (; ws->nqueues < n; ws->nqueues++) {
		struct wh_queue *wq = xcalloc(1, sizeof(*wq));

		wq->ws = ws;
		wq->q = outbox_queue_get(ws->ob, ws->nqueues);
		wq->target = target_get(ws, outbox_queue_webhook(wq->q));
		wq->state = WQ_IDLE;
		ws->queues[ws->nqueues] = wq;
	}
}

/* Idle, configured, with something to send. */
static bool
queue_ready(const struct wh_queue *wq)
{
	return wq->state == WQ_IDLE && wq->target->configured &&
	    outbox_queue_depth(wq->q) > 0;
}

static bool
queue_may_start(const struct wh_queue *wq)
{
	const struct webhook_sender *ws = wq->ws;

	return queue_ready(wq) && (ws->once || !ws->draining);
}

/* The end of a run of failures (a success, a dead letter, new settings):
 * the next failure waits 1 s again. */
static void
queue_streak_end(struct wh_queue *wq)
{
	wq->failures = 0;
	wq->redirect_logged = false;
}

static void
retry_event_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct wh_queue *wq = arg;

	if (wq->state != WQ_WAITING)
		return;
	wq->state = WQ_IDLE;
	if (queue_may_start(wq))
		queue_start(wq);
	webhook_check_drain(wq->ws);
}

/* Milliseconds to wait after the n-th consecutive failure, see webhook.h. */
static uint64_t
backoff_ms(unsigned n, unsigned cap_s)
{
	uint64_t cap = (uint64_t)(cap_s > 0 ? cap_s : 1) * 1000, step, d;

	step = n >= 20 ? cap : (uint64_t)1000 << (n > 0 ? n - 1 : 0);
	if (step > cap)
		step = cap;
	if (step < cap) {
		d = step + arc4random_uniform((uint32_t)(step / 4) + 1);
		if (d > cap)
			d = cap;
	} else {
		d = cap - arc4random_uniform((uint32_t)(cap / 4) + 1);
	}
	return d < 1000 ? 1000 : d;
}

/*
 * A failed attempt (or an event that could not be started) whose event
 * stays queued: schedules the retry, or stops the queue in once mode.
 */
static void
queue_failed(struct wh_queue *wq, const char *what, const char *why,
    long retry_after)
{
	struct webhook_sender *ws = wq->ws;
	uint64_t delay, cap = (uint64_t)ws->backoff_max * 1000;
	struct timeval tv;

	wq->target->retried++;
	wq->failures++;
	/* no descriptor held while waiting: an outage of many queues must
	 * not run the daemon out of them */
	outbox_queue_close(wq->q);
	if (ws->once) {
		wq->state = WQ_STOPPED;
		log_warn("webhook %s: %s: %s; left queued (once mode)",
		    wq->target->name, what, why);
		return;
	}
	if (ws->draining || !wq->target->configured) {
		wq->state = WQ_IDLE;
		log_warn("webhook %s: %s: %s; left queued", wq->target->name,
		    what, why);
		return;
	}
	if (retry_after > 0) {
		delay = (uint64_t)retry_after * 1000;
		if (delay > cap)
			delay = cap;
		if (delay < 1000)
			delay = 1000;
	} else {
		delay = backoff_ms(wq->failures, ws->backoff_max);
	}
	if (wq->retry_ev == NULL)
		wq->retry_ev = evtimer_new(ws->base, retry_event_cb, wq);
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	if (wq->retry_ev == NULL || evtimer_add(wq->retry_ev, &tv) < 0) {
		/* Nothing sensible is left: the next kick retries. */
		wq->state = WQ_IDLE;
		log_error("webhook %s: %s: %s; cannot schedule the retry",
		    wq->target->name, what, why);
		return;
	}
	wq->state = WQ_WAITING;
	log_warn("webhook %s: %s: %s, retry in %llu s", wq->target->name, what,
	    why, (unsigned long long)((delay + 500) / 1000));
}

/*
 * Moves the event to dead letters, reason going into its .reason file.
 * Logs one error line: what, summary (or reason) and where it went.
 * Returns 0, or -1 (logged, and the queue set to retry) when that failed.
 */
static int
queue_bury(struct wh_queue *wq, uint64_t key, const char *what,
    const char *reason, const char *summary)
{
	char *path = NULL, *error = NULL, *line;
	char ts[21];

	format_iso8601(time(NULL), ts);
	line = xasprintf("%s %s", ts, reason);
	if (outbox_bury(wq->ws->ob, wq->q, key, line, &path, &error) < 0) {
		free(line);
		log_error("webhook %s: trigger %s: %s: %s", wq->target->name,
		    outbox_queue_trigger(wq->q), what, error);
		queue_failed(wq, what, "cannot move it to dead letters", 0);
		free(error);
		return -1;
	}
	free(line);
	wq->target->dead++;
	queue_streak_end(wq);
	log_error("webhook %s: trigger %s: %s: %s; moved to dead letters: %s",
	    wq->target->name, outbox_queue_trigger(wq->q), what,
	    summary != NULL ? summary : reason, path);
	free(path);
	return 0;
}

/* --- attempts --- */

/* The event's "id", validated for use in a header, or NULL and *why_r. */
static char *
event_id(const char *body, size_t len, char **why_r)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *s;
	char *id = NULL;
	size_t i, n;

	/* Fast path: the trigger writes {"type":"...","id":"...",...}; parsing
	 * the whole body (it may hold a message's text) only for its id cost
	 * a tenth of the CPU of a delivery. Anything else is parsed. */
	if (len > 2 && body[len - 1] == '}' && strncmp(body, "{\"type\":\"", 9) == 0) {
		const char *p = memchr(body + 9, '"', len - 9), *end;

		if (p != NULL && (size_t)(body + len - p) > 8 && strncmp(p, "\",\"id\":\"", 8) == 0) {
			p += 8;
			end = memchr(p, '"', (size_t)(body + len - p));
			n = end != NULL ? (size_t)(end - p) : 0;
			for (i = 0; i < n; i++)
				if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f ||
				    p[i] == '\\')
					break;
			if (n > 0 && n <= EVENT_ID_MAX && i == n)
				return xstrndup(p, n);
		}
	}
	root = json_loadb(body, len, 0, &jerr);
	if (root == NULL) {
		*why_r = xasprintf("not JSON (line %d: %s)", jerr.line, jerr.text);
		return NULL;
	}
	v = json_object_get(root, "id");
	if (!json_is_string(v)) {
		*why_r = xstrdup("no \"id\" string");
		goto out;
	}
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > EVENT_ID_MAX) {
		*why_r = xstrdup("\"id\" is empty or too long");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
			*why_r = xstrdup("\"id\" is not printable ASCII");
			goto out;
		}
	}
	id = xstrdup(s);
out:
	json_decref(root);
	return id;
}

/*
 * Starts the queue's head event. Unusable events go to dead letters on
 * the way; stops at the first request started or at a failure.
 */
static void
queue_start(struct wh_queue *wq)
{
	char name[OUTBOX_KEY_NAME_LEN], what[OUTBOX_KEY_NAME_LEN + 16];
	char *body, *error = NULL, *id, *why = NULL;
	uint64_t key;
	size_t len;
	int e;

	while (outbox_queue_head(wq->q, &key)) {
		outbox_key_name(key, name);
		snprintf(what, sizeof(what), "queued event %s", name);
		if (outbox_read(wq->q, key, &body, &len, &error) < 0) {
			e = errno;
			if (e == ENOENT) {
				log_warn("webhook %s: %s; skipped", wq->target->name,
				    error);
				free(error);
				(void)outbox_remove(wq->q, key, &error);
				free(error);
				error = NULL;
				continue;
			}
			if (e != EBADMSG && e != EFBIG) {
				/* may pass (EMFILE, EIO...): only a damaged or
				 * oversized record is buried unread */
				queue_failed(wq, what, error, 0);
				free(error);
				return;
			}
			why = xasprintf("unreadable: %s", strerror(e));
			free(error);
			error = NULL;
		} else if ((id = event_id(body, len, &why)) == NULL) {
			free(body);
		} else {
			if (webhook_http_attempt_start(wq, key, body, len, id) < 0)
				queue_failed(wq, what, "cannot start a request", 0);
			return;
		}
		e = queue_bury(wq, key, what, why, NULL);
		free(why);
		why = NULL;
		if (e < 0)
			return;
	}
}

/* "scheme://host[:port]" of a redirect's target, or NULL: its path and
 * query may hold a secret, as the webhook's own url may. */
static char *
redirect_origin(const char *url)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *origin = NULL;
	CURLU *u = curl_url();

	if (u != NULL && url != NULL &&
	    curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			origin = xasprintf("%s://%s:%s", scheme, host, port);
		else
			origin = xasprintf("%s://%s", scheme, host);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return origin;
}

/* A 3xx: not followed (the signed body must not go elsewhere), retried
 * like a 5xx; said once per run of failures at error level, since only a
 * fix of the url helps. */
static void
queue_redirected(struct wh_queue *wq, const char *what, long status, const char *location)
{
	char *origin, *why;

	if (!wq->redirect_logged) {
		origin = redirect_origin(location);
		log_error("webhook %s: HTTP %ld redirects to %s%s: redirects are not "
		    "followed; fix the webhook's url (retried meanwhile)",
		    wq->target->name, status, origin != NULL ? origin : "an unknown place",
		    origin != NULL ? "/..." : "");
		free(origin);
		wq->redirect_logged = true;
	}
	why = xasprintf("HTTP %ld (a redirect, not followed)", status);
	queue_failed(wq, what, why, 0);
	free(why);
}

void
webhook_attempt_done(struct webhook_sender *ws, struct attempt *a, CURLcode res)
{
	struct wh_queue *wq = a->wq;
	struct wh_target *t = wq->target;
	curl_off_t retry_after = 0;
	long status = 0;
	char *what, *why, *text, *location = NULL, *error = NULL;

	curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(a->easy, CURLINFO_RETRY_AFTER, &retry_after);
	if (status >= 300 && status <= 399 &&
	    curl_easy_getinfo(a->easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
	    location != NULL)
		location = xstrdup(location);
	curl_multi_remove_handle(ws->multi, a->easy);
	wq->attempt = NULL;
	wq->state = WQ_IDLE;
	ws->inflight--;
	what = xasprintf("event %s", a->id);
	if (status >= 200 && status <= 299) {
		/* Delivered once a 2xx status line came, whatever happened to
		 * the rest of the answer (cut off, too slow, not read: see
		 * webhook_http.c's write_cb): a retry would deliver it twice. */
		t->delivered++;
		queue_streak_end(wq);
		log_debug("webhook %s: %s: delivered (HTTP %ld, %llu ms)%s%s",
		    t->name, what, status,
		    (unsigned long long)(monotonic_ms() - a->started_ms),
		    res != CURLE_OK ? "; the rest of the answer was not read: " : "",
		    res != CURLE_OK ? curl_easy_strerror(res) : "");
		if (outbox_remove(wq->q, a->key, &error) < 0) {
			log_error("webhook %s: %s: %s", t->name, what, error);
			free(error);
		}
	} else if (res != CURLE_OK) {
		queue_failed(wq, what, a->errbuf[0] != '\0' ? a->errbuf :
		    curl_easy_strerror(res), 0);
	} else if (status >= 300 && status <= 399) {
		queue_redirected(wq, what, status, location);
	} else if (status == 408 || status == 429 ||
	    (status >= 500 && status <= 599) || status == 0) {
		/* A Retry-After beyond the cap waits the cap. */
		if (retry_after > (curl_off_t)ws->backoff_max)
			retry_after = (curl_off_t)ws->backoff_max;
		why = xasprintf("HTTP %ld", status);
		queue_failed(wq, what, why, retry_after > 0 ? (long)retry_after : 0);
		free(why);
	} else {
		/* The response's first bytes go to the .reason file (outbox_bury
		 * sanitises them), not to the log. */
		why = xasprintf("HTTP %ld", status);
		text = xasprintf("HTTP %ld %s", status, a->resp);
		(void)queue_bury(wq, a->key, what, text, why);
		free(text);
		free(why);
	}
	free(what);
	free(location);
	webhook_http_attempt_free(a);
	if (queue_may_start(wq))
		queue_start(wq);
}

/* --- drain --- */

static bool
drained(const struct webhook_sender *ws)
{
	size_t i;

	if (ws->inflight > 0)
		return false;
	if (!ws->once)
		return true;
	for (i = 0; i < ws->nqueues; i++) {
		if (queue_ready(ws->queues[i]) || ws->queues[i]->state == WQ_WAITING)
			return false;
	}
	return true;
}

static void
drain_event_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct webhook_sender *ws = arg;
	void (*cb)(void *);

	ws->drain_pending = false;
	if (ws->drain_cb == NULL || !drained(ws))
		return;
	cb = ws->drain_cb;
	ws->drain_cb = NULL;
	/* Last use of ws: cb may free it. */
	cb(ws->drain_arg);
}

void
webhook_check_drain(struct webhook_sender *ws)
{
	if (ws->drain_cb == NULL || ws->drain_pending || !drained(ws))
		return;
	ws->drain_pending = true;
	event_active(ws->drain_ev, EV_TIMEOUT, 0);
}

void
webhook_sender_drain(struct webhook_sender *ws, void (*cb)(void *arg), void *arg)
{
	size_t i;

	ws->drain_cb = cb;
	ws->drain_arg = arg;
	ws->draining = true;
	if (!ws->once) {
		for (i = 0; i < ws->nqueues; i++) {
			struct wh_queue *wq = ws->queues[i];

			if (wq->state == WQ_WAITING) {
				evtimer_del(wq->retry_ev);
				wq->state = WQ_IDLE;
			}
		}
		webhook_check_drain(ws);
	} else {
		webhook_sender_kick(ws);
	}
}

/* --- public --- */

void
webhook_sender_kick(struct webhook_sender *ws)
{
	size_t i;

	sync_queues(ws);
	for (i = 0; i < ws->nqueues; i++) {
		struct wh_queue *wq = ws->queues[i];

		if (!wq->target->configured) {
			if (!wq->target->warned && outbox_queue_depth(wq->q) > 0) {
				log_warn("webhook %s: not in the configuration; "
				    "its queued events stay in the outbox",
				    wq->target->name);
				wq->target->warned = true;
			}
			continue;
		}
		if (queue_may_start(wq))
			queue_start(wq);
	}
	webhook_check_drain(ws);
}

void
webhook_sender_set_config(struct webhook_sender *ws, const struct config *config)
{
	size_t i;

	ws->backoff_max = config->webhook_backoff_max > 0 ?
	    config->webhook_backoff_max : WEBHOOK_BACKOFF_MAX_DEFAULT;
	for (i = 0; i < ws->ntargets; i++) {
		ws->targets[i]->configured = false;
		ws->targets[i]->changed = false;
	}
	for (i = 0; i < config->nwebhooks; i++) {
		struct wh_target *t = target_get(ws, config->webhooks[i].name);

		t->changed = target_configure(t, &config->webhooks[i]);
	}
	for (i = 0; i < ws->ntargets; i++) {
		if (!ws->targets[i]->configured)
			target_clear_settings(ws->targets[i]);
	}
	/* A queue waiting for a webhook no longer configured stops waiting; one
	 * whose webhook's settings changed (a url fixed) starts afresh: its
	 * back-off was about the old settings. */
	for (i = 0; i < ws->nqueues; i++) {
		struct wh_queue *wq = ws->queues[i];

		if (wq->target->changed)
			queue_streak_end(wq);
		if ((!wq->target->configured || wq->target->changed) &&
		    wq->state == WQ_WAITING) {
			evtimer_del(wq->retry_ev);
			wq->state = WQ_IDLE;
		}
	}
	webhook_sender_kick(ws);
}

void
webhook_sender_set_once(struct webhook_sender *ws, bool once)
{
	size_t i;

	ws->once = once;
	for (i = 0; i < ws->nqueues; i++) {
		struct wh_queue *wq = ws->queues[i];

		if (once && wq->state == WQ_WAITING) {
			evtimer_del(wq->retry_ev);
			wq->state = WQ_STOPPED;
		} else if (!once && wq->state == WQ_STOPPED) {
			wq->state = WQ_IDLE;
		}
	}
	if (!once)
		webhook_sender_kick(ws);
	else
		webhook_check_drain(ws);
}

bool
webhook_sender_stats(const struct webhook_sender *ws, const char *webhook,
    struct webhook_stats *st_r)
{
	const struct wh_target *t = target_find(ws, webhook);
	size_t i;

	memset(st_r, 0, sizeof(*st_r));
	st_r->outbox_depth = outbox_depth(ws->ob, webhook, NULL);
	if (t == NULL)
		return st_r->outbox_depth > 0;
	st_r->delivered = t->delivered;
	st_r->retried = t->retried;
	st_r->dead = t->dead;
	st_r->configured = t->configured;
	for (i = 0; i < ws->nqueues; i++) {
		if (ws->queues[i]->target == t &&
		    ws->queues[i]->state == WQ_INFLIGHT)
			st_r->in_flight++;
	}
	return true;
}

size_t
webhook_sender_webhook_count(const struct webhook_sender *ws)
{
	return ws->ntargets;
}

const char *
webhook_sender_webhook_name(const struct webhook_sender *ws, size_t i)
{
	return i < ws->ntargets ? ws->targets[i]->name : NULL;
}

struct webhook_sender *
webhook_sender_new(struct event_base *base, struct outbox *ob,
    const struct config *config)
{
	struct webhook_sender *ws;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("webhook: cannot initialise libcurl");
		return NULL;
	}
	ws = xcalloc(1, sizeof(*ws));
	ws->base = base;
	ws->ob = ob;
	ws->drain_ev = event_new(base, -1, 0, drain_event_cb, ws);
	if (webhook_http_init(ws) < 0 || ws->drain_ev == NULL) {
		log_error("webhook: cannot initialise libcurl or libevent");
		webhook_sender_free(&ws);
		return NULL;
	}
	webhook_sender_set_config(ws, config);
	return ws;
}

void
webhook_sender_free(struct webhook_sender **wsp)
{
	struct webhook_sender *ws = *wsp;
	size_t i;

	if (ws == NULL)
		return;
	for (i = 0; i < ws->nqueues; i++) {
		struct wh_queue *wq = ws->queues[i];

		if (wq->attempt != NULL) {
			curl_multi_remove_handle(ws->multi, wq->attempt->easy);
			webhook_http_attempt_free(wq->attempt);
		}
		if (wq->retry_ev != NULL)
			event_free(wq->retry_ev);
		if (wq->easy != NULL)
			curl_easy_cleanup(wq->easy);
		free(wq);
	}
	free(ws->queues);
	webhook_http_free(ws);
	if (ws->drain_ev != NULL)
		event_free(ws->drain_ev);
	for (i = 0; i < ws->ntargets; i++)
		target_free(ws->targets[i]);
	free(ws->targets);
	free(ws);
	curl_global_cleanup();
	*wsp = NULL;
}
