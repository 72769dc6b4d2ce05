/*
 * outbox segments: the files of one queue (see outbox.h for the format).
 *
 * Why segments: with one file per event, every event cost a create, a
 * rename and an unlink (three directory changes, five system calls), about
 * half of the daemon's CPU in a burst (bench/README.md). A segment costs
 * one writev per put, one pread per read and one pwrite of a byte per
 * delivery; the directory changes once per sync and once per segment.
 */
#include "outbox.h"
#include "outbox_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

char *
outbox_seg_path(const struct outbox_queue *q, const struct outbox_seg *seg,
    const char *suffix)
{
	return xasprintf("%s/%s%s", q->dir, seg->name, suffix);
}

struct outbox_seg *
outbox_seg_add(struct outbox_queue *q, const char *name, uint64_t seq)
{
	struct outbox_seg *seg = xcalloc(1, sizeof(*seg));

	snprintf(seg->name, sizeof(seg->name), "%s", name);
	seg->seq = seq;
	seg->wfd = -1;
	if (q->nsegs == q->segs_cap) {
		q->segs_cap = q->segs_cap == 0 ? 4 : q->segs_cap * 2;
		q->segs = xreallocarray(q->segs, q->segs_cap, sizeof(*q->segs));
	}
	q->segs[q->nsegs++] = seg;
	if (seq >= q->next_seq)
		q->next_seq = seq + 1;
	return seg;
}

static void
seg_drop(struct outbox_queue *q, struct outbox_seg *seg)
{
	size_t i;

	if (q->rseg == seg) {
		close(q->rfd);
		q->rfd = -1;
		q->rseg = NULL;
	}
	if (q->wseg == seg)
		q->wseg = NULL;
	if (seg->wfd >= 0)
		close(seg->wfd);
	for (i = 0; i < q->nsegs; i++) {
		if (q->segs[i] == seg) {
			q->segs[i] = q->segs[--q->nsegs];
			break;
		}
	}
	free(seg);
}

void
outbox_seg_unref(struct outbox_queue *q, struct outbox_seg *seg)
{
	char *path;

	if (seg->live > 0)
		seg->live--;
	if (seg->live > 0 || seg->writing || seg->keep)
		return;
	path = outbox_seg_path(q, seg, "");
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("outbox: cannot remove %s: %s", path, strerror(errno));
	free(path);
	seg_drop(q, seg);
}

void
outbox_seg_abandon(struct outbox_queue *q, struct outbox_seg *seg)
{
	char *tmp;

	if (!seg->writing)
		return;
	tmp = outbox_seg_path(q, seg, ".tmp");
	if (unlink(tmp) < 0 && errno != ENOENT)
		log_warn("outbox: cannot remove %s: %s", tmp, strerror(errno));
	free(tmp);
	close(seg->wfd);
	seg->wfd = -1;
	seg->writing = false;
	seg->dropped = true;
	if (q->wseg == seg)
		q->wseg = NULL;
	if (seg->live == 0)
		seg_drop(q, seg);
}

void
outbox_segs_free(struct outbox_queue *q)
{
	while (q->nsegs > 0)
		seg_drop(q, q->segs[q->nsegs - 1]);
	free(q->segs);
	q->segs = NULL;
	q->segs_cap = 0;
}

void
outbox_queue_close(struct outbox_queue *q)
{
	if (q->rseg == NULL)
		return;
	close(q->rfd);
	q->rfd = -1;
	q->rseg = NULL;
}

int
outbox_seg_fd(struct outbox_queue *q, struct outbox_seg *seg)
{
	char *path;
	int fd;

	if (q->rseg == seg)
		return q->rfd;
	path = outbox_seg_path(q, seg, seg->writing ? ".tmp" : "");
	fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	free(path);
	if (fd < 0)
		return -1;
	if (q->rseg != NULL)
		close(q->rfd);
	q->rseg = seg;
	q->rfd = fd;
	return fd;
}

static int
seg_create(struct outbox_queue *q, char **error_r)
{
	char name[32], *tmp;
	struct outbox_seg *seg;
	int fd;

	snprintf(name, sizeof(name), "%016" PRIx64 ".seg", q->next_seq);
	tmp = xasprintf("%s/%s.tmp", q->dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	free(tmp);
	seg = outbox_seg_add(q, name, q->next_seq);
	seg->wfd = fd;
	seg->writing = true;
	q->wseg = seg;
	return 0;
}

/* writev of all of iov (modified), retrying short writes. */
static ssize_t
writev_full(int fd, struct iovec *iov, int n)
{
	ssize_t total = 0, w;

	while (n > 0) {
		w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		total += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return total;
}

int
outbox_seg_append(struct outbox_queue *q, uint64_t key, const char *body,
    size_t len, struct outbox_rec *rec_r, char **error_r)
{
	char hdr[OUTBOX_HDR_LEN + 1], kname[OUTBOX_KEY_NAME_LEN], *path;
	struct outbox_seg *seg;
	struct iovec iov[3];
	int saved;

	if ((unsigned long long)len > OUTBOX_LEN_MAX) {
		*error_r = xasprintf("outbox: a %zu-byte event is too large", len);
		return -1;
	}
	if (q->wseg == NULL && seg_create(q, error_r) < 0)
		return -1;
	seg = q->wseg;
	outbox_key_name(key, kname);
	snprintf(hdr, sizeof(hdr), "P %s %010llu\n", kname, (unsigned long long)len);
	iov[0].iov_base = hdr;
	iov[0].iov_len = OUTBOX_HDR_LEN;
	iov[1].iov_base = (void *)(uintptr_t)body;
	iov[1].iov_len = len;
	iov[2].iov_base = (void *)(uintptr_t)"\n";
	iov[2].iov_len = 1;
	if (writev_full(seg->wfd, iov, 3) < 0) {
		saved = errno;
		path = outbox_seg_path(q, seg, ".tmp");
		*error_r = xasprintf("outbox: cannot write %s: %s", path, strerror(saved));
		if (seg->size == 0) {
			/* nothing else in it: no file at all */
			(void)unlink(path);
			seg->writing = false;
			seg_drop(q, seg);
		} else if (ftruncate(seg->wfd, seg->size) < 0) {
			/* the torn record stays, not yet durable: this segment
			 * must not become durable with it */
			log_warn("outbox: cannot truncate %s: %s", path, strerror(errno));
		}
		free(path);
		return -1;
	}
	rec_r->key = key;
	rec_r->seg = seg;
	rec_r->off = seg->size;
	rec_r->len = len;
	seg->size += (off_t)(OUTBOX_HDR_LEN + len + 1);
	seg->live++;
	return 0;
}

/* loading */

struct scan_rec {
	struct outbox_rec rec;
	char state;
};

struct scan {
	struct scan_rec *v;
	size_t count;
	size_t cap;
};

static void
scan_add(struct scan *s, struct outbox_seg *seg, uint64_t key, off_t off,
    uint64_t len, char state)
{
	if (s->count == s->cap) {
		s->cap = s->cap == 0 ? 64 : s->cap * 2;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->count].rec.key = key;
	s->v[s->count].rec.seg = seg;
	s->v[s->count].rec.off = off;
	s->v[s->count].rec.len = len;
	s->v[s->count].state = state;
	s->count++;
}

/* By key, then in write order: the last of a key wins. */
static int
scan_cmp(const void *a, const void *b)
{
	const struct outbox_rec *x = &((const struct scan_rec *)a)->rec;
	const struct outbox_rec *y = &((const struct scan_rec *)b)->rec;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->seg->seq != y->seg->seq)
		return x->seg->seq < y->seg->seq ? -1 : 1;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return 0;
}

/* Parses a record header; 0 with *key_r, *len_r and *state_r, or -1. */
static int
hdr_parse(const char *h, uint64_t *key_r, uint64_t *len_r, char *state_r)
{
	uint64_t len = 0;
	size_t i;

	if ((h[0] != 'P' && h[0] != 'D') || h[1] != ' ' || h[21] != ' ' ||
	    h[32] != '\n' || outbox_key_parse(h + 2, key_r) < 0)
		return -1;
	for (i = 22; i < 32; i++) {
		if (h[i] < '0' || h[i] > '9')
			return -1;
		len = len * 10 + (uint64_t)(h[i] - '0');
	}
	*len_r = len;
	*state_r = h[0];
	return 0;
}

/* Reads the record headers of one segment file into s. */
static void
scan_segment(struct outbox_queue *q, int dfd, const char *name, uint64_t seq,
    struct scan *s)
{
	struct outbox_seg *seg = outbox_seg_add(q, name, seq);
	char hdr[OUTBOX_HDR_LEN], nl;
	const char *why = NULL;
	struct stat st;
	uint64_t key, len;
	off_t off = 0;
	char state;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO under that name must not hang the start */
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_warn("outbox: cannot read %s/%s: %s; left alone", q->dir, name,
		    errno == EINVAL ? "not a regular file" : strerror(errno));
		seg->keep = true;
		if (fd >= 0)
			close(fd);
		return;
	}
	while (off < st.st_size) {
		n = pread(fd, hdr, sizeof(hdr), off);
		if (n != (ssize_t)sizeof(hdr) ||
		    hdr_parse(hdr, &key, &len, &state) < 0) {
			why = n < 0 ? strerror(errno) : "not a record header";
			break;
		}
		if ((uint64_t)(st.st_size - off) < OUTBOX_HDR_LEN + len + 1) {
			why = "record cut short";
			break;
		}
		if (pread(fd, &nl, 1, off + OUTBOX_HDR_LEN + (off_t)len) != 1 ||
		    nl != '\n') {
			why = "record not ended by a newline";
			break;
		}
		scan_add(s, seg, key, off, len, state);
		off += OUTBOX_HDR_LEN + (off_t)len + 1;
	}
	close(fd);
	seg->size = off;
	if (why != NULL) {
		log_warn("outbox: %s/%s: bad record at byte %lld (%s): the records "
		    "before it are queued, the file is left alone", q->dir, name,
		    (long long)off, why);
		seg->keep = true;
	}
}

/* A legacy "<key>.json": one event, the body alone. */
static void
scan_legacy(struct outbox_queue *q, int dfd, const char *name, uint64_t key,
    struct scan *s)
{
	struct outbox_seg *seg;
	struct stat st;

	errno = 0;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
		log_warn("outbox: ignoring %s/%s: %s", q->dir, name,
		    errno != 0 ? strerror(errno) : "not a regular file");
		return;
	}
	seg = outbox_seg_add(q, name, 0);
	seg->legacy = true;
	seg->size = st.st_size;
	scan_add(s, seg, key, 0, (uint64_t)st.st_size, 'P');
}

/* "%016llx.seg": 0 with *seq_r, or -1. */
static int
seg_name_parse(const char *name, uint64_t *seq_r)
{
	uint64_t seq = 0;
	size_t i;

	if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0)
		return -1;
	for (i = 0; i < 16; i++) {
		char c = name[i];

		if (c >= '0' && c <= '9')
			seq = seq << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			seq = seq << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -1;
	}
	if (seq == 0)
		return -1;
	*seq_r = seq;
	return 0;
}

/* The winners of s (the last record of each key) that are pending become
 * q's queue; files without one are removed. */
static void
scan_apply(struct outbox_queue *q, struct scan *s)
{
	size_t i, k;

	if (s->count > 1)
		qsort(s->v, s->count, sizeof(*s->v), scan_cmp);
	for (i = 0; i < s->count; i++) {
		if (i + 1 < s->count && s->v[i + 1].rec.key == s->v[i].rec.key)
			continue;       /* written again later */
		if (s->v[i].state != 'P')
			continue;
		if (q->end == q->cap) {
			q->cap = q->cap == 0 ? 16 : q->cap * 2;
			q->recs = xreallocarray(q->recs, q->cap, sizeof(*q->recs));
		}
		q->recs[q->end++] = s->v[i].rec;
		s->v[i].rec.seg->live++;
	}
	/* a pending copy replaced by a later one (a crash before the commit
	 * that would have marked it): marked now, or it would win once the
	 * later one is delivered and its file removed */
	for (i = 0; i + 1 < s->count; i++) {
		struct outbox_seg *seg = s->v[i].rec.seg;
		int fd;

		if (s->v[i + 1].rec.key != s->v[i].rec.key || s->v[i].state != 'P' ||
		    seg->legacy || (seg->live == 0 && !seg->keep))
			continue;
		fd = outbox_seg_fd(q, seg);
		if (fd < 0 || pwrite(fd, "D", 1, s->v[i].rec.off) != 1)
			log_warn("outbox: cannot mark a replaced record of %s/%s done: %s",
			    q->dir, seg->name, strerror(errno));
	}
	/* segments without a queued record: every event in them was delivered */
	for (k = q->nsegs; k-- > 0;) {
		struct outbox_seg *seg = q->segs[k];

		if (seg->live == 0 && !seg->keep) {
			seg->live = 1;
			outbox_seg_unref(q, seg);
		}
	}
}

int
outbox_seg_scan(struct outbox_queue *q, char **error_r)
{
	struct scan s = { NULL, 0, 0 };
	struct dirent *de;
	uint64_t key, seq;
	size_t len;
	DIR *d;

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
		} else if (seg_name_parse(de->d_name, &seq) == 0) {
			scan_segment(q, dirfd(d), de->d_name, seq, &s);
		} else if (len == 19 + 5 && strcmp(de->d_name + 19, ".json") == 0 &&
		    outbox_key_parse(de->d_name, &key) == 0) {
			scan_legacy(q, dirfd(d), de->d_name, key, &s);
		} else {
			log_warn("outbox: ignoring %s/%s", q->dir, de->d_name);
		}
	}
	closedir(d);
	scan_apply(q, &s);
	free(s.v);
	return 0;
}

/* reading and marking */

/* Reads rec's body (len bytes) into buf, checking its record header.
 * 0, or -1 with errno (EBADMSG: the record is not what the index says). */
static int
rec_read(struct outbox_queue *q, const struct outbox_rec *rec, char *buf,
    size_t len, off_t from)
{
	char hdr[OUTBOX_HDR_LEN], nl = 0, state;
	struct iovec iov[3];
	uint64_t key, hlen;
	ssize_t n, want;
	int fd = outbox_seg_fd(q, rec->seg);

	if (fd < 0)
		return -1;
	if (rec->seg->legacy) {
		n = pread(fd, buf, len, from);
		want = (ssize_t)len;
	} else if (from == 0) {
		iov[0].iov_base = hdr;
		iov[0].iov_len = sizeof(hdr);
		iov[1].iov_base = buf;
		iov[1].iov_len = len;
		iov[2].iov_base = &nl;
		iov[2].iov_len = len == rec->len ? 1 : 0;
		n = preadv(fd, iov, 3, rec->off);
		want = (ssize_t)(sizeof(hdr) + len + iov[2].iov_len);
		if (n == want && (hdr_parse(hdr, &key, &hlen, &state) < 0 ||
		    key != rec->key || hlen != rec->len ||
		    (iov[2].iov_len == 1 && nl != '\n'))) {
			errno = EBADMSG;
			return -1;
		}
	} else {
		n = pread(fd, buf, len, rec->off + OUTBOX_HDR_LEN + from);
		want = (ssize_t)len;
	}
	if (n < 0)
		return -1;
	if (n != want) {
		errno = EBADMSG;        /* shorter than its index entry */
		return -1;
	}
	return 0;
}

static char *
rec_where(const struct outbox_queue *q, const struct outbox_rec *rec)
{
	char name[OUTBOX_KEY_NAME_LEN];

	outbox_key_name(rec->key, name);
	if (rec->seg->legacy)
		return xasprintf("%s/%s", q->dir, rec->seg->name);
	return xasprintf("%s/%s (event %s at byte %lld)", q->dir, rec->seg->name,
	    name, (long long)rec->off);
}

int
outbox_read(struct outbox_queue *q, uint64_t key, char **body_r, size_t *len_r,
    char **error_r)
{
	struct outbox_rec *rec = outbox_queue_find(q, key);
	char name[OUTBOX_KEY_NAME_LEN], *body, *where;
	int saved;

	if (rec == NULL) {
		outbox_key_name(key, name);
		*error_r = xasprintf("no event %s queued in %s", name, q->dir);
		errno = ENOENT;
		return -1;
	}
	if (rec->len > OUTBOX_MAX_BODY) {
		where = rec_where(q, rec);
		*error_r = xasprintf("cannot read %s: %llu bytes, more than %u",
		    where, (unsigned long long)rec->len, OUTBOX_MAX_BODY);
		free(where);
		errno = EFBIG;
		return -1;
	}
	body = xmalloc((size_t)rec->len + 1);
	if (rec_read(q, rec, body, (size_t)rec->len, 0) < 0) {
		saved = errno;
		where = rec_where(q, rec);
		*error_r = xasprintf("cannot read %s: %s", where, strerror(saved));
		free(where);
		free(body);
		errno = saved;
		return -1;
	}
	body[rec->len] = '\0';
	*body_r = body;
	*len_r = (size_t)rec->len;
	return 0;
}

int
outbox_rec_retire(struct outbox_queue *q, const struct outbox_rec *rec,
    char **error_r)
{
	struct outbox_seg *seg = rec->seg;
	char *where;
	int fd, ret = 0;

	/* Marked done, so that a restart does not deliver it (again), even
	 * the last of its segment (should the unlink that follows fail);
	 * except one in a segment still being written, followed by its
	 * replacement in that file (the later one wins), and a legacy file,
	 * which goes. */
	if (!seg->legacy && !seg->writing && !seg->dropped) {
		fd = outbox_seg_fd(q, seg);
		if ((fd < 0 || pwrite(fd, "D", 1, rec->off) != 1) && errno != ENOENT) {
			where = rec_where(q, rec);
			if (error_r != NULL)
				*error_r = xasprintf("outbox: cannot mark %s done: %s",
				    where, strerror(errno));
			else
				log_warn("outbox: cannot mark %s done: %s", where,
				    strerror(errno));
			free(where);
			ret = -1;
		}
	}
	outbox_seg_unref(q, seg);
	return ret;
}

int
outbox_remove(struct outbox_queue *q, uint64_t key, char **error_r)
{
	struct outbox_rec *rec = outbox_queue_find(q, key), copy;

	if (rec == NULL)
		return 0;
	copy = *rec;
	outbox_queue_forget(q, key);
	return outbox_rec_retire(q, &copy, error_r);
}

struct copy {
	struct outbox_queue *q;
	const struct outbox_rec *rec;
	int read_errno;         /* reading the body failed with it */
};

/* write_file_atomic_fill's fill: the record's body, 64 KiB at a time. */
static int
copy_fill(int fd, void *arg)
{
	struct copy *c = arg;
	char buf[65536];
	uint64_t done = 0;
	size_t n;

	while (done < c->rec->len) {
		n = c->rec->len - done < sizeof(buf) ? (size_t)(c->rec->len - done) : sizeof(buf);
		if (rec_read(c->q, c->rec, buf, n, (off_t)done) < 0) {
			c->read_errno = errno;
			return -1;
		}
		if (write_full(fd, buf, n) < 0)
			return -1;
		done += n;
	}
	return 0;
}

int
outbox_seg_copy(struct outbox_queue *q, uint64_t key, const char *dst,
    char **error_r)
{
	struct copy c = { q, outbox_queue_find(q, key), 0 };
	char *where;

	if (c.rec == NULL)
		return 1;
	if (write_file_atomic_fill(dst, 0640, copy_fill, &c) == 0)
		return 0;
	/* damaged or gone: never readable; anything else (EMFILE, EIO...)
	 * may pass: the event is not buried without its body for that */
	if (c.read_errno == EBADMSG || c.read_errno == ENOENT)
		return 1;
	if (c.read_errno != 0) {
		where = rec_where(q, c.rec);
		*error_r = xasprintf("outbox: cannot read %s: %s", where,
		    strerror(c.read_errno));
		free(where);
		return -1;
	}
	*error_r = xasprintf("outbox: cannot write %s: %s", dst, strerror(errno));
	return -1;
}
