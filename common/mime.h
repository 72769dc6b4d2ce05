/*
 * mime: MIME parsing with GMime 3 into the SPEC "content" object, RFC 2047
 * header decoding, RFC 5322 dates, and a streaming body-part decoder for
 * `download --part`.
 *
 * Every function here copes with hostile input: whatever the bytes, the
 * result is well-formed (strings are valid UTF-8, JSON objects have every
 * key). Nothing aborts except on out-of-memory.
 */
#ifndef IMAPHOOK_MIME_H
#define IMAPHOOK_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util.h"

/* MIME nesting deeper than this is ignored by mime_content_to_json(). */
#define MIME_MAX_DEPTH 64

/* g_mime_init()/g_mime_shutdown(): each program calls mime_init() once
 * before any other function here (envelope.h's included) and
 * mime_shutdown() at the end. Calls nest, but GMime cannot be initialised
 * again once the count is back to zero: tests set it up once per process
 * (Check: an unchecked fixture). */
void mime_init(void);
void mime_shutdown(void);

/* Unfolds raw and decodes its RFC 2047 encoded-words to UTF-8; 8-bit text
 * outside encoded-words is read as UTF-8 when valid, else as windows-1252.
 * Returns a malloc'd string (caller frees); never NULL for non-NULL raw,
 * NULL for NULL raw. */
char *mime_decode_header_text(const char *raw);

/* Converts an RFC 5322 date ("Thu, 26 Nov 2026 01:40:00 +0100", obsolete
 * forms included) to UTC "2026-11-26T00:40:00Z" in buf. Returns 0, or -1
 * when s is NULL or not a date (buf is then ""). */
int mime_date_to_iso(const char *s, char buf[static 21]);

/*
 * Parses the raw RFC 822 message raw[0..len) into a new JSON object
 * (caller owns the reference):
 *   {"headers":[{"name","value"}], "text", "html", "attachments":[...],
 *    "truncated": truncated}
 * headers: every top-level header in order, unfolded, RFC 2047 decoded.
 * text/html: the first text/plain (text/html) leaf that is not an
 * attachment (no filename, disposition not "attachment"), converted to
 * UTF-8 from its charset (missing or unknown: UTF-8 when valid, else
 * windows-1252); null when there is none.
 * attachments: every other leaf, and each message/rfc822 part as a whole,
 * as {"partId","filename","contentType","size","disposition","contentId"};
 * partId is the IMAP body part number (RFC 3501 BODY[section]), size the
 * decoded length in bytes. truncated says raw was cut at a size cap; the
 * parse copes with a cut message either way. Parts nested deeper than
 * MIME_MAX_DEPTH are left out. Never NULL.
 */
json_t *mime_content_to_json(const char *raw, size_t len, bool truncated);

/*
 * Streaming Content-Transfer-Encoding decoder. The encoding name is
 * case-insensitive: "base64", "quoted-printable" and "x-uuencode" (or
 * "uuencode", "x-uue") decode; "7bit", "8bit", "binary", anything unknown
 * and NULL pass bytes through. Input may be split anywhere (inside a base64
 * quantum or a QP "=XX"); the output does not depend on the split. Broken
 * input decodes what it can: invalid base64 characters are skipped, an
 * unpadded base64 tail is decoded, and base64 stops at its padding.
 */
struct mime_decoder;

/* Returns a new decoder (caller frees with mime_decoder_free()). */
struct mime_decoder *mime_decoder_new(const char *content_transfer_encoding);
/* Decodes in[0..len) and appends the result to out. */
void mime_decoder_feed(struct mime_decoder *dec, const void *in, size_t len,
    struct str *out);
/* Appends whatever the decoder still holds; call once at the end. */
void mime_decoder_finish(struct mime_decoder *dec, struct str *out);
/* Frees *dec (NULL is fine) and sets it to NULL. */
void mime_decoder_free(struct mime_decoder **dec);

#endif
