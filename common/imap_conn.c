/* imap_conn: see imap_conn.h */
#include "imap_conn.h"

#include <sys/queue.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "imap_utf7.h"
#include "log.h"
#include "util.h"

/* One piece of a command: bytes to write, then maybe wait for "+". */
struct imap_seg {
	struct str data;
	bool wait_cont;
};

struct imap_cmd {
	struct imap_conn *conn;
	TAILQ_ENTRY(imap_cmd) entry;
	char tag[16];
	struct imap_seg *segs;
	size_t nsegs;
	size_t next_seg;        /* next segment to write */
	bool secret;
	bool internal;          /* a set-up step of the connection itself */
	imap_done_cb *done;
	imap_untagged_cb *untagged;
	void *arg;
};
TAILQ_HEAD(imap_cmd_list, imap_cmd);

struct imap_conn {
	int refs;
	enum imap_conn_state state;
	char *name;
	const struct cfg_connection *cfg;
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl_ctx;
	SSL *ssl;               /* owned by the bufferevent once handed over */
	struct bufferevent *bev;
	struct imap_parser *parser;
	struct event *timer;    /* connect/greeting/command time-out */

	struct imap_cmd_list queued;    /* not yet (fully) written */
	struct imap_cmd_list sent;      /* written, awaiting the tagged answer */
	struct imap_cmd *waiting_cont;  /* holds the queue until "+" */
	unsigned next_tag;

	char **caps;
	size_t ncaps;
	bool preauth;
	char *bye;              /* text of an untagged BYE */
	char *selected;
	bool selected_ro;
	uint64_t last_used;
	bool dispatching;

	imap_conn_cb *ready_cb;
	void *ready_arg;
	imap_conn_cb *lost_cb;
	void *lost_arg;
	imap_untagged_cb *unsolicited_cb;
	void *unsolicited_arg;
};

static const char *const strstate[] = {
	[IMAP_CONN_INIT] = "init",
	[IMAP_CONN_CONNECTING] = "connecting",
	[IMAP_CONN_GREETING] = "greeting",
	[IMAP_CONN_CAPABILITY] = "capability",
	[IMAP_CONN_STARTTLS] = "starttls",
	[IMAP_CONN_TLS_HANDSHAKE] = "tls-handshake",
	[IMAP_CONN_CAPABILITY_TLS] = "capability-tls",
	[IMAP_CONN_AUTH] = "auth",
	[IMAP_CONN_CAPABILITY_AUTH] = "capability-auth",
	[IMAP_CONN_READY] = "ready",
	[IMAP_CONN_LOGOUT] = "logout",
	[IMAP_CONN_CLOSED] = "closed",
};

static void conn_state(struct imap_conn *, enum imap_conn_state);
static void conn_fail(struct imap_conn *, const struct imap_error *);
static void conn_flush(struct imap_conn *);
static void conn_read_cb(struct bufferevent *, void *);
static void conn_event_cb(struct bufferevent *, short, void *);
static void conn_internal_done(struct imap_conn *, const struct imap_reply *, void *);
static void cmd_free(struct imap_cmd *);

/* errors */

void
imap_error_set(struct imap_error *err, enum imap_err kind, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

const char *
imap_err_name(enum imap_err kind)
{
	switch (kind) {
	case IMAP_ERR_NONE: return "none";
	case IMAP_ERR_NO: return "no";
	case IMAP_ERR_BAD: return "bad";
	case IMAP_ERR_CONNECT: return "connect";
	case IMAP_ERR_TLS: return "tls";
	case IMAP_ERR_AUTH: return "auth";
	case IMAP_ERR_PROTOCOL: return "protocol";
	case IMAP_ERR_TIMEOUT: return "timeout";
	case IMAP_ERR_CLOSED: return "closed";
	}
	return "unknown";
}

bool
imap_err_is_conn(enum imap_err kind)
{
	return kind != IMAP_ERR_NONE && kind != IMAP_ERR_NO && kind != IMAP_ERR_BAD;
}

/* TLS */

static void
tls_errstr(char *buf, size_t size)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(last, buf, size);
}

SSL_CTX *
imap_tls_ctx_new(const struct cfg_connection *cfg, struct imap_error *err)
{
	SSL_CTX *ctx;
	char ebuf[256];

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, cfg->min_tls_version) ||
	    !SSL_CTX_set_max_proto_version(ctx, cfg->max_tls_version))
		goto fail;
	/* OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) above level 0:
	 * when the operator asked for them, make them really work. */
	if (cfg->min_tls_version < TLS1_2_VERSION) {
		SSL_CTX_set_security_level(ctx, 0);
		if (!SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"))
			goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (cfg->tls_verify) {
		if (!SSL_CTX_set_default_verify_paths(ctx))
			goto fail;
		if (cfg->ca_file != NULL &&
		    !SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL)) {
			tls_errstr(ebuf, sizeof(ebuf));
			imap_error_set(err, IMAP_ERR_TLS, "cannot load ca_file %s: %s",
			    cfg->ca_file, ebuf);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
fail:
	tls_errstr(ebuf, sizeof(ebuf));
	imap_error_set(err, IMAP_ERR_TLS, "TLS set-up failed: %s", ebuf);
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL *
conn_ssl_new(struct imap_conn *conn, struct imap_error *err)
{
	const char *host = conn->cfg->host;
	unsigned char addr[16];
	bool is_ip;
	SSL *ssl;
	char ebuf[256];

	ERR_clear_error();
	ssl = SSL_new(conn->ssl_ctx);
	if (ssl == NULL)
		goto fail;
	is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	if (!is_ip && !SSL_set_tlsext_host_name(ssl, host))
		goto fail;
	if (conn->cfg->tls_verify) {
		if (is_ip) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			if (!X509_VERIFY_PARAM_set1_ip_asc(vp, host))
				goto fail;
		} else if (!SSL_set1_host(ssl, host)) {
			goto fail;
		}
	}
	return ssl;
fail:
	tls_errstr(ebuf, sizeof(ebuf));
	imap_error_set(err, IMAP_ERR_TLS, "TLS set-up failed: %s", ebuf);
	SSL_free(ssl);
	return NULL;
}

/* After a handshake: refuse a finite-field DH key exchange that is smaller
 * than min_dh_size. Returns 0 or -1 with err set. */
static int
conn_check_dh(struct imap_conn *conn, struct imap_error *err)
{
	EVP_PKEY *key = NULL;
	int bits;

	if (conn->ssl == NULL || !SSL_get_peer_tmp_key(conn->ssl, &key))
		return 0;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_DH) {
		bits = EVP_PKEY_get_bits(key);
		if (bits < (int)conn->cfg->min_dh_size) {
			EVP_PKEY_free(key);
			imap_error_set(err, IMAP_ERR_TLS,
			    "server's DH key exchange is %d bits, below min_dh_size %u",
			    bits, conn->cfg->min_dh_size);
			return -1;
		}
	}
	EVP_PKEY_free(key);
	return 0;
}

/* Describes why a TLS handshake failed. */
static void
conn_tls_failure(struct imap_conn *conn, struct imap_error *err)
{
	char ebuf[256];
	unsigned long e;
	long vr;

	vr = conn->ssl != NULL ? SSL_get_verify_result(conn->ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		ERR_clear_error();
		imap_error_set(err, IMAP_ERR_TLS, "TLS handshake with %s:%u failed: "
		    "certificate verify failed: %s", conn->cfg->host, conn->cfg->port,
		    X509_verify_cert_error_string(vr));
		return;
	}
	e = bufferevent_get_openssl_error(conn->bev);
	if (e != 0) {
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		while (bufferevent_get_openssl_error(conn->bev) != 0)
			;
	} else {
		tls_errstr(ebuf, sizeof(ebuf));
	}
	imap_error_set(err, IMAP_ERR_TLS, "TLS handshake with %s:%u failed: %s",
	    conn->cfg->host, conn->cfg->port, ebuf);
}

/* life cycle */

struct imap_conn *
imap_conn_new(struct event_base *base, struct evdns_base *dns,
    const struct cfg_connection *cfg, SSL_CTX *ssl_ctx, const char *name)
{
	struct imap_conn *conn = xcalloc(1, sizeof(*conn));

	conn->refs = 1;
	conn->state = IMAP_CONN_INIT;
	conn->name = xstrdup(name);
	conn->cfg = cfg;
	conn->base = base;
	conn->dns = dns;
	if (ssl_ctx != NULL) {
		SSL_CTX_up_ref(ssl_ctx);
		conn->ssl_ctx = ssl_ctx;
	}
	conn->parser = imap_parser_new(NULL);
	TAILQ_INIT(&conn->queued);
	TAILQ_INIT(&conn->sent);
	conn->next_tag = 1;
	conn->last_used = monotonic_ms();
	return conn;
}

void
imap_conn_ref(struct imap_conn *conn)
{
	conn->refs++;
}

static void
conn_caps_clear(struct imap_conn *conn)
{
	size_t i;

	for (i = 0; i < conn->ncaps; i++)
		free(conn->caps[i]);
	free(conn->caps);
	conn->caps = NULL;
	conn->ncaps = 0;
}

static void
conn_close_transport(struct imap_conn *conn)
{
	if (conn->timer != NULL) {
		event_free(conn->timer);
		conn->timer = NULL;
	}
	if (conn->bev != NULL) {
		bufferevent_free(conn->bev);    /* frees the SSL too */
		conn->bev = NULL;
		conn->ssl = NULL;
	} else if (conn->ssl != NULL) {
		SSL_free(conn->ssl);
		conn->ssl = NULL;
	}
}

static void
conn_destroy(struct imap_conn *conn)
{
	conn_close_transport(conn);
	imap_parser_free(&conn->parser);
	conn_caps_clear(conn);
	if (conn->ssl_ctx != NULL)
		SSL_CTX_free(conn->ssl_ctx);
	free(conn->bye);
	free(conn->selected);
	free(conn->name);
	free(conn);
}

static void
conn_destroy_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	conn_destroy(arg);
}

void
imap_conn_unref(struct imap_conn **connp)
{
	struct imap_conn *conn = *connp;

	*connp = NULL;
	if (conn == NULL || --conn->refs > 0)
		return;
	/* Fail what is left without calling back into a dying owner's
	 * callbacks for the connection itself. */
	conn->ready_cb = NULL;
	conn->lost_cb = NULL;
	if (conn->state != IMAP_CONN_CLOSED) {
		struct imap_error err;

		conn->refs++;   /* conn_fail may call back; keep it alive */
		imap_error_set(&err, IMAP_ERR_CLOSED, "connection closed");
		conn_fail(conn, &err);
		conn->refs--;
	}
	conn_close_transport(conn);
	/* never free inside our own callbacks: next loop turn */
	if (event_base_once(conn->base, -1, EV_TIMEOUT, conn_destroy_cb, conn,
	    &(struct timeval){ 0, 0 }) < 0)
		conn_destroy(conn);
}

void
imap_conn_set_lost_cb(struct imap_conn *conn, imap_conn_cb *lost_cb, void *arg)
{
	conn->lost_cb = lost_cb;
	conn->lost_arg = arg;
}

void
imap_conn_set_unsolicited_cb(struct imap_conn *conn, imap_untagged_cb *cb, void *arg)
{
	conn->unsolicited_cb = cb;
	conn->unsolicited_arg = arg;
}

/* accessors */

enum imap_conn_state
imap_conn_state(const struct imap_conn *conn)
{
	return conn->state;
}

const char *
imap_conn_state_name(enum imap_conn_state state)
{
	return strstate[state];
}

bool
imap_conn_is_ready(const struct imap_conn *conn)
{
	return conn->state == IMAP_CONN_READY;
}

unsigned
imap_conn_pending(const struct imap_conn *conn)
{
	const struct imap_cmd *cmd;
	unsigned n = 0;

	TAILQ_FOREACH(cmd, &conn->queued, entry)
		n++;
	TAILQ_FOREACH(cmd, &conn->sent, entry)
		n++;
	return n;
}

const char *
imap_conn_name(const struct imap_conn *conn)
{
	return conn->name;
}

const struct cfg_connection *
imap_conn_config(const struct imap_conn *conn)
{
	return conn->cfg;
}

bool
imap_conn_has_cap(const struct imap_conn *conn, const char *cap)
{
	size_t i;

	for (i = 0; i < conn->ncaps; i++)
		if (strcasecmp(conn->caps[i], cap) == 0)
			return true;
	return false;
}

const char *const *
imap_conn_caps(const struct imap_conn *conn)
{
	static const char *const none[] = { NULL };

	return conn->caps != NULL ? (const char *const *)conn->caps : none;
}

uint64_t
imap_conn_last_used(const struct imap_conn *conn)
{
	return conn->last_used;
}

const char *
imap_conn_tls_version(const struct imap_conn *conn)
{
	return conn->ssl != NULL ? SSL_get_version(conn->ssl) : NULL;
}

const char *
imap_conn_selected(const struct imap_conn *conn, bool *readonly_r)
{
	if (readonly_r != NULL)
		*readonly_r = conn->selected_ro;
	return conn->selected;
}

void
imap_conn_set_selected(struct imap_conn *conn, const char *mailbox, bool readonly)
{
	free(conn->selected);
	conn->selected = mailbox != NULL ? xstrdup(mailbox) : NULL;
	conn->selected_ro = readonly;
}

/* capabilities from "* CAPABILITY a b" or "[CAPABILITY a b]" */
static void
conn_set_caps(struct imap_conn *conn, const struct imap_arg *args, uint32_t argc)
{
	uint32_t i;

	conn_caps_clear(conn);
	conn->caps = xcalloc(argc + 1, sizeof(char *));
	for (i = 0; i < argc; i++) {
		if (args[i].type != IMAP_ARG_ATOM)
			continue;
		conn->caps[conn->ncaps++] = xstrdup(args[i].v.str);
	}
	conn->caps[conn->ncaps] = NULL;
}

/* timer */

static void
conn_timeout_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct imap_conn *conn = arg;
	struct imap_error err;

	imap_error_set(&err, IMAP_ERR_TIMEOUT, "%s:%u: no answer within %u s (%s)",
	    conn->cfg->host, conn->cfg->port, conn->cfg->timeout, strstate[conn->state]);
	conn_fail(conn, &err);
}

/* Arms the time-out while we wait for the server, disarms it otherwise. */
static void
conn_timer_update(struct imap_conn *conn)
{
	struct timeval tv = { (time_t)conn->cfg->timeout, 0 };
	bool waiting;

	if (conn->timer == NULL)
		return;
	waiting = conn->state != IMAP_CONN_READY || !TAILQ_EMPTY(&conn->sent) ||
	    !TAILQ_EMPTY(&conn->queued);
	if (waiting)
		evtimer_add(conn->timer, &tv);
	else
		evtimer_del(conn->timer);
}

/* commands */

struct imap_cmd *
imap_cmd_new(struct imap_conn *conn)
{
	struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

	cmd->conn = conn;
	cmd->segs = xcalloc(1, sizeof(*cmd->segs));
	cmd->nsegs = 1;
	str_init(&cmd->segs[0].data);
	return cmd;
}

static struct str *
cmd_cur(struct imap_cmd *cmd)
{
	return &cmd->segs[cmd->nsegs - 1].data;
}

void
imap_cmd_add(struct imap_cmd *cmd, const char *text)
{
	str_append(cmd_cur(cmd), text);
}

void
imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_vprintf(cmd_cur(cmd), fmt, ap);
	va_end(ap);
}

void
imap_cmd_literal(struct imap_cmd *cmd, const void *data, size_t len)
{
	bool plus = imap_conn_has_cap(cmd->conn, "LITERAL+");

	if (plus) {
		str_printf(cmd_cur(cmd), "{%zu+}\r\n", len);
		str_append_n(cmd_cur(cmd), data, len);
		return;
	}
	str_printf(cmd_cur(cmd), "{%zu}\r\n", len);
	cmd->segs[cmd->nsegs - 1].wait_cont = true;
	cmd->segs = xreallocarray(cmd->segs, cmd->nsegs + 1, sizeof(*cmd->segs));
	cmd->nsegs++;
	cmd->segs[cmd->nsegs - 1].wait_cont = false;
	str_init(cmd_cur(cmd));
	str_append_n(cmd_cur(cmd), data, len);
}

static bool
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

void
imap_cmd_astring(struct imap_cmd *cmd, const char *s, size_t len)
{
	bool atom = len > 0, quotable = true;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_atom_char(c))
			atom = false;
		if (c < 0x20 || c >= 0x7f)
			quotable = false;
	}
	if (atom && !(len == 3 && strncasecmp(s, "NIL", 3) == 0)) {
		str_append_n(cmd_cur(cmd), s, len);
	} else if (quotable) {
		str_append_c(cmd_cur(cmd), '"');
		for (i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				str_append_c(cmd_cur(cmd), '\\');
			str_append_c(cmd_cur(cmd), s[i]);
		}
		str_append_c(cmd_cur(cmd), '"');
	} else {
		imap_cmd_literal(cmd, s, len);
	}
}

int
imap_cmd_mailbox(struct imap_cmd *cmd, const char *utf8)
{
	char *wire;

	if (strcasecmp(utf8, "INBOX") == 0) {
		imap_cmd_add(cmd, "INBOX");
		return 0;
	}
	wire = imap_utf8_to_utf7(utf8);
	if (wire == NULL)
		return -1;
	imap_cmd_astring(cmd, wire, strlen(wire));
	free(wire);
	return 0;
}

void
imap_cmd_secret(struct imap_cmd *cmd)
{
	cmd->secret = true;
}

static void
cmd_free(struct imap_cmd *cmd)
{
	size_t i;

	for (i = 0; i < cmd->nsegs; i++)
		str_free(&cmd->segs[i].data);
	free(cmd->segs);
	free(cmd);
}

void
imap_cmd_discard(struct imap_cmd **cmdp)
{
	if (*cmdp != NULL)
		cmd_free(*cmdp);
	*cmdp = NULL;
}

/* The verb (and for non-secret commands the first line) for debug logs. */
static void
cmd_log(struct imap_conn *conn, const struct imap_cmd *cmd)
{
	const struct str *s = &cmd->segs[0].data;
	size_t n;

	if (log_get_level() < LOG_LEVEL_DEBUG)
		return;
	n = strcspn(s->data != NULL ? s->data : "", cmd->secret ? " \r" : "\r");
	if (n > 200)
		n = 200;
	log_debug("%s: C: %s %.*s%s", conn->name, cmd->tag, (int)n,
	    s->data != NULL ? s->data : "", cmd->secret ? " <secret>" : "");
}

static void
cmd_deferred_fail_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct imap_cmd *cmd = arg;
	struct imap_conn *conn = cmd->conn;
	struct imap_reply reply = { .status = IMAP_STATUS_NONE };

	imap_error_set(&reply.err, IMAP_ERR_CLOSED, "%s: connection is not open",
	    conn->name);
	if (cmd->done != NULL)
		cmd->done(conn, &reply, cmd->arg);
	cmd_free(cmd);
	imap_conn_unref(&conn);
}

void
imap_cmd_send(struct imap_cmd *cmd, imap_done_cb *done, imap_untagged_cb *untagged, void *arg)
{
	struct imap_conn *conn = cmd->conn;

	cmd->done = done;
	cmd->untagged = untagged;
	cmd->arg = arg;
	snprintf(cmd->tag, sizeof(cmd->tag), "A%u", conn->next_tag++);
	str_append(cmd_cur(cmd), "\r\n");
	if (conn->state == IMAP_CONN_CLOSED || conn->state == IMAP_CONN_LOGOUT ||
	    conn->bev == NULL) {
		imap_conn_ref(conn);
		if (event_base_once(conn->base, -1, EV_TIMEOUT, cmd_deferred_fail_cb,
		    cmd, &(struct timeval){ 0, 0 }) < 0)
			abort();
		return;
	}
	TAILQ_INSERT_TAIL(&conn->queued, cmd, entry);
	conn_flush(conn);
	conn_timer_update(conn);
}

void
imap_conn_cmd(struct imap_conn *conn, const char *text, imap_done_cb *done,
    imap_untagged_cb *untagged, void *arg)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_add(cmd, text);
	imap_cmd_send(cmd, done, untagged, arg);
}

static void
conn_send_internal(struct imap_cmd *cmd)
{
	cmd->internal = true;
	imap_cmd_send(cmd, conn_internal_done, NULL, NULL);
}

static void
conn_internal_cmd(struct imap_conn *conn, const char *text)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_add(cmd, text);
	conn_send_internal(cmd);
}

/* Writes queued commands until one waits for a continuation. */
static void
conn_flush(struct imap_conn *conn)
{
	struct imap_cmd *cmd;

	while (conn->waiting_cont == NULL && conn->bev != NULL &&
	    (cmd = TAILQ_FIRST(&conn->queued)) != NULL) {
		TAILQ_REMOVE(&conn->queued, cmd, entry);
		TAILQ_INSERT_TAIL(&conn->sent, cmd, entry);
		cmd_log(conn, cmd);
		bufferevent_write(conn->bev, cmd->tag, strlen(cmd->tag));
		bufferevent_write(conn->bev, " ", 1);
		while (cmd->next_seg < cmd->nsegs) {
			struct imap_seg *seg = &cmd->segs[cmd->next_seg++];

			bufferevent_write(conn->bev, seg->data.data, seg->data.len);
			if (seg->wait_cont) {
				conn->waiting_cont = cmd;
				break;
			}
		}
	}
}

/* "+" from the server: the rest of a command held by a synchronizing
 * literal may go. */
static void
conn_continuation(struct imap_conn *conn, const struct imap_resp *resp ATTR_UNUSED)
{
	struct imap_cmd *cmd = conn->waiting_cont;
	struct imap_error err;

	if (cmd == NULL) {
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: unexpected continuation "
		    "from server", conn->name);
		conn_fail(conn, &err);
		return;
	}
	conn->waiting_cont = NULL;
	while (cmd->next_seg < cmd->nsegs) {
		struct imap_seg *seg = &cmd->segs[cmd->next_seg++];

		bufferevent_write(conn->bev, seg->data.data, seg->data.len);
		if (seg->wait_cont) {
			conn->waiting_cont = cmd;
			return;
		}
	}
	conn_flush(conn);
}

static void
cmd_complete(struct imap_conn *conn, struct imap_cmd *cmd, const struct imap_reply *reply)
{
	if (conn->waiting_cont == cmd)
		conn->waiting_cont = NULL;
	if (cmd->done != NULL)
		cmd->done(conn, reply, cmd->arg);
	cmd_free(cmd);
}

/* Fails the connection: every pending command completes with err, and the
 * ready or lost callback hears of it. */
static void
conn_fail(struct imap_conn *conn, const struct imap_error *err)
{
	struct imap_reply reply = { .status = IMAP_STATUS_NONE };
	enum imap_conn_state was = conn->state;
	struct imap_cmd *cmd;
	imap_conn_cb *cb;

	if (conn->state == IMAP_CONN_CLOSED)
		return;
	if (was != IMAP_CONN_LOGOUT)
		log_debug("%s: %s", conn->name, err->msg);
	conn_state(conn, IMAP_CONN_CLOSED);
	conn_close_transport(conn);
	imap_conn_set_selected(conn, NULL, false);
	reply.err = *err;
	imap_conn_ref(conn);
	conn->waiting_cont = NULL;
	while ((cmd = TAILQ_FIRST(&conn->sent)) != NULL ||
	    (cmd = TAILQ_FIRST(&conn->queued)) != NULL) {
		if (cmd == TAILQ_FIRST(&conn->sent))
			TAILQ_REMOVE(&conn->sent, cmd, entry);
		else
			TAILQ_REMOVE(&conn->queued, cmd, entry);
		if (cmd->internal)
			cmd_free(cmd);
		else
			cmd_complete(conn, cmd, &reply);
	}
	if (was < IMAP_CONN_READY) {
		cb = conn->ready_cb;
		conn->ready_cb = NULL;
		if (cb != NULL)
			cb(conn, err, conn->ready_arg);
	} else if (was == IMAP_CONN_READY) {
		cb = conn->lost_cb;
		conn->lost_cb = NULL;
		if (cb != NULL)
			cb(conn, err, conn->lost_arg);
	}
	imap_conn_unref(&conn);
}

/* The state machine of the set-up. */
static void
conn_start_auth(struct imap_conn *conn)
{
	const struct cfg_connection *cfg = conn->cfg;
	struct imap_cmd *cmd;
	struct imap_error err;

	if (conn->preauth) {
		conn_state(conn, IMAP_CONN_CAPABILITY_AUTH);
		return;
	}
	if (cfg->auth != CFG_AUTH_LOGIN) {
		imap_error_set(&err, IMAP_ERR_AUTH, "%s: auth = \"xoauth2\" is not "
		    "supported by this build", conn->name);
		conn_fail(conn, &err);
		return;
	}
	cmd = imap_cmd_new(conn);
	imap_cmd_secret(cmd);
	if (imap_conn_has_cap(conn, "AUTH=PLAIN")) {
		struct str plain;
		char *b64;

		/* authzid NUL authcid NUL password */
		str_init(&plain);
		str_append_c(&plain, '\0');
		str_append(&plain, cfg->username);
		str_append_c(&plain, '\0');
		str_append(&plain, cfg->password != NULL ? cfg->password : "");
		b64 = base64_encode(plain.data, plain.len);
		explicit_bzero(plain.data, plain.len);
		str_free(&plain);
		if (imap_conn_has_cap(conn, "SASL-IR")) {
			imap_cmd_add(cmd, "AUTHENTICATE PLAIN ");
			imap_cmd_add(cmd, b64);
		} else {
			/* the response goes after the server's "+" */
			imap_cmd_add(cmd, "AUTHENTICATE PLAIN");
			cmd->segs[0].wait_cont = true;
			cmd->segs = xreallocarray(cmd->segs, 2, sizeof(*cmd->segs));
			cmd->nsegs = 2;
			cmd->segs[1].wait_cont = false;
			str_init(&cmd->segs[1].data);
			str_append(&cmd->segs[0].data, "\r\n");
			str_append(&cmd->segs[1].data, b64);
		}
		explicit_bzero(b64, strlen(b64));
		free(b64);
	} else if (imap_conn_has_cap(conn, "LOGINDISABLED")) {
		cmd_free(cmd);
		imap_error_set(&err, IMAP_ERR_AUTH, "%s: the server disables LOGIN and "
		    "offers no AUTH=PLAIN%s", conn->name,
		    conn->ssl == NULL ? " (try secure = true or starttls = true)" : "");
		conn_fail(conn, &err);
		return;
	} else {
		const char *pw = cfg->password != NULL ? cfg->password : "";

		imap_cmd_add(cmd, "LOGIN ");
		imap_cmd_astring(cmd, cfg->username, strlen(cfg->username));
		imap_cmd_add(cmd, " ");
		imap_cmd_astring(cmd, pw, strlen(pw));
	}
	conn_send_internal(cmd);
}

static void
conn_state(struct imap_conn *conn, enum imap_conn_state next)
{
	struct imap_error err;
	imap_conn_cb *cb;

	log_debug("%s: %s -> %s", conn->name, strstate[conn->state], strstate[next]);
	conn->state = next;
	switch (next) {
	case IMAP_CONN_INIT:
	case IMAP_CONN_CONNECTING:
	case IMAP_CONN_GREETING:
	case IMAP_CONN_LOGOUT:
	case IMAP_CONN_CLOSED:
		break;
	case IMAP_CONN_CAPABILITY:
		/* the greeting may have told us already */
		if (conn->ncaps > 0) {
			if (!conn->cfg->secure && conn->cfg->starttls && conn->ssl == NULL)
				conn_state(conn, IMAP_CONN_STARTTLS);
			else
				conn_state(conn, IMAP_CONN_AUTH);
			return;
		}
		conn_internal_cmd(conn, "CAPABILITY");
		break;
	case IMAP_CONN_CAPABILITY_TLS:
	case IMAP_CONN_CAPABILITY_AUTH:
		if (next == IMAP_CONN_CAPABILITY_AUTH && conn->ncaps > 0) {
			conn_state(conn, IMAP_CONN_READY);
			return;
		}
		conn_internal_cmd(conn, "CAPABILITY");
		break;
	case IMAP_CONN_STARTTLS:
		if (!imap_conn_has_cap(conn, "STARTTLS")) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s:%u does not offer STARTTLS",
			    conn->cfg->host, conn->cfg->port);
			conn_fail(conn, &err);
			return;
		}
		conn_internal_cmd(conn, "STARTTLS");
		break;
	case IMAP_CONN_TLS_HANDSHAKE: {
		struct bufferevent *tls;

		conn->ssl = conn_ssl_new(conn, &err);
		if (conn->ssl == NULL) {
			conn_fail(conn, &err);
			return;
		}
		tls = bufferevent_openssl_filter_new(conn->base, conn->bev, conn->ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (tls == NULL) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: cannot start TLS", conn->name);
			conn_fail(conn, &err);
			return;
		}
		conn->bev = tls;
		bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
		bufferevent_setcb(tls, conn_read_cb, NULL, conn_event_cb, conn);
		bufferevent_enable(tls, EV_READ | EV_WRITE);
		break;
	}
	case IMAP_CONN_AUTH:
		conn_start_auth(conn);
		break;
	case IMAP_CONN_READY:
		log_debug("%s: ready (%s)", conn->name,
		    conn->ssl != NULL ? SSL_get_version(conn->ssl) : "plain text");
		conn_timer_update(conn);
		cb = conn->ready_cb;
		conn->ready_cb = NULL;
		if (cb != NULL)
			cb(conn, NULL, conn->ready_arg);
		break;
	}
}

static void
conn_internal_done(struct imap_conn *conn, const struct imap_reply *reply, void *arg ATTR_UNUSED)
{
	struct imap_error err;
	const char *text = reply->resp != NULL ? reply->resp->text : "";

	switch (conn->state) {
	case IMAP_CONN_CAPABILITY:
		if (reply->status != IMAP_STATUS_OK)
			break;
		if (!conn->cfg->secure && conn->cfg->starttls && conn->ssl == NULL)
			conn_state(conn, IMAP_CONN_STARTTLS);
		else
			conn_state(conn, IMAP_CONN_AUTH);
		return;
	case IMAP_CONN_STARTTLS:
		if (reply->status != IMAP_STATUS_OK) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: STARTTLS refused: %s",
			    conn->name, text);
			conn_fail(conn, &err);
			return;
		}
		/* Bytes after the OK would be a command-injection attempt. */
		if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0) {
			imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: data after STARTTLS "
			    "response", conn->name);
			conn_fail(conn, &err);
			return;
		}
		conn_caps_clear(conn);
		conn_state(conn, IMAP_CONN_TLS_HANDSHAKE);
		return;
	case IMAP_CONN_CAPABILITY_TLS:
		if (reply->status != IMAP_STATUS_OK)
			break;
		conn_state(conn, IMAP_CONN_AUTH);
		return;
	case IMAP_CONN_AUTH:
		if (reply->status != IMAP_STATUS_OK) {
			imap_error_set(&err, IMAP_ERR_AUTH, "%s: authentication failed "
			    "for %s: %s", conn->name, conn->cfg->username, text);
			conn_fail(conn, &err);
			return;
		}
		if (!imap_resp_code_is(reply->resp, "CAPABILITY"))
			conn_caps_clear(conn);  /* may change after login */
		conn_state(conn, IMAP_CONN_CAPABILITY_AUTH);
		return;
	case IMAP_CONN_CAPABILITY_AUTH:
		if (reply->status != IMAP_STATUS_OK)
			break;
		conn_state(conn, IMAP_CONN_READY);
		return;
	default:
		return;
	}
	if (reply->status == IMAP_STATUS_NONE)
		return;         /* the connection failed; conn_fail reported it */
	imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: %s failed: %s", conn->name,
	    strstate[conn->state], text);
	conn_fail(conn, &err);
}

/* responses */

static void
conn_greeting(struct imap_conn *conn, const struct imap_resp *resp)
{
	struct imap_error err;

	if (resp->kind != IMAP_RESP_UNTAGGED) {
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: bad greeting", conn->name);
		conn_fail(conn, &err);
		return;
	}
	switch (resp->status) {
	case IMAP_STATUS_OK:
		break;
	case IMAP_STATUS_PREAUTH:
		conn->preauth = true;
		break;
	case IMAP_STATUS_BYE:
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: server refused the "
		    "connection: %s", conn->name, resp->text);
		conn_fail(conn, &err);
		return;
	default:
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: bad greeting", conn->name);
		conn_fail(conn, &err);
		return;
	}
	conn_state(conn, IMAP_CONN_CAPABILITY);
}

static void
conn_dispatch(struct imap_conn *conn, const struct imap_resp *resp)
{
	struct imap_cmd *cmd;
	struct imap_reply reply;
	struct imap_error err;

	if (resp->kind == IMAP_RESP_CONTINUATION) {
		conn_continuation(conn, resp);
		return;
	}
	if (resp->code != NULL && strcasecmp(resp->code, "CAPABILITY") == 0)
		conn_set_caps(conn, resp->code_args, resp->code_argc);
	if (resp->kind == IMAP_RESP_UNTAGGED) {
		if (resp->name != NULL && strcmp(resp->name, "CAPABILITY") == 0)
			conn_set_caps(conn, resp->args, resp->argc);
		if (resp->status == IMAP_STATUS_BYE) {
			free(conn->bye);
			conn->bye = xstrdup(resp->text);
		}
		if (conn->state == IMAP_CONN_GREETING) {
			conn_greeting(conn, resp);
			return;
		}
		cmd = TAILQ_FIRST(&conn->sent);
		if (cmd != NULL) {
			if (cmd->untagged != NULL)
				cmd->untagged(conn, resp, cmd->arg);
		} else if (conn->unsolicited_cb != NULL) {
			conn->unsolicited_cb(conn, resp, conn->unsolicited_arg);
		}
		return;
	}
	TAILQ_FOREACH(cmd, &conn->sent, entry)
		if (strcmp(cmd->tag, resp->tag) == 0)
			break;
	if (cmd == NULL) {
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: response with unknown "
		    "tag %.20s", conn->name, resp->tag);
		conn_fail(conn, &err);
		return;
	}
	TAILQ_REMOVE(&conn->sent, cmd, entry);
	memset(&reply, 0, sizeof(reply));
	reply.status = resp->status;
	reply.resp = resp;
	if (resp->status == IMAP_STATUS_NO)
		imap_error_set(&reply.err, IMAP_ERR_NO, "%s", resp->text);
	else if (resp->status != IMAP_STATUS_OK)
		imap_error_set(&reply.err, IMAP_ERR_BAD, "%s", resp->text);
	conn->last_used = monotonic_ms();
	log_debug("%s: S: %s %s", conn->name, cmd->tag,
	    resp->status == IMAP_STATUS_OK ? "OK" :
	    resp->status == IMAP_STATUS_NO ? "NO" : "BAD");
	cmd_complete(conn, cmd, &reply);
	if (conn->state != IMAP_CONN_CLOSED)
		conn_flush(conn);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct imap_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const struct imap_resp *resp;
	struct evbuffer_iovec v;
	struct imap_error err;
	size_t consumed;
	int ret;

	imap_conn_ref(conn);
	while (conn->bev == bev && conn->state != IMAP_CONN_CLOSED &&
	    evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
		ret = imap_parser_feed(conn->parser, v.iov_base, v.iov_len,
		    &consumed, &resp);
		evbuffer_drain(in, consumed);
		if (ret < 0) {
			imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: bad response from "
			    "server: %s", conn->name, imap_parser_error(conn->parser));
			conn_fail(conn, &err);
			break;
		}
		if (ret == 1) {
			conn_dispatch(conn, resp);
			/* STARTTLS: the rest belongs to the TLS layer */
			if (conn->state == IMAP_CONN_TLS_HANDSHAKE)
				break;
		}
	}
	if (conn->state != IMAP_CONN_CLOSED)
		conn_timer_update(conn);
	imap_conn_unref(&conn);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct imap_conn *conn = arg;
	struct imap_error err;
	int dnserr;

	if (what & BEV_EVENT_CONNECTED) {
		if (conn_check_dh(conn, &err) < 0) {
			conn_fail(conn, &err);
			return;
		}
		if (conn->state == IMAP_CONN_TLS_HANDSHAKE) {
			imap_parser_reset(conn->parser);
			conn_state(conn, IMAP_CONN_CAPABILITY_TLS);
		} else {
			conn_state(conn, IMAP_CONN_GREETING);
		}
		conn_timer_update(conn);
		return;
	}
	if (conn->state == IMAP_CONN_CONNECTING || conn->state == IMAP_CONN_TLS_HANDSHAKE) {
		dnserr = bufferevent_socket_get_dns_error(bev);
		if (dnserr != 0) {
			imap_error_set(&err, IMAP_ERR_CONNECT, "cannot resolve %s: %s",
			    conn->cfg->host, evutil_gai_strerror(dnserr));
		} else if (conn->ssl != NULL && (bufferevent_get_openssl_error(bev) != 0 ||
		    SSL_get_verify_result(conn->ssl) != X509_V_OK ||
		    conn->state == IMAP_CONN_TLS_HANDSHAKE)) {
			conn_tls_failure(conn, &err);
		} else if (errno != 0 && (what & BEV_EVENT_ERROR)) {
			imap_error_set(&err, IMAP_ERR_CONNECT, "cannot connect to %s:%u: %s",
			    conn->cfg->host, conn->cfg->port, strerror(errno));
		} else {
			imap_error_set(&err, IMAP_ERR_CONNECT, "cannot connect to %s:%u: "
			    "connection closed", conn->cfg->host, conn->cfg->port);
		}
		conn_fail(conn, &err);
		return;
	}
	if (conn->bye != NULL)
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: server closed the connection: %s",
		    conn->name, conn->bye);
	else if (what & BEV_EVENT_EOF)
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: server closed the connection",
		    conn->name);
	else
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: connection error: %s",
		    conn->name, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_fail(conn, &err);
}

void
imap_conn_connect(struct imap_conn *conn, imap_conn_cb *ready_cb, void *arg)
{
	struct imap_error err;
	struct timeval tv = { (time_t)conn->cfg->timeout, 0 };
	int opts = BEV_OPT_CLOSE_ON_FREE;

	conn->ready_cb = ready_cb;
	conn->ready_arg = arg;
	conn_state(conn, IMAP_CONN_CONNECTING);
	conn->timer = evtimer_new(conn->base, conn_timeout_cb, conn);
	if (conn->cfg->secure) {
		if (conn->ssl_ctx == NULL) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: no TLS context", conn->name);
			goto fail;
		}
		conn->ssl = conn_ssl_new(conn, &err);
		if (conn->ssl == NULL)
			goto fail;
		conn->bev = bufferevent_openssl_socket_new(conn->base, -1, conn->ssl,
		    BUFFEREVENT_SSL_CONNECTING, opts);
		if (conn->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
	} else {
		conn->bev = bufferevent_socket_new(conn->base, -1, opts);
	}
	if (conn->bev == NULL) {
		imap_error_set(&err, IMAP_ERR_CONNECT, "%s: cannot create socket", conn->name);
		goto fail;
	}
	bufferevent_setcb(conn->bev, conn_read_cb, NULL, conn_event_cb, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	evtimer_add(conn->timer, &tv);
	errno = 0;
	if (bufferevent_socket_connect_hostname(conn->bev, conn->dns, AF_UNSPEC,
	    conn->cfg->host, conn->cfg->port) < 0) {
		imap_error_set(&err, IMAP_ERR_CONNECT, "cannot connect to %s:%u",
		    conn->cfg->host, conn->cfg->port);
		goto fail;
	}
	return;
fail:
	/* report from the loop, as promised */
	conn_fail(conn, &err);
}

static void
conn_logout_write_cb(struct bufferevent *bev, void *arg)
{
	struct imap_conn *conn = arg;
	struct imap_error err;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	imap_error_set(&err, IMAP_ERR_CLOSED, "%s: logged out", conn->name);
	conn_fail(conn, &err);
}

void
imap_conn_close(struct imap_conn *conn)
{
	struct imap_error err;
	char line[32];

	if (conn->state == IMAP_CONN_CLOSED || conn->state == IMAP_CONN_LOGOUT)
		return;
	/* with commands pending, fail them now: their owners are going away */
	if (conn->state != IMAP_CONN_READY || conn->bev == NULL ||
	    !TAILQ_EMPTY(&conn->sent) || !TAILQ_EMPTY(&conn->queued)) {
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: closed", conn->name);
		conn_fail(conn, &err);
		return;
	}
	/* LOGOUT without waiting for the answer: close once it is written */
	snprintf(line, sizeof(line), "A%u LOGOUT\r\n", conn->next_tag++);
	conn_state(conn, IMAP_CONN_LOGOUT);
	bufferevent_setcb(conn->bev, NULL, conn_logout_write_cb, conn_event_cb, conn);
	bufferevent_write(conn->bev, line, strlen(line));
}
