/* Mailbox actions: list-mailboxes, mailbox-status, create-mailbox,
 * rename-mailbox, delete-mailbox. */
#include "action.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_utf7.h"
#include "jsonutil.h"
#include "log.h"
#include "util.h"

/* True when the attribute list holds attr (case-insensitive). */
static bool
has_attr(const struct imap_arg *attrs, uint32_t n, const char *attr)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (imap_arg_is_atom(&attrs[i], attr))
			return true;
	return false;
}

/* list-mailboxes */

struct list_state {
	json_t *mailboxes;      /* array, in the server's order */
	json_t *by_path;        /* path -> the same objects, for LSUB */
	unsigned pending;
};

static const char *const special_use[] = {
	"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Important", "\\Junk",
	"\\Sent", "\\Trash", NULL
};

static void
list_start(struct action_run *run)
{
	struct list_state *st = run->state;
	struct imap_cmd *cmd;

	st->mailboxes = json_array();
	st->by_path = json_object();
	cmd = imap_cmd_new(run->conn);
	if (imap_conn_has_cap(run->conn, "LIST-EXTENDED")) {
		imap_cmd_add(cmd, "LIST \"\" \"*\" RETURN (SUBSCRIBED");
		if (imap_conn_has_cap(run->conn, "SPECIAL-USE"))
			imap_cmd_add(cmd, " SPECIAL-USE");
		imap_cmd_add(cmd, ")");
		st->pending = 1;
		action_send(run, cmd);
		return;
	}
	imap_cmd_add(cmd, "LIST \"\" \"*\"");
	action_send(run, cmd);
	action_send_text(run, "LSUB \"\" \"*\"");
	st->pending = 2;
}

static void
list_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct list_state *st = run->state;
	const struct imap_arg *attrs;
	const char *name, *delim, *use = NULL;
	size_t namelen, delimlen;
	uint32_t nattrs, i;
	bool subscribed = false, lsub;
	json_t *flags, *mb;
	char *path;

	if (resp->name == NULL || resp->argc < 3)
		return;
	lsub = strcmp(resp->name, "LSUB") == 0;
	if (!lsub && strcmp(resp->name, "LIST") != 0)
		return;
	if (!imap_arg_get_list(&resp->args[0], &attrs, &nattrs) ||
	    !imap_arg_get_astring(&resp->args[2], &name, &namelen))
		return;
	/* LSUB lists the \Noselect parents of subscribed names too (Courier):
	 * they are not subscribed themselves */
	if (lsub && has_attr(attrs, nattrs, "\\Noselect"))
		return;
	path = action_mailbox_from_wire(name, namelen);
	if (lsub) {
		mb = json_object_get(st->by_path, path);
		if (mb != NULL)
			json_object_set_new(mb, "subscribed", json_true());
		free(path);
		return;
	}
	flags = json_array();
	for (i = 0; i < nattrs; i++) {
		const char *a;
		size_t alen, k;

		if (!imap_arg_get_astring(&attrs[i], &a, &alen))
			continue;
		if (strcasecmp(a, "\\Subscribed") == 0) {
			subscribed = true;
			continue;
		}
		for (k = 0; special_use[k] != NULL; k++)
			if (use == NULL && strcasecmp(a, special_use[k]) == 0)
				use = special_use[k];
		json_array_append_new(flags, json_str_n(a, alen));
	}
	if (resp->args[1].type == IMAP_ARG_NIL ||
	    !imap_arg_get_astring(&resp->args[1], &delim, &delimlen))
		delim = NULL;
	mb = json_pack("{s:o, s:o, s:o, s:o, s:b}",
	    "path", json_str(path),
	    "delimiter", delim != NULL ? json_str_n(delim, delimlen) : json_null(),
	    "flags", flags,
	    "specialUse", json_str(use),
	    "subscribed", subscribed);
	json_array_append(st->mailboxes, mb);
	json_object_set_new(st->by_path, path, mb);
	free(path);
}

static void
list_step(struct action_run *run, const struct imap_reply *reply)
{
	struct list_state *st = run->state;

	if (reply->status != IMAP_STATUS_OK) {
		action_fail_reply(run, reply, "LIST");
		return;
	}
	if (--st->pending > 0)
		return;
	action_finish(run, json_pack("{s:O}", "mailboxes", st->mailboxes));
}

static void
list_free(struct action_run *run)
{
	struct list_state *st = run->state;

	json_decref(st->mailboxes);
	json_decref(st->by_path);
}

static const struct action_param list_params[] = {
	{ NULL }
};

const struct action_entry act_list_mailboxes_entry = {
	.name = "list-mailboxes",
	.summary = "list every mailbox with its flags, special use and subscription",
	.params = list_params,
	.start = list_start,
	.step = list_step,
	.untagged = list_untagged,
	.state_size = sizeof(struct list_state),
	.state_free = list_free,
};

/* mailbox-status */

struct status_state {
	json_t *result;
};

static void
status_start(struct action_run *run)
{
	struct status_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");
	struct imap_cmd *cmd = imap_cmd_new(run->conn);

	st->result = json_pack("{s:s, s:n, s:n, s:n, s:n, s:n}", "path", mailbox,
	    "messages", "unseen", "uidNext", "uidValidity", "highestModseq");
	imap_cmd_add(cmd, "STATUS ");
	if (action_cmd_mailbox(run, cmd, mailbox) < 0) {
		imap_cmd_discard(&cmd);
		return;
	}
	imap_cmd_add(cmd, " (MESSAGES UNSEEN UIDNEXT UIDVALIDITY");
	if (imap_conn_has_cap(run->conn, "CONDSTORE"))
		imap_cmd_add(cmd, " HIGHESTMODSEQ");
	imap_cmd_add(cmd, ")");
	action_send(run, cmd);
}

static void
status_untagged(struct action_run *run, const struct imap_resp *resp)
{
	static const struct {
		const char *item, *key;
	} map[] = {
		{ "MESSAGES", "messages" },
		{ "UNSEEN", "unseen" },
		{ "UIDNEXT", "uidNext" },
		{ "UIDVALIDITY", "uidValidity" },
		{ "HIGHESTMODSEQ", "highestModseq" },
	};
	struct status_state *st = run->state;
	const struct imap_arg *items;
	uint32_t n, i;
	size_t k;

	if (resp->name == NULL || strcmp(resp->name, "STATUS") != 0 || resp->argc < 2 ||
	    !imap_arg_get_list(&resp->args[1], &items, &n))
		return;
	for (i = 0; i + 1 < n; i += 2) {
		const char *name;
		size_t len;
		uint64_t v;

		if (!imap_arg_get_astring(&items[i], &name, &len) ||
		    imap_arg_get_u64(&items[i + 1], &v) < 0)
			continue;
		for (k = 0; k < N_ELEMENTS(map); k++)
			if (strcasecmp(name, map[k].item) == 0)
				json_object_set_new(st->result, map[k].key,
				    json_integer((json_int_t)v));
	}
}

static void
status_step(struct action_run *run, const struct imap_reply *reply)
{
	struct status_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");

	if (reply->status != IMAP_STATUS_OK) {
		char what[300];

		snprintf(what, sizeof(what), "STATUS %s", mailbox);
		action_fail_mailbox(run, reply, mailbox, what);
		return;
	}
	action_finish(run, json_incref(st->result));
}

static void
status_free(struct action_run *run)
{
	struct status_state *st = run->state;

	json_decref(st->result);
}

static const struct action_param status_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "mailbox path, e.g. INBOX or Archive/2026" },
	{ NULL }
};

const struct action_entry act_mailbox_status_entry = {
	.name = "mailbox-status",
	.summary = "message counts, UIDNEXT, UIDVALIDITY and HIGHESTMODSEQ of a mailbox",
	.params = status_params,
	.start = status_start,
	.step = status_step,
	.untagged = status_untagged,
	.state_size = sizeof(struct status_state),
	.state_free = status_free,
};

/* create-mailbox, rename-mailbox, delete-mailbox */

enum mbox_step {
	MB_LSUB,
	MB_MAIN,                /* CREATE, RENAME or DELETE */
	MB_SUBSCRIPTIONS,
};

struct mbox_state {
	json_t *subscribed;     /* rename: subscribed names at or below path */
	unsigned pending;       /* commands in flight */
	unsigned sub_failures;
	bool listed;            /* rename: LIST showed the mailbox */
};

static void
mbox_free(struct action_run *run)
{
	struct mbox_state *st = run->state;

	json_decref(st->subscribed);
}

/* VERB path (and " newPath"). Returns -1 (run failed) on a bad name. */
static int
mbox_send(struct action_run *run, const char *verb, const char *path, const char *path2)
{
	struct imap_cmd *cmd = imap_cmd_new(run->conn);

	imap_cmd_addf(cmd, "%s ", verb);
	if (action_cmd_mailbox(run, cmd, path) < 0)
		goto fail;
	if (path2 != NULL) {
		imap_cmd_add(cmd, " ");
		if (action_cmd_mailbox(run, cmd, path2) < 0)
			goto fail;
	}
	action_send(run, cmd);
	return 0;
fail:
	imap_cmd_discard(&cmd);
	return -1;
}

static void
create_start(struct action_run *run)
{
	run->step = MB_MAIN;
	mbox_send(run, "CREATE", action_param_str(run, "path"), NULL);
}

static void
create_step(struct action_run *run, const struct imap_reply *reply)
{
	const char *path = action_param_str(run, "path");
	char what[300];

	if (run->step == MB_MAIN) {
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "CREATE %s", path);
			action_fail_mailbox_exists(run, reply, path, what);
			return;
		}
		run->step = MB_SUBSCRIPTIONS;
		mbox_send(run, "SUBSCRIBE", path, NULL);
		return;
	}
	if (reply->status != IMAP_STATUS_OK) {
		snprintf(what, sizeof(what), "%s was created, but SUBSCRIBE failed", path);
		action_fail_reply(run, reply, what);
		return;
	}
	action_finish(run, json_pack("{s:o, s:b}", "path", json_str(path), "created", 1));
}

static const struct action_param create_params[] = {
	{ "path", APT_MAILBOX, AP_REQUIRED, NULL, "the new mailbox's path, e.g. Archive/2026" },
	{ NULL }
};

const struct action_entry act_create_mailbox_entry = {
	.name = "create-mailbox",
	.summary = "create a mailbox and subscribe to it",
	.params = create_params,
	.start = create_start,
	.step = create_step,
	.state_size = sizeof(struct mbox_state),
	.state_free = mbox_free,
};

/*
 * rename-mailbox: RENAME, and the subscriptions follow (servers such as
 * Dovecot leave them under the old name): LSUB "" "path*" first, then
 * UNSUBSCRIBE/SUBSCRIBE of each subscribed name at or below path.
 */
static void
rename_start(struct action_run *run)
{
	struct mbox_state *st = run->state;
	const char *path = action_param_str(run, "path");
	struct imap_cmd *cmd;
	char *wire, *pattern;

	st->subscribed = json_array();
	/* some servers drop the connection when its selected mailbox goes */
	action_deselect(run);
	wire = strcasecmp(path, "INBOX") == 0 ? xstrdup("INBOX") : imap_utf8_to_utf7(path);
	if (wire == NULL) {
		action_fail(run, ACTION_ERR_USAGE, "not a valid mailbox name: %s", path);
		return;
	}
	/* LIST first: some servers (Courier) answer OK to renaming a mailbox
	 * that does not exist */
	cmd = imap_cmd_new(run->conn);
	imap_cmd_add(cmd, "LIST \"\" ");
	imap_cmd_astring(cmd, wire, strlen(wire));
	action_send(run, cmd);
	pattern = xasprintf("%s*", wire);
	cmd = imap_cmd_new(run->conn);
	imap_cmd_add(cmd, "LSUB \"\" ");
	imap_cmd_astring(cmd, pattern, strlen(pattern));
	free(pattern);
	free(wire);
	run->step = MB_LSUB;
	st->pending = 2;
	action_send(run, cmd);
}

static void
rename_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct mbox_state *st = run->state;
	const char *path = action_param_str(run, "path"), *wire, *delim = NULL;
	size_t wlen, plen = strlen(path), dlen = 0;
	char *name;

	const struct imap_arg *attrs;
	uint32_t nattrs;

	if (run->step != MB_LSUB || resp->name == NULL || resp->argc < 3 ||
	    !imap_arg_get_list(&resp->args[0], &attrs, &nattrs) ||
	    !imap_arg_get_astring(&resp->args[2], &wire, &wlen))
		return;
	if (strcmp(resp->name, "LIST") == 0) {
		if (!has_attr(attrs, nattrs, "\\Noselect") &&
		    !has_attr(attrs, nattrs, "\\NonExistent"))
			st->listed = true;
		return;
	}
	if (strcmp(resp->name, "LSUB") != 0 || has_attr(attrs, nattrs, "\\Noselect"))
		return;
	if (resp->args[1].type != IMAP_ARG_NIL)
		imap_arg_get_astring(&resp->args[1], &delim, &dlen);
	name = action_mailbox_from_wire(wire, wlen);
	if ((strcasecmp(path, "INBOX") == 0 ? strncasecmp(name, path, plen) :
	    strncmp(name, path, plen)) == 0 &&
	    (name[plen] == '\0' || (dlen == 1 && name[plen] == delim[0])))
		json_array_append_new(st->subscribed, json_string(name));
	free(name);
}

static void
rename_step(struct action_run *run, const struct imap_reply *reply)
{
	struct mbox_state *st = run->state;
	const char *path = action_param_str(run, "path");
	const char *newpath = action_param_str(run, "newPath");
	size_t i, plen = strlen(path);
	char what[600];

	switch (run->step) {
	case MB_LSUB:
		/* a failed LSUB only means no subscription follows. Not
		 * pipelined: the LSUB must see the names before the RENAME */
		if (reply->status == IMAP_STATUS_NONE) {
			action_fail_reply(run, reply, "LIST");
			return;
		}
		if (--st->pending > 0)
			return;
		if (!st->listed) {
			action_fail(run, ACTION_ERR_NOTFOUND, "RENAME %s: no such mailbox", path);
			return;
		}
		run->step = MB_MAIN;
		mbox_send(run, "RENAME", path, newpath);
		return;
	case MB_MAIN:
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "RENAME %s to %s", path, newpath);
			action_fail_mailbox(run, reply, path, what);
			return;
		}
		run->step = MB_SUBSCRIPTIONS;
		for (i = 0; i < json_array_size(st->subscribed); i++) {
			const char *old = json_string_value(json_array_get(st->subscribed, i));
			char *moved = xasprintf("%s%s", newpath, old + plen);

			if (mbox_send(run, "UNSUBSCRIBE", old, NULL) == 0 &&
			    mbox_send(run, "SUBSCRIBE", moved, NULL) == 0)
				st->pending += 2;
			free(moved);
			if (run->finished)
				return;
		}
		break;
	case MB_SUBSCRIPTIONS:
		if (reply->status != IMAP_STATUS_OK)
			st->sub_failures++;
		st->pending--;
		break;
	}
	if (st->pending > 0)
		return;
	if (st->sub_failures > 0)
		log_warn("rename-mailbox %s: renamed, but %u subscription change%s failed",
		    path, st->sub_failures, st->sub_failures == 1 ? "" : "s");
	action_finish(run, json_pack("{s:o, s:o}", "path", json_str(path), "newPath",
	    json_str(newpath)));
}

static const struct action_param rename_params[] = {
	{ "path", APT_MAILBOX, AP_REQUIRED, NULL, "the mailbox's path" },
	{ "newPath", APT_MAILBOX, AP_REQUIRED, NULL, "its new path" },
	{ NULL }
};

const struct action_entry act_rename_mailbox_entry = {
	.name = "rename-mailbox",
	.summary = "rename a mailbox (its subscriptions follow)",
	.params = rename_params,
	.start = rename_start,
	.step = rename_step,
	.untagged = rename_untagged,
	.state_size = sizeof(struct mbox_state),
	.state_free = mbox_free,
};

static void
delete_mailbox_start(struct action_run *run)
{
	action_deselect(run);
	run->step = MB_MAIN;
	mbox_send(run, "DELETE", action_param_str(run, "path"), NULL);
}

static void
delete_mailbox_step(struct action_run *run, const struct imap_reply *reply)
{
	const char *path = action_param_str(run, "path");
	char what[300];

	if (run->step == MB_MAIN) {
		if (reply->status != IMAP_STATUS_OK) {
			snprintf(what, sizeof(what), "DELETE %s", path);
			action_fail_mailbox(run, reply, path, what);
			return;
		}
		/* servers keep subscriptions of deleted mailboxes; a NO here
		 * only means it was not subscribed */
		run->step = MB_SUBSCRIPTIONS;
		mbox_send(run, "UNSUBSCRIBE", path, NULL);
		return;
	}
	action_finish(run, json_pack("{s:o, s:b}", "path", json_str(path), "deleted", 1));
}

static const struct action_param delete_mailbox_params[] = {
	{ "path", APT_MAILBOX, AP_REQUIRED, NULL, "the mailbox's path" },
	{ NULL }
};

const struct action_entry act_delete_mailbox_entry = {
	.name = "delete-mailbox",
	.summary = "delete a mailbox and the messages in it, and unsubscribe it",
	.params = delete_mailbox_params,
	.start = delete_mailbox_start,
	.step = delete_mailbox_step,
	.state_size = sizeof(struct mbox_state),
	.state_free = mbox_free,
};
