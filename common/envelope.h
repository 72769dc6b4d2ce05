/*
 * envelope: an IMAP ENVELOPE (RFC 3501 section 7.4.2) as the SPEC
 * "envelope" JSON object, a FLAGS list as a JSON array, and IMAP date-time
 * conversion.
 *
 * Needs mime_init() (RFC 2047 and RFC 5322 dates go through GMime).
 */
#ifndef IMAPHOOK_ENVELOPE_H
#define IMAPHOOK_ENVELOPE_H

#include <stdbool.h>

#include <jansson.h>

#include "imap_parser.h"

/*
 * env is the ENVELOPE list (date subject from sender reply-to to cc bcc
 * in-reply-to message-id). Returns a new object (caller owns the
 * reference), never NULL, always with every key:
 *   date       ISO 8601 UTC from the RFC 5322 date, null if NIL/unparseable
 *   subject    RFC 2047 decoded (raw 8-bit: UTF-8, else windows-1252)
 *   messageId, inReplyTo   as given
 *   from, sender, replyTo, to, cc, bcc
 *              [{"name": decoded or null, "address": "mailbox@host"}]
 * A NIL or malformed string field is null, a NIL or malformed address
 * list []; a NULL or non-list env gives every field that way. Group
 * markers are skipped and their members listed. An address with host NIL
 * that no group end follows is a domain-less address ("address":
 * "mailbox").
 */
json_t *envelope_to_json(const struct imap_arg *env);

/*
 * The flags of an IMAP list argument as a new JSON array of strings ([]
 * for anything but a list). drop_recent leaves out \Recent, which belongs
 * to the session that fetched, not to the message.
 */
json_t *flags_to_json(const struct imap_arg *list, bool drop_recent);

/*
 * Converts an IMAP date-time "26-Nov-2026 00:40:29 +0000" (day may be
 * space-padded or one digit, month case-insensitive, any zone offset) to
 * UTC "2026-11-26T00:40:29Z" in buf. Returns 0, or -1 when s is malformed
 * or out of range (buf is then "").
 */
int imap_datetime_to_iso(const char *s, char buf[static 21]);

#endif
