/* Check suite for common/oauth2.c: output parsing, SASL responses, and
 * running token commands (real processes, /bin/sh scripts). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "log_capture.h"
#include "oauth2.h"
#include "tmpdir.h"
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

/* --- token commands --- */

struct got {
	int calls;
	char *token;
	char *error;
};

static void
got_cb(const char *token, uint64_t expires_in ATTR_UNUSED, const char *error, void *arg)
{
	struct got *g = arg;

	g->calls++;
	g->token = token != NULL ? xstrdup(token) : NULL;
	g->error = error != NULL ? xstrdup(error) : NULL;
}

/* Runs "sh -c script" as a token command until it calls back (once). */
static struct got
run_command(const char *script, unsigned timeout)
{
	struct event_base *base = event_base_new();
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)script, NULL };
	struct oauth2_fetch *f;
	struct got g = { 0, NULL, NULL };
	char *error = NULL;
	uint64_t deadline = monotonic_ms() + (timeout + 10) * 1000u;

	ck_assert_ptr_nonnull(base);
	f = oauth2_fetch_start(base, argv, timeout, "t", got_cb, &g, &error);
	ck_assert_msg(f != NULL, "%s", error);
	while (g.calls == 0 && monotonic_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(g.calls, 1);
	event_base_free(base);
	return g;
}

static void
got_free(struct got *g)
{
	free(g->token);
	free(g->error);
}

/* tmpdir/name, read (caller frees). */
static char *
tmp_read(const char *name)
{
	char *path = xasprintf("%s/%s", tmpdir, name), *data;
	size_t len;

	ck_assert_msg(read_file(path, 1 << 16, &data, &len) == 0, "%s", path);
	free(path);
	return data;
}

/* The pid a script wrote to tmpdir/name. */
static pid_t
tmp_pid(const char *name)
{
	char *data = tmp_read(name);
	long pid = strtol(data, NULL, 10);

	free(data);
	ck_assert_int_gt(pid, 1);
	return (pid_t)pid;
}

/* Whether pid runs (neither gone nor a zombie). */
static bool
running(pid_t pid)
{
	char *path = xasprintf("/proc/%d/stat", (int)pid), *data, *p;
	size_t len;
	bool ret = false;

	if (read_file(path, 4096, &data, &len) == 0) {
		p = strrchr(data, ')');
		ret = p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
		free(data);
	}
	free(path);
	return ret;
}

/*
 * Fixed bug (oauth2.c fetch_timer_cb): the command was reaped only after
 * EOF on its stdout and stderr; one that printed its token and exited 0
 * while a background child of its held stdout open ended in "no token
 * within N s".
 */
START_TEST(test_background_child_holds_stdout)
{
	char *script = xasprintf("sleep 60 & echo $! > %s/bg; echo tok", tmpdir);
	struct got g = run_command(script, 5);

	kill(tmp_pid("bg"), SIGKILL);
	ck_assert_msg(g.token != NULL, "%s", g.error);
	ck_assert_str_eq(g.token, "tok");
	got_free(&g);
	free(script);
}
END_TEST

/*
 * Fixed bug (oauth2.c oauth2_fetch_start): the command was not in a
 * process group of its own, and a time-out killed it alone: what it had
 * started lived on.
 */
START_TEST(test_timeout_kills_the_group)
{
	char *script = xasprintf("sleep 60 & echo $! > %s/bg; sleep 60", tmpdir);
	struct got g = run_command(script, 1);
	uint64_t deadline = monotonic_ms() + 3000;
	pid_t bg = tmp_pid("bg");

	ck_assert_ptr_null(g.token);
	ck_assert_ptr_nonnull(strstr(g.error, "no token within 1 s"));
	while (running(bg) && monotonic_ms() < deadline)
		usleep(10000);
	ck_assert_msg(!running(bg), "the background child %d lives on", (int)bg);
	kill(bg, SIGKILL);
	got_free(&g);
	free(script);
}
END_TEST

/*
 * Fixed bug (oauth2.c oauth2_fetch_start): the command inherited every
 * descriptor not marked close-on-exec (libevent's IMAP sockets) and the
 * daemon's ignored SIGPIPE.
 */
START_TEST(test_clean_descriptors_and_signals)
{
	char *script, *data, *p;
	unsigned long long ign;
	int extra[3];
	struct got g;
	size_t i;

	signal(SIGPIPE, SIG_IGN);               /* as imaphookd does */
	extra[0] = open("/dev/null", O_RDONLY);
	extra[1] = socket(AF_INET, SOCK_STREAM, 0);
	extra[2] = dup(STDOUT_FILENO);
	for (i = 0; i < N_ELEMENTS(extra); i++)
		ck_assert_int_ge(extra[i], 0);
	script = xasprintf("ls /proc/self/fd > %s/fds; grep SigIgn /proc/self/status > %s/sig; "
	    "echo tok", tmpdir, tmpdir);
	g = run_command(script, 5);
	ck_assert_msg(g.token != NULL, "%s", g.error);
	/* stdin, stdout, stderr, and the one ls opens on /proc/self/fd */
	data = tmp_read("fds");
	ck_assert_str_eq(data, "0\n1\n2\n3\n");
	free(data);
	data = tmp_read("sig");
	p = strchr(data, ':');
	ck_assert_ptr_nonnull(p);
	errno = 0;
	ign = strtoull(p + 1, NULL, 16);
	ck_assert_int_eq(errno, 0);
	ck_assert_msg((ign & (1ULL << (SIGPIPE - 1))) == 0, "SIGPIPE ignored: %s", data);
	free(data);
	for (i = 0; i < N_ELEMENTS(extra); i++)
		close(extra[i]);
	got_free(&g);
	free(script);
}
END_TEST

/*
 * Fixed bug (oauth2.c fetch_read_cb): the command's stderr was logged on
 * every run: a helper run with "set -x" or "curl -v" put the token in the
 * log. Now only a failure logs it (the first lines, any token blanked).
 */
START_TEST(test_stderr_logged_on_failure_only)
{
	struct got g;
	char *log;

	log_capture_start(LOG_LEVEL_DEBUG);
	g = run_command("echo 'debug: token tok-s3cr3t' >&2; echo tok-s3cr3t", 5);
	log = log_capture_end();
	ck_assert_msg(g.token != NULL, "%s", g.error);
	ck_assert_str_eq(g.token, "tok-s3cr3t");
	ck_assert_msg(strstr(log, "s3cr3t") == NULL, "%s", log);
	ck_assert_msg(strstr(log, "debug") == NULL, "%s", log);
	got_free(&g);
	free(log);

	log_capture_start(LOG_LEVEL_DEBUG);
	g = run_command("echo 'curl: Bearer tok-l34k' >&2; echo 'refresh token revoked' >&2; "
	    "echo tok-l34k; exit 3", 5);
	log = log_capture_end();
	ck_assert_ptr_null(g.token);
	ck_assert_ptr_nonnull(strstr(g.error, "exit status 3"));
	ck_assert_msg(strstr(log, "t: /bin/sh: refresh token revoked") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "t: /bin/sh: curl: Bearer ********") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "l34k") == NULL, "%s", log);
	got_free(&g);
	free(log);

	/* a chatty failure: its first lines only */
	log_capture_start(LOG_LEVEL_DEBUG);
	g = run_command("for i in $(seq 1 100); do echo \"chatter $i\" >&2; done; exit 1", 5);
	log = log_capture_end();
	ck_assert_ptr_null(g.token);
	ck_assert_int_eq(log_count(log, ": chatter "), 10);
	got_free(&g);
	free(log);
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
	tc = tcase_create("command");
	tcase_add_checked_fixture(tc, tmpdir_make, tmpdir_remove);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_background_child_holds_stdout);
	tcase_add_test(tc, test_timeout_kills_the_group);
	tcase_add_test(tc, test_clean_descriptors_and_signals);
	tcase_add_test(tc, test_stderr_logged_on_failure_only);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
