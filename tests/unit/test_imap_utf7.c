/* Unit tests for imap_utf7. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_utf7.h"
#include "util.h"

static const struct {
	const char *utf8;
	const char *utf7;
} pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
	{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },
	{ "&", "&-" },
	{ "a&b", "a&-b" },
	{ "&&", "&-&-" },
	{ "Archive/2026", "Archive/2026" },
	{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
	{ "\xf0\x9f\x92\xa9x\xf0\x9f\x98\x80", "&2D3cqQ-x&2D3eAA-" },
	{ "\xf4\x8f\xbf\xbf", "&2,,f,w-" },
	{ "\xc3\xa4&", "&AOQ-&-" },
	{ "\t", "&AAk-" },
	{ "\xe2\x82\xac", "&IKw-" },
	{ "Mail \xf0\x9f\x93\xa7 & Co/\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9",
	  "Mail &2D3c5w- &- Co/&ANw-n&AO8-c&APY-d&AOk-" },
	{ "\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5"
	  "\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5",
	  "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-" },
	{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "-&-", "-&--" },
};

START_TEST(test_encode_known)
{
	char *s = imap_utf8_to_utf7(pairs[_i].utf8);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, pairs[_i].utf7);
	free(s);
}
END_TEST

START_TEST(test_decode_known)
{
	char *s = imap_utf7_to_utf8(pairs[_i].utf7);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, pairs[_i].utf8);
	free(s);
}
END_TEST

static const char *const bad_utf7[] = {
	"&",                    /* not closed */
	"a&",
	"&AOQ",
	"&ZeVnLIqe",
	"&AO/-",                /* "/" is not in the modified alphabet */
	"&AO=-",                /* no padding */
	"&AO Q-",
	"&AO\xc3\xa4-",
	"&A-",                  /* a whole unused base64 character */
	"&AOQA-",
	"&AOR-",                /* non-zero left-over bits */
	"&2D0-",                /* lone high surrogate */
	"&3gA-",                /* lone low surrogate */
	"&2D0AYQ-",             /* high surrogate followed by "a" */
	"&2D3eAA3gA-",          /* pair, then a lone low surrogate */
	"&AAA-",                /* U+0000 */
	"&AGE-",                /* printable ASCII must be direct */
	"&AOQAYQ-",
	"&AOQ-&APw-",           /* two shifted sequences back to back */
	"Entw\xc3\xbcrfe",      /* raw 8-bit */
	"a\tb",                 /* raw control characters */
	"a\x7f",
	"\x80",
};

START_TEST(test_decode_invalid)
{
	char *s = imap_utf7_to_utf8(bad_utf7[_i]);

	if (s != NULL)
		ck_abort_msg("accepted \"%s\" as \"%s\"", bad_utf7[_i], s);
}
END_TEST

static const char *const bad_utf8[] = {
	"\xc3",                 /* truncated */
	"a\xc3(",
	"\xe6\x97",
	"\xc0\xaf",             /* overlong */
	"\xe0\x80\xaf",
	"\xf0\x80\x80\xaf",
	"\xed\xa0\x80",         /* UTF-16 surrogate */
	"\xed\xbf\xbf",
	"\xf4\x90\x80\x80",     /* above U+10FFFF */
	"\xf8\x88\x80\x80\x80",
	"\xff",
	"\x80",                 /* lone continuation byte */
	"Entw\xfcrfe",          /* Latin-1 */
};

START_TEST(test_encode_invalid)
{
	char *s = imap_utf8_to_utf7(bad_utf8[_i]);

	if (s != NULL)
		ck_abort_msg("accepted invalid UTF-8 #%d as \"%s\"", _i, s);
}
END_TEST

START_TEST(test_ampersand_after_shift)
{
	char *s;

	/* "&-" right after a shifted sequence is a literal "&". */
	s = imap_utf7_to_utf8("&AOQ-&-&-x");
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "\xc3\xa4&&x");
	free(s);
	/* A direct character between two sequences makes them legal. */
	s = imap_utf7_to_utf8("&AOQ-x&APw-");
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "\xc3\xa4x\xc3\xbc");
	free(s);
}
END_TEST

/* xorshift64*: a deterministic generator for the property tests. */
static uint64_t
rnd(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dULL;
}

static void
put_utf8(struct str *s, uint32_t cp)
{
	char b[4];

	if (cp < 0x80) {
		str_append_c(s, (char)cp);
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		str_append_n(s, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		str_append_n(s, b, 3);
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		str_append_n(s, b, 4);
	}
}

/* A random scalar value from classes that exercise every code path. */
static uint32_t
random_cp(uint64_t *st)
{
	static const char special[] = "&-/.~ ,+A";
	uint32_t cp;

	switch (rnd(st) % 8) {
	case 0:
		return (uint32_t)special[rnd(st) % (sizeof(special) - 1)];
	case 1:
		return 0x20 + (uint32_t)(rnd(st) % 0x5f);
	case 2:
		return 1 + (uint32_t)(rnd(st) % 0x1f);     /* controls */
	case 3:
		return 0x7f + (uint32_t)(rnd(st) % 0x181); /* DEL, Latin */
	case 4:
		cp = 0x800 + (uint32_t)(rnd(st) % (0x10000 - 0x800));
		return (cp >= 0xd800 && cp <= 0xdfff) ? 0xfffd : cp;
	case 5:
		return 0x10000 + (uint32_t)(rnd(st) % 0x100000);
	case 6:
		return 0xffff - (uint32_t)(rnd(st) % 2);
	default:
		return 0x1f600 + (uint32_t)(rnd(st) % 0x50);
	}
}

START_TEST(test_roundtrip_property)
{
	uint64_t st = 0x9e3779b97f4a7c15ULL;
	struct str s;
	char *enc, *dec, *enc2;
	size_t i, n, k;

	str_init(&s);
	for (i = 0; i < 20000; i++) {
		str_reset(&s);
		n = rnd(&st) % 24;
		for (k = 0; k < n; k++)
			put_utf8(&s, random_cp(&st));
		enc = imap_utf8_to_utf7(s.data != NULL ? s.data : "");
		ck_assert_ptr_nonnull(enc);
		for (k = 0; enc[k] != '\0'; k++)
			ck_assert(enc[k] >= 0x20 && enc[k] <= 0x7e);
		dec = imap_utf7_to_utf8(enc);
		if (dec == NULL)
			ck_abort_msg("cannot decode own output \"%s\"", enc);
		ck_assert_str_eq(dec, s.data != NULL ? s.data : "");
		enc2 = imap_utf8_to_utf7(dec);
		ck_assert_ptr_nonnull(enc2);
		ck_assert_str_eq(enc2, enc);
		free(enc);
		free(dec);
		free(enc2);
	}
	str_free(&s);
}
END_TEST

/* Random modified UTF-7 text: whatever the decoder accepts must encode
 * back to exactly the same bytes (the canonical form). */
START_TEST(test_decode_canonical_property)
{
	static const char alphabet[] = "&&&---AOQgZeVn2D3cqQw,+/ a=\x80";
	uint64_t st = 0x0123456789abcdefULL;
	char buf[20], *dec, *enc;
	size_t i, n, k, accepted = 0;

	for (i = 0; i < 200000; i++) {
		n = rnd(&st) % (sizeof(buf) - 1);
		for (k = 0; k < n; k++)
			buf[k] = alphabet[rnd(&st) % (sizeof(alphabet) - 1)];
		buf[n] = '\0';
		if ((dec = imap_utf7_to_utf8(buf)) == NULL)
			continue;
		accepted++;
		enc = imap_utf8_to_utf7(dec);
		ck_assert_ptr_nonnull(enc);
		if (strcmp(enc, buf) != 0)
			ck_abort_msg("\"%s\" decoded, but encodes as \"%s\"", buf, enc);
		free(enc);
		free(dec);
	}
	/* The generator must reach the decoder's success paths too. */
	ck_assert_uint_gt(accepted, 1000);
}
END_TEST

static Suite *
imap_utf7_suite(void)
{
	Suite *s = suite_create("imap_utf7");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_encode_known, 0, (int)N_ELEMENTS(pairs));
	tcase_add_loop_test(tc, test_decode_known, 0, (int)N_ELEMENTS(pairs));
	tcase_add_loop_test(tc, test_decode_invalid, 0, (int)N_ELEMENTS(bad_utf7));
	tcase_add_loop_test(tc, test_encode_invalid, 0, (int)N_ELEMENTS(bad_utf8));
	tcase_add_test(tc, test_ampersand_after_shift);
	tcase_add_test(tc, test_roundtrip_property);
	tcase_add_test(tc, test_decode_canonical_property);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(imap_utf7_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
