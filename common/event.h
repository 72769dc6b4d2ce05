/*
 * event: the JSON bodies of the New Emails trigger's webhook requests
 * (SPEC.md "Webhook request"), built from what the server answered.
 * I/O-free; the daemon's trigger decides when and where they go.
 */
#ifndef IMAPHOOK_EVENT_H
#define IMAPHOOK_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "imap_parser.h"

/* Where an event comes from: borrowed strings. */
struct event_origin {
	const char *trigger;
	const char *connection;
	const char *mailbox;
};

/* The items of one "* n FETCH (...)" answer; pointers into the response. */
struct event_fetch {
	uint32_t uid;                   /* 0 when absent */
	const struct imap_arg *flags;   /* NULL when absent, as the others */
	const struct imap_arg *envelope;
	const struct imap_arg *body;    /* BODY[] or BODY[]<0> */
	const char *internaldate;
	uint64_t size;
	bool have_size;
};

/*
 * Reads the items of an untagged FETCH response into *f_r (unknown items
 * are skipped). Returns false when resp holds no item list.
 */
bool event_fetch_parse(const struct imap_resp *resp, struct event_fetch *f_r);

/* {"type", "id", "timestamp" (now), "trigger", "connection", "mailbox"}:
 * a new reference. */
json_t *event_base(const struct event_origin *o, const char *type, const char *id);

/*
 * The email.new event of f (f->uid and f->envelope set) with id
 * "<trigger>:<uidvalidity>:<uid>"; with a "content" object when
 * max_content > 0, the size BODY.PEEK[]<0.max_content> asked for (the
 * body counts as truncated when shorter than RFC822.SIZE). A new reference.
 */
json_t *event_email_new(const struct event_origin *o, uint32_t uidvalidity,
    const struct event_fetch *f, size_t max_content);

/* The mailbox.reset event of a UIDVALIDITY change: a new reference. */
json_t *event_mailbox_reset(const struct event_origin *o, uint32_t previous,
    uint32_t uidvalidity);

#endif
