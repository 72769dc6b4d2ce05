/*
 * libFuzzer target for the outbox loader: what a restart reads from disk
 * (common/outbox_seg.c). The input is cut at each "\0SEG\0" into at most
 * three files of one queue, "0000000000000001.seg" to "...3.seg", written
 * in a private temporary directory (created once, removed at exit) whose
 * queue also holds one legacy event file "00000001-0000000002.json".
 *
 * Checked on every input:
 * - outbox_open() succeeds (damaged files are logged and left alone, never
 *   a refusal to start);
 * - every queued event can be taken in key order: read (0 with the body,
 *   or -1 with errno and a message) and removed or buried (every third),
 *   the depth falling by one each time;
 * - after that, a second outbox_open() of the same directory finds nothing
 *   queued: what was delivered stays delivered, whatever the files held.
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "outbox.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[64];

static void
cleanup(void)
{
	char *cmd;

	if (dir[0] == '\0')
		return;
	cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_outbox: cannot remove %s\n", dir);
	free(cmd);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/fuzz_outbox.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	atexit(cleanup);
	log_set_level(LOG_LEVEL_ERROR);         /* warnings are not findings */
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf dir/rel, without a fork per input */
static void
rm_rel(const char *rel)
{
	char *path = xasprintf("%s/%s", dir, rel);

	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT) {
		perror(path);
		abort();
	}
	free(path);
}

static void
mkdir_rel(const char *rel)
{
	char *path = xasprintf("%s/%s", dir, rel);

	if (mkdir(path, 0750) < 0 && errno != EEXIST) {
		perror(path);
		abort();
	}
	free(path);
}

static void
write_rel(const char *rel, const uint8_t *p, size_t len)
{
	char *path = xasprintf("%s/%s", dir, rel);

	if (write_file_atomic_nosync(path, p, len, 0640) < 0) {
		perror(path);
		abort();
	}
	free(path);
}

static const char SEP[] = "\0SEG\0";
#define SEP_LEN (sizeof(SEP) - 1)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outbox *ob;
	struct outbox_queue *q;
	char *error = NULL, *body, name[64];
	size_t len, depth, n = 0, part = 0;
	const uint8_t *p = data, *end = data + size, *cut;
	uint64_t key;

	rm_rel("outbox");
	rm_rel("dead");
	mkdir_rel("outbox");
	mkdir_rel("outbox/w");
	mkdir_rel("outbox/w/t");
	write_rel("outbox/w/t/00000001-0000000002.json", (const uint8_t *)"{\"id\":\"t:1:2\"}", 14);
	while (part < 3) {
		cut = memmem(p, (size_t)(end - p), SEP, SEP_LEN);
		snprintf(name, sizeof(name), "outbox/w/t/%016zx.seg", part + 1);
		write_rel(name, p, (size_t)((cut != NULL ? cut : end) - p));
		part++;
		if (cut == NULL)
			break;
		p = cut + SEP_LEN;
	}

	ob = outbox_open(dir, &error);
	if (ob == NULL) {
		fprintf(stderr, "outbox_open: %s\n", error);
		abort();
	}
	q = outbox_queue_get(ob, 0);
	if (q == NULL || outbox_queue_count(ob) != 1)
		abort();
	depth = outbox_queue_depth(q);
	while (outbox_queue_head(q, &key)) {
		if (outbox_read(q, key, &body, &len, &error) == 0) {
			if (strlen(body) > len)
				abort();        /* the length covers the body */
			free(body);
		} else {
			if (error == NULL || errno == 0)
				abort();
			free(error);
		}
		error = NULL;
		if (n % 3 == 2) {
			if (outbox_bury(ob, q, key, "fuzz", NULL, &error) < 0) {
				fprintf(stderr, "outbox_bury: %s\n", error);
				abort();
			}
		} else if (outbox_remove(q, key, &error) < 0) {
			fprintf(stderr, "outbox_remove: %s\n", error);
			abort();
		}
		n++;
		if (outbox_queue_depth(q) != depth - n)
			abort();
	}
	outbox_free(&ob);

	ob = outbox_open(dir, &error);
	if (ob == NULL)
		abort();
	if (outbox_depth(ob, NULL, NULL) != 0) {
		fprintf(stderr, "fuzz_outbox: %zu events queued again after "
		    "all were taken\n", outbox_depth(ob, NULL, NULL));
		abort();
	}
	outbox_free(&ob);
	return 0;
}
