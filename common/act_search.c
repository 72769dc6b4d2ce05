/*
 * search: EXAMINE the mailbox, UID SEARCH (ESEARCH RETURN (ALL) when the
 * server has it) with the criteria, then UID FETCH the matches (the newest
 * `limit` of them) in bounded batches.
 */
#include "action.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "jsonutil.h"
#include "util.h"

/* UIDs per UID FETCH: bounds the size of one answer. */
#define SEARCH_BATCH 250

enum search_step {
	SEARCH_EXAMINE,
	SEARCH_MAXUID,          /* UID FETCH * (UID): what "*" of a range is */
	SEARCH_SEARCH,
	SEARCH_FETCH,
};

struct search_state {
	struct action_uids uids;        /* the matches, then sorted */
	size_t first;                   /* first of the matches to fetch */
	size_t next;                    /* first of the next batch */
	size_t batch_end;
	json_t *batch;                  /* "uid" -> message of this batch */
	json_t *messages;
	bool too_many;
	uint32_t max_uid;               /* the mailbox's largest UID, or 0 */
};

static const char *const months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* " SINCE 1-Feb-2026" from "2026-02-01" (checked by the table). */
static void
add_date(struct imap_cmd *cmd, const char *key, const char *date)
{
	uint32_t y, m, d;

	if (parse_u32_n(date, 4, &y) < 0 || parse_u32_n(date + 5, 2, &m) < 0 ||
	    parse_u32_n(date + 8, 2, &d) < 0 || m < 1 || m > 12)
		return;
	imap_cmd_addf(cmd, " %s %u-%s-%04u", key, d, months[m - 1], y);
}

static void
add_text(struct imap_cmd *cmd, const struct action_run *run, const char *param,
    const char *key)
{
	json_t *v = json_object_get(run->params, param);

	if (!json_is_string(v))
		return;
	imap_cmd_addf(cmd, " %s ", key);
	/* quoted when ASCII, else a literal (the value is UTF-8) */
	imap_cmd_astring(cmd, json_string_value(v), json_string_length(v));
}

static void
search_send(struct action_run *run)
{
	static const struct {
		const char *param, *key;
	} texts[] = {
		{ "from", "FROM" },
		{ "to", "TO" },
		{ "subject", "SUBJECT" },
		{ "text", "TEXT" },
	};
	struct search_state *st = run->state;
	struct imap_cmd *cmd;
	const char *seen = action_param_str(run, "seen");
	char *set = NULL;
	bool charset = false;
	size_t i;

	/* "*" resolved: "10:*" never yields a message below 10, as the
	 * server would when the mailbox ends below it; spelled out, too,
	 * since Courier's UID SEARCH UID * finds nothing */
	if (action_param_has(run, "range") && (set = action_range_set(run, st->max_uid)) == NULL) {
		action_finish(run, json_pack("{s:[]}", "messages"));
		return;
	}
	cmd = imap_cmd_new(run->conn);
	imap_cmd_add(cmd, "UID SEARCH");
	if (imap_conn_has_cap(run->conn, "ESEARCH"))
		imap_cmd_add(cmd, " RETURN (ALL)");
	for (i = 0; i < N_ELEMENTS(texts); i++)
		charset |= action_param_has(run, texts[i].param);
	if (charset)
		imap_cmd_add(cmd, " CHARSET UTF-8");
	/* ALL, so that no criteria is a valid search too */
	imap_cmd_add(cmd, " ALL");
	for (i = 0; i < N_ELEMENTS(texts); i++)
		add_text(cmd, run, texts[i].param, texts[i].key);
	if (seen != NULL && strcmp(seen, "read") == 0)
		imap_cmd_add(cmd, " SEEN");
	else if (seen != NULL && strcmp(seen, "unread") == 0)
		imap_cmd_add(cmd, " UNSEEN");
	if (action_param_has(run, "flagged"))
		imap_cmd_add(cmd, action_param_bool(run, "flagged", false) ?
		    " FLAGGED" : " UNFLAGGED");
	if (action_param_has(run, "since"))
		add_date(cmd, "SINCE", action_param_str(run, "since"));
	if (action_param_has(run, "before"))
		add_date(cmd, "BEFORE", action_param_str(run, "before"));
	if (action_param_has(run, "larger"))
		imap_cmd_addf(cmd, " LARGER %lld",
		    (long long)action_param_int(run, "larger", 0));
	if (action_param_has(run, "smaller"))
		imap_cmd_addf(cmd, " SMALLER %lld",
		    (long long)action_param_int(run, "smaller", 0));
	if (set != NULL)
		imap_cmd_addf(cmd, "%s %s", run->seq ? "" : " UID", set);
	free(set);
	action_send(run, cmd);
}

static void
search_start(struct action_run *run)
{
	struct search_state *st = run->state;

	st->messages = json_array();
	st->batch = json_object();
	run->step = SEARCH_EXAMINE;
	if (action_select(run, action_param_str(run, "mailbox"), true) < 0)
		return;
	if (!action_ask_max_uid(run))
		search_send(run);
}

static void
fetch_next(struct action_run *run)
{
	struct search_state *st = run->state;
	struct imap_cmd *cmd;
	struct str set;

	st->batch_end = st->next + SEARCH_BATCH < st->uids.n ? st->next + SEARCH_BATCH :
	    st->uids.n;
	str_init(&set);
	action_uids_to_set(&st->uids, st->next, st->batch_end, &set);
	cmd = imap_cmd_new(run->conn);
	imap_cmd_addf(cmd, "UID FETCH %s (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)",
	    set.data);
	str_free(&set);
	action_send(run, cmd);
}

static void
search_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct search_state *st = run->state;
	const struct imap_arg *a;
	uint32_t uid;
	uint64_t size;
	json_t *msg;
	char key[16], iso[21];
	const char *s;
	size_t len;

	if (run->step <= SEARCH_MAXUID) {
		action_max_uid_untagged(resp, &st->max_uid);
		return;
	}
	if (run->step == SEARCH_SEARCH) {
		if (action_uids_from_search(&st->uids, resp) < 0)
			st->too_many = true;
		return;
	}
	a = action_fetch_item(resp, "UID", false, NULL);
	if (a == NULL || imap_arg_get_u32(a, &uid) < 0)
		return;
	/* an unsolicited update of another message lands here too, but only
	 * the UIDs of the batch are taken from it (search_step) */
	snprintf(key, sizeof(key), "%u", uid);
	msg = json_object_get(st->batch, key);
	if (msg == NULL) {
		msg = json_pack("{s:I, s:I, s:[], s:n, s:n, s:n}", "uid", (json_int_t)uid,
		    "seq", (json_int_t)resp->number, "flags", "size", "internalDate",
		    "envelope");
		json_object_set_new(st->batch, key, msg);
	}
	if ((a = action_fetch_item(resp, "FLAGS", false, NULL)) != NULL)
		json_object_set_new(msg, "flags", action_flags_json(a));
	if ((a = action_fetch_item(resp, "RFC822.SIZE", false, NULL)) != NULL &&
	    imap_arg_get_u64(a, &size) == 0)
		json_object_set_new(msg, "size", json_integer((json_int_t)size));
	if ((a = action_fetch_item(resp, "INTERNALDATE", false, NULL)) != NULL &&
	    imap_arg_get_astring(a, &s, &len) && imap_datetime_to_iso(s, iso) == 0)
		json_object_set_new(msg, "internalDate", json_string(iso));
	if ((a = action_fetch_item(resp, "ENVELOPE", false, NULL)) != NULL)
		json_object_set_new(msg, "envelope", envelope_to_json(a));
}

static void
search_step(struct action_run *run, const struct imap_reply *reply)
{
	struct search_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");
	json_int_t limit;
	size_t i;

	switch (run->step) {
	case SEARCH_EXAMINE:
		if (!action_select_done(run, reply, mailbox, true))
			return;
		run->step = action_range_needs_max(run) ? SEARCH_MAXUID : SEARCH_SEARCH;
		return;
	case SEARCH_MAXUID:
		if (!action_max_uid_done(run, reply))
			return;
		run->step = SEARCH_SEARCH;
		search_send(run);
		return;
	case SEARCH_SEARCH:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "UID SEARCH");
			return;
		}
		if (st->too_many) {
			action_fail(run, ACTION_ERR_REFUSED, "UID SEARCH: more than %d "
			    "matches; narrow the search or give a limit", ACTION_UIDS_MAX);
			return;
		}
		action_uids_sort(&st->uids);
		limit = action_param_int(run, "limit", 0);
		if (limit == 0 && st->uids.n > ACTION_SEARCH_MAX) {
			action_fail(run, ACTION_ERR_USAGE, "search: %zu messages match, more "
			    "than %d at once: narrow the search (range, since...) or give a "
			    "limit", st->uids.n, ACTION_SEARCH_MAX);
			return;
		}
		if (limit > 0 && (uint64_t)limit < st->uids.n)
			st->first = st->uids.n - (size_t)limit;
		st->next = st->first;
		break;
	case SEARCH_FETCH:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "UID FETCH");
			return;
		}
		/* in UID order; a message expunged meanwhile is left out */
		for (i = st->next; i < st->batch_end; i++) {
			char key[16];
			json_t *msg;

			snprintf(key, sizeof(key), "%u", st->uids.v[i]);
			msg = json_object_get(st->batch, key);
			if (msg != NULL)
				json_array_append(st->messages, msg);
		}
		json_object_clear(st->batch);
		st->next = st->batch_end;
		break;
	}
	if (st->next >= st->uids.n) {
		action_finish(run, json_pack("{s:O}", "messages", st->messages));
		return;
	}
	run->step = SEARCH_FETCH;
	fetch_next(run);
}

static void
search_free(struct action_run *run)
{
	struct search_state *st = run->state;

	action_uids_free(&st->uids);
	json_decref(st->batch);
	json_decref(st->messages);
}

static int
search_check(json_t *params, bool seq ATTR_UNUSED, struct action_error *err)
{
	json_t *limit = json_object_get(params, "limit");

	if (limit != NULL && (json_integer_value(limit) == 0 ||
	    json_integer_value(limit) > ACTION_SEARCH_MAX)) {
		snprintf(err->msg, sizeof(err->msg), "search: parameter \"limit\" must be "
		    "from 1 to %d", ACTION_SEARCH_MAX);
		return -1;
	}
	return 0;
}

static const char *const seen_choices[] = { "all", "read", "unread", NULL };

static const struct action_param search_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "mailbox path, e.g. INBOX or Archive/2026" },
	{ "from", APT_STRING, 0, NULL, "From contains this text" },
	{ "to", APT_STRING, 0, NULL, "To contains this text" },
	{ "subject", APT_STRING, 0, NULL, "Subject contains this text" },
	{ "text", APT_STRING, 0, NULL, "headers or body contain this text" },
	{ "seen", APT_ENUM, 0, seen_choices, "all (default), read or unread" },
	{ "flagged", APT_BOOL, 0, NULL, "true: only flagged; false: only unflagged" },
	{ "since", APT_DATE, 0, NULL, "received on or after YYYY-MM-DD (internal date)" },
	{ "before", APT_DATE, 0, NULL, "received before YYYY-MM-DD (internal date)" },
	{ "larger", APT_INT, 0, NULL, "larger than this many bytes" },
	{ "smaller", APT_INT, 0, NULL, "smaller than this many bytes" },
	{ "range", APT_RANGE, 0, NULL, "only these UIDs (sequence numbers with --seq), e.g. 1:50" },
	{ "limit", APT_INT, 0, NULL, "only the newest N matches" },
	{ NULL }
};

const struct action_entry act_search_entry = {
	.name = "search",
	.summary = "find messages; list their UID, flags, size, date and envelope",
	.params = search_params,
	.check = search_check,
	.start = search_start,
	.step = search_step,
	.untagged = search_untagged,
	.state_size = sizeof(struct search_state),
	.state_free = search_free,
};
