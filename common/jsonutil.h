/*
 * jsonutil: jansson helpers for text that comes from the network. jansson
 * refuses strings that are not valid UTF-8; these repair them instead
 * (invalid sequences and NUL bytes become U+FFFD), so a bad byte from a
 * server never loses an event.
 */
#ifndef IMAPHOOK_JSONUTIL_H
#define IMAPHOOK_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* True when s[0..len) is valid UTF-8 without NUL bytes. */
bool utf8_valid(const char *s, size_t len);
/* Returns a malloc'd NUL-terminated copy with invalid sequences and NULs
 * replaced by U+FFFD; *len_r (may be NULL) gets its length. */
char *utf8_repair(const char *s, size_t len, size_t *len_r);

/* A JSON string from len bytes, repaired as above. Never NULL. */
json_t *json_str_n(const char *s, size_t len);
/* Same for a NUL-terminated string; NULL s gives JSON null. */
json_t *json_str(const char *s);

#endif
