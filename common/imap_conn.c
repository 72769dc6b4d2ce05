/* imap_conn: see imap_conn.h */
#include "imap_conn_private.h"

#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include "log.h"
#include "util.h"

/* Bytes of a response that restart the time-out without it being complete:
 * a slow link moving 4 KiB per `timeout` keeps going, a trickle does not. */
#define CONN_MIN_PROGRESS 4096
/* Untagged responses to one command: a fetch window is 500 messages, a
 * LIST of a huge account some thousands; a server sending more is cut off. */
#define CONN_MAX_UNTAGGED 200000u

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

static void conn_read_cb(struct bufferevent *, void *);
static void conn_event_cb(struct bufferevent *, short, void *);

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
	if (conn->token != NULL) {
		explicit_bzero(conn->token, strlen(conn->token));
		free(conn->token);
	}
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
		imap_conn_fail(conn, &err);
		conn->refs--;
	}
	conn_close_transport(conn);
	/* never free inside our own callbacks: next loop turn */
	if (event_base_once(conn->base, -1, EV_TIMEOUT, conn_destroy_cb, conn,
	    &(struct timeval){ 0, 0 }) < 0)
		conn_destroy(conn);
}

void
imap_conn_set_oauth2_token(struct imap_conn *conn, const char *token)
{
	if (conn->token != NULL) {
		explicit_bzero(conn->token, strlen(conn->token));
		free(conn->token);
	}
	conn->token = token != NULL ? xstrdup(token) : NULL;
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
	imap_conn_fail(conn, &err);
}

/* Arms the time-out while we wait for the server, disarms it otherwise. */
void
imap_conn_timer_update(struct imap_conn *conn)
{
	struct timeval tv = { (time_t)conn->cfg->timeout, 0 };
	bool waiting;

	if (conn->timer == NULL)
		return;
	waiting = conn->state != IMAP_CONN_READY || !TAILQ_EMPTY(&conn->queued) ||
	    (!TAILQ_EMPTY(&conn->sent) && !conn->idling);
	conn->unarmed_bytes = 0;
	if (waiting)
		evtimer_add(conn->timer, &tv);
	else
		evtimer_del(conn->timer);
}

static void
conn_deferred_ready_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct imap_conn *conn = arg;
	imap_conn_cb *cb = conn->ready_cb;

	conn->ready_cb = NULL;
	if (cb != NULL)
		cb(conn, &conn->deferred_err, conn->ready_arg);
	imap_conn_unref(&conn);
}

/* Fails the connection: every pending command completes with err, and the
 * ready or lost callback hears of it. */
void
imap_conn_fail(struct imap_conn *conn, const struct imap_error *err)
{
	struct imap_reply reply = { .status = IMAP_STATUS_NONE };
	enum imap_conn_state was = conn->state;
	struct imap_cmd *cmd;
	imap_conn_cb *cb;

	if (conn->state == IMAP_CONN_CLOSED)
		return;
	if (was != IMAP_CONN_LOGOUT)
		log_debug("%s: %s", conn->name, err->msg);
	imap_conn_set_state(conn, IMAP_CONN_CLOSED);
	conn_close_transport(conn);
	imap_conn_set_selected(conn, NULL, false);
	reply.err = *err;
	imap_conn_ref(conn);
	if (conn->logout_ref) {
		/* the reference imap_conn_close() took for the LOGOUT */
		conn->logout_ref = false;
		conn->refs--;
	}
	conn->waiting_cont = NULL;
	conn->idle_cmd = NULL;
	conn->idling = false;
	while ((cmd = TAILQ_FIRST(&conn->sent)) != NULL ||
	    (cmd = TAILQ_FIRST(&conn->queued)) != NULL) {
		if (cmd == TAILQ_FIRST(&conn->sent))
			TAILQ_REMOVE(&conn->sent, cmd, entry);
		else
			TAILQ_REMOVE(&conn->queued, cmd, entry);
		if (cmd->internal)
			imap_cmd_free(cmd);
		else
			imap_cmd_complete(conn, cmd, &reply);
	}
	if (was < IMAP_CONN_READY && conn->in_connect && conn->ready_cb != NULL) {
		/* failed inside imap_conn_connect(): report from the loop */
		conn->deferred_err = *err;
		imap_conn_ref(conn);
		if (event_base_once(conn->base, -1, EV_TIMEOUT, conn_deferred_ready_cb,
		    conn, &(struct timeval){ 0, 0 }) < 0)
			abort();
	} else if (was < IMAP_CONN_READY) {
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
void
imap_conn_set_state(struct imap_conn *conn, enum imap_conn_state next)
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
				imap_conn_set_state(conn, IMAP_CONN_STARTTLS);
			else
				imap_conn_set_state(conn, IMAP_CONN_AUTH);
			return;
		}
		imap_conn_internal_cmd(conn, "CAPABILITY");
		break;
	case IMAP_CONN_CAPABILITY_TLS:
	case IMAP_CONN_CAPABILITY_AUTH:
		if (next == IMAP_CONN_CAPABILITY_AUTH && conn->ncaps > 0) {
			imap_conn_set_state(conn, IMAP_CONN_READY);
			return;
		}
		imap_conn_internal_cmd(conn, "CAPABILITY");
		break;
	case IMAP_CONN_STARTTLS:
		if (!imap_conn_has_cap(conn, "STARTTLS")) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s:%u does not offer STARTTLS",
			    conn->cfg->host, conn->cfg->port);
			imap_conn_fail(conn, &err);
			return;
		}
		imap_conn_internal_cmd(conn, "STARTTLS");
		break;
	case IMAP_CONN_TLS_HANDSHAKE: {
		struct bufferevent *tls;

		/* nothing said in plain text vouches for the TLS session */
		conn->preauth = false;
		conn->ssl = imap_tls_new_ssl(conn, &err);
		if (conn->ssl == NULL) {
			imap_conn_fail(conn, &err);
			return;
		}
		tls = bufferevent_openssl_filter_new(conn->base, conn->bev, conn->ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (tls == NULL) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: cannot start TLS", conn->name);
			imap_conn_fail(conn, &err);
			return;
		}
		conn->bev = tls;
		bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
		bufferevent_setcb(tls, conn_read_cb, NULL, conn_event_cb, conn);
		bufferevent_enable(tls, EV_READ | EV_WRITE);
		break;
	}
	case IMAP_CONN_AUTH:
		imap_conn_start_auth(conn);
		break;
	case IMAP_CONN_READY:
		log_debug("%s: ready (%s)", conn->name,
		    conn->ssl != NULL ? SSL_get_version(conn->ssl) : "plain text");
		imap_conn_flush(conn);
		imap_conn_timer_update(conn);
		cb = conn->ready_cb;
		conn->ready_cb = NULL;
		if (cb != NULL)
			cb(conn, NULL, conn->ready_arg);
		break;
	}
}

void
imap_conn_internal_done(struct imap_conn *conn, const struct imap_reply *reply, void *arg ATTR_UNUSED)
{
	struct imap_error err;
	const char *text = reply->resp != NULL ? reply->resp->text : "";

	switch (conn->state) {
	case IMAP_CONN_CAPABILITY:
		if (reply->status != IMAP_STATUS_OK)
			break;
		if (!conn->cfg->secure && conn->cfg->starttls && conn->ssl == NULL)
			imap_conn_set_state(conn, IMAP_CONN_STARTTLS);
		else
			imap_conn_set_state(conn, IMAP_CONN_AUTH);
		return;
	case IMAP_CONN_STARTTLS:
		if (reply->status != IMAP_STATUS_OK) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: STARTTLS refused: %s",
			    conn->name, text);
			imap_conn_fail(conn, &err);
			return;
		}
		/* Bytes after the OK would be a command-injection attempt. */
		if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0) {
			imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: data after STARTTLS "
			    "response", conn->name);
			imap_conn_fail(conn, &err);
			return;
		}
		conn_caps_clear(conn);
		imap_conn_set_state(conn, IMAP_CONN_TLS_HANDSHAKE);
		return;
	case IMAP_CONN_CAPABILITY_TLS:
		if (reply->status != IMAP_STATUS_OK)
			break;
		imap_conn_set_state(conn, IMAP_CONN_AUTH);
		return;
	case IMAP_CONN_AUTH:
		if (reply->status != IMAP_STATUS_OK) {
			imap_error_set(&err, IMAP_ERR_AUTH, "%s: authentication failed "
			    "for %s: %s", conn->name, conn->cfg->username, text);
			imap_conn_fail(conn, &err);
			return;
		}
		if (!imap_resp_code_is(reply->resp, "CAPABILITY"))
			conn_caps_clear(conn);  /* may change after login */
		imap_conn_set_state(conn, IMAP_CONN_CAPABILITY_AUTH);
		return;
	case IMAP_CONN_CAPABILITY_AUTH:
		if (reply->status != IMAP_STATUS_OK)
			break;
		imap_conn_set_state(conn, IMAP_CONN_READY);
		return;
	default:
		return;
	}
	if (reply->status == IMAP_STATUS_NONE)
		return;         /* the connection failed; conn_fail reported it */
	imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: %s failed: %s", conn->name,
	    strstate[conn->state], text);
	imap_conn_fail(conn, &err);
}

/* responses */

static void
conn_greeting(struct imap_conn *conn, const struct imap_resp *resp)
{
	struct imap_error err;

	if (resp->kind != IMAP_RESP_UNTAGGED) {
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: bad greeting", conn->name);
		imap_conn_fail(conn, &err);
		return;
	}
	switch (resp->status) {
	case IMAP_STATUS_OK:
		break;
	case IMAP_STATUS_PREAUTH:
		/* A server that must still do STARTTLS cannot be in the
		 * authenticated state (RFC 3501 6.2.1, RFC 2595 3.1): this
		 * greeting is a man in the middle's, who would have us skip
		 * the log-in after the TLS handshake. */
		if (!conn->cfg->secure && conn->cfg->starttls && conn->ssl == NULL) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: PREAUTH greeting "
			    "in plain text makes STARTTLS impossible (starttls = "
			    "true; a man in the middle?)", conn->name);
			imap_conn_fail(conn, &err);
			return;
		}
		conn->preauth = true;
		break;
	case IMAP_STATUS_BYE:
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: server refused the "
		    "connection: %s", conn->name, resp->text);
		imap_conn_fail(conn, &err);
		return;
	default:
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: bad greeting", conn->name);
		imap_conn_fail(conn, &err);
		return;
	}
	imap_conn_set_state(conn, IMAP_CONN_CAPABILITY);
}

static void
conn_dispatch(struct imap_conn *conn, const struct imap_resp *resp)
{
	struct imap_cmd *cmd;
	struct imap_reply reply;
	struct imap_error err;

	if (resp->kind == IMAP_RESP_CONTINUATION) {
		imap_conn_continuation(conn, resp);
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
		/* a flood of untagged responses to one command is an attack, or a
		 * broken server: no command of ours needs that many */
		if (cmd != NULL && !conn->idling && ++conn->untagged_count > CONN_MAX_UNTAGGED) {
			imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: more than %u untagged "
			    "responses to one command", conn->name, CONN_MAX_UNTAGGED);
			imap_conn_fail(conn, &err);
			return;
		}
		if (cmd != NULL) {
			if (cmd->untagged != NULL)
				cmd->untagged(conn, resp, cmd->arg);
		} else if (conn->unsolicited_cb != NULL) {
			conn->unsolicited_cb(conn, resp, conn->unsolicited_arg);
		}
		/* BYE: the server is going; once the command saw it, do not
		 * wait for the server to close (the caller holds a reference) */
		if (resp->status == IMAP_STATUS_BYE && conn->state != IMAP_CONN_LOGOUT &&
		    conn->state != IMAP_CONN_CLOSED) {
			imap_error_set(&err, IMAP_ERR_CLOSED, "%s: server closed the "
			    "connection: %s", conn->name, resp->text);
			imap_conn_fail(conn, &err);
		}
		return;
	}
	TAILQ_FOREACH(cmd, &conn->sent, entry)
		if (strcmp(cmd->tag, resp->tag) == 0)
			break;
	if (cmd == NULL) {
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: response with unknown "
		    "tag %.20s", conn->name, resp->tag);
		imap_conn_fail(conn, &err);
		return;
	}
	TAILQ_REMOVE(&conn->sent, cmd, entry);
	conn->untagged_count = 0;
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
	imap_cmd_complete(conn, cmd, &reply);
	if (conn->state != IMAP_CONN_CLOSED)
		imap_conn_flush(conn);
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
	bool progress = false;
	int ret;

	imap_conn_ref(conn);
	while (conn->bev == bev && conn->state != IMAP_CONN_CLOSED &&
	    evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
		ret = imap_parser_feed(conn->parser, v.iov_base, v.iov_len,
		    &consumed, &resp);
		evbuffer_drain(in, consumed);
		conn->unarmed_bytes += consumed;
		if (ret < 0) {
			imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: bad response from "
			    "server: %s", conn->name, imap_parser_error(conn->parser));
			imap_conn_fail(conn, &err);
			break;
		}
		if (ret == 1) {
			/* what restarts the time-out: an answer, or data; not
			 * the noise a server can send for ever (EXISTS, OK...) */
			if (resp->kind != IMAP_RESP_UNTAGGED ||
			    (resp->status == IMAP_STATUS_NONE && resp->name != NULL &&
			    strcmp(resp->name, "EXISTS") != 0 &&
			    strcmp(resp->name, "RECENT") != 0 &&
			    strcmp(resp->name, "EXPUNGE") != 0))
				progress = true;
			conn_dispatch(conn, resp);
			/* STARTTLS: the rest belongs to the TLS layer */
			if (conn->state == IMAP_CONN_TLS_HANDSHAKE)
				break;
		}
	}
	/* The time-out restarts on a complete response, or on enough bytes
	 * of a long one: a server trickling a byte a second is cut off. */
	if (conn->state != IMAP_CONN_CLOSED &&
	    (progress || conn->unarmed_bytes >= CONN_MIN_PROGRESS))
		imap_conn_timer_update(conn);
	/* All read and dispatched: a big response's buffers (up to the
	 * parser's limits) go now, not when the server next says something.
	 * (conn->bev == bev: not closed, and in is still ours.) */
	if (conn->bev == bev && evbuffer_get_length(in) == 0)
		imap_parser_trim(conn->parser);
	imap_conn_unref(&conn);
}

/* TCP keepalive: a peer that vanished without a word (NAT timeout, power
 * cut) is noticed in about 2 minutes even on a connection sitting in IDLE. */
static void
conn_keepalive(evutil_socket_t fd)
{
	int on = 1, idle = 60, intvl = 15, cnt = 4;

	if (fd < 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct imap_conn *conn = arg;
	struct imap_error err;
	int dnserr;

	if (what & BEV_EVENT_CONNECTED) {
		if (conn->state == IMAP_CONN_CONNECTING)
			conn_keepalive(bufferevent_getfd(bev));
		if (imap_tls_check_dh(conn, &err) < 0) {
			imap_conn_fail(conn, &err);
			return;
		}
		if (conn->state == IMAP_CONN_TLS_HANDSHAKE) {
			imap_parser_reset(conn->parser);
			imap_conn_set_state(conn, IMAP_CONN_CAPABILITY_TLS);
		} else {
			imap_conn_set_state(conn, IMAP_CONN_GREETING);
		}
		imap_conn_timer_update(conn);
		return;
	}
	if (conn->state == IMAP_CONN_CONNECTING || conn->state == IMAP_CONN_TLS_HANDSHAKE) {
		int sockerr = EVUTIL_SOCKET_ERROR();
		evutil_socket_t fd = bufferevent_getfd(bev);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		/* did TCP connect? (implicit TLS reports CONNECTED only after
		 * the handshake; STARTTLS runs over an established link) */
		bool tcp_up = conn->state == IMAP_CONN_TLS_HANDSHAKE ||
		    (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) ||
		    (conn->ssl != NULL && !SSL_in_before(conn->ssl) &&
		    sockerr != ECONNREFUSED && sockerr != EHOSTUNREACH &&
		    sockerr != ENETUNREACH && sockerr != ETIMEDOUT);

		dnserr = bufferevent_socket_get_dns_error(bev);
		if (dnserr != 0) {
			imap_error_set(&err, IMAP_ERR_CONNECT, "cannot resolve %s: %s",
			    conn->cfg->host, evutil_gai_strerror(dnserr));
		} else if (!tcp_up) {
			imap_error_set(&err, IMAP_ERR_CONNECT, "cannot connect to %s:%u: %s",
			    conn->cfg->host, conn->cfg->port, sockerr != 0 ?
			    evutil_socket_error_to_string(sockerr) : "connection failed");
		} else if (conn->ssl != NULL) {
			imap_tls_describe_failure(conn, &err);
		} else {
			imap_error_set(&err, IMAP_ERR_CONNECT, "cannot connect to %s:%u: "
			    "connection closed", conn->cfg->host, conn->cfg->port);
		}
		imap_conn_fail(conn, &err);
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
	imap_conn_fail(conn, &err);
}

void
imap_conn_connect(struct imap_conn *conn, imap_conn_cb *ready_cb, void *arg)
{
	struct imap_error err;
	struct timeval tv = { (time_t)conn->cfg->timeout, 0 };
	int opts = BEV_OPT_CLOSE_ON_FREE;

	conn->ready_cb = ready_cb;
	conn->ready_arg = arg;
	conn->in_connect = true;
	imap_conn_set_state(conn, IMAP_CONN_CONNECTING);
	conn->timer = evtimer_new(conn->base, conn_timeout_cb, conn);
	if (conn->cfg->secure) {
		if (conn->ssl_ctx == NULL) {
			imap_error_set(&err, IMAP_ERR_TLS, "%s: no TLS context", conn->name);
			goto fail;
		}
		conn->ssl = imap_tls_new_ssl(conn, &err);
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
	conn->in_connect = false;
	return;
fail:
	imap_conn_fail(conn, &err);  /* reported from the loop (in_connect) */
	conn->in_connect = false;
}

/* LOGOUT: the close waits for the command to be written, not for an
 * answer, so what the server sends meanwhile is thrown away as it comes
 * (a server that stops reading could otherwise fill memory until the
 * time-out); EOF and errors still reach conn_event_cb. */
static void
conn_logout_read_cb(struct bufferevent *bev, void *arg ATTR_UNUSED)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_logout_write_cb(struct bufferevent *bev, void *arg)
{
	struct imap_conn *conn = arg;
	struct imap_error err;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	imap_error_set(&err, IMAP_ERR_CLOSED, "%s: logged out", conn->name);
	imap_conn_fail(conn, &err);
}

void
imap_conn_close(struct imap_conn *conn)
{
	struct imap_error err;
	char line[32];

	if (conn->state == IMAP_CONN_CLOSED || conn->state == IMAP_CONN_LOGOUT)
		return;
	/* whoever closes no longer wants to hear how the set-up ends */
	conn->ready_cb = NULL;
	conn->lost_cb = NULL;
	/* with commands pending, fail them now: their owners are going away */
	if (conn->state != IMAP_CONN_READY || conn->bev == NULL ||
	    !TAILQ_EMPTY(&conn->sent) || !TAILQ_EMPTY(&conn->queued)) {
		imap_error_set(&err, IMAP_ERR_CLOSED, "%s: closed", conn->name);
		imap_conn_fail(conn, &err);
		return;
	}
	/* LOGOUT without waiting for the answer: close once it is written;
	 * the connection keeps itself alive until then, whoever lets go */
	snprintf(line, sizeof(line), "A%u LOGOUT\r\n", conn->next_tag++);
	imap_conn_set_state(conn, IMAP_CONN_LOGOUT);
	imap_conn_ref(conn);
	conn->logout_ref = true;
	imap_conn_timer_update(conn);
	bufferevent_setcb(conn->bev, conn_logout_read_cb, conn_logout_write_cb,
	    conn_event_cb, conn);
	conn_logout_read_cb(conn->bev, conn);
	bufferevent_write(conn->bev, line, strlen(line));
}
