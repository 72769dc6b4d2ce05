/*
 * webhook_http: the HTTP side of webhook (see webhook.h and
 * webhook_private.h): building and signing each request, and the
 * libcurl/libevent glue as in curl's docs/examples/hiperfifo.c: curl tells
 * us which sockets to watch (sock_cb) and when to call it back (timer_cb);
 * libevent tells curl what happened (event_cb, timer_event_cb) through
 * curl_multi_socket_action(), after which finished transfers are collected
 * with curl_multi_info_read() (check_multi_info) and handed to
 * webhook_attempt_done(). All state hangs off struct webhook_sender;
 * nothing exits.
 */
#include "webhook_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "log.h"
#include "util.h"

char *
webhook_signature(const unsigned char *key, size_t keylen, const char *id,
    const char *timestamp, const char *body, size_t len)
{
	static const unsigned char nokey[1];
	unsigned char out[EVP_MAX_MD_SIZE];
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *mac;
	size_t outlen = 0;
	char *b64, *sig = NULL;
	int ok;

	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		return NULL;
	ctx = EVP_MAC_CTX_new(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = ctx != NULL &&
	    EVP_MAC_init(ctx, keylen > 0 ? key : nokey, keylen, params) &&
	    EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) &&
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
	    EVP_MAC_update(ctx, (const unsigned char *)timestamp, strlen(timestamp)) &&
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
	    EVP_MAC_update(ctx, (const unsigned char *)body, len) &&
	    EVP_MAC_final(ctx, out, &outlen, sizeof(out));
	if (ok) {
		b64 = base64_encode(out, outlen);
		sig = xasprintf("v1,%s", b64);
		free(b64);
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return sig;
}

/* --- requests --- */

/* Keeps the answer's first WEBHOOK_REASON_BODY bytes (for a dead letter's
 * reason). After a 2xx nothing more is read once they are kept: the short
 * count aborts the transfer (CURLE_WRITE_ERROR), and the event counts as
 * delivered all the same (webhook_attempt_done). */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nmemb, room = WEBHOOK_REASON_BODY - a->resp_len;
	long status = 0;

	if (room > 0) {
		if (room > n)
			room = n;
		memcpy(a->resp + a->resp_len, data, room);
		a->resp_len += room;
		a->resp[a->resp_len] = '\0';
	}
	if (a->resp_len == WEBHOOK_REASON_BODY && n > 0 &&
	    curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status >= 200 && status <= 299)
		return 0;
	return n;
}

void
webhook_http_attempt_free(struct attempt *a)
{
	/* kept for the queue's next request: curl_easy_init() and the
	 * option defaults cost ~3 % of a burst's CPU otherwise */
	if (a->easy != NULL && a->wq->easy == NULL)
		a->wq->easy = a->easy;
	else if (a->easy != NULL)
		curl_easy_cleanup(a->easy);
	curl_slist_free_all(a->headers);
	free(a->body);
	free(a->id);
	free(a);
}


static int ATTR_FORMAT(2, 3)
add_header(struct curl_slist **list, const char *fmt, ...)
{
	struct curl_slist *l;
	va_list ap;
	char *h;

	va_start(ap, fmt);
	h = xvasprintf(fmt, ap);
	va_end(ap);
	l = curl_slist_append(*list, h);
	free(h);
	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

static int
attempt_headers(struct attempt *a)
{
	const struct wh_target *t = a->wq->target;
	char ts[32], *sig = NULL;
	size_t i;
	int ret = -1;

	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if (t->secret != NULL) {
		sig = webhook_signature(t->secret, t->secret_len, a->id, ts,
		    a->body, a->len);
		if (sig == NULL)
			return -1;
	}
	if (add_header(&a->headers, "Content-Type: application/json") < 0 ||
	    add_header(&a->headers, "Expect:") < 0 ||
	    add_header(&a->headers, "webhook-id: %s", a->id) < 0 ||
	    add_header(&a->headers, "webhook-timestamp: %s", ts) < 0 ||
	    (sig != NULL && add_header(&a->headers, "webhook-signature: %s", sig) < 0))
		goto out;
	for (i = 0; t->headers[i] != NULL; i++) {
		if (add_header(&a->headers, "%s", t->headers[i]) < 0)
			goto out;
	}
	ret = 0;
out:
	free(sig);
	return ret;
}

/* Starts the request; takes body and id. Returns 0, or -1 (a freed). */
int
webhook_http_attempt_start(struct wh_queue *wq, uint64_t key, char *body, size_t len,
    char *id)
{
	struct webhook_sender *ws = wq->ws;
	const struct wh_target *t = wq->target;
	struct attempt *a;
	CURL *e;

	a = xcalloc(1, sizeof(*a));
	a->wq = wq;
	a->key = key;
	a->body = body;
	a->len = len;
	a->id = id;
	a->started_ms = monotonic_ms();
	if (attempt_headers(a) < 0)
		goto fail;
	if (wq->easy != NULL) {
		a->easy = wq->easy;
		wq->easy = NULL;
		curl_easy_reset(a->easy);
	} else if ((a->easy = curl_easy_init()) == NULL) {
		goto fail;
	}
	e = a->easy;
	if (curl_easy_setopt(e, CURLOPT_URL, t->url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "imaphook/" IMAPHOOK_VERSION) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout * 1000L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, a) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, a) != CURLE_OK)
		goto fail;
	if (curl_multi_add_handle(ws->multi, e) != CURLM_OK)
		goto fail;
	wq->attempt = a;
	wq->state = WQ_INFLIGHT;
	ws->inflight++;
	return 0;
fail:
	webhook_http_attempt_free(a);
	return -1;
}

/* --- libcurl <-> libevent --- */

static void
check_multi_info(struct webhook_sender *ws)
{
	CURLMsg *msg;
	CURLcode res;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(ws->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		res = msg->data.result;
		priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv != NULL)
			webhook_attempt_done(ws, (struct attempt *)(void *)priv, res);
	}
	webhook_check_drain(ws);
}

static void
event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_sender *ws = arg;
	int action = 0, running = 0;
	CURLMcode mc;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	mc = curl_multi_socket_action(ws->multi, fd, action, &running);
	if (mc != CURLM_OK)
		log_error("webhook: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
	check_multi_info(ws);
}

static void
timer_event_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct webhook_sender *ws = arg;
	int running = 0;
	CURLMcode mc;

	mc = curl_multi_socket_action(ws->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	if (mc != CURLM_OK)
		log_error("webhook: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
	check_multi_info(ws);
}

/* CURLMOPT_TIMERFUNCTION: only arms our timer, never calls curl back. */
static int
timer_cb(CURLM *multi ATTR_UNUSED, long timeout_ms, void *arg)
{
	struct webhook_sender *ws = arg;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(ws->timer_ev);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(ws->timer_ev, &tv) < 0 ? -1 : 0;
}

static void
sock_free(struct webhook_sender *ws, struct sock *so)
{
	if (so->ev != NULL)
		event_free(so->ev);
	if (so->prev != NULL)
		so->prev->next = so->next;
	else
		ws->socks = so->next;
	if (so->next != NULL)
		so->next->prev = so->prev;
	free(so);
}

/* CURLMOPT_SOCKETFUNCTION */
static int
sock_cb(CURL *easy ATTR_UNUSED, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct webhook_sender *ws = arg;
	struct sock *so = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (so != NULL)
			sock_free(ws, so);
		return 0;
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (so == NULL) {
		so = xcalloc(1, sizeof(*so));
		so->ws = ws;
		so->fd = s;
		so->next = ws->socks;
		if (ws->socks != NULL)
			ws->socks->prev = so;
		ws->socks = so;
		curl_multi_assign(ws->multi, s, so);
	}
	if (so->ev == NULL) {
		so->ev = event_new(ws->base, s, kind, event_cb, ws);
		if (so->ev == NULL)
			return -1;
	} else {
		event_del(so->ev);
		event_assign(so->ev, ws->base, s, kind, event_cb, ws);
	}
	return event_add(so->ev, NULL) < 0 ? -1 : 0;
}

int
webhook_http_init(struct webhook_sender *ws)
{
	ws->multi = curl_multi_init();
	ws->timer_ev = evtimer_new(ws->base, timer_event_cb, ws);
	if (ws->multi == NULL || ws->timer_ev == NULL)
		return -1;
	curl_multi_setopt(ws->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(ws->multi, CURLMOPT_SOCKETDATA, ws);
	curl_multi_setopt(ws->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(ws->multi, CURLMOPT_TIMERDATA, ws);
	return 0;
}

void
webhook_http_free(struct webhook_sender *ws)
{
	if (ws->multi != NULL)
		curl_multi_cleanup(ws->multi);
	ws->multi = NULL;
	while (ws->socks != NULL)
		sock_free(ws, ws->socks);
	if (ws->timer_ev != NULL)
		event_free(ws->timer_ev);
	ws->timer_ev = NULL;
}
