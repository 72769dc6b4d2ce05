/* outbox_private.h: what outbox.c, outbox_seg.c and outbox_dead.c share;
 * not an API. */
#ifndef IMAPHOOK_OUTBOX_PRIVATE_H
#define IMAPHOOK_OUTBOX_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OUTBOX_NAME_MAX 200
#define OUTBOX_REASON_MAX 1024
/* "P 00000001-0000000042 0000001234\n": state, key, body length */
#define OUTBOX_HDR_LEN 33
#define OUTBOX_LEN_MAX 9999999999ULL    /* ten digits */

/* One file of a queue: a segment, or a legacy one-event "<key>.json". */
struct outbox_seg {
	char name[32];          /* "%016llx.seg" or "<key>.json" */
	uint64_t seq;           /* write order; 0 for a legacy file */
	size_t live;            /* its records queued, held or not committed */
	off_t size;             /* bytes of records written (segments) */
	int wfd;                /* append descriptor while writing, else -1 */
	bool writing;           /* still "<name>.tmp": put, not yet synced */
	bool legacy;            /* the body alone, no record header */
	bool keep;              /* holds a bad record: never removed */
	bool broken;            /* writing, a torn record not cut off */
	bool dropped;           /* its file removed: nothing to mark */
	bool mark;              /* scratch for outbox_sync */
};

/* Where an event's body is. */
struct outbox_rec {
	uint64_t key;
	struct outbox_seg *seg;
	off_t off;              /* of the record's header; 0 in a legacy file */
	uint64_t len;           /* body bytes */
};

struct outbox_queue {
	char *webhook;
	char *trigger;
	char *dir;              /* state_dir/outbox/<webhook>/<trigger> */
	struct outbox_rec *recs;        /* deliverable, by key: recs[head..end) */
	size_t head;
	size_t end;
	size_t cap;
	struct outbox_rec *held;        /* kept back: see outbox_hold_after */
	size_t nheld;
	size_t held_cap;
	struct outbox_seg **segs;       /* every file with live records */
	size_t nsegs;
	size_t segs_cap;
	struct outbox_seg *wseg;        /* the segment puts append to */
	struct outbox_seg *rseg;        /* the segment rfd is open on */
	int rfd;
	uint64_t next_seq;
	bool dir_ready;         /* the directory exists (checked this run) */
	bool dir_fresh;         /* created this run: parents need an fsync */
};

/* A put not yet committed. */
struct outbox_entry {
	struct outbox_queue *q;
	struct outbox_rec rec;
	size_t order;           /* puts of one key: the last one wins */
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
	size_t order;           /* puts so far */
	struct outbox_list pending;     /* put, not synced */
	struct outbox_list synced;      /* synced, not committed */
};

/* mkdir (mode 0750) that accepts an existing directory; *created_r says
 * which. 0, or -1 with errno. */
int outbox_mkdir_one(const char *path, bool *created_r);
/* fsync of a file or (dir) a directory by path. 0, or -1 with errno. */
int outbox_fsync_path(const char *path, bool dir);
/* Parses "%08x-%010u" (19 bytes, not NUL-terminated); 0 and *key_r, or -1. */
int outbox_key_parse(const char *s, uint64_t *key_r);

/* outbox_seg.c: the files */

/* q->dir/<seg name><suffix>: malloc'd. */
char *outbox_seg_path(const struct outbox_queue *q, const struct outbox_seg *seg,
    const char *suffix);
/* A new segment of q, not yet opened, added to q->segs. */
struct outbox_seg *outbox_seg_add(struct outbox_queue *q, const char *name,
    uint64_t seq);
/* One record fewer in seg: the last one gone removes its file. */
void outbox_seg_unref(struct outbox_queue *q, struct outbox_seg *seg);
/* Removes seg's .tmp (a segment being written whose puts are forgotten);
 * seg goes too when no record holds it. */
void outbox_seg_abandon(struct outbox_queue *q, struct outbox_seg *seg);
/* Closes and forgets every segment of q (files stay). */
void outbox_segs_free(struct outbox_queue *q);
/* A descriptor (O_RDWR) on seg, cached in q: not to be closed. -1 with
 * errno on failure. */
int outbox_seg_fd(struct outbox_queue *q, struct outbox_seg *seg);
/* Appends a record of body to q->wseg (opening a new segment when there is
 * none). 0 with *rec_r, or -1 with a malloc'd message; on failure nothing
 * of the record remains. */
int outbox_seg_append(struct outbox_queue *q, uint64_t key, const char *body,
    size_t len, struct outbox_rec *rec_r, char **error_r);
/* Copies the body of deliverable event key to dst (write_file_atomic_fill:
 * a .tmp beside it, fsynced, renamed, the directory fsynced). 0; 1 when
 * the body can never be read (not queued, damaged, gone); -1 with a
 * malloc'd message when dst cannot be written or the body cannot be read
 * for now (EMFILE, EIO...). */
int outbox_seg_copy(struct outbox_queue *q, uint64_t key, const char *dst,
    char **error_r);
/* A record delivered, buried or replaced by a newer one: marks it done
 * on disk where a restart could otherwise see it, and unrefs its segment.
 * 0, or -1 with a malloc'd message in *error_r (logged when error_r is
 * NULL). */
int outbox_rec_retire(struct outbox_queue *q, const struct outbox_rec *rec,
    char **error_r);
/* Loads the files of q->dir: queued records into q->recs (sorted), .tmp
 * files removed, segments without a queued record removed. */
int outbox_seg_scan(struct outbox_queue *q, char **error_r);

/* outbox.c */

/* Deliverable record of key in q, or NULL. */
struct outbox_rec *outbox_queue_find(struct outbox_queue *q, uint64_t key);
/* Drops key from q's deliverable keys (its record is the caller's). */
void outbox_queue_forget(struct outbox_queue *q, uint64_t key);

#endif
