/* Unit tests for cfgval.c: typed values out of libconfig settings, problem
 * messages and their order, and secrets from inline values, files and the
 * environment. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgval.h"

static char *dir;               /* a fresh temporary directory per test */
static char *path;              /* dir/t.conf */
static config_t lc;
static struct cfgval cv;
static bool finished;
static struct config_errors errs;

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
setup(void)
{
	char tmpl[] = "/tmp/imaphook-test-cfgval-XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	dir = xstrdup(tmpl);
	path = xasprintf("%s/t.conf", dir);
	config_init(&lc);
	cfgval_init(&cv, path);
	finished = false;
	memset(&errs, 0, sizeof(errs));
}

static void
finish(void)
{
	if (!finished)
		cfgval_finish(&cv, &errs);
	finished = true;
}

static void
teardown(void)
{
	finish();
	config_errors_free(&errs);
	config_destroy(&lc);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(path);
	free(dir);
}

/* Writes dir/name with the given mode; returns the path (caller frees). */
static char *
write_file(const char *name, const void *data, size_t len, int mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd;

	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	ck_assert_int_eq(chmod(p, (mode_t)mode), 0);
	return p;
}

/* Parses text as dir/t.conf (mode 0600); returns the root group. */
static config_setting_t *
parse_mode(const char *text, int mode)
{
	free(write_file("t.conf", text, strlen(text), mode));
	ck_assert_msg(config_read_file(&lc, path) == CONFIG_TRUE, "%s:%d: %s",
	    path, config_error_line(&lc), config_error_text(&lc));
	return config_root_setting(&lc);
}

static config_setting_t *
parse(const char *text)
{
	return parse_mode(text, 0600);
}

static config_setting_t *
get(const char *key)
{
	config_setting_t *s = config_lookup(&lc, key);

	ck_assert_msg(s != NULL, "no %s", key);
	return s;
}

static const char *
all_msgs(void)
{
	static char buf[8192];
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < errs.count && off < sizeof(buf) - 1; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\n  %s",
		    errs.msgs[i]);
	return buf;
}

/* After finish(): message i is "<path>:<line>: <text>" exactly. */
static void
msg_is(size_t i, int line, const char *text)
{
	char *want = xasprintf("%s:%d: %s", path, line, text);

	ck_assert_msg(i < errs.count, "only %zu messages:%s", errs.count,
	    all_msgs());
	ck_assert_str_eq(errs.msgs[i], want);
	free(want);
}

START_TEST(test_problems_sorted)
{
	config_setting_t *root = parse("a = 1;\nb = 2;\nc = 3;\n");
	char *other = xasprintf("%s/other.conf", dir), *want;

	cfgval_problem(&cv, get("c"), "ctx", "third %d", 3);
	cfgval_problem(&cv, get("a"), "", "first");
	cfgval_problem_at(&cv, other, 7, "elsewhere");
	cfgval_problem(&cv, get("c"), "", "third again");
	cfgval_problem(&cv, root, "", "at the root");
	cfgval_problem(&cv, NULL, "", "no setting");
	cfgval_problem_at(&cv, path, 0, "no line");
	ck_assert_uint_eq(cv.nprobs, 7);
	finish();
	ck_assert_uint_eq(errs.count, 7);
	/* by file (in the order of their first problem), line, then as
	 * recorded; a problem without a line comes first in its file */
	want = xasprintf("%s: no line", path);
	ck_assert_str_eq(errs.msgs[0], want);
	free(want);
	msg_is(1, 1, "first");
	msg_is(2, 1, "at the root");
	msg_is(3, 1, "no setting");
	msg_is(4, 3, "ctx: third 3");
	msg_is(5, 3, "third again");
	want = xasprintf("%s:7: elsewhere", other);
	ck_assert_str_eq(errs.msgs[6], want);
	free(want);
	free(other);
}
END_TEST

START_TEST(test_string)
{
	config_setting_t *root = parse("s = \"v\";\ne = \"\";\nn = 5;\n"
	    "c = \"a\\tb\";\ng = { };\n");
	const char *v = NULL;

	ck_assert_int_eq(cfgval_string(&cv, "", get("s"), CFGVAL_NAME, &v), 1);
	ck_assert_str_eq(v, "v");
	ck_assert_int_eq(cfgval_string(&cv, "", NULL, CFGVAL_NAME, &v), 0);
	ck_assert_int_eq(cfgval_string(&cv, "", get("e"), 0, &v), 1);
	ck_assert_str_eq(v, "");
	ck_assert_int_eq(cfgval_string(&cv, "", get("c"), CFGVAL_NONEMPTY, &v), 1);
	ck_assert_uint_eq(cv.nprobs, 0);
	ck_assert_int_eq(cfgval_string(&cv, "", get("e"), CFGVAL_NONEMPTY, &v), -1);
	ck_assert_int_eq(cfgval_string(&cv, "x", get("n"), 0, &v), -1);
	ck_assert_int_eq(cfgval_string(&cv, "", get("c"), CFGVAL_NOCTL, &v), -1);
	ck_assert_int_eq(cfgval_require_string(&cv, "", get("g"), "k", 0, &v), -1);
	ck_assert_int_eq(cfgval_require_string(&cv, "", root, "s", 0, &v), 1);
	finish();
	ck_assert_uint_eq(errs.count, 4);
	msg_is(0, 2, "\"e\" must not be empty");
	msg_is(1, 3, "x: \"n\" must be a string (got an integer)");
	msg_is(2, 4, "\"c\" must not contain control characters");
	msg_is(3, 5, "missing required key \"k\"");
}
END_TEST

START_TEST(test_int_bool)
{
	config_setting_t *root = parse("i = 7;\nl = 8L;\nbig = 9000000000L;\n"
	    "f = 1.0;\ns = \"7\";\nneg = -1;\nb = true;\nbs = \"true\";\n"
	    "bi = 1;\nbf = false;\n");
	long long v = 0;
	unsigned u = 42;
	bool b = false;

	ck_assert_int_eq(cfgval_int(&cv, "", get("i"), 1, 10, &v), 1);
	ck_assert_int_eq(v, 7);
	ck_assert_int_eq(cfgval_int(&cv, "", get("l"), 1, 10, &v), 1);
	ck_assert_int_eq(v, 8);
	ck_assert_int_eq(cfgval_int(&cv, "", NULL, 1, 10, &v), 0);
	ck_assert_int_eq(cfgval_int(&cv, "", get("big"), 1, 9000000000LL, &v), 1);
	ck_assert_int_eq(v, 9000000000LL);
	ck_assert_uint_eq(cv.nprobs, 0);
	ck_assert_int_eq(cfgval_int(&cv, "", get("i"), 8, 10, &v), -1);
	ck_assert_int_eq(cfgval_int(&cv, "", get("big"), 1, 10, &v), -1);
	ck_assert_int_eq(cfgval_int(&cv, "", get("f"), 1, 10, &v), -1);
	ck_assert_int_eq(cfgval_int(&cv, "", get("s"), 1, 10, &v), -1);
	cfgval_set_uint(&cv, "", root, "neg", 0, 10, &u);
	ck_assert_uint_eq(u, 42);
	cfgval_set_uint(&cv, "", root, "absent", 0, 10, &u);
	ck_assert_uint_eq(u, 42);
	cfgval_set_uint(&cv, "", root, "i", 0, 10, &u);
	ck_assert_uint_eq(u, 7);

	cfgval_set_bool(&cv, "", root, "b", &b);
	ck_assert(b);
	cfgval_set_bool(&cv, "", root, "bf", &b);
	ck_assert(!b);
	b = true;
	cfgval_set_bool(&cv, "", root, "bs", &b);
	cfgval_set_bool(&cv, "", root, "bi", &b);
	cfgval_set_bool(&cv, "", root, "absent", &b);
	ck_assert(b);
	finish();
	ck_assert_uint_eq(errs.count, 7);
	msg_is(0, 1, "\"i\" must be an integer between 8 and 10");
	msg_is(1, 3, "\"big\" must be an integer between 1 and 10");
	msg_is(2, 4, "\"f\" must be an integer between 1 and 10 "
	    "(got a floating-point number)");
	msg_is(3, 5, "\"s\" must be an integer between 1 and 10 (got a string)");
	msg_is(4, 6, "\"neg\" must be an integer between 0 and 10");
	msg_is(5, 8, "\"bs\" must be true or false (got a string)");
	msg_is(6, 9, "\"bi\" must be true or false (got an integer)");
}
END_TEST

START_TEST(test_enum)
{
	static const char *const one[] = { "a", NULL };
	static const char *const two[] = { "a", "b", NULL };
	static const char *const three[] = { "a", "b", "c", NULL };
	int v = -1;

	parse("x = \"c\";\ny = \"d\";\nz = \"\\n\";\nw = 1;\n");
	ck_assert_int_eq(cfgval_enum(&cv, "", get("x"), three, &v), 1);
	ck_assert_int_eq(v, 2);
	ck_assert_int_eq(cfgval_enum(&cv, "", NULL, three, &v), 0);
	ck_assert_int_eq(cfgval_enum(&cv, "", get("y"), one, &v), -1);
	ck_assert_int_eq(cfgval_enum(&cv, "", get("y"), two, &v), -1);
	ck_assert_int_eq(cfgval_enum(&cv, "", get("y"), three, &v), -1);
	ck_assert_int_eq(cfgval_enum(&cv, "", get("z"), two, &v), -1);
	ck_assert_int_eq(cfgval_enum(&cv, "", get("w"), two, &v), -1);
	ck_assert_int_eq(v, 2);
	finish();
	msg_is(0, 2, "\"y\" must be \"a\" (got \"d\")");
	msg_is(1, 2, "\"y\" must be \"a\" or \"b\" (got \"d\")");
	msg_is(2, 2, "\"y\" must be \"a\", \"b\" or \"c\" (got \"d\")");
	msg_is(3, 3, "\"z\" must be \"a\" or \"b\" (got \"?\")");
	msg_is(4, 4, "\"w\" must be a string (got an integer)");
}
END_TEST

START_TEST(test_strv)
{
	char **v;
	size_t n;

	parse("one = \"x\";\narr = [ \"a\", \"b\" ];\nlst = ( \"c\" );\n"
	    "none = ();\nmixed = ( \"a\",\n  { } );\nnum = 3;\n");
	ck_assert_int_eq(cfgval_strv(&cv, "", get("one"), true, &v, &n), 1);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0], "x");
	ck_assert_ptr_null(v[1]);
	ck_assert_ptr_eq(cfgval_strv_elem(get("one"), 0), get("one"));
	cfgval_strv_free(v);
	ck_assert_int_eq(cfgval_strv(&cv, "", get("arr"), false, &v, &n), 1);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[1], "b");
	ck_assert_ptr_null(v[2]);
	ck_assert_ptr_eq(cfgval_strv_elem(get("arr"), 1),
	    config_setting_get_elem(get("arr"), 1));
	cfgval_strv_free(v);
	ck_assert_int_eq(cfgval_strv(&cv, "", get("lst"), false, &v, &n), 1);
	ck_assert_str_eq(v[0], "c");
	cfgval_strv_free(v);
	ck_assert_int_eq(cfgval_strv(&cv, "", get("none"), true, &v, &n), 1);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(v[0]);
	cfgval_strv_free(v);
	ck_assert_int_eq(cfgval_strv(&cv, "", NULL, true, &v, &n), 0);
	ck_assert_uint_eq(cv.nprobs, 0);
	ck_assert_int_eq(cfgval_strv(&cv, "", get("one"), false, &v, &n), -1);
	ck_assert_int_eq(cfgval_strv(&cv, "", get("mixed"), true, &v, &n), -1);
	ck_assert_int_eq(cfgval_strv(&cv, "", get("num"), true, &v, &n), -1);
	finish();
	ck_assert_uint_eq(errs.count, 3);
	msg_is(0, 1, "\"one\" must be [ \"...\", ... ] (got a string)");
	msg_is(1, 6, "\"mixed\" must contain only strings (element 1 is a group)");
	msg_is(2, 7, "\"num\" must be a string or [ \"...\", ... ] "
	    "(got an integer)");
}
END_TEST

START_TEST(test_keys_and_path)
{
	static const char *const root_keys[] = { "a", "g", "f", "abs", NULL };
	static const char *const keys[] = { "a", "b", NULL };
	char *want, *p;

	parse("a = 1;\nB = 2;\ng = {\n  a = 1;\n  c = 2;\n};\n"
	    "f = \"rel/x\";\nabs = \"/etc/x\";\n");
	cfgval_check_keys(&cv, "", config_root_setting(&lc), root_keys);
	cfgval_check_keys(&cv, "g", get("g"), keys);
	want = xasprintf("%s/rel/x", dir);
	p = cfgval_path(get("f"), "rel/x");
	ck_assert_str_eq(p, want);
	free(p);
	free(want);
	p = cfgval_path(get("abs"), "/etc/x");
	ck_assert_str_eq(p, "/etc/x");
	free(p);
	ck_assert(cfgval_has_ctl("a\x7f"));
	ck_assert(cfgval_has_ctl("\x1b[0m"));
	ck_assert(!cfgval_has_ctl("Entw\xc3\xbcrfe"));
	finish();
	ck_assert_uint_eq(errs.count, 2);
	msg_is(0, 2, "unknown key \"B\"");
	msg_is(1, 5, "g: unknown key \"c\"");
}
END_TEST

static const char *const pw_keys[3] = { "pw", "pw_file", "pw_env" };

/* cfgval_secret of group g of the parsed file. */
static int
secret(const char *group, bool nul_ok, char **val_r, size_t *len_r)
{
	const config_setting_t *from = NULL;
	int r;

	r = cfgval_secret(&cv, group, get(group), pw_keys, nul_ok, val_r, len_r,
	    &from);
	if (r > 0)
		ck_assert_ptr_nonnull(from);
	return r;
}

START_TEST(test_secret_sources)
{
	char *val, *abs = write_file("abs", "abs\n", 4, 0600);
	char *text;
	size_t len;

	free(write_file("nl", "one\n", 4, 0600));
	free(write_file("crlf", "two\r\n", 5, 0600));
	free(write_file("bare", "three", 5, 0600));
	free(write_file("twonl", "four\n\n", 6, 0600));
	free(write_file("nul", "a\0b\n", 4, 0600));
	free(write_file("empty", "\r\n", 2, 0600));
	ck_assert_int_eq(setenv("CFGVAL_TEST_ENV", "five", 1), 0);
	ck_assert_int_eq(setenv("CFGVAL_TEST_EMPTY", "", 1), 0);
	unsetenv("CFGVAL_TEST_UNSET");
	text = xasprintf("i = { pw = \"in\\tline\"; };\n"
	    "a = { pw_file = \"nl\"; };\nb = { pw_file = \"crlf\"; };\n"
	    "c = { pw_file = \"bare\"; };\nd = { pw_file = \"twonl\"; };\n"
	    "e = { pw_env = \"CFGVAL_TEST_ENV\"; };\n"
	    "f = { pw_file = \"%s\"; };\nn = { pw_file = \"nul\"; };\n"
	    "none = { other = 1; };\n", abs);
	parse(text);
	free(text);
#define OK(g, want, wantlen) do { \
	ck_assert_int_eq(secret(g, true, &val, &len), 1); \
	ck_assert_uint_eq(len, wantlen); \
	ck_assert_mem_eq(val, want, wantlen); \
	ck_assert_int_eq(val[len], '\0'); \
	free(val); \
} while (0)
	OK("i", "in\tline", 7);
	OK("a", "one", 3);
	OK("b", "two", 3);
	OK("c", "three", 5);
	OK("d", "four\n", 5);
	OK("e", "five", 4);
	OK("f", "abs", 3);
	OK("n", "a\0b", 3);
#undef OK
	ck_assert_int_eq(secret("none", false, &val, &len), 0);
	ck_assert_uint_eq(cv.nprobs, 0);
	ck_assert_int_eq(secret("n", false, &val, &len), -1);
	finish();
	ck_assert_uint_eq(errs.count, 1);
	msg_is(0, 8, "n: \"pw_file\": the value contains a NUL byte");
	unsetenv("CFGVAL_TEST_ENV");
	unsetenv("CFGVAL_TEST_EMPTY");
	free(abs);
}
END_TEST

START_TEST(test_secret_problems)
{
	static const char big[CFGVAL_SECRET_MAX + 1];
	char *val = NULL, *text;
	size_t len, i;

	free(write_file("empty", "\n", 1, 0600));
	free(write_file("big", big, sizeof(big), 0600));
	ck_assert_int_eq(setenv("CFGVAL_TEST_EMPTY", "", 1), 0);
	unsetenv("CFGVAL_TEST_UNSET");
	parse("a = { pw = \"x\";\n  pw_file = \"f\"; };\n"
	    "b = { pw_env = \"E\";\n  pw_file = \"f\"; };\n"
	    "c = { pw = \"\"; };\n"
	    "d = { pw_file = \"missing\"; };\n"
	    "e = { pw_file = \"empty\"; };\n"
	    "f = { pw_env = \"CFGVAL_TEST_UNSET\"; };\n"
	    "g = { pw_env = \"CFGVAL_TEST_EMPTY\"; };\n"
	    "h = { pw_file = \"big\"; };\n"
	    "i = { pw = 12345; };\n"
	    "j = { pw_env = \"\"; };\n");
	for (i = 0; i < 10; i++) {
		char g[2] = { (char)('a' + i), '\0' };

		ck_assert_int_eq(secret(g, false, &val, &len), -1);
	}
	ck_assert_ptr_null(val);
	finish();
	text = xasprintf("d: \"pw_file\": cannot read \"%s/missing\": %s", dir,
	    strerror(ENOENT));
	msg_is(0, 2, "a: \"pw\" and \"pw_file\" are mutually exclusive");
	msg_is(1, 4, "b: \"pw_file\" and \"pw_env\" are mutually exclusive");
	msg_is(2, 5, "c: \"pw\" must not be empty");
	msg_is(3, 6, text);
	free(text);
	text = xasprintf("e: \"pw_file\": \"%s/empty\" is empty", dir);
	msg_is(4, 7, text);
	free(text);
	msg_is(5, 8, "f: \"pw_env\": environment variable \"CFGVAL_TEST_UNSET\" "
	    "is not set");
	msg_is(6, 9, "g: \"pw_env\": environment variable \"CFGVAL_TEST_EMPTY\" "
	    "is empty");
	text = xasprintf("h: \"pw_file\": cannot read \"%s/big\": larger than "
	    "64 KiB", dir);
	msg_is(7, 10, text);
	free(text);
	msg_is(8, 11, "i: \"pw\" must be a string (got an integer)");
	msg_is(9, 12, "j: \"pw_env\" must not be empty");
	ck_assert_uint_eq(errs.count, 10);
	/* no secret value in any message */
	for (i = 0; i < errs.count; i++)
		ck_assert_ptr_null(strstr(errs.msgs[i], "12345"));
	unsetenv("CFGVAL_TEST_EMPTY");
}
END_TEST

/* Runs fn with stderr captured; returns what was written (caller frees). */
static char *
capture(void (*fn)(void))
{
	char *log_path = xasprintf("%s/stderr.log", dir), *out;
	size_t len;
	int fd, saved;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_file(log_path, 65536, &out, &len), 0);
	unlink(log_path);
	free(log_path);
	return out;
}

/* Reads the secrets of groups a, b, c and d. */
static void
read_abcd(void)
{
	static const char *const groups[] = { "a", "b", "c", "d" };
	char *val;
	size_t i, len;

	for (i = 0; i < N_ELEMENTS(groups); i++) {
		ck_assert_int_eq(secret(groups[i], false, &val, &len), 1);
		free(val);
	}
}

START_TEST(test_secret_permissions)
{
	char *out, *want, *f640, *f604;

	f640 = write_file("f640", "sekrit1", 7, 0640);
	f604 = write_file("f604", "sekrit2", 7, 0604);
	free(write_file("f600", "sekrit3", 7, 0600));
	parse_mode("a = { pw = \"sekrit0\"; };\nb = { pw = \"sekrit0\"; };\n"
	    "c = { pw_file = \"f640\"; };\nd = { pw_file = \"f604\"; };\n"
	    "e = { pw_file = \"f600\"; };\n", 0644);
	out = capture(read_abcd);
	want = xasprintf("%s: holds a secret and is readable by group/others "
	    "(mode 0644); chmod 600 it\n", path);
	ck_assert_msg(strstr(out, want) != NULL, "got: %s", out);
	/* once per file */
	ck_assert_ptr_null(strstr(strstr(out, want) + 1, want));
	free(want);
	want = xasprintf("%s: holds a secret and is readable by group/others "
	    "(mode 0640); chmod 600 it\n", f640);
	ck_assert_msg(strstr(out, want) != NULL, "got: %s", out);
	free(want);
	want = xasprintf("%s: holds a secret and is readable by group/others "
	    "(mode 0604); chmod 600 it\n", f604);
	ck_assert_msg(strstr(out, want) != NULL, "got: %s", out);
	free(want);
	ck_assert_ptr_null(strstr(out, "sekrit"));
	ck_assert_ptr_null(strstr(out, "f600"));
	free(out);
	free(f640);
	free(f604);
}
END_TEST

/* Reads the secret of e (a 0600 file, so no warning whatever the config). */
static void
read_e(void)
{
	char *val;
	size_t len;

	ck_assert_int_eq(secret("e", false, &val, &len), 1);
	ck_assert_str_eq(val, "sekrit3");
	free(val);
}

START_TEST(test_secret_permissions_quiet)
{
	char *out;

	free(write_file("f600", "sekrit3", 7, 0600));
	parse_mode("e = { pw_file = \"f600\"; };\n", 0644);
	out = capture(read_e);
	ck_assert_str_eq(out, "");
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cfgval");
	TCase *tc = tcase_create("cfgval");
	SRunner *sr;
	int failed;

	log_init("test_cfgval");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_problems_sorted);
	tcase_add_test(tc, test_string);
	tcase_add_test(tc, test_int_bool);
	tcase_add_test(tc, test_enum);
	tcase_add_test(tc, test_strv);
	tcase_add_test(tc, test_keys_and_path);
	tcase_add_test(tc, test_secret_sources);
	tcase_add_test(tc, test_secret_problems);
	tcase_add_test(tc, test_secret_permissions);
	tcase_add_test(tc, test_secret_permissions_quiet);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
