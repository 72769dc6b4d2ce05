/*
 * tmpdir: a fresh temporary directory per test, for the suites that work
 * on files (each includes it once; everything is static). Call
 * tmpdir_make() in the fixture's setup and tmpdir_remove() in its
 * teardown.
 */
#ifndef IMAPHOOK_TEST_TMPDIR_H
#define IMAPHOOK_TEST_TMPDIR_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char tmpdir[] = "/tmp/imaphook-test.XXXXXX";

static inline void
tmpdir_make(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Removes it with everything below, and makes the name a template again. */
static inline void
tmpdir_remove(void)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);

	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

#endif
