/* event: see event.h */
#include "event.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "envelope.h"
#include "jsonutil.h"
#include "mime.h"
#include "util.h"

bool
event_fetch_parse(const struct imap_resp *resp, struct event_fetch *f_r)
{
	const struct imap_arg *items;
	uint32_t n, i;

	memset(f_r, 0, sizeof(*f_r));
	if (resp->argc < 1 || !imap_arg_get_list(&resp->args[0], &items, &n))
		return false;
	for (i = 0; i + 1 < n; i += 2) {
		const char *key;
		size_t klen;

		if (!imap_arg_get_astring(&items[i], &key, &klen))
			continue;
		if (strcasecmp(key, "UID") == 0)
			imap_arg_get_u32(&items[i + 1], &f_r->uid);
		else if (strcasecmp(key, "FLAGS") == 0)
			f_r->flags = &items[i + 1];
		else if (strcasecmp(key, "ENVELOPE") == 0)
			f_r->envelope = &items[i + 1];
		else if (strcasecmp(key, "INTERNALDATE") == 0)
			imap_arg_get_nstring(&items[i + 1], &f_r->internaldate, &klen);
		else if (strcasecmp(key, "RFC822.SIZE") == 0)
			f_r->have_size = imap_arg_get_u64(&items[i + 1], &f_r->size) == 0;
		else if (strncasecmp(key, "BODY[]", 6) == 0)
			f_r->body = &items[i + 1];
	}
	return true;
}

json_t *
event_base(const struct event_origin *o, const char *type, const char *id)
{
	char ts[21];

	format_iso8601(time(NULL), ts);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "type", type, "id", id,
	    "timestamp", ts, "trigger", o->trigger, "connection", o->connection,
	    "mailbox", json_str(o->mailbox));
}

json_t *
event_email_new(const struct event_origin *o, uint32_t uidvalidity,
    const struct event_fetch *f, size_t max_content)
{
	char id[300], iso[21];
	json_t *ev;

	snprintf(id, sizeof(id), "%s:%u:%u", o->trigger, uidvalidity, f->uid);
	ev = event_base(o, "email.new", id);
	json_object_set_new(ev, "uidValidity", json_integer(uidvalidity));
	json_object_set_new(ev, "uid", json_integer(f->uid));
	json_object_set_new(ev, "flags", flags_to_json(f->flags, true));
	json_object_set_new(ev, "size",
	    f->have_size ? json_integer((json_int_t)f->size) : json_null());
	json_object_set_new(ev, "internalDate",
	    f->internaldate != NULL && imap_datetime_to_iso(f->internaldate, iso) == 0 ?
	    json_string(iso) : json_null());
	json_object_set_new(ev, "envelope", envelope_to_json(f->envelope));
	if (max_content > 0) {
		const char *raw = NULL;
		size_t len = 0;
		bool truncated;

		if (f->body != NULL)
			imap_arg_get_nstring(f->body, &raw, &len);
		truncated = f->have_size ? f->size > len : len >= max_content;
		json_object_set_new(ev, "content",
		    mime_content_to_json(raw != NULL ? raw : "", len, truncated));
	}
	return ev;
}

json_t *
event_mailbox_reset(const struct event_origin *o, uint32_t previous, uint32_t uidvalidity)
{
	char id[300];
	json_t *ev;

	snprintf(id, sizeof(id), "%s:%u:reset", o->trigger, uidvalidity);
	ev = event_base(o, "mailbox.reset", id);
	json_object_set_new(ev, "uidValidity", json_integer(uidvalidity));
	json_object_set_new(ev, "previousUidValidity", json_integer(previous));
	return ev;
}
