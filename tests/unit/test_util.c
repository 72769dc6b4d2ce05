/*
 * Unit tests for util: the x* memory helpers, struct str, checked number
 * parsing, format_iso8601, consttime_equal, the file helpers (read_file,
 * write_full, write_file_atomic, fsync_dir, mkdir_p), strip_one_newline
 * and base64.
 *
 * Tests of known bugs are compiled only with -DIMAPHOOK_KNOWN_BUGS (they
 * fail, or crash under ASan, until the bug is fixed); each names its bug.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tmpdir.h"
#include "util.h"

static void
setup(void)
{
	tmpdir_make();
	umask(022);
}

static void
teardown(void)
{
	tmpdir_remove();
}

/* tmpdir/name (caller frees) */
static char *
tpath(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void
put_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

/* ---- memory helpers ---- */

START_TEST(test_xstrndup_xasprintf)
{
	char *p, *big;
	size_t i;

	p = xstrndup("abcdef", 3);
	ck_assert_str_eq(p, "abc");
	free(p);
	p = xstrndup("abc", 0);
	ck_assert_str_eq(p, "");
	free(p);
	/* exactly n bytes, NUL bytes included, then a terminator */
	p = xstrndup("a\0b\0", 3);
	ck_assert_mem_eq(p, "a\0b", 3);
	ck_assert_int_eq(p[3], '\0');
	free(p);
	p = xstrdup("");
	ck_assert_str_eq(p, "");
	xfree(&p);
	ck_assert_ptr_null(p);
	xfree(&p);              /* NULL is fine */

	p = xasprintf("%s-%d-%05.1f-%c", "x", -42, 3.14159, 'z');
	ck_assert_str_eq(p, "x--42-003.1-z");
	free(p);
	p = xasprintf("%s", "");
	ck_assert_str_eq(p, "");
	free(p);
	big = xmalloc(100001);
	memset(big, 'q', 100000);
	big[100000] = '\0';
	p = xasprintf("<%s>", big);
	ck_assert_uint_eq(strlen(p), 100002);
	ck_assert_int_eq(p[0], '<');
	ck_assert_int_eq(p[100001], '>');
	free(p);
	free(big);

	/* zero sizes still give distinct, freeable memory */
	p = xmalloc(0);
	ck_assert_ptr_nonnull(p);
	free(p);
	p = xcalloc(0, 0);
	ck_assert_ptr_nonnull(p);
	free(p);
	p = xcalloc(4, 8);
	for (i = 0; i < 32; i++)
		ck_assert_int_eq(p[i], 0);
	p = xreallocarray(p, 1000, 8);
	p[7999] = 1;
	free(p);
}
END_TEST

START_TEST(test_str)
{
	struct str s;
	char *p, *before;
	size_t i;

	str_init(&s);
	ck_assert_ptr_null(s.data);
	ck_assert_uint_eq(s.len, 0);
	ck_assert_uint_eq(s.cap, 0);
	/* an empty str gives an empty string, not NULL */
	p = str_steal(&s);
	ck_assert_str_eq(p, "");
	free(p);
	str_reset(&s);          /* nothing allocated: harmless */
	ck_assert_uint_eq(s.len, 0);

	str_append_c(&s, 'a');
	ck_assert_uint_eq(s.cap, 64);
	ck_assert_str_eq(s.data, "a");
	/* growth doubles, and data[len] is always NUL */
	for (i = 1; i < 64; i++)
		str_append_c(&s, (char)('a' + i % 26));
	ck_assert_uint_eq(s.len, 64);
	ck_assert_uint_eq(s.cap, 128);
	ck_assert_int_eq(s.data[64], '\0');
	str_append_n(&s, "x\0y", 3);
	ck_assert_uint_eq(s.len, 67);
	ck_assert_mem_eq(s.data + 64, "x\0y", 4);
	str_append_n(&s, NULL, 0);
	ck_assert_uint_eq(s.len, 67);
	for (i = 0; i < 1000; i++)
		str_append(&s, "0123456789");
	ck_assert_uint_eq(s.len, 10067);
	ck_assert_uint_eq(s.cap, 16384);
	ck_assert_int_eq(s.data[s.len], '\0');
	ck_assert_mem_eq(s.data + 10057, "0123456789", 11);

	/* reset keeps the allocation */
	before = s.data;
	str_reset(&s);
	ck_assert_ptr_eq(s.data, before);
	ck_assert_uint_eq(s.len, 0);
	ck_assert_uint_eq(s.cap, 16384);
	ck_assert_str_eq(s.data, "");

	/* printf appends */
	str_append(&s, "n=");
	str_printf(&s, "%d,%s,%zu", 7, "seven", (size_t)77);
	ck_assert_str_eq(s.data, "n=7,seven,77");
	ck_assert_uint_eq(s.len, 12);
	str_printf(&s, "%s", "");
	ck_assert_uint_eq(s.len, 12);
	str_free(&s);
	ck_assert_ptr_null(s.data);
	ck_assert_uint_eq(s.cap, 0);

	/* a long printf into an empty str, growing more than one doubling */
	str_printf(&s, "%5000d|%s", 1, "end");
	ck_assert_uint_eq(s.len, 5004);
	ck_assert_uint_ge(s.cap, 5005);
	ck_assert_str_eq(s.data + 4999, "1|end");
	p = str_steal(&s);
	ck_assert_ptr_null(s.data);
	ck_assert_uint_eq(s.len, 0);
	ck_assert_uint_eq(s.cap, 0);
	ck_assert_uint_eq(strlen(p), 5004);
	free(p);
}
END_TEST

/* ---- numbers ---- */

static void
u64_ok(const char *s, uint64_t want)
{
	uint64_t v = 12345;

	ck_assert_msg(parse_u64(s, &v) == 0, "parse_u64(\"%s\") failed", s);
	ck_assert_msg(v == want, "parse_u64(\"%s\") = %llu", s, (unsigned long long)v);
}

static void
u64_bad(const char *s)
{
	uint64_t v = 12345;

	ck_assert_msg(parse_u64(s, &v) == -1, "parse_u64(\"%s\") accepted", s);
	ck_assert_uint_eq(v, 12345);    /* untouched */
}

static void
u32_ok(const char *s, uint32_t want)
{
	uint32_t v = 12345;

	ck_assert_msg(parse_u32(s, &v) == 0, "parse_u32(\"%s\") failed", s);
	ck_assert_msg(v == want, "parse_u32(\"%s\") = %u", s, v);
}

static void
u32_bad(const char *s)
{
	uint32_t v = 12345;

	ck_assert_msg(parse_u32(s, &v) == -1, "parse_u32(\"%s\") accepted", s);
	ck_assert_uint_eq(v, 12345);
}

START_TEST(test_parse_numbers)
{
	static const char *const bad[] = {
		"", "+1", "-1", "-0", " 1", "1 ", "1\n", "\t1", "1a", "a1", "0x10",
		"1.0", "1e3", "1,000", "١",     /* Arabic-Indic digit one */
	};
	size_t i;
	uint32_t v32 = 0;
	uint64_t v64 = 0;

	for (i = 0; i < N_ELEMENTS(bad); i++) {
		u32_bad(bad[i]);
		u64_bad(bad[i]);
	}
	u32_ok("0", 0);
	u32_ok("7", 7);
	u32_ok("007", 7);
	u32_ok("4294967295", UINT32_MAX);
	u32_ok("04294967295", UINT32_MAX);
	u32_bad("4294967296");
	u32_bad("18446744073709551615");
	u32_bad("99999999999999999999");
	u64_ok("0", 0);
	u64_ok("4294967296", 4294967296ULL);
	u64_ok("18446744073709551615", UINT64_MAX);
	u64_bad("18446744073709551616");
	u64_bad("18446744073709551620");
	u64_bad("99999999999999999999");
	/* 20 digits is the most: leading zeros count */
	u64_ok("00000000000000000001", 1);
	u32_ok("00000000004294967295", UINT32_MAX);
	u64_bad("000000000000000000001");
	u32_bad("000000000000000000001");
	u64_bad("184467440737095516150");

	/* counted buffers read len bytes only */
	ck_assert_int_eq(parse_u32_n("123abc", 3, &v32), 0);
	ck_assert_uint_eq(v32, 123);
	ck_assert_int_eq(parse_u64_n("4294967296 ", 10, &v64), 0);
	ck_assert_uint_eq(v64, 4294967296ULL);
	ck_assert_int_eq(parse_u32_n("4294967296", 10, &v32), -1);
	ck_assert_int_eq(parse_u32_n("5", 0, &v32), -1);
	ck_assert_int_eq(parse_u32_n("1\0", 2, &v32), -1);
	ck_assert_int_eq(parse_u64_n("12", 1, &v64), 0);
	ck_assert_uint_eq(v64, 1);
}
END_TEST

START_TEST(test_format_iso8601)
{
	static const struct {
		time_t t;
		const char *s;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ 951782400, "2000-02-29T00:00:00Z" },
		{ 1795653631, "2026-11-26T00:40:31Z" },
		{ 2147483647, "2038-01-19T03:14:07Z" },
		{ 2147483648, "2038-01-19T03:14:08Z" },
		{ 4102444799, "2099-12-31T23:59:59Z" },
		{ 253402300799, "9999-12-31T23:59:59Z" },
	};
	char buf[21];
	size_t i;

	/* UTC whatever the local time zone says */
	ck_assert_int_eq(setenv("TZ", "Pacific/Kiritimati", 1), 0);
	tzset();
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		memset(buf, 'x', sizeof(buf));
		format_iso8601(cases[i].t, buf);
		ck_assert_str_eq(buf, cases[i].s);
	}
	unsetenv("TZ");
	tzset();
}
END_TEST

START_TEST(test_consttime_equal)
{
	ck_assert(consttime_equal("", 0, "", 0));
	ck_assert(consttime_equal(NULL, 0, "x", 0));
	ck_assert(consttime_equal("abc", 3, "abc", 3));
	ck_assert(!consttime_equal("abc", 3, "abd", 3));
	ck_assert(!consttime_equal("abc", 3, "xbc", 3));
	ck_assert(!consttime_equal("abc", 3, "abcd", 4));
	ck_assert(!consttime_equal("abc", 3, "ab", 2));
	ck_assert(!consttime_equal("", 0, "a", 1));
	ck_assert(!consttime_equal("abab", 4, "ab", 2));      /* b repeated is not b */
	ck_assert(!consttime_equal("a", 1, "", 0));
	/* every bit of every byte counts, the high bit too */
	ck_assert(!consttime_equal("\x80", 1, "\x00", 1));
	ck_assert(!consttime_equal("\x01", 1, "\x00", 1));
	ck_assert(consttime_equal("a\0b", 3, "a\0b", 3));
	ck_assert(!consttime_equal("a\0b", 3, "a\0c", 3));
}
END_TEST

/* ---- files ---- */

START_TEST(test_read_file)
{
	char *path = tpath("f"), *data = NULL, *big;
	size_t len = 99;

	/* content with NUL bytes, NUL-terminated */
	put_file(path, "a\0b\n", 4);
	ck_assert_int_eq(read_file(path, 100, &data, &len), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(data, "a\0b\n", 5);
	free(data);
	/* exactly max is fine, max + 1 is EFBIG */
	ck_assert_int_eq(read_file(path, 4, &data, &len), 0);
	free(data);
	data = NULL;
	errno = 0;
	ck_assert_int_eq(read_file(path, 3, &data, &len), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_ptr_null(data);
	/* empty */
	put_file(path, "", 0);
	ck_assert_int_eq(read_file(path, 0, &data, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(data, "");
	free(data);
	/* larger than read_file's buffer, and EFBIG found past the first read */
	big = xmalloc(100000);
	memset(big, 'z', 100000);
	big[54321] = 'Q';
	put_file(path, big, 100000);
	ck_assert_int_eq(read_file(path, 100000, &data, &len), 0);
	ck_assert_uint_eq(len, 100000);
	ck_assert_mem_eq(data, big, 100000);
	ck_assert_int_eq(data[100000], '\0');
	free(data);
	errno = 0;
	ck_assert_int_eq(read_file(path, 99999, &data, &len), -1);
	ck_assert_int_eq(errno, EFBIG);
	free(big);
	/* missing, or a directory */
	free(path);
	path = tpath("missing");
	errno = 0;
	ck_assert_int_eq(read_file(path, 100, &data, &len), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(read_file(tmpdir, 100, &data, &len), -1);
	ck_assert_int_eq(errno, EISDIR);
	free(path);
}
END_TEST

static volatile sig_atomic_t alarms;

static void
on_alarm(int sig ATTR_UNUSED)
{
	alarms++;
}

START_TEST(test_write_full)
{
	char *path = tpath("w"), *data, *back;
	size_t len, i, total = 8u << 20;
	struct sigaction sa, old;
	struct itimerval it = { { 0, 500 }, { 0, 500 } }, off = { { 0, 0 }, { 0, 0 } };
	int fd, fds[2], status;
	pid_t pid;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, "hello ", 6), 0);
	ck_assert_int_eq(write_full(fd, "", 0), 0);
	ck_assert_int_eq(write_full(fd, "world", 5), 0);
	close(fd);
	ck_assert_int_eq(read_file(path, 100, &back, &len), 0);
	ck_assert_str_eq(back, "hello world");
	free(back);
	/* errors come back with errno */
	errno = 0;
	ck_assert_int_eq(write_full(-1, "x", 1), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	errno = 0;
	ck_assert_int_eq(write_full(fds[1], "x", 1), -1);
	ck_assert_int_eq(errno, EPIPE);
	close(fds[1]);

	/*
	 * Short writes and EINTR: 8 MiB into a pipe that a child drains
	 * slowly, with a timer interrupting write(2) (no SA_RESTART). Every
	 * byte must arrive, in order.
	 */
	data = xmalloc(total);
	for (i = 0; i < total; i++)
		data[i] = (char)(i * 7 + i / 4096);
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[4096];
		size_t got = 0;
		ssize_t n;
		int bad = 0;

		close(fds[1]);
		while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
			for (i = 0; i < (size_t)n; i++)
				if (buf[i] != (char)((got + i) * 7 + (got + i) / 4096))
					bad = 1;
			got += (size_t)n;
			if (got % (256 * 1024) < sizeof(buf))
				usleep(2000);
		}
		_exit(bad || got != total ? 1 : 0);
	}
	close(fds[0]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = 0;        /* no SA_RESTART: write(2) sees EINTR */
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
	alarms = 0;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	ck_assert_int_eq(write_full(fds[1], data, total), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	sigaction(SIGALRM, &old, NULL);
	close(fds[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_gt(alarms, 0);
	free(data);
	free(path);
}
END_TEST

START_TEST(test_write_file_atomic)
{
	char *path = tpath("state.json"), *tmp = tpath("state.json.tmp"), *data;
	char *missing = tpath("no/such/dir/f"), *sub = tpath("sub");
	struct stat st;
	size_t len;

	ck_assert_int_eq(write_file_atomic(path, "{\"a\":1}\n", 8, 0640), 0);
	ck_assert_int_eq(read_file(path, 100, &data, &len), 0);
	ck_assert_str_eq(data, "{\"a\":1}\n");
	free(data);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	/* replacing: shorter content, nothing left over; bytes as given */
	ck_assert_int_eq(write_file_atomic(path, "x\0y", 3, 0600), 0);
	ck_assert_int_eq(read_file(path, 100, &data, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(data, "x\0y", 3);
	free(data);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(write_file_atomic(path, "", 0, 0600), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	/* a stale .tmp from a crash is simply replaced */
	put_file(tmp, "stale", 5);
	ck_assert_int_eq(write_file_atomic(path, "new", 3, 0600), 0);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(read_file(path, 100, &data, &len), 0);
	ck_assert_str_eq(data, "new");
	free(data);

	/* failure: nothing created, errno kept, the old file untouched */
	errno = 0;
	ck_assert_int_eq(write_file_atomic(missing, "x", 1, 0600), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* the target is a directory: rename fails, the .tmp is removed */
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	free(tmp);
	tmp = tpath("sub.tmp");
	errno = 0;
	ck_assert_int_eq(write_file_atomic(sub, "x", 1, 0600), -1);
	ck_assert_int_eq(errno, EISDIR);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(stat(sub, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));

	/* a bare file name is relative to the working directory */
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(write_file_atomic("bare", "b", 1, 0600), 0);
	ck_assert_int_eq(read_file("bare", 10, &data, &len), 0);
	ck_assert_str_eq(data, "b");
	free(data);
	ck_assert_int_eq(chdir("/"), 0);

	ck_assert_int_eq(fsync_dir(tmpdir), 0);
	errno = 0;
	ck_assert_int_eq(fsync_dir(missing), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(fsync_dir(path), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	free(path);
	free(tmp);
	free(missing);
	free(sub);
}
END_TEST

START_TEST(test_mkdir_p)
{
	char *deep = tpath("a/b/c"), *file = tpath("file"), *under = tpath("file/x");
	char *slash = tpath("s/t/"), *mid = tpath("a");
	struct stat st;

	ck_assert_int_eq(mkdir_p(deep, 0750), 0);
	ck_assert_int_eq(stat(deep, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	ck_assert_int_eq(stat(mid, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	/* again: fine */
	ck_assert_int_eq(mkdir_p(deep, 0750), 0);
	ck_assert_int_eq(mkdir_p(tmpdir, 0700), 0);
	ck_assert_int_eq(mkdir_p(slash, 0700), 0);
	ck_assert_int_eq(stat(slash, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	/* a file in the way */
	put_file(file, "x", 1);
	errno = 0;
	ck_assert_int_eq(mkdir_p(file, 0700), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	errno = 0;
	ck_assert_int_eq(mkdir_p(under, 0700), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	/* relative */
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(mkdir_p("r1/r2", 0700), 0);
	ck_assert_int_eq(stat("r1/r2", &st), 0);
	ck_assert_int_eq(chdir("/"), 0);
	free(deep);
	free(file);
	free(under);
	free(slash);
	free(mid);
}
END_TEST

/*
 * Fixed bug (util.c mkdir_p): mkdir_p("") reads past the end of its 1-byte copy
 * of the path (the loop starts at p + 1, beyond the terminating NUL):
 * ASan reports a heap-buffer-overflow. It should fail with ENOENT.
 */
START_TEST(test_mkdir_p_empty)
{
	errno = 0;
	ck_assert_int_eq(mkdir_p("", 0700), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_strip_one_newline)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "a\n", "a" }, { "a\r\n", "a" }, { "a\n\n", "a\n" },
		{ "a\r\n\r\n", "a\r\n" }, { "a\r\r\n", "a\r" }, { "a\r", "a\r" },
		{ "\n", "" }, { "\r\n", "" }, { "", "" }, { "a", "a" },
		{ "\na", "\na" }, { "a\n ", "a\n " },
	};
	char buf[16];
	size_t i, len;

	for (i = 0; i < N_ELEMENTS(cases); i++) {
		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		len = strlen(buf);
		strip_one_newline(buf, &len);
		ck_assert_msg(strcmp(buf, cases[i].out) == 0, "case %zu", i);
		ck_assert_uint_eq(len, strlen(cases[i].out));
	}
	/* a secret with a NUL inside: len rules, not strlen */
	memcpy(buf, "a\0b\n", 5);
	len = 4;
	strip_one_newline(buf, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(buf, "a\0b\0", 4);
}
END_TEST

/* ---- base64 ---- */

START_TEST(test_base64_vectors)
{
	/* RFC 4648 section 10 */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
	};
	unsigned char *out;
	size_t i, len;
	char *e;

	for (i = 0; i < N_ELEMENTS(plain); i++) {
		e = base64_encode(plain[i], strlen(plain[i]));
		ck_assert_str_eq(e, enc[i]);
		free(e);
		out = NULL;
		len = 99;
		ck_assert_int_eq(base64_decode(enc[i], strlen(enc[i]), &out, &len), 0);
		ck_assert_uint_eq(len, strlen(plain[i]));
		ck_assert_mem_eq(out, plain[i], len);
		ck_assert_int_eq(out[len], '\0');
		free(out);
	}
	/* the whole alphabet, + and / included */
	e = base64_encode("\xfb\xff\xbf", 3);
	ck_assert_str_eq(e, "+/+/");
	free(e);
	ck_assert_int_eq(base64_decode("+/+/", 4, &out, &len), 0);
	ck_assert_mem_eq(out, "\xfb\xff\xbf", 3);
	free(out);
}
END_TEST

START_TEST(test_base64_round_trip)
{
	unsigned char data[300], *out;
	unsigned int seed = 12345;
	size_t n, i, len;
	char *e;

	for (n = 0; n < sizeof(data); n++) {
		for (i = 0; i < n; i++)
			data[i] = (unsigned char)rand_r(&seed);
		e = base64_encode(data, n);
		ck_assert_uint_eq(strlen(e), 4 * ((n + 2) / 3));
		ck_assert_int_eq(base64_decode(e, strlen(e), &out, &len), 0);
		ck_assert_uint_eq(len, n);
		if (n > 0)
			ck_assert_mem_eq(out, data, n);
		free(out);
		free(e);
	}
}
END_TEST

START_TEST(test_base64_invalid)
{
	static const char *const bad[] = {
		"Z", "Zg", "Zg=", "Zm9vY", "Zm9*", "Zm-v", "Zm_v", "Zm9v\n", "Zm\0v",
		"Zm 9", "\xc3\xa9\xc3\xa9",
	};
	unsigned char *out;
	size_t i, len;

	for (i = 0; i < N_ELEMENTS(bad); i++) {
		out = (unsigned char *)"untouched";
		ck_assert_msg(base64_decode(bad[i], i == 8 ? 4 : strlen(bad[i]), &out, &len) == -1,
		    "\"%s\" accepted", bad[i]);
		ck_assert_str_eq((char *)out, "untouched");
	}
}
END_TEST

/*
 * Fixed bug (util.c base64_decode): EVP_DecodeBlock() takes "=" anywhere as
 * zero bits, and base64_decode() only subtracts padding found in the last
 * two characters, so invalid input "decodes": "====" and "A===" give one
 * 0x00 byte, "Zg=a" gives "f\0", "Zg==Zg==" gives "f\0\0f". Whitespace
 * around the text is skipped too ("  Zm9v  " gives "foo"). A webhook
 * secret "whsec_====" is thus accepted as a one-byte NUL key instead of
 * "invalid base64".
 */
START_TEST(test_base64_bad_padding)
{
	static const char *const bad[] = {
		"====", "A===", "Z===", "Zg=a", "Zg==Zg==", "=Zm9", "  Zm9v  ", "Zm9v    ",
	};
	unsigned char *out;
	size_t i, len;

	for (i = 0; i < N_ELEMENTS(bad); i++) {
		out = NULL;
		if (base64_decode(bad[i], strlen(bad[i]), &out, &len) != -1) {
			free(out);
			ck_abort_msg("\"%s\" accepted", bad[i]);
		}
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_xstrndup_xasprintf);
	tcase_add_test(tc, test_str);
	tcase_add_test(tc, test_parse_numbers);
	tcase_add_test(tc, test_format_iso8601);
	tcase_add_test(tc, test_consttime_equal);
	tcase_add_test(tc, test_read_file);
	tcase_add_test(tc, test_write_full);
	tcase_add_test(tc, test_write_file_atomic);
	tcase_add_test(tc, test_mkdir_p);
	tcase_add_test(tc, test_strip_one_newline);
	tcase_add_test(tc, test_base64_vectors);
	tcase_add_test(tc, test_base64_round_trip);
	tcase_add_test(tc, test_base64_invalid);
	tcase_add_test(tc, test_mkdir_p_empty);
	tcase_add_test(tc, test_base64_bad_padding);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
