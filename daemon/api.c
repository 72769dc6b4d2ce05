/* api: the HTTP API; see api.h */
#include "api.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "action.h"
#include "daemon.h"
#include "jsonutil.h"
#include "log.h"
#include "trigger.h"
#include "util.h"

struct api_call;

struct api {
	struct daemon *d;
	struct evhttp *http;
	char *listen;
	char *host;                     /* of listen */
	uint16_t port;
	char *token;
	LIST_HEAD(, api_call) calls;
	unsigned nwaiting;              /* calls waiting for a connection */
	bool refusing;                  /* nwaiting reached API_MAX_WAITING (logged) */
};

/* One POST /v1/actions/ACTION in progress. */
struct api_call {
	LIST_ENTRY(api_call) link;
	struct api *api;
	struct evhttp_request *req;     /* NULL once the client went away */
	struct evhttp_request *orphan;  /* detached by libevent: ours to free */
	char *connection;               /* the pool's name */
	struct imap_pool *pool;
	struct imap_lease *lease;
	struct imap_conn *conn;
	struct action_run *run;
	const struct action_entry *entry;
	json_t *params;
	struct event *deadline;         /* while waiting for a connection */
	struct event *wake;             /* resumes a download, from the loop */
	bool waiting;                   /* counted in api->nwaiting */
	bool streaming;                 /* download: reply started */
	bool full;                      /* download: the sink said full */
	bool seq;                       /* ranges are sequence numbers */
};

/*
 * Answers req with status and the body buf (emptied). evhttp gives no
 * Content-Length to an answer to HEAD or CONNECT (it expects none to have
 * a body) but writes whatever body it is given: a HEAD gets the length
 * alone, a CONNECT (refused) its length and body, or the next answer on
 * the connection would be read as part of this one.
 */
static void
send_reply(struct evhttp_request *req, int status, struct evbuffer *buf)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char n[24];

	if (cmd == EVHTTP_REQ_HEAD || cmd == EVHTTP_REQ_CONNECT) {
		snprintf(n, sizeof(n), "%zu", evbuffer_get_length(buf));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", n);
	}
	if (cmd == EVHTTP_REQ_HEAD)
		evbuffer_drain(buf, evbuffer_get_length(buf));
	evhttp_send_reply(req, status, NULL, buf);
}

static void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *s = json_dumps(body, JSON_INDENT(2));

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/json");
	if (s != NULL) {
		evbuffer_add(buf, s, strlen(s));
		evbuffer_add(buf, "\n", 1);
	}
	send_reply(req, status, buf);
	evbuffer_free(buf);
	free(s);
	json_decref(body);
}

static void
reply_error(struct evhttp_request *req, int status, const char *code, const char *msg)
{
	reply_json(req, status, json_pack("{s:{s:s, s:o}}", "error", "code", code,
	    "message", json_str(msg)));
}

/* 503: no connection for this call now; worth trying again soon. */
static void
reply_busy(struct evhttp_request *req, const char *code, const char *msg)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	reply_error(req, 503, code, msg);
}

/* GET /healthz */
static void
handle_healthz(struct api *api, struct evhttp_request *req)
{
	struct daemon *d = api->d;
	json_t *triggers = json_array(), *conns = json_array();
	struct trigger_info ti;
	struct imap_pool_stats ps;
	bool failing = false;
	char ts[21];
	size_t i;

	for (i = 0; i < d->ntriggers; i++) {
		json_t *o;

		trigger_info(d->triggers[i], &ti);
		failing |= ti.failing;
		o = json_pack("{s:s, s:s, s:o, s:s, s:n, s:n, s:o, s:I}",
		    "name", ti.name, "connection", ti.connection, "mailbox", json_str(ti.mailbox),
		    "mode", ti.mode, "lastPollAt", "lastSuccessAt", "lastError",
		    json_str(ti.last_error), "queued",
		    (json_int_t)outbox_depth(d->outbox, NULL, ti.name));
		if (ti.last_poll_at != 0) {
			format_iso8601(ti.last_poll_at, ts);
			json_object_set_new(o, "lastPollAt", json_string(ts));
		}
		if (ti.last_success_at != 0) {
			format_iso8601(ti.last_success_at, ts);
			json_object_set_new(o, "lastSuccessAt", json_string(ts));
		}
		json_object_set_new(o, "uidValidity", ti.uidvalidity != 0 ?
		    json_integer(ti.uidvalidity) : json_null());
		json_object_set_new(o, "lastUid", json_integer(ti.last_uid));
		/* how new mail reaches it now: "notify", "idle" or "poll" */
		json_object_set_new(o, "push", json_string(ti.push != NULL ? ti.push : "poll"));
		json_array_append_new(triggers, o);
	}
	for (i = 0; i < d->npools; i++) {
		imap_pool_stats(d->pools[i].pool, &ps);
		json_array_append_new(conns, json_pack("{s:s, s:s, s:i, s:i, s:o}",
		    "name", d->pools[i].name, "state", ps.state, "open", (int)ps.open,
		    "busy", (int)ps.busy, "lastError", json_str(ps.last_error)));
	}
	reply_json(req, failing ? 503 : 200, json_pack("{s:s, s:s, s:o, s:o}",
	    "status", failing ? "failing" : "ok", "version", IMAPHOOK_VERSION,
	    "triggers", triggers, "connections", conns));
}

/* GET /metrics */
static void
handle_metrics(struct api *api, struct evhttp_request *req)
{
	struct evbuffer *buf = evbuffer_new();
	struct str s;

	str_init(&s);
	metrics_render(api->d, &s);
	evbuffer_add(buf, s.data, s.len);
	str_free(&s);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	send_reply(req, 200, buf);
	evbuffer_free(buf);
}

/* actions */

/* Takes the request out of the call (NULL if the client left): its close
 * callback no longer points at us, and the caller answers it. */
static struct evhttp_request *
call_detach(struct api_call *c)
{
	struct evhttp_request *req = c->req;

	if (req != NULL)
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
	c->req = NULL;
	return req;
}

/* The call no longer waits for a connection: it got one, or gives up. */
static void
call_unqueue(struct api_call *c)
{
	imap_pool_cancel(&c->lease);
	if (c->waiting) {
		c->waiting = false;
		c->api->nwaiting--;
		c->api->refusing = false;
	}
	if (c->deadline != NULL)
		event_free(c->deadline);
	c->deadline = NULL;
}

static void
call_free(struct api_call *c)
{
	bool busy = c->run != NULL && c->run->inflight > 0;

	LIST_REMOVE(c, link);
	call_unqueue(c);
	if (c->wake != NULL)
		event_free(c->wake);
	/* the run first: commands still in flight then complete into an
	 * orphaned run, never into this call */
	action_run_free(&c->run);
	if (c->conn != NULL) {
		if (busy)
			imap_conn_close(c->conn);
		/* the pool may have been replaced by a reload meanwhile */
		if (c->pool == daemon_pool(c->api->d, c->connection))
			imap_pool_release(c->pool, c->conn, !busy);
		imap_conn_unref(&c->conn);
	}
	free(c->connection);
	json_decref(c->params);
	call_detach(c);
	if (c->orphan != NULL)
		evhttp_request_free(c->orphan);
	free(c);
}

static void
call_closed_cb(struct evhttp_connection *evcon ATTR_UNUSED, void *arg)
{
	struct api_call *c = arg;

	/* A request still attached dies with its connection. One whose reply
	 * was under way (a streamed download) has been detached by libevent
	 * and is left to us to free. Either way: never answer it. */
	if (c->req != NULL && evhttp_request_get_connection(c->req) == NULL)
		c->orphan = c->req;
	c->req = NULL;
	/* a download waiting for this client would wait for ever: end it */
	if (c->full)
		event_active(c->wake, EV_TIMEOUT, 1);
}

/* evhttp: the output buffer, full when the sink said so, has drained. */
static void
call_drained_cb(struct evhttp_connection *evcon ATTR_UNUSED, void *arg)
{
	struct api_call *c = arg;

	/* not from inside evhttp's callback: the download may finish (and
	 * the call be freed) at once */
	event_active(c->wake, EV_TIMEOUT, 1);
}

static void
call_wake_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct api_call *c = arg;

	if (!c->full)
		return;
	c->full = false;
	if (c->req == NULL && c->run->inflight == 0) {
		/* the client left while the download waited for it; the
		 * connection is idle and goes back to the pool */
		call_free(c);
		return;
	}
	/* a client that left gets its next chunk refused (EPIPE) */
	c->entry->resume(c->run);
}

/*
 * The download's sink: each chunk goes into the connection's output buffer.
 * Once that holds API_SINK_HIGH bytes the download is told to wait
 * (backpressure, with its IMAP connection held) until evhttp has written
 * it all; the client's write timeout (evhttp_set_timeout) ends the wait
 * for a client that never reads.
 */
static int
call_sink_write(void *arg, const void *data, size_t len)
{
	struct api_call *c = arg;
	struct evhttp_connection *evcon;
	struct evbuffer *buf, *out;
	int r = 0;

	if (c->req == NULL || (evcon = evhttp_request_get_connection(c->req)) == NULL) {
		errno = EPIPE;
		return -1;
	}
	if (len == 0)
		return 0;
	if (!c->streaming) {
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
		    c->run->content_type != NULL ? c->run->content_type :
		    "application/octet-stream");
		evhttp_send_reply_start(c->req, 200, "OK");
		c->streaming = true;
	}
	out = bufferevent_get_output(evhttp_connection_get_bufferevent(evcon));
	buf = evbuffer_new();
	evbuffer_add(buf, data, len);
	if (evbuffer_get_length(out) + len >= API_SINK_HIGH && c->entry->resume != NULL) {
		/* call_drained_cb once evhttp has written all of it */
		evhttp_send_reply_chunk_with_cb(c->req, buf, call_drained_cb, c);
		c->full = true;
		r = ACTION_SINK_FULL;
	} else {
		evhttp_send_reply_chunk(c->req, buf);
	}
	evbuffer_free(buf);
	return r;
}

static void
call_done(struct action_run *run, void *arg)
{
	struct api_call *c = arg;
	struct evhttp_request *req = call_detach(c);

	if (req != NULL) {
		if (c->streaming) {
			if (run->err.status == ACTION_OK) {
				evhttp_send_reply_end(req);
			} else {
				/* too late for a status: cut the stream short */
				log_warn("api: %s failed after the reply started: %s",
				    c->entry->name, run->err.msg);
				evhttp_connection_free(evhttp_request_get_connection(req));
			}
		} else if (run->err.status == ACTION_OK) {
			if (run->result != NULL)
				reply_json(req, 200, json_incref(run->result));
			else
				evhttp_send_reply(req, 200, "OK", NULL);
		} else {
			reply_error(req, action_http_status(run->err.status),
			    action_error_code(run->err.status), run->err.msg);
		}
	}
	call_free(c);
}

static void
call_lease_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct api_call *c = arg;
	enum action_status st;

	c->lease = NULL;
	call_unqueue(c);
	if (conn == NULL) {
		struct evhttp_request *req = call_detach(c);

		st = action_status_from_imap(err->kind);
		if (req != NULL)
			reply_error(req, action_http_status(st), action_error_code(st), err->msg);
		call_free(c);
		return;
	}
	imap_conn_ref(conn);
	c->conn = conn;
	if (c->req == NULL) {   /* the client left while we waited */
		call_free(c);
		return;
	}
	c->run = action_run_new(c->entry, c->params, c->seq);
	if (c->entry->raw_output) {
		c->run->sink.write = call_sink_write;
		c->run->sink.arg = c;
		c->wake = event_new(c->api->d->base, -1, 0, call_wake_cb, c);
	}
	action_run_start(c->run, conn, call_done, c);
}

/* A call waited the connection's timeout for a connection: 503. */
static void
call_deadline_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct api_call *c = arg;
	struct evhttp_request *req = call_detach(c);
	char msg[200];

	snprintf(msg, sizeof(msg), "no connection to %s became free within %u s",
	    c->connection, imap_pool_config(c->pool)->timeout);
	log_warn("api: %s: %s", c->entry->name, msg);
	if (req != NULL)
		reply_busy(req, "wait_timeout", msg);
	call_free(c);
}

static bool
authorized(struct api *api, struct evhttp_request *req)
{
	const char *h;

	if (api->token == NULL)
		return true;
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	return consttime_equal(h, strlen(h), api->token, strlen(api->token));
}

static void
handle_action(struct api *api, struct evhttp_request *req, const char *name)
{
	struct daemon *d = api->d;
	const struct action_entry *entry;
	struct action_error aerr = { 0 };
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct imap_pool *pool = NULL;
	json_error_t jerr;
	json_t *params, *conn;
	const char *cname = NULL;
	json_t *seq_v;
	bool seq = false;
	struct api_call *c;
	struct timeval wait = { 0, 0 };
	size_t i;

	if (!authorized(api, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		    "Bearer");
		reply_error(req, 401, "unauthorized", "missing or wrong bearer token");
		return;
	}
	entry = action_find(name);
	if (entry == NULL) {
		reply_error(req, 404, "unknown_action", "no such action");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		reply_error(req, 405, "method_not_allowed", "use POST");
		return;
	}
	if (len == 0) {
		params = json_object();
	} else {
		params = json_loadb((const char *)evbuffer_pullup(in, -1), len,
		    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
		if (params == NULL) {
			char msg[300];

			snprintf(msg, sizeof(msg), "malformed JSON at line %d column %d: %s",
			    jerr.line, jerr.column, jerr.text);
			reply_error(req, 400, "bad_json", msg);
			return;
		}
	}
	if (!json_is_object(params)) {
		json_decref(params);
		reply_error(req, 400, "bad_json", "the body must be a JSON object");
		return;
	}
	conn = json_object_get(params, "connection");
	if (conn != NULL) {
		/* (a NUL inside would name a connection it does not) */
		if (!json_is_string(conn) ||
		    strlen(json_string_value(conn)) != json_string_length(conn)) {
			json_decref(params);
			reply_error(req, 400, "bad_parameter", "\"connection\" must be a string");
			return;
		}
		pool = daemon_pool(d, json_string_value(conn));
		if (pool == NULL) {
			json_decref(params);
			reply_error(req, 404, "unknown_connection", "no such connection");
			return;
		}
		for (i = 0; i < d->npools; i++)
			if (d->pools[i].pool == pool)
				cname = d->pools[i].name;
		json_object_del(params, "connection");
	} else if (d->npools == 1) {
		pool = d->pools[0].pool;
		cname = d->pools[0].name;
	} else {
		struct str s;

		str_init(&s);
		str_append(&s, "several connections are configured; give \"connection\":");
		for (i = 0; i < d->npools; i++)
			str_printf(&s, " %s", d->pools[i].name);
		json_decref(params);
		reply_error(req, 400, "bad_parameter", s.data);
		str_free(&s);
		return;
	}
	/* "seq": ranges are sequence numbers (the CLI's --seq) */
	seq_v = json_object_get(params, "seq");
	if (seq_v != NULL) {
		if (!json_is_boolean(seq_v)) {
			json_decref(params);
			reply_error(req, 400, "bad_parameter", "\"seq\" must be true or false");
			return;
		}
		seq = json_is_true(seq_v);
		json_object_del(params, "seq");
	}
	if (action_params_check(entry, params, true, seq, &aerr) < 0) {
		json_decref(params);
		reply_error(req, action_http_status(aerr.status), action_error_code(aerr.status),
		    aerr.msg);
		return;
	}
	if (api->nwaiting >= API_MAX_WAITING) {
		json_decref(params);
		if (!api->refusing)
			log_warn("api: %u calls wait for a connection: refusing more (503)",
			    api->nwaiting);
		api->refusing = true;
		reply_busy(req, "busy", "too many API calls are waiting for an IMAP connection");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->api = api;
	c->req = req;
	c->entry = entry;
	c->params = params;
	c->seq = seq;
	c->pool = pool;
	c->connection = xstrdup(cname);
	LIST_INSERT_HEAD(&api->calls, c, link);
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), call_closed_cb, c);
	/* a call that waits for a connection holds its parameters, and evhttp
	 * does not read from its client meanwhile (a client that gave up goes
	 * unnoticed): their number and their wait are bounded */
	c->waiting = true;
	api->nwaiting++;
	wait.tv_sec = (time_t)imap_pool_config(pool)->timeout;
	c->deadline = evtimer_new(d->base, call_deadline_cb, c);
	evtimer_add(c->deadline, &wait);
	c->lease = imap_pool_lease(pool, call_lease_cb, c);
}

static void
api_request_cb(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evhttp_uri *u = evhttp_uri_parse(uri);
	const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (cmd == EVHTTP_REQ_CONNECT) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
		    "GET, HEAD, POST");
		reply_error(req, 405, "method_not_allowed", "CONNECT: this is not a proxy");
	} else if (path == NULL) {
		reply_error(req, 400, "bad_request", "unparseable request target");
	} else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) {
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
			reply_error(req, 405, "method_not_allowed", "use GET");
		} else if (path[1] == 'h') {
			handle_healthz(api, req);
		} else {
			handle_metrics(api, req);
		}
	} else if (strncmp(path, "/v1/actions/", 12) == 0 && path[12] != '\0' &&
	    strchr(path + 12, '/') == NULL) {
		handle_action(api, req, path + 12);
	} else {
		reply_error(req, 404, "not_found", "no such endpoint");
	}
	if (u != NULL)
		evhttp_uri_free(u);
}

struct api *
api_new(struct daemon *d, const struct cfg_api *cfg)
{
	struct api *api = xcalloc(1, sizeof(*api));
	int saved = 0;

	api->d = d;
	api->listen = xstrdup(cfg->listen);
	api->host = xstrdup(cfg->host);
	api->port = cfg->port;
	api->token = cfg->token != NULL ? xstrdup(cfg->token) : NULL;
	LIST_INIT(&api->calls);
	api->http = evhttp_new(d->base);
	if (api->http == NULL)
		goto fail;
	/*
	 * evhttp refuses a larger body itself, with its own HTML 413, before
	 * any handler runs: libevent 2.1 has no error hook (evhttp_set_errorcb
	 * is 2.2), and a higher limit here would not help, since evhttp reads
	 * the whole body before calling the handler. Unknown methods (HTML
	 * 501) and unparseable requests (HTML 400) are answered by evhttp
	 * too. README says so.
	 */
	evhttp_set_max_body_size(api->http, API_MAX_BODY);
	evhttp_set_max_headers_size(api->http, 64 * 1024);
	/* also how long a download waits for a client that reads nothing */
	evhttp_set_timeout(api->http, 120);
	/* every method evhttp knows, so that api_request_cb answers (JSON 404
	 * or 405) rather than evhttp (an HTML 501) */
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	evhttp_set_gencb(api->http, api_request_cb, api);
	if (evhttp_bind_socket(api->http, cfg->host, cfg->port) < 0) {
		saved = errno;
		log_error("api: cannot listen on %s: %s", cfg->listen, strerror(errno));
		goto fail;
	}
	log_info("api: listening on %s%s", cfg->listen,
	    api->token != NULL ? " (bearer token required on /v1/)" : "");
	return api;
fail:
	api_free(&api);
	errno = saved;
	return NULL;
}

void
api_free(struct api **apip)
{
	struct api *api = *apip;

	*apip = NULL;
	if (api == NULL)
		return;
	while (!LIST_EMPTY(&api->calls)) {
		call_free(LIST_FIRST(&api->calls));
	}
	if (api->http != NULL)
		evhttp_free(api->http);
	free(api->listen);
	free(api->host);
	if (api->token != NULL) {
		explicit_bzero(api->token, strlen(api->token));
		free(api->token);
	}
	free(api);
}

bool
api_same(const struct api *api, const struct cfg_api *cfg)
{
	if (strcmp(api->listen, cfg->listen) != 0)
		return false;
	if ((api->token == NULL) != (cfg->token == NULL))
		return false;
	return api->token == NULL || strcmp(api->token, cfg->token) == 0;
}

void
api_reload(struct api **apip, struct daemon *d, const struct cfg_api *cfg)
{
	struct api *api = *apip, *napi;

	if (cfg == NULL) {
		api_free(apip);
		return;
	}
	if (api == NULL) {
		*apip = api_new(d, cfg);
		return;
	}
	if (api_same(api, cfg))
		return;
	if (strcmp(api->listen, cfg->listen) == 0) {
		free(api->token);
		api->token = cfg->token != NULL ? xstrdup(cfg->token) : NULL;
		log_info("api: bearer token %s", api->token != NULL ? "changed" : "removed");
		return;
	}
	napi = api_new(d, cfg);
	if (napi == NULL && errno == EADDRINUSE && cfg->port == api->port) {
		/* another address on our own port (127.0.0.1:8025 to
		 * 0.0.0.0:8025): the old listener must go first */
		struct cfg_api old = { .listen = xstrdup(api->listen),
		    .host = xstrdup(api->host), .port = api->port,
		    .token = api->token != NULL ? xstrdup(api->token) : NULL };

		log_info("api: closing %s to listen on %s", api->listen, cfg->listen);
		api_free(apip);
		if ((*apip = api_new(d, cfg)) == NULL && (*apip = api_new(d, &old)) != NULL)
			log_error("api: still listening on %s", old.listen);
		free(old.listen);
		free(old.host);
		if (old.token != NULL) {
			explicit_bzero(old.token, strlen(old.token));
			free(old.token);
		}
		return;
	}
	if (napi == NULL) {
		log_error("api: still listening on %s", api->listen);
		return;
	}
	api_free(apip);
	*apip = napi;
}
