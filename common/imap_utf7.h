/*
 * imap_utf7: mailbox names between UTF-8 (what users see and type) and
 * IMAP's modified UTF-7 (RFC 3501 section 5.1.3, what goes on the wire).
 *
 * Printable US-ASCII (0x20-0x7e) stands for itself, except "&", which is
 * written "&-". Everything else is UTF-16 in a modified base64 alphabet
 * ("," instead of "/", no padding) between "&" and "-".
 *
 * Decoding is strict: only the canonical encoding that imap_utf8_to_utf7()
 * produces is accepted, so a name decoded from the server encodes back to
 * exactly the same bytes. Refused as invalid: raw 8-bit or control bytes,
 * characters outside the alphabet, "&" without its closing "-", left-over
 * bits that are not zero (or a whole unused base64 character), unpaired
 * surrogates, U+0000, a shifted sequence that encodes printable ASCII
 * ("&AGE-" for "a") and two shifted sequences back to back ("&AGE-&AGI-",
 * which should have been one). "&-" after a shifted sequence is a plain
 * "&" and is fine.
 */
#ifndef IMAPHOOK_IMAP_UTF7_H
#define IMAPHOOK_IMAP_UTF7_H

/* Encodes a UTF-8 mailbox name. Returns a malloc'd string (caller frees),
 * or NULL when utf8 is not valid UTF-8 (overlong forms, surrogates and
 * code points above U+10FFFF included). */
char *imap_utf8_to_utf7(const char *utf8);

/* Decodes a modified UTF-7 mailbox name. Returns a malloc'd UTF-8 string
 * (caller frees), or NULL when utf7 is not a valid, canonical encoding
 * (see above). */
char *imap_utf7_to_utf8(const char *utf7);

#endif
