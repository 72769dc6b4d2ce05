/* Unit tests for state: trigger state files and the state directory lock. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "state.h"
#include "tmpdir.h"
#include "util.h"

static void
setup(void)
{
	tmpdir_make();
	log_set_level(LOG_LEVEL_ERROR);
}

static void
teardown(void)
{
	tmpdir_remove();
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Number of entries in dir whose name starts with prefix; the last one's
 * name in *name_r (malloc'd) when name_r is not NULL. */
static int
count_prefix(const char *dir, const char *prefix, char **name_r)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			n++;
			if (name_r != NULL) {
				free(*name_r);
				*name_r = xstrdup(de->d_name);
			}
		}
	}
	closedir(d);
	return n;
}

START_TEST(test_round_trip)
{
	struct trigger_state st = { 0 }, got;
	char *error = NULL, *path, *data;
	size_t len;
	json_t *root;

	st.uidvalidity = 1795653631;
	st.last_uid = 42;
	st.epoch = 3;
	st.connection = xstrdup("work");
	st.mailbox = xstrdup("Entwürfe");
	ck_assert_int_eq(state_save(tmpdir, "support-inbox", &st, &error), 0);
	ck_assert_int_eq(state_load(tmpdir, "support-inbox", &got, &error), 0);
	ck_assert(got.exists);
	ck_assert_uint_eq(got.uidvalidity, 1795653631);
	ck_assert_uint_eq(got.last_uid, 42);
	ck_assert_uint_eq(got.epoch, 3);
	ck_assert_str_eq(got.connection, "work");
	ck_assert_str_eq(got.mailbox, "Entwürfe");
	ck_assert_uint_eq(got.seen_from, 0);
	ck_assert_uint_eq(got.seen_to, 0);
	trigger_state_clear(&got);
	ck_assert(!got.exists);
	ck_assert_ptr_null(got.connection);

	/* The file carries the documented keys. */
	path = xasprintf("%s/triggers/support-inbox.json", tmpdir);
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	root = json_loadb(data, len, 0, NULL);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "uidValidity")), 1795653631);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "lastUid")), 42);
	ck_assert_int_eq(json_integer_value(json_object_get(root, "epoch")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(root, "mailbox")), "Entwürfe");
	ck_assert_ptr_null(json_object_get(root, "seenFrom"));     /* none pending */
	json_decref(root);
	free(data);

	/* UIDs still to mark \Seen come back */
	st.seen_from = 40;
	st.seen_to = 42;
	ck_assert_int_eq(state_save(tmpdir, "support-inbox", &st, &error), 0);
	ck_assert_int_eq(state_load(tmpdir, "support-inbox", &got, &error), 0);
	ck_assert_uint_eq(got.seen_from, 40);
	ck_assert_uint_eq(got.seen_to, 42);
	trigger_state_clear(&got);
	st.seen_from = st.seen_to = 0;

	/* Saving again replaces, extremes survive, NULL strings are null. */
	st.uidvalidity = UINT32_MAX;
	st.last_uid = 0;
	free(st.connection);
	st.connection = NULL;
	ck_assert_int_eq(state_save(tmpdir, "support-inbox", &st, &error), 0);
	ck_assert_int_eq(state_load(tmpdir, "support-inbox", &got, &error), 0);
	ck_assert_uint_eq(got.uidvalidity, UINT32_MAX);
	ck_assert_uint_eq(got.last_uid, 0);
	ck_assert_ptr_null(got.connection);
	ck_assert_str_eq(got.mailbox, "Entwürfe");
	trigger_state_clear(&got);
	trigger_state_clear(&st);
	/* No temporary file is left behind. */
	free(path);
	path = xasprintf("%s/triggers", tmpdir);
	ck_assert_int_eq(count_prefix(path, "support-inbox.json.tmp", NULL), 0);
	free(path);
}
END_TEST

/* A baseline saved without fsync reads back like any other, replaces the
 * old file atomically (no .tmp left), and state_sync makes it durable. */
START_TEST(test_nosync_then_sync)
{
	struct trigger_state st = { 0 }, got;
	char *error = NULL, *path, *missing;

	/* nothing saved yet: no triggers directory to sync */
	ck_assert_int_eq(state_sync(tmpdir, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "/triggers"));
	free(error);
	error = NULL;

	st.uidvalidity = 7;
	st.last_uid = 100;
	st.epoch = 1;
	st.mailbox = xstrdup("INBOX");
	ck_assert_int_eq(state_save_nosync(tmpdir, "t", &st, &error), 0);
	st.last_uid = 101;
	ck_assert_int_eq(state_save_nosync(tmpdir, "t", &st, &error), 0);
	ck_assert_int_eq(state_sync(tmpdir, &error), 0);
	ck_assert_int_eq(state_load(tmpdir, "t", &got, &error), 0);
	ck_assert(got.exists);
	ck_assert_uint_eq(got.last_uid, 101);
	ck_assert_str_eq(got.mailbox, "INBOX");
	trigger_state_clear(&got);
	path = xasprintf("%s/triggers", tmpdir);
	ck_assert_int_eq(count_prefix(path, "t.json.tmp", NULL), 0);
	free(path);
	/* bad names are refused as by state_save */
	ck_assert_int_eq(state_save_nosync(tmpdir, "../x", &st, &error), -1);
	free(error);
	trigger_state_clear(&st);
	missing = xasprintf("%s/nope", tmpdir);
	ck_assert_int_eq(state_sync(missing, &error), -1);
	free(error);
	free(missing);
}
END_TEST

START_TEST(test_missing)
{
	struct trigger_state got;
	char *error = NULL;

	ck_assert_int_eq(state_load(tmpdir, "nothing", &got, &error), 0);
	ck_assert(!got.exists);
	ck_assert_ptr_null(error);
	trigger_state_clear(&got);
}
END_TEST

static void
check_corrupt(const char *content)
{
	struct trigger_state got;
	char *error = NULL, *dir, *path, *aside = NULL, *apath, *data;
	size_t len;
	struct stat sb;

	dir = xasprintf("%s/triggers", tmpdir);
	ck_assert_int_eq(mkdir_p(dir, 0750), 0);
	path = xasprintf("%s/t1.json", dir);
	write_text(path, content);
	ck_assert_int_eq(state_load(tmpdir, "t1", &got, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_nonnull(strstr(error, "corrupt"));
	ck_assert(!got.exists);
	/* Moved aside, intact, for the operator. */
	ck_assert_int_eq(stat(path, &sb), -1);
	ck_assert_int_eq(count_prefix(dir, "t1.json.corrupt-", &aside), 1);
	ck_assert_ptr_nonnull(strstr(error, aside));
	apath = xasprintf("%s/%s", dir, aside);
	ck_assert_int_eq(read_file(apath, 4096, &data, &len), 0);
	ck_assert_str_eq(data, content);
	free(data);
	/* The next load starts afresh. */
	free(error);
	error = NULL;
	ck_assert_int_eq(state_load(tmpdir, "t1", &got, &error), 0);
	ck_assert(!got.exists);
	ck_assert_int_eq(unlink(apath), 0);
	free(apath);
	free(aside);
	free(path);
	free(dir);
}

START_TEST(test_corrupt)
{
	check_corrupt("{\"uidValidity\": 12, \"lastUid\":");
	check_corrupt("[1, 2]");
	check_corrupt("{\"uidValidity\": 4294967296, \"lastUid\": 1}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": -1}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": \"7\"}");
	check_corrupt("{\"lastUid\": 7}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": 7, \"mailbox\": 3}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": 7, \"seenFrom\": 3}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": 7, \"seenFrom\": 0, \"seenTo\": 3}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": 7, \"seenFrom\": 4, \"seenTo\": 3}");
	check_corrupt("{\"uidValidity\": 5, \"lastUid\": 7, \"seenFrom\": 4, \"seenTo\": 8}");
	check_corrupt("");
}
END_TEST

START_TEST(test_directory_in_the_way)
{
	struct trigger_state got;
	char *error = NULL, *path;

	path = xasprintf("%s/triggers/t2.json", tmpdir);
	ck_assert_int_eq(mkdir_p(path, 0750), 0);
	ck_assert_int_eq(state_load(tmpdir, "t2", &got, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "corrupt"));
	free(error);
	error = NULL;
	ck_assert_int_eq(state_load(tmpdir, "t2", &got, &error), 0);
	ck_assert(!got.exists);
	free(path);
}
END_TEST

START_TEST(test_epoch_optional_and_bad_names)
{
	struct trigger_state got, st = { 0 };
	char *error = NULL, *path, *dir;

	dir = xasprintf("%s/triggers", tmpdir);
	ck_assert_int_eq(mkdir_p(dir, 0750), 0);
	path = xasprintf("%s/old.json", dir);
	write_text(path, "{\"uidValidity\": 9, \"lastUid\": 8, \"extra\": true}");
	ck_assert_int_eq(state_load(tmpdir, "old", &got, &error), 0);
	ck_assert(got.exists);
	ck_assert_uint_eq(got.epoch, 0);
	ck_assert_uint_eq(got.last_uid, 8);
	ck_assert_ptr_null(got.mailbox);
	trigger_state_clear(&got);

	ck_assert_int_eq(state_save(tmpdir, "../escape", &st, &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
	error = NULL;
	ck_assert_int_eq(state_load(tmpdir, "..", &got, &error), -1);
	free(error);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_save_fails_cleanly)
{
	struct trigger_state st = { 0 }, got;
	char *error = NULL, *file, *under;

	/* A state_dir below a regular file cannot be created. */
	file = xasprintf("%s/plain", tmpdir);
	write_text(file, "x");
	under = xasprintf("%s/state", file);
	st.uidvalidity = 1;
	ck_assert_int_eq(state_save(under, "t", &st, &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
	error = NULL;
	ck_assert_int_eq(state_load(under, "t", &got, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "Not a directory"));
	free(error);
	free(under);
	free(file);
}
END_TEST

START_TEST(test_lock)
{
	char *error = NULL, *dir;
	struct stat sb;
	int fd, fd2;

	umask(022);
	dir = xasprintf("%s/var/lib/imaphook", tmpdir);
	fd = state_lock(dir, &error);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(stat(dir, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0750);

	fd2 = state_lock(dir, &error);
	ck_assert_int_eq(fd2, -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_nonnull(strstr(error, "another imaphookd is using"));
	ck_assert_ptr_nonnull(strstr(error, dir));
	free(error);
	error = NULL;

	/* Released with the descriptor. */
	ck_assert_int_eq(close(fd), 0);
	fd2 = state_lock(dir, &error);
	ck_assert_int_ge(fd2, 0);
	close(fd2);
	free(dir);

	dir = xasprintf("%s/f", tmpdir);
	write_text(dir, "");
	free(dir);
	dir = xasprintf("%s/f/state", tmpdir);
	ck_assert_int_eq(state_lock(dir, &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
	free(dir);
}
END_TEST

static Suite *
state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_nosync_then_sync);
	tcase_add_test(tc, test_corrupt);
	tcase_add_test(tc, test_directory_in_the_way);
	tcase_add_test(tc, test_epoch_optional_and_bad_names);
	tcase_add_test(tc, test_save_fails_cleanly);
	tcase_add_test(tc, test_lock);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(state_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
