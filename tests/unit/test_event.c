/* Unit tests for event: webhook bodies built from real parsed FETCH answers. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "event.h"
#include "imap_parser.h"
#include "mime.h"
#include "util.h"

static struct imap_parser *parser;
static const struct event_origin origin = { "t", "main", "INBOX" };

/* Parses one complete response (CRLF included). */
static const struct imap_resp *
parse(const char *text)
{
	const struct imap_resp *resp = NULL;
	size_t consumed;

	if (parser == NULL)
		parser = imap_parser_new(NULL);
	ck_assert_int_eq(imap_parser_feed(parser, text, strlen(text), &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, strlen(text));
	return resp;
}

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

static void
teardown(void)
{
	imap_parser_free(&parser);
}

#define ENV "(\"Tue, 3 Mar 2026 10:00:00 +0000\" \"Hello\" ((\"Ann\" NIL \"ann\" \"example.org\")) NIL NIL ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<m1@example.org>\")"

START_TEST(test_email_new)
{
	struct event_fetch f;
	json_t *ev, *fl;

	ck_assert(event_fetch_parse(parse("* 4 FETCH (UID 42 FLAGS (\\Seen \\Recent $Label) "
	    "INTERNALDATE \"03-Mar-2026 10:00:05 +0100\" RFC822.SIZE 1234 ENVELOPE " ENV ")\r\n"),
	    &f));
	ck_assert_uint_eq(f.uid, 42);
	ck_assert(f.have_size);
	ck_assert_uint_eq(f.size, 1234);
	ck_assert_ptr_null(f.body);
	ev = event_email_new(&origin, 77, &f, 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), "email.new");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "id")), "t:77:42");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "trigger")), "t");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "connection")), "main");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "mailbox")), "INBOX");
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "uidValidity")), 77);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "uid")), 42);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "size")), 1234);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "internalDate")),
	    "2026-03-03T09:00:05Z");
	fl = json_object_get(ev, "flags");
	ck_assert_uint_eq(json_array_size(fl), 2);      /* \Recent left out */
	ck_assert_str_eq(json_string_value(json_array_get(fl, 0)), "\\Seen");
	ck_assert_str_eq(json_string_value(json_array_get(fl, 1)), "$Label");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev, "envelope"),
	    "subject")), "Hello");
	ck_assert_ptr_null(json_object_get(ev, "content"));
	ck_assert_ptr_nonnull(json_object_get(ev, "timestamp"));
	json_decref(ev);
}
END_TEST

START_TEST(test_content_and_truncation)
{
	static const char msg[] = "Subject: x\r\n\r\nbody text\r\n";
	struct event_fetch f;
	char *text;
	json_t *ev, *content;

	/* the whole message came: not truncated */
	text = xasprintf("* 1 FETCH (UID 5 RFC822.SIZE %zu ENVELOPE " ENV " BODY[]<0> {%zu}\r\n%s)\r\n",
	    strlen(msg), strlen(msg), msg);
	ck_assert(event_fetch_parse(parse(text), &f));
	free(text);
	ck_assert_ptr_nonnull(f.body);
	ev = event_email_new(&origin, 1, &f, 4096);
	content = json_object_get(ev, "content");
	ck_assert_ptr_nonnull(content);
	ck_assert(json_is_false(json_object_get(content, "truncated")));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(content, "text")),
	    "body text"));
	json_decref(ev);

	/* RFC822.SIZE says more than came: truncated */
	text = xasprintf("* 1 FETCH (UID 6 RFC822.SIZE 99999 ENVELOPE " ENV " BODY[]<0> {%zu}\r\n%s)\r\n",
	    strlen(msg), msg);
	ck_assert(event_fetch_parse(parse(text), &f));
	free(text);
	ev = event_email_new(&origin, 1, &f, 4096);
	ck_assert(json_is_true(json_object_get(json_object_get(ev, "content"), "truncated")));
	json_decref(ev);

	/* no BODY[] at all: an empty content, not a crash */
	ck_assert(event_fetch_parse(parse("* 1 FETCH (UID 7 ENVELOPE " ENV ")\r\n"), &f));
	ev = event_email_new(&origin, 1, &f, 4096);
	ck_assert_ptr_nonnull(json_object_get(ev, "content"));
	ck_assert(json_is_null(json_object_get(ev, "size")));
	ck_assert(json_is_null(json_object_get(ev, "internalDate")));
	json_decref(ev);
}
END_TEST

START_TEST(test_not_a_fetch_list)
{
	struct event_fetch f;

	ck_assert(!event_fetch_parse(parse("* 3 EXISTS\r\n"), &f));
	/* a flags update only: parsed, but no UID nor ENVELOPE for the caller */
	ck_assert(event_fetch_parse(parse("* 3 FETCH (FLAGS (\\Seen))\r\n"), &f));
	ck_assert_uint_eq(f.uid, 0);
	ck_assert_ptr_null(f.envelope);
	/* a UID that is not a number stays 0 */
	ck_assert(event_fetch_parse(parse("* 3 FETCH (UID x12 ENVELOPE " ENV ")\r\n"), &f));
	ck_assert_uint_eq(f.uid, 0);
	/* an odd item count: the last key without a value is ignored */
	ck_assert(event_fetch_parse(parse("* 3 FETCH (UID 9 FLAGS)\r\n"), &f));
	ck_assert_uint_eq(f.uid, 9);
	ck_assert_ptr_null(f.flags);
}
END_TEST

START_TEST(test_mailbox_reset)
{
	json_t *ev = event_mailbox_reset(&origin, 77, 78);

	ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), "mailbox.reset");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "id")), "t:78:reset");
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "uidValidity")), 78);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "previousUidValidity")), 77);
	json_decref(ev);
}
END_TEST

static Suite *
event_suite(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, mime_setup, mime_teardown);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_email_new);
	tcase_add_test(tc, test_content_and_truncation);
	tcase_add_test(tc, test_not_a_fetch_list);
	tcase_add_test(tc, test_mailbox_reset);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(event_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
