/*
 * Unit tests for imap_namespace.c: NAMESPACE answers (RFC 2342) as real
 * servers send them, malformed ones, and which namespace a mailbox is in.
 * Responses are made with the real parser.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_namespace.h"
#include "imap_parser.h"
#include "util.h"

/* The namespaces of one complete "* NAMESPACE ..." line, or NULL. */
static struct imap_namespaces *
parse_line(const char *line)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	struct imap_namespaces *nss;
	size_t consumed;

	ck_assert_int_eq(imap_parser_feed(p, line, strlen(line), &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, strlen(line));
	ck_assert_str_eq(resp->name, "NAMESPACE");
	nss = imap_namespace_parse(resp->args, resp->argc);
	imap_parser_free(&p);
	return nss;
}

START_TEST(test_dovecot_public)
{
	struct imap_namespaces *nss =
	    parse_line("* NAMESPACE ((\"\" \"/\")) NIL ((\"Public/\" \"/\"))\r\n");

	ck_assert_ptr_nonnull(nss);
	ck_assert_uint_eq(nss->count, 2);
	ck_assert_int_eq(nss->ns[0].kind, IMAP_NS_PERSONAL);
	ck_assert_str_eq(nss->ns[0].prefix, "");
	ck_assert_int_eq(nss->ns[0].delimiter, '/');
	ck_assert_int_eq(nss->ns[1].kind, IMAP_NS_SHARED);
	ck_assert_str_eq(nss->ns[1].prefix, "Public/");

	/* the longest prefix wins over "" */
	ck_assert_int_eq(imap_namespace_kind(nss, "Public/Support"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "Public/a/b"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "INBOX"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "Support"), IMAP_NS_PERSONAL);
	/* the namespace's root itself, and names that only look alike */
	ck_assert_int_eq(imap_namespace_kind(nss, "Public"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "public/Support"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "Publications"), IMAP_NS_PERSONAL);
	imap_namespace_free(&nss);
	ck_assert_ptr_null(nss);
	imap_namespace_free(&nss);
}
END_TEST

START_TEST(test_every_group_and_extensions)
{
	/* RFC 2342's example 5.9, with an extension (RFC 5255 style) */
	struct imap_namespaces *nss = parse_line(
	    "* NAMESPACE ((\"\" \"/\")(\"#mh/\" \"/\" \"X-PARAM\" (\"FLAG1\" \"FLAG2\"))) "
	    "((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\")(\"#ftp/\" \"/\")"
	    "(\"#news.\" \".\"))\r\n");

	ck_assert_ptr_nonnull(nss);
	ck_assert_uint_eq(nss->count, 7);
	ck_assert_int_eq(nss->ns[1].kind, IMAP_NS_PERSONAL);
	ck_assert_str_eq(nss->ns[1].prefix, "#mh/");
	ck_assert_int_eq(nss->ns[2].kind, IMAP_NS_OTHER);
	ck_assert_int_eq(nss->ns[6].delimiter, '.');
	ck_assert_int_eq(imap_namespace_kind(nss, "~fred/Mail"), IMAP_NS_OTHER);
	ck_assert_int_eq(imap_namespace_kind(nss, "#public/Support"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "#news.comp.mail"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "#mh/x"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "Drafts"), IMAP_NS_PERSONAL);
	ck_assert_str_eq(imap_namespace_kind_name(IMAP_NS_OTHER), "other users");
	imap_namespace_free(&nss);

	/* only NIL: nothing matches, everything is personal */
	nss = parse_line("* NAMESPACE NIL NIL NIL\r\n");
	ck_assert_ptr_nonnull(nss);
	ck_assert_uint_eq(nss->count, 0);
	ck_assert_int_eq(imap_namespace_kind(nss, "Public/Support"), IMAP_NS_PERSONAL);
	imap_namespace_free(&nss);

	/* a NIL delimiter (a flat namespace), a literal prefix */
	nss = parse_line("* NAMESPACE ((\"\" NIL)) NIL (({6}\r\nShared NIL))\r\n");
	ck_assert_ptr_nonnull(nss);
	ck_assert_uint_eq(nss->count, 2);
	ck_assert_int_eq(nss->ns[0].delimiter, '\0');
	ck_assert_str_eq(nss->ns[1].prefix, "Shared");
	ck_assert_int_eq(imap_namespace_kind(nss, "SharedX"), IMAP_NS_SHARED);
	imap_namespace_free(&nss);
}
END_TEST

START_TEST(test_shared_root_and_inbox)
{
	/* Cyrus without altnamespace: personal "INBOX.", shared "" */
	struct imap_namespaces *nss = parse_line(
	    "* NAMESPACE ((\"INBOX.\" \".\")) ((\"user.\" \".\")) ((\"\" \".\"))\r\n");

	ck_assert_ptr_nonnull(nss);
	ck_assert_int_eq(imap_namespace_kind(nss, "INBOX"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "inbox"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "INBOX.Sales"), IMAP_NS_PERSONAL);
	/* INBOX at the start is INBOX in any case (RFC 3501 5.1) */
	ck_assert_int_eq(imap_namespace_kind(nss, "Inbox.Sales"), IMAP_NS_PERSONAL);
	ck_assert_int_eq(imap_namespace_kind(nss, "user.fred"), IMAP_NS_OTHER);
	ck_assert_int_eq(imap_namespace_kind(nss, "User.fred"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "support"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "INBOXES"), IMAP_NS_SHARED);
	imap_namespace_free(&nss);

	/* a prefix that begins like INBOX but is not it: exact case */
	nss = parse_line("* NAMESPACE ((\"\" \"/\")) NIL ((\"INBOXES/\" \"/\"))\r\n");
	ck_assert_ptr_nonnull(nss);
	ck_assert_int_eq(imap_namespace_kind(nss, "INBOXES/a"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "inboxes/a"), IMAP_NS_PERSONAL);
	imap_namespace_free(&nss);

	/* equal prefixes: personal wins (the first given) */
	nss = parse_line("* NAMESPACE ((\"\" \"/\")) NIL ((\"\" \"/\"))\r\n");
	ck_assert_ptr_nonnull(nss);
	ck_assert_int_eq(imap_namespace_kind(nss, "Support"), IMAP_NS_PERSONAL);
	imap_namespace_free(&nss);

	/* no answer: everything personal */
	ck_assert_int_eq(imap_namespace_kind(NULL, "Public/Support"), IMAP_NS_PERSONAL);
}
END_TEST

START_TEST(test_modified_utf7_prefixes)
{
	/* "Öffentlich/" on the wire in modified UTF-7; trigger names are UTF-8 */
	struct imap_namespaces *nss = parse_line(
	    "* NAMESPACE ((\"\" \"/\")) NIL ((\"&ANY-ffentlich/\" \"/\"))\r\n");

	ck_assert_ptr_nonnull(nss);
	ck_assert_str_eq(nss->ns[1].prefix, "\xc3\x96" "ffentlich/");
	ck_assert_int_eq(imap_namespace_kind(nss, "\xc3\x96" "ffentlich/Support"), IMAP_NS_SHARED);
	ck_assert_int_eq(imap_namespace_kind(nss, "&ANY-ffentlich/Support"), IMAP_NS_PERSONAL);
	imap_namespace_free(&nss);

	/* raw UTF-8 (a server speaking UTF-8 names) is taken as it is */
	nss = parse_line("* NAMESPACE ((\"\" \"/\")) NIL ((\"\xc3\x96\" \"/\"))\r\n");
	ck_assert_ptr_nonnull(nss);
	ck_assert_str_eq(nss->ns[1].prefix, "\xc3\x96");
	imap_namespace_free(&nss);
}
END_TEST

#define LINE(s) { s, sizeof(s) - 1 }

START_TEST(test_malformed)
{
	/* sizeof, not strlen: some hold NUL bytes */
	static const struct { const char *s; size_t len; } bad[] = {
		LINE("* NAMESPACE\r\n"),
		LINE("* NAMESPACE NIL NIL\r\n"),
		LINE("* NAMESPACE NIL NIL NIL NIL\r\n"),
		LINE("* NAMESPACE ((\"\" \"/\")) NIL \"Public/\"\r\n"),  /* a group is a list */
		LINE("* NAMESPACE (\"\" \"/\") NIL NIL\r\n"),           /* so is a namespace */
		LINE("* NAMESPACE ((\"\")) NIL NIL\r\n"),               /* no delimiter */
		LINE("* NAMESPACE ((NIL \"/\")) NIL NIL\r\n"),          /* NIL prefix */
		LINE("* NAMESPACE ((() \"/\")) NIL NIL\r\n"),           /* list prefix */
		LINE("* NAMESPACE ((\"\" \"//\")) NIL NIL\r\n"),        /* two-byte delimiter */
		LINE("* NAMESPACE ((\"\" ())) NIL NIL\r\n"),            /* list delimiter */
		LINE("* NAMESPACE ((\"\" {1}\r\n\0)) NIL NIL\r\n"),     /* NUL delimiter */
		LINE("* NAMESPACE (({3}\r\na\0b \"/\")) NIL NIL\r\n"),  /* NUL in a prefix */
		/* neither modified UTF-7 nor UTF-8 */
		LINE("* NAMESPACE ((\"\" \"/\")) NIL ((\"\xff\" \"/\"))\r\n"),
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_parser *p = imap_parser_new(NULL);
		const struct imap_resp *resp;
		size_t consumed;

		ck_assert_int_eq(imap_parser_feed(p, bad[i].s, bad[i].len, &consumed, &resp), 1);
		ck_assert_uint_eq(consumed, bad[i].len);
		ck_assert_msg(imap_namespace_parse(resp->args, resp->argc) == NULL,
		    "accepted: %s", bad[i].s);
		imap_parser_free(&p);
	}
	ck_assert_ptr_null(imap_namespace_parse(NULL, 0));
}
END_TEST

static Suite *
imap_namespace_suite(void)
{
	Suite *s = suite_create("imap_namespace");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_dovecot_public);
	tcase_add_test(tc, test_every_group_and_extensions);
	tcase_add_test(tc, test_shared_root_and_inbox);
	tcase_add_test(tc, test_modified_utf7_prefixes);
	tcase_add_test(tc, test_malformed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(imap_namespace_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
