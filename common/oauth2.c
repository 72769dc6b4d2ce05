/* oauth2: token commands and SASL responses; see oauth2.h */
#include "oauth2.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "util.h"

extern char **environ;

struct oauth2_fetch {
	struct event_base *base;
	char *name;
	char *program;
	pid_t pid;              /* the command, leader of its process group; 0 once reaped */
	int out_fd, err_fd;
	struct event *out_ev, *err_ev, *timer;
	struct str out;         /* stdout: the token */
	struct str err;         /* the first STDERR_KEEP bytes of stderr */
	bool too_big;
	uint64_t deadline_ms;
	unsigned timeout;
	oauth2_fetch_cb *cb;
	void *arg;
};

/* How often the command is checked for having exited (its output may stay
 * open in a background child of its: EOF is not the end). */
#define CHECK_MS 10
/* stderr kept for the log of a failure, and lines logged of it */
#define STDERR_KEEP 2048
#define STDERR_LINES 10
#define STDERR_LINE_MAX 500

static void
fetch_close(struct oauth2_fetch *f)
{
	if (f->out_ev != NULL)
		event_free(f->out_ev);
	if (f->err_ev != NULL)
		event_free(f->err_ev);
	if (f->timer != NULL)
		event_free(f->timer);
	f->out_ev = f->err_ev = f->timer = NULL;
	if (f->out_fd >= 0)
		close(f->out_fd);
	if (f->err_fd >= 0)
		close(f->err_fd);
	f->out_fd = f->err_fd = -1;
}

static void
fetch_free(struct oauth2_fetch *f)
{
	fetch_close(f);
	if (f->out.data != NULL)
		explicit_bzero(f->out.data, f->out.cap);
	if (f->err.data != NULL)
		explicit_bzero(f->err.data, f->err.cap);
	str_free(&f->out);
	str_free(&f->err);
	free(f->program);
	free(f->name);
	free(f);
}

/* Kills the command and whatever it started in its process group (a
 * background child outlives it otherwise), and reaps it. */
static void
fetch_kill(struct oauth2_fetch *f)
{
	if (f->pid <= 0)
		return;
	kill(-f->pid, SIGKILL);
	kill(f->pid, SIGKILL);          /* should it have left its group */
	while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
		;
	f->pid = 0;
}

void
oauth2_fetch_cancel(struct oauth2_fetch **fp)
{
	struct oauth2_fetch *f = *fp;

	*fp = NULL;
	if (f == NULL)
		return;
	fetch_kill(f);
	fetch_free(f);
}

/*
 * The kept stderr of a command that failed, one log line per line (it may
 * say why), with any token its stdout holds blanked out. Never logged
 * after a success: a helper run with "set -x" or "curl -v" writes the
 * token there.
 */
static void
log_stderr(struct oauth2_fetch *f)
{
	char *tok = NULL, *perr = NULL, *p, *nl, *hit;
	uint64_t exp;
	size_t len, tlen = 0;
	unsigned lines = 0;

	if (f->err.len == 0)
		return;
	if (!f->too_big && oauth2_parse_output(f->out.data != NULL ? f->out.data : "",
	    f->out.len, &tok, &exp, &perr) < 0) {
		free(perr);
		tok = NULL;
	}
	if (tok != NULL && (tlen = strlen(tok)) > 0) {
		for (p = f->err.data; (hit = memmem(p, f->err.len - (size_t)(p - f->err.data),
		    tok, tlen)) != NULL; p = hit + tlen)
			memset(hit, '*', tlen);
	}
	for (p = f->err.data; p < f->err.data + f->err.len; p = nl + 1) {
		nl = memchr(p, '\n', f->err.len - (size_t)(p - f->err.data));
		if (nl == NULL)
			nl = f->err.data + f->err.len;
		len = (size_t)(nl - p);
		if (len == 0)
			continue;
		if (lines++ == STDERR_LINES)
			break;
		log_warn("%s: %s: %.*s", f->name, f->program,
		    (int)(len > STDERR_LINE_MAX ? STDERR_LINE_MAX : len), p);
	}
	if (tok != NULL) {
		explicit_bzero(tok, tlen);
		free(tok);
	}
}

/* Reads once from pipe fd; false when nothing more is there now (EOF, an
 * error, or empty). */
static bool
fetch_read(struct oauth2_fetch *f, int fd)
{
	char buf[4096];
	ssize_t n;
	size_t room;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			event_del(fd == f->out_fd ? f->out_ev : f->err_ev);
		return false;
	}
	if (fd == f->out_fd) {
		if (f->out.len + (size_t)n > OAUTH2_MAX_OUTPUT)
			f->too_big = true;
		else
			str_append_n(&f->out, buf, (size_t)n);
	} else if (f->err.len < STDERR_KEEP) {
		room = STDERR_KEEP - f->err.len;
		str_append_n(&f->err, buf, (size_t)n < room ? (size_t)n : room);
	}
	return true;
}

static void
fetch_read_cb(evutil_socket_t fd, short what ATTR_UNUSED, void *arg)
{
	(void)fetch_read(arg, fd);
}

/* The command exited: takes what is left in its pipes without waiting
 * for their EOF (a background child may hold them open), bounded (such a
 * child may keep writing). */
static void
fetch_drain(struct oauth2_fetch *f)
{
	unsigned i;

	for (i = 0; i < OAUTH2_MAX_OUTPUT / 4096 + 2 && fetch_read(f, f->out_fd); i++)
		;
	for (i = 0; i < STDERR_KEEP / 4096 + 2 && fetch_read(f, f->err_fd); i++)
		;
}

/* Ends the fetch: kills the command if it still runs, logs its stderr when
 * it failed (token NULL), frees f, calls back. */
static void
fetch_finish(struct oauth2_fetch *f, const char *token, uint64_t expires_in, const char *error)
{
	oauth2_fetch_cb *cb = f->cb;
	void *arg = f->arg;

	if (f->pid > 0) {
		fetch_kill(f);
		fetch_drain(f);
	}
	if (token == NULL)
		log_stderr(f);
	fetch_free(f);
	cb(token, expires_in, error, arg);
}

static void
fetch_timer_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct oauth2_fetch *f = arg;
	struct timeval tv = { 0, CHECK_MS * 1000 };
	char *token = NULL, *perr = NULL, msg[256];
	uint64_t expires_in = 0;
	int status;
	pid_t r;

	r = waitpid(f->pid, &status, WNOHANG);
	if (r == 0 && monotonic_ms() >= f->deadline_ms) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: no token within %u s",
		    f->program, f->timeout);
		fetch_finish(f, NULL, 0, msg);
		return;
	}
	if (r == 0 || (r < 0 && errno == EINTR)) {
		evtimer_add(f->timer, &tv);
		return;
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: %s", f->program,
		    strerror(errno));
		f->pid = 0;
		fetch_finish(f, NULL, 0, msg);
		return;
	}
	f->pid = 0;
	fetch_drain(f);
	if (WIFSIGNALED(status)) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: killed by signal %d",
		    f->program, WTERMSIG(status));
		fetch_finish(f, NULL, 0, msg);
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: exit status %d",
		    f->program, WEXITSTATUS(status));
		fetch_finish(f, NULL, 0, msg);
	} else if (f->too_big) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: output larger than %d bytes",
		    f->program, OAUTH2_MAX_OUTPUT);
		fetch_finish(f, NULL, 0, msg);
	} else if (oauth2_parse_output(f->out.data != NULL ? f->out.data : "", f->out.len,
	    &token, &expires_in, &perr) < 0) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: %s", f->program, perr);
		free(perr);
		fetch_finish(f, NULL, 0, msg);
	} else {
		fetch_finish(f, token, expires_in, NULL);
		explicit_bzero(token, strlen(token));
		free(token);
	}
}

/*
 * Starts argv with stdin /dev/null, stdout and stderr to pipes, no other
 * descriptor of ours (libevent's sockets are not close-on-exec), signals
 * at their defaults (we ignore SIGPIPE), and in a process group of its own
 * (a time-out kills all it started). 0 with *pid_r, or an errno.
 */
static int
fetch_spawn(char *const *argv, int out_fd, int err_fd, pid_t *pid_r)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t all, none;
	int ret;

	if ((ret = posix_spawn_file_actions_init(&fa)) != 0)
		return ret;
	if ((ret = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return ret;
	}
	sigfillset(&all);
	sigemptyset(&none);
	if ((ret = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
	    (ret = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) == 0 &&
	    (ret = posix_spawn_file_actions_adddup2(&fa, err_fd, 2)) == 0 &&
	    (ret = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0 &&
	    (ret = posix_spawnattr_setpgroup(&attr, 0)) == 0 &&
	    (ret = posix_spawnattr_setsigdefault(&attr, &all)) == 0 &&
	    (ret = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
	    (ret = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) == 0)
		ret = posix_spawnp(pid_r, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return ret;
}

struct oauth2_fetch *
oauth2_fetch_start(struct event_base *base, char *const *argv, unsigned timeout_seconds,
    const char *name, oauth2_fetch_cb *cb, void *arg, char **error_r)
{
	struct oauth2_fetch *f;
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, ret;
	struct timeval tv = { 0, CHECK_MS * 1000 };

	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
		*error_r = xstrdup("no oauth2_token_command");
		return NULL;
	}
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		*error_r = xasprintf("oauth2_token_command: pipe: %s", strerror(errno));
		goto fail;
	}
	f = xcalloc(1, sizeof(*f));
	ret = fetch_spawn(argv, outp[1], errp[1], &f->pid);
	close(outp[1]);
	close(errp[1]);
	if (ret != 0) {
		*error_r = xasprintf("oauth2_token_command: cannot run %s: %s", argv[0],
		    strerror(ret));
		close(outp[0]);
		close(errp[0]);
		free(f);
		return NULL;
	}
	f->base = base;
	f->name = xstrdup(name);
	f->program = xstrdup(argv[0]);
	f->timeout = timeout_seconds;
	f->deadline_ms = monotonic_ms() + (uint64_t)timeout_seconds * 1000u;
	f->cb = cb;
	f->arg = arg;
	f->out_fd = outp[0];
	f->err_fd = errp[0];
	str_init(&f->out);
	str_init(&f->err);
	evutil_make_socket_nonblocking(f->out_fd);
	evutil_make_socket_nonblocking(f->err_fd);
	f->out_ev = event_new(base, f->out_fd, EV_READ | EV_PERSIST, fetch_read_cb, f);
	f->err_ev = event_new(base, f->err_fd, EV_READ | EV_PERSIST, fetch_read_cb, f);
	f->timer = evtimer_new(base, fetch_timer_cb, f);
	event_add(f->out_ev, NULL);
	event_add(f->err_ev, NULL);
	evtimer_add(f->timer, &tv);
	return f;
fail:
	if (outp[0] >= 0) {
		close(outp[0]);
		close(outp[1]);
	}
	if (errp[0] >= 0) {
		close(errp[0]);
		close(errp[1]);
	}
	return NULL;
}

int
oauth2_parse_output(const char *out, size_t len, char **token_r, uint64_t *expires_in_r,
    char **error_r)
{
	const char *s = out, *e = out + len;
	json_error_t jerr;
	json_t *o, *tok, *exp;
	size_t i;

	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*expires_in_r = 0;
	if (s == e) {
		*error_r = xstrdup("printed no token");
		return -1;
	}
	if (*s != '{') {
		for (i = 0; i < (size_t)(e - s); i++) {
			unsigned char c = (unsigned char)s[i];

			if (c <= 0x20 || c >= 0x7f) {
				*error_r = xstrdup("the token holds white space or control characters");
				return -1;
			}
		}
		*token_r = xstrndup(s, (size_t)(e - s));
		return 0;
	}
	o = json_loadb(s, (size_t)(e - s), 0, &jerr);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		*error_r = xasprintf("output is neither a token nor a JSON object (%s)", jerr.text);
		return -1;
	}
	tok = json_object_get(o, "access_token");
	exp = json_object_get(o, "expires_in");
	if (!json_is_string(tok) || json_string_length(tok) == 0 ||
	    strpbrk(json_string_value(tok), " \t\r\n\001") != NULL) {
		json_decref(o);
		*error_r = xstrdup("the JSON has no usable \"access_token\" string");
		return -1;
	}
	if (exp != NULL && (!json_is_integer(exp) || json_integer_value(exp) < 0)) {
		json_decref(o);
		*error_r = xstrdup("\"expires_in\" must be a non-negative integer");
		return -1;
	}
	*token_r = xstrdup(json_string_value(tok));
	if (exp != NULL)
		*expires_in_r = (uint64_t)json_integer_value(exp);
	json_decref(o);
	return 0;
}

char *
oauth2_xoauth2_response(const char *user, const char *token)
{
	struct str s;
	char *b64;

	str_init(&s);
	str_printf(&s, "user=%s\001auth=Bearer %s\001\001", user, token);
	b64 = base64_encode(s.data, s.len);
	explicit_bzero(s.data, s.len);
	str_free(&s);
	return b64;
}

char *
oauth2_oauthbearer_response(const char *user, const char *host, unsigned port,
    const char *token)
{
	struct str s;
	char *b64;

	/* gs2 header with the authzid's ',' and '=' escaped (RFC 5801) */
	str_init(&s);
	str_append(&s, "n,a=");
	for (; *user != '\0'; user++) {
		if (*user == ',')
			str_append(&s, "=2C");
		else if (*user == '=')
			str_append(&s, "=3D");
		else
			str_append_c(&s, *user);
	}
	str_printf(&s, ",\001host=%s\001port=%u\001auth=Bearer %s\001\001", host, port, token);
	b64 = base64_encode(s.data, s.len);
	explicit_bzero(s.data, s.len);
	str_free(&s);
	return b64;
}
