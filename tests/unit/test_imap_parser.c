/*
 * Unit tests for imap_parser: every construct is parsed whole, one byte at
 * a time and in odd-sized chunks, and the three results must be identical
 * to the expected dump (see dump_resp for its notation). The argument and
 * response-code helpers, sequence sets and APPENDUID/COPYUID (imap_arg.c)
 * are tested in test_imap_arg.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"
#include "util.h"

#define MIB (1024 * 1024)

static void
dump_bytes(struct str *out, const char *s, size_t len)
{
	size_t i;

	str_append_c(out, '"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			str_printf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			str_printf(out, "\\x%02x", c);
		else
			str_append_c(out, (char)c);
	}
	str_append_c(out, '"');
}

/* ATOM as is, NIL, "string", {n}"literal", ~{n}"literal8", (list). */
static void
dump_arg(struct str *out, const struct imap_arg *arg)
{
	uint32_t i;

	if (arg->type != IMAP_ARG_LIST) {
		ck_assert_ptr_nonnull(arg->v.str);
		ck_assert_int_eq(arg->v.str[arg->len], '\0');
	}
	switch (arg->type) {
	case IMAP_ARG_ATOM:
		ck_assert_uint_eq(strlen(arg->v.str), arg->len);
		str_append(out, arg->v.str);
		break;
	case IMAP_ARG_NIL:
		ck_assert_int_eq(strcasecmp(arg->v.str, "NIL"), 0);
		str_append(out, "NIL");
		break;
	case IMAP_ARG_STRING:
		dump_bytes(out, arg->v.str, arg->len);
		break;
	case IMAP_ARG_LITERAL:
		str_printf(out, "%s{%u}", arg->literal8 ? "~" : "", arg->len);
		dump_bytes(out, arg->v.str, arg->len);
		break;
	case IMAP_ARG_LIST:
		str_append_c(out, '(');
		for (i = 0; i < arg->len; i++) {
			if (i > 0)
				str_append_c(out, ' ');
			dump_arg(out, &arg->v.list[i]);
		}
		str_append_c(out, ')');
		break;
	}
}

static const char *const status_str[] = {
	"NONE", "OK", "NO", "BAD", "BYE", "PREAUTH"
};

/*
 * "+ "text"", "TAG STATUS [CODE args] "text"", "* STATUS ...",
 * "* [n] NAME args". Also checks the fields a kind must leave empty.
 */
static void
dump_resp(struct str *out, const struct imap_resp *r)
{
	uint32_t i;

	ck_assert_ptr_nonnull(r->text);
	if (r->kind == IMAP_RESP_CONTINUATION) {
		ck_assert_ptr_null(r->tag);
		ck_assert_ptr_null(r->name);
		ck_assert_int_eq(r->status, IMAP_STATUS_NONE);
		str_append(out, "+ ");
		dump_bytes(out, r->text, strlen(r->text));
		return;
	}
	if (r->kind == IMAP_RESP_TAGGED) {
		ck_assert_ptr_nonnull(r->tag);
		ck_assert_int_ne(r->status, IMAP_STATUS_NONE);
		str_append(out, r->tag);
	} else {
		ck_assert_ptr_null(r->tag);
		str_append(out, "*");
	}
	if (r->status != IMAP_STATUS_NONE) {
		ck_assert_ptr_null(r->name);
		ck_assert_uint_eq(r->argc, 0);
		str_printf(out, " %s", status_str[r->status]);
		if (r->code != NULL) {
			str_printf(out, " [%s", r->code);
			for (i = 0; i < r->code_argc; i++) {
				str_append_c(out, ' ');
				dump_arg(out, &r->code_args[i]);
			}
			str_append_c(out, ']');
		} else
			ck_assert_uint_eq(r->code_argc, 0);
		str_append_c(out, ' ');
		dump_bytes(out, r->text, strlen(r->text));
		return;
	}
	ck_assert_ptr_nonnull(r->name);
	ck_assert_ptr_null(r->code);
	ck_assert_str_eq(r->text, "");
	if (r->has_number)
		str_printf(out, " %u", r->number);
	str_printf(out, " %s", r->name);
	for (i = 0; i < r->argc; i++) {
		str_append_c(out, ' ');
		dump_arg(out, &r->args[i]);
	}
}

/*
 * Feeds in[0..len) the way a connection would: the caller's buffer holds
 * what has arrived (chunk bytes more each time; 0 = everything at once)
 * and is drained by *consumed. Returns one dump line per response, then
 * "ERR: msg" or "INCOMPLETE" if that is how the input ends.
 */
static char *
run(const void *in, size_t len, const struct imap_parser_limits *lim,
    size_t chunk)
{
	struct imap_parser *p = imap_parser_new(lim);
	const struct imap_resp *resp;
	const char *data = in;
	size_t off = 0, avail, consumed, pending = 0;
	struct str out;
	int ret;

	str_init(&out);
	avail = chunk == 0 || chunk > len ? len : chunk;
	for (;;) {
		ret = imap_parser_feed(p, data + off, avail - off, &consumed, &resp);
		ck_assert_uint_le(consumed, avail - off);
		if (ret == 1) {
			ck_assert_ptr_nonnull(resp);
			ck_assert_ptr_null(imap_parser_error(p));
			dump_resp(&out, resp);
			str_append_c(&out, '\n');
			off += consumed;
			pending = 0;
			continue;
		}
		ck_assert_ptr_null(resp);
		if (ret < 0) {
			ck_assert_int_eq(ret, -1);
			ck_assert_ptr_nonnull(imap_parser_error(p));
			str_printf(&out, "ERR: %s", imap_parser_error(p));
			/* The error state is sticky. */
			ck_assert_int_eq(imap_parser_feed(p, "x", 1, &consumed,
			    &resp), -1);
			ck_assert_uint_eq(consumed, 0);
			break;
		}
		ck_assert_uint_eq(consumed, avail - off);
		off = avail;
		pending += consumed;
		if (avail == len) {
			if (pending > 0)
				str_append(&out, "INCOMPLETE");
			break;
		}
		avail = avail + chunk > len ? len : avail + chunk;
	}
	imap_parser_free(&p);
	ck_assert_ptr_null(p);
	return str_steal(&out);
}

/* Whole, byte by byte and in chunks of 2, 3 and 7: all must match. */
static void
check_lim(const void *in, size_t len, const struct imap_parser_limits *lim,
    const char *expect)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7 };
	size_t i;
	char *got;

	for (i = 0; i < N_ELEMENTS(chunks); i++) {
		got = run(in, len, lim, chunks[i]);
		if (strcmp(got, expect) != 0)
			ck_abort_msg("chunk %zu:\n got: %s\nwant: %s", chunks[i],
			    got, expect);
		free(got);
	}
}

#define CHECK(in, expect) check_lim(in, sizeof(in) - 1, NULL, expect)
#define CHECK_LIM(in, lim, expect) check_lim(in, sizeof(in) - 1, lim, expect)

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

START_TEST(test_continuation)
{
	CHECK("+ Ready for literal data\r\n", "+ \"Ready for literal data\"\n");
	CHECK("+\r\n", "+ \"\"\n");
	CHECK("+ \r\n", "+ \"\"\n");
	CHECK("+ YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQ==\r\n",
	    "+ \"YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQ==\"\n");
	/* Text is never tokenized, and "{5}" in it is not a literal. */
	CHECK("+ (unbalanced \"quote {5}\r\n* 1 EXISTS\r\n",
	    "+ \"(unbalanced \\\"quote {5}\"\n* 1 EXISTS\n");
}
END_TEST

START_TEST(test_tagged)
{
	CHECK("A1 OK LOGIN completed\r\n", "A1 OK \"LOGIN completed\"\n");
	CHECK("a2 no [ALERT] Mailbox is full\r\n",
	    "a2 NO [ALERT] \"Mailbox is full\"\n");
	CHECK("A3 Bad (unbalanced \"quote) ]]\r\n",
	    "A3 BAD \"(unbalanced \\\"quote) ]]\"\n");
	CHECK("A4 OK\r\n", "A4 OK \"\"\n");
	CHECK("A5 OK [READ-WRITE]\r\n", "A5 OK [READ-WRITE] \"\"\n");
	CHECK("A6 OK [APPENDUID 38505 3955] APPEND completed\r\n",
	    "A6 OK [APPENDUID 38505 3955] \"APPEND completed\"\n");
	CHECK("A7 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
	    "A7 OK [COPYUID 38505 304,319:320 3956:3958] \"Done\"\n");
	CHECK("A8 NO [BADCHARSET (US-ASCII)] charset\r\n",
	    "A8 NO [BADCHARSET (US-ASCII)] \"charset\"\n");
	/* "{5}" at the end of status text is text, not a literal. */
	CHECK("A9 NO no such mailbox foo{5}\r\n* 1 EXISTS\r\n",
	    "A9 NO \"no such mailbox foo{5}\"\n* 1 EXISTS\n");
	CHECK("A10 NO {5}\r\nA11 OK\r\n", "A10 NO \"{5}\"\nA11 OK \"\"\n");
	/* 8-bit text passes through. */
	CHECK("A12 OK Gr\xc3\xbc\xc3\x9f" "e\r\n",
	    "A12 OK \"Gr\\xc3\\xbc\\xc3\\x9fe\"\n");
}
END_TEST

START_TEST(test_untagged_status)
{
	CHECK("* OK [UIDNEXT 4] Predicted next UID\r\n",
	    "* OK [UIDNEXT 4] \"Predicted next UID\"\n");
	CHECK("* OK [UIDVALIDITY 1795663573] UIDs valid\r\n",
	    "* OK [UIDVALIDITY 1795663573] \"UIDs valid\"\n");
	CHECK("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n",
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] \"Dovecot ready.\"\n");
	CHECK("* OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] Limited\r\n",
	    "* OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] \"Limited\"\n");
	CHECK("* OK [ALERT] System shutdown in 10 minutes\r\n",
	    "* OK [ALERT] \"System shutdown in 10 minutes\"\n");
	CHECK("* OK [REFERRAL imap://x/] try there\r\n",
	    "* OK [REFERRAL imap://x/] \"try there\"\n");
	CHECK("* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
	    "* OK [HIGHESTMODSEQ 715194045007] \"Highest\"\n");
	CHECK("* ok [uidnext 4]\r\n", "* OK [UIDNEXT 4] \"\"\n");
	CHECK("* NO [x-Custom \"quoted ]\" NIL] text\r\n",
	    "* NO [X-CUSTOM \"quoted ]\" NIL] \"text\"\n");
	CHECK("* BAD garbage\r\n", "* BAD \"garbage\"\n");
	CHECK("* BYE Logging out\r\n", "* BYE \"Logging out\"\n");
	CHECK("* PREAUTH [CAPABILITY IMAP4rev1] Logged in\r\n",
	    "* PREAUTH [CAPABILITY IMAP4rev1] \"Logged in\"\n");
	CHECK("* OK\r\n", "* OK \"\"\n");
	CHECK("* OK [ALERT]\r\n", "* OK [ALERT] \"\"\n");
	/* Status words inside a section or after a number are not status. */
	CHECK("* 1 OK\r\n", "* 1 OK\n");
}
END_TEST

START_TEST(test_resp_code_fallback)
{
	/* Code arguments that do not tokenize become one raw atom. */
	CHECK("* OK [X-FOO (bar] text\r\n", "* OK [X-FOO (bar] \"text\"\n");
	CHECK("* OK [X-FOO a \"b] c\r\n", "* OK [X-FOO a \"b] \"c\"\n");
	CHECK("* OK [X-FOO a)] c\r\n", "* OK [X-FOO a)] \"c\"\n");
	/* No closing ']': no code, all text. */
	CHECK("* OK [ALERT hello\r\n", "* OK \"[ALERT hello\"\n");
	CHECK("* OK [ALERT\r\n", "* OK \"[ALERT\"\n");
	CHECK("* OK [] empty\r\n", "* OK \"[] empty\"\n");
	CHECK("* OK [(x)] odd\r\n", "* OK \"[(x)] odd\"\n");
	/* Limits still apply inside a code. */
	CHECK("* OK [X ((((((((((((((((((((((((((((((((((x)))]\r\n",
	    "ERR: list nesting too deep");
}
END_TEST

/*
 * Fixed bug (tok_status): a '[' without its ']' whose code name and
 * arguments were tried first gave "internal error: string pool full": the
 * code name stayed in the pool when the code was dropped, and the text
 * copied the same bytes again. A failed log-in was then a protocol error
 * instead of an authentication error, and such a greeting never connected.
 */
START_TEST(test_resp_code_unclosed)
{
	CHECK("A2 NO [Authentication failed\r\n",
	    "A2 NO \"[Authentication failed\"\n");
	CHECK("* OK [mail.example.com ready\r\n",
	    "* OK \"[mail.example.com ready\"\n");
	CHECK("* BYE [UNAVAILABLE-FOR-A-WHILE (try) later\r\n",
	    "* BYE \"[UNAVAILABLE-FOR-A-WHILE (try) later\"\n");
	/* a dropped code of a tagged status leaves the tag intact */
	{
		struct imap_parser *p = imap_parser_new(NULL);
		const struct imap_resp *resp;

		resp = parse_one(p, "A2 NO [Authentication failed\r\n");
		ck_assert_int_eq(resp->status, IMAP_STATUS_NO);
		ck_assert_str_eq(resp->tag, "A2");
		ck_assert_ptr_null(resp->code);
		ck_assert_uint_eq(resp->code_argc, 0);
		ck_assert_str_eq(resp->text, "[Authentication failed");
		imap_parser_free(&p);
	}
}
END_TEST

START_TEST(test_untagged_data)
{
	CHECK("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN ID ENABLE IDLE\r\n",
	    "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN ID ENABLE IDLE\n");
	CHECK("* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
	    "* LIST (\\HasNoChildren) \"/\" INBOX\n");
	CHECK("* list (\\Noselect \\HasChildren) \".\" \"Archive\"\r\n",
	    "* LIST (\\Noselect \\HasChildren) \".\" \"Archive\"\n");
	CHECK("* LSUB () NIL Foo\r\n", "* LSUB () NIL Foo\n");
	CHECK("* STATUS \"Entw&APw-rfe\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1795663573 UNSEEN 0)\r\n",
	    "* STATUS \"Entw&APw-rfe\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1795663573 UNSEEN 0)\n");
	CHECK("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
	    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\n");
	CHECK("* SEARCH 2 3 5\r\n", "* SEARCH 2 3 5\n");
	CHECK("* SEARCH\r\n", "* SEARCH\n");
	CHECK("* ESEARCH (TAG \"A5\") UID MIN 1 COUNT 3\r\n",
	    "* ESEARCH (TAG \"A5\") UID MIN 1 COUNT 3\n");
	CHECK("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n",
	    "* NAMESPACE ((\"\" \"/\")) NIL NIL\n");
	CHECK("* ENABLED CONDSTORE UTF8=ACCEPT\r\n",
	    "* ENABLED CONDSTORE UTF8=ACCEPT\n");
	CHECK("* ID NIL\r\n", "* ID NIL\n");
	CHECK("* ID (\"name\" \"Dovecot\" \"version\" nil)\r\n",
	    "* ID (\"name\" \"Dovecot\" \"version\" NIL)\n");
	CHECK("* 5 EXISTS\r\n", "* 5 EXISTS\n");
	CHECK("* 3 expunge\r\n", "* 3 EXPUNGE\n");
	CHECK("* 0 RECENT\r\n", "* 0 RECENT\n");
	CHECK("* 4294967295 EXISTS\r\n", "* 4294967295 EXISTS\n");
	CHECK("* LIST () \"/\" %\r\n", "* LIST () \"/\" %\n");
	CHECK("* LIST (\\HasNoChildren) \"/\" *\r\n",
	    "* LIST (\\HasNoChildren) \"/\" *\n");
	CHECK("* FLAGS ($Forwarded $MDNSent \\*)\r\n",
	    "* FLAGS ($Forwarded $MDNSent \\*)\n");
	/* Lenient spacing. */
	CHECK("* FLAGS(\\Seen)\r\n", "* FLAGS (\\Seen)\n");
	CHECK("*  SEARCH  1   2 \r\n", "* SEARCH 1 2\n");
	CHECK("* X ( a ) (b)(c)\"d\"e\r\n", "* X (a) (b) (c) \"d\" e\n");
	/* "{" inside an atom is not a literal. */
	CHECK("* X foo{5}\r\n* 1 EXISTS\r\n", "* X foo{5}\n* 1 EXISTS\n");
	CHECK("* X {5} y\r\n", "* X {5} y\n");
}
END_TEST

START_TEST(test_fetch)
{
	static const char in[] =
	    "* 12 FETCH (UID 42 FLAGS (\\Seen) RFC822.SIZE 5123 "
	    "INTERNALDATE \"26-Nov-2026 00:40:29 +0000\" "
	    "ENVELOPE (\"Thu, 26 Nov 2026 00:40:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" "
	    "((\"Bob\" NIL \"bob\" \"example.com\")) NIL NIL "
	    "((NIL NIL \"team\" \"example.com\")) NIL NIL NIL \"<abc@example.com>\") "
	    "BODY[] {12}\r\nab\0c\r\nd\r\n\r\ne UID 43)\r\n";
	CHECK(in,
	    "* 12 FETCH (UID 42 FLAGS (\\Seen) RFC822.SIZE 5123 "
	    "INTERNALDATE \"26-Nov-2026 00:40:29 +0000\" "
	    "ENVELOPE (\"Thu, 26 Nov 2026 00:40:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" "
	    "((\"Bob\" NIL \"bob\" \"example.com\")) NIL NIL "
	    "((NIL NIL \"team\" \"example.com\")) NIL NIL NIL \"<abc@example.com>\") "
	    "BODY[] {12}\"ab\\x00c\\x0d\\x0ad\\x0d\\x0a\\x0d\\x0ae\" UID 43)\n");
}
END_TEST

START_TEST(test_literals)
{
	/* Literal at the end of the line followed by more arguments. */
	CHECK("* 1 FETCH (BODY[HEADER] {5}\r\nabcde FLAGS (\\Seen))\r\n",
	    "* 1 FETCH (BODY[HEADER] {5}\"abcde\" FLAGS (\\Seen))\n");
	/* Literal8, non-synchronizing, empty, several in a row. */
	CHECK("* 1 FETCH (BINARY[2] ~{3}\r\n\0\1\2)\r\n",
	    "* 1 FETCH (BINARY[2] ~{3}\"\\x00\\x01\\x02\")\n");
	CHECK("* X {3+}\r\nabc\r\n", "* X {3}\"abc\"\n");
	CHECK("* X {0}\r\n {0}\r\n\r\n", "* X {0}\"\" {0}\"\"\n");
	CHECK("* X ({2}\r\nab{1}\r\nc)\r\n", "* X ({2}\"ab\" {1}\"c\")\n");
	CHECK("* X {4}\r\n\r\n\r\n\r\n", "* X {4}\"\\x0d\\x0a\\x0d\\x0a\"\n");
	CHECK("* X {0005}\r\nhello\r\n", "* X {5}\"hello\"\n");
	/* A literal holding what looks like a literal marker and a CRLF. */
	CHECK("* X {7}\r\n{5}\r\nab\r\n", "* X {7}\"{5}\\x0d\\x0aab\"\n");
	/* Bare LF ends lines too. */
	CHECK("* X {2}\nab\n* 1 EXISTS\n", "* X {2}\"ab\"\n* 1 EXISTS\n");
	/* "~{n}" must be an argument of its own. */
	CHECK("* X a~{2}\r\n", "* X a~{2}\n");
	/* Literals are data: quoted "NIL" and literal NIL stay strings. */
	CHECK("* X \"NIL\" {3}\r\nNIL nil\r\n", "* X \"NIL\" {3}\"NIL\" NIL\n");
}
END_TEST

START_TEST(test_strings_atoms)
{
	CHECK("* X \"a\\\"b\\\\c\\d\"\r\n", "* X \"a\\\"b\\\\cd\"\n");
	CHECK("* X \"\" \"(\" \")\" \"{5}\"\r\n", "* X \"\" \"(\" \")\" \"{5}\"\n");
	CHECK("* X \"\xe2\x82\xac\"\r\n", "* X \"\\xe2\\x82\\xac\"\n");
	CHECK("* X \"\t\"\r\n", "* X \"\\x09\"\n");
	CHECK("* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)]<0> {2}\r\nab)\r\n",
	    "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)]<0> {2}\"ab\")\n");
	CHECK("* 1 FETCH (BINARY[2] \"x\" BODY[1.2] NIL BODY[]<10> \"\")\r\n",
	    "* 1 FETCH (BINARY[2] \"x\" BODY[1.2] NIL BODY[]<10> \"\")\n");
	CHECK("* 1 FETCH (BODY[a[b]c] x)\r\n", "* 1 FETCH (BODY[a[b]c] x)\n");
	CHECK("* X ] a]b \xff\r\n", "* X ] a]b \xff\n");
}
END_TEST

START_TEST(test_nested_lists)
{
	CHECK("* X (((a) ((b c)) ()) d)\r\n", "* X (((a) ((b c)) ()) d)\n");
	CHECK("* X () (()) ((()))\r\n", "* X () (()) ((()))\n");
	CHECK("* BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1)"
	    "(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" 100) \"mixed\")\r\n",
	    "* BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1)"
	    " (\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" 100) \"mixed\")\n");
}
END_TEST

START_TEST(test_several_in_one_buffer)
{
	static const char in[] =
	    "* 3 EXISTS\r\n"
	    "* 1 FETCH (BODY[] {3}\r\nx\ry)\r\n"
	    "A1 OK done\r\n"
	    "+ go\r\n"
	    "* SEARCH";
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	size_t consumed, off = 0;

	CHECK(in, "* 3 EXISTS\n* 1 FETCH (BODY[] {3}\"x\\x0dy\")\nA1 OK \"done\"\n"
	    "+ \"go\"\nINCOMPLETE");

	ck_assert_int_eq(imap_parser_feed(p, in, sizeof(in) - 1, &consumed,
	    &resp), 1);
	ck_assert_uint_eq(consumed, 12);
	ck_assert_uint_eq(resp->number, 3);
	off += consumed;
	ck_assert_int_eq(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
	    &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, 29);
	off += consumed;
	ck_assert_int_eq(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
	    &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, 12);
	ck_assert_str_eq(resp->tag, "A1");
	off += consumed;
	ck_assert_int_eq(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
	    &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, 6);
	off += consumed;
	ck_assert_int_eq(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
	    &consumed, &resp), 0);
	ck_assert_uint_eq(consumed, 8);
	ck_assert_int_eq(imap_parser_feed(p, " 7\r\nA2", 6, &consumed, &resp), 1);
	ck_assert_uint_eq(consumed, 4);
	ck_assert_str_eq(resp->name, "SEARCH");
	ck_assert_uint_eq(resp->argc, 1);
	ck_assert_str_eq(resp->args[0].v.str, "7");
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_syntax_errors)
{
	CHECK("* X a\rb\r\n", "ERR: CR not followed by LF");
	CHECK("* X \"a\rb\"\r\n", "ERR: CR not followed by LF");
	CHECK("* X a\r\r\n", "ERR: CR not followed by LF");
	CHECK("* X a\0b\r\n", "ERR: NUL byte in response");
	CHECK("* X \"a\0b\"\r\n", "ERR: NUL byte in response");
	CHECK("A1 OK te\0xt\r\n", "ERR: NUL byte in response");
	CHECK("* X \"abc\r\n", "ERR: unterminated quoted string");
	CHECK("* X \"abc\\\"\r\n", "ERR: unterminated quoted string");
	CHECK("* X \"abc\\\r\n", "ERR: unterminated quoted string");
	CHECK("* X \"a {3}\r\nabc\"\r\n", "ERR: unterminated quoted string");
	CHECK("* X a)\r\n", "ERR: unexpected ')'");
	CHECK("* X (a (b)\r\n", "ERR: unterminated list");
	CHECK("* X (a {1}\r\nb\r\n", "ERR: unterminated list");
	CHECK("* 1 FETCH (BODY[HEADER\r\n", "ERR: unterminated '[' in atom");
	CHECK("* 1 FETCH (BODY[ {3}\r\nabc])\r\n", "ERR: unterminated '[' in atom");
	CHECK("* X a\tb\r\n", "ERR: control character in response");
	CHECK("* X {}\r\n", "ERR: invalid literal size");
	CHECK("* X {+}\r\n", "ERR: invalid literal size");
	CHECK("* X {-1}\r\n", "ERR: invalid literal size");
	CHECK("* X {1 }\r\n", "* X {1 }\n");
	CHECK("* X {0x10}\r\n", "ERR: invalid literal size");
	CHECK("\r\n", "ERR: empty response line");
	CHECK("\n", "ERR: empty response line");
	CHECK(" A1 OK\r\n", "ERR: missing tag");
	CHECK("A1\r\n", "ERR: missing response name");
	CHECK("*\r\n", "ERR: missing response name");
	CHECK("* \r\n", "ERR: missing response name");
	CHECK("* 5\r\n", "ERR: missing response name");
	CHECK("* 5 (x)\r\n", "ERR: missing response name");
	CHECK("A1 FETCH x\r\n", "ERR: tagged response without status");
	CHECK("A1 BYE x\r\n", "ERR: tagged response without status");
	CHECK("* 4294967296 EXISTS\r\n", "ERR: invalid message number");
	CHECK("* 99999999999999999999999 EXISTS\r\n", "ERR: invalid message number");
	CHECK("* 12x EXISTS\r\n", "ERR: invalid message number");
	/* Errors come after the good responses before them. */
	CHECK("* 1 EXISTS\r\n* X )\r\n* 2 EXISTS\r\n",
	    "* 1 EXISTS\nERR: unexpected ')'");
}
END_TEST

START_TEST(test_limits_small)
{
	struct imap_parser_limits lim = {
		.max_line = 32, .max_literal = 10, .max_response = 50,
		.max_depth = 2, .max_args = 5,
	};

	/* Exactly max_line bytes (CRLF included) passes, one more fails. */
	CHECK_LIM("* X 01234567890123456789012345\r\n", &lim,
	    "* X 01234567890123456789012345\n");
	CHECK_LIM("* X 012345678901234567890123456\r\n", &lim,
	    "ERR: line too long");
	CHECK_LIM("* X 012345678901234567890123456\n", &lim,
	    "* X 012345678901234567890123456\n");
	CHECK_LIM("* X {10}\r\n0123456789\r\n", &lim, "* X {10}\"0123456789\"\n");
	CHECK_LIM("* X {11}\r\n", &lim, "ERR: literal size too large");
	CHECK_LIM("* X {10}\r\n0123456789 {10}\r\n0123456789 {10}\r\n", &lim,
	    "ERR: response too large");
	CHECK_LIM("* X ((a))\r\n", &lim, "* X ((a))\n");
	CHECK_LIM("* X (((a)))\r\n", &lim, "ERR: list nesting too deep");
	CHECK_LIM("* X 1 2 3 4 5\r\n", &lim, "* X 1 2 3 4 5\n");
	CHECK_LIM("* X 1 2 3 4 5 6\r\n", &lim, "ERR: too many arguments");
	/* Lists count as arguments too. */
	CHECK_LIM("* X (1 2) (3)\r\n", &lim, "* X (1 2) (3)\n");
	CHECK_LIM("* X (1 2) (3 4)\r\n", &lim, "ERR: too many arguments");
	CHECK_LIM("* OK [X 1 2 3 4 5 6] t\r\n", &lim, "ERR: too many arguments");
	/* The line limit counts every line of the response, not literals. */
	lim.max_response = 1000;
	CHECK_LIM("* X {10}\r\n0123456789 {10}\r\n0123456789 012345678901234\r\n",
	    &lim, "ERR: line too long");
	CHECK_LIM("* X {10}\r\n0123456789 {10}\r\n0123456789 0123456789\r\n",
	    &lim, "* X {10}\"0123456789\" {10}\"0123456789\" 0123456789\n");
	/* Too many literals is refused before their bodies are read. */
	lim.max_line = 100;
	lim.max_response = 100;
	CHECK_LIM("* X {0}\r\n {0}\r\n {0}\r\n {0}\r\n {0}\r\n {0}\r\n", &lim,
	    "ERR: too many arguments");
}
END_TEST

/* Feeds a stream of filler after prefix in 64 KiB chunks until the parser
 * refuses it; returns how many bytes it took. */
static size_t
feed_until_error(struct imap_parser *p, const char *prefix, char filler,
    size_t max_total, size_t *peak_r)
{
	static char chunk[64 * 1024];
	const struct imap_resp *resp;
	size_t consumed, total = 0, mem;
	int ret;

	memset(chunk, filler, sizeof(chunk));
	ret = imap_parser_feed(p, prefix, strlen(prefix), &consumed, &resp);
	ck_assert_int_eq(ret, 0);
	total += consumed;
	*peak_r = imap_parser_memory(p);
	while (total < max_total) {
		ret = imap_parser_feed(p, chunk, sizeof(chunk), &consumed, &resp);
		total += consumed;
		mem = imap_parser_memory(p);
		if (mem > *peak_r)
			*peak_r = mem;
		if (ret < 0)
			return total;
		ck_assert_int_eq(ret, 0);
	}
	ck_abort_msg("no error after %zu bytes", total);
	return total;
}

START_TEST(test_huge_line)
{
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used, peak;

	/* A 1 GiB line: refused at the line limit, memory stays near it. */
	used = feed_until_error(p, "* SEARCH ", '7', (size_t)1024 * MIB, &peak);
	ck_assert_str_eq(imap_parser_error(p), "line too long");
	ck_assert_uint_eq(used, imap_parser_default_limits.max_line);
	ck_assert_uint_le(peak, imap_parser_default_limits.max_line + 64 * 1024);

	/* Status text is limited the same way. */
	imap_parser_reset(p);
	ck_assert_ptr_null(imap_parser_error(p));
	used = feed_until_error(p, "A1 OK ", 'x', (size_t)1024 * MIB, &peak);
	ck_assert_str_eq(imap_parser_error(p), "line too long");
	ck_assert_uint_le(peak, imap_parser_default_limits.max_line + 64 * 1024);

	/* With limits that are not powers of two, buffers grow to the limit,
	 * not to the next doubling. */
	{
		struct imap_parser_limits lim = imap_parser_default_limits;
		struct imap_parser *q;
		static char lit[300000];
		const struct imap_resp *resp;
		size_t consumed, off;

		lim.max_line = 300000;
		lim.max_literal = 300000;
		q = imap_parser_new(&lim);
		used = feed_until_error(q, "* SEARCH ", '7', 2 * MIB, &peak);
		ck_assert_uint_eq(used, 300000);
		ck_assert_uint_le(peak, 300000 + 16 * 1024);
		imap_parser_reset(q);
		ck_assert_int_eq(imap_parser_feed(q, "* X {300000}\r\n", 14,
		    &consumed, &resp), 0);
		memset(lit, 'a', sizeof(lit));
		for (off = 0; off < sizeof(lit); off += consumed) {
			ck_assert_int_eq(imap_parser_feed(q, lit + off,
			    sizeof(lit) - off > 4096 ? 4096 : sizeof(lit) - off,
			    &consumed, &resp), 0);
			ck_assert_uint_le(imap_parser_memory(q), 300000 + 16 * 1024);
		}
		ck_assert_int_eq(imap_parser_feed(q, "\r\n", 2, &consumed,
		    &resp), 1);
		ck_assert_uint_eq(resp->args[0].len, 300000);
		imap_parser_free(&q);
	}

	/* A literal just under the limit streams in; memory follows the
	 * data received, not the announced size. */
	imap_parser_reset(p);
	{
		const struct imap_resp *resp;
		size_t consumed;
		const char *hdr = "* 1 FETCH (BODY[] {67108864}\r\n";

		ck_assert_int_eq(imap_parser_feed(p, hdr, strlen(hdr), &consumed,
		    &resp), 0);
		ck_assert_uint_lt(imap_parser_memory(p), 64 * 1024);
	}
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_huge_literal_size)
{
	static const char *const sizes[] = {
		"18446744073709551615", "18446744073709551616",
		"99999999999999999999999999999999", "67108865",
	};
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	size_t consumed, i;
	char line[128];

	for (i = 0; i < N_ELEMENTS(sizes); i++) {
		imap_parser_reset(p);
		snprintf(line, sizeof(line), "* 1 FETCH (BODY[] {%s}\r\n", sizes[i]);
		ck_assert_int_eq(imap_parser_feed(p, line, strlen(line),
		    &consumed, &resp), -1);
		ck_assert_str_eq(imap_parser_error(p), "literal size too large");
		ck_assert_uint_lt(imap_parser_memory(p), 64 * 1024);
		snprintf(line, sizeof(line), "* 1 FETCH (BODY[] ~{%s+}\r\n",
		    sizes[i]);
		imap_parser_reset(p);
		ck_assert_int_eq(imap_parser_feed(p, line, strlen(line),
		    &consumed, &resp), -1);
		ck_assert_str_eq(imap_parser_error(p), "literal size too large");
	}
	/* Within max_literal but past max_response. */
	{
		struct imap_parser_limits lim = imap_parser_default_limits;
		struct imap_parser *q;

		lim.max_response = 1000;
		q = imap_parser_new(&lim);
		ck_assert_int_eq(imap_parser_feed(q, "* X {990}\r\n", 11,
		    &consumed, &resp), -1);
		ck_assert_str_eq(imap_parser_error(q), "response too large");
		imap_parser_free(&q);
	}
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_deep_nesting)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	size_t consumed, n = 100000;
	struct str in;

	str_init(&in);
	str_append(&in, "* X ");
	while (n-- > 0)
		str_append_c(&in, '(');
	str_append(&in, "\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed, &resp), -1);
	ck_assert_str_eq(imap_parser_error(p), "list nesting too deep");
	ck_assert_uint_lt(imap_parser_memory(p), 3 * in.len);

	/* 32 levels are fine, 33 are not. */
	imap_parser_reset(p);
	str_reset(&in);
	str_append(&in, "* X ");
	for (n = 0; n < 32; n++)
		str_append_c(&in, '(');
	for (n = 0; n < 32; n++)
		str_append_c(&in, ')');
	str_append(&in, "\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed, &resp), 1);
	ck_assert_uint_eq(resp->argc, 1);
	str_reset(&in);
	str_append(&in, "* X ");
	for (n = 0; n < 33; n++)
		str_append_c(&in, '(');
	str_append(&in, "\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed, &resp), -1);
	ck_assert_str_eq(imap_parser_error(p), "list nesting too deep");
	str_free(&in);
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_too_many_args)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	size_t consumed, n, max = imap_parser_default_limits.max_args;
	struct str in;

	/* max_args arguments pass; one more fails. */
	str_init(&in);
	str_append(&in, "* SEARCH");
	for (n = 0; n < max; n++)
		str_append(&in, " 1");
	str_append(&in, "\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed, &resp), 1);
	ck_assert_uint_eq(resp->argc, max);
	ck_assert_str_eq(resp->args[max - 1].v.str, "1");

	in.len -= 2;
	str_append(&in, " 1\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed, &resp), -1);
	ck_assert_str_eq(imap_parser_error(p), "too many arguments");
	ck_assert_uint_lt(imap_parser_memory(p), imap_parser_default_limits.max_line +
	    (size_t)max * 2 * sizeof(struct imap_arg));

	/* Nested arguments count too: (1 1 ...) is 1 + max_args. */
	imap_parser_reset(p);
	str_reset(&in);
	str_append(&in, "* X (");
	for (n = 0; n < max; n++)
		str_append(&in, "1 ");
	str_append(&in, ")\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed, &resp), -1);
	ck_assert_str_eq(imap_parser_error(p), "too many arguments");
	str_free(&in);
	imap_parser_free(&p);
}
END_TEST

/* One byte at a time must stay linear: 1 MiB of literal plus a long line
 * would take hours if each byte rescanned the response. */
START_TEST(test_bytewise_linear)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp = NULL;
	size_t consumed, i, lit = 1 * MIB, n = 0;
	struct str in;
	int ret = 0;

	str_init(&in);
	str_printf(&in, "* 1 FETCH (BODY[] {%zu}\r\n", lit);
	for (i = 0; i < lit; i++)
		str_append_c(&in, (char)(i % 251));
	str_append(&in, " FLAGS (");
	for (i = 0; i < 50000; i++)
		str_append(&in, "\\Seen ");
	str_append(&in, "))\r\n");
	for (i = 0; i < in.len; i++) {
		ret = imap_parser_feed(p, in.data + i, 1, &consumed, &resp);
		ck_assert_uint_eq(consumed, 1);
		if (ret != 0)
			break;
		n++;
	}
	ck_assert_int_eq(ret, 1);
	ck_assert_uint_eq(n, in.len - 1);
	ck_assert_uint_eq(resp->argc, 1);
	ck_assert_uint_eq(resp->args[0].len, 4);
	ck_assert_uint_eq(resp->args[0].v.list[1].len, lit);
	for (i = 0; i < lit; i++) {
		if ((unsigned char)resp->args[0].v.list[1].v.str[i] != i % 251)
			ck_abort_msg("literal byte %zu differs", i);
	}
	ck_assert_uint_eq(resp->args[0].v.list[3].len, 50000);
	/* Memory goes back down for the next, small response. */
	ck_assert_int_eq(imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &consumed,
	    &resp), 1);
	ck_assert_uint_lt(imap_parser_memory(p), 256 * 1024);
	/* Many literals: the bookkeeping is given back afterwards too. */
	str_reset(&in);
	str_append(&in, "* X");
	for (i = 0; i < 100000; i++)
		str_append(&in, " {0}\r\n");
	str_append(&in, "\r\n");
	ck_assert_int_eq(imap_parser_feed(p, in.data, in.len, &consumed,
	    &resp), 1);
	ck_assert_uint_eq(resp->argc, 100000);
	ck_assert_uint_eq(resp->args[99999].type, IMAP_ARG_LITERAL);
	ck_assert_uint_gt(imap_parser_memory(p), 1 * MIB);
	ck_assert_int_eq(imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &consumed,
	    &resp), 1);
	ck_assert_uint_lt(imap_parser_memory(p), 256 * 1024);
	str_free(&in);
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_reuse_and_reset)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	size_t consumed;

	/* A partial response is forgotten by reset (e.g. after STARTTLS). */
	ck_assert_int_eq(imap_parser_feed(p, "* 1 FETCH (BODY[] {10}\r\nabc", 27,
	    &consumed, &resp), 0);
	imap_parser_reset(p);
	resp = parse_one(p, "A1 OK [UIDNEXT 7] x\r\n");
	ck_assert_str_eq(resp->tag, "A1");
	ck_assert_str_eq(resp->code, "UIDNEXT");
	/* An error sticks until reset. */
	ck_assert_int_eq(imap_parser_feed(p, ")\r\n", 3, &consumed, &resp), -1);
	ck_assert_int_eq(imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &consumed,
	    &resp), -1);
	ck_assert_uint_eq(consumed, 0);
	imap_parser_reset(p);
	ck_assert_ptr_null(imap_parser_error(p));
	resp = parse_one(p, "* 1 EXISTS\r\n");
	ck_assert_uint_eq(resp->number, 1);
	/* Empty feeds are harmless. */
	ck_assert_int_eq(imap_parser_feed(p, "", 0, &consumed, &resp), 0);
	ck_assert_uint_eq(consumed, 0);
	resp = parse_one(p, "* 2 EXISTS\r\n");
	ck_assert_uint_eq(resp->number, 2);
	imap_parser_free(&p);
	imap_parser_free(&p);
}
END_TEST

/* imap_parser_trim: a big response's buffers go once it was returned,
 * not when the next response starts; a response in progress is kept. */
START_TEST(test_trim)
{
	static const char hdr[] = "* 1 FETCH (UID 7 BODY[] {10485760}\r\n";
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_resp *resp;
	size_t consumed, small;
	char *lit = xmalloc(10 * MIB);

	memset(lit, 'm', 10 * MIB);
	small = imap_parser_memory(p);
	imap_parser_trim(p);            /* nothing to give back */
	ck_assert_uint_eq(imap_parser_memory(p), small);

	ck_assert_int_eq(imap_parser_feed(p, hdr, sizeof(hdr) - 1, &consumed,
	    &resp), 0);
	ck_assert_int_eq(imap_parser_feed(p, lit, 10 * MIB, &consumed, &resp), 0);
	/* in progress: trimming must not lose it */
	imap_parser_trim(p);
	ck_assert_uint_gt(imap_parser_memory(p), 10 * MIB);
	ck_assert_int_eq(imap_parser_feed(p, ")\r\n", 3, &consumed, &resp), 1);
	ck_assert_uint_eq(resp->args[0].type, IMAP_ARG_LIST);
	ck_assert_uint_eq(resp->args[0].v.list[3].len, 10 * MIB);
	ck_assert_int_eq(resp->args[0].v.list[3].v.str[10 * MIB - 1], 'm');
	ck_assert_uint_gt(imap_parser_memory(p), 10 * MIB);
	imap_parser_trim(p);
	ck_assert_uint_lt(imap_parser_memory(p), 256 * 1024);
	/* and the parser goes on as before */
	resp = parse_one(p, "A1 OK [UIDNEXT 8] done\r\n");
	ck_assert_str_eq(resp->code, "UIDNEXT");
	ck_assert_str_eq(resp->text, "done");
	imap_parser_trim(p);
	resp = parse_one(p, "* 2 EXISTS\r\n");
	ck_assert_uint_eq(resp->number, 2);

	/* an error stays until reset */
	ck_assert_int_eq(imap_parser_feed(p, ")\r\n", 3, &consumed, &resp), -1);
	imap_parser_trim(p);
	ck_assert_ptr_nonnull(imap_parser_error(p));
	ck_assert_int_eq(imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &consumed,
	    &resp), -1);
	free(lit);
	imap_parser_free(&p);
}
END_TEST

static Suite *
imap_parser_suite(void)
{
	Suite *s = suite_create("imap_parser");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_continuation);
	tcase_add_test(tc, test_tagged);
	tcase_add_test(tc, test_untagged_status);
	tcase_add_test(tc, test_resp_code_fallback);
	tcase_add_test(tc, test_resp_code_unclosed);
	tcase_add_test(tc, test_untagged_data);
	tcase_add_test(tc, test_fetch);
	tcase_add_test(tc, test_literals);
	tcase_add_test(tc, test_strings_atoms);
	tcase_add_test(tc, test_nested_lists);
	tcase_add_test(tc, test_several_in_one_buffer);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_limits_small);
	tcase_add_test(tc, test_huge_line);
	tcase_add_test(tc, test_huge_literal_size);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_too_many_args);
	tcase_add_test(tc, test_bytewise_linear);
	tcase_add_test(tc, test_reuse_and_reset);
	tcase_add_test(tc, test_trim);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(imap_parser_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
