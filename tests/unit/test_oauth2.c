/* Check suite for common/oauth2.c: output parsing and SASL responses. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "oauth2.h"
#include "util.h"

static char *
parse_ok(const char *out, uint64_t *exp)
{
	char *tok = NULL, *err = NULL;

	ck_assert_msg(oauth2_parse_output(out, strlen(out), &tok, exp, &err) == 0,
	    "%s: %s", out, err);
	return tok;
}

static void
parse_fail(const char *out, const char *needle)
{
	char *tok = NULL, *err = NULL;
	uint64_t exp;

	ck_assert_int_eq(oauth2_parse_output(out, strlen(out), &tok, &exp, &err), -1);
	ck_assert_ptr_null(tok);
	ck_assert_msg(strstr(err, needle) != NULL, "%s: %s", out, err);
	free(err);
}

START_TEST(test_bare)
{
	uint64_t exp = 99;
	char *t = parse_ok("  ya29.a0AfB_byC-token_value\n", &exp);

	ck_assert_str_eq(t, "ya29.a0AfB_byC-token_value");
	ck_assert_uint_eq(exp, 0);
	free(t);
}
END_TEST

START_TEST(test_json)
{
	uint64_t exp = 0;
	char *t = parse_ok("{\"access_token\": \"abc.def\", \"expires_in\": 3599, "
	    "\"token_type\": \"Bearer\", \"scope\": \"https://mail.google.com/\"}\n", &exp);

	ck_assert_str_eq(t, "abc.def");
	ck_assert_uint_eq(exp, 3599);
	free(t);
	t = parse_ok("{\"access_token\": \"x\"}", &exp);
	ck_assert_str_eq(t, "x");
	ck_assert_uint_eq(exp, 0);
	free(t);
}
END_TEST

START_TEST(test_bad)
{
	parse_fail("", "no token");
	parse_fail(" \n\t ", "no token");
	parse_fail("two words", "white space");
	parse_fail("{\"token\": \"x\"}", "access_token");
	parse_fail("{\"access_token\": 5}", "access_token");
	parse_fail("{\"access_token\": \"\"}", "access_token");
	parse_fail("{\"access_token\": \"a b\"}", "access_token");
	parse_fail("{\"access_token\": \"a\", \"expires_in\": -1}", "expires_in");
	parse_fail("{\"access_token\": \"a\", \"expires_in\": \"60\"}", "expires_in");
	parse_fail("{\"access_token\": \"a\"", "neither");
}
END_TEST

static char *
decoded(const char *b64)
{
	unsigned char *out;
	size_t len;

	ck_assert_int_eq(base64_decode(b64, strlen(b64), &out, &len), 0);
	return (char *)out;
}

START_TEST(test_sasl)
{
	char *r = oauth2_xoauth2_response("me@example.com", "tok"), *d = decoded(r);

	ck_assert_str_eq(d, "user=me@example.com\001auth=Bearer tok\001\001");
	free(r);
	free(d);
	/* RFC 7628: gs2 header with ',' and '=' of the authzid escaped */
	r = oauth2_oauthbearer_response("a,b=c", "imap.example.com", 993, "tok");
	d = decoded(r);
	ck_assert_str_eq(d, "n,a=a=2Cb=3Dc,\001host=imap.example.com\001port=993\001"
	    "auth=Bearer tok\001\001");
	free(r);
	free(d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("oauth2");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_bare);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_bad);
	tcase_add_test(tc, test_sasl);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
