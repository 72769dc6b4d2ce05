/* outbox_private.h: what outbox.c and outbox_dead.c share; not an API. */
#ifndef IMAPHOOK_OUTBOX_PRIVATE_H
#define IMAPHOOK_OUTBOX_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBOX_NAME_MAX 200
#define OUTBOX_REASON_MAX 1024

struct outbox_queue {
	char *webhook;
	char *trigger;
	char *dir;              /* state_dir/outbox/<webhook>/<trigger> */
	uint64_t *keys;         /* deliverable keys, sorted: keys[head..end) */
	size_t head;
	size_t end;
	size_t cap;
	uint64_t *held;         /* kept back: see outbox_hold_after */
	size_t nheld;
	size_t held_cap;
	bool dir_ready;         /* the directory exists (checked this run) */
	bool dir_fresh;         /* created this run: parents need an fsync */
};

/* A put not yet committed. */
struct outbox_entry {
	struct outbox_queue *q;
	uint64_t key;
	bool gone;              /* both files vanished: dropped at sync */
};

struct outbox_list {
	struct outbox_entry *v;
	size_t count;
	size_t cap;
};

struct outbox {
	char *state_dir;
	char *outbox_dir;       /* state_dir/outbox */
	char *dead_dir;         /* state_dir/dead */
	int dirfd;              /* on outbox_dir, for syncfs */
	struct outbox_queue **queues;
	size_t nqueues;
	size_t cap;
	struct outbox_list pending;     /* put, not synced */
	struct outbox_list synced;      /* synced, not committed */
};

/* state_dir/outbox/<webhook>/<trigger>/<key>.json<suffix>: malloc'd. */
char *outbox_event_path(const struct outbox_queue *q, uint64_t key, const char *suffix);
/* mkdir (mode 0750) that accepts an existing directory; *created_r says
 * which. 0, or -1 with errno. */
int outbox_mkdir_one(const char *path, bool *created_r);
/* fsync of a file or (dir) a directory by path. 0, or -1 with errno. */
int outbox_fsync_path(const char *path, bool dir);
/* Drops key from q's deliverable keys (its file is the caller's). */
void outbox_queue_forget(struct outbox_queue *q, uint64_t key);

#endif
