/*
 * append: store a message in a mailbox (APPEND with a literal: LITERAL+
 * when offered, else synchronizing; imap_conn does both). The CLI reads
 * --file (or stdin) into the "message" parameter; HTTP sends it as is.
 * The new UID comes from [APPENDUID]; without UIDPLUS the uid is null and
 * uidValidity comes from a STATUS.
 */
#include "action.h"

#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "util.h"

enum append_step {
	APPEND_APPEND,
	APPEND_STATUS,
};

struct append_state {
	uint32_t uidvalidity;
};

/* The message with every bare LF made CRLF (IMAP wants CRLF lines). */
static void
crlf_normalise(const char *data, size_t len, struct str *out)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (data[i] != '\n' || (i > 0 && data[i - 1] == '\r'))
			continue;
		str_append_n(out, data + start, i - start);
		str_append_n(out, "\r\n", 2);
		start = i + 1;
	}
	str_append_n(out, data + start, len - start);
}

static void
append_start(struct action_run *run)
{
	json_t *msg = json_object_get(run->params, "message");
	json_t *flags = json_object_get(run->params, "flags");
	struct action_error err = { 0 };
	struct imap_cmd *cmd;
	struct str data;

	if (!json_is_string(msg)) {
		action_fail(run, ACTION_ERR_USAGE, "append: no message given");
		return;
	}
	if (action_message_check(json_string_value(msg), json_string_length(msg), &err) < 0) {
		action_fail(run, err.status, "%s", err.msg);
		return;
	}
	cmd = imap_cmd_new(run->conn);
	imap_cmd_add(cmd, "APPEND ");
	if (action_cmd_mailbox(run, cmd, action_param_str(run, "mailbox")) < 0) {
		imap_cmd_discard(&cmd);
		return;
	}
	if (json_array_size(flags) > 0) {
		imap_cmd_add(cmd, " ");
		action_cmd_flags(cmd, flags);
	}
	imap_cmd_add(cmd, " ");
	str_init(&data);
	crlf_normalise(json_string_value(msg), json_string_length(msg), &data);
	imap_cmd_literal(cmd, data.data, data.len);
	str_free(&data);
	run->step = APPEND_APPEND;
	action_send(run, cmd);
}

static void
append_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct append_state *st = run->state;
	const struct imap_arg *items;
	uint32_t n, i, v;

	if (run->step != APPEND_STATUS || resp->name == NULL ||
	    strcmp(resp->name, "STATUS") != 0 || resp->argc < 2 ||
	    !imap_arg_get_list(&resp->args[1], &items, &n))
		return;
	for (i = 0; i + 1 < n; i += 2)
		if (imap_arg_is_atom(&items[i], "UIDVALIDITY") &&
		    imap_arg_get_u32(&items[i + 1], &v) == 0)
			st->uidvalidity = v;
}

static void
append_step(struct action_run *run, const struct imap_reply *reply)
{
	struct append_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");
	struct imap_cmd *cmd;
	uint32_t uidvalidity, uid;
	char what[300];

	if (run->step == APPEND_APPEND) {
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "APPEND to %s", mailbox);
			action_fail_mailbox(run, reply, mailbox, what);
			return;
		}
		if (imap_resp_appenduid(reply->resp, &uidvalidity, &uid)) {
			action_finish(run, json_pack("{s:o, s:I, s:I}", "path", json_str(mailbox),
			    "uidValidity", (json_int_t)uidvalidity, "uid", (json_int_t)uid));
			return;
		}
		/* no UIDPLUS: the UID is unknown, the UIDVALIDITY is not */
		cmd = imap_cmd_new(run->conn);
		imap_cmd_add(cmd, "STATUS ");
		if (action_cmd_mailbox(run, cmd, mailbox) < 0) {
			imap_cmd_discard(&cmd);
			return;
		}
		imap_cmd_add(cmd, " (UIDVALIDITY)");
		run->step = APPEND_STATUS;
		action_send(run, cmd);
		return;
	}
	if (reply->status != IMAP_STATUS_OK) {
		action_fail_reply(run, reply, "STATUS after APPEND");
		return;
	}
	action_finish(run, json_pack("{s:o, s:o, s:n}", "path", json_str(mailbox),
	    "uidValidity", st->uidvalidity != 0 ? json_integer(st->uidvalidity) : json_null(),
	    "uid"));
}

static int
append_check(json_t *params, bool seq ATTR_UNUSED, struct action_error *err)
{
	json_t *msg = json_object_get(params, "message");

	/* the CLI checks the file's bytes when it reads them */
	if (msg != NULL && action_message_check(json_string_value(msg),
	    json_string_length(msg), err) < 0)
		return -1;
	return 0;
}

static const struct action_param append_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "mailbox path, e.g. INBOX or Archive/2026" },
	{ "file", APT_FILE, AP_REQUIRED | AP_CLI_ONLY, NULL,
	  "the message file (RFC 822), or - for standard input" },
	{ "message", APT_MESSAGE, AP_REQUIRED | AP_HTTP_ONLY, NULL, "the raw message text" },
	{ "flags", APT_FLAGS, 0, NULL, "flag or keyword to set on it (repeatable)" },
	{ NULL }
};

const struct action_entry act_append_entry = {
	.name = "append",
	.summary = "store a message in a mailbox",
	.params = append_params,
	.check = append_check,
	.start = append_start,
	.step = append_step,
	.untagged = append_untagged,
	.state_size = sizeof(struct append_state),
};
