/* jsonutil: see jsonutil.h */
#include "jsonutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Length of the valid UTF-8 sequence at s (at most avail bytes), or 0. */
static size_t
utf8_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool
utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		n = utf8_seq_len(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

char *
utf8_repair(const char *s, size_t len, size_t *len_r)
{
	const unsigned char *p = (const unsigned char *)s;
	struct str out;
	size_t i = 0, n;

	str_init(&out);
	str_append_n(&out, "", 0);
	while (i < len) {
		n = utf8_seq_len(p + i, len - i);
		if (n == 0) {
			str_append(&out, "\xef\xbf\xbd");
			i++;
		} else {
			str_append_n(&out, p + i, n);
			i += n;
		}
	}
	if (len_r != NULL)
		*len_r = out.len;
	return str_steal(&out);
}

json_t *
json_str_n(const char *s, size_t len)
{
	json_t *j;
	char *fixed;
	size_t flen;

	if (s == NULL || len == 0)
		return json_string("");
	if (utf8_valid(s, len)) {
		j = json_stringn_nocheck(s, len);
	} else {
		fixed = utf8_repair(s, len, &flen);
		j = json_stringn_nocheck(fixed, flen);
		free(fixed);
	}
	if (j == NULL)
		abort();        /* jansson only fails on out-of-memory here */
	return j;
}

json_t *
json_str(const char *s)
{
	if (s == NULL)
		return json_null();
	return json_str_n(s, strlen(s));
}
