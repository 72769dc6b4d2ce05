/*
 * libFuzzer target for mime: the input is a raw message (and a header
 * value, and a part body). Checked on every input:
 * - mime_content_to_json() returns a complete, well-formed object whose
 *   strings are valid UTF-8 and whose part numbers are at most
 *   MIME_MAX_DEPTH deep;
 * - mime_decode_header_text() returns valid UTF-8;
 * - the streaming decoder gives the same bytes whatever the chunking.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "mime.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_string(json_t *s, bool nullable)
{
	if (nullable && json_is_null(s))
		return;
	if (!json_is_string(s) || !utf8_valid(json_string_value(s), json_string_length(s)))
		abort();
}

static void
check_part_id(const char *id)
{
	unsigned components = 1;

	if (*id < '1' || *id > '9')
		abort();
	for (; *id != '\0'; id++) {
		if (*id == '.') {
			components++;
			if (id[1] < '1' || id[1] > '9')
				abort();
		} else if (*id < '0' || *id > '9') {
			abort();
		}
	}
	if (components > MIME_MAX_DEPTH)
		abort();
}

static void
check_content(json_t *o, bool truncated)
{
	json_t *v, *e;
	size_t i;
	char *dump;

	if (!json_is_object(o) || json_object_size(o) != 5)
		abort();
	v = json_object_get(o, "headers");
	if (!json_is_array(v))
		abort();
	json_array_foreach(v, i, e) {
		check_string(json_object_get(e, "name"), false);
		check_string(json_object_get(e, "value"), false);
	}
	check_string(json_object_get(o, "text"), true);
	check_string(json_object_get(o, "html"), true);
	v = json_object_get(o, "attachments");
	if (!json_is_array(v))
		abort();
	json_array_foreach(v, i, e) {
		if (json_object_size(e) != 6)
			abort();
		check_string(json_object_get(e, "partId"), false);
		check_part_id(json_string_value(json_object_get(e, "partId")));
		check_string(json_object_get(e, "filename"), true);
		check_string(json_object_get(e, "contentType"), false);
		check_string(json_object_get(e, "disposition"), true);
		check_string(json_object_get(e, "contentId"), true);
		if (!json_is_integer(json_object_get(e, "size")) ||
		    json_integer_value(json_object_get(e, "size")) < 0)
			abort();
	}
	if (json_is_true(json_object_get(o, "truncated")) != truncated)
		abort();
	if ((dump = json_dumps(o, JSON_COMPACT)) == NULL)
		abort();
	free(dump);
}

static void
decode(const char *cte, const uint8_t *data, size_t size, size_t chunk, struct str *out)
{
	struct mime_decoder *dec = mime_decoder_new(cte);
	size_t n;

	str_reset(out);
	while (size > 0) {
		n = size < chunk ? size : chunk;
		mime_decoder_feed(dec, data, n, out);
		data += n;
		size -= n;
	}
	mime_decoder_finish(dec, out);
	mime_decoder_free(&dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ctes[] = { "base64", "quoted-printable", "x-uuencode", "7bit" };
	static bool initialized;
	struct str whole, chunked;
	char buf[21], *s, *d;
	json_t *o;
	size_t i, chunk;

	if (!initialized) {
		mime_init();
		initialized = true;
	}

	o = mime_content_to_json((const char *)data, size, size % 2 == 1);
	check_content(o, size % 2 == 1);
	json_decref(o);

	s = xstrndup((const char *)data, size);
	d = mime_decode_header_text(s);
	if (d == NULL || !utf8_valid(d, strlen(d)))
		abort();
	free(d);
	if (mime_date_to_iso(s, buf) == 0 && strlen(buf) != 20)
		abort();
	free(s);

	str_init(&whole);
	str_init(&chunked);
	chunk = size > 0 ? (size_t)data[0] % 13 + 1 : 1;
	for (i = 0; i < N_ELEMENTS(ctes); i++) {
		decode(ctes[i], data, size, size + 1, &whole);
		decode(ctes[i], data, size, chunk, &chunked);
		if (whole.len != chunked.len ||
		    (whole.len > 0 && memcmp(whole.data, chunked.data, whole.len) != 0))
			abort();
	}
	str_free(&whole);
	str_free(&chunked);
	return 0;
}
