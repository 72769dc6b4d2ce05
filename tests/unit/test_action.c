/*
 * Unit tests for action.c (and act_util.c): action_params_check for every
 * parameter type, on a table entry made for the test and on the real
 * entries (unknown, missing, CLI-only and HTTP-only parameters and the
 * entries' own cross-parameter checks); the action table itself; the maps
 * from a status to an exit code, an HTTP status and an error code;
 * action_mailbox_from_wire; action_message_check; the UID list helpers.
 *
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "action.h"
#include "imap_parser.h"
#include "util.h"

/* ---- a made-up entry with one parameter of every type ---- */

static const char *const colours[] = { "red", "green", NULL };

static const struct action_param every_params[] = {
	{ "str", APT_STRING, 0, NULL, "a string" },
	{ "mbox", APT_MAILBOX, AP_REQUIRED, NULL, "a mailbox" },
	{ "n", APT_INT, 0, NULL, "an integer" },
	{ "yes", APT_BOOL, 0, NULL, "a boolean" },
	{ "flags", APT_FLAGS, 0, NULL, "flags" },
	{ "range", APT_RANGE, 0, NULL, "a set" },
	{ "date", APT_DATE, 0, NULL, "a date" },
	{ "colour", APT_ENUM, 0, colours, "an enum" },
	{ "part", APT_PARTID, 0, NULL, "a part" },
	{ "message", APT_MESSAGE, AP_HTTP_ONLY, NULL, "a message" },
	{ "file", APT_FILE, AP_CLI_ONLY, NULL, "a file" },
	{ NULL }
};

static void
every_start(struct action_run *run ATTR_UNUSED)
{
}

static void
every_step(struct action_run *run ATTR_UNUSED, const struct imap_reply *reply ATTR_UNUSED)
{
}

static const struct action_entry every_entry = {
	.name = "every",
	.summary = "test entry",
	.params = every_params,
	.start = every_start,
	.step = every_step,
};

/*
 * Checks {"mbox": "INBOX", key: value} (value in JSON; NULL: only mbox)
 * over both doors unless the parameter belongs to one; returns the result
 * of the HTTP (or only) check, asserting both doors agree.
 */
static int
check_one(const struct action_entry *entry, const char *json, bool http, struct action_error *err)
{
	json_error_t jerr;
	json_t *params = json_loads(json, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
	int r;

	ck_assert_msg(params != NULL, "bad test JSON %s: %s", json, jerr.text);
	memset(err, 0x55, sizeof(*err));
	r = action_params_check(entry, params, http, false, err);
	if (r == 0)
		ck_assert_int_eq(err->status, ACTION_OK);
	else
		ck_assert_msg(err->msg[0] != '\0' && memchr(err->msg, '\0', sizeof(err->msg)),
		    "no message");
	json_decref(params);
	return r;
}

/* {"mbox":"INBOX", "<key>": <value>} must pass (both doors). */
static void
every_ok(const char *key, const char *value)
{
	struct action_error err;
	char *json = xasprintf("{\"mbox\": \"INBOX\", \"%s\": %s}", key, value);

	ck_assert_msg(check_one(&every_entry, json, true, &err) == 0, "%s refused: %s",
	    json, err.msg);
	ck_assert_msg(check_one(&every_entry, json, false, &err) == 0, "%s refused (CLI): %s",
	    json, err.msg);
	free(json);
}

/* Must fail with a usage error naming the parameter (both doors). */
static void
every_bad(const char *key, const char *value)
{
	struct action_error err;
	char *json = xasprintf("{\"mbox\": \"INBOX\", \"%s\": %s}", key, value);
	char *quoted = xasprintf("\"%s\"", key);
	int door;

	for (door = 0; door < 2; door++) {
		ck_assert_msg(check_one(&every_entry, json, door == 0, &err) == -1,
		    "%s accepted", json);
		ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
		ck_assert_msg(strstr(err.msg, quoted) != NULL, "%s: %s", json, err.msg);
	}
	free(quoted);
	free(json);
}

START_TEST(test_type_int_bool)
{
	every_ok("n", "0");
	every_ok("n", "5");
	every_ok("n", "4294967295");
	/* IMAP numbers are 32-bit: beyond is a usage error, not the server's
	 * refusal */
	every_bad("n", "4294967296");
	every_bad("n", "9007199254740993");
	every_bad("n", "-1");
	every_bad("n", "5.0");
	every_bad("n", "\"5\"");
	every_bad("n", "true");
	every_bad("n", "null");
	every_bad("n", "[5]");
	every_ok("yes", "true");
	every_ok("yes", "false");
	every_bad("yes", "1");
	every_bad("yes", "\"true\"");
	every_bad("yes", "null");
}
END_TEST

START_TEST(test_type_flags)
{
	every_ok("flags", "[]");
	every_ok("flags", "[\"\\\\Seen\", \"\\\\Flagged\", \"$Label1\", \"urgent\", "
	    "\"Junk\", \"a.b-c_d+e\"]");
	every_bad("flags", "\"\\\\Seen\"");             /* not a list */
	every_bad("flags", "[1]");
	every_bad("flags", "[null]");
	every_bad("flags", "[\"\"]");
	every_bad("flags", "[\"\\\\\"]");               /* a lone backslash */
	every_bad("flags", "[\"a b\"]");
	every_bad("flags", "[\"a(b\"]");
	every_bad("flags", "[\"a)b\"]");
	every_bad("flags", "[\"a{b\"]");
	every_bad("flags", "[\"a%b\"]");
	every_bad("flags", "[\"a*\"]");
	every_bad("flags", "[\"a\\\"b\"]");
	every_bad("flags", "[\"a]\"]");
	every_bad("flags", "[\"a\\\\b\"]");             /* backslash inside */
	every_bad("flags", "[\"\\\\Seen\\r\\nA1 LOGOUT\"]");
	every_bad("flags", "[\"caf\\u00e9\"]");
	every_bad("flags", "[\"a\\u007fb\"]");
	every_bad("flags", "[\"\\\\Seen\", 2]");
}
END_TEST

START_TEST(test_type_range)
{
	static const char *const good[] = {
		"1", "1:5", "5:1", "1:5,9", "*", "1:*", "*:3", "3,1,2", "4294967295",
		"1,2,3,4,5,6,7,8,9,10",
	};
	static const char *const bad[] = {
		"", "0", "0:5", "1:0", "1,", ",1", "1,,2", ":", "1:", ":5", "1:2:3",
		"a", "1 2", " 1", "1 ", "-1", "+1", "1;2", "4294967296", "**", "1:**",
		"1\\r\\n", "$", "1.5",
	};
	char *v;
	size_t i;

	for (i = 0; i < N_ELEMENTS(good); i++) {
		v = xasprintf("\"%s\"", good[i]);
		every_ok("range", v);
		free(v);
	}
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		v = xasprintf("\"%s\"", bad[i]);
		every_bad("range", v);
		free(v);
	}
	every_bad("range", "5");
	every_bad("range", "[\"1\"]");
}
END_TEST

START_TEST(test_type_date)
{
	static const char *const good[] = {
		"2026-01-31", "2024-02-29", "1900-01-01", "9999-12-31", "2026-04-30",
	};
	static const char *const bad[] = {
		"", "2026-02-30", "2026-04-31", "2026-13-01", "2026-00-10", "2026-01-00",
		"2026-01-32", "1899-12-31", "2026-1-01", "26-01-01", "2026/01/01",
		"2026-01-011", "2026-01-1", "20260101", "2026-0a-01", "2026-01-01T00:00",
		" 2026-01-01", "2026-01-01 ", "-026-01-01", "+2026-01-01",
	};
	char *v;
	size_t i;

	for (i = 0; i < N_ELEMENTS(good); i++) {
		v = xasprintf("\"%s\"", good[i]);
		every_ok("date", v);
		free(v);
	}
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		v = xasprintf("\"%s\"", bad[i]);
		every_bad("date", v);
		free(v);
	}
	every_bad("date", "20260101");
}
END_TEST

/*
 * Fixed bug (action.c valid_date): February always has 29 days, so "2023-02-29"
 * (not a leap year) passes the check and reaches the server as
 * 29-Feb-2023; it should be a usage error (400), like "2023-02-30".
 */
START_TEST(test_type_date_leap)
{
	every_ok("date", "\"2024-02-29\"");
	every_ok("date", "\"2000-02-29\"");
	every_bad("date", "\"2023-02-29\"");
	every_bad("date", "\"1900-02-29\"");
}
END_TEST

START_TEST(test_type_enum_partid)
{
	static const char *const good_parts[] = { "1", "2", "10", "1.2", "2.1.3", "1.10.100" };
	static const char *const bad_parts[] = {
		"", "0", "01", "1.0", "1.01", "1.", ".1", ".", "1..2", "a", " 1", "1 ",
		"-1", "1.2a", "TEXT", "1.MIME", "1,2",
	};
	char *v;
	size_t i;

	every_ok("colour", "\"red\"");
	every_ok("colour", "\"green\"");
	every_bad("colour", "\"RED\"");
	every_bad("colour", "\"blue\"");
	every_bad("colour", "\"\"");
	every_bad("colour", "\"red \"");
	every_bad("colour", "1");
	every_bad("colour", "null");
	for (i = 0; i < N_ELEMENTS(good_parts); i++) {
		v = xasprintf("\"%s\"", good_parts[i]);
		every_ok("part", v);
		free(v);
	}
	for (i = 0; i < N_ELEMENTS(bad_parts); i++) {
		v = xasprintf("\"%s\"", bad_parts[i]);
		every_bad("part", v);
		free(v);
	}
	every_bad("part", "1");
}
END_TEST

START_TEST(test_type_mailbox_string)
{
	struct action_error err;

	every_ok("str", "\"anything at all: () {} * %\"");
	every_ok("str", "\"\"");
	every_ok("str", "\"caf\\u00e9\"");
	every_bad("str", "\"a\\u0000b\"");
	every_bad("str", "5");
	every_bad("str", "null");
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"Archive/2026\"}", true, &err), 0);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"Entw\\u00fcrfe\"}", true, &err), 0);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"NIL\"}", true, &err), 0);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"\"}", true, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "\"mbox\" must be a mailbox path"));
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"a\\u0000b\"}", true, &err), -1);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": 1}", true, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "\"mbox\" must be a string"));
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": [\"INBOX\"]}", true, &err), -1);
}
END_TEST

START_TEST(test_unknown_missing_doors)
{
	struct action_error err;

	/* message is HTTP-only, file CLI-only */
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"message\": \"x\"}",
	    true, &err), 0);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"message\": \"x\"}",
	    false, &err), -1);
	ck_assert_str_eq(err.msg, "every: unknown parameter \"message\"");
	ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"file\": \"-\"}",
	    false, &err), 0);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"file\": \"-\"}",
	    true, &err), -1);
	ck_assert_str_eq(err.msg, "every: unknown parameter \"file\"");
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"file\": 3}",
	    false, &err), -1);
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"message\": 3}",
	    true, &err), -1);

	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"bogus\": 1}", true,
	    &err), -1);
	ck_assert_str_eq(err.msg, "every: unknown parameter \"bogus\"");
	/* names are exact: no case folding, no kebab-case over JSON */
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"N\": 1}", true,
	    &err), -1);
	ck_assert_int_eq(check_one(&every_entry, "{\"MBOX\": \"I\"}", true, &err), -1);
	ck_assert_int_eq(check_one(&every_entry, "{}", true, &err), -1);
	ck_assert_str_eq(err.msg, "every: missing required parameter \"mbox\"");
	ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
	ck_assert_int_eq(check_one(&every_entry, "[]", true, &err), -1);
	ck_assert_str_eq(err.msg, "parameters must be a JSON object");
	ck_assert_int_eq(check_one(&every_entry, "\"INBOX\"", true, &err), -1);
	ck_assert_int_eq(check_one(&every_entry, "null", true, &err), -1);
	/* null is a value of the wrong type, not "absent" */
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": null}", true, &err), -1);
	/* every parameter at once */
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"INBOX\", \"str\": \"s\", "
	    "\"n\": 1, \"yes\": false, \"flags\": [\"\\\\Seen\"], \"range\": \"1:*\", "
	    "\"date\": \"2026-01-01\", \"colour\": \"red\", \"part\": \"1.2\", "
	    "\"message\": \"From: a\\r\\n\\r\\nb\"}", true, &err), 0);
}
END_TEST

/* A JSON string of n bytes: head, then fill repeated. */
static char *
json_str_n(const char *head, char fill, size_t n)
{
	struct str s;
	size_t i;

	str_init(&s);
	str_printf(&s, "\"%s", head);
	for (i = strlen(head); i < n; i++)
		str_append_c(&s, fill);
	str_append_c(&s, '"');
	return str_steal(&s);
}

/* A valid range of exactly n bytes as JSON: "1,1,...,1" or "11,1,...". */
static char *
json_range_n(size_t n)
{
	struct str s;

	str_init(&s);
	str_append(&s, n % 2 == 0 ? "\"11" : "\"1");
	while (s.len - 1 < n)
		str_append(&s, ",1");
	str_append_c(&s, '"');
	return str_steal(&s);
}

/* A valid part number of exactly n bytes (n >= 3) as JSON:
 * "100.100...100", the first number longer when n % 4 != 3. */
static char *
json_partid_n(size_t n)
{
	struct str s;

	str_init(&s);
	str_append(&s, "\"1");
	while ((n - (s.len - 1)) % 4 != 2)
		str_append_c(&s, '0');
	str_append(&s, "00");
	while (s.len - 1 < n)
		str_append(&s, ".100");
	str_append_c(&s, '"');
	return str_steal(&s);
}

/*
 * Fixed bug: the API parses bodies with JSON_ALLOW_NUL, but only mailbox
 * and string parameters refused a NUL byte: "urgent\u0000junk" set
 * "urgent", a range "1\u0000,9" acted on 1. Every type refuses it now.
 */
START_TEST(test_nul_in_every_type)
{
	struct action_error err;

	every_bad("str", "\"a\\u0000b\"");
	every_bad("flags", "[\"urgent\\u0000junk\"]");
	every_bad("flags", "[\"\\\\Seen\", \"x\\u0000\"]");
	every_bad("range", "\"1\\u0000,9\"");
	every_bad("range", "\"\\u0000\"");
	every_bad("date", "\"2026-01-01\\u0000x\"");
	every_bad("colour", "\"red\\u0000x\"");
	every_bad("part", "\"1\\u0000.5\"");
	every_bad("file", "\"-\\u0000x\"");
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"INBOX\\u0000x\"}", true, &err),
	    -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "\"mbox\""));
	/* a message is checked as one (action_message_check) */
	ck_assert_int_eq(check_one(&every_entry, "{\"mbox\": \"I\", \"message\": "
	    "\"From: a\\u0000\"}", true, &err), 0);
}
END_TEST

/*
 * Fixed bugs: no string had a length limit (a 1 MB subject, a 30 MB range
 * went to the server as one line: 422/502 instead of 400), and a part
 * number longer than download's section buffer was cut short there, so
 * that another part was served.
 */
START_TEST(test_limits)
{
	struct action_error err;
	char *v, *json;

	v = json_str_n("", 'x', ACTION_STRING_MAX);
	every_ok("str", v);
	free(v);
	v = json_str_n("", 'x', ACTION_STRING_MAX + 1);
	every_bad("str", v);
	free(v);
	v = json_str_n("", 'x', 1 << 20);
	every_bad("str", v);
	free(v);
	v = json_range_n(ACTION_RANGE_MAX);
	every_ok("range", v);
	free(v);
	v = json_range_n(ACTION_RANGE_MAX + 1);
	every_bad("range", v);
	free(v);
	v = json_range_n(1 << 20);
	every_bad("range", v);
	free(v);
	/* 95 bytes fit the section: "100.100.[...].100", then "1000.100..." */
	v = json_partid_n(ACTION_PARTID_MAX);
	every_ok("part", v);
	free(v);
	v = json_partid_n(ACTION_PARTID_MAX + 1);
	every_bad("part", v);
	free(v);

	/* a mailbox: 1 KiB of UTF-8 */
	v = json_str_n("", 'm', ACTION_MAILBOX_MAX);
	json = xasprintf("{\"mbox\": %s}", v);
	ck_assert_int_eq(check_one(&every_entry, json, true, &err), 0);
	free(json);
	free(v);
	v = json_str_n("\xc3\xa4", 'm', ACTION_MAILBOX_MAX + 1);
	json = xasprintf("{\"mbox\": %s}", v);
	ck_assert_int_eq(check_one(&every_entry, json, true, &err), -1);
	ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
	ck_assert_msg(strstr(err.msg, "\"mbox\" is too long") != NULL, "%s", err.msg);
	free(json);
	free(v);

	/* flags: 4 KiB in all, a space between two */
	v = json_str_n("", 'a', ACTION_FLAGS_MAX);
	json = xasprintf("[%s]", v);
	every_ok("flags", json);
	free(json);
	free(v);
	v = json_str_n("", 'a', ACTION_FLAGS_MAX + 1);
	json = xasprintf("[%s]", v);
	every_bad("flags", json);
	free(json);
	free(v);
	v = json_str_n("", 'b', ACTION_FLAGS_MAX / 2);
	json = xasprintf("[\"%0*d\", %s]", ACTION_FLAGS_MAX / 2 - 1, 0, v);
	every_ok("flags", json);
	free(json);
	json = xasprintf("[\"%0*d\", %s]", ACTION_FLAGS_MAX / 2, 0, v);
	every_bad("flags", json);
	free(json);
	free(v);

	/* part numbers: 32 levels, each a 32-bit number */
	v = xasprintf("\"1%.*s\"", (ACTION_PARTID_DEPTH_MAX - 1) * 2,
	    ".1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1");
	every_ok("part", v);
	free(v);
	v = xasprintf("\"1%.*s\"", ACTION_PARTID_DEPTH_MAX * 2,
	    ".1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1");
	every_bad("part", v);
	free(v);
	every_ok("part", "\"4294967295.2\"");
	every_bad("part", "\"4294967296\"");
	every_bad("part", "\"1.99999999999\"");
}
END_TEST

/* "*" of a UID range resolved against the mailbox's largest UID. */
START_TEST(test_range_resolve)
{
	static const struct {
		const char *range;
		uint32_t max;
		const char *want;       /* NULL: nothing left */
	} cases[] = {
		{ "*", 50, "50" },
		{ "*", 0, NULL },
		{ "*:*", 7, "7" },
		/* RFC 3501 would make these 50:100: not a message below 100 */
		{ "100:*", 50, NULL },
		{ "*:100", 50, NULL },
		{ "50:*", 50, "50" },
		{ "2:*", 3, "2:3" },
		{ "*:2", 3, "2:3" },
		{ "2,10:*", 3, "2" },
		{ "10:*,2", 3, "2" },
		{ "1:*", 0, NULL },
		{ "3,*", 0, "3" },
		/* sorted and merged */
		{ "10:*,1:3", 20, "1:3,10:20" },
		{ "1:3,4:6,8", 20, "1:6,8" },
		{ "3,1,2", 9, "1:3" },
		{ "1:*,5", 9, "1:9" },
		{ "*,*,*", 7, "7" },
		{ "5:1", 3, "1:5" },
		{ "4294967295", 5, "4294967295" },      /* a number, not "*" */
		{ "4294967295:*", 4294967295U, "4294967295" },
		{ "1:*,5:*,4294967295", 4294967295U, "1:4294967295" },
		{ "7,4294967294:*", 4294967295U, "7,4294967294:4294967295" },
	};
	struct str out;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		bool got;

		str_init(&out);
		str_append(&out, "");
		got = action_range_resolve(cases[i].range, cases[i].max, &out);
		ck_assert_msg(got == (cases[i].want != NULL), "%s (max %u): %s", cases[i].range,
		    cases[i].max, got ? out.data : "nothing");
		if (got)
			ck_assert_msg(strcmp(out.data, cases[i].want) == 0, "%s (max %u): %s, "
			    "not %s", cases[i].range, cases[i].max, out.data, cases[i].want);
		else
			ck_assert_uint_eq(out.len, 0);
		str_free(&out);
	}
}
END_TEST

static const struct imap_resp *parse(struct imap_parser *p, const char *line);

/*
 * Fixed bug: the uidMap of a COPYUID and the numbers of an ESEARCH ALL
 * were read with imap_seqset_nth per member, which walks the ranges from
 * the start: "2,4,6,...,400000" (200,000 ranges) took 2*10^10 steps and
 * froze the daemon's loop. One walk now.
 */
START_TEST(test_big_sets)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct action_uids u = { 0 };
	json_t *map = json_object();
	struct str line;
	size_t n;

	ck_assert_int_eq(action_copyuid_map(map, NULL), 0);
	ck_assert_int_eq(action_copyuid_map(map, parse(p, "A1 OK done\r\n")), 0);
	ck_assert_int_eq(action_copyuid_map(map, parse(p,
	    "A1 OK [COPYUID 38505 304,319:320,7 3956:3958,5] Done\r\n")), 1);
	ck_assert_uint_eq(json_object_size(map), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "304")), 3956);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "319")), 3957);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "320")), 3958);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "7")), 5);
	json_object_clear(map);
	/* too many pairs: refused, the map unchanged */
	ck_assert_int_eq(action_copyuid_map(map, parse(p,
	    "A1 OK [COPYUID 1 1:5000001 1:5000001] x\r\n")), -1);
	ck_assert_uint_eq(json_object_size(map), 0);

	str_init(&line);
	str_append(&line, "A2 OK [COPYUID 1 ");
	for (n = 1; n <= 200000; n++)
		str_printf(&line, "%s%zu", n > 1 ? "," : "", 2 * n);
	str_append(&line, " 1:200000] Done\r\n");
	ck_assert_int_eq(action_copyuid_map(map, parse(p, line.data)), 1);
	ck_assert_uint_eq(json_object_size(map), 200000);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "2")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "200000")), 100000);
	ck_assert_int_eq(json_integer_value(json_object_get(map, "400000")), 200000);
	ck_assert_ptr_null(json_object_get(map, "3"));

	str_reset(&line);
	str_append(&line, "* ESEARCH (TAG \"A3\") UID ALL ");
	for (n = 1; n <= 200000; n++)
		str_printf(&line, "%s%zu", n > 1 ? "," : "", 2 * n - 1);
	str_append(&line, "\r\n");
	ck_assert_int_eq(action_uids_from_search(&u, parse(p, line.data)), 1);
	ck_assert_uint_eq(u.n, 200000);
	for (n = 0; n < u.n; n++)
		ck_assert_uint_eq(u.v[n], 2 * n + 1);
	action_uids_free(&u);
	str_free(&line);
	json_decref(map);
	imap_parser_free(&p);
}
END_TEST

/* The real entries: required parameters per door and their own checks. */
START_TEST(test_real_entries)
{
	const struct action_entry *append = action_find("append");
	const struct action_entry *copy = action_find("copy");
	const struct action_entry *download = action_find("download");
	const struct action_entry *del = action_find("delete");
	const struct action_entry *search = action_find("search");
	struct action_error err;

	ck_assert_ptr_nonnull(append);
	ck_assert_ptr_nonnull(copy);
	ck_assert_ptr_nonnull(download);
	ck_assert_ptr_nonnull(del);
	ck_assert_ptr_nonnull(search);

	/* append: "file" is required on the CLI, "message" over HTTP */
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\", \"file\": \"m.eml\"}",
	    false, &err), 0);
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\"}", false, &err), -1);
	ck_assert_str_eq(err.msg, "append: missing required parameter \"file\"");
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\", "
	    "\"message\": \"Subject: x\\r\\n\\r\\nhi\"}", true, &err), 0);
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\"}", true, &err), -1);
	ck_assert_str_eq(err.msg, "append: missing required parameter \"message\"");
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\", \"file\": \"m\"}",
	    true, &err), -1);
	ck_assert_str_eq(err.msg, "append: unknown parameter \"file\"");
	/* append's own check: not a message is bad input (400, exit 65) */
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\", "
	    "\"message\": \"just text\"}", true, &err), -1);
	ck_assert_int_eq(err.status, ACTION_ERR_INPUT);
	ck_assert_int_eq(check_one(append, "{\"mailbox\": \"INBOX\", "
	    "\"message\": \"\"}", true, &err), -1);
	ck_assert_int_eq(err.status, ACTION_ERR_INPUT);

	ck_assert_int_eq(check_one(copy, "{\"mailbox\": \"INBOX\", \"range\": \"1:*\", "
	    "\"to\": \"Archive\"}", true, &err), 0);
	ck_assert_int_eq(check_one(copy, "{\"mailbox\": \"INBOX\", \"range\": \"1\"}",
	    true, &err), -1);
	ck_assert_str_eq(err.msg, "copy: missing required parameter \"to\"");

	/* download: uid or index, not both, at least 1 */
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\", \"uid\": 4}", true,
	    &err), 0);
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\", \"index\": 1, "
	    "\"part\": \"1.2\"}", true, &err), 0);
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\"}", true, &err), -1);
	ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\", \"uid\": 1, "
	    "\"index\": 1}", true, &err), -1);
	ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\", \"uid\": 0}", true,
	    &err), -1);
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\", "
	    "\"uid\": 4294967296}", true, &err), -1);
	ck_assert_int_eq(check_one(download, "{\"mailbox\": \"INBOX\", "
	    "\"uid\": 4294967295}", true, &err), 0);
	ck_assert_int_eq(check_one(del, "{\"mailbox\": \"INBOX\", \"uid\": 0}", true,
	    &err), -1);
	ck_assert_int_eq(err.status, ACTION_ERR_USAGE);
	ck_assert_int_eq(check_one(search, "{\"mailbox\": \"INBOX\", \"limit\": 0}", true,
	    &err), -1);
	ck_assert_int_eq(check_one(search, "{\"mailbox\": \"INBOX\", \"limit\": 1, "
	    "\"seen\": \"unread\", \"since\": \"2026-01-01\", \"flagged\": true}", true,
	    &err), 0);
}
END_TEST

/* ---- the table ---- */

static bool
kebab(const char *s)
{
	if (*s == '\0' || !islower((unsigned char)*s))
		return false;
	for (; *s != '\0'; s++)
		if (!islower((unsigned char)*s) && *s != '-')
			return false;
	return s[-1] != '-';
}

static bool
camel(const char *s)
{
	if (*s == '\0' || !islower((unsigned char)*s))
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s))
			return false;
	return true;
}

START_TEST(test_table)
{
	const struct action_entry *e, *f;
	const struct action_param *p, *q;
	size_t i, j, n;
	int raw = 0;

	for (i = 0; action_table[i] != NULL; i++) {
		e = action_table[i];
		ck_assert_msg(e->name != NULL && kebab(e->name), "entry %zu: bad name", i);
		ck_assert_msg(e->summary != NULL && e->summary[0] != '\0', "%s: no summary",
		    e->name);
		ck_assert_msg(e->start != NULL && e->step != NULL, "%s: no start/step", e->name);
		ck_assert_msg(e->state_free == NULL || e->state_size > 0,
		    "%s: state_free without state", e->name);
		ck_assert_ptr_eq(action_find(e->name), e);
		raw += e->raw_output;
		for (j = 0; j < i; j++)
			ck_assert_msg(strcmp(action_table[j]->name, e->name) != 0,
			    "%s twice", e->name);
		ck_assert_msg(e->params != NULL, "%s: no params table", e->name);
		for (n = 0, p = e->params; p->name != NULL; p++, n++) {
			ck_assert_msg(n < 32, "%s: params not terminated", e->name);
			ck_assert_msg(camel(p->name), "%s: parameter %s", e->name, p->name);
			ck_assert_msg(p->help != NULL && p->help[0] != '\0', "%s.%s: no help",
			    e->name, p->name);
			ck_assert_msg((p->type == APT_ENUM) == (p->choices != NULL),
			    "%s.%s: choices", e->name, p->name);
			if (p->type == APT_ENUM)
				ck_assert_ptr_nonnull(p->choices[0]);
			ck_assert_msg((p->flags & (AP_CLI_ONLY | AP_HTTP_ONLY)) !=
			    (AP_CLI_ONLY | AP_HTTP_ONLY), "%s.%s: no door", e->name, p->name);
			ck_assert_msg((p->type == APT_FILE) == ((p->flags & AP_CLI_ONLY) != 0),
			    "%s.%s: files are CLI-only", e->name, p->name);
			ck_assert_msg((p->type == APT_MESSAGE) == ((p->flags & AP_HTTP_ONLY) != 0),
			    "%s.%s: messages are HTTP-only", e->name, p->name);
			for (q = e->params; q < p; q++)
				ck_assert_msg(strcmp(q->name, p->name) != 0, "%s.%s twice",
				    e->name, p->name);
		}
		/* the terminator is all zero */
		ck_assert_ptr_null(p->help);
		ck_assert_uint_eq(p->flags, 0);
	}
	ck_assert_uint_eq(i, 15);
	ck_assert_int_eq(raw, 1);
	ck_assert(action_find("download")->raw_output);
	ck_assert_ptr_null(action_find("Search"));
	ck_assert_ptr_null(action_find("searc"));
	ck_assert_ptr_null(action_find(""));
	ck_assert_ptr_null(action_find("every"));
	/* the actions README names */
	f = action_find("test-connection");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_null(f->params[0].name);
	ck_assert_ptr_nonnull(action_find("list-mailboxes"));
	ck_assert_ptr_nonnull(action_find("mailbox-status"));
	ck_assert_ptr_nonnull(action_find("move"));
	ck_assert_ptr_nonnull(action_find("set-flags"));
	ck_assert_ptr_nonnull(action_find("rename-mailbox"));
}
END_TEST

START_TEST(test_status_maps)
{
	static const struct {
		enum action_status st;
		int exit_code, http;
		const char *code;
	} map[] = {
		{ ACTION_OK, 0, 200, "ok" },
		{ ACTION_ERR_USAGE, 64, 400, "bad_parameter" },
		{ ACTION_ERR_INPUT, 65, 400, "bad_input" },
		{ ACTION_ERR_NOTFOUND, 1, 404, "not_found" },
		{ ACTION_ERR_EXISTS, 1, 409, "already_exists" },
		{ ACTION_ERR_REFUSED, 1, 422, "server_refused" },
		{ ACTION_ERR_UNREACHABLE, 69, 502, "server_unreachable" },
		{ ACTION_ERR_AUTH, 77, 502, "authentication_failed" },
	};
	static const struct {
		enum imap_err kind;
		enum action_status st;
	} imap[] = {
		{ IMAP_ERR_NONE, ACTION_OK },
		{ IMAP_ERR_NO, ACTION_ERR_REFUSED },
		{ IMAP_ERR_BAD, ACTION_ERR_REFUSED },
		{ IMAP_ERR_CONNECT, ACTION_ERR_UNREACHABLE },
		{ IMAP_ERR_TLS, ACTION_ERR_UNREACHABLE },
		{ IMAP_ERR_AUTH, ACTION_ERR_AUTH },
		{ IMAP_ERR_PROTOCOL, ACTION_ERR_UNREACHABLE },
		{ IMAP_ERR_TIMEOUT, ACTION_ERR_UNREACHABLE },
		{ IMAP_ERR_CLOSED, ACTION_ERR_UNREACHABLE },
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(map); i++) {
		ck_assert_int_eq(action_exit_code(map[i].st), map[i].exit_code);
		ck_assert_int_eq(action_http_status(map[i].st), map[i].http);
		ck_assert_str_eq(action_error_code(map[i].st), map[i].code);
	}
	/* out of range: still an error, never success */
	ck_assert_int_eq(action_exit_code((enum action_status)99), 1);
	ck_assert_int_eq(action_http_status((enum action_status)99), 500);
	ck_assert_str_eq(action_error_code((enum action_status)99), "error");
	for (i = 0; i < N_ELEMENTS(imap); i++)
		ck_assert_int_eq(action_status_from_imap(imap[i].kind), imap[i].st);
	ck_assert_int_eq(action_status_from_imap((enum imap_err)99), ACTION_ERR_UNREACHABLE);
}
END_TEST

START_TEST(test_mailbox_from_wire)
{
	static const struct {
		const char *wire;
		const char *utf8;
	} cases[] = {
		{ "INBOX", "INBOX" },
		{ "Archive/2026", "Archive/2026" },
		{ "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
		{ "&AOk-t&AOk-", "\xc3\xa9t\xc3\xa9" },
		{ "a&-b", "a&b" },
		{ "&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "&2D3eAA-", "\xf0\x9f\x98\x80" },
		/* a server speaking UTF-8 (UTF8=ACCEPT): taken as it is */
		{ "Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe" },
		/* neither: kept, bad bytes replaced */
		{ "Gr\xfc\xdf" "e", "Gr\xef\xbf\xbd\xef\xbf\xbd" "e" },
		{ "&AGE-", "&AGE-" },           /* non-canonical UTF-7 for "a" */
		{ "a&b", "a&b" },               /* unterminated shift */
		{ "", "" },
	};
	char *s;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		s = action_mailbox_from_wire(cases[i].wire, strlen(cases[i].wire));
		ck_assert_msg(strcmp(s, cases[i].utf8) == 0, "%s -> %s", cases[i].wire, s);
		free(s);
	}
	/* only len bytes are read */
	s = action_mailbox_from_wire("INBOX.Sent junk", 10);
	ck_assert_str_eq(s, "INBOX.Sent");
	free(s);
	s = action_mailbox_from_wire("Entw&APw-rfe", 4);
	ck_assert_str_eq(s, "Entw");
	free(s);
}
END_TEST

START_TEST(test_message_check)
{
	static const struct {
		const char *text;
		bool ok;
	} cases[] = {
		{ "From: a@b\r\n\r\nbody", true },
		{ "Subject: x\n\nbody", true },
		{ "X-Empty:\r\n", true },
		{ "Subject: no body", true },
		{ "not a header\r\nFrom: a@b\r\n\r\nbody", true },
		{ "", false },
		{ "\r\nFrom: a@b\r\n", false },
		{ "just text", false },
		{ "just text\r\n\r\nFrom: a@b\r\n", false },
		{ ": no name\r\n\r\n", false },
		{ " From: folded\r\n\r\n", false },
		{ "Fr om: x\r\n\r\n", false },
	};
	struct action_error err;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_msg((action_message_check(cases[i].text, strlen(cases[i].text),
		    &err) == 0) == cases[i].ok, "case %zu", i);
		ck_assert_int_eq(err.status, cases[i].ok ? ACTION_OK : ACTION_ERR_INPUT);
		if (!cases[i].ok)
			ck_assert_ptr_nonnull(strstr(err.msg, "not a message"));
	}
	ck_assert_int_eq(action_message_check("From: a\r\n\r\n\0", 12, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "NUL"));
}
END_TEST

/* ---- UID lists (act_util.c) ---- */

static const struct imap_resp *
parse(struct imap_parser *p, const char *line)
{
	const struct imap_resp *resp;
	size_t consumed;

	ck_assert_int_eq(imap_parser_feed(p, line, strlen(line), &consumed, &resp), 1);
	return resp;
}

START_TEST(test_uids)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct action_uids u = { 0 };
	struct str s;
	size_t i;

	str_init(&s);
	action_uids_sort(&u);
	action_uids_to_set(&u, 0, 0, &s);
	ck_assert_uint_eq(s.len, 0);
	for (i = 0; i < 3; i++) {
		action_uids_add(&u, 9);
		action_uids_add(&u, 1);
		action_uids_add(&u, 3);
		action_uids_add(&u, 2);
		action_uids_add(&u, 7);
	}
	action_uids_add(&u, UINT32_MAX);
	action_uids_sort(&u);
	ck_assert_uint_eq(u.n, 6);
	action_uids_to_set(&u, 0, u.n, &s);
	ck_assert_str_eq(s.data, "1:3,7,9,4294967295");
	str_reset(&s);
	action_uids_to_set(&u, 1, 4, &s);
	ck_assert_str_eq(s.data, "2:3,7");
	str_reset(&s);
	action_uids_free(&u);
	ck_assert_uint_eq(u.n, 0);

	ck_assert_int_eq(action_uids_from_search(&u, parse(p, "* SEARCH 5 4 10\r\n")), 1);
	ck_assert_int_eq(action_uids_from_search(&u, parse(p, "* SEARCH\r\n")), 1);
	ck_assert_int_eq(action_uids_from_search(&u, parse(p,
	    "* ESEARCH (TAG \"A3\") UID ALL 1:3,20\r\n")), 1);
	ck_assert_int_eq(action_uids_from_search(&u, parse(p, "* 3 EXISTS\r\n")), 0);
	action_uids_sort(&u);
	action_uids_to_set(&u, 0, u.n, &s);
	ck_assert_str_eq(s.data, "1:5,10,20");
	str_free(&s);
	action_uids_free(&u);
	imap_parser_free(&p);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("action");
	TCase *tc = tcase_create("action");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_type_int_bool);
	tcase_add_test(tc, test_type_flags);
	tcase_add_test(tc, test_type_range);
	tcase_add_test(tc, test_type_date);
	tcase_add_test(tc, test_type_enum_partid);
	tcase_add_test(tc, test_type_mailbox_string);
	tcase_add_test(tc, test_unknown_missing_doors);
	tcase_add_test(tc, test_real_entries);
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_status_maps);
	tcase_add_test(tc, test_mailbox_from_wire);
	tcase_add_test(tc, test_message_check);
	tcase_add_test(tc, test_uids);
	tcase_add_test(tc, test_type_date_leap);
	tcase_add_test(tc, test_nul_in_every_type);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_range_resolve);
	tcase_add_test(tc, test_big_sets);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
