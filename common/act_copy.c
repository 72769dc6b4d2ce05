/*
 * copy, move and delete: messages between mailboxes, and out of them.
 *
 * copy: EXAMINE, [UID] COPY; the uidMap comes from [COPYUID].
 * move: SELECT, [UID] MOVE when the server has MOVE (its COPYUID arrives in
 * an untagged OK); else UID SEARCH of the range (the exact UIDs), UID COPY
 * of those, UID STORE +FLAGS.SILENT (\Deleted) and UID EXPUNGE of exactly
 * those: this needs UIDPLUS, without which a plain EXPUNGE would remove
 * every other message flagged \Deleted too, so it is refused.
 * When nothing was copied the server may not have looked at the target
 * (Dovecot answers OK to a COPY of no messages into a missing mailbox), so
 * a LIST then tells whether it exists.
 * A UID range with "*" is resolved first (UID FETCH * (UID), see
 * action_range_set): "n:*" beyond the last UID copies nothing.
 * delete: SELECT, UID FETCH (is it there?), UID STORE \Deleted, UID
 * EXPUNGE of that UID only (UIDPLUS again).
 */
#include "action.h"

#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "util.h"

enum copy_step {
	CP_SELECT,
	CP_MAXUID,              /* UID FETCH * (UID): what "*" of the range is */
	CP_SEARCH,
	CP_COPY,
	CP_STORE,
	CP_EXPUNGE,
	CP_TARGET,              /* LIST of the target after an empty copy */
};

struct copy_state {
	bool move;
	bool fallback;          /* move as COPY + STORE + UID EXPUNGE */
	json_t *map;            /* "src uid" -> dst uid */
	bool map_too_big;
	struct action_uids uids;        /* fallback: the UIDs of the range */
	bool too_many;
	bool target_listed;
	uint32_t max_uid;               /* the mailbox's largest UID, or 0 */
	char *set;                      /* the range to send ("*" resolved) */
};

/* Adds the pairs of a [COPYUID v src dst] to the uidMap. */
static void
copy_add_copyuid(struct copy_state *st, const struct imap_resp *resp)
{
	if (action_copyuid_map(st->map, resp) < 0)
		st->map_too_big = true;
}

static void
copy_finish(struct action_run *run)
{
	struct copy_state *st = run->state;
	struct imap_cmd *cmd;

	if (json_object_size(st->map) == 0 && run->step != CP_TARGET) {
		/* nothing copied, or no COPYUID: is there such a target? */
		cmd = imap_cmd_new(run->conn);
		imap_cmd_add(cmd, "LIST \"\" ");
		if (action_cmd_mailbox(run, cmd, action_param_str(run, "to")) < 0) {
			imap_cmd_discard(&cmd);
			return;
		}
		run->step = CP_TARGET;
		action_send(run, cmd);
		return;
	}
	if (st->map_too_big) {
		action_fail(run, ACTION_ERR_REFUSED, "the server's COPYUID names more than "
		    "%d messages", ACTION_UIDS_MAX);
		return;
	}
	action_finish(run, json_pack("{s:o, s:O}", "path", json_str(action_param_str(run, "to")),
	    "uidMap", st->map));
}

static void
copy_begin(struct action_run *run, bool move)
{
	struct copy_state *st = run->state;

	st->move = move;
	st->map = json_object();
	if (move && !imap_conn_has_cap(run->conn, "MOVE")) {
		if (!imap_conn_has_cap(run->conn, "UIDPLUS")) {
			action_fail(run, ACTION_ERR_REFUSED, "move: the server has neither MOVE "
			    "nor UIDPLUS, so the originals could not be removed without "
			    "expunging every other message flagged \\Deleted; use copy");
			return;
		}
		st->fallback = true;
	}
	run->step = CP_SELECT;
	if (action_select(run, action_param_str(run, "mailbox"), !move) == 0)
		(void)action_ask_max_uid(run);
}

static void
copy_start(struct action_run *run)
{
	copy_begin(run, false);
}

static void
move_start(struct action_run *run)
{
	copy_begin(run, true);
}

/* [UID] COPY/MOVE set to: the "to" parameter. */
static void
copy_send(struct action_run *run, const char *verb, const char *set, bool uid)
{
	struct imap_cmd *cmd = imap_cmd_new(run->conn);

	imap_cmd_addf(cmd, "%s%s %s ", uid ? "UID " : "", verb, set);
	if (action_cmd_mailbox(run, cmd, action_param_str(run, "to")) < 0) {
		imap_cmd_discard(&cmd);
		return;
	}
	action_send(run, cmd);
}

static void
copy_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct copy_state *st = run->state;

	if (run->step <= CP_MAXUID) {
		action_max_uid_untagged(resp, &st->max_uid);
		return;
	}
	if (run->step == CP_SEARCH) {
		const struct imap_arg *a = action_fetch_item(resp, "UID", false, NULL);
		uint32_t uid;

		if (a != NULL && imap_arg_get_u32(a, &uid) == 0) {
			if (st->uids.n >= ACTION_UIDS_MAX)
				st->too_many = true;
			else
				action_uids_add(&st->uids, uid);
		}
		return;
	}
	if (run->step == CP_TARGET) {
		const struct imap_arg *attrs;
		uint32_t n, i;

		if (resp->name == NULL || strcmp(resp->name, "LIST") != 0 || resp->argc < 3 ||
		    !imap_arg_get_list(&resp->args[0], &attrs, &n))
			return;
		for (i = 0; i < n; i++)
			if (imap_arg_is_atom(&attrs[i], "\\NonExistent") ||
			    imap_arg_is_atom(&attrs[i], "\\Noselect"))
				return;
		st->target_listed = true;
		return;
	}
	/* MOVE: "* OK [COPYUID ...]" before the EXPUNGEs */
	if (run->step == CP_COPY && resp->kind == IMAP_RESP_UNTAGGED &&
	    resp->status == IMAP_STATUS_OK)
		copy_add_copyuid(st, resp);
}

/* With the selection (and "*" known): copy or move the range. */
static void
copy_range(struct action_run *run)
{
	struct copy_state *st = run->state;
	struct imap_cmd *cmd;

	st->set = action_range_set(run, st->max_uid);
	if (st->set == NULL) {
		/* "n:*" beyond the last UID: no message */
		copy_finish(run);
		return;
	}
	if (st->fallback) {
		/* the exact UIDs, so that only they are expunged (FETCH,
		 * not SEARCH: Courier's UID SEARCH UID * finds nothing) */
		cmd = imap_cmd_new(run->conn);
		imap_cmd_addf(cmd, "%sFETCH %s (UID)", run->seq ? "" : "UID ", st->set);
		run->step = CP_SEARCH;
		action_send(run, cmd);
		return;
	}
	run->step = CP_COPY;
	copy_send(run, st->move ? "MOVE" : "COPY", st->set, !run->seq);
}

static void
copy_step(struct action_run *run, const struct imap_reply *reply)
{
	struct copy_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");
	const char *to = action_param_str(run, "to");
	struct imap_cmd *cmd;
	struct str set;
	char what[600];

	switch (run->step) {
	case CP_SELECT:
		if (!action_select_done(run, reply, mailbox, !st->move))
			return;
		if (action_range_needs_max(run)) {
			run->step = CP_MAXUID;
			return;
		}
		copy_range(run);
		return;
	case CP_MAXUID:
		if (action_max_uid_done(run, reply))
			copy_range(run);
		return;
	case CP_SEARCH:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "UID FETCH");
			return;
		}
		if (st->too_many) {
			action_fail(run, ACTION_ERR_REFUSED, "move: more than %d messages",
			    ACTION_UIDS_MAX);
			return;
		}
		action_uids_sort(&st->uids);
		if (st->uids.n == 0) {
			copy_finish(run);
			return;
		}
		str_init(&set);
		action_uids_to_set(&st->uids, 0, st->uids.n, &set);
		run->step = CP_COPY;
		copy_send(run, "COPY", set.data, true);
		str_free(&set);
		return;
	case CP_COPY:
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "%s from %s to %s", st->move ? "move" : "copy",
			    mailbox, to);
			action_fail_mailbox(run, reply, to, what);
			return;
		}
		copy_add_copyuid(st, reply->resp);
		if (!st->fallback) {
			copy_finish(run);
			return;
		}
		str_init(&set);
		action_uids_to_set(&st->uids, 0, st->uids.n, &set);
		cmd = imap_cmd_new(run->conn);
		imap_cmd_addf(cmd, "UID STORE %s +FLAGS.SILENT (\\Deleted)", set.data);
		action_send(run, cmd);
		cmd = imap_cmd_new(run->conn);
		imap_cmd_addf(cmd, "UID EXPUNGE %s", set.data);
		action_send(run, cmd);
		str_free(&set);
		run->step = CP_STORE;
		return;
	case CP_STORE:
	case CP_EXPUNGE:
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "move: copied to %s, but %s in %s failed",
			    to, run->step == CP_STORE ? "flagging the originals \\Deleted" :
			    "expunging the originals", mailbox);
			action_fail_reply(run, reply, what);
			return;
		}
		if (run->step++ == CP_EXPUNGE)
			copy_finish(run);
		return;
	case CP_TARGET:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "LIST");
			return;
		}
		if (!st->target_listed) {
			action_fail(run, ACTION_ERR_NOTFOUND, "%s: no such mailbox", to);
			return;
		}
		copy_finish(run);
		return;
	}
}

static void
copy_free(struct action_run *run)
{
	struct copy_state *st = run->state;

	json_decref(st->map);
	action_uids_free(&st->uids);
	free(st->set);
}

static const struct action_param copy_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "source mailbox path" },
	{ "range", APT_RANGE, AP_REQUIRED, NULL,
	  "UIDs (sequence numbers with --seq), e.g. 1:5,9 or *" },
	{ "to", APT_MAILBOX, AP_REQUIRED, NULL, "target mailbox path" },
	{ NULL }
};

const struct action_entry act_copy_entry = {
	.name = "copy",
	.summary = "copy messages to another mailbox; map their old UIDs to the new",
	.params = copy_params,
	.start = copy_start,
	.step = copy_step,
	.untagged = copy_untagged,
	.state_size = sizeof(struct copy_state),
	.state_free = copy_free,
};

const struct action_entry act_move_entry = {
	.name = "move",
	.summary = "move messages to another mailbox; map their old UIDs to the new",
	.params = copy_params,
	.start = move_start,
	.step = copy_step,
	.untagged = copy_untagged,
	.state_size = sizeof(struct copy_state),
	.state_free = copy_free,
};

/* delete */

enum delete_step {
	DEL_SELECT,
	DEL_FETCH,
	DEL_STORE,
	DEL_EXPUNGE,
};

struct delete_state {
	uint32_t uid;
	bool found;
};

static void
delete_start(struct action_run *run)
{
	struct delete_state *st = run->state;
	struct imap_cmd *cmd;

	st->uid = (uint32_t)action_param_int(run, "uid", 0);
	if (!imap_conn_has_cap(run->conn, "UIDPLUS")) {
		action_fail(run, ACTION_ERR_REFUSED, "delete: the server lacks UIDPLUS (UID "
		    "EXPUNGE), so UID %u could not be expunged without expunging every "
		    "other message flagged \\Deleted", st->uid);
		return;
	}
	run->step = DEL_SELECT;
	if (action_select(run, action_param_str(run, "mailbox"), false) < 0)
		return;
	/* read-only: safe to pipeline behind the SELECT */
	cmd = imap_cmd_new(run->conn);
	imap_cmd_addf(cmd, "UID FETCH %u (UID)", st->uid);
	action_send(run, cmd);
}

static void
delete_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct delete_state *st = run->state;
	const struct imap_arg *a;
	uint32_t uid;

	if (run->step <= DEL_FETCH && (a = action_fetch_item(resp, "UID", false, NULL)) != NULL &&
	    imap_arg_get_u32(a, &uid) == 0 && uid == st->uid)
		st->found = true;
}

static void
delete_step(struct action_run *run, const struct imap_reply *reply)
{
	struct delete_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");
	struct imap_cmd *cmd;

	switch (run->step) {
	case DEL_SELECT:
		if (action_select_done(run, reply, mailbox, false))
			run->step = DEL_FETCH;
		return;
	case DEL_FETCH:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "UID FETCH");
			return;
		}
		if (!st->found) {
			action_fail(run, ACTION_ERR_NOTFOUND, "%s: no message with UID %u",
			    mailbox, st->uid);
			return;
		}
		cmd = imap_cmd_new(run->conn);
		imap_cmd_addf(cmd, "UID STORE %u +FLAGS.SILENT (\\Deleted)", st->uid);
		action_send(run, cmd);
		cmd = imap_cmd_new(run->conn);
		imap_cmd_addf(cmd, "UID EXPUNGE %u", st->uid);
		action_send(run, cmd);
		run->step = DEL_STORE;
		return;
	case DEL_STORE:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "UID STORE \\Deleted");
			return;
		}
		run->step = DEL_EXPUNGE;
		return;
	case DEL_EXPUNGE:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "UID EXPUNGE");
			return;
		}
		action_finish(run, json_pack("{s:[I]}", "deleted", (json_int_t)st->uid));
		return;
	}
}

static int
delete_check(json_t *params, bool seq ATTR_UNUSED, struct action_error *err)
{
	json_int_t uid = json_integer_value(json_object_get(params, "uid"));

	if (uid < 1 || uid > (json_int_t)UINT32_MAX) {
		snprintf(err->msg, sizeof(err->msg), "delete: parameter \"uid\" must be "
		    "between 1 and %u", UINT32_MAX);
		return -1;
	}
	return 0;
}

static const struct action_param delete_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "mailbox path" },
	{ "uid", APT_INT, AP_REQUIRED, NULL, "UID of the message to delete" },
	{ NULL }
};

const struct action_entry act_delete_entry = {
	.name = "delete",
	.summary = "delete one message for good (\\Deleted and UID EXPUNGE of it alone)",
	.params = delete_params,
	.check = delete_check,
	.start = delete_start,
	.step = delete_step,
	.untagged = delete_untagged,
	.state_size = sizeof(struct delete_state),
};
