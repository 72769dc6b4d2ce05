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
 * These were measured with one file per event; with segments a sync has
 * one file per queue it touched, so fsync(2) is the usual case and syncfs(2)
 * the one of many triggers syncing at once.
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

int
outbox_key_parse(const char *s, uint64_t *key_r)
{
	uint32_t epoch = 0, uid;
	size_t i;

	if (s[8] != '-')
		return -1;
	for (i = 0; i < 8; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1;
		epoch = epoch << 4 | d;
	}
	if (parse_u32_n(s + 9, 10, &uid) < 0)
		return -1;
	*key_r = OUTBOX_KEY(epoch, uid);
	return 0;
}

static void
list_add(struct outbox_list *l, struct outbox_queue *q,
    const struct outbox_rec *rec, size_t order)
{
	if (l->count == l->cap) {
		l->cap = l->cap == 0 ? 16 : l->cap * 2;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->count].q = q;
	l->v[l->count].rec = *rec;
	l->v[l->count].order = order;
	l->count++;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct outbox_entry *x = a, *y = b;

	if (x->q != y->q)
		return (uintptr_t)x->q < (uintptr_t)y->q ? -1 : 1;
	if (x->rec.key != y->rec.key)
		return x->rec.key < y->rec.key ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return 0;
}

/* Sorts by (queue, key) and keeps the last put of each key. */
static void
list_unique(struct outbox_list *l)
{
	size_t i, n = 0;

	if (l->count < 2)
		return;
	qsort(l->v, l->count, sizeof(*l->v), entry_cmp);
	for (i = 0; i < l->count; i++) {
		if (n > 0 && l->v[n - 1].q == l->v[i].q &&
		    l->v[n - 1].rec.key == l->v[i].rec.key) {
			(void)outbox_rec_retire(l->v[n - 1].q, &l->v[n - 1].rec, NULL);
			l->v[n - 1] = l->v[i];
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

		if (q->recs[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct outbox_rec *
outbox_queue_find(struct outbox_queue *q, uint64_t key)
{
	size_t pos = queue_lower_bound(q, key);

	return pos < q->end && q->recs[pos].key == key ? &q->recs[pos] : NULL;
}

/* Makes rec deliverable; an entry of the same key is replaced by it. */
static void
queue_insert(struct outbox_queue *q, const struct outbox_rec *rec)
{
	size_t pos;

	if (q->end > q->head && q->recs[q->end - 1].key < rec->key) {
		pos = q->end;
	} else {
		pos = queue_lower_bound(q, rec->key);
		if (pos < q->end && q->recs[pos].key == rec->key) {
			struct outbox_rec old = q->recs[pos];

			q->recs[pos] = *rec;
			if (old.seg != rec->seg || old.off != rec->off)
				(void)outbox_rec_retire(q, &old, NULL);
			return;
		}
		if (pos == q->head && q->head > 0) {
			q->recs[--q->head] = *rec;
			return;
		}
	}
	if (q->end == q->cap) {
		if (q->head > 0) {
			memmove(q->recs, q->recs + q->head,
			    (q->end - q->head) * sizeof(*q->recs));
			pos -= q->head;
			q->end -= q->head;
			q->head = 0;
		} else {
			q->cap = q->cap == 0 ? 16 : q->cap * 2;
			q->recs = xreallocarray(q->recs, q->cap, sizeof(*q->recs));
		}
	}
	memmove(q->recs + pos + 1, q->recs + pos, (q->end - pos) * sizeof(*q->recs));
	q->recs[pos] = *rec;
	q->end++;
}

void
outbox_queue_forget(struct outbox_queue *q, uint64_t key)
{
	size_t pos = queue_lower_bound(q, key);

	if (pos == q->end || q->recs[pos].key != key)
		return;
	if (pos == q->head) {
		q->head++;
	} else {
		memmove(q->recs + pos, q->recs + pos + 1,
		    (q->end - pos - 1) * sizeof(*q->recs));
		q->end--;
	}
	if (q->head == q->end) {
		q->head = q->end = 0;
	} else if (q->head > 1024 && q->head > (q->end - q->head)) {
		memmove(q->recs, q->recs + q->head,
		    (q->end - q->head) * sizeof(*q->recs));
		q->end -= q->head;
		q->head = 0;
	}
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
	q->rfd = -1;
	q->next_seq = 1;
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
	outbox_segs_free(q);
	free(q->recs);
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
	struct outbox_rec rec;
	char *err = NULL;

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
	if (outbox_seg_append(q, OUTBOX_KEY(epoch, uid), body, len, &rec, &err) < 0) {
		if (q->wseg != NULL || access(q->dir, F_OK) == 0 || errno != ENOENT) {
			*error_r = err;
			return -1;
		}
		/* The directory was removed behind our back: recreate it. */
		free(err);
		q->dir_ready = false;
		if (queue_mkdir(ob, q, error_r) < 0)
			return -1;
		if (outbox_seg_append(q, OUTBOX_KEY(epoch, uid), body, len, &rec,
		    error_r) < 0)
			return -1;
	}
	list_add(&ob->pending, q, &rec, ob->order++);
	return 0;
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

/* Moves the entries of trigger (NULL: all) from l to out (emptied first). */
static void
list_take(struct outbox_list *l, const char *trigger, struct outbox_list *out)
{
	size_t i, n = 0;

	out->count = 0;
	for (i = 0; i < l->count; i++) {
		struct outbox_entry *e = &l->v[i];

		if (trigger == NULL || strcmp(e->q->trigger, trigger) == 0)
			list_add(out, e->q, &e->rec, e->order);
		else
			l->v[n++] = *e;
	}
	l->count = n;
}

/*
 * Forgets the puts of l (all in segments still being written): their
 * segments' .tmp files go, so that nothing of them can reach a restart.
 */
static void
entries_drop(struct outbox_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		outbox_seg_abandon(l->v[i].q, l->v[i].rec.seg);
	for (i = 0; i < l->count; i++)
		outbox_seg_unref(l->v[i].q, l->v[i].rec.seg);
	l->count = 0;
}

void
outbox_drop(struct outbox *ob, const char *trigger, uint64_t from)
{
	size_t i, n = 0;

	if (ob->pending.count == 0)
		return;         /* the usual case: a trigger between polls */
	/* the puts to drop are the last ones of their segments: cut them off */
	for (i = 0; i < ob->pending.count; i++) {
		struct outbox_entry *e = &ob->pending.v[i];
		struct outbox_seg *seg = e->rec.seg;

		if (strcmp(e->q->trigger, trigger) != 0 || e->rec.key < from) {
			ob->pending.v[n++] = *e;
			continue;
		}
		if (seg->writing && !seg->broken && e->rec.off < seg->size) {
			if (ftruncate(seg->wfd, e->rec.off) == 0) {
				seg->size = e->rec.off;
			} else {
				log_warn("outbox: cannot truncate a segment of %s: %s",
				    e->q->dir, strerror(errno));
				seg->broken = true;
			}
		}
		/* the last record held: the segment, left empty, goes (a
		 * segment no longer written would go with the unref itself) */
		if (seg->writing && seg->live == 1)
			outbox_seg_abandon(e->q, seg);
		outbox_seg_unref(e->q, seg);
	}
	ob->pending.count = n;
	/* a record kept must lie before every cut (puts come in key order
	 * per trigger); if not, the segment cannot be trusted */
	for (i = 0; i < ob->pending.count; i++) {
		struct outbox_entry *e = &ob->pending.v[i];

		if (e->rec.seg->writing &&
		    e->rec.off + OUTBOX_HDR_LEN + (off_t)e->rec.len + 1 > e->rec.seg->size)
			e->rec.seg->broken = true;
	}
}

/* Renames a written segment to its final name; -1 when it is gone
 * (removed behind our back). */
static int
seg_rename(struct outbox_queue *q, struct outbox_seg *seg, char **error_r)
{
	char *tmp = outbox_seg_path(q, seg, ".tmp");
	char *final = outbox_seg_path(q, seg, "");
	int ret = 0;

	if (rename(tmp, final) < 0) {
		if (errno == ENOENT) {
			*error_r = xasprintf("outbox: %s vanished before it was "
			    "synced", tmp);
			q->dir_ready = false;   /* the directory may be gone too */
		} else {
			*error_r = xasprintf("outbox: rename %s: %s", tmp,
			    strerror(errno));
		}
		ret = -1;
		goto out;
	}
	seg->writing = false;
	close(seg->wfd);
	seg->wfd = -1;
	if (q->wseg == seg)
		q->wseg = NULL;
out:
	free(tmp);
	free(final);
	return ret;
}

static int
sync_dirs(struct outbox *ob, const struct outbox_list *l, char **error_r)
{
	struct outbox_queue *last = NULL;
	char *parent;
	size_t i;

	for (i = 0; i < l->count; i++) {
		struct outbox_queue *q = l->v[i].q;

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

/* The segments of l's puts (all still being written), each once, with
 * its queue. */
static size_t
sync_segments(const struct outbox_list *l, struct outbox_seg **segs,
    struct outbox_queue **queues)
{
	size_t i, n = 0;

	for (i = 0; i < l->count; i++) {
		struct outbox_seg *seg = l->v[i].rec.seg;

		if (!seg->mark) {
			seg->mark = true;
			queues[n] = l->v[i].q;
			segs[n++] = seg;
		}
	}
	for (i = 0; i < n; i++)
		segs[i]->mark = false;
	return n;
}

static int
do_syncfs(struct outbox *ob, char **error_r)
{
	if (syncfs(ob->dirfd) == 0)
		return 0;
	*error_r = xasprintf("outbox: syncfs %s: %s", ob->outbox_dir, strerror(errno));
	return -1;
}

/* Makes l's puts durable under their final names. */
static int
sync_list(struct outbox *ob, struct outbox_list *l, char **error_r)
{
	struct outbox_seg **segs = xreallocarray(NULL, l->count, sizeof(*segs));
	struct outbox_queue **queues = xreallocarray(NULL, l->count, sizeof(*queues));
	size_t i, nsegs = sync_segments(l, segs, queues);
	bool use_syncfs = nsegs > OUTBOX_SYNCFS_MIN;
	char *path;
	int ret = -1;

	for (i = 0; i < nsegs; i++) {
		if (segs[i]->broken) {
			path = outbox_seg_path(queues[i], segs[i], ".tmp");
			*error_r = xasprintf("outbox: %s holds a torn record that "
			    "could not be cut off", path);
			free(path);
			goto out;
		}
	}
	/* 1. The data. */
	if (use_syncfs) {
		if (do_syncfs(ob, error_r) < 0)
			goto out;
	} else {
		for (i = 0; i < nsegs; i++) {
			if (fsync(segs[i]->wfd) < 0) {
				path = outbox_seg_path(queues[i], segs[i], ".tmp");
				*error_r = xasprintf("outbox: fsync %s: %s", path,
				    strerror(errno));
				free(path);
				goto out;
			}
		}
	}
	/* 2. The names. */
	for (i = 0; i < nsegs; i++) {
		if (seg_rename(queues[i], segs[i], error_r) < 0)
			goto out;
	}
	/* 3. The directories. */
	if (use_syncfs) {
		if (do_syncfs(ob, error_r) < 0)
			goto out;
	} else if (sync_dirs(ob, l, error_r) < 0) {
		goto out;
	}
	ret = 0;
out:
	free(segs);
	free(queues);
	return ret;
}

int
outbox_sync(struct outbox *ob, const char *trigger, char **error_r)
{
	struct outbox_list work = { NULL, 0, 0 };
	size_t i;

	list_take(&ob->pending, trigger, &work);
	if (work.count == 0) {
		free(work.v);
		return 0;
	}
	list_unique(&work);
	/*
	 * Any failure forgets the puts: they are fetched again. A sync is not
	 * retried on the same data, since after a failed fsync(2) the kernel
	 * may have dropped the dirty pages, and a second fsync would say 0.
	 * Segments renamed before the failure are removed with the rest.
	 */
	if (sync_list(ob, &work, error_r) < 0) {
		for (i = 0; i < work.count; i++) {
			struct outbox_seg *seg = work.v[i].rec.seg;

			if (!seg->writing && !seg->dropped) {
				/* renamed already: nothing else is in it */
				char *path = outbox_seg_path(work.v[i].q, seg, "");

				(void)unlink(path);
				free(path);
				seg->dropped = true;
			}
		}
		entries_drop(&work);
		free(work.v);
		return -1;
	}
	for (i = 0; i < work.count; i++) {
		struct outbox_entry *e = &work.v[i];

		e->q->dir_fresh = false;
		list_add(&ob->synced, e->q, &e->rec, e->order);
	}
	free(work.v);
	return 0;
}

void
outbox_commit(struct outbox *ob, const char *trigger)
{
	struct outbox_list work = { NULL, 0, 0 };
	size_t i;

	list_take(&ob->synced, trigger, &work);
	for (i = 0; i < work.count; i++) {
		struct outbox_queue *q = work.v[i].q;
		const struct outbox_rec *rec = &work.v[i].rec;
		size_t k;

		queue_insert(q, rec);
		/* held events up to this key go now, in key order with it: the
		 * same key was written again (one entry, the new one), a smaller
		 * one was not (its mail expunged meanwhile) but is owed before
		 * this one */
		for (k = 0; k < q->nheld;) {
			if (q->held[k].key > rec->key) {
				k++;
				continue;
			}
			if (q->held[k].key == rec->key)
				(void)outbox_rec_retire(q, &q->held[k], NULL);
			else
				queue_insert(q, &q->held[k]);
			q->held[k] = q->held[--q->nheld];
		}
	}
	free(work.v);
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
	*key_r = q->recs[q->head].key;
	return true;
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
		while (q->end > q->head && q->recs[q->end - 1].key > after) {
			if (q->nheld == q->held_cap) {
				q->held_cap = q->held_cap == 0 ? 16 : q->held_cap * 2;
				q->held = xreallocarray(q->held, q->held_cap, sizeof(*q->held));
			}
			q->held[q->nheld++] = q->recs[--q->end];
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
			queue_insert(q, &q->held[k]);
		released += q->nheld;
		q->nheld = 0;
	}
	return released;
}

/* Loads one queue directory. */
static int
scan_queue(struct outbox *ob, const char *webhook, const char *trigger,
    char **error_r)
{
	struct outbox_queue *q = queue_get(ob, webhook, trigger);

	q->dir_ready = true;
	return outbox_seg_scan(q, error_r);
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
