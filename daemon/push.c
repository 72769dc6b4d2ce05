/* push: IDLE and NOTIFY watchers that wake triggers; see push.h */
#include "push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "action.h"
#include "daemon.h"
#include "imap_namespace.h"
#include "imap_pool.h"
#include "log.h"
#include "trigger.h"
#include "util.h"

enum watcher_state {
	W_BACKOFF,      /* waiting to connect again */
	W_LEASE,        /* waiting for a connection */
	W_NAMESPACE,    /* the account's first: NAMESPACE sent */
	W_SETUP,        /* NOTIFY SET, or EXAMINE + IDLE, sent */
	W_WATCHING,     /* idling, or NOTIFY in force */
	W_RESTART,      /* DONE (or NOOP) sent, waiting for its answer */
};

static const char *const strstate[] = {
	[W_BACKOFF] = "backoff",
	[W_LEASE] = "lease",
	[W_NAMESPACE] = "namespace",
	[W_SETUP] = "setup",
	[W_WATCHING] = "watching",
	[W_RESTART] = "restart",
};

enum push_method { PUSH_PROBING, PUSH_NOTIFY, PUSH_IDLE, PUSH_NONE };

struct push_account;

struct watcher {
	struct push_account *acct;
	enum watcher_state state;
	char *mailbox;                  /* IDLE: the mailbox; NULL with NOTIFY */
	bool notify;                    /* NOTIFY, not IDLE */
	bool side;                      /* NOTIFY beside IDLE watchers (below) */
	struct imap_pool *pool;
	struct imap_lease *lease;
	struct imap_conn *conn;
	struct event *timer;
	unsigned pending;
	bool failed;
	bool fresh;                     /* connected since the last wake-up */
	uint64_t watching_since;        /* monotonic ms, IDLE: the "+" */
	unsigned failures;
};

struct push_account {
	struct push *push;
	char *connection;
	struct imap_pool *pool;         /* the connection's pool when built */
	unsigned budget;                /* watcher connections allowed */
	char **mailboxes;               /* distinct mailboxes of idle triggers */
	size_t nmailboxes;
	enum push_method method;
	struct imap_namespaces *ns;     /* the server's NAMESPACE, or NULL */
	struct watcher **watchers;
	size_t nwatchers;
};

struct push {
	struct daemon *d;
	struct push_account **accts;
	size_t naccts;
};

static void watcher_state(struct watcher *, enum watcher_state);
static void watcher_lost(struct watcher *, const char *);
static void watcher_conn_lost(struct imap_conn *, const struct imap_error *, void *);
static void watcher_timer_cb(evutil_socket_t, short, void *);
static void watcher_send_examine(struct watcher *);
static void watcher_start(struct watcher *);

/* Names the same mailbox: INBOX is INBOX in any case (RFC 3501 5.1), and a
 * trigger on "Inbox" hears of what NOTIFY reports for "INBOX". */
static bool
same_mailbox(const char *a, const char *b)
{
	return strcmp(a, b) == 0 || (strcasecmp(a, "INBOX") == 0 && strcasecmp(b, "INBOX") == 0);
}

/* Whether NOTIFY's "personal" filter (RFC 5465) covers mailbox: it is in a
 * personal namespace, as far as the server's NAMESPACE says (without one:
 * every mailbox is). */
static bool
acct_personal(const struct push_account *a, const char *mailbox)
{
	return imap_namespace_kind(a->ns, mailbox) == IMAP_NS_PERSONAL;
}

/* Tells the account's triggers on mailbox (NULL: every mailbox NOTIFY
 * watches, those of the personal namespaces) how they are pushed, and
 * optionally wakes them. */
static void
acct_triggers(struct push_account *a, const char *mailbox, const char *method, bool wake)
{
	struct daemon *d = a->push->d;
	size_t i;

	for (i = 0; i < d->ntriggers; i++) {
		struct trigger *t = d->triggers[i];

		if (!trigger_is_idle(t) || strcmp(trigger_connection(t), a->connection) != 0)
			continue;
		if (mailbox != NULL ? !same_mailbox(trigger_mailbox(t), mailbox) :
		    !acct_personal(a, trigger_mailbox(t)))
			continue;
		if (method != NULL)
			trigger_set_push(t, method);
		if (wake)
			trigger_wake(t);
	}
}

static const struct cfg_connection *
acct_cfg(struct push_account *a)
{
	return config_find_connection(a->push->d->config, a->connection);
}

/* watcher life */

static struct watcher *
watcher_new(struct push_account *a, const char *mailbox)
{
	struct watcher *w = xcalloc(1, sizeof(*w));

	w->acct = a;
	w->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	w->timer = evtimer_new(a->push->d->base, watcher_timer_cb, w);
	a->watchers = xreallocarray(a->watchers, a->nwatchers + 1, sizeof(*a->watchers));
	a->watchers[a->nwatchers++] = w;
	return w;
}

static void
watcher_release(struct watcher *w)
{
	imap_pool_cancel(&w->lease);
	if (w->conn != NULL) {
		imap_conn_set_unsolicited_cb(w->conn, NULL, NULL);
		if (w->pending > 0) {
			/* fail our commands now, while w exists; their callbacks
			 * only count them down */
			w->failed = true;
			imap_conn_close(w->conn);
		}
		if (w->pool != NULL && w->pool == daemon_pool(w->acct->push->d, w->acct->connection))
			imap_pool_release(w->pool, w->conn, false);
		imap_conn_unref(&w->conn);
	}
	w->pool = NULL;
}

static void
watcher_free(struct watcher *w)
{
	evtimer_del(w->timer);
	watcher_release(w);
	event_free(w->timer);
	free(w->mailbox);
	free(w);
}

static void
watcher_timer_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct watcher *w = arg;

	switch (w->state) {
	case W_BACKOFF:
		watcher_state(w, W_LEASE);
		break;
	case W_WATCHING:
		watcher_state(w, W_RESTART);
		break;
	default:
		break;
	}
}

static void
watcher_arm(struct watcher *w, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(w->timer, &tv);     /* re-adding reschedules */
}

/* commands */

/* The answer to the account's NAMESPACE. One that makes no sense counts as
 * none: every mailbox is personal, as on a server without NAMESPACE. */
static void
acct_namespace(struct push_account *a, const struct imap_resp *resp)
{
	size_t i;

	imap_namespace_free(&a->ns);
	a->ns = imap_namespace_parse(resp->args, resp->argc);
	if (a->ns == NULL) {
		log_warn("push %s: the server's NAMESPACE answer makes no sense: every "
		    "mailbox counts as personal", a->connection);
		return;
	}
	for (i = 0; i < a->ns->count; i++)
		log_debug("push %s: namespace \"%s\" (%s)", a->connection, a->ns->ns[i].prefix,
		    imap_namespace_kind_name(a->ns->ns[i].kind));
}

static void
watcher_untagged(struct imap_conn *conn ATTR_UNUSED, const struct imap_resp *resp, void *arg)
{
	struct watcher *w = arg;
	const char *name;
	size_t len;
	char *mailbox;

	if (resp->name == NULL)
		return;
	/* EXISTS: new mail. EXPUNGE too: the mailbox may be going (Cyrus
	 * expunges a deleted mailbox's messages); the poll will find out and
	 * a new UIDVALIDITY makes this watcher select it anew */
	if ((strcmp(resp->name, "EXISTS") == 0 || strcmp(resp->name, "EXPUNGE") == 0) &&
	    w->mailbox != NULL && (w->state == W_WATCHING || w->state == W_RESTART)) {
		log_debug("push %s: %s in %s", w->acct->connection, resp->name, w->mailbox);
		acct_triggers(w->acct, w->mailbox, NULL, true);
	} else if (strcmp(resp->name, "STATUS") == 0 && w->mailbox == NULL && resp->argc >= 1 &&
	    imap_arg_get_astring(&resp->args[0], &name, &len)) {
		mailbox = action_mailbox_from_wire(name, len);
		if (strcasecmp(mailbox, "INBOX") == 0) {
			free(mailbox);
			mailbox = xstrdup("INBOX");
		}
		log_debug("push %s: NOTIFY for %s", w->acct->connection, mailbox);
		acct_triggers(w->acct, mailbox, NULL, true);
		free(mailbox);
	} else if (strcmp(resp->name, "NAMESPACE") == 0 && w->state == W_NAMESPACE) {
		acct_namespace(w->acct, resp);
	}
}

static void
watcher_cmd_done(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply, void *arg)
{
	struct watcher *w = arg;

	w->pending--;
	if (reply->status != IMAP_STATUS_OK && !w->failed && w->state == W_NAMESPACE &&
	    !imap_err_is_conn(reply->err.kind)) {
		/* NAMESPACE refused: never a reason to give up watching */
		log_warn("push %s: NAMESPACE failed (%s): every mailbox counts as personal",
		    w->acct->connection, reply->err.msg);
		imap_namespace_free(&w->acct->ns);
	} else if (reply->status != IMAP_STATUS_OK && !w->failed) {
		w->failed = true;
		watcher_lost(w, reply->err.msg);
		return;
	}
	if (w->pending > 0 || w->failed)
		return;
	if (w->state == W_NAMESPACE) {
		watcher_start(w);
		return;
	}
	if (!w->notify && (w->state == W_SETUP || w->state == W_WATCHING)) {
		/* IDLE ended without our DONE: some servers end a long IDLE
		 * themselves. Issue it again as after a re-issue; one that
		 * ends before or right after its "+" is of no use (and
		 * issuing it again at once would hammer the server). */
		if (w->state == W_SETUP || monotonic_ms() - w->watching_since < 1000) {
			watcher_lost(w, "the server ended IDLE at once");
			return;
		}
		log_debug("push %s %s: the server ended IDLE", w->acct->connection, w->mailbox);
		w->fresh = true;
		watcher_send_examine(w);
		watcher_state(w, W_SETUP);
		return;
	}
	if (w->state == W_RESTART) {
		/* IDLE ended (or NOOP answered): watch on. IDLE selects its
		 * mailbox again: it may have been deleted and created anew,
		 * and the old selection would never hear of new mail. Mail
		 * that comes between IDLE's end and the EXAMINE is only in
		 * the EXAMINE's EXISTS count, which says nothing new: wake
		 * the triggers once the new IDLE runs (one poll per
		 * idle_restart). */
		if (!w->notify) {
			w->fresh = true;
			watcher_send_examine(w);
			watcher_state(w, W_SETUP);
		} else {
			watcher_state(w, W_WATCHING);
		}
	} else if (w->state == W_SETUP && w->notify) {
		watcher_state(w, W_WATCHING);   /* NOTIFY SET accepted */
	}
}

static void
watcher_idling(struct imap_conn *conn ATTR_UNUSED, void *arg)
{
	struct watcher *w = arg;

	if (w->state == W_SETUP)
		watcher_state(w, W_WATCHING);
}

static void
watcher_send(struct watcher *w, struct imap_cmd *cmd)
{
	w->pending++;
	imap_cmd_send(cmd, watcher_cmd_done, watcher_untagged, w);
}

static void
watcher_send_examine(struct watcher *w)
{
	struct imap_cmd *cmd = imap_cmd_new(w->conn);

	imap_cmd_add(cmd, "EXAMINE ");
	if (imap_cmd_mailbox(cmd, w->mailbox) < 0)
		imap_cmd_add(cmd, "INBOX");
	watcher_send(w, cmd);
}

/*
 * NOTIFY for the personal namespace, wherever new mail lands; the watcher
 * wakes only the triggers of the mailbox named in each STATUS. Mailboxes in
 * other namespaces are left to IDLE or polling (acct_probed). Listing the
 * mailboxes instead ("mailboxes (A B)") would be leaner, but Dovecot 2.3
 * matches such names without decoding modified UTF-7 (and announces them in
 * UTF-8), so "Entw&APw-rfe" would never be reported.
 */
static void
watcher_send_notify(struct watcher *w)
{
	struct imap_cmd *cmd = imap_cmd_new(w->conn);

	/* RFC 5465: MessageNew needs MessageExpunge beside it */
	imap_cmd_add(cmd, "NOTIFY SET (personal (MessageNew MessageExpunge))");
	watcher_send(w, cmd);
}

/* How many of the account's mailboxes NOTIFY's "personal" covers. */
static size_t
acct_npersonal(const struct push_account *a)
{
	size_t i, n = 0;

	for (i = 0; i < a->nmailboxes; i++)
		if (acct_personal(a, a->mailboxes[i]))
			n++;
	return n;
}

/*
 * IDLE on the account's mailboxes (outside_only: those outside the personal
 * namespaces, which NOTIFY does not see), on at most slots connections: w's
 * for the first when w is not NULL, new watchers for the others. Those
 * beyond poll, each logged with the reason.
 */
static void
acct_idle(struct push_account *a, struct watcher *w, size_t slots, bool outside_only)
{
	const struct cfg_connection *cfg = acct_cfg(a);
	unsigned max = cfg != NULL ? cfg->max_connections : 0;
	size_t i, n = 0;

	for (i = 0; i < a->nmailboxes; i++) {
		const char *m = a->mailboxes[i];

		if (outside_only && acct_personal(a, m))
			continue;
		if (n == slots) {
			if (outside_only)
				log_warn("push %s: %s is outside the personal namespaces, which "
				    "NOTIFY does not cover, and no connection is left for IDLE on it "
				    "(max_connections = %u, less one for NOTIFY and one for polls and "
				    "API calls): it polls every interval", a->connection, m, max);
			else
				log_warn("push %s: no connection left for IDLE on %s "
				    "(max_connections = %u keeps one for polls and API calls): "
				    "it polls every interval", a->connection, m, max);
			continue;
		}
		acct_triggers(a, m, "idle", false);
		if (n++ == 0 && w != NULL) {
			free(w->mailbox);
			w->mailbox = xstrdup(m);
		} else {
			watcher_state(watcher_new(a, m), W_LEASE);
		}
	}
}

/*
 * The first connection of an account tells what the server can do, and its
 * NAMESPACE answer which mailboxes NOTIFY's "personal" filter (RFC 5465)
 * covers. With n idle mailboxes, p of them personal, and B = max_connections
 * - 1 connections to watch with (one stays for polls and API calls):
 *
 * - NOTIFY and IDLE, p > 0, n + 1 <= B (hybrid): IDLE on every mailbox, the
 *   quicker of the two on Dovecot, whose NOTIFY can fall seconds behind
 *   under steady mail (bench/README.md), and NOTIFY on one more: an IDLE on
 *   a mailbox deleted and created anew hears nothing of the new one
 *   (Dovecot, Courier); NOTIFY wakes what IDLE cannot.
 * - else NOTIFY, p > 0: NOTIFY on one connection watches the p personal
 *   mailboxes, however many. The n - p others (shared, public, other
 *   users') get IDLE on up to B - 1 connections; the rest polls.
 * - else IDLE: IDLE on up to B mailboxes; the rest polls.
 * - else: everything polls.
 *
 * Without NAMESPACE (or an answer that makes no sense) p = n, as before.
 */
static void
acct_probed(struct push_account *a, struct watcher *w)
{
	bool notify = imap_conn_has_cap(w->conn, "NOTIFY");
	bool idle = imap_conn_has_cap(w->conn, "IDLE");
	size_t p = acct_npersonal(a), outside = a->nmailboxes - p, i, n;

	if (notify && idle && p > 0 && a->nmailboxes + 1 <= a->budget) {
		struct watcher *side;

		a->method = PUSH_IDLE;
		log_info("push %s: IDLE on %zu connection%s, NOTIFY on one more for mailboxes "
		    "deleted and created anew", a->connection, a->nmailboxes,
		    a->nmailboxes == 1 ? "" : "s");
		acct_idle(a, w, a->budget, false);
		side = watcher_new(a, NULL);
		side->notify = side->side = true;
		watcher_state(side, W_LEASE);
		return;
	}
	if (notify && p > 0) {
		a->method = PUSH_NOTIFY;
		w->notify = true;
		log_info("push %s: NOTIFY watches %zu mailbox%s on one connection",
		    a->connection, p, p == 1 ? "" : "es");
		acct_triggers(a, NULL, "notify", false);
		if (outside > 0 && idle) {
			n = outside < a->budget - 1 ? outside : a->budget - 1;
			if (n > 0)
				log_info("push %s: IDLE on %zu more connection%s for mailboxes "
				    "outside the personal namespaces", a->connection, n,
				    n == 1 ? "" : "s");
			acct_idle(a, NULL, a->budget - 1, true);
		} else if (outside > 0) {
			for (i = 0; i < a->nmailboxes; i++)
				if (!acct_personal(a, a->mailboxes[i]))
					log_warn("push %s: %s is outside the personal namespaces, "
					    "which NOTIFY does not cover, and the server has no "
					    "IDLE: it polls every interval", a->connection,
					    a->mailboxes[i]);
		}
		return;
	}
	if (!idle) {
		a->method = PUSH_NONE;
		if (notify)
			log_info("push %s: no idle trigger's mailbox is in a personal namespace, "
			    "which is all NOTIFY covers, and the server has no IDLE: idle "
			    "triggers poll every interval", a->connection);
		else
			log_info("push %s: the server has neither NOTIFY nor IDLE: idle triggers "
			    "poll every interval", a->connection);
		return;
	}
	a->method = PUSH_IDLE;
	n = a->nmailboxes < a->budget ? a->nmailboxes : a->budget;
	log_info("push %s: IDLE on %zu connection%s%s", a->connection, n, n == 1 ? "" : "s",
	    notify ? " (NOTIFY covers none of the mailboxes: they are outside the personal "
	    "namespaces)" : "");
	acct_idle(a, w, a->budget, false);
}

/* The connection is up and, for the account's first, the server known:
 * decide, then NOTIFY SET, or EXAMINE and IDLE. */
static void
watcher_start(struct watcher *w)
{
	struct push_account *a = w->acct;

	if (a->method == PUSH_PROBING)
		acct_probed(a, w);
	if (a->method == PUSH_NONE) {
		watcher_release(w);
		return;
	}
	w->fresh = true;
	if (w->notify)
		watcher_send_notify(w);
	else
		watcher_send_examine(w);
	watcher_state(w, W_SETUP);
}

static void
watcher_lease_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct watcher *w = arg;
	struct push_account *a = w->acct;

	w->lease = NULL;
	if (conn == NULL) {
		watcher_lost(w, err->msg);
		return;
	}
	imap_conn_ref(conn);
	w->conn = conn;
	/* NOTIFY's STATUS responses come while no command is pending, and
	 * so may the end of the connection */
	imap_conn_set_unsolicited_cb(conn, watcher_untagged, w);
	imap_pool_watch(w->pool, conn, watcher_conn_lost, w);
	/* only NOTIFY cares which namespace a mailbox is in */
	if (a->method == PUSH_PROBING && imap_conn_has_cap(conn, "NOTIFY") &&
	    imap_conn_has_cap(conn, "NAMESPACE"))
		watcher_state(w, W_NAMESPACE);
	else
		watcher_start(w);
}

static void
watcher_conn_lost(struct imap_conn *conn ATTR_UNUSED, const struct imap_error *err, void *arg)
{
	struct watcher *w = arg;

	if (w->pending == 0 && !w->failed) {
		w->failed = true;
		watcher_lost(w, err->msg);
	}
}

/* The watcher's connection failed: poll meanwhile, reconnect later. */
static void
watcher_lost(struct watcher *w, const char *why)
{
	struct daemon *d = w->acct->push->d;
	uint64_t ms;

	w->failures++;
	ms = backoff_delay_ms(w->failures, d->config->poll_backoff_max);
	log_warn("push %s%s%s: %s (reconnecting in %.1f s; polling meanwhile)",
	    w->acct->connection, w->mailbox != NULL ? " " : "",
	    w->mailbox != NULL ? w->mailbox : "", why, (double)ms / 1000.0);
	/* /healthz and /metrics tell the truth meanwhile */
	if (!w->side)
		acct_triggers(w->acct, w->mailbox, "poll", false);
	watcher_release(w);
	w->state = W_BACKOFF;
	watcher_arm(w, ms);
}

static void
watcher_state(struct watcher *w, enum watcher_state next)
{
	struct push_account *a = w->acct;
	const struct cfg_connection *cfg = acct_cfg(a);
	struct imap_cmd *cmd;

	log_debug("push %s: %s -> %s", a->connection, strstate[w->state], strstate[next]);
	w->state = next;
	switch (next) {
	case W_BACKOFF:
		break;
	case W_LEASE:
		w->failed = false;
		w->pool = daemon_pool(a->push->d, a->connection);
		if (w->pool == NULL || cfg == NULL) {
			watcher_lost(w, "connection not configured");
			return;
		}
		w->lease = imap_pool_lease(w->pool, watcher_lease_cb, w);
		break;
	case W_NAMESPACE:
		cmd = imap_cmd_new(w->conn);
		imap_cmd_add(cmd, "NAMESPACE");
		watcher_send(w, cmd);
		break;
	case W_SETUP:
		/* IDLE (after EXAMINE); NOTIFY SET or EXAMINE was sent by
		 * watcher_start */
		if (!w->notify) {
			w->pending++;
			imap_conn_idle(w->conn, watcher_cmd_done, watcher_untagged,
			    watcher_idling, w);
		}
		break;
	case W_WATCHING:
		w->watching_since = monotonic_ms();
		watcher_arm(w, (uint64_t)cfg->idle_restart * 1000u);
		if (w->failures > 0) {
			log_info("push %s%s%s: watching again", a->connection,
			    w->mailbox != NULL ? " " : "", w->mailbox != NULL ? w->mailbox : "");
			if (!w->side)
				acct_triggers(a, w->mailbox, w->notify ? "notify" : "idle", false);
		}
		w->failures = 0;
		if (w->fresh) {
			/* mail may have come while we were away or setting up */
			w->fresh = false;
			acct_triggers(a, w->mailbox, NULL, true);
		}
		break;
	case W_RESTART:
		if (!w->notify) {
			imap_conn_idle_done(w->conn);
		} else {
			cmd = imap_cmd_new(w->conn);
			imap_cmd_add(cmd, "NOOP");
			watcher_send(w, cmd);
		}
		break;
	}
}

/* setup */

static struct push_account *
push_account(struct push *p, const char *connection)
{
	struct push_account *a;
	size_t i;

	for (i = 0; i < p->naccts; i++)
		if (strcmp(p->accts[i]->connection, connection) == 0)
			return p->accts[i];
	a = xcalloc(1, sizeof(*a));
	a->push = p;
	a->connection = xstrdup(connection);
	a->pool = daemon_pool(p->d, connection);
	p->accts = xreallocarray(p->accts, p->naccts + 1, sizeof(*p->accts));
	p->accts[p->naccts++] = a;
	return a;
}

static void
acct_free(struct push_account *a)
{
	size_t j;

	for (j = 0; j < a->nwatchers; j++)
		watcher_free(a->watchers[j]);
	free(a->watchers);
	for (j = 0; j < a->nmailboxes; j++)
		free(a->mailboxes[j]);
	free(a->mailboxes);
	imap_namespace_free(&a->ns);
	free(a->connection);
	free(a);
}

/* The accounts of d's idle triggers with their distinct mailboxes, no
 * watcher started yet; every idle trigger's push label cleared. */
static struct push *
push_collect(struct daemon *d)
{
	struct push *p = xcalloc(1, sizeof(*p));
	size_t i, j;

	p->d = d;
	for (i = 0; i < d->ntriggers; i++) {
		struct trigger *t = d->triggers[i];
		struct push_account *a;

		if (!trigger_is_idle(t))
			continue;
		trigger_set_push(t, NULL);
		a = push_account(p, trigger_connection(t));
		for (j = 0; j < a->nmailboxes; j++)
			if (same_mailbox(a->mailboxes[j], trigger_mailbox(t)))
				break;
		if (j == a->nmailboxes) {
			a->mailboxes = xreallocarray(a->mailboxes, a->nmailboxes + 1, sizeof(char *));
			a->mailboxes[a->nmailboxes++] = xstrdup(trigger_mailbox(t));
		}
	}
	return p;
}

/* Starts watching for a: the first connection probes what the server can. */
static void
acct_begin(struct push_account *a)
{
	const struct cfg_connection *cfg = acct_cfg(a);

	a->budget = cfg != NULL && cfg->max_connections > 1 ? cfg->max_connections - 1 : 0;
	if (a->budget == 0) {
		a->method = PUSH_NONE;
		log_warn("push %s: max_connections = 1 leaves no connection to watch "
		    "with: idle triggers poll every interval (raise max_connections)",
		    a->connection);
		return;
	}
	a->method = PUSH_PROBING;
	watcher_state(watcher_new(a, NULL), W_LEASE);
}

struct push *
push_new(struct daemon *d)
{
	struct push *p = push_collect(d);
	size_t i;

	for (i = 0; i < p->naccts; i++)
		acct_begin(p->accts[i]);
	return p;
}

/* Both watch the same set of mailboxes. */
static bool
acct_same_mailboxes(const struct push_account *a, const struct push_account *b)
{
	size_t i, j;

	if (a->nmailboxes != b->nmailboxes)
		return false;
	for (i = 0; i < a->nmailboxes; i++) {
		for (j = 0; j < b->nmailboxes; j++)
			if (same_mailbox(a->mailboxes[i], b->mailboxes[j]))
				break;
		if (j == b->nmailboxes)
			return false;
	}
	return true;
}

/* The push labels of a's triggers (restarted or new ones have none) from
 * what its watchers do now. */
static void
acct_relabel(struct push_account *a)
{
	size_t i;

	/* still probing: acct_probed labels them all */
	if (a->method == PUSH_PROBING || a->method == PUSH_NONE)
		return;
	for (i = 0; i < a->nwatchers; i++) {
		struct watcher *w = a->watchers[i];

		if (w->side)
			continue;
		/* lost and reconnecting: "poll", as watcher_lost says */
		acct_triggers(a, w->mailbox, w->failures > 0 ? "poll" :
		    w->notify ? "notify" : "idle", false);
	}
}

void
push_prune(struct push *p)
{
	size_t i, n = 0;

	if (p == NULL)
		return;
	for (i = 0; i < p->naccts; i++) {
		struct push_account *a = p->accts[i];

		if (a->pool != daemon_pool(p->d, a->connection))
			acct_free(a);
		else
			p->accts[n++] = a;
	}
	p->naccts = n;
}

void
push_reload(struct push **pp, struct daemon *d)
{
	struct push *old = *pp, *p = push_collect(d);
	size_t i, j, kept = 0;

	for (i = 0; i < p->naccts; i++) {
		struct push_account *na = p->accts[i], *oa = NULL;

		for (j = 0; old != NULL && j < old->naccts; j++) {
			if (old->accts[j] != NULL &&
			    strcmp(old->accts[j]->connection, na->connection) == 0 &&
			    old->accts[j]->pool == na->pool &&
			    acct_same_mailboxes(old->accts[j], na)) {
				oa = old->accts[j];
				old->accts[j] = NULL;
				break;
			}
		}
		if (oa == NULL) {
			acct_begin(na);
			continue;
		}
		/* the same connection watching the same mailboxes: its
		 * watchers go on, no new log-ins */
		oa->push = p;
		p->accts[i] = oa;
		acct_free(na);
		acct_relabel(oa);
		kept++;
	}
	if (old != NULL) {
		for (j = 0; j < old->naccts; j++)
			if (old->accts[j] != NULL)
				acct_free(old->accts[j]);
		old->naccts = 0;
	}
	push_free(&old);
	if (kept > 0)
		log_debug("push: %zu account%s kept watching", kept, kept == 1 ? "" : "s");
	*pp = p;
}

void
push_refresh(struct push *p, const char *connection, const char *mailbox)
{
	size_t i, j;

	for (i = 0; i < p->naccts; i++) {
		struct push_account *a = p->accts[i];

		/* IDLE watchers: with PUSH_IDLE, or beside NOTIFY for mailboxes
		 * outside the personal namespaces */
		if (strcmp(a->connection, connection) != 0)
			continue;
		for (j = 0; j < a->nwatchers; j++) {
			struct watcher *w = a->watchers[j];

			if (w->mailbox != NULL && same_mailbox(w->mailbox, mailbox) &&
			    w->state == W_WATCHING)
				watcher_state(w, W_RESTART);
		}
	}
}

void
push_free(struct push **pp)
{
	struct push *p = *pp;
	size_t i;

	*pp = NULL;
	if (p == NULL)
		return;
	for (i = 0; i < p->naccts; i++)
		acct_free(p->accts[i]);
	free(p->accts);
	free(p);
}
