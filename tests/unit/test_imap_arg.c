/*
 * Unit tests for imap_arg.c: the helpers on parsed arguments and response
 * codes, IMAP sequence sets, and [APPENDUID]/[COPYUID] (all declared in
 * imap_parser.h). Responses are made with the real parser.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"
#include "util.h"

/* Parses exactly one complete response that fills the whole input. */
static const struct imap_resp *
parse_one_n(struct imap_parser *p, const char *in, size_t len)
{
	const struct imap_resp *resp;
	size_t consumed;

	ck_assert_int_eq(imap_parser_feed(p, in, len, &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, len);
	return resp;
}

#define parse_one(p, in) parse_one_n(p, in, sizeof(in) - 1)

START_TEST(test_arg_helpers)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	const struct imap_arg *a, *list;
	const char *s;
	size_t len;
	uint32_t u32, count;
	uint64_t u64;

	resp = parse_one(p, "* X atom \"str\" {3}\r\nl\0t NIL (1 2) 4294967296 "
	    "4294967295 18446744073709551615 18446744073709551616 -1 \"5\"\r\n");
	ck_assert_uint_eq(resp->argc, 11);
	a = resp->args;
	ck_assert(imap_arg_is_atom(&a[0], "ATOM"));
	ck_assert(!imap_arg_is_atom(&a[0], "ato"));
	ck_assert(!imap_arg_is_atom(&a[1], "str"));
	ck_assert(imap_arg_is_atom(&a[3], "nil"));

	ck_assert(imap_arg_get_astring(&a[0], &s, &len));
	ck_assert_str_eq(s, "atom");
	ck_assert(imap_arg_get_astring(&a[1], &s, &len));
	ck_assert_uint_eq(len, 3);
	ck_assert(imap_arg_get_astring(&a[2], &s, &len));
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(s, "l\0t", 4), 0);
	/* The atom NIL is a valid astring (a mailbox may be named NIL). */
	ck_assert(imap_arg_get_astring(&a[3], &s, &len));
	ck_assert_str_eq(s, "NIL");
	ck_assert(!imap_arg_get_astring(&a[4], &s, &len));

	ck_assert(imap_arg_get_nstring(&a[3], &s, &len));
	ck_assert_ptr_null(s);
	ck_assert_uint_eq(len, 0);
	ck_assert(imap_arg_get_nstring(&a[1], &s, &len));
	ck_assert_str_eq(s, "str");
	ck_assert(!imap_arg_get_nstring(&a[4], &s, &len));

	ck_assert(imap_arg_get_list(&a[4], &list, &count));
	ck_assert_uint_eq(count, 2);
	ck_assert_int_eq(imap_arg_get_u32(&list[1], &u32), 0);
	ck_assert_uint_eq(u32, 2);
	ck_assert(!imap_arg_get_list(&a[0], &list, &count));

	ck_assert_int_eq(imap_arg_get_u32(&a[5], &u32), -1);
	ck_assert_int_eq(imap_arg_get_u64(&a[5], &u64), 0);
	ck_assert_uint_eq(u64, 4294967296ULL);
	ck_assert_int_eq(imap_arg_get_u32(&a[6], &u32), 0);
	ck_assert_uint_eq(u32, UINT32_MAX);
	ck_assert_int_eq(imap_arg_get_u64(&a[7], &u64), 0);
	ck_assert_uint_eq(u64, UINT64_MAX);
	ck_assert_int_eq(imap_arg_get_u64(&a[8], &u64), -1);
	ck_assert_int_eq(imap_arg_get_u32(&a[9], &u32), -1);
	/* Numbers are atoms; a quoted "5" is not a number. */
	ck_assert_int_eq(imap_arg_get_u32(&a[10], &u32), -1);
	ck_assert_int_eq(imap_arg_get_u32(&a[0], &u32), -1);
	ck_assert_int_eq(imap_arg_get_u32(NULL, &u32), -1);
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_resp_code_helpers)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	uint32_t u32 = 0;
	uint64_t u64 = 0;

	resp = parse_one(p, "* OK [UIDNEXT 4] Predicted\r\n");
	ck_assert(imap_resp_code_is(resp, "uidnext"));
	ck_assert(!imap_resp_code_is(resp, "UIDVALIDITY"));
	ck_assert(imap_resp_code_u32(resp, "UIDNEXT", &u32));
	ck_assert_uint_eq(u32, 4);
	ck_assert(!imap_resp_code_u32(resp, "UIDVALIDITY", &u32));

	resp = parse_one(p, "* OK [HIGHESTMODSEQ 715194045007] x\r\n");
	ck_assert(!imap_resp_code_u32(resp, "HIGHESTMODSEQ", &u32));
	ck_assert(imap_resp_code_u64(resp, "HIGHESTMODSEQ", &u64));
	ck_assert_uint_eq(u64, 715194045007ULL);

	resp = parse_one(p, "* OK [UIDNEXT] x\r\n");
	ck_assert(imap_resp_code_is(resp, "UIDNEXT"));
	ck_assert(!imap_resp_code_u32(resp, "UIDNEXT", &u32));
	resp = parse_one(p, "* OK [UIDNEXT \"4\"] x\r\n");
	ck_assert(!imap_resp_code_u32(resp, "UIDNEXT", &u32));
	resp = parse_one(p, "* OK [UIDNEXT 4 5] x\r\n");
	ck_assert(!imap_resp_code_u32(resp, "UIDNEXT", &u32));
	resp = parse_one(p, "* OK no code\r\n");
	ck_assert(!imap_resp_code_is(resp, "UIDNEXT"));
	imap_parser_free(&p);
}
END_TEST

static void
check_seqset(const char *s, const char *expect_ranges, uint64_t expect_count)
{
	struct imap_seqset set;
	struct str out;
	size_t i;

	ck_assert_int_eq(imap_seqset_parse(s, strlen(s), &set), 0);
	str_init(&out);
	for (i = 0; i < set.count; i++)
		str_printf(&out, "%s%u:%u", i > 0 ? "," : "", set.ranges[i].lo,
		    set.ranges[i].hi);
	ck_assert_str_eq(out.data, expect_ranges);
	ck_assert_uint_eq(imap_seqset_count(&set), expect_count);
	str_free(&out);
	imap_seqset_free(&set);
	ck_assert_ptr_null(set.ranges);
	ck_assert_uint_eq(set.count, 0);
}

START_TEST(test_seqset)
{
	static const char *const bad[] = {
		"", ",", "1,", ",1", "0", "1:0", "a", "1:2:3", "4294967296",
		" 1", "1 ", "1,,2", ":", "1:", ":1", "-1", "**", "1:*x",
	};
	struct imap_seqset set;
	size_t i;

	check_seqset("1", "1:1", 1);
	check_seqset("304,319:320", "304:304,319:320", 3);
	check_seqset("3956:3958", "3956:3958", 3);
	check_seqset("5:3", "3:5", 3);
	check_seqset("*", "4294967295:4294967295", 1);
	check_seqset("1:*", "1:4294967295", 4294967295ULL);
	check_seqset("9,1:2,4294967295", "9:9,1:2,4294967295:4294967295", 4);
	/* Given order is kept, overlaps are not merged. */
	check_seqset("5,1,5", "5:5,1:1,5:5", 3);
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		set.ranges = (void *)&set;
		set.count = 99;
		if (imap_seqset_parse(bad[i], strlen(bad[i]), &set) != -1)
			ck_abort_msg("\"%s\" accepted", bad[i]);
		ck_assert_ptr_null(set.ranges);
		ck_assert_uint_eq(set.count, 0);
	}
	/* A counted buffer: only len bytes are read. */
	ck_assert_int_eq(imap_seqset_parse("12,x", 2, &set), 0);
	ck_assert_uint_eq(set.ranges[0].lo, 12);
	ck_assert_uint_eq(imap_seqset_nth(&set, 0), 12);
	ck_assert_uint_eq(imap_seqset_nth(&set, 1), 0);
	imap_seqset_free(&set);

	ck_assert_int_eq(imap_seqset_parse("304,319:320,7", 13, &set), 0);
	ck_assert_uint_eq(imap_seqset_nth(&set, 0), 304);
	ck_assert_uint_eq(imap_seqset_nth(&set, 1), 319);
	ck_assert_uint_eq(imap_seqset_nth(&set, 2), 320);
	ck_assert_uint_eq(imap_seqset_nth(&set, 3), 7);
	ck_assert_uint_eq(imap_seqset_nth(&set, 4), 0);
	ck_assert_uint_eq(imap_seqset_nth(&set, UINT64_MAX), 0);
	imap_seqset_free(&set);
	ck_assert_int_eq(imap_seqset_parse("4294967290:*", 12, &set), 0);
	ck_assert_uint_eq(imap_seqset_nth(&set, 5), UINT32_MAX);
	ck_assert_uint_eq(imap_seqset_nth(&set, 6), 0);
	imap_seqset_free(&set);
}
END_TEST

START_TEST(test_appenduid_copyuid)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	struct imap_seqset src, dst;
	uint32_t uv = 0, uid = 0;

	resp = parse_one(p, "A1 OK [APPENDUID 38505 3955] APPEND completed\r\n");
	ck_assert(imap_resp_appenduid(resp, &uv, &uid));
	ck_assert_uint_eq(uv, 38505);
	ck_assert_uint_eq(uid, 3955);
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	resp = parse_one(p, "A1 OK [appenduid 1 4294967295] x\r\n");
	ck_assert(imap_resp_appenduid(resp, &uv, &uid));
	ck_assert_uint_eq(uid, UINT32_MAX);
	resp = parse_one(p, "A1 OK [APPENDUID 0 1] x\r\n");
	ck_assert(!imap_resp_appenduid(resp, &uv, &uid));
	resp = parse_one(p, "A1 OK [APPENDUID 1 2:3] x\r\n");
	ck_assert(!imap_resp_appenduid(resp, &uv, &uid));
	resp = parse_one(p, "A1 OK [APPENDUID 1] x\r\n");
	ck_assert(!imap_resp_appenduid(resp, &uv, &uid));

	resp = parse_one(p, "A2 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n");
	ck_assert(imap_resp_copyuid(resp, &uv, &src, &dst));
	ck_assert_uint_eq(uv, 38505);
	ck_assert_uint_eq(imap_seqset_count(&src), 3);
	ck_assert_uint_eq(imap_seqset_nth(&src, 0), 304);
	ck_assert_uint_eq(imap_seqset_nth(&dst, 0), 3956);
	ck_assert_uint_eq(imap_seqset_nth(&src, 1), 319);
	ck_assert_uint_eq(imap_seqset_nth(&dst, 1), 3957);
	ck_assert_uint_eq(imap_seqset_nth(&src, 2), 320);
	ck_assert_uint_eq(imap_seqset_nth(&dst, 2), 3958);
	imap_seqset_free(&src);
	imap_seqset_free(&dst);
	/* Order matters: 5,3 maps to 11,10 element by element. */
	resp = parse_one(p, "A3 OK [COPYUID 7 5,3 11,10] Done\r\n");
	ck_assert(imap_resp_copyuid(resp, &uv, &src, &dst));
	ck_assert_uint_eq(imap_seqset_nth(&src, 0), 5);
	ck_assert_uint_eq(imap_seqset_nth(&dst, 0), 11);
	ck_assert_uint_eq(imap_seqset_nth(&src, 1), 3);
	ck_assert_uint_eq(imap_seqset_nth(&dst, 1), 10);
	imap_seqset_free(&src);
	imap_seqset_free(&dst);

	/* Mismatched sizes and malformed sets are refused (nothing to free:
	 * ASan would report a leak otherwise). */
	resp = parse_one(p, "A4 OK [COPYUID 7 1:3 10:11] x\r\n");
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	resp = parse_one(p, "A4 OK [COPYUID 7 1:3 x] x\r\n");
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	resp = parse_one(p, "A4 OK [COPYUID 7 x 1] x\r\n");
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	resp = parse_one(p, "A4 OK [COPYUID 0 1 1] x\r\n");
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	resp = parse_one(p, "A4 OK [COPYUID 7 1] x\r\n");
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	resp = parse_one(p, "A4 OK [COPYUID 7 \"1\" 2] x\r\n");
	ck_assert(!imap_resp_copyuid(resp, &uv, &src, &dst));
	imap_parser_free(&p);
}
END_TEST
/* The members the iterator gives for s, as "a,b,c" (at most limit). */
static void
check_iter(const char *s, size_t limit, const char *expect)
{
	struct imap_seqset set;
	struct imap_seqset_iter it;
	struct str out;
	uint32_t v;
	uint64_t k = 0;

	ck_assert_int_eq(imap_seqset_parse(s, strlen(s), &set), 0);
	str_init(&out);
	str_append(&out, "");
	imap_seqset_iter_init(&it, &set);
	while (k < limit && imap_seqset_iter_next(&it, &v)) {
		/* the same order as imap_seqset_nth */
		ck_assert_uint_eq(v, imap_seqset_nth(&set, k));
		str_printf(&out, "%s%u", k > 0 ? "," : "", v);
		k++;
	}
	ck_assert_msg(strcmp(out.data, expect) == 0, "%s: got %s, want %s", s, out.data, expect);
	if (k < limit) {
		/* at the end it stays at the end */
		ck_assert_uint_eq(k, imap_seqset_count(&set));
		ck_assert(!imap_seqset_iter_next(&it, &v));
		ck_assert(!imap_seqset_iter_next(&it, &v));
	}
	str_free(&out);
	imap_seqset_free(&set);
}

START_TEST(test_seqset_iter)
{
	struct imap_seqset set = { NULL, 0 };
	struct imap_seqset_iter it;
	struct str s;
	uint32_t v, want;
	uint64_t n;

	check_iter("1", 100, "1");
	check_iter("304,319:320,7", 100, "304,319,320,7");
	check_iter("5:3", 100, "3,4,5");                /* normalised by the parser */
	check_iter("5,1,5", 100, "5,1,5");              /* order kept, no merging */
	check_iter("2:4,9,7:6", 100, "2,3,4,9,6,7");
	check_iter("*", 100, "4294967295");             /* "*" as UINT32_MAX */
	check_iter("4294967293:*", 100, "4294967293,4294967294,4294967295");
	check_iter("4294967295,1", 100, "4294967295,1"); /* no wrap past the top */
	check_iter("1:*", 3, "1,2,3");
	/* the empty set gives nothing */
	imap_seqset_iter_init(&it, &set);
	ck_assert(!imap_seqset_iter_next(&it, &v));

	/* 200,000 singletons (every other message expunged) in one walk */
	str_init(&s);
	for (n = 1; n <= 200000; n++)
		str_printf(&s, "%s%llu", n > 1 ? "," : "", (unsigned long long)n * 2);
	ck_assert_int_eq(imap_seqset_parse(s.data, s.len, &set), 0);
	ck_assert_uint_eq(set.count, 200000);
	imap_seqset_iter_init(&it, &set);
	for (n = 0, want = 2; imap_seqset_iter_next(&it, &v); n++, want += 2)
		ck_assert_uint_eq(v, want);
	ck_assert_uint_eq(n, 200000);
	imap_seqset_free(&set);
	str_free(&s);
}
END_TEST

/* Missing arguments and empty sets are answered, never dereferenced. */
START_TEST(test_null_and_empty)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	const struct imap_arg *list;
	struct imap_seqset set = { NULL, 0 };
	const char *s = "x";
	size_t len = 9;
	uint32_t u32 = 5, count;
	uint64_t u64 = 5;

	ck_assert(!imap_arg_is_atom(NULL, "NIL"));
	ck_assert(!imap_arg_get_astring(NULL, &s, &len));
	ck_assert(!imap_arg_get_nstring(NULL, &s, &len));
	ck_assert_str_eq(s, "x");
	ck_assert_uint_eq(len, 9);
	ck_assert(!imap_arg_get_list(NULL, &list, &count));
	ck_assert_int_eq(imap_arg_get_u64(NULL, &u64), -1);
	ck_assert_uint_eq(u64, 5);
	ck_assert_uint_eq(imap_seqset_count(&set), 0);
	ck_assert_uint_eq(imap_seqset_nth(&set, 0), 0);
	imap_seqset_free(&set);

	/* an empty list, and zero as a code argument (UIDNEXT may be 0...) */
	resp = parse_one(p, "* LIST () \"/\" INBOX\r\n");
	ck_assert(imap_arg_get_list(&resp->args[0], &list, &count));
	ck_assert_uint_eq(count, 0);
	ck_assert(!imap_arg_get_astring(&resp->args[0], &s, &len));
	resp = parse_one(p, "* OK [UIDNEXT 0] x\r\n");
	ck_assert(imap_resp_code_u32(resp, "UIDNEXT", &u32));
	ck_assert_uint_eq(u32, 0);
	/* ...but not as a UID in APPENDUID/COPYUID (tested above) */
	resp = parse_one(p, "A1 OK [APPENDUID 1 0] x\r\n");
	ck_assert(!imap_resp_appenduid(resp, &u32, &u32));
	imap_parser_free(&p);
}
END_TEST

static Suite *
imap_arg_suite(void)
{
	Suite *s = suite_create("imap_arg");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_arg_helpers);
	tcase_add_test(tc, test_resp_code_helpers);
	tcase_add_test(tc, test_seqset);
	tcase_add_test(tc, test_seqset_iter);
	tcase_add_test(tc, test_appenduid_copyuid);
	tcase_add_test(tc, test_null_and_empty);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(imap_arg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
