/* Unit tests for outbox: the durable queue of webhook requests. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "outbox.h"
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

/* Whether tmpdir/rel exists. */
static bool
exists(const char *rel)
{
	char *path = xasprintf("%s/%s", tmpdir, rel);
	struct stat sb;
	bool ret = stat(path, &sb) == 0;

	free(path);
	return ret;
}

/* Files in state_dir/sub/<webhook>/<trigger> (excluding . and ..). */
static int
count_files(const char *sub, const char *webhook, const char *trigger)
{
	char *path = xasprintf("%s/%s/%s/%s", tmpdir, sub, webhook, trigger);
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	free(path);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Byte off of tmpdir/rel, or -1. */
static int
file_byte(const char *rel, off_t off)
{
	char *path = xasprintf("%s/%s", tmpdir, rel);
	unsigned char c;
	FILE *f = fopen(path, "rb");
	int ret = -1;

	free(path);
	if (f == NULL)
		return -1;
	if (fseeko(f, off, SEEK_SET) == 0 && fread(&c, 1, 1, f) == 1)
		ret = c;
	fclose(f);
	return ret;
}

/* Writes data to tmpdir/rel. */
static void
write_rel(const char *rel, const char *data, size_t len)
{
	char *path = xasprintf("%s/%s", tmpdir, rel);
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(path);
}

static void
put(struct outbox *ob, const char *webhook, const char *trigger,
    uint32_t epoch, uint32_t uid)
{
	char *error = NULL;
	char *body = xasprintf("{\"id\":\"%s:%u:%u\",\"webhook\":\"%s\"}",
	    trigger, epoch, uid, webhook);

	ck_assert_msg(outbox_put(ob, webhook, trigger, epoch, uid, body,
	    strlen(body), &error) == 0, "put: %s", error);
	free(body);
}

static void
sync_commit(struct outbox *ob)
{
	char *error = NULL;

	ck_assert_msg(outbox_sync(ob, NULL, &error) == 0, "sync: %s", error);
	outbox_commit(ob, NULL);
}

static struct outbox_queue *
find_queue(struct outbox *ob, const char *webhook, const char *trigger)
{
	size_t i;

	for (i = 0; i < outbox_queue_count(ob); i++) {
		struct outbox_queue *q = outbox_queue_get(ob, i);

		if (strcmp(outbox_queue_webhook(q), webhook) == 0 &&
		    strcmp(outbox_queue_trigger(q), trigger) == 0)
			return q;
	}
	return NULL;
}

/* Pops the head (remove), checking it is (epoch, uid). */
static void
pop_expect(struct outbox_queue *q, uint32_t epoch, uint32_t uid)
{
	char *error = NULL;
	uint64_t key;

	ck_assert(outbox_queue_head(q, &key));
	ck_assert_uint_eq(OUTBOX_KEY_EPOCH(key), epoch);
	ck_assert_uint_eq(OUTBOX_KEY_UID(key), uid);
	ck_assert_int_eq(outbox_remove(q, key, &error), 0);
}

START_TEST(test_key_name)
{
	char buf[OUTBOX_KEY_NAME_LEN];

	outbox_key_name(OUTBOX_KEY(3, 42), buf);
	ck_assert_str_eq(buf, "00000003-0000000042");
	outbox_key_name(OUTBOX_KEY(0xdeadbeef, UINT32_MAX), buf);
	ck_assert_str_eq(buf, "deadbeef-4294967295");
	ck_assert(OUTBOX_KEY(2, 0) > OUTBOX_KEY(1, UINT32_MAX));
}
END_TEST

START_TEST(test_put_sync_commit)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *body;
	size_t len;
	uint64_t key;

	ob = outbox_open(tmpdir, &error);
	ck_assert_msg(ob != NULL, "%s", error);
	ck_assert(exists("outbox"));
	ck_assert(exists("dead"));
	put(ob, "crm", "inbox", 1, 5);
	put(ob, "crm", "inbox", 1, 6);
	put(ob, "log", "inbox", 1, 5);
	/* Written but neither final nor deliverable: one segment per queue. */
	ck_assert(exists("outbox/crm/inbox/0000000000000001.seg.tmp"));
	ck_assert(!exists("outbox/crm/inbox/0000000000000001.seg"));
	ck_assert(exists("outbox/log/inbox/0000000000000001.seg.tmp"));
	ck_assert_int_eq(count_files("outbox", "crm", "inbox"), 1);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 0);
	/* Commit without sync changes nothing. */
	outbox_commit(ob, NULL);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 0);
	ck_assert_int_eq(outbox_sync(ob, NULL, &error), 0);
	ck_assert(exists("outbox/crm/inbox/0000000000000001.seg"));
	ck_assert(!exists("outbox/crm/inbox/0000000000000001.seg.tmp"));
	ck_assert_int_eq(file_byte("outbox/crm/inbox/0000000000000001.seg", 0), 'P');
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 0);
	outbox_commit(ob, NULL);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 3);
	ck_assert_uint_eq(outbox_depth(ob, "crm", NULL), 2);
	ck_assert_uint_eq(outbox_depth(ob, "log", NULL), 1);
	ck_assert_uint_eq(outbox_depth(ob, NULL, "inbox"), 3);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "inbox"), 2);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "other"), 0);
	ck_assert_uint_eq(outbox_depth(ob, "nope", NULL), 0);
	/* An empty sync is fine. */
	ck_assert_int_eq(outbox_sync(ob, NULL, &error), 0);

	q = find_queue(ob, "crm", "inbox");
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_eq(outbox_queue_depth(q), 2);
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "{\"id\":\"inbox:1:5\",\"webhook\":\"crm\"}");
	ck_assert_uint_eq(len, strlen(body));
	free(body);
	ck_assert_int_eq(outbox_remove(q, key, &error), 0);
	/* done: marked in place, the segment stays for (1, 6) */
	ck_assert_int_eq(file_byte("outbox/crm/inbox/0000000000000001.seg", 0), 'D');
	ck_assert_uint_eq(outbox_depth(ob, "crm", NULL), 1);
	/* Removing a key twice is harmless. */
	ck_assert_int_eq(outbox_remove(q, key, &error), 0);
	ck_assert_uint_eq(outbox_depth(ob, "crm", NULL), 1);
	/* The mark holds across a restart; reading a vanished file says
	 * ENOENT. */
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, "crm", NULL), 1);
	q = find_queue(ob, "crm", "inbox");
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(OUTBOX_KEY_UID(key), 6);
	{
		char *path = xasprintf("%s/outbox/crm/inbox/0000000000000001.seg", tmpdir);

		ck_assert_int_eq(unlink(path), 0);
		free(path);
	}
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_nonnull(error);
	free(error);
	outbox_free(&ob);
	ck_assert_ptr_null(ob);
}
END_TEST

START_TEST(test_order_across_epochs)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	/* Two batches, committed out of order and across an epoch change:
	 * uid 0 of epoch 2 is the mailbox.reset event. */
	put(ob, "crm", "t", 2, 3);
	put(ob, "crm", "t", 1, 10);
	put(ob, "crm", "t", 2, 0);
	sync_commit(ob);
	put(ob, "crm", "t", 1, 5);
	put(ob, "crm", "t", 1, 4000000000u);
	put(ob, "crm", "t", 3, 1);
	sync_commit(ob);
	q = find_queue(ob, "crm", "t");
	ck_assert_uint_eq(outbox_queue_depth(q), 6);
	pop_expect(q, 1, 5);
	pop_expect(q, 1, 10);
	pop_expect(q, 1, 4000000000u);
	/* Insertions before the head after it moved. */
	put(ob, "crm", "t", 1, 1);
	sync_commit(ob);
	pop_expect(q, 1, 1);
	pop_expect(q, 2, 0);
	pop_expect(q, 2, 3);
	pop_expect(q, 3, 1);
	ck_assert_uint_eq(outbox_queue_depth(q), 0);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	outbox_free(&ob);
}
END_TEST

START_TEST(test_idempotent_put)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *body;
	size_t len;
	uint64_t key;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 0, 7, "first", 5, &error), 0);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 0, 7, "second!", 7, &error), 0);
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	q = find_queue(ob, "crm", "t");
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "second!");
	free(body);
	/* Re-put of a committed key (a poll after a crash) replaces it. */
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 0, 7, "third", 5, &error), 0);
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "third");
	free(body);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 1);
	outbox_free(&ob);
}
END_TEST

START_TEST(test_big_batch_syncfs)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL;
	uint32_t uid;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	/* more segments than OUTBOX_SYNCFS_MIN: one per trigger */
	for (uid = 200; uid > 0; uid--)
		put(ob, "crm", uid % 10 == 0 ? "big" : "other", 1, uid);
	for (uid = 1; uid <= OUTBOX_SYNCFS_MIN + 1; uid++) {
		char trigger[16];

		snprintf(trigger, sizeof(trigger), "t%u", uid);
		put(ob, "crm", trigger, 1, 1);
	}
	sync_commit(ob);
	ck_assert_int_eq(count_files("outbox", "crm", "big"), 1);
	ck_assert_int_eq(count_files("outbox", "crm", "other"), 1);
	ck_assert_int_eq(count_files("outbox", "crm", "t9"), 1);
	q = find_queue(ob, "crm", "other");
	ck_assert_uint_eq(outbox_queue_depth(q), 180);
	for (uid = 1; uid <= 200; uid++) {
		if (uid % 10 != 0)
			pop_expect(q, 1, uid);
	}
	ck_assert_int_eq(count_files("outbox", "crm", "other"), 0);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 20 + OUTBOX_SYNCFS_MIN + 1);
	outbox_free(&ob);
}
END_TEST

START_TEST(test_reopen_after_crash)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *path;
	FILE *f;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 9);
	put(ob, "crm", "t", 1, 3);
	put(ob, "ops", "u", 4, 1);
	sync_commit(ob);
	/* Synced but not committed: durable, so deliverable after restart. */
	put(ob, "crm", "t", 1, 12);
	ck_assert_int_eq(outbox_sync(ob, NULL, &error), 0);
	/* Put, never synced: lost with the crash. */
	put(ob, "crm", "t", 1, 20);
	ck_assert(exists("outbox/crm/t/0000000000000003.seg.tmp"));
	/* Debris: a stray tmp and a file that is not an event. */
	path = xasprintf("%s/outbox/crm/t/00000001-0000000099.json.tmp", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"id\":", f);
	fclose(f);
	free(path);
	path = xasprintf("%s/outbox/crm/t/README", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	free(path);
	outbox_free(&ob);

	ob = outbox_open(tmpdir, &error);
	ck_assert_msg(ob != NULL, "%s", error);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 4);
	ck_assert_uint_eq(outbox_depth(ob, "ops", "u"), 1);
	ck_assert(!exists("outbox/crm/t/0000000000000003.seg.tmp"));
	ck_assert(!exists("outbox/crm/t/00000001-0000000099.json.tmp"));
	ck_assert(exists("outbox/crm/t/README"));
	q = find_queue(ob, "crm", "t");
	ck_assert_ptr_nonnull(q);
	pop_expect(q, 1, 3);
	pop_expect(q, 1, 9);
	pop_expect(q, 1, 12);
	ck_assert_uint_eq(outbox_queue_depth(q), 0);
	outbox_free(&ob);
}
END_TEST

START_TEST(test_bury)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *path = NULL, *data;
	size_t len;
	uint64_t key;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 2, 8);
	put(ob, "crm", "t", 2, 9);
	sync_commit(ob);
	q = find_queue(ob, "crm", "t");
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_bury(ob, q, key,
	    "2026-01-01T00:00:00Z HTTP 410 gone\r\nforever\x01\xff", &path, &error), 0);
	ck_assert_ptr_nonnull(path);
	ck_assert_ptr_nonnull(strstr(path, "/dead/crm/t/00000002-0000000008.json"));
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	ck_assert_str_eq(data, "{\"id\":\"t:2:8\",\"webhook\":\"crm\"}");
	free(data);
	free(path);
	ck_assert_int_eq(file_byte("outbox/crm/t/0000000000000001.seg", 0), 'D');
	path = xasprintf("%s/dead/crm/t/00000002-0000000008.reason", tmpdir);
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	/* One line, control bytes blanked, invalid UTF-8 replaced. */
	ck_assert_str_eq(data, "2026-01-01T00:00:00Z HTTP 410 gone  forever \xef\xbf\xbd\n");
	free(data);
	free(path);
	ck_assert_uint_eq(outbox_queue_depth(q), 1);
	pop_expect(q, 2, 9);
	/* Nothing of the dead letter is left in the outbox after a restart. */
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 0);
	ck_assert_int_eq(count_files("dead", "crm", "t"), 2);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	outbox_free(&ob);
}
END_TEST

START_TEST(test_put_fails_cleanly)
{
	struct outbox *ob;
	char *error = NULL, *path, *under, big[8192];
	struct rlimit old, rl;
	FILE *f;

	/* An outbox below a regular file cannot be opened. */
	path = xasprintf("%s/plain", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	under = xasprintf("%s/state", path);
	ck_assert_ptr_null(outbox_open(under, &error));
	ck_assert_ptr_nonnull(error);
	free(error);
	error = NULL;
	free(under);
	free(path);

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	/* A webhook directory that is a regular file. */
	path = xasprintf("%s/outbox/blocked", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	free(path);
	ck_assert_int_eq(outbox_put(ob, "blocked", "t", 1, 1, "{}", 2, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "Not a directory"));
	free(error);
	error = NULL;

	/* A write that fails half-way (the file size limit stands in for a
	 * full disk): nothing of it may remain. */
	memset(big, 'x', sizeof(big));
	put(ob, "crm", "t", 1, 1);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = 4096;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 2, big, sizeof(big), &error), -1);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_ptr_nonnull(strstr(error, "File too large"));
	free(error);
	error = NULL;
	/* The rest of the batch is unharmed, and no torn record follows it:
	 * after a restart the segment holds one good record (a bad one would
	 * keep the file for ever). */
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 1);
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	pop_expect(find_queue(ob, "crm", "t"), 1, 1);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	/* The first put of a segment that fails leaves no file at all. */
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 2, big, sizeof(big), &error), -1);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	free(error);
	error = NULL;
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	ck_assert_int_eq(outbox_sync(ob, NULL, &error), 0);
	put(ob, "crm", "t", 1, 1);
	sync_commit(ob);

	/* Names that would escape or are empty. */
	ck_assert_int_eq(outbox_put(ob, "..", "t", 1, 1, "{}", 2, &error), -1);
	free(error);
	error = NULL;
	ck_assert_int_eq(outbox_put(ob, "crm", "a/b", 1, 1, "{}", 2, &error), -1);
	free(error);
	error = NULL;
	ck_assert_int_eq(outbox_put(ob, "", "t", 1, 1, "{}", 2, &error), -1);
	free(error);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	outbox_free(&ob);
}
END_TEST

START_TEST(test_queue_dir_recreated)
{
	struct outbox *ob;
	char *error = NULL, *cmd;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 1);
	sync_commit(ob);
	/* An operator removes the webhook's directory while we run. */
	cmd = xasprintf("rm -rf '%s/outbox/crm'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	put(ob, "crm", "t", 1, 2);
	sync_commit(ob);
	ck_assert(exists("outbox/crm/t/0000000000000002.seg"));
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 1);
	outbox_free(&ob);
}
END_TEST

/* A window synced but whose trigger state was never written: held back at
 * start for that trigger only, every webhook; a commit of the same key
 * takes the held one's place (one entry), release brings back the rest. */
START_TEST(test_hold_and_release)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 3);
	put(ob, "crm", "t", 1, 7);
	put(ob, "crm", "t", 1, 8);
	put(ob, "crm", "t", 2, 0);      /* a mailbox.reset of epoch 2 */
	put(ob, "ops", "t", 1, 7);
	put(ob, "ops", "t", 1, 8);
	put(ob, "crm", "u", 1, 9);
	sync_commit(ob);
	outbox_free(&ob);

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_hold_after(ob, "t", OUTBOX_KEY(1, 7)), 3);
	ck_assert_uint_eq(outbox_hold_after(ob, "t", OUTBOX_KEY(1, 7)), 0);
	ck_assert_uint_eq(outbox_hold_after(ob, "nope", 0), 0);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 2);
	ck_assert_uint_eq(outbox_depth(ob, "ops", "t"), 1);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "u"), 1);
	/* held, not gone */
	ck_assert(exists("outbox/crm/t/0000000000000001.seg"));
	ck_assert(exists("outbox/ops/t/0000000000000001.seg"));
	/* the poll writes (1, 8) again for both webhooks */
	put(ob, "crm", "t", 1, 8);
	put(ob, "ops", "t", 1, 8);
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 3);
	ck_assert_uint_eq(outbox_depth(ob, "ops", "t"), 2);
	/* (1, 8) of crm is not doubled by a second commit either */
	put(ob, "crm", "t", 1, 8);
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 3);
	/* then releases the rest: (2, 0) comes back, (1, 8) is not doubled */
	ck_assert_uint_eq(outbox_release(ob, "t"), 1);
	ck_assert_uint_eq(outbox_release(ob, "t"), 0);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 4);
	ck_assert_uint_eq(outbox_depth(ob, "ops", "t"), 2);
	q = find_queue(ob, "crm", "t");
	pop_expect(q, 1, 3);
	pop_expect(q, 1, 7);
	pop_expect(q, 1, 8);
	pop_expect(q, 2, 0);
	ck_assert_uint_eq(outbox_queue_depth(q), 0);
	/* the segments of the replaced records are gone with the last one */
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	q = find_queue(ob, "ops", "t");
	pop_expect(q, 1, 7);
	pop_expect(q, 1, 8);
	ck_assert_int_eq(count_files("outbox", "ops", "t"), 0);
	outbox_free(&ob);
}
END_TEST

/* A held key below a committed one (its mail expunged, never written
 * again) goes with that commit, in key order, not after it. */
START_TEST(test_held_below_a_commit_goes_in_order)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 4);
	put(ob, "crm", "t", 1, 5);
	put(ob, "crm", "t", 1, 9);
	sync_commit(ob);
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_hold_after(ob, "t", OUTBOX_KEY(1, 3)), 3);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 0);
	put(ob, "crm", "t", 1, 5);      /* 4 is gone from the server */
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t"), 2);
	q = find_queue(ob, "crm", "t");
	pop_expect(q, 1, 4);
	pop_expect(q, 1, 5);
	ck_assert_uint_eq(outbox_release(ob, "t"), 1);
	pop_expect(q, 1, 9);
	outbox_free(&ob);
}
END_TEST

/* What a restart finds (no clean shutdown: outbox_free writes nothing):
 * delivered records stay delivered, a key written again is there once
 * with its last body, one delivered and then written again is queued. */
START_TEST(test_restart_sees_marks_and_replacements)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *body;
	size_t len;
	uint64_t key;
	uint32_t uid;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	for (uid = 1; uid <= 5; uid++)
		put(ob, "crm", "t", 1, uid);
	sync_commit(ob);
	q = find_queue(ob, "crm", "t");
	pop_expect(q, 1, 1);
	pop_expect(q, 1, 2);
	/* (1, 2) delivered, then written again (a poll after a crash);
	 * (1, 4) replaced before delivery */
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 2, "two again", 9, &error), 0);
	ck_assert_int_eq(outbox_put(ob, "crm", "t", 1, 4, "four again", 10, &error), 0);
	sync_commit(ob);
	ck_assert_uint_eq(outbox_queue_depth(q), 4);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 2);
	outbox_free(&ob);

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	q = find_queue(ob, "crm", "t");
	ck_assert_uint_eq(outbox_queue_depth(q), 4);
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "two again");
	free(body);
	pop_expect(q, 1, 2);
	pop_expect(q, 1, 3);
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "four again");
	free(body);
	pop_expect(q, 1, 4);
	/* every record of the second segment delivered: its file goes */
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 1);
	pop_expect(q, 1, 5);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	outbox_free(&ob);
}
END_TEST

/* A "<key>.json" of the layout before segments is delivered in key order
 * with the rest; a segment damaged on disk keeps its good records and is
 * never removed; a record that changed under the index is not sent. */
START_TEST(test_legacy_and_damaged_files)
{
	static const char good[] = "P 00000001-0000000003 0000000005\nthree\n";
	static const char bad[] = "P 00000001-0000000004 0000000099\nfour\n";
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *body, *seg;
	size_t len;
	uint64_t key;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 1);
	put(ob, "crm", "t", 1, 6);
	sync_commit(ob);
	outbox_free(&ob);
	write_rel("outbox/crm/t/00000001-0000000002.json", "{\"legacy\":2}", 12);
	seg = xasprintf("%s%s", good, bad);
	write_rel("outbox/crm/t/00000000000000ff.seg", seg, strlen(seg));
	free(seg);
	write_rel("outbox/crm/t/00000000-0000000009.json.tmp", "x", 1);

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	q = find_queue(ob, "crm", "t");
	ck_assert_uint_eq(outbox_queue_depth(q), 4);
	pop_expect(q, 1, 1);
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "{\"legacy\":2}");
	free(body);
	pop_expect(q, 1, 2);
	ck_assert(!exists("outbox/crm/t/00000001-0000000002.json"));
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), 0);
	ck_assert_str_eq(body, "three");
	free(body);
	pop_expect(q, 1, 3);
	/* the damaged segment stays, with its record marked done */
	ck_assert(exists("outbox/crm/t/00000000000000ff.seg"));
	ck_assert_int_eq(file_byte("outbox/crm/t/00000000000000ff.seg", 0), 'D');
	/* a record overwritten behind the index is refused (EBADMSG) */
	write_rel("outbox/crm/t/0000000000000001.seg", "garbage", 7);
	ck_assert(outbox_queue_head(q, &key));
	ck_assert_uint_eq(OUTBOX_KEY_UID(key), 6);
	ck_assert_int_eq(outbox_read(q, key, &body, &len, &error), -1);
	ck_assert_int_eq(errno, EBADMSG);
	free(error);
	error = NULL;
	/* buried, it leaves the reason only */
	ck_assert_int_eq(outbox_bury(ob, q, key, "unreadable", &body, &error), 0);
	ck_assert_ptr_nonnull(strstr(body, "00000001-0000000006.reason"));
	free(body);
	ck_assert_int_eq(count_files("dead", "crm", "t"), 1);
	ck_assert_uint_eq(outbox_queue_depth(q), 0);
	/* and its segment is not thrown away */
	ck_assert(exists("outbox/crm/t/0000000000000001.seg"));
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 0);
	outbox_free(&ob);
}
END_TEST

/*
 * Fixed bug (outbox_seg.c outbox_seg_copy): any failure to read a body
 * while burying it (EMFILE here, EIO) counted as "unreadable": the dead
 * letter got its reason and no body, the record was marked done, and the
 * next start removed the segment. Now the event stays queued.
 */
START_TEST(test_bury_transient_read_error)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *path = NULL, *data;
	struct rlimit old, rl;
	uint64_t key;
	size_t len;
	int lowest;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 1);
	sync_commit(ob);
	q = find_queue(ob, "crm", "t");
	ck_assert(outbox_queue_head(q, &key));
	outbox_queue_close(q);
	/* One descriptor left: the dead letter's file gets it, opening the
	 * segment to read the body fails with EMFILE. */
	lowest = dup(STDIN_FILENO);
	ck_assert_int_ge(lowest, 0);
	close(lowest);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = (rlim_t)lowest + 1;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(outbox_bury(ob, q, key, "HTTP 410", &path, &error), -1);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_ptr_null(path);
	ck_assert_msg(strstr(error, "Too many open files") != NULL, "%s", error);
	free(error);
	error = NULL;
	/* still queued, pending on disk, nothing in dead letters */
	ck_assert_uint_eq(outbox_queue_depth(q), 1);
	ck_assert_int_eq(file_byte("outbox/crm/t/0000000000000001.seg", 0), 'P');
	ck_assert_int_eq(count_files("dead", "crm", "t"), 0);
	/* once it passes, the dead letter has the body */
	ck_assert_int_eq(outbox_bury(ob, q, key, "HTTP 410", &path, &error), 0);
	ck_assert_int_eq(read_file(path, 4096, &data, &len), 0);
	ck_assert_str_eq(data, "{\"id\":\"t:1:1\",\"webhook\":\"crm\"}");
	free(data);
	free(path);
	ck_assert_uint_eq(outbox_queue_depth(q), 0);
	outbox_free(&ob);
}
END_TEST

/* A key written again into a newer segment, delivered from there (that
 * segment goes with it) while the older one lives on for other events: a
 * restart must not find the older copy pending, even after a clean stop. */
START_TEST(test_replaced_record_stays_replaced)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 1);
	put(ob, "crm", "t", 1, 2);
	put(ob, "crm", "t", 1, 3);
	sync_commit(ob);
	put(ob, "crm", "t", 1, 2);
	sync_commit(ob);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 2);
	q = find_queue(ob, "crm", "t");
	pop_expect(q, 1, 1);
	pop_expect(q, 1, 2);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 1);
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	pop_expect(find_queue(ob, "crm", "t"), 1, 3);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);

	/* The same with a crash between the newer copy's sync and its commit
	 * (which marks the older one): the restart marks it. */
	put(ob, "crm", "t", 1, 1);
	put(ob, "crm", "t", 1, 2);
	sync_commit(ob);
	put(ob, "crm", "t", 1, 1);
	ck_assert_int_eq(outbox_sync(ob, NULL, &error), 0);
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 2);
	pop_expect(find_queue(ob, "crm", "t"), 1, 1);
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	pop_expect(find_queue(ob, "crm", "t"), 1, 2);
	ck_assert_int_eq(count_files("outbox", "crm", "t"), 0);
	outbox_free(&ob);
}
END_TEST

/* Two triggers polling side by side: one's sync and commit leave the
 * other's puts alone; a failed poll's puts are dropped, whole or from a
 * key on (a put that failed for one webhook), and never reach a restart. */
START_TEST(test_per_trigger_sync_and_drop)
{
	struct outbox *ob;
	char *error = NULL;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t1", 1, 1);
	put(ob, "crm", "t2", 1, 1);
	put(ob, "crm", "t1", 1, 2);
	ck_assert_int_eq(outbox_sync(ob, "t2", &error), 0);
	outbox_commit(ob, "t2");
	ck_assert_uint_eq(outbox_depth(ob, NULL, "t2"), 1);
	ck_assert_uint_eq(outbox_depth(ob, NULL, "t1"), 0);
	/* t1's poll fails: its puts go, file and all */
	outbox_drop(ob, "t1", 0);
	ck_assert_int_eq(count_files("outbox", "crm", "t1"), 0);
	ck_assert_int_eq(outbox_sync(ob, NULL, &error), 0);
	outbox_commit(ob, NULL);
	ck_assert_uint_eq(outbox_depth(ob, NULL, "t1"), 0);

	/* t1 again: (1, 1) for both webhooks, (1, 2) for crm only, its put
	 * for ops failed: (1, 2) is dropped, (1, 1) kept */
	put(ob, "crm", "t1", 1, 1);
	put(ob, "ops", "t1", 1, 1);
	put(ob, "crm", "t1", 1, 2);
	outbox_drop(ob, "t1", OUTBOX_KEY(1, 2));
	ck_assert_int_eq(outbox_sync(ob, "t1", &error), 0);
	outbox_commit(ob, "t1");
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t1"), 1);
	ck_assert_uint_eq(outbox_depth(ob, "ops", "t1"), 1);
	outbox_free(&ob);
	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t1"), 1);
	pop_expect(find_queue(ob, "crm", "t1"), 1, 1);
	ck_assert_uint_eq(outbox_depth(ob, "crm", "t2"), 1);
	outbox_free(&ob);
}
END_TEST

/* A segment removed before its sync: the sync fails (the trigger must not
 * save its state past those events) and forgets them; the next put and
 * sync work. */
START_TEST(test_vanished_segment_fails_the_sync)
{
	struct outbox *ob;
	char *error = NULL, *path;

	ob = outbox_open(tmpdir, &error);
	ck_assert_ptr_nonnull(ob);
	put(ob, "crm", "t", 1, 1);
	path = xasprintf("%s/outbox/crm/t/0000000000000001.seg.tmp", tmpdir);
	ck_assert_int_eq(unlink(path), 0);
	free(path);
	ck_assert_int_eq(outbox_sync(ob, "t", &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "vanished"));
	free(error);
	error = NULL;
	outbox_commit(ob, "t");
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 0);
	/* the queue directory itself removed: recreated by the next put */
	path = xasprintf("rm -rf '%s/outbox/crm'", tmpdir);
	ck_assert_int_eq(system(path), 0);
	free(path);
	put(ob, "crm", "t", 1, 1);
	sync_commit(ob);
	ck_assert_uint_eq(outbox_depth(ob, NULL, NULL), 1);
	pop_expect(find_queue(ob, "crm", "t"), 1, 1);
	outbox_free(&ob);
}
END_TEST

static Suite *
outbox_suite(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_key_name);
	tcase_add_test(tc, test_bury_transient_read_error);
	tcase_add_test(tc, test_put_sync_commit);
	tcase_add_test(tc, test_order_across_epochs);
	tcase_add_test(tc, test_idempotent_put);
	tcase_add_test(tc, test_big_batch_syncfs);
	tcase_add_test(tc, test_reopen_after_crash);
	tcase_add_test(tc, test_bury);
	tcase_add_test(tc, test_put_fails_cleanly);
	tcase_add_test(tc, test_hold_and_release);
	tcase_add_test(tc, test_held_below_a_commit_goes_in_order);
	tcase_add_test(tc, test_queue_dir_recreated);
	tcase_add_test(tc, test_restart_sees_marks_and_replacements);
	tcase_add_test(tc, test_legacy_and_damaged_files);
	tcase_add_test(tc, test_replaced_record_stays_replaced);
	tcase_add_test(tc, test_per_trigger_sync_and_drop);
	tcase_add_test(tc, test_vanished_segment_fails_the_sync);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(outbox_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
