/*
 * config_helpers: what test_config.c and test_config_more.c share (each
 * includes it once): a fresh temporary directory per test, writing and
 * loading a config there, and asserting "FILE:LINE: message" problems.
 * Everything is static: each suite has its own copy.
 */
#ifndef IMAPHOOK_TEST_CONFIG_HELPERS_H
#define IMAPHOOK_TEST_CONFIG_HELPERS_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "config.h"

static char *dir;               /* a fresh temporary directory per test */
static char *conf_path;         /* dir/imaphook.conf */
static const char *conf_text;   /* what was written there */
static struct config *cfg;
static struct config_errors errs;

static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void
setup(void)
{
	char tmpl[] = "/tmp/imaphook-test-config-XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	dir = xstrdup(tmpl);
	conf_path = xasprintf("%s/imaphook.conf", dir);
	cfg = NULL;
	memset(&errs, 0, sizeof(errs));
}

static inline void
teardown(void)
{
	config_free(&cfg);
	config_errors_free(&errs);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(conf_path);
	free(dir);
}

/* Writes dir/name with the given mode; returns the path (caller frees). */
static inline char *
write_file(const char *name, const char *text, int mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
	return path;
}

/* All messages, one a line, for failure reports. */
static inline const char *
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

/* Writes text as the config with the given mode and loads it. */
static inline int
load_mode(const char *text, int mode)
{
	char *p;

	config_free(&cfg);
	config_errors_free(&errs);
	conf_text = text;
	p = write_file("imaphook.conf", text, mode);
	free(p);
	return config_load(conf_path, &cfg, &errs);
}

static inline int
load(const char *text)
{
	return load_mode(text, 0600);
}

static inline void
load_ok(const char *text)
{
	ck_assert_msg(load(text) == 0, "load failed:%s", all_msgs());
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(errs.count, 0);
}

static inline void
load_fail(const char *text)
{
	ck_assert_msg(load(text) == -1, "load succeeded");
	ck_assert_ptr_null(cfg);
	ck_assert_uint_ge(errs.count, 1);
}

/* Line (1-based) of the first line of conf_text containing marker. */
static inline int
line_of(const char *marker)
{
	const char *hit = strstr(conf_text, marker), *p;
	int line = 1;

	ck_assert_msg(hit != NULL, "marker %s not in config", marker);
	for (p = conf_text; p < hit; p++) {
		if (*p == '\n')
			line++;
	}
	return line;
}

/* Asserts a message "<conf_path>:<line>: ...<substr>...". */
static inline void
expect_at(int line, const char *substr)
{
	char *prefix = xasprintf("%s:%d: ", conf_path, line);
	size_t i;
	bool found = false;

	for (i = 0; i < errs.count && !found; i++) {
		found = strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs.msgs[i], substr) != NULL;
	}
	ck_assert_msg(found, "no \"%s...%s\" among:%s", prefix, substr,
	    all_msgs());
	free(prefix);
}

/* Same, at the line holding marker. */
static inline void
expect(const char *marker, const char *substr)
{
	expect_at(line_of(marker), substr);
}

/* Loads text, which must fail with exactly one message at marker. */
static inline void
fail_one(const char *text, const char *marker, const char *substr)
{
	load_fail(text);
	ck_assert_msg(errs.count == 1, "expected one message:%s", all_msgs());
	expect(marker, substr);
}

#define CONN "connections = ( { name = \"work\"; " \
	"host = \"imap.example.com\"; username = \"me\"; password = \"pw\"; } );\n"
#define HOOK "webhooks = ( { name = \"crm\"; " \
	"url = \"https://h.example/x\"; } );\n"
#define TRIG "triggers = ( { name = \"t1\"; connection = \"work\"; " \
	"mailbox = \"INBOX\"; webhooks = \"crm\"; } );\n"
#define BASE CONN HOOK TRIG

/* A connection group with extra settings: CONN_WITH("port = 1;"). */
#define CONN_WITH(x) "connections = ( { name = \"work\"; host = \"h\";\n" \
	"  username = \"me\"; password = \"pw\";\n  " x "\n} );\n"
#define HOOK_WITH(x) "webhooks = ( { name = \"crm\"; " \
	"url = \"https://h/x\";\n  " x "\n} );\n"
#define TRIG_WITH(x) "triggers = ( { name = \"t1\"; connection = \"work\";\n" \
	"  mailbox = \"INBOX\"; webhooks = \"crm\";\n  " x "\n} );\n"

#endif
