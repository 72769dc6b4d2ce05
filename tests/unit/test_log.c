/*
 * Unit tests for log: one event is one line in either format, whatever the
 * message holds. Fixed bug: with log_format = "json", a message that was
 * not UTF-8 (a server's text quoted in an error, or a message cut at a
 * byte limit in the middle of a character) made json_pack fail and the
 * whole line was lost.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "log_capture.h"
#include "util.h"

#define FFFD "\xef\xbf\xbd"

START_TEST(test_json_line_for_any_bytes)
{
	json_t *o;
	char *out, *nl;

	log_init("imaphookd");
	log_set_format(LOG_FORMAT_JSON);
	log_capture_start(LOG_LEVEL_INFO);
	log_msg(LOG_LEVEL_WARN, "trigger t: poll failed: STATUS: NO Ung\xfcltig \xe2\x82");
	log_msg(LOG_LEVEL_DEBUG, "not shown");
	out = log_capture_end();
	log_set_format(LOG_FORMAT_TEXT);

	nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_str_eq(nl + 1, "");           /* one line, the debug one filtered */
	o = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "warn");
	ck_assert_str_eq(json_string_value(json_object_get(o, "prog")), "imaphookd");
	ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
	    "trigger t: poll failed: STATUS: NO Ung" FFFD "ltig " FFFD FFFD);
	ck_assert_ptr_nonnull(json_object_get(o, "time"));
	json_decref(o);
	free(out);
}
END_TEST

START_TEST(test_text_one_line)
{
	char *out;

	log_init("imaphook");
	log_set_format(LOG_FORMAT_TEXT);
	log_capture_start(LOG_LEVEL_INFO);
	log_msg(LOG_LEVEL_ERROR, "two\nlines\r\nhere");
	out = log_capture_end();
	ck_assert_ptr_nonnull(strstr(out, " imaphook error: two lines  here\n"));
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_json_line_for_any_bytes);
	tcase_add_test(tc, test_text_one_line);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
