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
	pid_t pid;
	int out_fd, err_fd;
	struct event *out_ev, *err_ev, *timer;
	struct str out, errline;
	bool out_eof, err_eof, too_big;
	uint64_t deadline_ms;
	unsigned timeout;
	oauth2_fetch_cb *cb;
	void *arg;
};

#define CHECK_MS 10

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
	str_free(&f->out);
	str_free(&f->errline);
	free(f->program);
	free(f->name);
	free(f);
}

void
oauth2_fetch_cancel(struct oauth2_fetch **fp)
{
	struct oauth2_fetch *f = *fp;

	*fp = NULL;
	if (f == NULL)
		return;
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	fetch_free(f);
}

static void
fetch_finish(struct oauth2_fetch *f, const char *token, uint64_t expires_in, const char *error)
{
	oauth2_fetch_cb *cb = f->cb;
	void *arg = f->arg;

	f->pid = 0;
	fetch_free(f);
	cb(token, expires_in, error, arg);
}

/* One line of the command's stderr: log it (it may explain a failure). */
static void
log_err_line(struct oauth2_fetch *f)
{
	if (f->errline.len > 0)
		log_warn("%s: %s: %.*s", f->name, f->program,
		    (int)(f->errline.len > 500 ? 500 : f->errline.len), f->errline.data);
	str_reset(&f->errline);
}

static void
fetch_read_cb(evutil_socket_t fd, short what ATTR_UNUSED, void *arg)
{
	struct oauth2_fetch *f = arg;
	char buf[4096];
	ssize_t n, i;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (fd == f->out_fd) {
			event_del(f->out_ev);
			f->out_eof = true;
		} else {
			event_del(f->err_ev);
			log_err_line(f);
			f->err_eof = true;
		}
		return;
	}
	if (fd == f->out_fd) {
		if (f->out.len + (size_t)n > OAUTH2_MAX_OUTPUT)
			f->too_big = true;
		else
			str_append_n(&f->out, buf, (size_t)n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (buf[i] == '\n')
			log_err_line(f);
		else if (f->errline.len < 4096)
			str_append_c(&f->errline, buf[i]);
	}
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

	if (monotonic_ms() >= f->deadline_ms) {
		kill(f->pid, SIGKILL);
		while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
			;
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: no token within %u s",
		    f->program, f->timeout);
		fetch_finish(f, NULL, 0, msg);
		return;
	}
	r = f->out_eof && f->err_eof ? waitpid(f->pid, &status, WNOHANG) : 0;
	if (r == 0) {
		evtimer_add(f->timer, &tv);
		return;
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "oauth2_token_command %s: %s", f->program,
		    strerror(errno));
		fetch_finish(f, NULL, 0, msg);
		return;
	}
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

struct oauth2_fetch *
oauth2_fetch_start(struct event_base *base, char *const *argv, unsigned timeout_seconds,
    const char *name, oauth2_fetch_cb *cb, void *arg, char **error_r)
{
	struct oauth2_fetch *f;
	posix_spawn_file_actions_t fa;
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
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	f = xcalloc(1, sizeof(*f));
	ret = posix_spawnp(&f->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
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
	str_init(&f->errline);
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
