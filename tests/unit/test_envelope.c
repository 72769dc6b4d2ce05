/* Unit tests for envelope: IMAP ENVELOPE trees built by hand. */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "mime.h"
#include "util.h"

/* A bump allocator for argument arrays, reset before each test. */
static struct imap_arg pool[512];
static size_t pool_used;

static struct imap_arg
S(const char *s)
{
	struct imap_arg a = { .type = IMAP_ARG_STRING, .len = (uint32_t)strlen(s) };

	a.v.str = s;
	return a;
}

/* A literal of len bytes (may contain NULs). */
static struct imap_arg
LIT(const char *s, uint32_t len)
{
	struct imap_arg a = { .type = IMAP_ARG_LITERAL, .len = len };

	a.v.str = s;
	return a;
}

static struct imap_arg
NIL(void)
{
	struct imap_arg a = { .type = IMAP_ARG_NIL };

	return a;
}

/* A list of n arguments. */
static struct imap_arg
L(unsigned n, ...)
{
	struct imap_arg a = { .type = IMAP_ARG_LIST, .len = n }, *items;
	va_list ap;
	unsigned i;

	ck_assert_uint_le(pool_used + n, N_ELEMENTS(pool));
	items = &pool[pool_used];
	pool_used += n;
	va_start(ap, n);
	for (i = 0; i < n; i++)
		items[i] = va_arg(ap, struct imap_arg);
	va_end(ap);
	a.v.list = items;
	return a;
}

/* An address (name adl mailbox host). */
static struct imap_arg
A(struct imap_arg name, struct imap_arg mailbox, struct imap_arg host)
{
	return L(4, name, NIL(), mailbox, host);
}

static struct imap_arg
ENV(struct imap_arg date, struct imap_arg subject, struct imap_arg from,
    struct imap_arg sender, struct imap_arg reply_to, struct imap_arg to,
    struct imap_arg cc, struct imap_arg bcc, struct imap_arg in_reply_to,
    struct imap_arg message_id)
{
	return L(10, date, subject, from, sender, reply_to, to, cc, bcc,
	    in_reply_to, message_id);
}

static void
setup(void)
{
	pool_used = 0;
}

/* GMime is set up once per process: it cannot be initialised again after
 * g_mime_shutdown(). */
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

static const char *const string_keys[] = { "date", "subject", "messageId", "inReplyTo" };
static const char *const list_keys[] = { "from", "sender", "replyTo", "to", "cc", "bcc" };

/* Every key present, strings are strings or null, lists are arrays. */
static void
check_shape(json_t *o)
{
	json_t *v;
	size_t i;

	ck_assert_ptr_nonnull(o);
	ck_assert(json_is_object(o));
	ck_assert_uint_eq(json_object_size(o), 10);
	for (i = 0; i < N_ELEMENTS(string_keys); i++) {
		v = json_object_get(o, string_keys[i]);
		ck_assert_msg(json_is_string(v) || json_is_null(v), "%s", string_keys[i]);
	}
	for (i = 0; i < N_ELEMENTS(list_keys); i++) {
		v = json_object_get(o, list_keys[i]);
		ck_assert_msg(json_is_array(v), "%s", list_keys[i]);
	}
}

static void
check_empty(json_t *o)
{
	size_t i;

	check_shape(o);
	for (i = 0; i < N_ELEMENTS(string_keys); i++)
		ck_assert(json_is_null(json_object_get(o, string_keys[i])));
	for (i = 0; i < N_ELEMENTS(list_keys); i++)
		ck_assert_uint_eq(json_array_size(json_object_get(o, list_keys[i])), 0);
}

static const char *
sget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

/* Asserts that list[i] is {"name": name, "address": address} (NULL = null). */
static void
check_addr(json_t *list, size_t i, const char *name, const char *address)
{
	json_t *a = json_array_get(list, i);

	ck_assert_msg(json_is_object(a), "no address %zu", i);
	ck_assert_uint_eq(json_object_size(a), 2);
	if (name == NULL)
		ck_assert(json_is_null(json_object_get(a, "name")));
	else
		ck_assert_str_eq(sget(a, "name"), name);
	if (address == NULL)
		ck_assert(json_is_null(json_object_get(a, "address")));
	else
		ck_assert_str_eq(sget(a, "address"), address);
}

START_TEST(test_full)
{
	struct imap_arg env;
	json_t *o, *to;

	env = ENV(S("Thu, 26 Nov 2026 01:40:00 +0100"),
	    S("=?UTF-8?B?R3LDvMOfZQ==?="),
	    L(1, A(S("Bob"), S("bob"), S("example.com"))),
	    L(1, A(S("Bob"), S("bob"), S("example.com"))),
	    NIL(),
	    L(2, A(S("=?ISO-8859-1?Q?J=F6rg_M=FCller?="), S("joerg"), S("example.de")),
	        A(NIL(), S("carol"), S("example.org"))),
	    NIL(), NIL(), S("<parent@example.com>"), S("<abc@example.com>"));
	o = envelope_to_json(&env);
	check_shape(o);
	ck_assert_str_eq(sget(o, "date"), "2026-11-26T00:40:00Z");
	ck_assert_str_eq(sget(o, "subject"), "Gr\xc3\xbc\xc3\x9f" "e");
	ck_assert_str_eq(sget(o, "messageId"), "<abc@example.com>");
	ck_assert_str_eq(sget(o, "inReplyTo"), "<parent@example.com>");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "from")), 1);
	check_addr(json_object_get(o, "from"), 0, "Bob", "bob@example.com");
	check_addr(json_object_get(o, "sender"), 0, "Bob", "bob@example.com");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "replyTo")), 0);
	to = json_object_get(o, "to");
	ck_assert_uint_eq(json_array_size(to), 2);
	check_addr(to, 0, "J\xc3\xb6rg M\xc3\xbcller", "joerg@example.de");
	check_addr(to, 1, NULL, "carol@example.org");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "cc")), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "bcc")), 0);
	json_decref(o);
}
END_TEST

START_TEST(test_key_order)
{
	struct imap_arg env = ENV(NIL(), NIL(), NIL(), NIL(), NIL(), NIL(), NIL(),
	    NIL(), NIL(), NIL());
	json_t *o = envelope_to_json(&env);
	char *s = json_dumps(o, JSON_COMPACT);

	ck_assert_str_eq(s, "{\"date\":null,\"subject\":null,\"messageId\":null,"
	    "\"inReplyTo\":null,\"from\":[],\"sender\":[],\"replyTo\":[],\"to\":[],"
	    "\"cc\":[],\"bcc\":[]}");
	free(s);
	json_decref(o);
}
END_TEST

START_TEST(test_groups)
{
	struct imap_arg env;
	json_t *o, *cc;

	env = ENV(NIL(), S("groups"), NIL(), NIL(), NIL(),
	    /* To: undisclosed-recipients:; */
	    L(2, A(NIL(), S("undisclosed-recipients"), NIL()), A(NIL(), NIL(), NIL())),
	    /* Cc: team: A <a@x.org>, b@y.org;, C <c@z.org> */
	    L(5, A(NIL(), S("team"), NIL()),
	        A(S("A"), S("a"), S("x.org")),
	        A(NIL(), S("b"), S("y.org")),
	        A(NIL(), NIL(), NIL()),
	        A(S("C"), S("c"), S("z.org"))),
	    /* Bcc: two groups, one member each */
	    L(6, A(NIL(), S("g1"), NIL()), A(NIL(), S("m1"), S("h1")), A(NIL(), NIL(), NIL()),
	        A(NIL(), S("g2"), NIL()), A(NIL(), S("m2"), S("h2")), A(NIL(), NIL(), NIL())),
	    NIL(), NIL());
	o = envelope_to_json(&env);
	check_shape(o);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "to")), 0);
	cc = json_object_get(o, "cc");
	ck_assert_uint_eq(json_array_size(cc), 3);
	check_addr(cc, 0, "A", "a@x.org");
	check_addr(cc, 1, NULL, "b@y.org");
	check_addr(cc, 2, "C", "c@z.org");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "bcc")), 2);
	check_addr(json_object_get(o, "bcc"), 0, NULL, "m1@h1");
	check_addr(json_object_get(o, "bcc"), 1, NULL, "m2@h2");
	json_decref(o);
}
END_TEST

START_TEST(test_domainless)
{
	struct imap_arg env;
	json_t *o, *to;

	/* host NIL with no group end after it: an address without domain. */
	env = ENV(NIL(), NIL(), L(1, A(S("Root"), S("root"), NIL())), NIL(), NIL(),
	    L(3, A(NIL(), S("g"), NIL()), A(NIL(), S("local"), NIL()), A(NIL(), NIL(), NIL())),
	    /* a stray group end and an address with only a host */
	    L(2, A(NIL(), NIL(), NIL()), A(S("Host only"), NIL(), S("example.com"))),
	    NIL(), NIL(), NIL());
	o = envelope_to_json(&env);
	check_shape(o);
	check_addr(json_object_get(o, "from"), 0, "Root", "root");
	to = json_object_get(o, "to");
	ck_assert_uint_eq(json_array_size(to), 1);
	check_addr(to, 0, NULL, "local");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "cc")), 1);
	check_addr(json_object_get(o, "cc"), 0, "Host only", NULL);
	json_decref(o);
}
END_TEST

START_TEST(test_all_nil)
{
	struct imap_arg env = ENV(NIL(), NIL(), NIL(), NIL(), NIL(), NIL(), NIL(),
	    NIL(), NIL(), NIL());
	json_t *o = envelope_to_json(&env);

	check_empty(o);
	json_decref(o);
}
END_TEST

START_TEST(test_null_and_not_a_list)
{
	struct imap_arg s = S("not an envelope"), n = NIL(), empty = L(0);
	json_t *o;

	o = envelope_to_json(NULL);
	check_empty(o);
	json_decref(o);
	o = envelope_to_json(&s);
	check_empty(o);
	json_decref(o);
	o = envelope_to_json(&n);
	check_empty(o);
	json_decref(o);
	o = envelope_to_json(&empty);
	check_empty(o);
	json_decref(o);
}
END_TEST

START_TEST(test_bad_shapes)
{
	struct imap_arg env, shortenv, longenv, a;
	json_t *o, *from;

	env = ENV(L(1, S("list as date")), L(0), S("from as a string"),
	    /* sender: junk elements around one good address */
	    L(6, S("x"), NIL(), L(3, NIL(), S("m"), S("h")),
	        L(4, NIL(), NIL(), L(1, S("m")), S("h")),
	        A(S("Good"), S("good"), S("example.com")),
	        L(5, NIL(), NIL(), S("m"), S("h"), NIL())),
	    L(1, L(0)), NIL(), NIL(), NIL(), L(1, S("x")), L(0));
	o = envelope_to_json(&env);
	check_shape(o);
	ck_assert(json_is_null(json_object_get(o, "date")));
	ck_assert(json_is_null(json_object_get(o, "subject")));
	ck_assert(json_is_null(json_object_get(o, "inReplyTo")));
	ck_assert(json_is_null(json_object_get(o, "messageId")));
	ck_assert_uint_eq(json_array_size(json_object_get(o, "from")), 0);
	from = json_object_get(o, "sender");
	ck_assert_uint_eq(json_array_size(from), 1);
	check_addr(from, 0, "Good", "good@example.com");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "replyTo")), 0);
	json_decref(o);

	/* Too short: what is there is used, the rest is empty. */
	shortenv = L(3, S("26 Nov 2026 00:40:00 +0000"), S("short"),
	    L(1, A(NIL(), S("x"), S("y"))));
	o = envelope_to_json(&shortenv);
	check_shape(o);
	ck_assert_str_eq(sget(o, "date"), "2026-11-26T00:40:00Z");
	ck_assert_str_eq(sget(o, "subject"), "short");
	check_addr(json_object_get(o, "from"), 0, NULL, "x@y");
	ck_assert(json_is_null(json_object_get(o, "messageId")));
	ck_assert_uint_eq(json_array_size(json_object_get(o, "to")), 0);
	json_decref(o);

	/* Too long: the extra elements are ignored. */
	a = S("<id@x>");
	longenv = L(12, NIL(), NIL(), NIL(), NIL(), NIL(), NIL(), NIL(), NIL(), NIL(), a,
	    S("extra"), L(0));
	o = envelope_to_json(&longenv);
	check_shape(o);
	ck_assert_str_eq(sget(o, "messageId"), "<id@x>");
	json_decref(o);

	/* A list whose element pointer is missing. */
	a = L(0);
	a.len = 10;
	a.v.list = NULL;
	o = envelope_to_json(&a);
	check_empty(o);
	json_decref(o);
}
END_TEST

START_TEST(test_subject_charsets)
{
	static const struct {
		enum imap_arg_type type;
		const char *s;
		uint32_t len;           /* 0: strlen(s) */
		const char *want;
	} cases[] = {
		{ IMAP_ARG_STRING, "caf\xe9", 0, "caf\xc3\xa9" },
		{ IMAP_ARG_STRING, "Gr\xc3\xbc\xc3\x9f" "e", 0, "Gr\xc3\xbc\xc3\x9f" "e" },
		{ IMAP_ARG_STRING, "\x93quote\x94", 0, "\xe2\x80\x9cquote\xe2\x80\x9d" },
		{ IMAP_ARG_LITERAL, "a\0b", 3, "a\xef\xbf\xbd" "b" },
		{ IMAP_ARG_ATOM, "atom", 0, "atom" },
		{ IMAP_ARG_STRING, "", 0, "" },
		{ IMAP_ARG_STRING, "=?utf-8?q?a?= =?utf-8?q?b?= =?iso-8859-1?q?=E4?= x", 0,
		  "ab\xc3\xa4 x" },
		{ IMAP_ARG_STRING, "=?UTF-8?B?R3LDvMOfZQ==?=\r\n =?UTF-8?Q?_und_mehr?=", 0,
		  "Gr\xc3\xbc\xc3\x9f" "e und mehr" },
	};
	struct imap_arg env, subj;
	json_t *o;
	const char *got;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		pool_used = 0;
		memset(&subj, 0, sizeof(subj));
		subj.type = cases[i].type;
		subj.v.str = cases[i].s;
		subj.len = cases[i].len != 0 ? cases[i].len : (uint32_t)strlen(cases[i].s);
		env = L(2, NIL(), subj);
		o = envelope_to_json(&env);
		check_shape(o);
		got = sget(o, "subject");
		ck_assert_msg(strcmp(got, cases[i].want) == 0, "case %zu: got \"%s\"", i, got);
		json_decref(o);
	}
}
END_TEST

START_TEST(test_invalid_utf8_repaired)
{
	struct imap_arg env;
	json_t *o;
	char *dump;

	env = ENV(S("garbage date"), NIL(),
	    L(1, A(S("\xff\xfe"), S("b\xc3(d"), S("h\x80st"))),
	    NIL(), NIL(), NIL(), NIL(), NIL(), S("<\xc3>"), LIT("<a\0b>", 5));
	o = envelope_to_json(&env);
	check_shape(o);
	ck_assert(json_is_null(json_object_get(o, "date")));
	check_addr(json_object_get(o, "from"), 0, "\xc3\xbf\xc3\xbe",
	    "b\xef\xbf\xbd(d@h\xef\xbf\xbdst");
	ck_assert_str_eq(sget(o, "inReplyTo"), "<\xef\xbf\xbd>");
	ck_assert_str_eq(sget(o, "messageId"), "<a\xef\xbf\xbd" "b>");
	dump = json_dumps(o, 0);
	ck_assert_ptr_nonnull(dump);
	free(dump);
	json_decref(o);
}
END_TEST

START_TEST(test_envelope_dates)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "Thu, 26 Nov 2026 00:40:00 +0000", "2026-11-26T00:40:00Z" },
		{ "Thu, 26 Nov 2026 01:40:00 +0100", "2026-11-26T00:40:00Z" },
		{ "Wed, 25 Nov 2026 19:40:00 EST", "2026-11-26T00:40:00Z" },
		{ "1 Jan 2027 00:30:00 +0100", "2026-12-31T23:30:00Z" },
		{ "Thu, 26 Nov 26 00:40:00 GMT", "2026-11-26T00:40:00Z" },
		{ "Thu, 26 Nov 2026 00:40 -0000", "2026-11-26T00:40:00Z" },
		{ "Thu, 26 Nov 2026 00:40:00 +0000 (UTC)", "2026-11-26T00:40:00Z" },
		{ "yesterday", NULL },
		{ "", NULL },
		{ "Tue, 29 Feb 2021 10:00:00 +0000", NULL },
	};
	struct imap_arg env;
	json_t *o;
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		pool_used = 0;
		env = L(1, S(cases[i].in));
		o = envelope_to_json(&env);
		if (cases[i].want == NULL)
			ck_assert_msg(json_is_null(json_object_get(o, "date")), "%s", cases[i].in);
		else
			ck_assert_str_eq(sget(o, "date"), cases[i].want);
		json_decref(o);
	}
}
END_TEST

START_TEST(test_imap_datetime)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "26-Nov-2026 00:40:29 +0000", "2026-11-26T00:40:29Z" },
		{ " 6-Nov-2026 01:40:29 +0100", "2026-11-06T00:40:29Z" },
		{ "6-nov-2026 01:40:29 +0100", "2026-11-06T00:40:29Z" },
		{ "06-NOV-2026 01:40:29 +0100", "2026-11-06T00:40:29Z" },
		{ "01-Jan-2027 00:30:00 +0100", "2026-12-31T23:30:00Z" },
		{ "31-Dec-2026 23:00:00 -0130", "2027-01-01T00:30:00Z" },
		{ "29-Feb-2024 23:59:59 -1200", "2024-03-01T11:59:59Z" },
		{ "01-Mar-2100 05:00:00 +0600", "2100-02-28T23:00:00Z" },
		{ "01-Mar-2000 05:00:00 +0600", "2000-02-29T23:00:00Z" },
		{ "15-Jul-1969 12:00:00 +0000", "1969-07-15T12:00:00Z" },
		{ "31-Dec-9999 12:00:00 +0000", "9999-12-31T12:00:00Z" },
	};
	static const char *const bad[] = {
		"", "26-Nov-2026", "26-Nov-2026 00:40:29", "26-Nov-2026 00:40:29 +000",
		"26-Nov-2026 00:40:29 0000", "26-Nov-2026 00:40:29 +0000 ",
		"26-Foo-2026 00:40:29 +0000", "26 Nov 2026 00:40:29 +0000",
		"32-Nov-2026 00:40:29 +0000", "31-Nov-2026 00:40:29 +0000",
		"29-Feb-2026 00:40:29 +0000", "00-Nov-2026 00:40:29 +0000",
		"26-Nov-2026 24:00:00 +0000", "26-Nov-2026 00:60:00 +0000",
		"26-Nov-2026 00:40:61 +0000", "26-Nov-2026 00:40:29 +0060",
		"26-Nov-26 00:40:29 +0000", "26-Nov-2026 0:40:29 +0000",
		"  6-Nov-2026 00:40:29 +0000", "123-Nov-2026 00:40:29 +0000",
		"31-Dec-9999 23:00:00 -0100", "01-Jan-0001 00:00:00 +0100",
		"26-Nov-2026 00:40:29 +00:00", "-6-Nov-2026 00:40:29 +0000",
	};
	char buf[21];
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		ck_assert_msg(imap_datetime_to_iso(cases[i].in, buf) == 0, "%s", cases[i].in);
		ck_assert_str_eq(buf, cases[i].want);
	}
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		memcpy(buf, "sentinel", 9);
		ck_assert_msg(imap_datetime_to_iso(bad[i], buf) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_str_eq(buf, "");
	}
	ck_assert_int_eq(imap_datetime_to_iso(NULL, buf), -1);
}
END_TEST

/* Random date-times against the C library's own calendar (timegm). */
START_TEST(test_imap_datetime_vs_timegm)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	uint64_t st = 88172645463325252ULL;
	char in[40], buf[21], want[21];
	struct tm tm, out;
	time_t t;
	int i, zone, zh, zm;

	for (i = 0; i < 20000; i++) {
		st ^= st << 13;
		st ^= st >> 7;
		st ^= st << 17;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = (int)(st % 300);         /* 1900 to 2199 */
		tm.tm_mon = (int)((st >> 10) % 12);
		tm.tm_mday = 1 + (int)((st >> 20) % 28);
		tm.tm_hour = (int)((st >> 30) % 24);
		tm.tm_min = (int)((st >> 36) % 60);
		tm.tm_sec = (int)((st >> 42) % 60);
		zone = (int)((st >> 48) % 1440) - 720;
		zh = abs(zone) / 60;
		zm = abs(zone) % 60;
		snprintf(in, sizeof(in), "%2d-%s-%04d %02d:%02d:%02d %c%02d%02d",
		    tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, zone < 0 ? '-' : '+', zh, zm);
		t = timegm(&tm) - (time_t)zone * 60;
		gmtime_r(&t, &out);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &out);
		ck_assert_msg(imap_datetime_to_iso(in, buf) == 0, "%s", in);
		ck_assert_msg(strcmp(buf, want) == 0, "%s: got %s, want %s", in, buf, want);
	}
}
END_TEST

static Suite *
envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_unchecked_fixture(tc, mime_setup, mime_teardown);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_key_order);
	tcase_add_test(tc, test_groups);
	tcase_add_test(tc, test_domainless);
	tcase_add_test(tc, test_all_nil);
	tcase_add_test(tc, test_null_and_not_a_list);
	tcase_add_test(tc, test_bad_shapes);
	tcase_add_test(tc, test_subject_charsets);
	tcase_add_test(tc, test_invalid_utf8_repaired);
	tcase_add_test(tc, test_envelope_dates);
	tcase_add_test(tc, test_imap_datetime);
	tcase_add_test(tc, test_imap_datetime_vs_timegm);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(envelope_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
