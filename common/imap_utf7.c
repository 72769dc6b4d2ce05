/* imap_utf7: see imap_utf7.h */
#include "imap_utf7.h"

#include <stdint.h>
#include <stdlib.h>

#include "util.h"

static const char mbase64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* True for the bytes that represent themselves in modified UTF-7. */
static bool
is_direct(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Value of a modified base64 character, or -1. */
static int
mbase64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/*
 * Decodes one strict UTF-8 sequence at s (NUL-terminated). Returns its
 * length and the code point in *cp_r, or 0 when it is not valid UTF-8.
 */
static size_t
utf8_decode(const unsigned char *s, uint32_t *cp_r)
{
	uint32_t cp, min;
	size_t n, i;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	/* A NUL terminator fails the continuation test, so this never reads
	 * past the end of the string. */
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

static void
utf8_encode(struct str *out, uint32_t cp)
{
	char buf[4];
	size_t n;

	if (cp < 0x80) {
		buf[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		buf[0] = (char)(0xc0 | (cp >> 6));
		buf[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | (cp >> 12));
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		buf[0] = (char)(0xf0 | (cp >> 18));
		buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	str_append_n(out, buf, n);
}

/* Base64 bit accumulator: never holds more than 16 + 6 bits. */
struct b64_state {
	uint32_t bits;
	unsigned nbits;
};

static void
b64_put_unit(struct b64_state *st, struct str *out, uint16_t unit)
{
	st->bits = (st->bits << 16) | unit;
	st->nbits += 16;
	while (st->nbits >= 6) {
		st->nbits -= 6;
		str_append_c(out, mbase64[(st->bits >> st->nbits) & 0x3f]);
	}
	st->bits &= (1u << st->nbits) - 1;
}

static void
b64_flush(struct b64_state *st, struct str *out)
{
	if (st->nbits > 0)
		str_append_c(out, mbase64[(st->bits << (6 - st->nbits)) & 0x3f]);
	st->bits = 0;
	st->nbits = 0;
}

char *
imap_utf8_to_utf7(const char *utf8)
{
	const unsigned char *p = (const unsigned char *)utf8;
	struct b64_state st;
	struct str out;
	uint32_t cp;
	size_t n;

	str_init(&out);
	str_append_n(&out, "", 0);
	while (*p != '\0') {
		if (is_direct(*p)) {
			if (*p == '&')
				str_append(&out, "&-");
			else
				str_append_c(&out, (char)*p);
			p++;
			continue;
		}

		/* One shifted sequence for the whole run of characters that
		 * cannot be written directly. */
		str_append_c(&out, '&');
		st.bits = 0;
		st.nbits = 0;
		while (*p != '\0' && !is_direct(*p)) {
			if ((n = utf8_decode(p, &cp)) == 0) {
				str_free(&out);
				return NULL;
			}
			p += n;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				b64_put_unit(&st, &out, (uint16_t)(0xd800 | (cp >> 10)));
				b64_put_unit(&st, &out, (uint16_t)(0xdc00 | (cp & 0x3ff)));
			} else {
				b64_put_unit(&st, &out, (uint16_t)cp);
			}
		}
		b64_flush(&st, &out);
		str_append_c(&out, '-');
	}
	return str_steal(&out);
}

/*
 * Decodes the shifted sequence starting at *pp (just after "&", at least
 * one base64 character before "-"). Appends UTF-8 to out and moves *pp
 * past the closing "-". Returns 0, or -1 when it is invalid.
 */
static int
decode_shifted(const unsigned char **pp, struct str *out)
{
	const unsigned char *p = *pp;
	uint32_t bits = 0, high = 0, cp;
	unsigned nbits = 0;
	uint16_t unit;
	int v;

	for (; *p != '-'; p++) {
		if ((v = mbase64_value(*p)) < 0)
			return -1;      /* also the NUL of an unclosed "&" */
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		unit = (uint16_t)(bits >> nbits);
		bits &= (1u << nbits) - 1;

		if (high != 0) {
			if (unit < 0xdc00 || unit > 0xdfff)
				return -1;
			cp = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
			high = 0;
		} else if (unit >= 0xd800 && unit <= 0xdbff) {
			high = unit;
			continue;
		} else if (unit >= 0xdc00 && unit <= 0xdfff) {
			return -1;
		} else if (unit == 0 || (unit >= 0x20 && unit <= 0x7e)) {
			/* NUL, or printable ASCII that must be direct. */
			return -1;
		} else {
			cp = unit;
		}
		utf8_encode(out, cp);
	}
	/* An unpaired high surrogate, a whole unused base64 character or
	 * non-zero padding bits. */
	if (high != 0 || nbits >= 6 || bits != 0)
		return -1;
	*pp = p + 1;
	return 0;
}

char *
imap_utf7_to_utf8(const char *utf7)
{
	const unsigned char *p = (const unsigned char *)utf7;
	struct str out;
	bool after_shift = false;

	str_init(&out);
	str_append_n(&out, "", 0);
	while (*p != '\0') {
		if (!is_direct(*p))
			goto fail;
		if (*p != '&') {
			str_append_c(&out, (char)*p++);
			after_shift = false;
			continue;
		}
		p++;
		if (*p == '-') {
			str_append_c(&out, '&');
			p++;
			after_shift = false;
			continue;
		}
		/* "&AGE-&AGI-" should have been one shifted sequence. */
		if (after_shift || decode_shifted(&p, &out) == -1)
			goto fail;
		after_shift = true;
	}
	return str_steal(&out);

fail:
	str_free(&out);
	return NULL;
}
