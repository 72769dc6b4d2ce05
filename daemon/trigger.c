/* trigger: the "New Emails" poller of one mailbox; see trigger.h */
#include "trigger.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>

#include "batch.h"
#include "daemon.h"
#include "event.h"
#include "imap_pool.h"
#include "jsonutil.h"
#include "log.h"
#include "push.h"
#include "util.h"

/* UIDs asked for per UID FETCH: how much work a crash can make us redo. */
#define TRIGGER_BATCH 500
/* First polls started per millisecond of the start-up spread. */
#define TRIGGER_STARTS_PER_MS 5

enum trig_state {
	TRIG_WAIT,      /* for the next poll */
	TRIG_LEASE,     /* for a connection */
	TRIG_STATUS,    /* STATUS sent */
	TRIG_FETCH,     /* EXAMINE/SELECT + UID FETCH of a window sent */
	TRIG_MARK,      /* UID STORE \Seen sent */
	TRIG_CLOSE,     /* UNSELECT/CLOSE sent */
	TRIG_ABORT,     /* failed; waiting for the commands still in flight */
	TRIG_STOPPED,
};

static const char *const strstate[] = {
	[TRIG_WAIT] = "wait",
	[TRIG_LEASE] = "lease",
	[TRIG_STATUS] = "status",
	[TRIG_FETCH] = "fetch",
	[TRIG_MARK] = "mark",
	[TRIG_CLOSE] = "close",
	[TRIG_ABORT] = "abort",
	[TRIG_STOPPED] = "stopped",
};

struct trigger {
	struct daemon *d;
	/* configuration, copied */
	char *name, *connection, *mailbox;
	unsigned interval;
	enum cfg_mode mode;
	bool fetch_content, mark_as_read;
	char **webhooks;
	size_t nwebhooks;
	enum cfg_start_from start_from;
	size_t max_content_size;

	enum trig_state state;
	struct event *timer;
	struct imap_pool *pool;
	struct imap_lease *lease;
	struct imap_conn *conn;
	unsigned pending;               /* our commands in flight */
	bool cmd_failed;
	struct imap_error cmd_err;      /* the first failure among them */
	const struct imap_resp *cmd_resp;

	struct trigger_state st;        /* persisted */
	bool st_loaded;                 /* false: loading failed, retried per poll */

	/* UIDNEXT seen by the last poll whose fetch went through to the end:
	 * while STATUS shows the same, nothing can be new (a newest message
	 * that was expunged must not cost a fetch every poll). In memory. */
	uint32_t checked_uidnext;

	/* the poll in progress */
	uint64_t poll_start_us;
	bool have_uidnext;
	uint32_t s_uidnext, s_uidvalidity, s_messages;
	bool have_uidvalidity;
	uint32_t cursor;                /* next UID to ask for */
	uint32_t win_lo, win_hi;        /* the window asked for; hi 0 = '*' */
	struct batch batch;             /* what the window queued */
	bool uv_mismatch;

	const char *push;               /* static string, see trigger_set_push */
	bool wake_pending;              /* woken during a poll: poll again */

	/* health and metrics */
	time_t last_poll_at, last_success_at;
	char *last_error;
	enum imap_err last_err_kind;
	unsigned failures;
	uint64_t polls_ok, polls_failed, events_queued;
};

static void trig_state(struct trigger *, enum trig_state);
static void trig_step_done(struct trigger *);
static void trig_lease_cb(struct imap_conn *, const struct imap_error *, void *);
static void trig_poll_end(struct trigger *, bool);
static void trig_timer_cb(evutil_socket_t, short, void *);
static void trig_fail(struct trigger *, enum imap_err, const char *, ...) ATTR_FORMAT(3, 4);

/* life cycle */

struct trigger *
trigger_new(struct daemon *d, const struct cfg_trigger *cfg)
{
	struct trigger *t = xcalloc(1, sizeof(*t));
	char *err = NULL;
	size_t i;

	t->d = d;
	t->name = xstrdup(cfg->name);
	t->connection = xstrdup(cfg->connection->name);
	t->mailbox = xstrdup(cfg->mailbox);
	t->interval = cfg->interval;
	t->mode = cfg->mode;
	t->fetch_content = cfg->fetch_content;
	t->mark_as_read = cfg->mark_as_read;
	t->nwebhooks = cfg->nwebhooks;
	t->webhooks = xcalloc(cfg->nwebhooks + 1, sizeof(char *));
	for (i = 0; i < cfg->nwebhooks; i++)
		t->webhooks[i] = xstrdup(cfg->webhooks[i]->name);
	t->start_from = cfg->start_from;
	t->max_content_size = cfg->max_content_size;
	t->state = TRIG_STOPPED;
	t->timer = evtimer_new(d->base, trig_timer_cb, t);
	batch_init(&t->batch, t->name, t->webhooks, t->nwebhooks);
	if (state_load(d->config->state_dir, t->name, &t->st, &err) < 0) {
		/* a corrupt file was set aside (the next load starts afresh);
		 * an unreadable one is retried at each poll, never overwritten */
		log_error("trigger %s: %s", t->name, err);
		free(err);
	} else {
		t->st_loaded = true;
	}
	return t;
}

size_t
trigger_hold_unsaved(struct trigger *t)
{
	if (!t->st_loaded || !t->st.exists)
		return 0;
	return outbox_hold_after(t->d->outbox, t->name, OUTBOX_KEY(t->st.epoch, t->st.last_uid));
}

void
trigger_free(struct trigger **tp)
{
	struct trigger *t = *tp;
	size_t i;

	*tp = NULL;
	if (t == NULL)
		return;
	trigger_stop(t);
	/* a poll cut short: its puts were never committed */
	if (t->d->outbox != NULL)
		outbox_drop(t->d->outbox, t->name, 0);
	event_free(t->timer);
	for (i = 0; i < t->nwebhooks; i++)
		free(t->webhooks[i]);
	free(t->webhooks);
	free(t->name);
	free(t->connection);
	free(t->mailbox);
	batch_free(&t->batch);
	free(t->last_error);
	trigger_state_clear(&t->st);
	free(t);
}

const char *
trigger_name(const struct trigger *t)
{
	return t->name;
}

const char *
trigger_connection(const struct trigger *t)
{
	return t->connection;
}

const char *
trigger_mailbox(const struct trigger *t)
{
	return t->mailbox;
}

bool
trigger_is_idle(const struct trigger *t)
{
	return t->mode == CFG_MODE_IDLE && !t->d->once;
}

void
trigger_set_push(struct trigger *t, const char *method)
{
	t->push = method;
}

void
trigger_wake(struct trigger *t)
{
	if (t->state == TRIG_WAIT && t->failures > 0)
		return;         /* backing off: the retry will look (no storm of
				 * failing polls while mail keeps coming) */
	if (t->state == TRIG_WAIT) {
		evtimer_del(t->timer);
		trig_state(t, TRIG_LEASE);
	} else if (t->state != TRIG_STOPPED) {
		t->wake_pending = true;
	}
}

bool
trigger_same(const struct trigger *t, const struct cfg_trigger *cfg)
{
	size_t i;

	if (strcmp(t->name, cfg->name) != 0 || strcmp(t->connection, cfg->connection->name) != 0 ||
	    strcmp(t->mailbox, cfg->mailbox) != 0 || t->interval != cfg->interval ||
	    t->mode != cfg->mode || t->fetch_content != cfg->fetch_content ||
	    t->mark_as_read != cfg->mark_as_read || t->start_from != cfg->start_from ||
	    t->max_content_size != cfg->max_content_size || t->nwebhooks != cfg->nwebhooks)
		return false;
	for (i = 0; i < t->nwebhooks; i++)
		if (strcmp(t->webhooks[i], cfg->webhooks[i]->name) != 0)
			return false;
	return true;
}

void
trigger_info(const struct trigger *t, struct trigger_info *info_r)
{
	memset(info_r, 0, sizeof(*info_r));
	info_r->name = t->name;
	info_r->connection = t->connection;
	info_r->mailbox = t->mailbox;
	info_r->mode = t->mode == CFG_MODE_IDLE ? "idle" : "poll";
	info_r->push = t->push;
	info_r->last_poll_at = t->last_poll_at;
	info_r->last_success_at = t->last_success_at;
	info_r->last_error = t->last_error;
	info_r->failing = t->last_error != NULL;
	info_r->polls_ok = t->polls_ok;
	info_r->polls_failed = t->polls_failed;
	info_r->events_queued = t->events_queued;
	info_r->uidvalidity = t->st.uidvalidity;
	info_r->last_uid = t->st.last_uid;
}

/* Jitter only: random(3), seeded at start-up, is plenty (and cheaper than
 * RAND_bytes at every poll). */
static uint32_t
random_u32(void)
{
	return (uint32_t)random();
}

static void
trig_timer_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct trigger *t = arg;

	if (t->state == TRIG_WAIT)
		trig_state(t, TRIG_LEASE);
}

static void
trig_schedule(struct trigger *t, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(t->timer, &tv);     /* re-adding reschedules */
}

void
trigger_start(struct trigger *t, size_t together)
{
	uint64_t spread;

	t->state = TRIG_WAIT;
	if (t->d->once) {
		trig_schedule(t, 0);
		return;
	}
	/* spread the first polls of the triggers starting together, 0.2 ms
	 * per trigger (10,000 over 2 s, 20 within 4 ms), over at most 2 s or
	 * the interval; later polls keep their distance (interval ± 5 %) */
	spread = (uint64_t)together / TRIGGER_STARTS_PER_MS;
	if (spread > 2000)
		spread = 2000;
	if (spread > (uint64_t)t->interval * 1000u)
		spread = (uint64_t)t->interval * 1000u;
	trig_schedule(t, random_u32() % (spread + 1));
}

static void
trig_release(struct trigger *t, bool reusable)
{
	imap_pool_cancel(&t->lease);
	if (t->conn != NULL) {
		struct imap_pool *pool = daemon_pool(t->d, t->connection);

		/* the pool may have been replaced by a reload meanwhile */
		if (pool == t->pool && pool != NULL)
			imap_pool_release(pool, t->conn, reusable);
		imap_conn_unref(&t->conn);
	}
	t->pool = NULL;
}

void
trigger_stop(struct trigger *t)
{
	if (t->state == TRIG_STOPPED)
		return;
	evtimer_del(t->timer);
	t->state = TRIG_STOPPED;
	/* A poll in flight is dropped: what was not synced is fetched again
	 * next time. Its commands must complete now, while t exists: closing
	 * the connection fails them (their callbacks see TRIG_STOPPED). */
	if (t->conn != NULL && t->pending > 0)
		imap_conn_close(t->conn);
	trig_release(t, false);
}

/* commands */

static void
trig_cmd_done(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply, void *arg)
{
	struct trigger *t = arg;

	t->pending--;
	if (reply->status != IMAP_STATUS_OK && !t->cmd_failed) {
		t->cmd_failed = true;
		t->cmd_err = reply->err;
		if (reply->status == IMAP_STATUS_NONE)
			t->cmd_err.kind = reply->err.kind;
	}
	if (t->pending == 0)
		trig_step_done(t);
}

/* For commands whose failure does not matter (UNSELECT). */
static void
trig_cmd_done_optional(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply,
    void *arg)
{
	struct trigger *t = arg;

	t->pending--;
	if (reply->status == IMAP_STATUS_NONE && !t->cmd_failed) {
		t->cmd_failed = true;
		t->cmd_err = reply->err;
	}
	if (t->pending == 0)
		trig_step_done(t);
}

static void trig_untagged(struct imap_conn *, const struct imap_resp *, void *);

static void
trig_send(struct trigger *t, struct imap_cmd *cmd, bool optional)
{
	t->pending++;
	imap_cmd_send(cmd, optional ? trig_cmd_done_optional : trig_cmd_done,
	    trig_untagged, t);
}

static struct imap_cmd *
trig_cmd_mailbox(struct trigger *t, const char *verb)
{
	struct imap_cmd *cmd = imap_cmd_new(t->conn);

	imap_cmd_add(cmd, verb);
	imap_cmd_add(cmd, " ");
	if (imap_cmd_mailbox(cmd, t->mailbox) < 0)
		imap_cmd_add(cmd, "\"\"");      /* config checked it is UTF-8 */
	return cmd;
}

/* events */

static struct event_origin
trig_origin(const struct trigger *t)
{
	return (struct event_origin){ t->name, t->connection, t->mailbox };
}

/* One "* n FETCH (...)" answer of our UID FETCH: an email.new event. */
static void
trig_fetch_response(struct trigger *t, const struct imap_resp *resp)
{
	struct event_origin o = trig_origin(t);
	struct event_fetch f;
	json_t *ev;

	if (t->uv_mismatch || !event_fetch_parse(resp, &f))
		return;
	/* Not ours: an unsolicited flag update, or the "n:*" answer for a UID
	 * below n, or one we queued already. */
	if (f.uid == 0 || f.envelope == NULL || f.uid <= t->st.last_uid || f.uid < t->win_lo ||
	    (t->win_hi != 0 && f.uid > t->win_hi))
		return;
	/* after a failed write, nothing more of this batch: what was queued
	 * before it is committed, the rest fetched again next time */
	if (t->batch.error != NULL)
		return;
	ev = event_email_new(&o, t->st.uidvalidity, &f,
	    t->fetch_content ? t->max_content_size : 0);
	if (batch_add(&t->batch, t->d->outbox, t->st.epoch, f.uid, ev) == 0)
		log_debug("trigger %s: queued %s:%u:%u", t->name, t->name,
		    t->st.uidvalidity, f.uid);
	json_decref(ev);
}

static void
trig_untagged(struct imap_conn *conn ATTR_UNUSED, const struct imap_resp *resp, void *arg)
{
	struct trigger *t = arg;
	const struct imap_arg *items;
	uint32_t n, i, v;

	if (resp->name != NULL && strcmp(resp->name, "STATUS") == 0 && resp->argc >= 2 &&
	    imap_arg_get_list(&resp->args[1], &items, &n)) {
		for (i = 0; i + 1 < n; i += 2) {
			const char *key;
			size_t klen;

			if (!imap_arg_get_astring(&items[i], &key, &klen) ||
			    imap_arg_get_u32(&items[i + 1], &v) < 0)
				continue;
			if (strcasecmp(key, "UIDNEXT") == 0) {
				t->s_uidnext = v;
				t->have_uidnext = true;
			} else if (strcasecmp(key, "UIDVALIDITY") == 0) {
				t->s_uidvalidity = v;
				t->have_uidvalidity = true;
			} else if (strcasecmp(key, "MESSAGES") == 0) {
				t->s_messages = v;
			}
		}
		return;
	}
	if (t->state == TRIG_FETCH && resp->status == IMAP_STATUS_OK &&
	    imap_resp_code_u32(resp, "UIDVALIDITY", &v) && v != t->st.uidvalidity) {
		/* changed between STATUS and SELECT: the next poll resets */
		t->uv_mismatch = true;
		return;
	}
	if (t->state == TRIG_FETCH && resp->name != NULL && strcmp(resp->name, "FETCH") == 0)
		trig_fetch_response(t, resp);
}

/* the steps of a poll */

static void
trig_send_status(struct trigger *t)
{
	const char *sel = imap_conn_selected(t->conn, NULL);
	struct imap_cmd *cmd;

	t->have_uidnext = t->have_uidvalidity = false;
	/* STATUS of the selected mailbox may be stale on some servers */
	if (sel != NULL && strcmp(sel, t->mailbox) == 0) {
		/* without UNSELECT, a NOOP brings the session's view up to
		 * date (Courier answers STATUS from it) */
		cmd = imap_cmd_new(t->conn);
		if (imap_conn_has_cap(t->conn, "UNSELECT")) {
			imap_cmd_add(cmd, "UNSELECT");
			imap_conn_set_selected(t->conn, NULL, false);
		} else {
			imap_cmd_add(cmd, "NOOP");
		}
		trig_send(t, cmd, true);
	}
	cmd = trig_cmd_mailbox(t, "STATUS");
	imap_cmd_add(cmd, " (UIDNEXT UIDVALIDITY MESSAGES)");
	trig_send(t, cmd, false);
}

/*
 * Persists st (recording this trigger's connection and mailbox), or fails
 * the poll; returns 0 or -1. Durable before returning; or, with lazy (a
 * new trigger's first state, or UIDs marked \Seen), atomically now and
 * durably within DAEMON_STATE_SYNC_MS together with every other such
 * state of the moment: 10,000 triggers starting must not cost 20,000
 * fsyncs in a row.
 */
static int
trig_save_how(struct trigger *t, bool lazy)
{
	struct trigger_state out = t->st;
	char *err = NULL;

	out.connection = t->connection;
	out.mailbox = t->mailbox;
	if ((lazy ? state_save_nosync : state_save)(t->d->config->state_dir, t->name,
	    &out, &err) < 0) {
		trig_fail(t, IMAP_ERR_NONE, "cannot save state: %s", err);
		free(err);
		return -1;
	}
	if (lazy)
		daemon_state_sync_later(t->d);
	/* the saved state names our connection and mailbox now */
	if (t->st.connection == NULL || strcmp(t->st.connection, t->connection) != 0) {
		free(t->st.connection);
		t->st.connection = xstrdup(t->connection);
	}
	if (t->st.mailbox == NULL || strcmp(t->st.mailbox, t->mailbox) != 0) {
		free(t->st.mailbox);
		t->st.mailbox = xstrdup(t->mailbox);
	}
	return 0;
}

static int
trig_save(struct trigger *t)
{
	return trig_save_how(t, false);
}

/* Makes what the batch put durable, then the state (with mark_as_read,
 * the UIDs now queued as still to mark \Seen), then deliverable. On
 * failure the in-memory state stays what the disk holds. */
static int
trig_commit(struct trigger *t, uint32_t new_last_uid, bool to_mark)
{
	struct trigger_state old = t->st;
	char *err = NULL;

	if (outbox_sync(t->d->outbox, t->name, &err) < 0) {
		trig_fail(t, IMAP_ERR_NONE, "cannot queue event: %s", err);
		free(err);
		return -1;
	}
	if (to_mark) {
		/* after those of a cut-off poll, if any (they end at last_uid) */
		if (t->st.seen_to == 0)
			t->st.seen_from = t->st.last_uid + 1;
		t->st.seen_to = new_last_uid;
	}
	t->st.last_uid = new_last_uid;
	if (trig_save(t) < 0) {
		/* what is on disk */
		t->st.last_uid = old.last_uid;
		t->st.seen_from = old.seen_from;
		t->st.seen_to = old.seen_to;
		return -1;
	}
	outbox_commit(t->d->outbox, t->name);
	webhook_sender_kick(t->d->sender);
	return 0;
}

/* The UID STORE of the UIDs to mark \Seen is through: none are pending
 * any more. Not fsynced: if that is lost, they are marked once more. */
static int
trig_marked(struct trigger *t)
{
	uint32_t from = t->st.seen_from, to = t->st.seen_to;

	t->st.seen_from = t->st.seen_to = 0;
	if (trig_save_how(t, true) < 0) {
		t->st.seen_from = from;
		t->st.seen_to = to;
		return -1;
	}
	return 0;
}

/* "now": everything up to the UIDNEXT just seen counts as old mail. */
static uint32_t
trig_baseline(const struct trigger *t)
{
	return t->s_uidnext > 0 ? t->s_uidnext - 1 : 0;
}

/* UIDVALIDITY changed: one mailbox.reset event, then a new baseline. */
static int
trig_reset(struct trigger *t)
{
	struct event_origin o = trig_origin(t);
	json_t *ev;
	uint32_t previous = t->st.uidvalidity;
	char *err;

	log_warn("trigger %s: UIDVALIDITY of %s changed from %u to %u: posting "
	    "mailbox.reset and starting over (start_from = %s)", t->name, t->mailbox,
	    previous, t->s_uidvalidity, t->start_from == CFG_START_ALL ? "all" : "now");
	ev = event_mailbox_reset(&o, previous, t->s_uidvalidity);
	t->st.epoch++;
	t->st.uidvalidity = t->s_uidvalidity;
	if (batch_write(&t->batch, t->d->outbox, t->st.epoch, 0, ev) < 0) {
		json_decref(ev);
		t->st.epoch--;
		t->st.uidvalidity = previous;
		err = batch_take_error(&t->batch);
		trig_fail(t, IMAP_ERR_NONE, "cannot queue the mailbox.reset event: %s", err);
		free(err);
		return -1;
	}
	json_decref(ev);
	t->st.seen_from = t->st.seen_to = 0;    /* UIDs of the old UIDVALIDITY */
	if (trig_commit(t, t->start_from == CFG_START_ALL ? 0 : trig_baseline(t), false) < 0) {
		/* not on disk: the next poll sees the change again */
		t->st.epoch--;
		t->st.uidvalidity = previous;
		return -1;
	}
	t->events_queued++;
	return 0;
}

static void
trig_send_fetch(struct trigger *t)
{
	struct imap_cmd *cmd;
	const char *sel;
	bool ro;

	sel = imap_conn_selected(t->conn, &ro);
	if (sel == NULL || strcmp(sel, t->mailbox) != 0 || (ro && t->mark_as_read)) {
		cmd = trig_cmd_mailbox(t, t->mark_as_read ? "SELECT" : "EXAMINE");
		trig_send(t, cmd, false);
		imap_conn_set_selected(t->conn, t->mailbox, !t->mark_as_read);
	}
	t->win_lo = t->cursor;
	if (t->have_uidnext && t->s_uidnext > t->cursor &&
	    t->s_uidnext - t->cursor > TRIGGER_BATCH)
		t->win_hi = t->cursor + TRIGGER_BATCH - 1;
	else
		t->win_hi = 0;
	batch_reset(&t->batch);
	cmd = imap_cmd_new(t->conn);
	if (t->win_hi != 0)
		imap_cmd_addf(cmd, "UID FETCH %u:%u", t->win_lo, t->win_hi);
	else
		imap_cmd_addf(cmd, "UID FETCH %u:*", t->win_lo);
	imap_cmd_add(cmd, " (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE");
	if (t->fetch_content)
		imap_cmd_addf(cmd, " BODY.PEEK[]<0.%zu>", t->max_content_size);
	imap_cmd_add(cmd, ")");
	trig_send(t, cmd, false);
}

/* STATUS is in: baseline, reset, nothing new, or fetch. */
static void
trig_status_done(struct trigger *t)
{
	bool fresh;

	if (!t->have_uidnext || !t->have_uidvalidity) {
		trig_fail(t, IMAP_ERR_PROTOCOL, "STATUS %s gave no UIDNEXT/UIDVALIDITY",
		    t->mailbox);
		return;
	}
	fresh = !t->st.exists || t->st.mailbox == NULL || t->st.connection == NULL ||
	    strcmp(t->st.mailbox, t->mailbox) != 0 || strcmp(t->st.connection, t->connection) != 0;
	if (fresh || t->st.uidvalidity != t->s_uidvalidity)
		t->checked_uidnext = 0;
	if (fresh) {
		struct trigger_state was = t->st;

		if (t->st.exists)
			log_info("trigger %s: now watches %s on %s; starting over", t->name,
			    t->mailbox, t->connection);
		t->st.epoch = t->st.exists ? t->st.epoch + 1 : 1;
		t->st.exists = true;
		t->st.uidvalidity = t->s_uidvalidity;
		t->st.last_uid = t->start_from == CFG_START_ALL ? 0 : trig_baseline(t);
		t->st.seen_from = t->st.seen_to = 0;
		if (trig_save_how(t, true) < 0) {
			/* not on disk: start over next time */
			t->st.epoch = was.epoch;
			t->st.exists = was.exists;
			t->st.uidvalidity = was.uidvalidity;
			t->st.last_uid = was.last_uid;
			t->st.seen_from = was.seen_from;
			t->st.seen_to = was.seen_to;
			return;
		}
		log_info("trigger %s: watching %s (UIDVALIDITY %u), %s", t->name, t->mailbox,
		    t->s_uidvalidity, t->start_from == CFG_START_ALL ?
		    "queueing every message already there" : "new mail from now on");
	} else if (t->st.uidvalidity != t->s_uidvalidity && t->st.last_uid == 0 &&
	    t->start_from == CFG_START_NOW) {
		/*
		 * Nothing was ever queued and the baseline was an empty
		 * mailbox: every message there now came after the first run,
		 * whatever the UIDVALIDITY says. (Courier reports a new one at
		 * each STATUS of a mailbox nobody has written to yet.)
		 */
		log_debug("trigger %s: UIDVALIDITY of the still empty %s changed from %u to %u",
		    t->name, t->mailbox, t->st.uidvalidity, t->s_uidvalidity);
		t->st.uidvalidity = t->s_uidvalidity;
		if (trig_save(t) < 0)
			return;
	} else if (t->st.uidvalidity != t->s_uidvalidity) {
		if (trig_reset(t) < 0)
			return;
		if (t->d->push != NULL)
			push_refresh(t->d->push, t->connection, t->mailbox);
	}
	if (!t->mark_as_read)
		t->st.seen_from = t->st.seen_to = 0;    /* no longer wanted */
	if (((t->s_uidnext > 0 && t->s_uidnext - 1 <= t->st.last_uid) ||
	    t->s_uidnext == t->checked_uidnext) && t->st.seen_to == 0) {
		trig_state(t, TRIG_CLOSE);      /* nothing new: one round trip */
		return;
	}
	/* new mail, or UIDs a cut-off poll queued and did not mark \Seen:
	 * marked once this fetch (under the same UIDVALIDITY) is through */
	t->cursor = t->st.last_uid + 1;
	t->uv_mismatch = false;
	trig_state(t, TRIG_FETCH);
}

static void
trig_fetch_done(struct trigger *t)
{
	struct batch *b = &t->batch;
	uint32_t last = t->st.last_uid;
	char *why;

	if (t->uv_mismatch) {
		trig_fail(t, IMAP_ERR_NONE, "UIDVALIDITY of %s changed during the poll",
		    t->mailbox);
		return;
	}
	if (b->error != NULL && b->max > b->error_uid) {
		/* a server answering out of UID order: committing up to
		 * max would skip the failed UID; nothing of the batch */
		outbox_drop(t->d->outbox, t->name, 0);
		b->count = 0;
	}
	if (b->count > 0) {
		if (trig_commit(t, b->max > last ? b->max : last, t->mark_as_read) < 0)
			return;
		t->events_queued += b->count;
		log_info("trigger %s: queued %u new email%s (up to UID %u)", t->name,
		    b->count, b->count == 1 ? "" : "s", t->st.last_uid);
	}
	if ((why = batch_take_error(b)) != NULL) {
		/* a write failed (full disk...): what came before it is safe, the
		 * poll fails and the rest is fetched again (not marked read) */
		trig_fail(t, IMAP_ERR_NONE, "cannot queue event: %s", why);
		free(why);
		return;
	}
	if (t->mark_as_read && t->st.seen_to != 0) {
		trig_state(t, TRIG_MARK);
		return;
	}
	/* next window, if the backlog goes on */
	if (t->win_hi != 0 && t->have_uidnext && t->win_hi + 1 < t->s_uidnext) {
		t->cursor = t->win_hi + 1;
		trig_state(t, TRIG_FETCH);
		return;
	}
	/* everything below the UIDNEXT of this poll's STATUS was fetched */
	t->checked_uidnext = t->s_uidnext;
	trig_state(t, TRIG_CLOSE);
}

/* sysexits.h code for --once */
static int
exit_code_of(enum imap_err kind)
{
	switch (kind) {
	case IMAP_ERR_NONE: return 74;          /* EX_IOERR: the state dir */
	case IMAP_ERR_NO:
	case IMAP_ERR_BAD: return 1;
	case IMAP_ERR_AUTH: return 77;
	default: return 69;
	}
}

static void
trig_poll_end(struct trigger *t, bool ok)
{
	uint64_t ms;
	unsigned cap;

	metrics_observe_poll(&t->d->metrics,
	    (double)(monotonic_us() - t->poll_start_us) / 1e6);
	if (!ok) {
		/* what this poll put and did not commit is fetched again */
		outbox_drop(t->d->outbox, t->name, 0);
	}
	if (ok) {
		if (t->failures > 0)
			log_info("trigger %s: polling works again after %u failure%s",
			    t->name, t->failures, t->failures == 1 ? "" : "s");
		t->failures = 0;
		free(t->last_error);
		t->last_error = NULL;
		t->last_success_at = time(NULL);
		t->polls_ok++;
		/* what a crash left queued beyond our saved state was written
		 * again by this poll; the rest is owed all the same */
		if (outbox_release(t->d->outbox, t->name) > 0)
			webhook_sender_kick(t->d->sender);
		ms = (uint64_t)t->interval * 1000u;
		/* +-5% so that triggers drift apart */
		ms = ms * (950u + random_u32() % 101u) / 1000u;
		if (t->wake_pending)
			ms = 0;         /* pushed during the poll: look again */
		t->wake_pending = false;
	} else {
		t->failures++;
		t->polls_failed++;
		cap = t->last_err_kind == IMAP_ERR_AUTH ? t->d->config->auth_backoff_max :
		    t->d->config->poll_backoff_max;
		ms = backoff_delay_ms(t->failures, cap);
		if (!t->d->once)
			log_warn("trigger %s: poll failed: %s (retry in %.1f s)", t->name,
			    t->last_error, (double)ms / 1000.0);
		else
			log_error("trigger %s: poll failed: %s", t->name, t->last_error);
	}
	t->state = TRIG_WAIT;
	if (t->d->once) {
		t->state = TRIG_STOPPED;
		daemon_once_trigger_done(t->d, ok ? 0 : exit_code_of(t->last_err_kind));
		return;
	}
	trig_schedule(t, ms);
}

/* Fails the poll; the connection is given back once our commands are in. */
static void
trig_fail(struct trigger *t, enum imap_err kind, const char *fmt, ...)
{
	va_list ap;

	free(t->last_error);
	va_start(ap, fmt);
	t->last_error = xvasprintf(fmt, ap);
	va_end(ap);
	t->last_err_kind = kind;
	batch_reset(&t->batch);
	if (t->pending > 0) {
		t->state = TRIG_ABORT;
		return;
	}
	trig_release(t, !imap_err_is_conn(kind));
	trig_poll_end(t, false);
}

static void
trig_lease_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct trigger *t = arg;

	t->lease = NULL;
	if (conn == NULL) {
		t->pool = NULL;
		trig_fail(t, err->kind, "%s", err->msg);
		return;
	}
	imap_conn_ref(conn);
	t->conn = conn;
	trig_state(t, TRIG_STATUS);
}

/* The state function: entering a state sends that state's commands. */
static void
trig_state(struct trigger *t, enum trig_state next)
{
	struct imap_cmd *cmd;
	const char *sel;
	bool ro;

	log_debug("trigger %s: %s -> %s", t->name, strstate[t->state], strstate[next]);
	t->state = next;
	switch (next) {
	case TRIG_WAIT:
	case TRIG_STOPPED:
	case TRIG_ABORT:
		break;
	case TRIG_LEASE:
		t->poll_start_us = monotonic_us();
		t->last_poll_at = time(NULL);
		t->cmd_failed = false;
		if (!t->st_loaded) {
			char *err = NULL;

			if (state_load(t->d->config->state_dir, t->name, &t->st, &err) < 0) {
				trig_fail(t, IMAP_ERR_NONE, "cannot read the trigger state: %s", err);
				free(err);
				return;
			}
			t->st_loaded = true;
		}
		t->pool = daemon_pool(t->d, t->connection);
		if (t->pool == NULL) {
			trig_fail(t, IMAP_ERR_CONNECT, "connection %s is not configured",
			    t->connection);
			return;
		}
		t->lease = imap_pool_lease(t->pool, trig_lease_cb, t);
		break;
	case TRIG_STATUS:
		trig_send_status(t);
		break;
	case TRIG_FETCH:
		trig_send_fetch(t);
		break;
	case TRIG_MARK:
		cmd = imap_cmd_new(t->conn);
		imap_cmd_addf(cmd, "UID STORE %u:%u +FLAGS.SILENT (\\Seen)",
		    t->st.seen_from, t->st.seen_to);
		trig_send(t, cmd, true);
		break;
	case TRIG_CLOSE:
		sel = imap_conn_selected(t->conn, &ro);
		if (sel == NULL) {
			trig_release(t, true);
			trig_poll_end(t, true);
			break;
		}
		if (!ro && !imap_conn_has_cap(t->conn, "UNSELECT")) {
			/* a read-write mailbox: EXAMINE it first (deselecting
			 * without expunge), then CLOSE expunges nothing. Left
			 * selected, Courier would answer the next STATUS from
			 * this session's old view. */
			trig_send(t, trig_cmd_mailbox(t, "EXAMINE"), true);
		}
		cmd = imap_cmd_new(t->conn);
		imap_cmd_add(cmd, imap_conn_has_cap(t->conn, "UNSELECT") ? "UNSELECT" : "CLOSE");
		imap_conn_set_selected(t->conn, NULL, false);
		trig_send(t, cmd, true);
		break;
	}
}

/* Every command of the current state has completed. */
static void
trig_step_done(struct trigger *t)
{
	bool failed = t->cmd_failed;

	t->cmd_failed = false;
	if (t->state == TRIG_ABORT) {
		trig_release(t, !imap_err_is_conn(t->last_err_kind) && !failed);
		trig_poll_end(t, false);
		return;
	}
	if (t->state == TRIG_STOPPED)
		return;
	if (failed) {
		if (t->state == TRIG_FETCH || t->state == TRIG_STATUS)
			imap_conn_set_selected(t->conn, NULL, false);
		trig_fail(t, t->cmd_err.kind, "%s %s: %s", t->state == TRIG_STATUS ?
		    "STATUS" : strstate[t->state], t->mailbox, t->cmd_err.msg);
		return;
	}
	switch (t->state) {
	case TRIG_STATUS:
		trig_status_done(t);
		break;
	case TRIG_FETCH:
		trig_fetch_done(t);
		break;
	case TRIG_MARK:
		/* \Seen is best effort (a NO is not retried): the events are
		 * queued already */
		if (trig_marked(t) < 0)
			return;
		if (t->win_hi != 0 && t->have_uidnext && t->win_hi + 1 < t->s_uidnext) {
			t->cursor = t->win_hi + 1;
			trig_state(t, TRIG_FETCH);
		} else {
			t->checked_uidnext = t->s_uidnext;
			trig_state(t, TRIG_CLOSE);
		}
		break;
	case TRIG_CLOSE:
		trig_release(t, true);
		trig_poll_end(t, true);
		break;
	default:
		break;
	}
}
