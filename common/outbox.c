/*
 * outbox: see outbox.h
 *
 * Durability measurements, outbox_put x N then outbox_sync, 1.5 KiB
 * bodies, Debian 12, ext4 on a virtio disk (2 shared cores), 3 runs:
 *
 *   N = 1,000  fsync of each file + directory   sync 155-157 ms
 *              syncfs, rename, syncfs            sync  23-28 ms
 *   N = 32     fsync each 5.4 ms, syncfs 1.1-1.2 ms
 *   N = 8      fsync each 1.4-1.7 ms, syncfs 0.5-0.7 ms
 *   N = 1      fsync 0.5-0.6 ms, syncfs 0.4-0.9 ms
 *   N = 1 with 100 MB of another program's dirty data on the same file
 *   system: fsync 0.6 ms, syncfs 38.8 ms
 * (put itself: ~18-27 ms per 1,000.) With the raw syscalls the same picture:
 * for 1,000 files fsync at each put 199-333 ms, fdatasync each 170-317 ms,
 * syncfs 131-230 ms on a busier moment.
 *
 * This disk's cache makes a flush cheap (~0.15 ms); on a disk that honours
 * flushes each fsync(2) is one journal commit plus one cache flush, so N
 * files cost N commits, while syncfs(2) costs one whatever N. But syncfs
 * also writes everything else that is dirty on the file system, which is
 * why small batches (the common case: one poll, a few mails) use fsync(2):
 * their cost stays bounded by our own data. Since Linux 5.8 syncfs reports
 * write-back errors of the file system that happened since the descriptor
 * was opened; the outbox keeps one descriptor on its directory for that.
 *
 * Correctness: phase 1 makes the .tmp data durable, phase 2 renames, phase
 * 3 makes the directory entries durable; after a crash a name either points
 * at complete data or does not exist (a crash before phase 3 may keep or
 * lose the rename, both fine since the put was not yet acknowledged).
 */
#include "outbox.h"
#include "outbox_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static bool
name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > OUTBOX_NAME_MAX)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strchr(name, '/') == NULL;
}

void
outbox_key_name(uint64_t key, char buf[static OUTBOX_KEY_NAME_LEN])
{
	snprintf(buf, OUTBOX_KEY_NAME_LEN, "%08x-%010u",
	    (unsigned)OUTBOX_KEY_EPOCH(key), (unsigned)OUTBOX_KEY_UID(key));
}

/* Parses "%08x-%010u.json" (exactly); returns 0 and *key_r, or -1. */
static int
key_parse(const char *name, uint64_t *key_r)
{
	uint32_t epoch = 0, uid;
	size_t i;

	if (strlen(name) != 19 + 5 || strcmp(name + 19, ".json") != 0 ||
	    name[8] != '-')
		return -1;
	for (i = 0; i < 8; i++) {
		char c = name[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1;
		epoch = epoch << 4 | d;
	}
	if (parse_u32_n(name + 9, 10, &uid) < 0)
		return -1;
	*key_r = OUTBOX_KEY(epoch, uid);
	return 0;
}

char *
outbox_event_path(const struct outbox_queue *q, uint64_t key, const char *suffix)
{
	char name[OUTBOX_KEY_NAME_LEN];

	outbox_key_name(key, name);
	return xasprintf("%s/%s.json%s", q->dir, name, suffix);
}

static void
list_add(struct outbox_list *l, struct outbox_queue *q, uint64_t key)
{
	if (l->count == l->cap) {
		l->cap = l->cap == 0 ? 16 : l->cap * 2;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->count].q = q;
	l->v[l->count].key = key;
	l->v[l->count].gone = false;
	l->count++;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct outbox_entry *x = a, *y = b;

	if (x->q != y->q)
		return (uintptr_t)x->q < (uintptr_t)y->q ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return 0;
}

/* Sorts by (queue, key) and removes duplicates. */
static void
list_unique(struct outbox_list *l)
{
	size_t i, n = 0;

	if (l->count < 2)
		return;
	qsort(l->v, l->count, sizeof(*l->v), entry_cmp);
	for (i = 0; i < l->count; i++) {
		if (n > 0 && entry_cmp(&l->v[n - 1], &l->v[i]) == 0) {
			l->v[n - 1].gone = l->v[n - 1].gone && l->v[i].gone;
			continue;
		}
		l->v[n++] = l->v[i];
	}
	l->count = n;
}

/* First index in [head, end) whose key is >= key. */
static size_t
queue_lower_bound(const struct outbox_queue *q, uint64_t key)
{
	size_t lo = q->head, hi = q->end;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (q->keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
queue_insert(struct outbox_queue *q, uint64_t key)
{
	size_t pos;

	if (q->end > q->head && q->keys[q->end - 1] < key) {
		pos = q->end;
	} else {
		pos = queue_lower_bound(q, key);
		if (pos < q->end && q->keys[pos] == key)
			return;
		if (pos == q->head && q->head > 0) {
			q->keys[--q->head] = key;
			return;
		}
	}
	if (q->end == q->cap) {
		if (q->head > 0) {
			memmove(q->keys, q->keys + q->head,
			    (q->end - q->head) * sizeof(*q->keys));
			pos -= q->head;
			q->end -= q->head;
			q->head = 0;
		} else {
			q->cap = q->cap == 0 ? 16 : q->cap * 2;
			q->keys = xreallocarray(q->keys, q->cap, sizeof(*q->keys));
		}
	}
	memmove(q->keys + pos + 1, q->keys + pos, (q->end - pos) * sizeof(*q->keys));
	q->keys[pos] = key;
	q->end++;
}

void
outbox_queue_forget(struct outbox_queue *q, uint64_t key)
{
	size_t pos = queue_lower_bound(q, key);

	if (pos == q->end || q->keys[pos] != key)
		return;
	if (pos == q->head) {
		q->head++;
	} else {
		memmove(q->keys + pos, q->keys + pos + 1,
		    (q->end - pos - 1) * sizeof(*q->keys));
		q->end--;
	}
	if (q->head == q->end) {
		q->head = q->end = 0;
	} else if (q->head > 1024 && q->head > (q->end - q->head)) {
		memmove(q->keys, q->keys + q->head,
		    (q->end - q->head) * sizeof(*q->keys));
		q->end -= q->head;
		q->head = 0;
	}
}

static int
key_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static struct outbox_queue *
queue_find(const struct outbox *ob, const char *webhook, const char *trigger)
{
	size_t i;

	for (i = 0; i < ob->nqueues; i++) {
		struct outbox_queue *q = ob->queues[i];

		if (strcmp(q->webhook, webhook) == 0 &&
		    strcmp(q->trigger, trigger) == 0)
			return q;
	}
	return NULL;
}

static struct outbox_queue *
queue_get(struct outbox *ob, const char *webhook, const char *trigger)
{
	struct outbox_queue *q = queue_find(ob, webhook, trigger);

	if (q != NULL)
		return q;
	q = xcalloc(1, sizeof(*q));
	q->webhook = xstrdup(webhook);
	q->trigger = xstrdup(trigger);
	q->dir = xasprintf("%s/%s/%s", ob->outbox_dir, webhook, trigger);
	if (ob->nqueues == ob->cap) {
		ob->cap = ob->cap == 0 ? 8 : ob->cap * 2;
		ob->queues = xreallocarray(ob->queues, ob->cap, sizeof(*ob->queues));
	}
	ob->queues[ob->nqueues++] = q;
	return q;
}

static void
queue_free(struct outbox_queue *q)
{
	free(q->webhook);
	free(q->trigger);
	free(q->dir);
	free(q->keys);
	free(q->held);
	free(q);
}

/* mkdir that accepts an existing directory; *created_r says which. */
int
outbox_mkdir_one(const char *path, bool *created_r)
{
	struct stat st;

	if (mkdir(path, 0750) == 0) {
		*created_r = true;
		return 0;
	}
	if (errno != EEXIST)
		return -1;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	*created_r = false;
	return 0;
}

static int
queue_mkdir(struct outbox *ob, struct outbox_queue *q, char **error_r)
{
	char *parent;
	bool created = false, created2 = false;

	if (q->dir_ready)
		return 0;
	parent = xasprintf("%s/%s", ob->outbox_dir, q->webhook);
	if (outbox_mkdir_one(parent, &created) < 0 || outbox_mkdir_one(q->dir, &created2) < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s", q->dir,
		    strerror(errno));
		free(parent);
		return -1;
	}
	free(parent);
	q->dir_ready = true;
	q->dir_fresh = created || created2;
	return 0;
}

/*
 * Refuses a put that would leave less than OUTBOX_RESERVE bytes free on the
 * state directory's file system: what a poll queued is only safe once the
 * trigger's state is written after it, and that write must still fit, or
 * the events would hold the space the state needs for ever. A file system
 * that cannot say (no statvfs) is not checked.
 */
static int
room_check(struct outbox *ob, size_t len, char **error_r)
{
	struct statvfs sv;
	unsigned long long avail, need;

	if (fstatvfs(ob->dirfd, &sv) < 0 || sv.f_frsize == 0)
		return 0;
	avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
	/* the file's blocks, rounded up, plus the reserve */
	need = ((unsigned long long)len + sv.f_frsize - 1) / sv.f_frsize * sv.f_frsize +
	    OUTBOX_RESERVE;
	if (avail >= need)
		return 0;
	*error_r = xasprintf("outbox: cannot queue a %zu-byte event in %s: %llu "
	    "bytes free, %u kept for state files: %s", len, ob->outbox_dir, avail,
	    OUTBOX_RESERVE, strerror(ENOSPC));
	return -1;
}

int
outbox_put(struct outbox *ob, const char *webhook, const char *trigger,
    uint32_t epoch, uint32_t uid, const char *body, size_t len, char **error_r)
{
	struct outbox_queue *q;
	uint64_t key = OUTBOX_KEY(epoch, uid);
	char *tmp;
	int fd, saved;

	if (!name_ok(webhook) || !name_ok(trigger)) {
		*error_r = xasprintf("outbox: unusable webhook/trigger name \"%s\"/\"%s\"",
		    webhook, trigger);
		return -1;
	}
	if (room_check(ob, len, error_r) < 0)
		return -1;
	q = queue_get(ob, webhook, trigger);
	if (queue_mkdir(ob, q, error_r) < 0)
		return -1;
	tmp = outbox_event_path(q, key, ".tmp");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 && errno == ENOENT) {
		/* The directory was removed behind our back: recreate it. */
		q->dir_ready = false;
		if (queue_mkdir(ob, q, error_r) < 0) {
			free(tmp);
			return -1;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	}
	if (fd < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	if (write_full(fd, body, len) < 0) {
		saved = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		saved = errno;
		goto fail;
	}
	free(tmp);
	list_add(&ob->pending, q, key);
	return 0;
fail:
	unlink(tmp);
	*error_r = xasprintf("outbox: cannot write %s: %s", tmp, strerror(saved));
	free(tmp);
	return -1;
}

int
outbox_fsync_path(const char *path, bool dir)
{
	int fd, ret, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

/*
 * fsyncs the entry's .tmp file, or its final file when an earlier sync that
 * failed later on renamed it already. Both gone (removed behind our back):
 * the entry is dropped with a warning rather than failing every sync.
 */
static int
sync_entry_data(struct outbox_entry *e, char **error_r)
{
	char *path = outbox_event_path(e->q, e->key, ".tmp");
	int ret = 0;

	if (outbox_fsync_path(path, false) < 0) {
		if (errno == ENOENT) {
			free(path);
			path = outbox_event_path(e->q, e->key, "");
			if (outbox_fsync_path(path, false) == 0)
				goto out;
			if (errno == ENOENT) {
				log_warn("outbox: %s vanished before it was synced",
				    path);
				e->gone = true;
				goto out;
			}
		}
		*error_r = xasprintf("outbox: fsync %s: %s", path, strerror(errno));
		ret = -1;
	}
out:
	free(path);
	return ret;
}

static int
rename_entry(struct outbox_entry *e, char **error_r)
{
	char *tmp = outbox_event_path(e->q, e->key, ".tmp");
	char *final = outbox_event_path(e->q, e->key, "");
	struct stat st;
	int ret = 0;

	if (rename(tmp, final) < 0) {
		if (errno != ENOENT) {
			*error_r = xasprintf("outbox: rename %s: %s", tmp,
			    strerror(errno));
			ret = -1;
		} else if (stat(final, &st) < 0) {
			if (!e->gone)
				log_warn("outbox: %s vanished before it was synced",
				    final);
			e->gone = true;
		}
	}
	free(tmp);
	free(final);
	return ret;
}

static int
sync_dirs(struct outbox *ob, char **error_r)
{
	struct outbox_queue *last = NULL;
	char *parent;
	size_t i;

	for (i = 0; i < ob->pending.count; i++) {
		struct outbox_queue *q = ob->pending.v[i].q;

		if (q == last)
			continue;
		last = q;
		if (outbox_fsync_path(q->dir, true) < 0) {
			*error_r = xasprintf("outbox: fsync %s: %s", q->dir,
			    strerror(errno));
			return -1;
		}
		if (!q->dir_fresh)
			continue;
		parent = xasprintf("%s/%s", ob->outbox_dir, q->webhook);
		if (outbox_fsync_path(parent, true) < 0 ||
		    outbox_fsync_path(ob->outbox_dir, true) < 0) {
			*error_r = xasprintf("outbox: fsync %s: %s", parent,
			    strerror(errno));
			free(parent);
			return -1;
		}
		free(parent);
	}
	return 0;
}

int
outbox_sync(struct outbox *ob, char **error_r)
{
	bool use_syncfs;
	size_t i;

	if (ob->pending.count == 0)
		return 0;
	list_unique(&ob->pending);
	use_syncfs = ob->pending.count > OUTBOX_SYNCFS_MIN;
	/* 1. The data. */
	if (use_syncfs) {
		if (syncfs(ob->dirfd) < 0) {
			*error_r = xasprintf("outbox: syncfs %s: %s",
			    ob->outbox_dir, strerror(errno));
			return -1;
		}
	} else {
		for (i = 0; i < ob->pending.count; i++) {
			if (sync_entry_data(&ob->pending.v[i], error_r) < 0)
				return -1;
		}
	}
	/* 2. The names. */
	for (i = 0; i < ob->pending.count; i++) {
		if (rename_entry(&ob->pending.v[i], error_r) < 0)
			return -1;
	}
	/* 3. The directories. */
	if (use_syncfs) {
		if (syncfs(ob->dirfd) < 0) {
			*error_r = xasprintf("outbox: syncfs %s: %s",
			    ob->outbox_dir, strerror(errno));
			return -1;
		}
	} else if (sync_dirs(ob, error_r) < 0) {
		return -1;
	}
	for (i = 0; i < ob->pending.count; i++) {
		ob->pending.v[i].q->dir_fresh = false;
		if (!ob->pending.v[i].gone)
			list_add(&ob->synced, ob->pending.v[i].q,
			    ob->pending.v[i].key);
	}
	ob->pending.count = 0;
	return 0;
}

void
outbox_commit(struct outbox *ob)
{
	size_t i;

	for (i = 0; i < ob->synced.count; i++) {
		struct outbox_queue *q = ob->synced.v[i].q;
		uint64_t key = ob->synced.v[i].key;
		size_t k;

		queue_insert(q, key);
		/* held events up to this key go now, in key order with it: the
		 * same key was written again (one entry), a smaller one was not
		 * (its mail expunged meanwhile) but is owed before this one */
		for (k = 0; k < q->nheld;) {
			if (q->held[k] <= key) {
				queue_insert(q, q->held[k]);
				q->held[k] = q->held[--q->nheld];
			} else {
				k++;
			}
		}
	}
	ob->synced.count = 0;
}

size_t
outbox_depth(const struct outbox *ob, const char *webhook, const char *trigger)
{
	size_t i, n = 0;

	for (i = 0; i < ob->nqueues; i++) {
		const struct outbox_queue *q = ob->queues[i];

		if (webhook != NULL && strcmp(q->webhook, webhook) != 0)
			continue;
		if (trigger != NULL && strcmp(q->trigger, trigger) != 0)
			continue;
		n += q->end - q->head;
	}
	return n;
}

size_t
outbox_queue_count(const struct outbox *ob)
{
	return ob->nqueues;
}

struct outbox_queue *
outbox_queue_get(const struct outbox *ob, size_t i)
{
	return i < ob->nqueues ? ob->queues[i] : NULL;
}

const char *
outbox_queue_webhook(const struct outbox_queue *q)
{
	return q->webhook;
}

const char *
outbox_queue_trigger(const struct outbox_queue *q)
{
	return q->trigger;
}

size_t
outbox_queue_depth(const struct outbox_queue *q)
{
	return q->end - q->head;
}

bool
outbox_queue_head(const struct outbox_queue *q, uint64_t *key_r)
{
	if (q->head == q->end)
		return false;
	*key_r = q->keys[q->head];
	return true;
}

int
outbox_read(const struct outbox_queue *q, uint64_t key, char **body_r,
    size_t *len_r, char **error_r)
{
	char *path = outbox_event_path(q, key, "");
	int saved;

	if (read_file(path, OUTBOX_MAX_BODY, body_r, len_r) < 0) {
		saved = errno;
		*error_r = xasprintf("cannot read %s: %s", path, strerror(saved));
		free(path);
		errno = saved;
		return -1;
	}
	free(path);
	return 0;
}

int
outbox_remove(struct outbox_queue *q, uint64_t key, char **error_r)
{
	char *path = outbox_event_path(q, key, "");
	int ret = 0;

	outbox_queue_forget(q, key);
	if (unlink(path) < 0 && errno != ENOENT) {
		*error_r = xasprintf("outbox: cannot remove %s: %s", path,
		    strerror(errno));
		ret = -1;
	}
	free(path);
	return ret;
}

size_t
outbox_hold_after(struct outbox *ob, const char *trigger, uint64_t after)
{
	size_t i, held = 0;

	for (i = 0; i < ob->nqueues; i++) {
		struct outbox_queue *q = ob->queues[i];

		if (strcmp(q->trigger, trigger) != 0)
			continue;
		/* keys are sorted: the ones above after are at the end */
		while (q->end > q->head && q->keys[q->end - 1] > after) {
			if (q->nheld == q->held_cap) {
				q->held_cap = q->held_cap == 0 ? 16 : q->held_cap * 2;
				q->held = xreallocarray(q->held, q->held_cap, sizeof(*q->held));
			}
			q->held[q->nheld++] = q->keys[--q->end];
			held++;
		}
	}
	return held;
}

size_t
outbox_release(struct outbox *ob, const char *trigger)
{
	size_t i, k, released = 0;

	for (i = 0; i < ob->nqueues; i++) {
		struct outbox_queue *q = ob->queues[i];

		if (q->nheld == 0 || strcmp(q->trigger, trigger) != 0)
			continue;
		for (k = 0; k < q->nheld; k++)
			queue_insert(q, q->held[k]);
		released += q->nheld;
		q->nheld = 0;
	}
	return released;
}

/* Loads one queue directory: removes *.tmp, collects keys. */
static int
scan_queue(struct outbox *ob, const char *webhook, const char *trigger,
    char **error_r)
{
	struct outbox_queue *q;
	struct dirent *de;
	DIR *d;
	uint64_t key;
	size_t len;

	q = queue_get(ob, webhook, trigger);
	q->dir_ready = true;
	d = opendir(q->dir);
	if (d == NULL) {
		*error_r = xasprintf("outbox: cannot open %s: %s", q->dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
			if (unlinkat(dirfd(d), de->d_name, 0) < 0)
				log_warn("outbox: cannot remove %s/%s: %s", q->dir,
				    de->d_name, strerror(errno));
			continue;
		}
		if (key_parse(de->d_name, &key) < 0) {
			log_warn("outbox: ignoring %s/%s", q->dir, de->d_name);
			continue;
		}
		if (q->end == q->cap) {
			q->cap = q->cap == 0 ? 16 : q->cap * 2;
			q->keys = xreallocarray(q->keys, q->cap, sizeof(*q->keys));
		}
		q->keys[q->end++] = key;
	}
	closedir(d);
	if (q->end > 1)
		qsort(q->keys, q->end, sizeof(*q->keys), key_cmp);
	return 0;
}

static bool
is_dir_at(DIR *d, const struct dirent *de)
{
	struct stat st;

	if (de->d_type == DT_DIR)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode);
}

static int
scan_webhook(struct outbox *ob, const char *webhook, char **error_r)
{
	struct dirent *de;
	char *path;
	DIR *d;
	int ret = 0;

	path = xasprintf("%s/%s", ob->outbox_dir, webhook);
	d = opendir(path);
	if (d == NULL) {
		*error_r = xasprintf("outbox: cannot open %s: %s", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	while (ret == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!is_dir_at(d, de) || !name_ok(de->d_name)) {
			log_warn("outbox: ignoring %s/%s", path, de->d_name);
			continue;
		}
		ret = scan_queue(ob, webhook, de->d_name, error_r);
	}
	closedir(d);
	free(path);
	return ret;
}

static int
scan_outbox(struct outbox *ob, char **error_r)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	d = opendir(ob->outbox_dir);
	if (d == NULL) {
		*error_r = xasprintf("outbox: cannot open %s: %s", ob->outbox_dir,
		    strerror(errno));
		return -1;
	}
	while (ret == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!is_dir_at(d, de) || !name_ok(de->d_name)) {
			log_warn("outbox: ignoring %s/%s", ob->outbox_dir, de->d_name);
			continue;
		}
		ret = scan_webhook(ob, de->d_name, error_r);
	}
	closedir(d);
	return ret;
}

struct outbox *
outbox_open(const char *state_dir, char **error_r)
{
	struct outbox *ob;
	bool created;

	ob = xcalloc(1, sizeof(*ob));
	ob->dirfd = -1;
	ob->state_dir = xstrdup(state_dir);
	ob->outbox_dir = xasprintf("%s/outbox", state_dir);
	ob->dead_dir = xasprintf("%s/dead", state_dir);
	if (mkdir_p(state_dir, 0750) < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s", state_dir,
		    strerror(errno));
		goto fail;
	}
	if (outbox_mkdir_one(ob->outbox_dir, &created) < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s",
		    ob->outbox_dir, strerror(errno));
		goto fail;
	}
	if (created)
		(void)outbox_fsync_path(state_dir, true);
	if (outbox_mkdir_one(ob->dead_dir, &created) < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s",
		    ob->dead_dir, strerror(errno));
		goto fail;
	}
	if (created)
		(void)outbox_fsync_path(state_dir, true);
	ob->dirfd = open(ob->outbox_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ob->dirfd < 0) {
		*error_r = xasprintf("outbox: cannot open %s: %s",
		    ob->outbox_dir, strerror(errno));
		goto fail;
	}
	if (scan_outbox(ob, error_r) < 0)
		goto fail;
	return ob;
fail:
	outbox_free(&ob);
	return NULL;
}

void
outbox_free(struct outbox **obp)
{
	struct outbox *ob = *obp;
	size_t i;

	if (ob == NULL)
		return;
	for (i = 0; i < ob->nqueues; i++)
		queue_free(ob->queues[i]);
	free(ob->queues);
	free(ob->pending.v);
	free(ob->synced.v);
	if (ob->dirfd >= 0)
		close(ob->dirfd);
	free(ob->state_dir);
	free(ob->outbox_dir);
	free(ob->dead_dir);
	free(ob);
	*obp = NULL;
}
