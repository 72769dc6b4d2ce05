/*
 * bench/recv: the webhook receiver of `make bench`.
 *
 *   recv [--listen HOST:PORT] [--port-file FILE]
 *
 * One thread, epoll, HTTP/1.1 keep-alive (and pipelining), no TLS. Every
 * POST is answered "200 OK" with an empty body as soon as its body is in,
 * and recorded: arrival time (CLOCK_REALTIME, microseconds), the request
 * path, and the value of the first "messageId":"..." in the body (the
 * envelope's Message-ID; the latency scenario matches on it). Nothing is
 * parsed beyond that: it is meant never to be the bottleneck (bench/run.py
 * measures its ceiling with wrk).
 *
 * Control requests (GET, answered with text/plain):
 *   /stats         one line per POST path: "PATH COUNT FIRST_US LAST_US"
 *   /log?PATH      one line per POST to PATH: "ARRIVAL_US MESSAGE_ID"
 *   /reset         forgets everything recorded
 *
 * SIGTERM/SIGINT: exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADER (64 * 1024)
#define MAX_PATHS 256
#define MSGID_MAX 200

struct rec {
	int64_t t_us;
	uint16_t path;
	char *msgid;
};

struct pathstat {
	char *path;
	uint64_t count;
	int64_t first, last;
};

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
	char *out;
	size_t olen, ocap, ooff;
	int closing;
};

static struct rec *recs;
static size_t nrecs, caprecs;
static struct pathstat paths[MAX_PATHS];
static size_t npaths;
static volatile sig_atomic_t stop;
static int epfd;

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		perror("recv: realloc");
		exit(1);
	}
	return p;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static unsigned
path_index(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < npaths; i++)
		if (strlen(paths[i].path) == n && memcmp(paths[i].path, p, n) == 0)
			return (unsigned)i;
	if (npaths == MAX_PATHS)
		return MAX_PATHS - 1;
	paths[npaths].path = strndup(p, n);
	paths[npaths].count = 0;
	return (unsigned)npaths++;
}

static void
out_add(struct conn *c, const char *s, size_t n)
{
	if (c->olen + n > c->ocap) {
		c->ocap = (c->olen + n) * 2 + 256;
		c->out = xrealloc(c->out, c->ocap);
	}
	memcpy(c->out + c->olen, s, n);
	c->olen += n;
}

static void
reply_text(struct conn *c, const char *body, size_t n)
{
	char h[128];
	int hl = snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n\r\n", n);

	out_add(c, h, (size_t)hl);
	out_add(c, body, n);
}

struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < s->cap - s->len) {
			s->len += (size_t)n;
			return;
		}
		s->cap = s->cap * 2 + (size_t)n + 256;
		s->p = xrealloc(s->p, s->cap);
	}
}

static void
control(struct conn *c, const char *target, size_t tlen)
{
	struct sbuf s = { xrealloc(NULL, 4096), 0, 4096 };
	size_t i;

	s.p[0] = '\0';
	if (tlen == 6 && memcmp(target, "/stats", 6) == 0) {
		for (i = 0; i < npaths; i++)
			sb_printf(&s, "%s %llu %lld %lld\n", paths[i].path,
			    (unsigned long long)paths[i].count, (long long)paths[i].first,
			    (long long)paths[i].last);
	} else if (tlen >= 5 && memcmp(target, "/log?", 5) == 0) {
		unsigned want = MAX_PATHS;

		for (i = 0; i < npaths; i++)
			if (strlen(paths[i].path) == tlen - 5 &&
			    memcmp(paths[i].path, target + 5, tlen - 5) == 0)
				want = (unsigned)i;
		for (i = 0; want != MAX_PATHS && i < nrecs; i++)
			if (recs[i].path == want)
				sb_printf(&s, "%lld %s\n", (long long)recs[i].t_us,
				    recs[i].msgid != NULL ? recs[i].msgid : "-");
	} else if (tlen == 6 && memcmp(target, "/reset", 6) == 0) {
		for (i = 0; i < nrecs; i++)
			free(recs[i].msgid);
		nrecs = 0;
		for (i = 0; i < npaths; i++)
			free(paths[i].path);
		npaths = 0;
		sb_printf(&s, "ok\n");
	}
	reply_text(c, s.p, s.len);
	free(s.p);
}

static void
record(const char *path, size_t plen, const char *body, size_t blen, int64_t t)
{
	static const char key[] = "\"messageId\":\"";
	unsigned pi = path_index(path, plen);
	const char *m, *e;
	struct rec *r;

	if (nrecs == caprecs) {
		caprecs = caprecs ? caprecs * 2 : 65536;
		recs = xrealloc(recs, caprecs * sizeof(*recs));
	}
	r = &recs[nrecs++];
	r->t_us = t;
	r->path = (uint16_t)pi;
	r->msgid = NULL;
	m = memmem(body, blen, key, sizeof(key) - 1);
	if (m != NULL) {
		m += sizeof(key) - 1;
		e = memchr(m, '"', blen - (size_t)(m - body));
		if (e != NULL && e - m < MSGID_MAX)
			r->msgid = strndup(m, (size_t)(e - m));
	}
	if (paths[pi].count++ == 0)
		paths[pi].first = t;
	paths[pi].last = t;
}

/* Case-insensitive search for header NAME in [h, end); returns the value. */
static const char *
header_value(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *line = h;

	while (line < end) {
		const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - line) > nl && line[nl] == ':' &&
		    strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		line = eol + 2;
	}
	return NULL;
}

/* Decodes a chunked body in place; returns its length, or -1 when
 * incomplete; *consumed is the encoded length. */
static long
dechunk(char *p, size_t avail, size_t *consumed)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *eol = memmem(p + in, avail - in, "\r\n", 2);
		unsigned long n;

		if (eol == NULL)
			return -1;
		n = strtoul(p + in, NULL, 16);
		in = (size_t)(eol - p) + 2;
		if (n == 0) {
			/* no trailers expected: the final CRLF */
			if (avail - in < 2)
				return -1;
			*consumed = in + 2;
			return (long)out;
		}
		if (avail - in < n + 2)
			return -1;
		memmove(p + out, p + in, n);
		out += n;
		in += n + 2;
	}
}

/* Handles every complete request in c->buf; returns -1 to close. */
static int
process(struct conn *c)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	size_t off = 0;

	for (;;) {
		char *start = c->buf + off, *hend, *sp1, *sp2;
		size_t avail = c->len - off, hlen, vlen, total, blen;
		const char *v;
		int is_post, close_after = 0;

		hend = memmem(start, avail, "\r\n\r\n", 4);
		if (hend == NULL) {
			if (avail > MAX_HEADER)
				return -1;
			break;
		}
		hlen = (size_t)(hend - start) + 4;
		sp1 = memchr(start, ' ', hlen);
		sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(hend - sp1 - 1)) : NULL;
		if (sp1 == NULL || sp2 == NULL)
			return -1;
		is_post = sp1 - start == 4 && memcmp(start, "POST", 4) == 0;
		v = header_value(start, hend + 2, "Connection", &vlen);
		if (v != NULL && vlen >= 5 && strncasecmp(v, "close", 5) == 0)
			close_after = 1;
		v = header_value(start, hend + 2, "Transfer-Encoding", &vlen);
		if (v != NULL && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0) {
			size_t used;
			long n = dechunk(start + hlen, avail - hlen, &used);

			if (n < 0)
				break;
			blen = (size_t)n;
			total = hlen + used;
		} else {
			v = header_value(start, hend + 2, "Content-Length", &vlen);
			blen = v != NULL ? strtoul(v, NULL, 10) : 0;
			if (avail - hlen < blen) {
				/* make room for the whole body at once */
				if (off + hlen + blen > c->cap) {
					c->cap = off + hlen + blen + 4096;
					c->buf = xrealloc(c->buf, c->cap);
				}
				break;
			}
			total = hlen + blen;
		}
		if (is_post) {
			record(sp1 + 1, (size_t)(sp2 - sp1 - 1), start + hlen, blen, now_us());
			out_add(c, ok, sizeof(ok) - 1);
		} else {
			control(c, sp1 + 1, (size_t)(sp2 - sp1 - 1));
		}
		off += total;
		if (close_after) {
			c->closing = 1;
			break;
		}
	}
	if (off > 0) {
		memmove(c->buf, c->buf + off, c->len - off);
		c->len -= off;
	}
	return 0;
}

static void
conn_close(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	free(c->out);
	free(c);
}

static int
flush_out(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -1;
		}
		c->ooff += (size_t)n;
	}
	c->olen = c->ooff = 0;
	return 0;
}

static void
conn_event(struct conn *c, uint32_t ev)
{
	struct epoll_event e;
	int r;

	if (ev & EPOLLIN) {
		for (;;) {
			ssize_t n;

			if (c->cap - c->len < 16384) {
				c->cap = c->cap * 2 + 16384;
				c->buf = xrealloc(c->buf, c->cap);
			}
			n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					break;
				conn_close(c);
				return;
			}
			if (n == 0) {
				conn_close(c);
				return;
			}
			c->len += (size_t)n;
			if ((size_t)n < 16384)
				break;
		}
		if (process(c) < 0) {
			conn_close(c);
			return;
		}
	}
	r = flush_out(c);
	if (r < 0 || (r == 0 && c->closing)) {
		conn_close(c);
		return;
	}
	e.events = EPOLLIN | (r > 0 ? EPOLLOUT : 0);
	e.data.ptr = c;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

int
main(int argc, char **argv)
{
	const char *listen_on = "127.0.0.1:0", *port_file = NULL;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct epoll_event e, evs[256];
	struct sigaction sact;
	char host[64];
	const char *colon;
	char *end;
	unsigned long port;
	int lfd, one = 1, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen_on = argv[++i];
		else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
			port_file = argv[++i];
		else {
			fprintf(stderr, "usage: recv [--listen HOST:PORT] [--port-file FILE]\n");
			return 64;
		}
	}
	colon = strrchr(listen_on, ':');
	if (colon == NULL || (size_t)(colon - listen_on) >= sizeof(host)) {
		fprintf(stderr, "recv: bad --listen %s\n", listen_on);
		return 64;
	}
	memcpy(host, listen_on, (size_t)(colon - listen_on));
	host[colon - listen_on] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || colon[1] == '-' || port > 65535) {
		fprintf(stderr, "recv: bad port in --listen %s\n", listen_on);
		return 64;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "recv: bad address %s\n", host);
		return 64;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1024) < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("recv: listen");
		return 69;
	}
	if (port_file != NULL) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		if (f == NULL || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 ||
		    fclose(f) != 0 || rename(tmp, port_file) < 0) {
			perror("recv: port file");
			return 73;
		}
	}
	memset(&sact, 0, sizeof(sact));
	sact.sa_handler = on_signal;
	sigaction(SIGTERM, &sact, NULL);
	sigaction(SIGINT, &sact, NULL);
	signal(SIGPIPE, SIG_IGN);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	e.events = EPOLLIN;
	e.data.ptr = NULL;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e);
	while (!stop) {
		int n = epoll_wait(epfd, evs, 256, 1000);

		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct conn *c = calloc(1, sizeof(*c));

					if (c == NULL) {
						close(fd);
						continue;
					}
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					c->fd = fd;
					e.events = EPOLLIN;
					e.data.ptr = c;
					epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			conn_event(evs[i].data.ptr, evs[i].events);
		}
	}
	return 0;
}
