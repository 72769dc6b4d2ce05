/* mime: see mime.h */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "jsonutil.h"

#define UTF8_REPLACEMENT "\xef\xbf\xbd"

/* Bytes passed to GMime's filter at a time by the streaming decoder. */
#define DECODER_CHUNK 65536

void
mime_init(void)
{
	g_mime_init();
}

void
mime_shutdown(void)
{
	g_mime_shutdown();
}

/*
 * Parser options for hostile mail: loose RFC compliance everywhere, and
 * 8-bit header text read as UTF-8 when it is valid, else windows-1252.
 * GMime headers keep a pointer to these, so they must outlive every
 * object parsed with them.
 */
static GMimeParserOptions *
parser_options_new(void)
{
	static const char *fallback[] = { "UTF-8", "windows-1252", NULL };
	GMimeParserOptions *opts;

	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(opts, fallback);
	g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_allow_addresses_without_domain(opts, TRUE);
	return opts;
}

/* A malloc'd valid UTF-8 copy of a GLib string (NULL gives ""). */
static char *
utf8_dup(const char *s)
{
	if (s == NULL)
		return xstrdup("");
	if (utf8_valid(s, strlen(s)))
		return xstrdup(s);
	return utf8_repair(s, strlen(s), NULL);
}

char *
mime_decode_header_text(const char *raw)
{
	GMimeParserOptions *opts;
	char *unfolded, *decoded, *ret;

	if (raw == NULL)
		return NULL;
	opts = parser_options_new();
	unfolded = g_mime_utils_header_unfold(raw);
	decoded = g_mime_utils_header_decode_text(opts, unfolded != NULL ? unfolded : raw);
	ret = utf8_dup(decoded);
	g_free(decoded);
	g_free(unfolded);
	g_mime_parser_options_free(opts);
	return ret;
}

int
mime_date_to_iso(const char *s, char buf[static 21])
{
	GDateTime *dt, *utc;
	int n;

	buf[0] = '\0';
	if (s == NULL || (dt = g_mime_utils_header_decode_date(s)) == NULL)
		return -1;
	utc = g_date_time_to_utc(dt);
	g_date_time_unref(dt);
	if (utc == NULL)
		return -1;
	n = snprintf(buf, 21, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    g_date_time_get_year(utc), g_date_time_get_month(utc),
	    g_date_time_get_day_of_month(utc), g_date_time_get_hour(utc),
	    g_date_time_get_minute(utc), g_date_time_get_second(utc));
	g_date_time_unref(utc);
	if (n != 20) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Text conversion.
 */

/* Converts in[0..len) with cd; a byte that does not convert becomes
 * U+FFFD. Returns a malloc'd string, its length in *len_r. */
static char *
iconv_to_utf8(iconv_t cd, const char *in, size_t len, size_t *len_r)
{
	char buf[4096], *inp = (char *)in, *outp;
	size_t inleft = len, outleft, r;
	struct str out;
	int err;

	str_init(&out);
	str_append_n(&out, "", 0);
	iconv(cd, NULL, NULL, NULL, NULL);
	while (inleft > 0) {
		outp = buf;
		outleft = sizeof(buf);
		r = iconv(cd, &inp, &inleft, &outp, &outleft);
		err = errno;
		str_append_n(&out, buf, sizeof(buf) - outleft);
		if (r != (size_t)-1 || err == E2BIG)
			continue;
		str_append(&out, UTF8_REPLACEMENT);
		if (err == EINVAL)
			break;          /* a sequence cut short by the end */
		inp++;                  /* EILSEQ: skip one byte */
		inleft--;
	}
	outp = buf;
	outleft = sizeof(buf);
	iconv(cd, NULL, NULL, &outp, &outleft);
	str_append_n(&out, buf, sizeof(buf) - outleft);
	*len_r = out.len;
	return str_steal(&out);
}

/* A JSON string from in[0..len) read in charset, or NULL when GMime (and
 * iconv) do not know the charset. */
static json_t *
charset_to_json(const char *charset, const char *in, size_t len)
{
	iconv_t cd;
	json_t *j;
	char *conv;
	size_t clen;

	if ((cd = g_mime_iconv_open("UTF-8", charset)) == (iconv_t)-1)
		return NULL;
	conv = iconv_to_utf8(cd, in, len, &clen);
	g_mime_iconv_close(cd);
	j = json_str_n(conv, clen);
	free(conv);
	return j;
}

/*
 * Decodes in[0..len), declared to be in charset (NULL when none), to a
 * JSON string. Declared UTF-8 is taken as such (bad bytes repaired);
 * missing, unknown and US-ASCII: UTF-8 when valid, else windows-1252;
 * ISO-8859-1 is read as its superset windows-1252, as browsers do.
 */
static json_t *
text_to_json(const char *charset, const char *in, size_t len)
{
	static const char *const latin1[] = {
		"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1",
	};
	const char *canon;
	json_t *j;
	size_t i;

	if (charset != NULL && *charset != '\0') {
		canon = g_mime_charset_canon_name(charset);
		if (canon != NULL && g_ascii_strcasecmp(canon, "UTF-8") == 0)
			return json_str_n(in, len);
		for (i = 0; i < N_ELEMENTS(latin1); i++) {
			if (g_ascii_strcasecmp(charset, latin1[i]) == 0)
				charset = "windows-1252";
		}
		if (g_ascii_strcasecmp(charset, "us-ascii") != 0 &&
		    g_ascii_strcasecmp(charset, "ascii") != 0 &&
		    (j = charset_to_json(charset, in, len)) != NULL)
			return j;
	}
	if (utf8_valid(in, len))
		return json_str_n(in, len);
	if ((j = charset_to_json("windows-1252", in, len)) != NULL)
		return j;
	return json_str_n(in, len);
}

/*
 * The message walk.
 */

struct walk {
	json_t *attachments;
	json_t *text;                   /* NULL until found */
	json_t *html;
	GMimeFormatOptions *format;     /* for re-serialising message/rfc822 */
	/* The current IMAP part number: at most MIME_MAX_DEPTH numbers of
	 * up to 10 digits, each after a ".". */
	char id[MIME_MAX_DEPTH * 11 + 16];
	size_t idlen;
};

/* Writes obj's decoded content to dst; returns false when it has none. */
static bool
write_content(struct walk *w, GMimeObject *obj, GMimeStream *dst)
{
	GMimeDataWrapper *content;
	GMimeMessage *msg;

	if (GMIME_IS_MESSAGE_PART(obj)) {
		msg = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (msg == NULL)
			return false;
		return g_mime_object_write_to_stream(GMIME_OBJECT(msg), w->format, dst) >= 0;
	}
	if (!GMIME_IS_PART(obj))
		return false;
	if ((content = g_mime_part_get_content(GMIME_PART(obj))) == NULL)
		return false;
	return g_mime_data_wrapper_write_to_stream(content, dst) >= 0;
}

/* Decoded size in bytes: the content written to a counting null stream.
 * A message/rfc822 part is the encapsulated message, re-serialised with
 * the input's line endings (GMime writes headers and bodies as parsed). */
static json_int_t
content_size(struct walk *w, GMimeObject *obj)
{
	GMimeStream *null;
	json_int_t size;

	null = g_mime_stream_null_new();
	write_content(w, obj, null);
	size = (json_int_t)GMIME_STREAM_NULL(null)->written;
	g_object_unref(null);
	return size;
}

static json_t *
content_text(struct walk *w, GMimeObject *obj)
{
	GMimeStream *mem;
	GByteArray *bytes;
	json_t *j;

	mem = g_mime_stream_mem_new();
	write_content(w, obj, mem);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (bytes == NULL || bytes->len == 0)
		j = json_str_n("", 0);
	else
		j = text_to_json(g_mime_object_get_content_type_parameter(obj, "charset"),
		    (const char *)bytes->data, bytes->len);
	g_object_unref(mem);
	return j;
}

/* "attachment", "inline" or NULL. An unknown disposition type counts as
 * "attachment" (RFC 2183 section 2.8). */
static const char *
disposition_of(GMimeObject *obj)
{
	GMimeContentDisposition *cd;
	const char *d;

	if ((cd = g_mime_object_get_content_disposition(obj)) == NULL)
		return NULL;
	d = g_mime_content_disposition_get_disposition(cd);
	if (d == NULL || *d == '\0')
		return NULL;
	if (g_ascii_strcasecmp(d, "inline") == 0)
		return "inline";
	return "attachment";
}

/* The RFC 2231/2047-decoded filename (Content-Disposition filename, else
 * Content-Type name), or NULL. Owned by obj. */
static const char *
filename_of(GMimeObject *obj)
{
	const char *name;

	name = g_mime_object_get_content_disposition_parameter(obj, "filename");
	if (name == NULL || *name == '\0')
		name = g_mime_object_get_content_type_parameter(obj, "name");
	if (name == NULL || *name == '\0')
		return NULL;
	return name;
}

/* Lower-case "type/subtype" (caller frees). */
static char *
content_type_of(GMimeObject *obj)
{
	GMimeContentType *ct;
	const char *type = NULL, *subtype = NULL;
	char *s, *p;

	if ((ct = g_mime_object_get_content_type(obj)) != NULL) {
		type = g_mime_content_type_get_media_type(ct);
		subtype = g_mime_content_type_get_media_subtype(ct);
	}
	s = xasprintf("%s/%s", type != NULL && *type != '\0' ? type : "application",
	    subtype != NULL && *subtype != '\0' ? subtype : "octet-stream");
	for (p = s; *p != '\0'; p++)
		*p = g_ascii_tolower(*p);
	return s;
}

static void
add_attachment(struct walk *w, GMimeObject *obj, const char *ctype)
{
	const char *cid, *disp;
	json_t *a;

	cid = g_mime_object_get_content_id(obj);
	if (cid != NULL && *cid == '\0')
		cid = NULL;
	disp = disposition_of(obj);

	a = json_object();
	json_object_set_new(a, "partId", json_str(w->id));
	json_object_set_new(a, "filename", json_str(filename_of(obj)));
	json_object_set_new(a, "contentType", json_str(ctype));
	json_object_set_new(a, "size", json_integer(content_size(w, obj)));
	json_object_set_new(a, "disposition", json_str(disp));
	json_object_set_new(a, "contentId", json_str(cid));
	json_array_append_new(w->attachments, a);
}

static void
walk_leaf(struct walk *w, GMimeObject *obj)
{
	const char *disp;
	char *ctype;
	bool attached;

	ctype = content_type_of(obj);
	disp = disposition_of(obj);
	attached = filename_of(obj) != NULL ||
	    (disp != NULL && strcmp(disp, "attachment") == 0);

	if (GMIME_IS_PART(obj) && !attached) {
		if (w->text == NULL && strcmp(ctype, "text/plain") == 0) {
			w->text = content_text(w, obj);
			free(ctype);
			return;
		}
		if (w->html == NULL && strcmp(ctype, "text/html") == 0) {
			w->html = content_text(w, obj);
			free(ctype);
			return;
		}
	}
	add_attachment(w, obj, ctype);
	free(ctype);
}

/*
 * Visits obj, whose part number is w->id, at the given depth (the number
 * of components in its part number). Recursion is bounded by
 * MIME_MAX_DEPTH; message/rfc822 parts are not descended into.
 */
static void
walk_object(struct walk *w, GMimeObject *obj, unsigned depth)
{
	GMimeMultipart *mp;
	size_t saved = w->idlen;
	int i, n, len;

	if (obj == NULL || depth > MIME_MAX_DEPTH)
		return;
	if (!GMIME_IS_MULTIPART(obj)) {
		walk_leaf(w, obj);
		return;
	}
	if (depth == MIME_MAX_DEPTH)
		return;
	mp = GMIME_MULTIPART(obj);
	n = g_mime_multipart_get_count(mp);
	for (i = 0; i < n; i++) {
		len = snprintf(w->id + saved, sizeof(w->id) - saved, "%s%d",
		    saved == 0 ? "" : ".", i + 1);
		if (len < 0 || (size_t)len >= sizeof(w->id) - saved)
			break;
		w->idlen = saved + (size_t)len;
		walk_object(w, g_mime_multipart_get_part(mp, i), depth + 1);
	}
	w->idlen = saved;
	w->id[saved] = '\0';
}

/* Appends h to out as {"name","value"}. */
static void
add_header(json_t *out, GMimeHeader *h)
{
	const char *value = g_mime_header_get_value(h);
	json_t *o = json_object();

	json_object_set_new(o, "name", json_str(g_mime_header_get_name(h)));
	json_object_set_new(o, "value", json_str(value != NULL ? value : ""));
	json_array_append_new(out, o);
}

/*
 * GMime splits the top-level header block: Content-* headers go to the
 * top MIME part, the rest to the message. Merging the two lists by stream
 * offset gives back the original order.
 */
static json_t *
headers_to_json(GMimeMessage *msg)
{
	GMimeHeaderList *a, *b;
	GMimeObject *part;
	GMimeHeader *ha, *hb;
	json_t *out = json_array();
	int i = 0, j = 0, na, nb;

	a = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	part = g_mime_message_get_mime_part(msg);
	b = part != NULL ? g_mime_object_get_header_list(part) : NULL;
	na = a != NULL ? g_mime_header_list_get_count(a) : 0;
	nb = b != NULL ? g_mime_header_list_get_count(b) : 0;
	while (i < na || j < nb) {
		ha = i < na ? g_mime_header_list_get_header_at(a, i) : NULL;
		hb = j < nb ? g_mime_header_list_get_header_at(b, j) : NULL;
		if (hb == NULL || (ha != NULL &&
		    g_mime_header_get_offset(ha) <= g_mime_header_get_offset(hb))) {
			if (ha != NULL)
				add_header(out, ha);
			i++;
		} else {
			add_header(out, hb);
			j++;
		}
	}
	return out;
}

/* GMime writes CRLF when the input uses it, so that a re-serialised
 * message/rfc822 part has the size of the original bytes. */
static bool
uses_crlf(const char *raw, size_t len)
{
	const char *nl = memchr(raw, '\n', len);

	return nl != NULL && nl > raw && nl[-1] == '\r';
}

json_t *
mime_content_to_json(const char *raw, size_t len, bool truncated)
{
	GMimeParserOptions *opts;
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	GMimeObject *body;
	struct walk w;
	json_t *out, *headers;

	if (raw == NULL)
		len = 0;
	memset(&w, 0, sizeof(w));
	w.attachments = json_array();
	opts = parser_options_new();
	w.format = g_mime_format_options_new();
	if (len > 0 && uses_crlf(raw, len))
		g_mime_format_options_set_newline_format(w.format, GMIME_NEWLINE_FORMAT_DOS);

	stream = g_mime_stream_mem_new_with_buffer(len > 0 ? raw : "", len);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, opts);
	g_object_unref(parser);

	if (msg != NULL) {
		headers = headers_to_json(msg);
		body = g_mime_message_get_mime_part(msg);
		if (body != NULL && !GMIME_IS_MULTIPART(body)) {
			/* The body of a non-multipart message is part 1. */
			snprintf(w.id, sizeof(w.id), "1");
			w.idlen = 1;
		}
		walk_object(&w, body, 0);
		g_object_unref(msg);
	} else {
		/* No header block GMime accepts: all of it is plain text. */
		headers = json_array();
		if (len > 0)
			w.text = text_to_json(NULL, raw, len);
	}

	out = json_object();
	json_object_set_new(out, "headers", headers);
	json_object_set_new(out, "text", w.text != NULL ? w.text : json_null());
	json_object_set_new(out, "html", w.html != NULL ? w.html : json_null());
	json_object_set_new(out, "attachments", w.attachments);
	json_object_set_new(out, "truncated", json_boolean(truncated));
	g_mime_format_options_free(w.format);
	g_mime_parser_options_free(opts);
	return out;
}

/*
 * Streaming Content-Transfer-Encoding decoder. base64 and quoted-printable
 * go through GMime's filter, which keeps its state between chunks.
 * uuencode is decoded here, a line at a time: GMime's uudecoder gives
 * different bytes depending on where the input is split.
 */

/* uuencoded lines are at most 61 characters; longer ones are cut. */
#define UU_LINE_MAX 128
#define UU_VALUE(c) ((unsigned)((c) - 0x20) & 0x3f)

enum decoder_kind { DECODER_PASS, DECODER_FILTER, DECODER_UU };
enum uu_state { UU_BEFORE_BEGIN, UU_BODY, UU_DONE };

struct mime_decoder {
	enum decoder_kind kind;
	GMimeFilter *filter;
	bool base64;
	char *buf;              /* the filter API takes a mutable input */
	enum uu_state uu;
	char line[UU_LINE_MAX];
	size_t linelen;
};

struct mime_decoder *
mime_decoder_new(const char *content_transfer_encoding)
{
	struct mime_decoder *dec = xcalloc(1, sizeof(*dec));
	GMimeContentEncoding e = GMIME_CONTENT_ENCODING_DEFAULT;

	if (content_transfer_encoding != NULL)
		e = g_mime_content_encoding_from_string(content_transfer_encoding);
	switch (e) {
	case GMIME_CONTENT_ENCODING_BASE64:
	case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
		dec->kind = DECODER_FILTER;
		dec->filter = g_mime_filter_basic_new(e, FALSE);
		dec->base64 = e == GMIME_CONTENT_ENCODING_BASE64;
		dec->buf = xmalloc(DECODER_CHUNK);
		break;
	case GMIME_CONTENT_ENCODING_UUENCODE:
		dec->kind = DECODER_UU;
		dec->uu = UU_BEFORE_BEGIN;
		break;
	default:
		dec->kind = DECODER_PASS;
		break;
	}
	return dec;
}

/* Decodes the buffered uuencoded line (without its "\n"). */
static void
uu_line(struct mime_decoder *dec, struct str *out)
{
	const char *p = dec->line;
	size_t len = dec->linelen, i, k, n, m;
	unsigned q[4];
	char b[3];

	dec->linelen = 0;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (dec->uu == UU_BEFORE_BEGIN) {
		if (len >= 6 && memcmp(p, "begin ", 6) == 0)
			dec->uu = UU_BODY;
		return;
	}
	if (dec->uu == UU_DONE || len == 0)
		return;
	/* The first character is the line's byte count; 0 ("`" or " ")
	 * or "end" closes the body. */
	if ((n = UU_VALUE(p[0])) == 0 || (len == 3 && memcmp(p, "end", 3) == 0)) {
		dec->uu = UU_DONE;
		return;
	}
	/* Groups of four characters make three bytes; characters missing
	 * at the end of a line (stripped trailing spaces) count as 0. */
	for (i = 1; n > 0; i += 4) {
		for (k = 0; k < 4; k++)
			q[k] = i + k < len ? UU_VALUE(p[i + k]) : 0;
		b[0] = (char)(q[0] << 2 | q[1] >> 4);
		b[1] = (char)(q[1] << 4 | q[2] >> 2);
		b[2] = (char)(q[2] << 6 | q[3]);
		m = n < 3 ? n : 3;
		str_append_n(out, b, m);
		n -= m;
	}
}

static void
uu_feed(struct mime_decoder *dec, const char *in, size_t len, struct str *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (in[i] == '\n')
			uu_line(dec, out);
		else if (dec->linelen < sizeof(dec->line))
			dec->line[dec->linelen++] = in[i];
	}
}

void
mime_decoder_feed(struct mime_decoder *dec, const void *in, size_t len,
    struct str *out)
{
	const char *p = in;
	char *outbuf;
	size_t n, outlen, outpre;

	switch (dec->kind) {
	case DECODER_PASS:
		str_append_n(out, in, len);
		return;
	case DECODER_UU:
		uu_feed(dec, in, len, out);
		return;
	case DECODER_FILTER:
		break;
	}
	while (len > 0) {
		n = len < DECODER_CHUNK ? len : DECODER_CHUNK;
		memcpy(dec->buf, p, n);
		g_mime_filter_filter(dec->filter, dec->buf, n, 0, &outbuf, &outlen, &outpre);
		str_append_n(out, outbuf, outlen);
		p += n;
		len -= n;
	}
}

void
mime_decoder_finish(struct mime_decoder *dec, struct str *out)
{
	char pad[] = "=", *outbuf;
	size_t outlen, outpre;

	switch (dec->kind) {
	case DECODER_PASS:
		return;
	case DECODER_UU:
		if (dec->linelen > 0)
			uu_line(dec, out);
		return;
	case DECODER_FILTER:
		break;
	}
	/* Unpadded base64 leaves two or three characters pending; the
	 * padding GMime waits for releases their bytes (after a real "="
	 * it is ignored). */
	g_mime_filter_complete(dec->filter, pad, dec->base64 ? 1 : 0, 0, &outbuf, &outlen,
	    &outpre);
	str_append_n(out, outbuf, outlen);
}

void
mime_decoder_free(struct mime_decoder **dec)
{
	if (*dec == NULL)
		return;
	if ((*dec)->filter != NULL)
		g_object_unref((*dec)->filter);
	free((*dec)->buf);
	free(*dec);
	*dec = NULL;
}
