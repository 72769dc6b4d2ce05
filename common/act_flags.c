/*
 * add-flags, remove-flags, set-flags: SELECT (and, for a UID range with
 * "*", UID FETCH * (UID): see action_range_set), then [UID] STORE range
 * +FLAGS.SILENT / -FLAGS.SILENT / FLAGS.SILENT (list) and, once it is
 * done, [UID] FETCH range (UID FLAGS): a STORE that changes nothing answers
 * no FETCH at all, so the flags after the change are asked for. Not
 * pipelined: Dovecot runs a pipelined FETCH alongside the STORE.
 */
#include "action.h"

#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "util.h"

enum flags_step {
	FL_SELECT,
	FL_MAXUID,              /* UID FETCH * (UID): what "*" of the range is */
	FL_STORE,
	FL_FETCH,
};

struct flags_state {
	const char *op;         /* "+FLAGS", "-FLAGS", "FLAGS" */
	json_t *by_uid;         /* "uid" -> flags */
	struct action_uids uids;
	bool too_many;
	uint32_t max_uid;       /* the mailbox's largest UID, or 0 */
	char *set;              /* the range to send ("*" resolved) */
};

static void
flags_begin(struct action_run *run, const char *op)
{
	struct flags_state *st = run->state;

	st->op = op;
	st->by_uid = json_object();
	run->step = FL_SELECT;
	if (action_select(run, action_param_str(run, "mailbox"), false) == 0)
		(void)action_ask_max_uid(run);
}

static void
add_flags_start(struct action_run *run)
{
	flags_begin(run, "+FLAGS");
}

static void
remove_flags_start(struct action_run *run)
{
	flags_begin(run, "-FLAGS");
}

static void
set_flags_start(struct action_run *run)
{
	flags_begin(run, "FLAGS");
}

static void
flags_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct flags_state *st = run->state;
	const struct imap_arg *a, *f;
	uint32_t uid;
	char key[16];

	if (run->step <= FL_MAXUID) {
		action_max_uid_untagged(resp, &st->max_uid);
		return;
	}
	if (run->step != FL_FETCH ||
	    (a = action_fetch_item(resp, "UID", false, NULL)) == NULL ||
	    imap_arg_get_u32(a, &uid) < 0 || uid == 0 ||
	    (f = action_fetch_item(resp, "FLAGS", false, NULL)) == NULL)
		return;
	snprintf(key, sizeof(key), "%u", uid);
	if (json_object_get(st->by_uid, key) == NULL) {
		if (st->uids.n >= ACTION_UIDS_MAX) {
			st->too_many = true;
			return;
		}
		action_uids_add(&st->uids, uid);
	}
	json_object_set_new(st->by_uid, key, action_flags_json(f));
}

/* With the selection (and "*" known): STORE the flags. */
static void
flags_store(struct action_run *run)
{
	struct flags_state *st = run->state;
	struct imap_cmd *cmd;

	st->set = action_range_set(run, st->max_uid);
	if (st->set == NULL) {
		/* "n:*" beyond the last UID: no message */
		action_finish(run, json_pack("{s:[]}", "messages"));
		return;
	}
	cmd = imap_cmd_new(run->conn);
	imap_cmd_addf(cmd, "%sSTORE %s %s.SILENT ", run->seq ? "" : "UID ", st->set, st->op);
	action_cmd_flags(cmd, json_object_get(run->params, "flags"));
	action_send(run, cmd);
	run->step = FL_STORE;
}

static void
flags_step(struct action_run *run, const struct imap_reply *reply)
{
	struct flags_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");
	struct imap_cmd *cmd;
	json_t *messages;
	char what[64];
	size_t i;

	switch (run->step) {
	case FL_SELECT:
		/* STORE waits for the SELECT: never into another mailbox */
		if (!action_select_done(run, reply, mailbox, false))
			return;
		if (action_range_needs_max(run)) {
			run->step = FL_MAXUID;
			return;
		}
		flags_store(run);
		return;
	case FL_MAXUID:
		if (action_max_uid_done(run, reply))
			flags_store(run);
		return;
	case FL_STORE:
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "STORE %s", st->op);
			action_fail_reply(run, reply, what);
			return;
		}
		cmd = imap_cmd_new(run->conn);
		imap_cmd_addf(cmd, "%sFETCH %s (UID FLAGS)", run->seq ? "" : "UID ", st->set);
		action_send(run, cmd);
		run->step = FL_FETCH;
		return;
	case FL_FETCH:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "FETCH FLAGS");
			return;
		}
		if (st->too_many) {
			action_fail(run, ACTION_ERR_REFUSED, "more than %d messages",
			    ACTION_UIDS_MAX);
			return;
		}
		action_uids_sort(&st->uids);
		messages = json_array();
		for (i = 0; i < st->uids.n; i++) {
			char key[16];

			snprintf(key, sizeof(key), "%u", st->uids.v[i]);
			json_array_append_new(messages, json_pack("{s:I, s:O}", "uid",
			    (json_int_t)st->uids.v[i], "flags", json_object_get(st->by_uid, key)));
		}
		action_finish(run, json_pack("{s:o}", "messages", messages));
		return;
	}
}

static void
flags_free(struct action_run *run)
{
	struct flags_state *st = run->state;

	json_decref(st->by_uid);
	action_uids_free(&st->uids);
	free(st->set);
}

static const struct action_param flags_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "mailbox path" },
	{ "range", APT_RANGE, AP_REQUIRED, NULL,
	  "UIDs (sequence numbers with --seq), e.g. 1:5,9 or *" },
	{ "flags", APT_FLAGS, AP_REQUIRED, NULL,
	  "a flag (\\Seen, \\Flagged...) or keyword; repeatable" },
	{ NULL }
};

const struct action_entry act_add_flags_entry = {
	.name = "add-flags",
	.summary = "add flags or keywords to messages",
	.params = flags_params,
	.start = add_flags_start,
	.step = flags_step,
	.untagged = flags_untagged,
	.state_size = sizeof(struct flags_state),
	.state_free = flags_free,
};

const struct action_entry act_remove_flags_entry = {
	.name = "remove-flags",
	.summary = "remove flags or keywords from messages",
	.params = flags_params,
	.start = remove_flags_start,
	.step = flags_step,
	.untagged = flags_untagged,
	.state_size = sizeof(struct flags_state),
	.state_free = flags_free,
};

const struct action_entry act_set_flags_entry = {
	.name = "set-flags",
	.summary = "replace the flags and keywords of messages",
	.params = flags_params,
	.start = set_flags_start,
	.step = flags_step,
	.untagged = flags_untagged,
	.state_size = sizeof(struct flags_state),
	.state_free = flags_free,
};
