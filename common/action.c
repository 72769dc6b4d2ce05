/* action: the action table and what every action shares; see action.h */
#include "action.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "imap_utf7.h"
#include "jsonutil.h"
#include "log.h"
#include "util.h"

extern const struct action_entry act_test_connection_entry;
extern const struct action_entry act_list_mailboxes_entry;
extern const struct action_entry act_mailbox_status_entry;
extern const struct action_entry act_search_entry;
extern const struct action_entry act_download_entry;
extern const struct action_entry act_append_entry;
extern const struct action_entry act_copy_entry;
extern const struct action_entry act_move_entry;
extern const struct action_entry act_delete_entry;
extern const struct action_entry act_add_flags_entry;
extern const struct action_entry act_remove_flags_entry;
extern const struct action_entry act_set_flags_entry;
extern const struct action_entry act_create_mailbox_entry;
extern const struct action_entry act_rename_mailbox_entry;
extern const struct action_entry act_delete_mailbox_entry;

const struct action_entry *const action_table[] = {
	&act_list_mailboxes_entry,
	&act_mailbox_status_entry,
	&act_search_entry,
	&act_download_entry,
	&act_append_entry,
	&act_copy_entry,
	&act_move_entry,
	&act_delete_entry,
	&act_add_flags_entry,
	&act_remove_flags_entry,
	&act_set_flags_entry,
	&act_create_mailbox_entry,
	&act_rename_mailbox_entry,
	&act_delete_mailbox_entry,
	&act_test_connection_entry,
	NULL
};

const struct action_entry *
action_find(const char *name)
{
	size_t i;

	for (i = 0; action_table[i] != NULL; i++)
		if (strcmp(action_table[i]->name, name) == 0)
			return action_table[i];
	return NULL;
}

/* errors */

int
action_exit_code(enum action_status status)
{
	switch (status) {
	case ACTION_OK: return 0;
	case ACTION_ERR_USAGE: return 64;
	case ACTION_ERR_INPUT: return 65;
	case ACTION_ERR_NOTFOUND:
	case ACTION_ERR_EXISTS:
	case ACTION_ERR_REFUSED: return 1;
	case ACTION_ERR_UNREACHABLE: return 69;
	case ACTION_ERR_AUTH: return 77;
	}
	return 1;
}

int
action_http_status(enum action_status status)
{
	switch (status) {
	case ACTION_OK: return 200;
	case ACTION_ERR_USAGE:
	case ACTION_ERR_INPUT: return 400;
	case ACTION_ERR_NOTFOUND: return 404;
	case ACTION_ERR_EXISTS: return 409;
	case ACTION_ERR_REFUSED: return 422;
	case ACTION_ERR_UNREACHABLE:
	case ACTION_ERR_AUTH: return 502;
	}
	return 500;
}

const char *
action_error_code(enum action_status status)
{
	switch (status) {
	case ACTION_OK: return "ok";
	case ACTION_ERR_USAGE: return "bad_parameter";
	case ACTION_ERR_INPUT: return "bad_input";
	case ACTION_ERR_NOTFOUND: return "not_found";
	case ACTION_ERR_EXISTS: return "already_exists";
	case ACTION_ERR_REFUSED: return "server_refused";
	case ACTION_ERR_UNREACHABLE: return "server_unreachable";
	case ACTION_ERR_AUTH: return "authentication_failed";
	}
	return "error";
}

enum action_status
action_status_from_imap(enum imap_err kind)
{
	switch (kind) {
	case IMAP_ERR_NONE: return ACTION_OK;
	case IMAP_ERR_NO:
	case IMAP_ERR_BAD: return ACTION_ERR_REFUSED;
	case IMAP_ERR_AUTH: return ACTION_ERR_AUTH;
	case IMAP_ERR_CONNECT:
	case IMAP_ERR_TLS:
	case IMAP_ERR_PROTOCOL:
	case IMAP_ERR_TIMEOUT:
	case IMAP_ERR_CLOSED: return ACTION_ERR_UNREACHABLE;
	}
	return ACTION_ERR_UNREACHABLE;
}

/* parameter checks */

static bool
valid_date(const char *s)
{
	unsigned y, m, d;
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return false;
	y = (unsigned)(s[0] - '0') * 1000 + (unsigned)(s[1] - '0') * 100 +
	    (unsigned)(s[2] - '0') * 10 + (unsigned)(s[3] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	/* February 29th only in leap years */
	return !(m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

static bool
valid_range(const char *s, bool seq ATTR_UNUSED)
{
	struct imap_seqset set;
	size_t i;

	/* only digits, ':', ',' and '*' may reach the wire */
	for (i = 0; s[i] != '\0'; i++)
		if (!isdigit((unsigned char)s[i]) && strchr(":,*", s[i]) == NULL)
			return false;
	if (imap_seqset_parse(s, strlen(s), &set) < 0)
		return false;
	for (i = 0; i < set.count; i++) {
		if (set.ranges[i].lo == 0) {
			imap_seqset_free(&set);
			return false;
		}
	}
	imap_seqset_free(&set);
	return true;
}

/* 1, 1.2, 2.1.3: numbers of 32 bits without leading zeros, at most
 * ACTION_PARTID_DEPTH_MAX of them (the length is checked apart). */
static bool
valid_partid(const char *s)
{
	unsigned depth = 0;
	uint32_t n;
	size_t len;

	for (;;) {
		len = strspn(s, "0123456789");
		if (len == 0 || s[0] == '0' || parse_u32_n(s, len, &n) < 0 ||
		    ++depth > ACTION_PARTID_DEPTH_MAX)
			return false;
		s += len;
		if (*s == '\0')
			return true;
		if (*s++ != '.')
			return false;
	}
}

/* A flag is \Word (system flag) or a keyword of atom characters. */
static bool
valid_flag(const char *s)
{
	const char *p = s;

	if (*p == '\\')
		p++;
	if (*p == '\0')
		return false;
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static const struct action_param *
find_param(const struct action_entry *entry, const char *name)
{
	const struct action_param *p;

	for (p = entry->params; p != NULL && p->name != NULL; p++)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static void
usage_error(struct action_error *err, const char *fmt, ...) ATTR_FORMAT(2, 3);

static void
usage_error(struct action_error *err, const char *fmt, ...)
{
	va_list ap;

	err->status = ACTION_ERR_USAGE;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* Is the JSON string v free of NUL bytes? JSON may carry \u0000, which a
 * C string would cut short ("urgent\u0000junk" would set "urgent"). */
static bool
no_nul(json_t *v)
{
	return strlen(json_string_value(v)) == json_string_length(v);
}

/* The longest a string parameter of type may be, or 0 for no limit. */
static size_t
max_length(enum action_ptype type)
{
	switch (type) {
	case APT_MAILBOX: return ACTION_MAILBOX_MAX;
	case APT_STRING: return ACTION_STRING_MAX;
	case APT_RANGE: return ACTION_RANGE_MAX;
	case APT_PARTID: return ACTION_PARTID_MAX;
	default: return 0;
	}
}

static int
check_flags(const struct action_param *p, json_t *v, struct action_error *err)
{
	size_t i, total = 0;

	if (!json_is_array(v)) {
		usage_error(err, "parameter \"%s\" must be a list of flags", p->name);
		return -1;
	}
	for (i = 0; i < json_array_size(v); i++) {
		json_t *f = json_array_get(v, i);

		if (json_is_string(f) && !no_nul(f)) {
			usage_error(err, "parameter \"%s\": a flag must not contain NUL bytes",
			    p->name);
			return -1;
		}
		if (!json_is_string(f) || !valid_flag(json_string_value(f))) {
			usage_error(err, "parameter \"%s\": not a valid flag: %s", p->name,
			    json_is_string(f) ? json_string_value(f) : "(not a string)");
			return -1;
		}
		total += json_string_length(f) + (i > 0);
		if (total > ACTION_FLAGS_MAX) {
			usage_error(err, "parameter \"%s\" is too long (at most %d bytes of "
			    "flags)", p->name, ACTION_FLAGS_MAX);
			return -1;
		}
	}
	return 0;
}

static int
check_value(const struct action_param *p, json_t *v, bool seq, struct action_error *err)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	size_t i, max;

	switch (p->type) {
	case APT_INT:
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > (json_int_t)ACTION_INT_MAX) {
			usage_error(err, "parameter \"%s\" must be an integer from 0 to %u",
			    p->name, ACTION_INT_MAX);
			return -1;
		}
		return 0;
	case APT_BOOL:
		if (!json_is_boolean(v)) {
			usage_error(err, "parameter \"%s\" must be true or false", p->name);
			return -1;
		}
		return 0;
	case APT_FLAGS:
		return check_flags(p, v, err);
	default:
		break;
	}
	if (s == NULL) {
		usage_error(err, "parameter \"%s\" must be a string", p->name);
		return -1;
	}
	/* a message is raw text: action_message_check says what is wrong */
	if (p->type != APT_MESSAGE && !no_nul(v)) {
		usage_error(err, "parameter \"%s\" must not contain NUL bytes", p->name);
		return -1;
	}
	max = max_length(p->type);
	if (max > 0 && json_string_length(v) > max) {
		usage_error(err, "parameter \"%s\" is too long (%zu bytes; at most %zu)",
		    p->name, json_string_length(v), max);
		return -1;
	}
	switch (p->type) {
	case APT_MAILBOX:
		if (*s == '\0') {
			usage_error(err, "parameter \"%s\" must be a mailbox path", p->name);
			return -1;
		}
		break;
	case APT_RANGE:
		if (!valid_range(s, seq)) {
			usage_error(err, "parameter \"%s\" must be an IMAP set such as 1:5,9 "
			    "or *, not \"%s\"", p->name, s);
			return -1;
		}
		break;
	case APT_DATE:
		if (!valid_date(s)) {
			usage_error(err, "parameter \"%s\" must be a date YYYY-MM-DD, not \"%s\"",
			    p->name, s);
			return -1;
		}
		break;
	case APT_PARTID:
		if (!valid_partid(s)) {
			usage_error(err, "parameter \"%s\" must be a body part number such as "
			    "2 or 1.2 (at most %d levels), not \"%s\"", p->name,
			    ACTION_PARTID_DEPTH_MAX, s);
			return -1;
		}
		break;
	case APT_ENUM:
		for (i = 0; p->choices[i] != NULL; i++)
			if (strcmp(p->choices[i], s) == 0)
				break;
		if (p->choices[i] == NULL) {
			usage_error(err, "parameter \"%s\" must be one of the choices, not \"%s\"",
			    p->name, s);
			return -1;
		}
		break;
	default:
		break;
	}
	return 0;
}

int
action_params_check(const struct action_entry *entry, json_t *params, bool http,
    bool seq, struct action_error *err)
{
	const struct action_param *p;
	const char *key;
	json_t *v;

	if (!json_is_object(params)) {
		usage_error(err, "parameters must be a JSON object");
		return -1;
	}
	json_object_foreach(params, key, v) {
		p = find_param(entry, key);
		if (p == NULL || (http && (p->flags & AP_CLI_ONLY)) ||
		    (!http && (p->flags & AP_HTTP_ONLY))) {
			usage_error(err, "%s: unknown parameter \"%s\"", entry->name, key);
			return -1;
		}
		if (check_value(p, v, seq, err) < 0)
			return -1;
	}
	for (p = entry->params; p != NULL && p->name != NULL; p++) {
		if (!(p->flags & AP_REQUIRED))
			continue;
		if ((http && (p->flags & AP_CLI_ONLY)) || (!http && (p->flags & AP_HTTP_ONLY)))
			continue;
		if (json_object_get(params, p->name) == NULL) {
			usage_error(err, "%s: missing required parameter \"%s\"", entry->name,
			    p->name);
			return -1;
		}
	}
	err->status = ACTION_OK;
	if (entry->check != NULL && entry->check(params, seq, err) < 0) {
		err->status = err->status == ACTION_OK ? ACTION_ERR_USAGE : err->status;
		return -1;
	}
	return 0;
}

/* runs */

struct action_run *
action_run_new(const struct action_entry *entry, json_t *params, bool seq)
{
	struct action_run *run = xcalloc(1, sizeof(*run));

	run->entry = entry;
	run->params = json_incref(params);
	run->seq = seq;
	if (entry->state_size > 0)
		run->state = xcalloc(1, entry->state_size);
	return run;
}

void
action_run_free(struct action_run **runp)
{
	struct action_run *run = *runp;

	*runp = NULL;
	if (run == NULL)
		return;
	if (run->inflight > 0) {
		/* the last reply frees it (run_cmd_done) */
		run->orphaned = true;
		run->done = NULL;
		return;
	}
	if (run->entry->state_free != NULL)
		run->entry->state_free(run);
	free(run->state);
	json_decref(run->params);
	json_decref(run->result);
	free(run);
}

static void
run_complete(struct action_run *run)
{
	if (run->finished)
		return;
	run->finished = true;
	/* finished inside start(): done is called later, from the loop */
	if (run->starting)
		return;
	if (run->done != NULL)
		run->done(run, run->done_arg);
}

static void
run_deferred_done(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply ATTR_UNUSED,
    void *arg)
{
	struct action_run *run = arg;

	run->inflight--;
	if (run->orphaned) {
		if (run->inflight == 0)
			action_run_free(&run);
		return;
	}
	if (run->done != NULL)
		run->done(run, run->done_arg);
}

void
action_run_start(struct action_run *run, struct imap_conn *conn, action_done_cb *done,
    void *arg)
{
	struct imap_cmd *cmd;

	run->conn = conn;
	run->done = done;
	run->done_arg = arg;
	run->starting = true;
	run->entry->start(run);
	run->starting = false;
	if (run->finished) {
		/*
		 * It failed at once (a bad name, a missing capability), inside
		 * the caller's lease callback, where done must not run: it
		 * runs when a NOOP behind whatever start() sent completes.
		 */
		cmd = imap_cmd_new(conn);
		imap_cmd_add(cmd, "NOOP");
		run->inflight++;
		imap_cmd_send(cmd, run_deferred_done, NULL, run);
	}
}

static void
run_cmd_done(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply, void *arg)
{
	struct action_run *run = arg;

	run->inflight--;
	if (run->orphaned) {
		/* freed by its owner while commands were in flight */
		if (run->inflight == 0)
			action_run_free(&run);
		return;
	}
	if (!run->finished && !run->failing)
		run->entry->step(run, reply);
}

static void
run_quiet_done(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply ATTR_UNUSED,
    void *arg)
{
	struct action_run *run = arg;

	run->inflight--;
	if (run->orphaned && run->inflight == 0)
		action_run_free(&run);
}

static void
run_untagged(struct imap_conn *conn ATTR_UNUSED, const struct imap_resp *resp, void *arg)
{
	struct action_run *run = arg;

	if (!run->finished && !run->failing && !run->orphaned && run->entry->untagged != NULL)
		run->entry->untagged(run, resp);
}

void
action_send(struct action_run *run, struct imap_cmd *cmd)
{
	run->inflight++;
	imap_cmd_send(cmd, run_cmd_done, run_untagged, run);
}

void
action_send_quiet(struct action_run *run, struct imap_cmd *cmd)
{
	run->inflight++;
	imap_cmd_send(cmd, run_quiet_done, run_untagged, run);
}

void
action_send_text(struct action_run *run, const char *text)
{
	struct imap_cmd *cmd = imap_cmd_new(run->conn);

	imap_cmd_add(cmd, text);
	action_send(run, cmd);
}

int
action_cmd_mailbox(struct action_run *run, struct imap_cmd *cmd, const char *utf8)
{
	if (imap_cmd_mailbox(cmd, utf8) < 0) {
		action_fail(run, ACTION_ERR_USAGE, "not a valid mailbox name: %s", utf8);
		return -1;
	}
	return 0;
}

void
action_finish(struct action_run *run, json_t *result)
{
	if (run->finished) {
		json_decref(result);
		return;
	}
	run->result = result;
	run->err.status = ACTION_OK;
	run_complete(run);
}

void
action_fail(struct action_run *run, enum action_status status, const char *fmt, ...)
{
	va_list ap;

	if (run->finished)
		return;
	run->err.status = status;
	va_start(ap, fmt);
	vsnprintf(run->err.msg, sizeof(run->err.msg), fmt, ap);
	va_end(ap);
	run_complete(run);
}

void
action_fail_reply(struct action_run *run, const struct imap_reply *reply, const char *what)
{
	const struct imap_resp *resp = reply->resp;
	enum action_status status;

	if (reply->status == IMAP_STATUS_NONE) {
		action_fail(run, action_status_from_imap(reply->err.kind), "%s: %s", what,
		    reply->err.msg);
		return;
	}
	status = ACTION_ERR_REFUSED;
	if (resp != NULL && (imap_resp_code_is(resp, "NONEXISTENT") ||
	    imap_resp_code_is(resp, "TRYCREATE")))
		status = ACTION_ERR_NOTFOUND;
	else if (resp != NULL && imap_resp_code_is(resp, "ALREADYEXISTS"))
		status = ACTION_ERR_EXISTS;
	action_fail(run, status, "%s: server said %s: %s", what,
	    reply->status == IMAP_STATUS_NO ? "NO" : "BAD",
	    resp != NULL ? resp->text : "");
}

const char *
action_param_str(const struct action_run *run, const char *name)
{
	return json_string_value(json_object_get(run->params, name));
}

bool
action_param_has(const struct action_run *run, const char *name)
{
	json_t *v = json_object_get(run->params, name);

	return v != NULL && !json_is_null(v);
}

json_int_t
action_param_int(const struct action_run *run, const char *name, json_int_t def)
{
	json_t *v = json_object_get(run->params, name);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

bool
action_param_bool(const struct action_run *run, const char *name, bool def)
{
	json_t *v = json_object_get(run->params, name);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

char *
action_mailbox_from_wire(const char *wire, size_t len)
{
	char *copy = xstrndup(wire, len), *utf8;

	utf8 = imap_utf7_to_utf8(copy);
	if (utf8 != NULL) {
		free(copy);
		return utf8;
	}
	/* not modified UTF-7: a server speaking UTF-8 names (UTF8=ACCEPT) */
	utf8 = utf8_repair(copy, len, NULL);
	free(copy);
	return utf8;
}

json_t *
action_flags_json(const struct imap_arg *list)
{
	return flags_to_json(list, false);
}

/* Is a refused mailbox missing? Servers without [NONEXISTENT] (Cyrus,
 * Courier) answer a plain NO, so ask LIST before saying 404. */
struct mbox_probe {
	struct action_run *run;
	bool listed;
	bool for_create;        /* listed means "already exists" */
	char *what;
	char *server_text;
};

static void
probe_untagged(struct imap_conn *conn ATTR_UNUSED, const struct imap_resp *resp, void *arg)
{
	struct mbox_probe *p = arg;

	if (resp->name != NULL && strcmp(resp->name, "LIST") == 0)
		p->listed = true;
}

static void
probe_done(struct imap_conn *conn ATTR_UNUSED, const struct imap_reply *reply, void *arg)
{
	struct mbox_probe *p = arg;
	struct action_run *run = p->run;

	run->inflight--;
	if (run->orphaned) {
		if (run->inflight == 0)
			action_run_free(&run);
	} else if (reply->status == IMAP_STATUS_NONE) {
		action_fail(run, action_status_from_imap(reply->err.kind), "%s: %s",
		    p->what, reply->err.msg);
	} else if (reply->status == IMAP_STATUS_OK && !p->listed && !p->for_create) {
		action_fail(run, ACTION_ERR_NOTFOUND, "%s: no such mailbox", p->what);
	} else if (reply->status == IMAP_STATUS_OK && p->listed && p->for_create) {
		action_fail(run, ACTION_ERR_EXISTS, "%s: mailbox already exists", p->what);
	} else {
		action_fail(run, ACTION_ERR_REFUSED, "%s: server said NO: %s", p->what,
		    p->server_text);
	}
	free(p->what);
	free(p->server_text);
	free(p);
}

static void
fail_mailbox(struct action_run *run, const struct imap_reply *reply, const char *mailbox,
    const char *what, bool for_create)
{
	struct mbox_probe *p;
	struct imap_cmd *cmd;

	if (reply->status != IMAP_STATUS_NO || reply->resp == NULL ||
	    imap_resp_code_is(reply->resp, "NONEXISTENT") ||
	    imap_resp_code_is(reply->resp, "TRYCREATE") ||
	    imap_resp_code_is(reply->resp, "ALREADYEXISTS")) {
		action_fail_reply(run, reply, what);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->run = run;
	p->for_create = for_create;
	p->what = xstrdup(what);
	p->server_text = xstrdup(reply->resp->text);
	cmd = imap_cmd_new(run->conn);
	imap_cmd_add(cmd, "LIST \"\" ");
	if (imap_cmd_mailbox(cmd, mailbox) < 0)
		imap_cmd_add(cmd, "\"\"");
	run->inflight++;
	run->failing = true;
	imap_cmd_send(cmd, probe_done, probe_untagged, p);
}

void
action_fail_mailbox(struct action_run *run, const struct imap_reply *reply,
    const char *mailbox, const char *what)
{
	fail_mailbox(run, reply, mailbox, what, false);
}

void
action_fail_mailbox_exists(struct action_run *run, const struct imap_reply *reply,
    const char *mailbox, const char *what)
{
	fail_mailbox(run, reply, mailbox, what, true);
}

/* selection */

int
action_select(struct action_run *run, const char *mailbox, bool readonly)
{
	struct imap_cmd *cmd = imap_cmd_new(run->conn);

	imap_cmd_add(cmd, readonly ? "EXAMINE " : "SELECT ");
	if (action_cmd_mailbox(run, cmd, mailbox) < 0) {
		imap_cmd_discard(&cmd);
		return -1;
	}
	/* a SELECT deselects at once, whatever its outcome */
	imap_conn_set_selected(run->conn, NULL, false);
	action_send(run, cmd);
	return 0;
}

bool
action_select_done(struct action_run *run, const struct imap_reply *reply,
    const char *mailbox, bool readonly)
{
	char what[300];

	if (reply->status == IMAP_STATUS_OK) {
		imap_conn_set_selected(run->conn, mailbox, readonly);
		return true;
	}
	imap_conn_set_selected(run->conn, NULL, false);
	snprintf(what, sizeof(what), "%s %s", readonly ? "EXAMINE" : "SELECT", mailbox);
	action_fail_mailbox(run, reply, mailbox, what);
	return false;
}

void
action_deselect(struct action_run *run)
{
	const char *selected;
	struct imap_cmd *cmd;
	bool readonly;

	if ((selected = imap_conn_selected(run->conn, &readonly)) == NULL)
		return;
	if (imap_conn_has_cap(run->conn, "UNSELECT")) {
		cmd = imap_cmd_new(run->conn);
		imap_cmd_add(cmd, "UNSELECT");
		action_send_quiet(run, cmd);
	} else {
		/* CLOSE expunges only in a mailbox opened read-write */
		if (!readonly) {
			cmd = imap_cmd_new(run->conn);
			imap_cmd_add(cmd, "EXAMINE ");
			if (imap_cmd_mailbox(cmd, selected) == 0) {
				action_send_quiet(run, cmd);
				readonly = true;
			} else {
				imap_cmd_discard(&cmd);
			}
		}
		if (readonly) {
			cmd = imap_cmd_new(run->conn);
			imap_cmd_add(cmd, "CLOSE");
			action_send_quiet(run, cmd);
		}
	}
	imap_conn_set_selected(run->conn, NULL, false);
}

/* messages */

static bool
is_header_line(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len && s[i] != ':'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return i > 0 && i < len;
}

int
action_message_check(const char *data, size_t len, struct action_error *err)
{
	const char *line = data, *end = data + len, *nl;
	size_t n;

	err->status = ACTION_ERR_INPUT;
	if (len == 0) {
		snprintf(err->msg, sizeof(err->msg), "not a message: it is empty");
		return -1;
	}
	if (memchr(data, '\0', len) != NULL) {
		snprintf(err->msg, sizeof(err->msg), "not a message: it contains NUL bytes");
		return -1;
	}
	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		n = (nl != NULL ? (size_t)(nl - line) : (size_t)(end - line));
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (is_header_line(line, n)) {
			err->status = ACTION_OK;
			return 0;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	snprintf(err->msg, sizeof(err->msg), "not a message: no header line "
	    "(\"Name: value\") before the first blank line");
	return -1;
}
