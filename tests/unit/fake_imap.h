/*
 * fake_imap: a scripted IMAP server for the unit tests of imap_cmd,
 * imap_conn and imap_pool (each includes it once; everything is static).
 *
 * It listens on 127.0.0.1:0 in the test's own event_base, so client and
 * server run in one loop and one thread. The server does nothing by
 * itself: a test accepts a connection (fake_peer), sends the server's
 * bytes (fake_send), checks every byte the client wrote, in order
 * (fake_expect), checks that the client is waiting (fake_quiet), or closes
 * (fake_close). FAKE_WAIT(srv, cond) runs the loop until cond holds and
 * fails the test after FAKE_WAIT_MS.
 */
#ifndef IMAPHOOK_TEST_FAKE_IMAP_H
#define IMAPHOOK_TEST_FAKE_IMAP_H

#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/tls1.h>

#include "config.h"
#include "util.h"

#define FAKE_MAX_PEERS 16
#define FAKE_WAIT_MS 5000

struct fake_srv;

/* One accepted connection, seen from the server. */
struct fake_peer {
	struct fake_srv *srv;
	struct bufferevent *bev;        /* NULL once closed */
	struct str in;                  /* every byte the client sent */
	size_t pos;                     /* bytes fake_expect has checked */
	bool eof;                       /* the client closed its end */
};

struct fake_srv {
	struct event_base *base;
	struct evconnlistener *lis;
	struct event *tick;             /* keeps EVLOOP_ONCE from blocking */
	uint16_t port;
	struct fake_peer peers[FAKE_MAX_PEERS];
	unsigned npeers;
};

/* Bytes as C source would show them, for failure messages. */
static inline const char *
fake_show(const char *s, size_t len)
{
	static char buf[4][600];
	static int next;
	char *out = buf[next++ % 4];
	size_t i, o = 0;

	for (i = 0; i < len && o < sizeof(buf[0]) - 8; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			o += (size_t)snprintf(out + o, 8, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(out + o, 8, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

static inline void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake_peer *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	str_append_n(&p->in, evbuffer_pullup(in, (ssize_t)n), n);
	evbuffer_drain(in, n);
}

static inline void
fake_event_cb(struct bufferevent *bev ATTR_UNUSED, short what, void *arg)
{
	struct fake_peer *p = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		p->eof = true;
}

static inline void
fake_accept_cb(struct evconnlistener *lis ATTR_UNUSED, evutil_socket_t fd,
    struct sockaddr *sa ATTR_UNUSED, int salen ATTR_UNUSED, void *arg)
{
	struct fake_srv *srv = arg;
	struct fake_peer *p;

	ck_assert_uint_lt(srv->npeers, FAKE_MAX_PEERS);
	p = &srv->peers[srv->npeers++];
	p->srv = srv;
	str_init(&p->in);
	str_append_n(&p->in, "", 0);
	p->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(p->bev);
	bufferevent_setcb(p->bev, fake_read_cb, NULL, fake_event_cb, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

static inline void
fake_tick_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg ATTR_UNUSED)
{
}

static inline void
fake_start(struct fake_srv *srv, struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct timeval tv = { 0, 5000 };

	memset(srv, 0, sizeof(*srv));
	srv->base = base;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv->lis = evconnlistener_new_bind(base, fake_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin,
	    sizeof(sin));
	ck_assert_ptr_nonnull(srv->lis);
	ck_assert_int_eq(getsockname(evconnlistener_get_fd(srv->lis),
	    (struct sockaddr *)&sin, &len), 0);
	srv->port = ntohs(sin.sin_port);
	srv->tick = event_new(base, -1, EV_PERSIST, fake_tick_cb, NULL);
	event_add(srv->tick, &tv);
}

/* Closes the server's end of p, after writing what fake_send queued
 * (the client sees those bytes, then EOF). */
static inline void
fake_close(struct fake_peer *p)
{
	struct evbuffer *out;
	const unsigned char *data;
	size_t len;
	ssize_t n;

	if (p->bev == NULL)
		return;
	/* (the bufferevent's output cannot be drained from outside) */
	out = bufferevent_get_output(p->bev);
	len = evbuffer_get_length(out);
	data = len > 0 ? evbuffer_pullup(out, (ssize_t)len) : NULL;
	while (len > 0 && (n = write(bufferevent_getfd(p->bev), data, len)) > 0) {
		data += n;
		len -= (size_t)n;
	}
	bufferevent_free(p->bev);
	p->bev = NULL;
}

static inline void
fake_stop(struct fake_srv *srv)
{
	unsigned i;

	for (i = 0; i < srv->npeers; i++) {
		fake_close(&srv->peers[i]);
		str_free(&srv->peers[i].in);
	}
	if (srv->lis != NULL)
		evconnlistener_free(srv->lis);
	if (srv->tick != NULL)
		event_free(srv->tick);
	memset(srv, 0, sizeof(*srv));
}

/* Runs the loop until cond holds; fails the test after FAKE_WAIT_MS. */
#define FAKE_WAIT(srv, cond) do {                                               \
	uint64_t fake_deadline_ = monotonic_ms() + FAKE_WAIT_MS;                \
	while (!(cond)) {                                                       \
		ck_assert_msg(monotonic_ms() < fake_deadline_,                  \
		    "timed out waiting for: %s", #cond);                        \
		event_base_loop((srv)->base, EVLOOP_ONCE);                      \
	}                                                                       \
} while (0)

/* Runs the loop for ms milliseconds. */
static inline void
fake_run_ms(struct fake_srv *srv, unsigned ms)
{
	uint64_t end = monotonic_ms() + ms;

	while (monotonic_ms() < end)
		event_base_loop(srv->base, EVLOOP_ONCE);
}

/* The i-th connection the server accepted (waits for it). */
static inline struct fake_peer *
fake_peer(struct fake_srv *srv, unsigned i)
{
	FAKE_WAIT(srv, srv->npeers > i);
	return &srv->peers[i];
}

static inline void
fake_sendn(struct fake_peer *p, const void *data, size_t len)
{
	ck_assert_ptr_nonnull(p->bev);
	ck_assert_int_eq(bufferevent_write(p->bev, data, len), 0);
}

static inline void
fake_send(struct fake_peer *p, const char *text)
{
	fake_sendn(p, text, strlen(text));
}

/* The next bytes from the client must be exactly data[0..len). */
static inline void
fake_expect_n(struct fake_peer *p, const void *data, size_t len)
{
	struct fake_srv *srv = p->srv;

	FAKE_WAIT(srv, p->in.len - p->pos >= len || p->eof);
	if (p->in.len - p->pos < len || memcmp(p->in.data + p->pos, data, len) != 0)
		ck_abort_msg("client wrote \"%s\", expected \"%s\"",
		    fake_show(p->in.data + p->pos, p->in.len - p->pos),
		    fake_show(data, len));
	p->pos += len;
}

static inline void
fake_expect(struct fake_peer *p, const char *text)
{
	fake_expect_n(p, text, strlen(text));
}

/* The client writes nothing more for ms milliseconds. */
static inline void
fake_quiet(struct fake_peer *p, unsigned ms)
{
	fake_run_ms(p->srv, ms);
	ck_assert_msg(p->in.len == p->pos, "unexpected bytes from the client: \"%s\"",
	    fake_show(p->in.data + p->pos, p->in.len - p->pos));
}

/* Waits until the client closes its end; nothing unexpected before. */
static inline void
fake_expect_eof(struct fake_peer *p)
{
	FAKE_WAIT(p->srv, p->eof);
	ck_assert_msg(p->in.len == p->pos, "unexpected bytes from the client: \"%s\"",
	    fake_show(p->in.data + p->pos, p->in.len - p->pos));
}

/* A plain-text connection to the fake server: user "me", password
 * "s3cr3t", time-out 5 s, 2 connections. */
static inline void
fake_cfg(struct cfg_connection *cfg, const struct fake_srv *srv)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = (char *)"fake";
	cfg->host = (char *)"127.0.0.1";
	cfg->port = srv->port;
	cfg->secure = false;
	cfg->starttls = false;
	cfg->username = (char *)"me";
	cfg->password = (char *)"s3cr3t";
	cfg->auth = CFG_AUTH_LOGIN;
	cfg->min_tls_version = TLS1_2_VERSION;
	cfg->max_tls_version = TLS1_3_VERSION;
	cfg->tls_verify = true;
	cfg->max_connections = 2;
	cfg->timeout = 5;
	cfg->idle_restart = 1500;
}

/*
 * The server's side of a LOGIN set-up: a greeting announcing caps, the
 * client's "A1 LOGIN me s3cr3t", an OK that announces caps again (so no
 * CAPABILITY follows). The client's next tag is A2.
 */
static inline void
fake_login(struct fake_peer *p, const char *caps)
{
	char *line = xasprintf("* OK [CAPABILITY IMAP4rev1 %s] fake ready\r\n", caps);

	fake_send(p, line);
	free(line);
	fake_expect(p, "A1 LOGIN me s3cr3t\r\n");
	line = xasprintf("A1 OK [CAPABILITY IMAP4rev1 %s] logged in\r\n", caps);
	fake_send(p, line);
	free(line);
}

#endif
