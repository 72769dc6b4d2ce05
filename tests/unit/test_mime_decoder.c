/* Unit tests for mime's streaming body-part decoder (download --part). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
 * The streaming decoder.
 */

/* Decodes in with the given encoding, fed chunk bytes at a time. */
static void
decode_chunked(const char *cte, const void *in, size_t len, size_t chunk, struct str *out)
{
	struct mime_decoder *dec = mime_decoder_new(cte);
	const char *p = in;
	size_t n;

	str_reset(out);
	while (len > 0) {
		n = len < chunk ? len : chunk;
		mime_decoder_feed(dec, p, n, out);
		p += n;
		len -= n;
	}
	mime_decoder_finish(dec, out);
	mime_decoder_free(&dec);
	ck_assert_ptr_null(dec);
}

static void
check_decode_all_chunks(const char *cte, const void *in, size_t len,
    const void *want, size_t wantlen)
{
	struct str out;
	size_t chunk;

	str_init(&out);
	for (chunk = 1; chunk <= len + 1; chunk++) {
		decode_chunked(cte, in, len, chunk, &out);
		ck_assert_msg(out.len == wantlen, "%s chunk %zu: %zu bytes, want %zu",
		    cte != NULL ? cte : "NULL", chunk, out.len, wantlen);
		ck_assert_msg(wantlen == 0 || memcmp(out.data, want, wantlen) == 0,
		    "%s chunk %zu: wrong bytes", cte != NULL ? cte : "NULL", chunk);
	}
	str_free(&out);
}

START_TEST(test_decoder_base64)
{
	unsigned char data[700];
	char *b64;

	random_bytes(data, sizeof(data), 99);
	b64 = base64_lines(data, sizeof(data));
	check_decode_all_chunks("base64", b64, strlen(b64), data, sizeof(data));
	check_decode_all_chunks(" BASE64", b64, strlen(b64), data, sizeof(data));
	free(b64);
	/* 698 bytes: the last quantum is padded with "==". */
	b64 = base64_lines(data, 698);
	check_decode_all_chunks("Base64", b64, strlen(b64), data, 698);
	free(b64);
}
END_TEST

START_TEST(test_decoder_base64_broken)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "QUJD!!!REVG", "ABCDEF" },
		{ "QU JD\r\n\tRE-VG", "ABCDEF" },
		{ "QUI", "AB" },          /* unpadded */
		{ "QQ", "A" },
		{ "Q", "" },
		{ "QUJD====", "ABC" },
		{ "QQ==QUJD", "A" },      /* data after the padding is ignored */
		{ "", "" },
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++)
		check_decode_all_chunks("base64", cases[i].in, strlen(cases[i].in),
		    cases[i].want, strlen(cases[i].want));
}
END_TEST

START_TEST(test_decoder_qp)
{
	static const char in[] =
	    "Gr=C3=BC=C3=9Fe, soft =\r\n"
	    "break=3D=3d and =\n"
	    "unix soft break\r\n"
	    "tab\there =E2=82=AC\r\n";
	static const char want[] =
	    UTF8_GRUESSE ", soft break== and unix soft break\r\n"
	    "tab\there \xe2\x82\xac\r\n";

	check_decode_all_chunks("quoted-printable", in, sizeof(in) - 1, want, sizeof(want) - 1);
	check_decode_all_chunks("Quoted-Printable", in, sizeof(in) - 1, want, sizeof(want) - 1);
}
END_TEST

START_TEST(test_decoder_uuencode)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "begin 644 f\n+:&5L;&\\@=V]R;&0 \n`\nend\n", "hello world" },
		{ "junk\r\nbegin 644 f\r\n+:&5L;&\\@=V]R;&0 \r\n`\r\nend\r\n", "hello world" },
		/* trailing space stripped, no end line, trailing junk */
		{ "begin 600 a b\n+:&5L;&\\@=V]R;&0\n", "hello world" },
		{ "begin 644 f\n#86)C\n`\n#86)C\n", "abc" },
		{ "begin 644 f\n#86)C\nend\n#86)C", "abc" },
		{ "no begin line\n#86)C\n", "" },
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++)
		check_decode_all_chunks(i % 2 == 0 ? "x-uuencode" : "uuencode", cases[i].in,
		    strlen(cases[i].in), cases[i].want, strlen(cases[i].want));
}
END_TEST

START_TEST(test_decoder_passthrough)
{
	static const char *const ctes[] = { "7bit", "8bit", "BINARY", "x-unknown", "", "base6" };
	static const char in[] = "=41 QUJD \0\xff\r\n";
	size_t i;

	check_decode_all_chunks(NULL, in, sizeof(in) - 1, in, sizeof(in) - 1);
	for (i = 0; i < N_ELEMENTS(ctes); i++)
		check_decode_all_chunks(ctes[i], in, sizeof(in) - 1, in, sizeof(in) - 1);
}
END_TEST

START_TEST(test_decoder_large_feed)
{
	size_t len = 300000;
	unsigned char *data = xmalloc(len);
	struct str out;
	char *b64;

	random_bytes(data, len, 5);
	b64 = base64_lines(data, len);
	str_init(&out);
	decode_chunked("base64", b64, strlen(b64), strlen(b64), &out);
	ck_assert_uint_eq(out.len, len);
	ck_assert(memcmp(out.data, data, len) == 0);
	decode_chunked("base64", b64, strlen(b64), 65537, &out);
	ck_assert_uint_eq(out.len, len);
	ck_assert(memcmp(out.data, data, len) == 0);
	str_free(&out);
	free(b64);
	free(data);
}
END_TEST

static Suite *
decoder_suite(void)
{
	Suite *s = suite_create("mime_decoder");
	TCase *td = tcase_create("decoder");

	tcase_set_timeout(td, 60);
	tcase_add_test(td, test_decoder_base64);
	tcase_add_test(td, test_decoder_base64_broken);
	tcase_add_test(td, test_decoder_qp);
	tcase_add_test(td, test_decoder_uuencode);
	tcase_add_test(td, test_decoder_passthrough);
	tcase_add_test(td, test_decoder_large_feed);
	suite_add_tcase(s, td);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(decoder_suite());
	int failed;

	mime_init();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	mime_shutdown();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
