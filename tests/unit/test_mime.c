/* Unit tests for mime: content JSON, header decoding, the part decoder. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "mime.h"
#include "util.h"

#define UTF8_GRUESSE "Gr\xc3\xbc\xc3\x9f" "e"

/* xorshift64*: deterministic test data. */
static uint64_t
rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 0x2545f4914f6cdd1dULL;
}

static void
random_bytes(unsigned char *buf, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(rnd(&seed) >> 56);
}

/* base64 with CRLF every 76 characters, as mailers write it. */
static char *
base64_lines(const void *data, size_t len)
{
	char *flat = base64_encode(data, len);
	size_t i, n = strlen(flat);
	struct str out;

	str_init(&out);
	for (i = 0; i < n; i += 76) {
		str_append_n(&out, flat + i, n - i < 76 ? n - i : 76);
		str_append(&out, "\r\n");
	}
	free(flat);
	return str_steal(&out);
}

/*
 * Shape checks: what every result must look like, whatever the input.
 */

static void
check_utf8(json_t *s)
{
	ck_assert(json_is_string(s));
	ck_assert(utf8_valid(json_string_value(s), json_string_length(s)));
}

static void
check_part_id(const char *id)
{
	const char *p = id;
	unsigned components = 0;

	for (;;) {
		ck_assert_msg(*p >= '1' && *p <= '9', "bad partId \"%s\"", id);
		while (*p >= '0' && *p <= '9')
			p++;
		components++;
		if (*p == '\0')
			break;
		ck_assert_msg(*p == '.', "bad partId \"%s\"", id);
		p++;
	}
	ck_assert_uint_le(components, MIME_MAX_DEPTH);
}

static void
check_shape(json_t *o, bool truncated)
{
	json_t *headers, *atts, *h, *a, *v;
	size_t i;
	char *dump;

	ck_assert_ptr_nonnull(o);
	ck_assert(json_is_object(o));
	ck_assert_uint_eq(json_object_size(o), 5);
	headers = json_object_get(o, "headers");
	ck_assert(json_is_array(headers));
	json_array_foreach(headers, i, h) {
		ck_assert_uint_eq(json_object_size(h), 2);
		check_utf8(json_object_get(h, "name"));
		check_utf8(json_object_get(h, "value"));
	}
	for (i = 0; i < 2; i++) {
		v = json_object_get(o, i == 0 ? "text" : "html");
		ck_assert(v != NULL);
		if (!json_is_null(v))
			check_utf8(v);
	}
	atts = json_object_get(o, "attachments");
	ck_assert(json_is_array(atts));
	json_array_foreach(atts, i, a) {
		ck_assert_uint_eq(json_object_size(a), 6);
		check_utf8(json_object_get(a, "partId"));
		check_part_id(json_string_value(json_object_get(a, "partId")));
		v = json_object_get(a, "filename");
		ck_assert(v != NULL);
		if (!json_is_null(v))
			check_utf8(v);
		v = json_object_get(a, "contentType");
		check_utf8(v);
		ck_assert_ptr_nonnull(strchr(json_string_value(v), '/'));
		v = json_object_get(a, "size");
		ck_assert(json_is_integer(v));
		ck_assert_int_ge(json_integer_value(v), 0);
		v = json_object_get(a, "disposition");
		ck_assert(json_is_null(v) ||
		    (json_is_string(v) && (strcmp(json_string_value(v), "inline") == 0 ||
		    strcmp(json_string_value(v), "attachment") == 0)));
		v = json_object_get(a, "contentId");
		ck_assert(v != NULL);
		if (!json_is_null(v))
			check_utf8(v);
	}
	ck_assert(json_is_boolean(json_object_get(o, "truncated")));
	ck_assert(json_is_true(json_object_get(o, "truncated")) == truncated);
	dump = json_dumps(o, JSON_COMPACT);
	ck_assert_ptr_nonnull(dump);
	free(dump);
}

static json_t *
parse(const char *msg)
{
	json_t *o = mime_content_to_json(msg, strlen(msg), false);

	check_shape(o, false);
	return o;
}

/*
 * A test message from tests/unit/mime/ (under $IMAPHOOK_TOP, else the
 * current directory: make check runs from the top of the tree). The files
 * have LF line ends; they are parsed with CRLF, as IMAP servers send mail.
 */
static json_t *
parse_file(const char *name)
{
	const char *top = getenv("IMAPHOOK_TOP");
	char path[512], *data;
	struct str msg;
	size_t len, i;
	json_t *o;

	snprintf(path, sizeof(path), "%s%stests/unit/mime/%s", top != NULL ? top : "",
	    top != NULL ? "/" : "", name);
	if (read_file(path, 1 << 20, &data, &len) == -1)
		ck_abort_msg("cannot read %s (run from the top of the tree)", path);
	str_init(&msg);
	for (i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			str_append_c(&msg, '\r');
		str_append_c(&msg, data[i]);
	}
	free(data);
	o = mime_content_to_json(msg.data, msg.len, false);
	check_shape(o, false);
	str_free(&msg);
	return o;
}

static const char *
text_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

/* Asserts attachment i; NULL strings mean JSON null. */
static void
check_att(json_t *o, size_t i, const char *part_id, const char *filename,
    const char *ctype, json_int_t size, const char *disposition, const char *cid)
{
	json_t *a = json_array_get(json_object_get(o, "attachments"), i), *v;

	ck_assert_msg(a != NULL, "no attachment %zu", i);
	ck_assert_str_eq(text_of(a, "partId"), part_id);
	v = json_object_get(a, "filename");
	if (filename == NULL)
		ck_assert(json_is_null(v));
	else
		ck_assert_str_eq(text_of(a, "filename"), filename);
	ck_assert_str_eq(text_of(a, "contentType"), ctype);
	if (size >= 0)
		ck_assert_int_eq(json_integer_value(json_object_get(a, "size")), size);
	v = json_object_get(a, "disposition");
	if (disposition == NULL)
		ck_assert(json_is_null(v));
	else
		ck_assert_str_eq(text_of(a, "disposition"), disposition);
	v = json_object_get(a, "contentId");
	if (cid == NULL)
		ck_assert(json_is_null(v));
	else
		ck_assert_str_eq(text_of(a, "contentId"), cid);
}

static size_t
n_atts(json_t *o)
{
	return json_array_size(json_object_get(o, "attachments"));
}

static void
check_header(json_t *o, size_t i, const char *name, const char *value)
{
	json_t *h = json_array_get(json_object_get(o, "headers"), i);

	ck_assert_msg(h != NULL, "no header %zu", i);
	ck_assert_str_eq(text_of(h, "name"), name);
	ck_assert_str_eq(text_of(h, "value"), value);
}

/*
 * Structure and part numbers.
 */

START_TEST(test_plain)
{
	static const char msg[] =
	    "From: Bob <bob@example.com>\r\n"
	    "To: a@example.org\r\n"
	    "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
	    "X-Folded: first\r\n"
	    "  second\r\n"
	    "Date: Thu, 26 Nov 2026 01:40:00 +0100\r\n"
	    "\r\n"
	    "Hello, world\r\n";
	json_t *o;

	o = parse(msg);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "headers")), 5);
	check_header(o, 0, "From", "Bob <bob@example.com>");
	check_header(o, 1, "To", "a@example.org");
	check_header(o, 2, "Subject", UTF8_GRUESSE);
	check_header(o, 3, "X-Folded", "first  second");
	check_header(o, 4, "Date", "Thu, 26 Nov 2026 01:40:00 +0100");
	ck_assert_str_eq(text_of(o, "text"), "Hello, world\r\n");
	ck_assert(json_is_null(json_object_get(o, "html")));
	ck_assert_uint_eq(n_atts(o), 0);
	json_decref(o);

	o = mime_content_to_json(msg, strlen(msg), true);
	check_shape(o, true);
	ck_assert_str_eq(text_of(o, "text"), "Hello, world\r\n");
	json_decref(o);
}
END_TEST

START_TEST(test_single_part_attachment)
{
	static const char msg[] =
	    "Subject: scan\r\n"
	    "Content-Type: application/PDF; name=\"scan.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "JVBERi0xLjQK\r\n";
	json_t *o = parse(msg);

	ck_assert(json_is_null(json_object_get(o, "text")));
	ck_assert_uint_eq(n_atts(o), 1);
	/* The body of a non-multipart message is part 1. */
	check_att(o, 0, "1", "scan.pdf", "application/pdf", 9, NULL, NULL);
	/* Content-* headers are listed too, in their place. */
	check_header(o, 0, "Subject", "scan");
	check_header(o, 1, "Content-Type", "application/PDF; name=\"scan.pdf\"");
	check_header(o, 2, "Content-Transfer-Encoding", "base64");
	json_decref(o);
}
END_TEST

START_TEST(test_alternative)
{
	static const char msg[] =
	    "Subject: alt\r\n"
	    "Content-Type: multipart/alternative; boundary=\"=_alt\"\r\n"
	    "X-After: 1\r\n"
	    "MIME-Version: 1.0\r\n"
	    "\r\n"
	    "This is a multi-part message.\r\n"
	    "--=_alt\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "plain " UTF8_GRUESSE "\r\n"
	    "--=_alt\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "<p>html Gr=C3=BC=C3=9Fe</p>\r\n"
	    "--=_alt--\r\n";
	json_t *o = parse(msg);

	ck_assert_str_eq(text_of(o, "text"), "plain " UTF8_GRUESSE);
	ck_assert_str_eq(text_of(o, "html"), "<p>html " UTF8_GRUESSE "</p>");
	ck_assert_uint_eq(n_atts(o), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "headers")), 4);
	check_header(o, 0, "Subject", "alt");
	check_header(o, 1, "Content-Type", "multipart/alternative; boundary=\"=_alt\"");
	check_header(o, 2, "X-After", "1");
	check_header(o, 3, "MIME-Version", "1.0");
	json_decref(o);
}
END_TEST

START_TEST(test_mixed_pdf)
{
	unsigned char pdf[3000];
	struct str msg, decoded;
	struct mime_decoder *dec;
	char *b64;
	json_t *o;

	memcpy(pdf, "%PDF-1.4\n", 9);
	random_bytes(pdf + 9, sizeof(pdf) - 9, 42);
	b64 = base64_lines(pdf, sizeof(pdf));
	str_init(&msg);
	str_printf(&msg,
	    "Subject: report\r\n"
	    "Content-Type: multipart/mixed; boundary=b1\r\n"
	    "\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "see attachment\r\n"
	    "--b1\r\n"
	    "Content-Type: application/pdf\r\n"
	    "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "%s"
	    "--b1--\r\n", b64);
	o = mime_content_to_json(msg.data, msg.len, false);
	check_shape(o, false);
	ck_assert_str_eq(text_of(o, "text"), "see attachment");
	ck_assert_uint_eq(n_atts(o), 1);
	check_att(o, 0, "2", "report.pdf", "application/pdf", (json_int_t)sizeof(pdf),
	    "attachment", NULL);
	json_decref(o);

	/* What download --part 2 would write: the same bytes. */
	str_init(&decoded);
	dec = mime_decoder_new("base64");
	mime_decoder_feed(dec, b64, strlen(b64), &decoded);
	mime_decoder_finish(dec, &decoded);
	mime_decoder_free(&dec);
	ck_assert_ptr_null(dec);
	ck_assert_uint_eq(decoded.len, sizeof(pdf));
	ck_assert(memcmp(decoded.data, pdf, sizeof(pdf)) == 0);
	str_free(&decoded);
	str_free(&msg);
	free(b64);
}
END_TEST

START_TEST(test_nested)
{
	json_t *o;

	/* mixed(alternative(plain, html, calendar), zip) */
	o = parse_file("nested-alternative.eml");
	ck_assert_str_eq(text_of(o, "text"), "text at 1.1");
	ck_assert_str_eq(text_of(o, "html"), "html at 1.2");
	ck_assert_uint_eq(n_atts(o), 2);
	check_att(o, 0, "1.3", NULL, "text/calendar", 15, NULL, NULL);
	check_att(o, 1, "2", "a.zip", "application/zip", 2, NULL, NULL);
	json_decref(o);

	/* mixed(untyped text, mixed(related(html, gif), plain), octet-stream) */
	o = parse_file("nested-related.eml");
	ck_assert_str_eq(text_of(o, "text"), "first text, default type");
	ck_assert_str_eq(text_of(o, "html"), "<img src=cid:i>");
	ck_assert_uint_eq(n_atts(o), 3);
	check_att(o, 0, "2.1.2", NULL, "image/gif", 6, NULL, "i");
	check_att(o, 1, "2.2", NULL, "text/plain", 11, NULL, NULL);
	check_att(o, 2, "3", NULL, "application/octet-stream", 3, NULL, NULL);
	json_decref(o);
}
END_TEST

/* The encapsulated message, exactly as IMAP BODY[2] returns it. */
#define INNER(NL) \
	"From: Inner <inner@example.com>" NL \
	"Subject: inner" NL \
	"Content-Type: multipart/mixed; boundary=in" NL \
	NL \
	"--in" NL \
	"Content-Type: text/plain" NL \
	NL \
	"inner text" NL \
	"--in" NL \
	"Content-Type: application/pdf; name=inner.pdf" NL \
	NL \
	"not listed" NL \
	"--in--" NL

#define OUTER(NL) \
	"Subject: fwd" NL \
	"Content-Type: multipart/mixed; boundary=b1" NL \
	NL \
	"--b1" NL \
	"Content-Type: text/plain" NL \
	NL \
	"see the forwarded message" NL \
	"--b1" NL \
	"Content-Type: message/rfc822; name=\"fwd.eml\"" NL \
	NL \
	INNER(NL) \
	NL \
	"--b1" NL \
	"Content-Type: application/pdf; name=outer.pdf" NL \
	"Content-Transfer-Encoding: base64" NL \
	NL \
	"QUJD" NL \
	"--b1--" NL

START_TEST(test_rfc822_attachment)
{
	static const char crlf[] = OUTER("\r\n"), lf[] = OUTER("\n");
	static const char inner_crlf[] = INNER("\r\n"), inner_lf[] = INNER("\n");
	static const char top[] =
	    "Subject: bounce\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    INNER("\r\n");
	json_t *o;

	o = parse(crlf);
	ck_assert_str_eq(text_of(o, "text"), "see the forwarded message");
	ck_assert_uint_eq(n_atts(o), 2);
	check_att(o, 0, "2", "fwd.eml", "message/rfc822", (json_int_t)strlen(inner_crlf),
	    NULL, NULL);
	check_att(o, 1, "3", "outer.pdf", "application/pdf", 3, NULL, NULL);
	json_decref(o);

	o = parse(lf);
	ck_assert_uint_eq(n_atts(o), 2);
	check_att(o, 0, "2", "fwd.eml", "message/rfc822", (json_int_t)strlen(inner_lf),
	    NULL, NULL);
	check_att(o, 1, "3", "outer.pdf", "application/pdf", 3, NULL, NULL);
	json_decref(o);

	o = parse(top);
	ck_assert(json_is_null(json_object_get(o, "text")));
	ck_assert_uint_eq(n_atts(o), 1);
	check_att(o, 0, "1", NULL, "message/rfc822", (json_int_t)strlen(INNER("\r\n")),
	    NULL, NULL);
	json_decref(o);
}
END_TEST

START_TEST(test_inline_image)
{
	/* related(html, png inline with filename and <cid>, jpeg with a bare cid) */
	json_t *o = parse_file("related-inline.eml");

	ck_assert(json_is_null(json_object_get(o, "text")));
	ck_assert_str_eq(text_of(o, "html"), "<img src=\"cid:logo@example.com\">");
	ck_assert_uint_eq(n_atts(o), 2);
	check_att(o, 0, "2", "logo.png", "image/png", 4, "inline", "logo@example.com");
	check_att(o, 1, "3", NULL, "image/jpeg", 4, "inline", "bare@example.com");
	json_decref(o);
}
END_TEST

START_TEST(test_text_attachments)
{
	/* mixed(plain with a name, html disposition attachment, plain inline,
	 * plain, plain with an unknown disposition) */
	json_t *o = parse_file("text-attachments.eml");

	ck_assert_str_eq(text_of(o, "text"), "the body");
	ck_assert(json_is_null(json_object_get(o, "html")));
	ck_assert_uint_eq(n_atts(o), 4);
	check_att(o, 0, "1", "notes.txt", "text/plain", 34, NULL, NULL);
	check_att(o, 1, "2", NULL, "text/html", 44, "attachment", NULL);
	check_att(o, 2, "4", NULL, "text/plain", 18, NULL, NULL);
	check_att(o, 3, "5", NULL, "text/plain", 19, "attachment", NULL);
	json_decref(o);
}
END_TEST

/*
 * Charsets and RFC 2047 / 2231.
 */

/* The text of a one-part message with the given headers and body. */
static char *
body_text(const char *headers, const char *body)
{
	struct str msg;
	json_t *o;
	char *text;

	str_init(&msg);
	str_printf(&msg, "Subject: t\r\n%s\r\n%s", headers, body);
	o = mime_content_to_json(msg.data, msg.len, false);
	check_shape(o, false);
	text = xstrdup(text_of(o, "text"));
	json_decref(o);
	str_free(&msg);
	return text;
}

START_TEST(test_charsets)
{
	static const struct {
		const char *headers, *body, *want;
	} cases[] = {
		{ "Content-Type: text/plain; charset=ISO-8859-1\r\n"
		  "Content-Transfer-Encoding: quoted-printable\r\n",
		  "Gr=FC=DFe, =\r\nsoft", UTF8_GRUESSE ", soft" },
		{ "Content-Type: text/plain; charset=iso-8859-1\r\n",
		  "\x80 5", "\xe2\x82\xac 5" },
		{ "Content-Type: text/plain; charset=\"windows-1252\"\r\n",
		  "\x93quoted\x94", "\xe2\x80\x9cquoted\xe2\x80\x9d" },
		{ "Content-Type: text/plain; charset=koi8-r\r\n",
		  "\xf0\xd2\xc9\xd7\xc5\xd4", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82" },
		{ "Content-Type: text/plain; charset=x-no-such-charset\r\n",
		  UTF8_GRUESSE, UTF8_GRUESSE },
		{ "Content-Type: text/plain; charset=x-no-such-charset\r\n",
		  "Gr\xfc\xdf" "e", UTF8_GRUESSE },
		{ "", "Gr\xfc\xdf" "e", UTF8_GRUESSE },
		{ "", UTF8_GRUESSE, UTF8_GRUESSE },
		{ "Content-Type: text/plain; charset=us-ascii\r\n", "caf\xe9", "caf\xc3\xa9" },
		{ "Content-Type: text/plain; charset=utf-8\r\n",
		  "ok \xff bad", "ok \xef\xbf\xbd bad" },
		{ "Content-Type: text/plain; charset=utf-8\r\n"
		  "Content-Transfer-Encoding: base64\r\n",
		  "R3LDvMOfZQ==", UTF8_GRUESSE },
		{ "Content-Type: text/plain; charset=shift_jis\r\n",
		  "\x93\xfa\x96\x7b", "\xe6\x97\xa5\xe6\x9c\xac" },
		/* a multi-byte sequence cut at the end */
		{ "Content-Type: text/plain; charset=shift_jis\r\n",
		  "\x93\xfa\x96", "\xe6\x97\xa5\xef\xbf\xbd" },
		{ "Content-Type: text/plain; charset=utf-16le\r\n"
		  "Content-Transfer-Encoding: base64\r\n",
		  "YQBiAD3Y", "ab\xef\xbf\xbd" },      /* "ab" and half a surrogate pair */
	};
	char *text;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		text = body_text(cases[i].headers, cases[i].body);
		ck_assert_msg(strcmp(text, cases[i].want) == 0, "case %zu: \"%s\"", i, text);
		free(text);
	}
}
END_TEST

START_TEST(test_filenames)
{
	/* RFC 2231 (UTF-8, continuations, ISO-8859-1 with a language), an
	 * RFC 2047 name, filename preferred over name */
	json_t *o = parse_file("filenames.eml");

	ck_assert_uint_eq(n_atts(o), 5);
	check_att(o, 0, "1", "\xe2\x82\xac rates.pdf", "application/pdf", 1, "attachment", NULL);
	check_att(o, 1, "2", UTF8_GRUESSE ".txt", "text/plain", 1, "attachment", NULL);
	check_att(o, 2, "3", UTF8_GRUESSE ".bin", "application/octet-stream", 1, NULL, NULL);
	check_att(o, 3, "4", "by-disposition.bin", "application/octet-stream", 1,
	    "attachment", NULL);
	check_att(o, 4, "5", "f\xc3\xbcr.txt", "application/octet-stream", 1, "attachment", NULL);
	json_decref(o);
}
END_TEST

START_TEST(test_decode_header_text)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "=?UTF-8?B?R3LDvMOfZQ==?=", UTF8_GRUESSE },
		{ "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", UTF8_GRUESSE },
		{ "=?ISO-8859-1?Q?Gr=FC=DFe?= und =?utf-8?b?R3LDvMOfZQ==?=",
		  UTF8_GRUESSE " und " UTF8_GRUESSE },
		{ "=?utf-8?q?a?= =?utf-8?q?b?=", "ab" },
		{ "folded\r\n line", "folded line" },
		{ "caf\xe9", "caf\xc3\xa9" },
		{ UTF8_GRUESSE, UTF8_GRUESSE },
		{ "plain", "plain" },
		{ "", "" },
		{ "=?bogus?Q?x?=", "x" },
	};
	char *s;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		s = mime_decode_header_text(cases[i].in);
		ck_assert_ptr_nonnull(s);
		ck_assert_msg(strcmp(s, cases[i].want) == 0, "case %zu: \"%s\"", i, s);
		free(s);
	}
	ck_assert_ptr_null(mime_decode_header_text(NULL));
	/* Bytes no fallback charset maps still give valid UTF-8. */
	s = mime_decode_header_text("\x81\x8d\x8f\x90\x9d =?utf-8?q?=FF?=");
	ck_assert_ptr_nonnull(s);
	ck_assert(utf8_valid(s, strlen(s)));
	free(s);
}
END_TEST

START_TEST(test_date_to_iso)
{
	char buf[21];

	ck_assert_int_eq(mime_date_to_iso("Thu, 26 Nov 2026 01:40:00 +0100", buf), 0);
	ck_assert_str_eq(buf, "2026-11-26T00:40:00Z");
	ck_assert_int_eq(mime_date_to_iso("Wed, 25 Nov 2026 16:40:00 -0800", buf), 0);
	ck_assert_str_eq(buf, "2026-11-26T00:40:00Z");
	ck_assert_int_eq(mime_date_to_iso("not a date", buf), -1);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(mime_date_to_iso(NULL, buf), -1);
}
END_TEST

/*
 * Hostile input.
 */

/* multipart nested n deep, with a leaf beside every multipart: the leaf
 * at depth d has a part number of d components. */
static char *
nested_message(unsigned n)
{
	struct str s;
	unsigned i;

	str_init(&s);
	str_append(&s, "Subject: deep\r\n");
	for (i = 0; i < n; i++) {
		str_printf(&s, "Content-Type: multipart/mixed; boundary=\"b%u\"\r\n\r\n"
		    "--b%u\r\nContent-Type: application/octet-stream\r\n\r\nleaf\r\n--b%u\r\n",
		    i, i, i);
	}
	str_append(&s, "Content-Type: text/plain\r\n\r\nbottom\r\n");
	for (i = n; i-- > 0;)
		str_printf(&s, "--b%u--\r\n", i);
	return str_steal(&s);
}

START_TEST(test_deep_nesting)
{
	char *msg, *want;
	json_t *o;
	struct str id;
	unsigned i;

	/* 1,000 deep: GMime copes, the walk stops at MIME_MAX_DEPTH. */
	msg = nested_message(1000);
	o = parse(msg);
	ck_assert(json_is_null(json_object_get(o, "text")));
	ck_assert_uint_eq(n_atts(o), MIME_MAX_DEPTH);
	str_init(&id);
	for (i = 1; i < MIME_MAX_DEPTH; i++)
		str_append(&id, "2.");
	str_append(&id, "1");
	want = str_steal(&id);
	check_att(o, MIME_MAX_DEPTH - 1, want, NULL, "application/octet-stream", 4, NULL, NULL);
	check_att(o, 0, "1", NULL, "application/octet-stream", 4, NULL, NULL);
	check_att(o, 1, "2.1", NULL, "application/octet-stream", 4, NULL, NULL);
	free(want);
	json_decref(o);
	free(msg);

	/* Exactly at the limit: the text at depth 64 is still found. */
	msg = nested_message(MIME_MAX_DEPTH);
	o = parse(msg);
	ck_assert_str_eq(text_of(o, "text"), "bottom");
	ck_assert_uint_eq(n_atts(o), MIME_MAX_DEPTH);
	json_decref(o);
	free(msg);

	/* One deeper: the text and the leaf beside it are not. */
	msg = nested_message(MIME_MAX_DEPTH + 1);
	o = parse(msg);
	ck_assert(json_is_null(json_object_get(o, "text")));
	ck_assert_uint_eq(n_atts(o), MIME_MAX_DEPTH);
	json_decref(o);
	free(msg);

	/* Deeper than GMime's own limit (1024). */
	msg = nested_message(3000);
	o = parse(msg);
	ck_assert_uint_eq(n_atts(o), MIME_MAX_DEPTH);
	json_decref(o);
	free(msg);
}
END_TEST

START_TEST(test_broken)
{
	static const char broken_b64[] =
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "Zm9v!!!YmFy@@@\r\n"
	    "====\r\n"
	    "QUJD\r\n";
	static const char no_boundary[] =
	    "Content-Type: multipart/mixed\r\n"
	    "\r\n"
	    "--x\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "hi\r\n"
	    "--x--\r\n";
	static const char unclosed[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n"
	    "\r\n"
	    "--b\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "text\r\n"
	    "--b\r\n"
	    "Content-Type: image/png; name=cut.png\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "iVBORw0KGgoAAAAN";
	static const char headerless[] = "just some text\r\nwithout headers\r\n";
	static const char junk_headers[] =
	    "Subject: \xff\xfe bad\r\n"
	    "X-\xc3(: \x80\r\n"
	    "Content-Type: text/plain; charset=\"\"\r\n"
	    "\r\n"
	    "body \xff";
	unsigned char noise[4096];
	json_t *o;

	o = parse(broken_b64);
	check_att(o, 0, "1", NULL, "application/octet-stream", 6, NULL, NULL);
	json_decref(o);

	o = parse(no_boundary);
	ck_assert_uint_eq(n_atts(o), 0);
	json_decref(o);

	o = parse(unclosed);
	ck_assert_str_eq(text_of(o, "text"), "text");
	check_att(o, 0, "2", "cut.png", "image/png", 12, NULL, NULL);
	json_decref(o);

	o = parse(headerless);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "headers")), 0);
	ck_assert_str_eq(text_of(o, "text"), headerless);
	json_decref(o);

	o = parse(junk_headers);
	ck_assert_str_eq(text_of(o, "text"), "body \xc3\xbf");
	json_decref(o);

	o = parse("");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "headers")), 0);
	ck_assert(json_is_null(json_object_get(o, "text")));
	json_decref(o);

	o = mime_content_to_json(NULL, 0, true);
	check_shape(o, true);
	json_decref(o);

	random_bytes(noise, sizeof(noise), 7);
	o = mime_content_to_json((const char *)noise, sizeof(noise), false);
	check_shape(o, false);
	json_decref(o);
}
END_TEST

/* A message cut at every byte: always a well-formed object. */
START_TEST(test_every_truncation)
{
	static const char msg[] = OUTER("\r\n");
	size_t len;
	json_t *o;

	for (len = 0; len <= sizeof(msg) - 1; len++) {
		o = mime_content_to_json(msg, len, true);
		check_shape(o, true);
		json_decref(o);
	}
}
END_TEST

static void
mime_setup(void)
{
	mime_init();
}

static void
mime_teardown(void)
{
	mime_shutdown();
}

static Suite *
mime_suite(void)
{
	Suite *s = suite_create("mime");
	TCase *tc = tcase_create("content");

	/* Once per process: GMime cannot be initialised again after
	 * g_mime_shutdown(). */
	tcase_add_unchecked_fixture(tc, mime_setup, mime_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_single_part_attachment);
	tcase_add_test(tc, test_alternative);
	tcase_add_test(tc, test_mixed_pdf);
	tcase_add_test(tc, test_nested);
	tcase_add_test(tc, test_rfc822_attachment);
	tcase_add_test(tc, test_inline_image);
	tcase_add_test(tc, test_text_attachments);
	tcase_add_test(tc, test_charsets);
	tcase_add_test(tc, test_filenames);
	tcase_add_test(tc, test_decode_header_text);
	tcase_add_test(tc, test_date_to_iso);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_broken);
	tcase_add_test(tc, test_every_truncation);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(mime_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
