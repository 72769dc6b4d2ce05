/*
 * libFuzzer target for the config loader (config_load), the one parser of
 * the project that reads a file rather than bytes: the input is written to
 * DIR/imaphook.conf in a private temporary directory (created once, removed
 * at exit) and loaded from there, so that relative paths (resolved against
 * the file's directory) stay inside it. (@include paths are libconfig's
 * business, relative to the working directory: whatever they name is only
 * read.) libconfig's string reader is not used because
 * config_load() takes a path, and what it does with the path (relative
 * state_dir, ca_file and *_file resolved against the file's directory, the
 * FILE:LINE: of every message) is part of what is fuzzed.
 *
 * The directory holds what keys may point at: "secret" (a password,
 * secret or token file, mode 0600), "loose" (mode 0644: draws a warning),
 * "empty", "big" (over the 64 KiB secret limit), "ca.pem" and a
 * directory "dir"; the environment has IMAPHOOK_FUZZ_PW. Standard input is
 * /dev/null (a "/dev/stdin" secret file must not block).
 *
 * Checked on every input:
 * - config_load() returns 0 with a config and no message, or -1 with no
 *   config and at least one message, each "PATH:LINE: text";
 * - a loaded config is complete: names non-empty, every trigger has a
 *   connection and at least one webhook that are in the config, every
 *   connection a host, a port and a positive time-out;
 * - the *_same() comparisons see every object equal to itself, and a
 *   config_connection_dup() equal to its original;
 * - look-ups by name find each object.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5 (Debian 12) leaks when a parse fails: the buffer of a
 * string its scanner was reading (an unterminated string) or a string
 * token the parser had not consumed yet (`a""; = b`). Not ours; a few
 * bytes per failed load (tests/valgrind.supp has the same two).
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static char dir[64];
static char path[128];

static void
put(const char *name, const char *content, size_t len, mode_t mode)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) < 0)
		abort();
	close(fd);
}

/* at exit: the directory and what is in it */
static void
cleanup(void)
{
	static const char *const names[] = {
		"imaphook.conf", "secret", "loose", "empty", "big", "ca.pem", NULL
	};
	char name[128];
	size_t i;

	for (i = 0; names[i] != NULL; i++) {
		snprintf(name, sizeof(name), "%s/%s", dir, names[i]);
		(void)unlink(name);
	}
	snprintf(name, sizeof(name), "%s/dir", dir);
	(void)rmdir(name);
	(void)rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	static char big[70 * 1024];
	char cwd[4096];
	int fd;

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		abort();
	snprintf(dir, sizeof(dir), "/tmp/imaphook-fuzz-config-XXXXXX");
	if (mkdtemp(dir) == NULL || chdir(dir) < 0)
		abort();
	/* libFuzzer reads its flags (relative paths) after this returns */
	snprintf(path, sizeof(path), "%s/imaphook.conf", dir);
	put("secret", "s3cret\n", 7, 0600);
	put("loose", "s3cret", 6, 0644);
	put("empty", "", 0, 0600);
	memset(big, 'x', sizeof(big));
	put("big", big, sizeof(big), 0600);
	put("ca.pem", "-----BEGIN CERTIFICATE-----\n", 28, 0644);
	if (mkdir("dir", 0700) < 0 && errno != EEXIST)
		abort();
	setenv("IMAPHOOK_FUZZ_PW", "from-env", 1);
	setenv("IMAPHOOK_FUZZ_EMPTY", "", 1);
	if ((fd = open("/dev/null", O_RDONLY)) < 0 || dup2(fd, 0) < 0)
		abort();
	close(fd);
	if (chdir(cwd) < 0)
		abort();
	atexit(cleanup);
	log_init("fuzz_config");
	log_set_level(LOG_LEVEL_ERROR);         /* warnings are not findings */
	return 0;
}

static void
check_message(const char *msg)
{
	size_t plen = strlen(path);
	const char *p;
	char *end;
	long line;

	/* the file itself, or one it @includes (in dir) */
	if (strncmp(msg, path, plen) == 0)
		p = msg + plen;
	else if (strncmp(msg, dir, strlen(dir)) == 0 && (p = strchr(msg + strlen(dir), ':')) != NULL)
		;
	else if ((p = strchr(msg, ':')) == NULL)
		abort();
	if (*p != ':')
		abort();
	errno = 0;
	line = strtol(p + 1, &end, 10);
	if (errno != 0 || end == p + 1 || line < 0 || end[0] != ':' || end[1] != ' ' ||
	    end[2] == '\0')
		abort();
	/* Not checked yet: a message is one line. Values are quoted as they
	 * are, and a libconfig string may hold a raw line break, so
	 * `webhooks = [ "a<LF>b" ]` gives a two-line "webhook ... is not
	 * defined" (corpus/config/newline-in-name.conf; reported). */
}

static void
check_config(const struct config *c)
{
	size_t i, j;

	if (c->path == NULL || c->state_dir == NULL || c->state_dir[0] == '\0')
		abort();
	for (i = 0; i < c->nconnections; i++) {
		const struct cfg_connection *k = &c->connections[i];
		struct cfg_connection *dup;

		if (k->name == NULL || k->name[0] == '\0' || k->host == NULL || k->port == 0 ||
		    k->timeout == 0 || k->max_connections == 0 || k->username == NULL)
			abort();
		if (k->auth == CFG_AUTH_LOGIN && k->password == NULL)
			abort();
		if (k->auth == CFG_AUTH_XOAUTH2 && (k->oauth2_token_command == NULL ||
		    k->oauth2_token_command[0] == NULL))
			abort();
		if (config_find_connection(c, k->name) != k)
			abort();
		if (!config_connection_same(k, k))
			abort();
		dup = config_connection_dup(k);
		if (!config_connection_same(k, dup))
			abort();
		config_connection_free(&dup);
		if (dup != NULL)
			abort();
		(void)config_tls_version_name(k->min_tls_version);
		(void)config_tls_version_name(k->max_tls_version);
	}
	for (i = 0; i < c->nwebhooks; i++) {
		const struct cfg_webhook *w = &c->webhooks[i];

		if (w->name == NULL || w->name[0] == '\0' || w->url == NULL || w->headers == NULL ||
		    w->timeout == 0)
			abort();
		if ((w->secret == NULL) != (w->secret_len == 0))
			abort();
		for (j = 0; w->headers[j] != NULL; j++)
			if (strchr(w->headers[j], ':') == NULL)
				abort();
		if (config_find_webhook(c, w->name) != w || !config_webhook_same(w, w))
			abort();
	}
	for (i = 0; i < c->ntriggers; i++) {
		const struct cfg_trigger *t = &c->triggers[i];
		const char *s;

		if (t->name == NULL || t->name[0] == '\0' || t->mailbox == NULL ||
		    t->connection == NULL || t->nwebhooks == 0 || t->interval == 0)
			abort();
		for (s = t->name; *s != '\0'; s++)
			if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			    (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
				abort();
		if (t->connection < c->connections ||
		    t->connection >= c->connections + c->nconnections)
			abort();
		for (j = 0; j < t->nwebhooks; j++)
			if (t->webhooks[j] < c->webhooks ||
			    t->webhooks[j] >= c->webhooks + c->nwebhooks)
				abort();
		if (config_find_trigger(c, t->name) != t || !config_trigger_same(t, t))
			abort();
	}
	if (c->api != NULL && (c->api->listen == NULL || c->api->host == NULL ||
	    (!c->api->loopback && c->api->token == NULL)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors errs = { 0 };
	struct config *c = NULL;
	size_t i;
	int ret;

	put(path, (const char *)data, size, 0600);
	ret = config_load(path, &c, &errs);
	if (ret == 0) {
		if (c == NULL || errs.count != 0)
			abort();
		check_config(c);
		config_free(&c);
		if (c != NULL)
			abort();
	} else {
		if (ret != -1 || c != NULL || errs.count == 0)
			abort();
	}
	for (i = 0; i < errs.count; i++)
		check_message(errs.msgs[i]);
	config_errors_free(&errs);
	if (errs.count != 0)
		abort();
	return 0;
}
