/*
 * log_capture: what was logged, for the tests that check a line is (or a
 * secret is not) in the log. Each suite that includes it has its own
 * copy: everything is static. Not nested: one capture at a time.
 */
#ifndef IMAPHOOK_TEST_LOG_CAPTURE_H
#define IMAPHOOK_TEST_LOG_CAPTURE_H

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static char *log_capture_path;
static int log_capture_saved = -1;

/* From now on stderr (the log, at level) goes to a file. */
static inline void
log_capture_start(enum log_level level)
{
	int fd;

	ck_assert_int_lt(log_capture_saved, 0);
	log_capture_path = xasprintf("/tmp/imaphook-test-log.%d", (int)getpid());
	fflush(stderr);
	log_capture_saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(log_capture_saved, 0);
	fd = open(log_capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	log_set_level(level);
}

/* Ends the capture (the level goes back to error); returns what was
 * logged (caller frees). */
static inline char *
log_capture_end(void)
{
	char *out;
	size_t len;

	log_set_level(LOG_LEVEL_ERROR);
	fflush(stderr);
	dup2(log_capture_saved, STDERR_FILENO);
	close(log_capture_saved);
	log_capture_saved = -1;
	ck_assert_int_eq(read_file(log_capture_path, 1 << 20, &out, &len), 0);
	unlink(log_capture_path);
	free(log_capture_path);
	log_capture_path = NULL;
	return out;
}

/* How many times needle occurs in text. */
static inline int
log_count(const char *text, const char *needle)
{
	const char *p;
	int n = 0;

	for (p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

#endif
