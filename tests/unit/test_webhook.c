/*
 * Unit tests for webhook: delivery through libcurl on libevent to an
 * in-process evhttp receiver in the same event_base, which records every
 * request and answers per a script.
 */
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"
#include "log_capture.h"
#include "outbox.h"
#include "tmpdir.h"
#include "util.h"
#include "webhook.h"

#define MAX_RECS 64
#define MAX_SCRIPTS 4
#define MAX_DELAYED 16

/* What the receiver does with one request. status 0: never answers. */
struct action {
	int status;
	const char *retry_after;
	const char *body;
	unsigned delay_ms;
	const char *location;
};

struct script {
	const char *path;
	const struct action *acts;
	size_t n;
	size_t next;
};

/* One request as received. */
struct rec {
	char *path;
	char *id;
	char *ts;
	char *sig;
	char *ctype;
	char *ua;
	char *expect;
	char *xteam;
	int nids;               /* webhook-id headers */
	uint16_t peer_port;
	char *body;
	size_t len;
	uint64_t at;            /* monotonic ms */
};

struct delayed {
	struct evhttp_request *req;
	struct action act;
	char trig;
	bool used;
};

static struct {
	struct evhttp *http;
	uint16_t port;
	struct rec recs[MAX_RECS];
	size_t nrecs;
	struct script scripts[MAX_SCRIPTS];
	size_t nscripts;
	struct delayed delayed[MAX_DELAYED];
	int outstanding;
	int max_outstanding;
	int per_trig[256];      /* outstanding by the id's first letter */
	int max_per_trig;
} rx;

static struct event_base *base;
static struct outbox *ob;
static struct webhook_sender *ws;
static struct config cfg;
static struct cfg_webhook whs[2];
static char *extra_headers[3];

/* --- receiver --- */

static char *
dup_header(struct evkeyvalq *h, const char *name)
{
	const char *v = evhttp_find_header(h, name);

	return v != NULL ? xstrdup(v) : NULL;
}

static void
send_answer(struct evhttp_request *req, const struct action *act, char trig)
{
	struct evbuffer *buf = NULL;

	if (act->retry_after != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", act->retry_after);
	if (act->location != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Location", act->location);
	if (act->body != NULL) {
		buf = evbuffer_new();
		evbuffer_add(buf, act->body, strlen(act->body));
	}
	rx.outstanding--;
	rx.per_trig[(unsigned char)trig]--;
	evhttp_send_reply(req, act->status, "Scripted", buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

static void
delayed_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct delayed *d = arg;

	d->used = false;
	send_answer(d->req, &d->act, d->trig);
}

static void
on_request(struct evhttp_request *req, void *arg ATTR_UNUSED)
{
	static const struct action ok = { 200, NULL, NULL, 0 };
	const struct action *act = &ok;
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyval *kv;
	struct rec *r;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char *peer;
	ev_uint16_t port;
	size_t i;
	char trig;

	ck_assert_int_eq(evhttp_request_get_command(req), EVHTTP_REQ_POST);
	ck_assert_uint_lt(rx.nrecs, MAX_RECS);
	r = &rx.recs[rx.nrecs++];
	r->at = monotonic_ms();
	r->path = xstrdup(path != NULL ? path : "");
	r->id = dup_header(h, "webhook-id");
	r->ts = dup_header(h, "webhook-timestamp");
	r->sig = dup_header(h, "webhook-signature");
	r->ctype = dup_header(h, "Content-Type");
	r->ua = dup_header(h, "User-Agent");
	r->expect = dup_header(h, "Expect");
	r->xteam = dup_header(h, "X-Team");
	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "webhook-id") == 0)
			r->nids++;
	}
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
	r->peer_port = port;
	r->len = evbuffer_get_length(in);
	r->body = xmalloc(r->len + 1);
	evbuffer_remove(in, r->body, r->len);
	r->body[r->len] = '\0';

	trig = r->id != NULL ? r->id[0] : '?';
	rx.outstanding++;
	if (rx.outstanding > rx.max_outstanding)
		rx.max_outstanding = rx.outstanding;
	if (++rx.per_trig[(unsigned char)trig] > rx.max_per_trig)
		rx.max_per_trig = rx.per_trig[(unsigned char)trig];
	for (i = 0; i < rx.nscripts; i++) {
		struct script *s = &rx.scripts[i];

		if (strcmp(s->path, r->path) == 0 && s->next < s->n) {
			act = &s->acts[s->next++];
			break;
		}
	}
	if (act->status == 0)
		return;         /* never answers */
	if (act->delay_ms > 0) {
		struct timeval tv = { act->delay_ms / 1000, (act->delay_ms % 1000) * 1000 };

		for (i = 0; i < MAX_DELAYED && rx.delayed[i].used; i++)
			;
		ck_assert_uint_lt(i, MAX_DELAYED);
		rx.delayed[i].used = true;
		rx.delayed[i].req = req;
		rx.delayed[i].act = *act;
		rx.delayed[i].trig = trig;
		ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, delayed_cb,
		    &rx.delayed[i], &tv), 0);
		return;
	}
	send_answer(req, act, trig);
}

static void
script(const char *path, const struct action *acts, size_t n)
{
	ck_assert_uint_lt(rx.nscripts, MAX_SCRIPTS);
	rx.scripts[rx.nscripts].path = path;
	rx.scripts[rx.nscripts].acts = acts;
	rx.scripts[rx.nscripts].n = n;
	rx.nscripts++;
}

/*
 * A raw receiver, for answers evhttp cannot give: every request (headers
 * and Content-Length body read) gets the bytes of raw.answer, then the
 * connection is closed (raw.close) or held open until the test ends.
 */
#define RAW_MAX_CONNS 8

static struct {
	struct evconnlistener *lis;
	uint16_t port;
	const char *answer;
	bool close;
	int requests;
	struct bufferevent *held[RAW_MAX_CONNS];
	size_t nheld;
} raw;

static void
raw_written_cb(struct bufferevent *bev, void *arg ATTR_UNUSED)
{
	size_t i;

	for (i = 0; i < raw.nheld; i++) {
		if (raw.held[i] == bev)
			raw.held[i] = NULL;
	}
	bufferevent_free(bev);
}

static void
raw_read_cb(struct bufferevent *bev, void *arg ATTR_UNUSED)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	size_t hlen, blen = 0;
	char *head, *cl;

	if (end.pos < 0)
		return;
	hlen = (size_t)end.pos + 4;
	head = xstrndup((const char *)evbuffer_pullup(in, (ssize_t)hlen), hlen);
	cl = strcasestr(head, "\r\nContent-Length:");
	if (cl != NULL)
		blen = strtoul(cl + 17, NULL, 10);
	free(head);
	if (evbuffer_get_length(in) < hlen + blen)
		return;
	evbuffer_drain(in, hlen + blen);
	raw.requests++;
	bufferevent_write(bev, raw.answer, strlen(raw.answer));
	if (raw.close)
		bufferevent_setcb(bev, NULL, raw_written_cb, NULL, NULL);
}

static void
raw_event_cb(struct bufferevent *bev ATTR_UNUSED, short what ATTR_UNUSED,
    void *arg ATTR_UNUSED)
{
}

static void
raw_accept_cb(struct evconnlistener *lis ATTR_UNUSED, evutil_socket_t fd,
    struct sockaddr *sa ATTR_UNUSED, int salen ATTR_UNUSED, void *arg ATTR_UNUSED)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);

	ck_assert_ptr_nonnull(bev);
	ck_assert_uint_lt(raw.nheld, RAW_MAX_CONNS);
	raw.held[raw.nheld++] = bev;
	bufferevent_setcb(bev, raw_read_cb, NULL, raw_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
raw_start(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	raw.lis = evconnlistener_new_bind(base, raw_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8, (struct sockaddr *)&sin,
	    sizeof(sin));
	ck_assert_ptr_nonnull(raw.lis);
	ck_assert_int_eq(getsockname(evconnlistener_get_fd(raw.lis),
	    (struct sockaddr *)&sin, &sl), 0);
	raw.port = ntohs(sin.sin_port);
}

/* Frees the listener and the connections still open. */
static void
raw_stop(void)
{
	size_t i;

	if (raw.lis == NULL)
		return;
	for (i = 0; i < raw.nheld; i++) {
		if (raw.held[i] != NULL)
			bufferevent_free(raw.held[i]);
	}
	evconnlistener_free(raw.lis);
	memset(&raw, 0, sizeof(raw));
}

/* --- fixture --- */

static void
set_webhook(size_t i, const char *name, const char *url_path, unsigned port,
    const char *secret, unsigned timeout)
{
	free(whs[i].name);
	free(whs[i].url);
	free(whs[i].secret);
	whs[i].name = xstrdup(name);
	whs[i].url = xasprintf("http://127.0.0.1:%u%s", port, url_path);
	whs[i].secret = secret != NULL ? (unsigned char *)xstrdup(secret) : NULL;
	whs[i].secret_len = secret != NULL ? strlen(secret) : 0;
	whs[i].headers = extra_headers;
	whs[i].timeout = timeout;
	if (i + 1 > cfg.nwebhooks)
		cfg.nwebhooks = i + 1;
}

static void
setup(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char *error = NULL;

	log_set_level(LOG_LEVEL_ERROR);
	tmpdir_make();
	memset(&rx, 0, sizeof(rx));
	memset(&raw, 0, sizeof(raw));
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	rx.http = evhttp_new(base);
	evhttp_set_gencb(rx.http, on_request, NULL);
	bs = evhttp_bind_socket_with_handle(rx.http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &sl), 0);
	rx.port = ntohs(sin.sin_port);
	ob = outbox_open(tmpdir, &error);
	ck_assert_msg(ob != NULL, "%s", error);
	memset(&cfg, 0, sizeof(cfg));
	memset(whs, 0, sizeof(whs));
	cfg.webhooks = whs;
	cfg.webhook_backoff_max = 60;
	extra_headers[0] = xstrdup("X-Team: support");
	extra_headers[1] = xstrdup("webhook-id: forged");
	extra_headers[2] = NULL;
	set_webhook(0, "crm", "/crm", rx.port, NULL, 10);
}

static void
teardown(void)
{
	size_t i;

	webhook_sender_free(&ws);
	outbox_free(&ob);
	raw_stop();
	evhttp_free(rx.http);
	event_base_free(base);
	base = NULL;
	for (i = 0; i < rx.nrecs; i++) {
		struct rec *r = &rx.recs[i];

		free(r->path);
		free(r->id);
		free(r->ts);
		free(r->sig);
		free(r->ctype);
		free(r->ua);
		free(r->expect);
		free(r->xteam);
		free(r->body);
	}
	for (i = 0; i < N_ELEMENTS(whs); i++) {
		free(whs[i].name);
		free(whs[i].url);
		free(whs[i].secret);
	}
	memset(whs, 0, sizeof(whs));
	free(extra_headers[0]);
	free(extra_headers[1]);
	tmpdir_remove();
}

/* Queues an event whose id is "<trigger>:1:<uid>"; returns the body. */
static char *
queue_event(const char *webhook, const char *trigger, uint32_t uid)
{
	char *error = NULL;
	char *body = xasprintf("{\"type\":\"email.new\",\"id\":\"%s:1:%u\","
	    "\"subject\":\"Gr\xc3\xbc\xc3\x9f" "e\"}", trigger, uid);

	ck_assert_int_eq(outbox_put(ob, webhook, trigger, 1, uid, body,
	    strlen(body), &error), 0);
	return body;
}

static void
commit(void)
{
	char *error = NULL;

	ck_assert_msg(outbox_sync(ob, NULL, &error) == 0, "%s", error);
	outbox_commit(ob, NULL);
}

/* Runs the loop until pred() holds or max_ms passed; returns pred(). */
static bool
run_until(bool (*pred)(void), unsigned max_ms)
{
	uint64_t deadline = monotonic_ms() + max_ms;
	struct timeval tv = { 0, 10000 };

	while (!pred()) {
		if (monotonic_ms() > deadline)
			return false;
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return true;
}

static void
run_for(unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static struct webhook_stats
stats(const char *webhook)
{
	struct webhook_stats st;

	ck_assert(webhook_sender_stats(ws, webhook, &st));
	return st;
}

/* The counters of webhook are these. */
static void
assert_counts(const char *webhook, uint64_t delivered, uint64_t retried, uint64_t dead)
{
	struct webhook_stats st = stats(webhook);

	ck_assert_uint_eq(st.delivered, delivered);
	ck_assert_uint_eq(st.retried, retried);
	ck_assert_uint_eq(st.dead, dead);
}

static bool
outbox_empty(void)
{
	return outbox_depth(ob, NULL, NULL) == 0 && rx.outstanding == 0;
}

static bool
crm_empty(void)
{
	return outbox_depth(ob, "crm", NULL) == 0 && rx.outstanding == 0;
}

static bool
crm_delivered(void)
{
	return outbox_depth(ob, "crm", NULL) == 0;
}

static size_t want_recs;

static bool
enough_recs(void)
{
	return rx.nrecs >= want_recs;
}

static char *
event_path(const char *dir, const char *webhook, const char *trigger,
    uint32_t uid, const char *ext)
{
	return xasprintf("%s/%s/%s/%s/00000001-%010u.%s", tmpdir, dir, webhook,
	    trigger, uid, ext);
}

/* Whether event (1, uid) is queued as pending in a segment file of
 * outbox/<webhook>/<trigger> (a record starts a file or follows the
 * newline ending the one before; JSON bodies hold no raw newline). */
static bool
queued_on_disk(const char *webhook, const char *trigger, uint32_t uid)
{
	char *dir = xasprintf("%s/outbox/%s/%s", tmpdir, webhook, trigger);
	char hdr[40], *path, *data;
	struct dirent *de;
	size_t len, hlen;
	bool found = false;
	DIR *d = opendir(dir);

	hlen = (size_t)snprintf(hdr, sizeof(hdr), "\nP 00000001-%010u ", uid);
	while (d != NULL && !found && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 4, ".seg") != 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (read_file(path, 1 << 20, &data, &len) == 0) {
			found = (len >= hlen - 1 && memcmp(data, hdr + 1, hlen - 1) == 0) ||
			    memmem(data, len, hdr, hlen) != NULL;
			free(data);
		}
		free(path);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
	return found;
}

static bool
file_exists(char *path)
{
	struct stat sb;
	bool ret = stat(path, &sb) == 0;

	free(path);
	return ret;
}

/* An independent HMAC (one-shot HMAC(), not EVP_MAC) for comparison. */
static char *
expected_signature(const unsigned char *key, size_t keylen, const char *id,
    const char *ts, const char *body, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *msg, *b64, *sig;
	size_t mlen;

	msg = xasprintf("%s.%s.", id, ts);
	mlen = strlen(msg);
	msg = xrealloc(msg, mlen + len);
	memcpy(msg + mlen, body, len);
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)keylen,
	    (unsigned char *)msg, mlen + len, mac, &maclen));
	free(msg);
	b64 = base64_encode(mac, maclen);
	sig = xasprintf("v1,%s", b64);
	free(b64);
	return sig;
}

/* --- tests --- */

START_TEST(test_signature_vector)
{
	unsigned char *key;
	size_t keylen;
	char *sig, *exp;

	ck_assert_int_eq(base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32,
	    &key, &keylen), 0);
	sig = webhook_signature(key, keylen, "msg_p5jXN8AQM9LWM0D4loKWxJek",
	    "1614265330", "{\"test\": 2432232314}", 20);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(sig);
	/* Any other timestamp gives another signature. */
	sig = webhook_signature(key, keylen, "msg_p5jXN8AQM9LWM0D4loKWxJek",
	    "1614265331", "{\"test\": 2432232314}", 20);
	ck_assert_str_ne(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(sig);
	free(key);
	/* A body with a NUL byte, and an empty key, match HMAC(). */
	sig = webhook_signature((const unsigned char *)"", 0, "a", "1", "x\0y", 3);
	exp = expected_signature((const unsigned char *)"", 0, "a", "1", "x\0y", 3);
	ck_assert_str_eq(sig, exp);
	free(sig);
	free(exp);
}
END_TEST

START_TEST(test_request)
{
	char *bodies[3], *exp, *error = NULL;
	struct webhook_stats st;
	struct rec *r;
	uint64_t ts;
	size_t i;

	/* A body over 1 MiB: curl would send "Expect: 100-continue". */
	bodies[0] = xmalloc(2 * 1024 * 1024);
	i = (size_t)snprintf(bodies[0], 64, "{\"id\":\"t:1:1\",\"pad\":\"");
	memset(bodies[0] + i, 'p', 2 * 1024 * 1024 - i - 3);
	memcpy(bodies[0] + 2 * 1024 * 1024 - 3, "\"}", 3);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 1, bodies[0],
	    strlen(bodies[0]), &error), 0);
	bodies[1] = queue_event("crm", "t", 2);
	bodies[2] = queue_event("crm", "t", 3);
	commit();
	set_webhook(0, "crm", "/crm", rx.port, "s3cr3t\001key", 10);
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert_ptr_nonnull(ws);
	ck_assert(run_until(outbox_empty, 10000));
	ck_assert_uint_eq(rx.nrecs, 3);
	for (i = 0; i < 3; i++) {
		r = &rx.recs[i];
		ck_assert_str_eq(r->path, "/crm");
		ck_assert_uint_eq(r->len, strlen(bodies[i]));
		ck_assert(memcmp(r->body, bodies[i], r->len) == 0);
		ck_assert_ptr_nonnull(r->id);
		ck_assert_int_eq(r->nids, 1);
		ck_assert_ptr_nonnull(strstr(bodies[i], r->id));
		ck_assert_str_eq(r->ctype, "application/json");
		ck_assert_str_eq(r->ua, "imaphook/" IMAPHOOK_VERSION);
		ck_assert_ptr_null(r->expect);
		ck_assert_str_eq(r->xteam, "support");
		ck_assert_int_eq(parse_u64(r->ts, &ts), 0);
		ck_assert_uint_le(ts, (uint64_t)time(NULL));
		ck_assert_uint_ge(ts + 30, (uint64_t)time(NULL));
		exp = expected_signature((const unsigned char *)"s3cr3t\001key", 10,
		    r->id, r->ts, bodies[i], strlen(bodies[i]));
		ck_assert_str_eq(r->sig, exp);
		free(exp);
		/* One kept-alive connection. */
		ck_assert_uint_eq(r->peer_port, rx.recs[0].peer_port);
	}
	ck_assert_str_eq(rx.recs[0].id, "t:1:1");
	ck_assert_str_eq(rx.recs[2].id, "t:1:3");
	st = stats("crm");
	ck_assert_uint_eq(st.delivered, 3);
	ck_assert_uint_eq(st.retried, 0);
	ck_assert_uint_eq(st.outbox_depth, 0);
	ck_assert(st.configured);
	ck_assert(!queued_on_disk("crm", "t", 1));
	ck_assert(!webhook_sender_stats(ws, "unknown", &st));
	for (i = 0; i < 3; i++)
		free(bodies[i]);
}
END_TEST

START_TEST(test_no_secret_no_signature)
{
	char *body = queue_event("crm", "t", 1);

	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, 5000));
	ck_assert_uint_eq(rx.nrecs, 1);
	ck_assert_ptr_null(rx.recs[0].sig);
	ck_assert_str_eq(rx.recs[0].id, "t:1:1");
	free(body);
}
END_TEST

START_TEST(test_backoff)
{
	static const struct action acts[] = {
		{ 503, NULL, NULL, 0 }, { 503, NULL, NULL, 0 }, { 200, NULL, NULL, 0 },
	};
	char *b1, *b2;
	struct webhook_stats st;
	uint64_t d1, d2;

	script("/crm", acts, N_ELEMENTS(acts));
	b1 = queue_event("crm", "t", 7);
	b2 = queue_event("crm", "t", 8);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, 8000));
	ck_assert_uint_eq(rx.nrecs, 4);
	ck_assert_str_eq(rx.recs[0].id, "t:1:7");
	ck_assert_str_eq(rx.recs[1].id, "t:1:7");
	ck_assert_str_eq(rx.recs[2].id, "t:1:7");
	ck_assert_str_eq(rx.recs[3].id, "t:1:8");
	d1 = rx.recs[1].at - rx.recs[0].at;
	d2 = rx.recs[2].at - rx.recs[1].at;
	ck_assert_msg(d1 >= 950 && d1 < 1900, "first wait %llu ms", (unsigned long long)d1);
	ck_assert_msg(d2 >= 1950 && d2 < 3900, "second wait %llu ms", (unsigned long long)d2);
	/* A success resets the back-off: the next event goes out at once. */
	ck_assert_uint_lt(rx.recs[3].at - rx.recs[2].at, 500);
	st = stats("crm");
	ck_assert_uint_eq(st.retried, 2);
	ck_assert_uint_eq(st.delivered, 2);
	ck_assert_uint_eq(st.dead, 0);
	free(b1);
	free(b2);
}
END_TEST

/*
 * One event for crm, whose first answer is crm_status with Retry-After
 * crm_ra, and one for ops, whose first answer is ops_status with a
 * Retry-After HTTP-date ops_ahead seconds ahead; then 200 for both. Runs
 * the sender (webhook_backoff_max = cap) until both are delivered, each
 * retried once. Returns what was logged at warn level (caller frees).
 */
static char *
retry_after_run(int crm_status, const char *crm_ra, int ops_status, time_t ops_ahead,
    unsigned cap)
{
	static struct action crm_acts[2], ops_acts[2];
	static char date[64];
	time_t later = time(NULL) + ops_ahead;
	struct tm tm;
	char *log;

	gmtime_r(&later, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	memset(crm_acts, 0, sizeof(crm_acts));
	memset(ops_acts, 0, sizeof(ops_acts));
	crm_acts[0].status = crm_status;
	crm_acts[0].retry_after = crm_ra;
	ops_acts[0].status = ops_status;
	ops_acts[0].retry_after = date;
	crm_acts[1].status = ops_acts[1].status = 200;
	script("/crm", crm_acts, N_ELEMENTS(crm_acts));
	script("/ops", ops_acts, N_ELEMENTS(ops_acts));
	set_webhook(1, "ops", "/ops", rx.port, NULL, 10);
	cfg.webhook_backoff_max = cap;
	free(queue_event("crm", "t", 1));
	free(queue_event("ops", "u", 1));
	commit();
	log_capture_start(LOG_LEVEL_WARN);
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, (cap + 3) * 1000));
	log = log_capture_end();
	ck_assert_uint_eq(rx.nrecs, 4);
	ck_assert_uint_eq(stats("crm").retried, 1);
	ck_assert_uint_eq(stats("ops").retried, 1);
	return log;
}

START_TEST(test_retry_after)
{
	/* Retry-After: 2, and an HTTP-date 30 s ahead capped to
	 * webhook_backoff_max = 2 s */
	char *log = retry_after_run(429, "2", 503, 30, 2);
	uint64_t d;

	/* Without Retry-After the first retry would come after 1 s. */
	{
		uint64_t first[2] = { 0, 0 }, second[2] = { 0, 0 };
		size_t i;

		for (i = 0; i < rx.nrecs; i++) {
			int w = strcmp(rx.recs[i].path, "/ops") == 0;

			if (first[w] == 0)
				first[w] = rx.recs[i].at;
			else
				second[w] = rx.recs[i].at;
		}
		d = second[0] - first[0];
		ck_assert_msg(d >= 1950 && d < 3000, "Retry-After: 2 waited %llu ms",
		    (unsigned long long)d);
		d = second[1] - first[1];
		ck_assert_msg(d >= 1950 && d < 3000, "capped HTTP-date waited %llu ms",
		    (unsigned long long)d);
	}
	ck_assert_msg(log_count(log, "HTTP 429, retry in 2 s") == 1, "%s", log);
	ck_assert_msg(log_count(log, "HTTP 503, retry in 2 s") == 1, "%s", log);
	free(log);
}
END_TEST

START_TEST(test_dead_letter)
{
	static const struct action acts[] = {
		{ 410, NULL, "gone for good\r\nreally", 0 }, { 200, NULL, NULL, 0 },
	};
	char *b1, *b2, *path, *data;
	struct webhook_stats st;
	size_t len;

	script("/crm", acts, N_ELEMENTS(acts));
	b1 = queue_event("crm", "t", 1);
	b2 = queue_event("crm", "t", 2);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, 5000));
	ck_assert_uint_eq(rx.nrecs, 2);
	ck_assert_str_eq(rx.recs[0].id, "t:1:1");
	ck_assert_str_eq(rx.recs[1].id, "t:1:2");
	path = event_path("dead", "crm", "t", 1, "json");
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	ck_assert_str_eq(data, b1);
	free(data);
	free(path);
	path = event_path("dead", "crm", "t", 1, "reason");
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	ck_assert_ptr_nonnull(strstr(data, "HTTP 410"));
	ck_assert_ptr_nonnull(strstr(data, "gone for good  really"));
	ck_assert_ptr_eq(strchr(data, '\n'), data + len - 1);
	free(data);
	free(path);
	ck_assert(!queued_on_disk("crm", "t", 1));
	ck_assert(!file_exists(event_path("dead", "crm", "t", 2, "json")));
	st = stats("crm");
	ck_assert_uint_eq(st.dead, 1);
	ck_assert_uint_eq(st.delivered, 1);
	ck_assert_uint_eq(st.retried, 0);
	free(b1);
	free(b2);
}
END_TEST

START_TEST(test_huge_response)
{
	struct action acts[1] = { { 404, NULL, NULL, 0 } };
	char *big, *b1, *path, *data;
	size_t len;

	big = xmalloc(4 * 1024 * 1024 + 1);
	memset(big, 'z', 4 * 1024 * 1024);
	big[4 * 1024 * 1024] = '\0';
	acts[0].body = big;
	script("/crm", acts, N_ELEMENTS(acts));
	b1 = queue_event("crm", "t", 1);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, 5000));
	path = event_path("dead", "crm", "t", 1, "reason");
	ck_assert_int_eq(read_file(path, 1024 * 1024, &data, &len), 0);
	ck_assert_ptr_nonnull(strstr(data, "HTTP 404 zzz"));
	/* Time, status and at most WEBHOOK_REASON_BODY bytes of the body. */
	ck_assert_uint_le(len, WEBHOOK_REASON_BODY + 40);
	ck_assert_uint_ge(len, WEBHOOK_REASON_BODY);
	free(data);
	free(path);
	ck_assert_uint_eq(stats("crm").dead, 1);
	free(big);
	free(b1);
}
END_TEST

START_TEST(test_bad_event_files)
{
	char *error = NULL, *b3, *path, *data;
	size_t len;

	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 1, "garbage", 7, &error), 0);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 2, "{\"type\":1}", 10, &error), 0);
	b3 = queue_event("crm", "t", 3);
	/* A queue of a webhook that is not configured is left alone. */
	free(queue_event("old", "t", 4));
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(crm_empty, 5000));
	ck_assert_uint_eq(rx.nrecs, 1);
	ck_assert_str_eq(rx.recs[0].body, b3);
	path = event_path("dead", "crm", "t", 1, "reason");
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	ck_assert_ptr_nonnull(strstr(data, "not JSON"));
	free(data);
	free(path);
	path = event_path("dead", "crm", "t", 2, "reason");
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	ck_assert_ptr_nonnull(strstr(data, "\"id\""));
	free(data);
	free(path);
	ck_assert_uint_eq(stats("crm").dead, 2);
	ck_assert_uint_eq(stats("old").outbox_depth, 1);
	ck_assert(!stats("old").configured);
	ck_assert(queued_on_disk("old", "t", 4));
	free(b3);
}
END_TEST

START_TEST(test_timeout)
{
	static const struct action acts[] = {
		{ 0, NULL, NULL, 0 }, { 200, NULL, NULL, 0 },
	};
	char *b1;
	uint64_t d;

	script("/crm", acts, N_ELEMENTS(acts));
	set_webhook(0, "crm", "/crm", rx.port, NULL, 1);
	b1 = queue_event("crm", "t", 1);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	want_recs = 2;
	ck_assert(run_until(enough_recs, 5000));
	/* The first request is never answered: only the queue empties. */
	ck_assert(run_until(crm_delivered, 2000));
	ck_assert_str_eq(rx.recs[1].id, "t:1:1");
	/* 1 s time-out, then 1 s back-off. */
	d = rx.recs[1].at - rx.recs[0].at;
	ck_assert_msg(d >= 1900 && d < 3200, "retried after %llu ms", (unsigned long long)d);
	ck_assert_uint_eq(stats("crm").retried, 1);
	ck_assert_uint_eq(stats("crm").delivered, 1);
	free(b1);
}
END_TEST

static bool
retried_twice(void)
{
	return stats("crm").retried >= 2;
}

START_TEST(test_refused_then_reload)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;
	uint16_t dead_port;
	char *b1;

	/* A port nobody listens on. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	dead_port = ntohs(sin.sin_port);
	close(fd);
	set_webhook(0, "crm", "/crm", dead_port, NULL, 10);
	b1 = queue_event("crm", "t", 1);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(retried_twice, 4000));
	ck_assert_uint_eq(rx.nrecs, 0);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 1);
	ck_assert(queued_on_disk("crm", "t", 1));
	/* A reload with the same settings: the queue keeps waiting. */
	webhook_sender_set_config(ws, &cfg);
	ck_assert_uint_eq(stats("crm").in_flight, 0);
	/* Reload with the right URL: the waiting queue tries again at once,
	 * its back-off (for the old URL) forgotten. */
	set_webhook(0, "crm", "/crm", rx.port, NULL, 10);
	webhook_sender_set_config(ws, &cfg);
	ck_assert_uint_eq(stats("crm").in_flight, 1);
	ck_assert(run_until(outbox_empty, 6000));
	ck_assert_uint_eq(rx.nrecs, 1);
	ck_assert_str_eq(rx.recs[0].body, b1);
	ck_assert_uint_eq(stats("crm").delivered, 1);
	free(b1);
}
END_TEST

START_TEST(test_parallel_queues)
{
	static const struct action slow[] = {
		{ 200, NULL, NULL, 150 }, { 200, NULL, NULL, 150 }, { 200, NULL, NULL, 150 },
		{ 200, NULL, NULL, 150 }, { 200, NULL, NULL, 150 }, { 200, NULL, NULL, 150 },
	};
	char *b[6];
	uint32_t uid;
	size_t i, na = 0, nb = 0;
	uint64_t t0;

	script("/crm", slow, N_ELEMENTS(slow));
	for (uid = 1; uid <= 3; uid++) {
		b[uid - 1] = queue_event("crm", "a", uid);
		b[uid + 2] = queue_event("crm", "b", uid);
	}
	commit();
	t0 = monotonic_ms();
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, 5000));
	ck_assert_uint_eq(rx.nrecs, 6);
	/* Each queue in its own order, one request at a time; both at once. */
	for (i = 0; i < rx.nrecs; i++) {
		char want[16];

		if (rx.recs[i].id[0] == 'a')
			snprintf(want, sizeof(want), "a:1:%zu", ++na);
		else
			snprintf(want, sizeof(want), "b:1:%zu", ++nb);
		ck_assert_str_eq(rx.recs[i].id, want);
	}
	ck_assert_int_eq(rx.max_per_trig, 1);
	ck_assert_int_eq(rx.max_outstanding, 2);
	/* 3 rounds of 150 ms, not 6 (900 ms). */
	ck_assert_uint_lt(monotonic_ms() - t0, 890);
	for (i = 0; i < 6; i++)
		free(b[i]);
}
END_TEST

static int drain_calls;
static uint64_t drain_delivered;

static void
on_drained(void *arg)
{
	drain_calls++;
	drain_delivered = stats((const char *)arg).delivered;
}

static bool
drain_called(void)
{
	return drain_calls > 0;
}

START_TEST(test_once_mode)
{
	static const struct action fail[] = { { 503, NULL, NULL, 0 } };
	char *b[3];

	drain_calls = 0;
	script("/crm", fail, N_ELEMENTS(fail));
	set_webhook(1, "ops", "/ops", rx.port, NULL, 10);
	b[0] = queue_event("crm", "t", 1);
	b[1] = queue_event("crm", "t", 2);
	b[2] = queue_event("ops", "t", 1);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	webhook_sender_set_once(ws, true);
	webhook_sender_drain(ws, on_drained, (void *)"ops");
	ck_assert_int_eq(drain_calls, 0);
	ck_assert(run_until(drain_called, 5000));
	/* crm failed once and stopped, its events kept; ops delivered. */
	ck_assert_uint_eq(rx.nrecs, 2);
	ck_assert_uint_eq(stats("crm").retried, 1);
	ck_assert_uint_eq(stats("crm").delivered, 0);
	ck_assert_uint_eq(stats("ops").delivered, 1);
	ck_assert_uint_eq(drain_delivered, 1);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 2);
	ck_assert(queued_on_disk("crm", "t", 1));
	ck_assert(queued_on_disk("crm", "t", 2));
	/* No retry happens later, and the callback came exactly once. */
	run_for(1300);
	ck_assert_uint_eq(rx.nrecs, 2);
	ck_assert_int_eq(drain_calls, 1);
	free(b[0]);
	free(b[1]);
	free(b[2]);
}
END_TEST

START_TEST(test_drain_waits_for_in_flight)
{
	static const struct action slow[] = {
		{ 200, NULL, NULL, 400 }, { 200, NULL, NULL, 0 },
	};
	char *b1, *b2;

	drain_calls = 0;
	script("/crm", slow, N_ELEMENTS(slow));
	b1 = queue_event("crm", "t", 1);
	b2 = queue_event("crm", "t", 2);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	want_recs = 1;
	ck_assert(run_until(enough_recs, 3000));
	ck_assert_uint_eq(stats("crm").in_flight, 1);
	webhook_sender_drain(ws, on_drained, (void *)"crm");
	ck_assert_int_eq(drain_calls, 0);
	ck_assert(run_until(drain_called, 3000));
	/* Called once the request in flight was answered... */
	ck_assert_uint_eq(drain_delivered, 1);
	ck_assert_uint_ge(monotonic_ms() - rx.recs[0].at, 380);
	/* ...and the next event was not started. */
	run_for(300);
	ck_assert_uint_eq(rx.nrecs, 1);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 1);
	ck_assert_int_eq(drain_calls, 1);
	/* Idle sender: the callback still comes from the loop, not the call. */
	drain_calls = 0;
	webhook_sender_drain(ws, on_drained, (void *)"crm");
	ck_assert_int_eq(drain_calls, 0);
	ck_assert(run_until(drain_called, 1000));
	free(b1);
	free(b2);
}
END_TEST

START_TEST(test_free_in_flight)
{
	static const struct action hang[] = { { 0, NULL, NULL, 0 } };
	char *b1;

	script("/crm", hang, N_ELEMENTS(hang));
	b1 = queue_event("crm", "t", 1);
	commit();
	ws = webhook_sender_new(base, ob, &cfg);
	want_recs = 1;
	ck_assert(run_until(enough_recs, 3000));
	webhook_sender_free(&ws);
	ck_assert_ptr_null(ws);
	run_for(50);
	ck_assert(queued_on_disk("crm", "t", 1));
	free(b1);
}
END_TEST

/*
 * Fixed bug (webhook.c webhook_attempt_done): a 2xx whose answer then
 * failed (cut off, or its body too slow) counted as a transport error and
 * was retried: the receiver got the event twice. Also, after a 2xx
 * nothing beyond the kept WEBHOOK_REASON_BODY bytes is read: a long or
 * endless answer does not hold the queue until the time-out.
 */
START_TEST(test_2xx_then_transport_error)
{
	static char long_answer[512];
	static const struct {
		const char *answer;
		bool close;
		unsigned timeout;
	} cases[] = {
		/* cut off after 2 of 1000 bytes */
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nok", true, 10 },
		/* the rest never comes: the 1 s time-out ends the attempt */
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nok", false, 1 },
		/* 300 bytes, the rest never comes: not waited for (time-out 30 s) */
		{ long_answer, false, 30 },
	};
	size_t i, n;
	char *b;

	n = (size_t)snprintf(long_answer, sizeof(long_answer),
	    "HTTP/1.1 202 Accepted\r\nContent-Length: 100000\r\n\r\n");
	memset(long_answer + n, 'x', 300);
	long_answer[n + 300] = '\0';
	raw_start();
	ws = webhook_sender_new(base, ob, &cfg);
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		raw.answer = cases[i].answer;
		raw.close = cases[i].close;
		set_webhook(0, "crm", "/crm", raw.port, NULL, cases[i].timeout);
		webhook_sender_set_config(ws, &cfg);
		b = queue_event("crm", "t", (uint32_t)i + 1);
		commit();
		webhook_sender_kick(ws);
		ck_assert_msg(run_until(crm_delivered, 5000), "case %zu", i);
		/* longer than the 1 s back-off: no second request */
		run_for(1300);
		ck_assert_int_eq(raw.requests, (int)i + 1);
		assert_counts("crm", i + 1, 0, 0);
		ck_assert(!queued_on_disk("crm", "t", (uint32_t)i + 1));
		free(b);
	}
}
END_TEST

/*
 * Fixed bug (webhook.c webhook_attempt_done): a 3xx went to dead letters
 * at once and the queue went on: one http -> https redirect buried the
 * whole backlog in seconds. It is retried (never followed), with one error
 * per run of failures that names where it points, but not its path.
 */
START_TEST(test_redirect_retried)
{
	static const struct action acts[] = {
		{ 301, NULL, NULL, 0, "https://hooks.example.com/s3cr3t-path?token=abc" },
		{ 308, NULL, NULL, 0, "https://hooks.example.com/s3cr3t-path?token=abc" },
		{ 200, NULL, NULL, 0, NULL },
	};
	char *b1, *b2, *log;

	script("/crm", acts, N_ELEMENTS(acts));
	cfg.webhook_backoff_max = 1;
	b1 = queue_event("crm", "t", 1);
	b2 = queue_event("crm", "t", 2);
	commit();
	log_capture_start(LOG_LEVEL_ERROR);
	ws = webhook_sender_new(base, ob, &cfg);
	ck_assert(run_until(outbox_empty, 8000));
	log = log_capture_end();
	ck_assert_uint_eq(rx.nrecs, 4);
	ck_assert_str_eq(rx.recs[2].id, "t:1:1");
	ck_assert_str_eq(rx.recs[3].id, "t:1:2");
	assert_counts("crm", 2, 2, 0);
	ck_assert(!file_exists(event_path("dead", "crm", "t", 1, "json")));
	ck_assert(!file_exists(event_path("dead", "crm", "t", 1, "reason")));
	ck_assert_msg(log_count(log, "redirects are not followed") == 1, "%s", log);
	ck_assert_msg(strstr(log, "HTTP 301 redirects to https://hooks.example.com/...") !=
	    NULL, "%s", log);
	ck_assert_ptr_null(strstr(log, "s3cr3t-path"));
	ck_assert_ptr_null(strstr(log, "token=abc"));
	free(log);
	free(b1);
	free(b2);
}
END_TEST

/*
 * Fixed bug (webhook.c webhook_attempt_done): a Retry-After of 10^6 s or
 * more (or an HTTP-date that far ahead) was ignored, and the retry came
 * after the 1 s back-off instead of webhook_backoff_max.
 */
START_TEST(test_retry_after_capped)
{
	/* 99999999 s, and an HTTP-date 30 days ahead: both wait the cap */
	char *log = retry_after_run(503, "99999999", 429, 30 * 86400, 3);

	/* the delay each retry waited, as logged */
	ck_assert_msg(log_count(log, "HTTP 503, retry in 3 s") == 1, "%s", log);
	ck_assert_msg(log_count(log, "HTTP 429, retry in 3 s") == 1, "%s", log);
	ck_assert_int_eq(log_count(log, "retry in"), 2);
	free(log);
}
END_TEST

static Suite *
webhook_suite(void)
{
	Suite *s = suite_create("webhook");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_signature_vector);
	tcase_add_test(tc, test_request);
	tcase_add_test(tc, test_no_secret_no_signature);
	tcase_add_test(tc, test_backoff);
	tcase_add_test(tc, test_retry_after);
	tcase_add_test(tc, test_dead_letter);
	tcase_add_test(tc, test_huge_response);
	tcase_add_test(tc, test_bad_event_files);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_refused_then_reload);
	tcase_add_test(tc, test_parallel_queues);
	tcase_add_test(tc, test_once_mode);
	tcase_add_test(tc, test_drain_waits_for_in_flight);
	tcase_add_test(tc, test_free_in_flight);
	tcase_add_test(tc, test_2xx_then_transport_error);
	tcase_add_test(tc, test_redirect_retried);
	tcase_add_test(tc, test_retry_after_capped);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(webhook_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
