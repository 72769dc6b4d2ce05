/*
 * download: the raw RFC 822 bytes of a message, or the decoded bytes of
 * one body part, streamed to run->sink in bounded partial fetches
 * (BODY.PEEK[]<offset.length>) so that a large message never sits whole in
 * memory. A part is decoded by the server (BINARY.PEEK) when it can, else
 * here (mime_decoder) from the Content-Transfer-Encoding that
 * BODYSTRUCTURE names. Everything is PEEK on an EXAMINEd mailbox: \Seen is
 * never set. A sink that says it is full (ACTION_SINK_FULL: the HTTP
 * client reads slower than the server sends) gets no further chunk until
 * it calls resume: the download waits on its connection.
 */
#include "action.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "util.h"

/* Bytes per partial fetch. */
#define DOWNLOAD_CHUNK (1024 * 1024)

enum download_step {
	DL_EXAMINE,
	DL_META,
	DL_CHUNK,
};

struct download_state {
	uint32_t exists;        /* messages in the mailbox (EXAMINE) */
	uint32_t uid;           /* of the message, once known */
	/* "" (whole message) or the part number (checked by the table) */
	char section[ACTION_PARTID_MAX + 1];
	char ctype[128];        /* what the bytes are */
	char encoding[64];      /* the part's Content-Transfer-Encoding */
	bool part_missing;      /* BODYSTRUCTURE has no such part */
	bool binary;            /* BINARY.PEEK: the server decodes */
	struct mime_decoder *dec;
	uint64_t offset;        /* of the next chunk */
	size_t got;             /* bytes of the current chunk */
	bool got_item;          /* the current chunk's FETCH arrived */
	bool write_failed;
	int write_errno;
	bool sink_full;         /* the sink said ACTION_SINK_FULL: no resume yet */
	bool waiting;           /* the next chunk waits for resume */
	struct str out;         /* decoded bytes on their way to the sink */
};

static void
download_meta(struct action_run *run)
{
	struct imap_cmd *cmd = imap_cmd_new(run->conn);
	const char *items = action_param_has(run, "part") ? "(UID BODYSTRUCTURE)" : "(UID)";

	if (action_param_has(run, "uid"))
		imap_cmd_addf(cmd, "UID FETCH %lld %s",
		    (long long)action_param_int(run, "uid", 0), items);
	else
		imap_cmd_addf(cmd, "FETCH %lld %s",
		    (long long)action_param_int(run, "index", 0), items);
	action_send(run, cmd);
}

static void
download_start(struct action_run *run)
{
	struct download_state *st = run->state;

	str_init(&st->out);
	if (action_param_has(run, "part"))
		snprintf(st->section, sizeof(st->section), "%s", action_param_str(run, "part"));
	snprintf(st->ctype, sizeof(st->ctype), "message/rfc822");
	run->step = DL_EXAMINE;
	action_select(run, action_param_str(run, "mailbox"), true);
}

/* BODYSTRUCTURE */

static bool
body_is_multipart(const struct imap_arg *body, const struct imap_arg **items_r,
    uint32_t *n_r)
{
	return imap_arg_get_list(body, items_r, n_r) && *n_r > 0 &&
	    (*items_r)[0].type == IMAP_ARG_LIST;
}

static bool
body_type_is(const struct imap_arg *items, uint32_t n, const char *type, const char *sub)
{
	const char *t, *s;
	size_t tl, sl;

	return n >= 2 && imap_arg_get_astring(&items[0], &t, &tl) &&
	    imap_arg_get_astring(&items[1], &s, &sl) && strcasecmp(t, type) == 0 &&
	    strcasecmp(s, sub) == 0;
}

/*
 * The n-th (1-based) child part of body: of a multipart its n-th part; of
 * the message's own non-multipart body only part 1, the body itself; of a
 * message/rfc822 part the parts of the message it holds. NULL if none.
 */
static const struct imap_arg *
body_child(const struct imap_arg *body, bool root, uint32_t n)
{
	const struct imap_arg *items, *inner;
	uint32_t count, i;

	if (body_is_multipart(body, &items, &count)) {
		for (i = 0; i < count && items[i].type == IMAP_ARG_LIST; i++)
			if (i + 1 == n)
				return &items[i];
		return NULL;
	}
	if (root)
		return n == 1 ? body : NULL;
	if (!imap_arg_get_list(body, &items, &count) ||
	    !body_type_is(items, count, "message", "rfc822") || count < 9)
		return NULL;
	inner = &items[8];
	if (body_is_multipart(inner, &items, &count))
		return body_child(inner, false, n);
	return n == 1 && inner->type == IMAP_ARG_LIST ? inner : NULL;
}

/* Finds the part st->section in BODYSTRUCTURE bs and records its type and
 * encoding; sets part_missing when there is no such part. */
static void
download_find_part(struct download_state *st, const struct imap_arg *bs)
{
	const struct imap_arg *node = bs, *items;
	const char *p = st->section, *t, *s, *e;
	char *q;
	size_t tl, sl, el;
	uint32_t n, count;
	unsigned depth = 0;

	while (*p != '\0') {
		size_t len = strcspn(p, ".");

		if (parse_u32_n(p, len, &n) < 0 || ++depth > ACTION_PARTID_DEPTH_MAX ||
		    (node = body_child(node, node == bs, n)) == NULL) {
			st->part_missing = true;
			return;
		}
		p += len;
		if (*p == '.')
			p++;
	}
	if (body_is_multipart(node, &items, &count)) {
		for (n = 0; n < count && items[n].type == IMAP_ARG_LIST; n++)
			;
		if (n < count && imap_arg_get_astring(&items[n], &s, &sl))
			snprintf(st->ctype, sizeof(st->ctype), "multipart/%.*s", (int)sl, s);
		else
			snprintf(st->ctype, sizeof(st->ctype), "multipart/mixed");
	} else if (imap_arg_get_list(node, &items, &count) && count >= 7 &&
	    imap_arg_get_astring(&items[0], &t, &tl) &&
	    imap_arg_get_astring(&items[1], &s, &sl)) {
		snprintf(st->ctype, sizeof(st->ctype), "%.*s/%.*s", (int)tl, t, (int)sl, s);
		if (imap_arg_get_astring(&items[5], &e, &el))
			snprintf(st->encoding, sizeof(st->encoding), "%.*s", (int)el, e);
	} else {
		snprintf(st->ctype, sizeof(st->ctype), "application/octet-stream");
	}
	for (q = st->ctype; *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
}

/* chunks */

static void
download_send_chunk(struct action_run *run)
{
	struct download_state *st = run->state;
	struct imap_cmd *cmd = imap_cmd_new(run->conn);

	st->got = 0;
	st->got_item = false;
	imap_cmd_addf(cmd, "UID FETCH %u (%s.PEEK[%s]<%llu.%u>)", st->uid,
	    st->binary ? "BINARY" : "BODY", st->section, (unsigned long long)st->offset,
	    DOWNLOAD_CHUNK);
	action_send(run, cmd);
}

static void
download_flush(struct action_run *run)
{
	struct download_state *st = run->state;
	int r;

	if (st->out.len > 0 && !st->write_failed) {
		r = run->sink.write == NULL ? -1 :
		    run->sink.write(run->sink.arg, st->out.data, st->out.len);
		if (r < 0) {
			st->write_failed = true;
			st->write_errno = run->sink.write == NULL ? EPIPE : errno;
		} else if (r == ACTION_SINK_FULL) {
			st->sink_full = true;
		}
	}
	str_reset(&st->out);
}

/* Starts the transfer once the message (and part) are known. */
static void
download_begin(struct action_run *run)
{
	struct download_state *st = run->state;
	bool encoded = strcasecmp(st->encoding, "base64") == 0 ||
	    strcasecmp(st->encoding, "quoted-printable") == 0;

	run->content_type = st->ctype;
	st->binary = st->section[0] != '\0' && encoded &&
	    imap_conn_has_cap(run->conn, "BINARY");
	if (st->section[0] != '\0' && !st->binary)
		st->dec = mime_decoder_new(st->encoding[0] != '\0' ? st->encoding : NULL);
	st->offset = 0;
	run->step = DL_CHUNK;
	download_send_chunk(run);
}

static void
download_untagged(struct action_run *run, const struct imap_resp *resp)
{
	struct download_state *st = run->state;
	const struct imap_arg *a;
	const char *data;
	size_t len;
	uint32_t uid;

	if (run->step == DL_EXAMINE) {
		if (resp->name != NULL && strcmp(resp->name, "EXISTS") == 0 &&
		    resp->has_number)
			st->exists = resp->number;
		return;
	}
	a = action_fetch_item(resp, "UID", false, NULL);
	if (a == NULL || imap_arg_get_u32(a, &uid) < 0 || uid == 0)
		return;
	if (run->step == DL_META) {
		if (action_param_has(run, "uid") &&
		    (json_int_t)uid != action_param_int(run, "uid", 0))
			return;
		if (!action_param_has(run, "uid") &&
		    (json_int_t)resp->number != action_param_int(run, "index", 0))
			return;
		st->uid = uid;
		if (st->section[0] != '\0') {
			a = action_fetch_item(resp, "BODYSTRUCTURE", false, NULL);
			if (a != NULL)
				download_find_part(st, a);
			else
				st->part_missing = true;
		}
		return;
	}
	if (uid != st->uid || st->got_item)
		return;
	a = action_fetch_item(resp, st->binary ? "BINARY[" : "BODY[", true, NULL);
	if (a == NULL)
		return;
	st->got_item = true;
	if (!imap_arg_get_nstring(a, &data, &len) || data == NULL)
		return;         /* NIL: nothing there */
	st->got = len;
	if (st->dec != NULL)
		mime_decoder_feed(st->dec, data, len, &st->out);
	else
		str_append_n(&st->out, data, len);
	download_flush(run);
}

static void
download_step(struct action_run *run, const struct imap_reply *reply)
{
	struct download_state *st = run->state;
	const char *mailbox = action_param_str(run, "mailbox");

	switch (run->step) {
	case DL_EXAMINE:
		if (!action_select_done(run, reply, mailbox, true))
			return;
		if (!action_param_has(run, "uid") &&
		    action_param_int(run, "index", 0) > (json_int_t)st->exists) {
			action_fail(run, ACTION_ERR_NOTFOUND, "%s holds %u message%s: no "
			    "message %lld", mailbox, st->exists, st->exists == 1 ? "" : "s",
			    (long long)action_param_int(run, "index", 0));
			return;
		}
		run->step = DL_META;
		download_meta(run);
		return;
	case DL_META:
		if (reply->status != IMAP_STATUS_OK) {
			action_fail_reply(run, reply, "FETCH");
			return;
		}
		if (st->uid == 0) {
			action_fail(run, ACTION_ERR_NOTFOUND, "%s: no message with UID %lld",
			    mailbox, (long long)action_param_int(run, "uid", 0));
			return;
		}
		if (st->part_missing) {
			action_fail(run, ACTION_ERR_NOTFOUND, "%s: message UID %u has no part %s",
			    mailbox, st->uid, st->section);
			return;
		}
		download_begin(run);
		return;
	case DL_CHUNK:
		break;
	}
	if (reply->status != IMAP_STATUS_OK) {
		if (st->binary && st->offset == 0 && reply->status == IMAP_STATUS_NO) {
			/* [UNKNOWN-CTE] and the like: decode here instead */
			st->binary = false;
			st->dec = mime_decoder_new(st->encoding);
			download_send_chunk(run);
			return;
		}
		action_fail_reply(run, reply, "FETCH");
		return;
	}
	if (st->write_failed) {
		action_fail(run, ACTION_ERR_REFUSED, "writing the message: %s",
		    strerror(st->write_errno));
		return;
	}
	if (!st->got_item) {
		action_fail(run, ACTION_ERR_NOTFOUND, "%s: message UID %u has gone", mailbox,
		    st->uid);
		return;
	}
	if (st->got == DOWNLOAD_CHUNK) {
		st->offset += DOWNLOAD_CHUNK;
		if (st->sink_full)
			st->waiting = true;     /* download_resume sends it */
		else
			download_send_chunk(run);
		return;
	}
	if (st->dec != NULL)
		mime_decoder_finish(st->dec, &st->out);
	download_flush(run);
	if (st->write_failed) {
		action_fail(run, ACTION_ERR_REFUSED, "writing the message: %s",
		    strerror(st->write_errno));
		return;
	}
	action_finish(run, NULL);
}

/* The sink can take more: the next chunk goes out if it was waiting. */
static void
download_resume(struct action_run *run)
{
	struct download_state *st = run->state;

	st->sink_full = false;
	if (!st->waiting || run->finished)
		return;
	st->waiting = false;
	download_send_chunk(run);
}

static void
download_free(struct action_run *run)
{
	struct download_state *st = run->state;

	mime_decoder_free(&st->dec);
	str_free(&st->out);
}

static int
download_check(json_t *params, bool seq ATTR_UNUSED, struct action_error *err)
{
	json_t *uid = json_object_get(params, "uid"), *index = json_object_get(params, "index");
	const char *name = uid != NULL ? "uid" : "index";
	json_t *v = uid != NULL ? uid : index;

	if ((uid == NULL) == (index == NULL)) {
		snprintf(err->msg, sizeof(err->msg), "download: give uid or index, %s",
		    uid == NULL ? "one of them" : "not both");
		return -1;
	}
	if (json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)UINT32_MAX) {
		snprintf(err->msg, sizeof(err->msg), "download: parameter \"%s\" must be "
		    "between 1 and %u", name, UINT32_MAX);
		return -1;
	}
	return 0;
}

static const struct action_param download_params[] = {
	{ "mailbox", APT_MAILBOX, AP_REQUIRED, NULL, "mailbox path, e.g. INBOX or Archive/2026" },
	{ "uid", APT_INT, 0, NULL, "the message's UID" },
	{ "index", APT_INT, 0, NULL, "or its position: 1 is the oldest message" },
	{ "part", APT_PARTID, 0, NULL, "only this body part, decoded (e.g. 2 or 1.2)" },
	{ NULL }
};

const struct action_entry act_download_entry = {
	.name = "download",
	.summary = "write a message's raw bytes, or one decoded body part",
	.params = download_params,
	.check = download_check,
	.start = download_start,
	.step = download_step,
	.untagged = download_untagged,
	.state_size = sizeof(struct download_state),
	.state_free = download_free,
	.raw_output = true,
	.resume = download_resume,
};
