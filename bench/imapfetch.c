/*
 * bench/imapfetch: how fast Dovecot alone answers imaphook's poll, for
 * `make bench` (the "limit" row).
 *
 *   imapfetch --host H --port P [--plain] --user U --pass P --conns N
 *             [--content BYTES] [--batch 500] MAILBOX...
 *
 * Opens N connections (one thread each, implicit TLS unless --plain) to the
 * account and has them take the mailboxes one after the other from a shared
 * list; for each mailbox it sends what an imaphook trigger sends on a poll
 * with a backlog: STATUS (UIDNEXT UIDVALIDITY MESSAGES), EXAMINE, then
 * UID FETCH lo:hi (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE
 * [BODY.PEEK[]<0.BYTES>]) in windows of --batch UIDs (the last one "lo:*"),
 * then UNSELECT. Responses are only framed (lines and literals) and the
 * untagged FETCH responses counted: no parsing, no JSON.
 *
 * Prints one JSON line: {"messages":N,"bytes":B,"t_start":S,"t_login":L,
 * "t_end":E} (CLOCK_REALTIME seconds; t_login is when the last connection
 * had logged in) and exits 0, or exits 1 with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static const char *host = "127.0.0.1", *port = "993", *user, *pass;
static int plain, nconns = 1;
static unsigned long content, batch = 500;
static char **mailboxes;
static int nmailboxes;
static atomic_int next_mailbox;
static atomic_ullong total_messages, total_bytes;
static SSL_CTX *ctx;
static pthread_mutex_t login_mu = PTHREAD_MUTEX_INITIALIZER;
static double t_login;

struct io {
	int fd;
	SSL *ssl;
	char buf[65536];
	size_t off, len;
	char *line;             /* the current response, literals included */
	size_t llen, lcap;
	unsigned long long bytes;
	unsigned tag;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("imapfetch: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* A decimal number from 1 to max, or die naming the option. */
static unsigned long
num_arg(const char *opt, const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < 1 || v > max)
		die("%s: not a number from 1 to %lu: %s", opt, max, s);
	return v;
}

static int
fill(struct io *io)
{
	int n;

	if (io->ssl != NULL) {
		n = SSL_read(io->ssl, io->buf, sizeof(io->buf));
	} else {
		n = (int)read(io->fd, io->buf, sizeof(io->buf));
	}
	if (n <= 0)
		die("connection closed by the server");
	io->off = 0;
	io->len = (size_t)n;
	io->bytes += (unsigned long long)n;
	return n;
}

static void
line_add(struct io *io, const char *p, size_t n)
{
	if (io->llen + n + 1 > io->lcap) {
		io->lcap = (io->llen + n + 1) * 2;
		io->line = realloc(io->line, io->lcap);
		if (io->line == NULL)
			die("out of memory");
	}
	memcpy(io->line + io->llen, p, n);
	io->llen += n;
	io->line[io->llen] = '\0';
}

/* Reads one response (a line plus its literals) into io->line. Literal
 * bytes are skipped, not stored: only framing matters here. */
static void
read_response(struct io *io)
{
	io->llen = 0;
	for (;;) {
		char *nl;
		size_t n;

		if (io->off == io->len)
			fill(io);
		nl = memchr(io->buf + io->off, '\n', io->len - io->off);
		n = nl != NULL ? (size_t)(nl - (io->buf + io->off)) + 1 : io->len - io->off;
		line_add(io, io->buf + io->off, n);
		io->off += n;
		if (nl == NULL)
			continue;
		/* a line ending in {N}\r\n announces N literal bytes */
		if (io->llen >= 4 && io->line[io->llen - 3] == '}') {
			char *open = memrchr(io->line, '{', io->llen);
			unsigned long long lit;

			if (open == NULL)
				return;
			lit = strtoull(open + 1, NULL, 10);
			while (lit > 0) {
				size_t take;

				if (io->off == io->len)
					fill(io);
				take = io->len - io->off;
				if (take > lit)
					take = (size_t)lit;
				io->off += take;
				lit -= take;
			}
			continue;
		}
		return;
	}
}

static void
send_cmd(struct io *io, char *tag, size_t tagsz, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int n, k;

	snprintf(tag, tagsz, "b%u", ++io->tag);
	n = snprintf(cmd, sizeof(cmd), "%s ", tag);
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "\r\n");
	k = io->ssl != NULL ? SSL_write(io->ssl, cmd, n) : (int)write(io->fd, cmd, (size_t)n);
	if (k != n)
		die("write failed");
}

/* Runs a command; returns the number of untagged FETCH responses, and
 * *uidnext_r from a STATUS answer when asked. */
static unsigned long
command(struct io *io, unsigned long *uidnext_r, const char *fmt, ...)
{
	char tag[32], cmd[4096];
	unsigned long fetches = 0;
	size_t tl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	send_cmd(io, tag, sizeof(tag), "%s", cmd);
	tl = strlen(tag);
	for (;;) {
		read_response(io);
		if (strncmp(io->line, tag, tl) == 0 && io->line[tl] == ' ') {
			if (strncmp(io->line + tl + 1, "OK", 2) != 0)
				die("%s: %s", cmd, io->line);
			return fetches;
		}
		if (io->line[0] == '*') {
			char *p = io->line + 2;

			while (*p >= '0' && *p <= '9')
				p++;
			if (strncmp(p, " FETCH ", 7) == 0)
				fetches++;
			if (uidnext_r != NULL) {
				char *u = strstr(io->line, "UIDNEXT ");

				if (u != NULL)
					*uidnext_r = strtoul(u + 8, NULL, 10);
			}
		}
	}
}

static void *
worker(void *arg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct io *io = calloc(1, sizeof(*io));
	unsigned long long msgs = 0;
	char items[256];
	int one = 1, i;

	(void)arg;
	if (io == NULL || getaddrinfo(host, port, &hints, &ai) != 0)
		die("cannot resolve %s", host);
	io->fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (io->fd < 0 || connect(io->fd, ai->ai_addr, ai->ai_addrlen) < 0)
		die("cannot connect to %s:%s", host, port);
	freeaddrinfo(ai);
	setsockopt(io->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!plain) {
		io->ssl = SSL_new(ctx);
		SSL_set_fd(io->ssl, io->fd);
		SSL_set_tlsext_host_name(io->ssl, "localhost");
		if (SSL_connect(io->ssl) != 1)
			die("TLS handshake failed");
	}
	read_response(io);     /* greeting */
	command(io, NULL, "LOGIN \"%s\" \"%s\"", user, pass);
	pthread_mutex_lock(&login_mu);
	t_login = now();
	pthread_mutex_unlock(&login_mu);
	if (content > 0)
		snprintf(items, sizeof(items), "UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE "
		    "BODY.PEEK[]<0.%lu>", content);
	else
		snprintf(items, sizeof(items), "UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE");
	while ((i = atomic_fetch_add(&next_mailbox, 1)) < nmailboxes) {
		unsigned long uidnext = 0, lo = 1;

		command(io, &uidnext, "STATUS \"%s\" (UIDNEXT UIDVALIDITY MESSAGES)", mailboxes[i]);
		command(io, NULL, "EXAMINE \"%s\"", mailboxes[i]);
		while (uidnext > lo) {
			if (uidnext - lo > batch) {
				msgs += command(io, NULL, "UID FETCH %lu:%lu (%s)", lo, lo + batch - 1,
				    items);
				lo += batch;
			} else {
				msgs += command(io, NULL, "UID FETCH %lu:* (%s)", lo, items);
				break;
			}
		}
		command(io, NULL, "UNSELECT");
	}
	command(io, NULL, "LOGOUT");
	atomic_fetch_add(&total_messages, msgs);
	atomic_fetch_add(&total_bytes, io->bytes);
	if (io->ssl != NULL)
		SSL_free(io->ssl);
	close(io->fd);
	free(io->line);
	free(io);
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t *th;
	double t0, t1;
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--host") == 0 && i + 1 < argc)
			host = argv[++i];
		else if (strcmp(a, "--port") == 0 && i + 1 < argc)
			port = argv[++i];
		else if (strcmp(a, "--plain") == 0)
			plain = 1;
		else if (strcmp(a, "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(a, "--pass") == 0 && i + 1 < argc)
			pass = argv[++i];
		else if (strcmp(a, "--conns") == 0 && i + 1 < argc)
			nconns = (int)num_arg(a, argv[++i], 10000);
		else if (strcmp(a, "--content") == 0 && i + 1 < argc)
			content = num_arg(a, argv[++i], 64ul << 20);
		else if (strcmp(a, "--batch") == 0 && i + 1 < argc)
			batch = num_arg(a, argv[++i], 1000000);
		else if (a[0] == '-')
			die("unknown option %s", a);
		else
			break;
	}
	mailboxes = argv + i;
	nmailboxes = argc - i;
	if (user == NULL || pass == NULL || nmailboxes == 0 || nconns < 1 || batch < 1)
		die("usage: imapfetch --host H --port P [--plain] --user U --pass P --conns N "
		    "[--content BYTES] [--batch N] MAILBOX...");
	if (!plain) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL)
			die("SSL_CTX_new failed");
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	th = calloc((size_t)nconns, sizeof(*th));
	t0 = now();
	for (i = 0; i < nconns; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0)
			die("pthread_create failed");
	for (i = 0; i < nconns; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	printf("{\"messages\":%llu,\"bytes\":%llu,\"t_start\":%.6f,\"t_login\":%.6f,"
	    "\"t_end\":%.6f}\n", (unsigned long long)total_messages,
	    (unsigned long long)total_bytes, t0, t_login, t1);
	return 0;
}
