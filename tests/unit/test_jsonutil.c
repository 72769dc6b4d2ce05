/*
 * Unit tests for jsonutil: utf8_valid on every class of malformed UTF-8
 * (overlong forms, surrogates, truncated sequences, stray continuation
 * bytes, NUL, code points above U+10FFFF), utf8_repair (one U+FFFD per
 * byte that does not start a valid sequence), and json_str_n, which must
 * never return NULL nor a string that is not valid UTF-8.
 *
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonutil.h"
#include "util.h"

#define FFFD "\xef\xbf\xbd"

struct utf8_case {
	const char *s;
	size_t len;             /* 0: strlen(s) */
	bool valid;
	const char *repaired;   /* NULL: same as s */
};

#define C(str, v, rep) { str, sizeof(str) - 1, v, rep }

static const struct utf8_case cases[] = {
	C("", true, NULL),
	C("plain ASCII ~\x7f", true, NULL),
	C("\xc2\x80", true, NULL),                      /* U+0080 */
	C("caf\xc3\xa9", true, NULL),                   /* é */
	C("\xdf\xbf", true, NULL),                      /* U+07FF */
	C("\xe0\xa0\x80", true, NULL),                  /* U+0800 */
	C("\xe2\x82\xac", true, NULL),                  /* € */
	C("\xed\x9f\xbf", true, NULL),                  /* U+D7FF */
	C("\xee\x80\x80", true, NULL),                  /* U+E000 */
	C("\xef\xbf\xbf", true, NULL),                  /* U+FFFF */
	C("\xf0\x90\x80\x80", true, NULL),              /* U+10000 */
	C("\xf0\x9f\x98\x80", true, NULL),              /* 😀 */
	C("\xf4\x8f\xbf\xbf", true, NULL),              /* U+10FFFF */
	/* overlong forms */
	C("\xc0\x80", false, FFFD FFFD),
	C("\xc1\xbf", false, FFFD FFFD),
	C("\xe0\x80\x80", false, FFFD FFFD FFFD),
	C("\xe0\x9f\xbf", false, FFFD FFFD FFFD),
	C("\xf0\x80\x80\x80", false, FFFD FFFD FFFD FFFD),
	C("\xf0\x8f\xbf\xbf", false, FFFD FFFD FFFD FFFD),
	/* UTF-16 surrogates */
	C("\xed\xa0\x80", false, FFFD FFFD FFFD),       /* U+D800 */
	C("\xed\xbf\xbf", false, FFFD FFFD FFFD),       /* U+DFFF */
	C("\xed\xa0\xbd\xed\xb8\x80", false, FFFD FFFD FFFD FFFD FFFD FFFD),
	/* above U+10FFFF, and bytes that never start a sequence */
	C("\xf4\x90\x80\x80", false, FFFD FFFD FFFD FFFD),
	C("\xf5\x80\x80\x80", false, FFFD FFFD FFFD FFFD),
	C("\xf8\x88\x80\x80\x80", false, FFFD FFFD FFFD FFFD FFFD),
	C("a\xfe" "b\xff", false, "a" FFFD "b" FFFD),
	/* truncated sequences, alone and followed by ASCII */
	C("\xc3", false, FFFD),
	C("\xe2\x82", false, FFFD FFFD),
	C("\xf0\x9f\x98", false, FFFD FFFD FFFD),
	C("\xe2\x82" "A", false, FFFD FFFD "A"),
	C("\xf0\x9f\x98" "\xc3\xa9", false, FFFD FFFD FFFD "\xc3\xa9"),
	/* stray continuation bytes */
	C("\x80", false, FFFD),
	C("a\xbf" "b", false, "a" FFFD "b"),
	/* NUL */
	C("\0", false, FFFD),
	C("a\0b", false, "a" FFFD "b"),
	/* valid text around an invalid byte survives intact */
	C("\xc3\xa9\xff\xe2\x82\xac", false, "\xc3\xa9" FFFD "\xe2\x82\xac"),
	/* latin-1 as a server might send it */
	C("Gr\xfc\xdf" "e", false, "Gr" FFFD FFFD "e"),
};

START_TEST(test_utf8_valid)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++)
		ck_assert_msg(utf8_valid(cases[i].s, cases[i].len) == cases[i].valid,
		    "case %zu", i);
	/* the length is respected: a sequence cut by len is truncated */
	ck_assert(!utf8_valid("\xc3\xa9", 1));
	ck_assert(!utf8_valid("\xf0\x9f\x98\x80", 3));
	ck_assert(utf8_valid("ab\xff", 2));
	ck_assert(utf8_valid(NULL, 0));
}
END_TEST

START_TEST(test_utf8_repair)
{
	const char *want;
	size_t i, len;
	char *r;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		want = cases[i].repaired != NULL ? cases[i].repaired : cases[i].s;
		len = 12345;
		r = utf8_repair(cases[i].s, cases[i].len, &len);
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(len == strlen(want) && memcmp(r, want, len + 1) == 0,
		    "case %zu: got \"%s\" (%zu bytes)", i, r, len);
		ck_assert(utf8_valid(r, len));
		free(r);
	}
	/* len_r may be NULL; the result is NUL-terminated */
	r = utf8_repair("x\xff", 2, NULL);
	ck_assert_str_eq(r, "x" FFFD);
	free(r);
	r = utf8_repair("\xc3\xa9", 1, &len);
	ck_assert_str_eq(r, FFFD);
	free(r);
}
END_TEST

/* Whatever the bytes, the repair is valid, and valid input is kept. */
START_TEST(test_utf8_random)
{
	unsigned int seed = 4242;
	char buf[64], *r;
	size_t i, n, len, round;

	for (round = 0; round < 20000; round++) {
		n = (size_t)rand_r(&seed) % sizeof(buf);
		for (i = 0; i < n; i++) {
			/* bias towards the interesting bytes */
			unsigned int x = (unsigned int)rand_r(&seed);

			buf[i] = (char)(x % 3 == 0 ? 0x80 + (x >> 8) % 0x80 : x >> 8);
		}
		r = utf8_repair(buf, n, &len);
		ck_assert(utf8_valid(r, len));
		ck_assert_uint_eq(strlen(r), len);
		if (utf8_valid(buf, n)) {
			ck_assert_uint_eq(len, n);
			ck_assert_mem_eq(r, buf, n);
		} else {
			ck_assert_ptr_nonnull(strstr(r, FFFD));
		}
		free(r);
	}
}
END_TEST

START_TEST(test_json_str)
{
	json_t *j;
	char *dump;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		const char *want = cases[i].repaired != NULL ? cases[i].repaired : cases[i].s;

		j = json_str_n(cases[i].s, cases[i].len);
		ck_assert_ptr_nonnull(j);
		ck_assert(json_is_string(j));
		ck_assert_uint_eq(json_string_length(j), strlen(want));
		ck_assert_str_eq(json_string_value(j), want);
		/* jansson itself accepts it: dumps and loads back */
		dump = json_dumps(j, JSON_ENCODE_ANY);
		ck_assert_ptr_nonnull(dump);
		json_decref(j);
		j = json_loads(dump, JSON_DECODE_ANY, NULL);
		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(json_string_value(j), want);
		json_decref(j);
		free(dump);
	}
	j = json_str(NULL);
	ck_assert(json_is_null(j));
	json_decref(j);
	j = json_str("Gr\xfc\xdf");
	ck_assert_str_eq(json_string_value(j), "Gr" FFFD FFFD);
	json_decref(j);
	j = json_str("");
	ck_assert(json_is_string(j));
	ck_assert_str_eq(json_string_value(j), "");
	json_decref(j);
}
END_TEST

/*
 * Fixed bug (jsonutil.c json_str_n, latent): json_str_n(NULL, 0) abort()s:
 * utf8_valid(NULL, 0) is true and json_stringn_nocheck(NULL, 0) returns
 * NULL, which json_str_n takes for out-of-memory. (NULL, 0) is exactly
 * what imap_arg_get_nstring() gives for NIL; today's callers all check
 * first, but the header promises "Never NULL" for any len bytes.
 */
START_TEST(test_json_str_null_empty)
{
	json_t *j = json_str_n(NULL, 0);

	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(j), "");
	json_decref(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jsonutil");
	TCase *tc = tcase_create("jsonutil");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_utf8_valid);
	tcase_add_test(tc, test_utf8_repair);
	tcase_add_test(tc, test_utf8_random);
	tcase_add_test(tc, test_json_str);
	tcase_add_test(tc, test_json_str_null_empty);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
