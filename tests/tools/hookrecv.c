/*
 * hookrecv: a small webhook receiver for the demo, the integration tests and
 * benchmarks.
 *
 *   hookrecv [--listen HOST:PORT] [--port-file FILE] [--secret SECRET]
 *            [--quiet] [--status CODE] [--print-json]
 *
 * Answers every POST with --status (default 200), keeping connections
 * alive. With --secret (whsec_<base64> or raw bytes) it checks the Standard
 * Webhooks signature and that webhook-timestamp is within 5 minutes of now.
 * Output per event: "event <webhook-id> signature=ok|bad|none" and the body
 * pretty-printed (default), the compact body on one line (--print-json), or
 * nothing (--quiet). On SIGINT/SIGTERM it prints
 *   hookrecv: <n> events, <bad> bad signatures, first <t0> last <t1>
 * (Unix seconds with microseconds, 0.000000 when no event came) and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "util.h"
#include "webhook.h"

#define TOLERANCE_S 300
#define MAX_BODY (64u * 1024 * 1024)

enum output { OUT_PRETTY, OUT_JSON, OUT_QUIET };

struct hookrecv {
	struct event_base *base;
	unsigned char *key;
	size_t keylen;
	unsigned status;
	enum output output;
	unsigned long long events;
	unsigned long long bad;
	struct timeval first;
	struct timeval last;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: hookrecv [--listen HOST:PORT] [--port-file FILE] "
	    "[--secret SECRET]\n"
	    "                [--quiet] [--status CODE] [--print-json]\n");
}

/* Splits "host:port" or "[v6]:port"; returns 0 or -1. host_r is malloc'd. */
static int
parse_listen(const char *s, char **host_r, uint16_t *port_r)
{
	const char *colon, *hs = s, *he;
	uint32_t port;

	if (*s == '[') {
		he = strchr(s, ']');
		if (he == NULL || he[1] != ':')
			return -1;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		he = colon;
	}
	if (he == hs || parse_u32(colon + 1, &port) < 0 || port > 65535)
		return -1;
	*host_r = xstrndup(hs, (size_t)(he - hs));
	*port_r = (uint16_t)port;
	return 0;
}

static const char *
reason_phrase(unsigned code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* "ok", "bad" or "none" for the request's Standard Webhooks headers. */
static const char *
verify(const struct hookrecv *hr, struct evkeyvalq *h, const char *body,
    size_t len)
{
	const char *id, *ts, *sigs, *p;
	char *expected;
	uint64_t t;
	time_t now = time(NULL);
	size_t elen;
	bool ok = false;

	if (hr->key == NULL)
		return "none";
	id = evhttp_find_header(h, "webhook-id");
	ts = evhttp_find_header(h, "webhook-timestamp");
	sigs = evhttp_find_header(h, "webhook-signature");
	if (id == NULL || ts == NULL || sigs == NULL || parse_u64(ts, &t) < 0)
		return "bad";
	if (t > (uint64_t)now + TOLERANCE_S || t + TOLERANCE_S < (uint64_t)now)
		return "bad";
	expected = webhook_signature(hr->key, hr->keylen, id, ts, body, len);
	if (expected == NULL)
		return "bad";
	elen = strlen(expected);
	/* Several space-separated signatures may be sent (key rotation). */
	for (p = sigs; *p != '\0' && !ok; ) {
		size_t n = strcspn(p, " ");

		if (consttime_equal(p, n, expected, elen))
			ok = true;
		p += n;
		p += strspn(p, " ");
	}
	free(expected);
	return ok ? "ok" : "bad";
}

static void
print_event(const struct hookrecv *hr, const char *id, const char *verdict,
    const char *body, size_t len)
{
	json_t *root;
	char *text = NULL;

	if (hr->output == OUT_QUIET)
		return;
	root = json_loadb(body, len, 0, NULL);
	if (root != NULL) {
		text = json_dumps(root, JSON_PRESERVE_ORDER | (hr->output == OUT_JSON ?
		    JSON_COMPACT : JSON_INDENT(2)));
		json_decref(root);
	}
	if (hr->output == OUT_PRETTY)
		printf("event %s signature=%s\n", id != NULL ? id : "-", verdict);
	if (text != NULL) {
		printf("%s\n", text);
	} else {
		/* Not JSON: shown as received, on one line for --print-json. */
		size_t i;

		for (i = 0; i < len; i++)
			putchar(hr->output == OUT_JSON && (body[i] == '\n' ||
			    body[i] == '\r') ? ' ' : body[i]);
		putchar('\n');
	}
	free(text);
	fflush(stdout);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct hookrecv *hr = arg;
	struct evbuffer *in;
	struct evkeyvalq *h;
	const char *verdict;
	char *body;
	size_t len;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	body = xmalloc(len + 1);
	if (len > 0)
		evbuffer_remove(in, body, len);
	body[len] = '\0';
	h = evhttp_request_get_input_headers(req);
	verdict = verify(hr, h, body, len);
	if (strcmp(verdict, "bad") == 0)
		hr->bad++;
	if (hr->events++ == 0)
		gettimeofday(&hr->first, NULL);
	gettimeofday(&hr->last, NULL);
	print_event(hr, evhttp_find_header(h, "webhook-id"), verdict, body, len);
	free(body);
	evhttp_send_reply(req, (int)hr->status, reason_phrase(hr->status), NULL);
}

static void
on_signal(evutil_socket_t sig ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct hookrecv *hr = arg;

	event_base_loopbreak(hr->base);
}

static int
write_port_file(const char *path, uint16_t port)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u\n", (unsigned)port);

	return write_file_atomic(path, buf, (size_t)n, 0644);
}

static uint16_t
bound_port(struct evhttp_bound_socket *bs)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "secret", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "status", required_argument, NULL, 'S' },
		{ "print-json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct hookrecv hr;
	struct evhttp *http;
	struct evhttp_bound_socket *bs;
	struct event *sigint, *sigterm;
	const char *listen = "127.0.0.1:0", *port_file = NULL, *secret = NULL;
	char *host;
	uint16_t port;
	uint32_t code;
	int c;

	memset(&hr, 0, sizeof(hr));
	hr.status = 200;
	hr.output = OUT_PRETTY;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 's':
			secret = optarg;
			break;
		case 'q':
			hr.output = OUT_QUIET;
			break;
		case 'j':
			hr.output = OUT_JSON;
			break;
		case 'S':
			if (parse_u32(optarg, &code) < 0 || code < 100 || code > 599) {
				fprintf(stderr, "hookrecv: bad --status %s\n", optarg);
				return EX_USAGE;
			}
			hr.status = code;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (parse_listen(listen, &host, &port) < 0) {
		fprintf(stderr, "hookrecv: bad --listen %s (HOST:PORT)\n", listen);
		return EX_USAGE;
	}
	if (secret != NULL && strncmp(secret, "whsec_", 6) == 0) {
		if (base64_decode(secret + 6, strlen(secret + 6), &hr.key,
		    &hr.keylen) < 0) {
			fprintf(stderr, "hookrecv: --secret whsec_...: bad base64\n");
			free(host);
			return EX_USAGE;
		}
	} else if (secret != NULL) {
		hr.keylen = strlen(secret);
		hr.key = (unsigned char *)xstrndup(secret, hr.keylen);
	}
	signal(SIGPIPE, SIG_IGN);
	hr.base = event_base_new();
	http = hr.base != NULL ? evhttp_new(hr.base) : NULL;
	if (http == NULL) {
		fprintf(stderr, "hookrecv: cannot initialise libevent\n");
		return EX_OSERR;
	}
	evhttp_set_max_body_size(http, MAX_BODY);
	evhttp_set_timeout(http, 120);
	evhttp_set_gencb(http, on_request, &hr);
	bs = evhttp_bind_socket_with_handle(http, host, port);
	if (bs == NULL) {
		fprintf(stderr, "hookrecv: cannot listen on %s: %s\n", listen,
		    strerror(errno));
		return EX_UNAVAILABLE;
	}
	port = bound_port(bs);
	if (port_file != NULL && write_port_file(port_file, port) < 0) {
		fprintf(stderr, "hookrecv: cannot write %s: %s\n", port_file,
		    strerror(errno));
		return EX_CANTCREAT;
	}
	if (hr.output != OUT_QUIET)
		fprintf(stderr, "hookrecv: listening on %s port %u\n", host,
		    (unsigned)port);
	sigint = evsignal_new(hr.base, SIGINT, on_signal, &hr);
	sigterm = evsignal_new(hr.base, SIGTERM, on_signal, &hr);
	if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) < 0 ||
	    evsignal_add(sigterm, NULL) < 0) {
		fprintf(stderr, "hookrecv: cannot catch signals\n");
		return EX_OSERR;
	}
	event_base_dispatch(hr.base);
	printf("hookrecv: %llu events, %llu bad signatures, first %lld.%06ld "
	    "last %lld.%06ld\n", hr.events, hr.bad, (long long)hr.first.tv_sec,
	    (long)hr.first.tv_usec, (long long)hr.last.tv_sec,
	    (long)hr.last.tv_usec);
	fflush(stdout);
	event_free(sigint);
	event_free(sigterm);
	evhttp_free(http);
	event_base_free(hr.base);
	free(hr.key);
	free(host);
	return 0;
}
