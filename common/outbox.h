/*
 * outbox: the durable queue of webhook requests.
 *
 * Layout under state_dir:
 *   outbox/<webhook>/<trigger>/<seq>.seg     events waiting for delivery
 *   dead/<webhook>/<trigger>/<key>.json      a dead letter, beside
 *   dead/<webhook>/<trigger>/<key>.reason    one line: why it died
 * where key = "%08x-%010u" of (epoch, uid): events are delivered in key
 * order per queue (a mailbox.reset event uses uid 0 of the new epoch and so
 * precedes that epoch's mail), and seq = "%016llx" numbers a queue's
 * segment files in the order they were written.
 *
 * A segment holds the events one sync wrote for one (webhook, trigger)
 * queue, each as a record:
 *   "P 00000001-0000000042 0000001234\n" <1234 bytes of JSON body> "\n"
 * The first byte turns from 'P' (pending) to 'D' (done) when the event is
 * delivered or buried (one pwrite of one byte), and the file is removed
 * when its last record is done. When a key occurs more than once (a put of
 * a key already queued), the record written last wins: the one in the
 * highest-numbered segment, at the highest offset. A segment that holds a
 * bad record (damaged on disk) keeps the records before it and is never
 * removed, so nothing is thrown away unseen. Files "<key>.json" holding one
 * body each (the layout before segments) are read and delivered too.
 *
 * One queue per (webhook, trigger). In memory a queue is a sorted array of
 * (key, segment, offset, length); bodies stay on disk and are read when
 * sent.
 *
 * Life of an event: outbox_put() appends the record to its queue's
 * "<seq>.seg.tmp" (complete, not yet durable, invisible to a restart:
 * leftover .tmp files are removed by outbox_open). outbox_sync() makes the
 * data durable, renames every such segment to "<seq>.seg" and makes the
 * names durable; after it returns 0 a power cut keeps every put.
 * outbox_commit() then makes the synced events deliverable. A put, sync or
 * commit of a key that is already queued keeps one entry, the new body
 * (puts are idempotent).
 *
 * Durability strategy (measured, see outbox.c): a sync of up to
 * OUTBOX_SYNCFS_MIN segment files fsyncs each file and each touched
 * directory; a larger sync uses two syncfs(2) calls on the state
 * directory's file system (data, then names), which costs the same for 1 or
 * 100,000 files. Marking an event done is not synced: after a power cut an
 * event may be delivered again (at least once), after a crash of the
 * daemon alone it is not.
 *
 * Webhook and trigger names become directory names: they must be non-empty,
 * at most 200 bytes, without '/', and not "." or "..".
 */
#ifndef IMAPHOOK_OUTBOX_H
#define IMAPHOOK_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outbox;
struct outbox_queue;

/* Syncs of more segment files than this use syncfs(2) instead of fsync(2)s. */
#define OUTBOX_SYNCFS_MIN 8
/* Free bytes a put leaves on the file system, for the state written after
 * it (outbox_put fails with ENOSPC's message rather than eat into them). */
#define OUTBOX_RESERVE (64u * 1024)
/* Largest body outbox_read() returns (a larger one is buried unread). */
#define OUTBOX_MAX_BODY (64u * 1024 * 1024)
/* Length of a key name "00000003-0000000042" plus its NUL. */
#define OUTBOX_KEY_NAME_LEN 20

#define OUTBOX_KEY(epoch, uid) (((uint64_t)(uint32_t)(epoch) << 32) | (uint32_t)(uid))
#define OUTBOX_KEY_EPOCH(key) ((uint32_t)((key) >> 32))
#define OUTBOX_KEY_UID(key) ((uint32_t)(key))

/*
 * Opens (creating state_dir/outbox and state_dir/dead, mode 0750, when
 * missing) the outbox of state_dir: removes leftover *.tmp files and loads
 * every queued event, which is deliverable at once. Returns the outbox (free
 * with outbox_free), or NULL with a malloc'd message in *error_r.
 */
struct outbox *outbox_open(const char *state_dir, char **error_r);
/* Closes the outbox; files stay on disk. Unsynced puts are forgotten;
 * synced, uncommitted ones are queued at the next open. */
void outbox_free(struct outbox **ob);

/*
 * Writes body as event (epoch, uid) of the queue (webhook, trigger): a
 * record appended to the queue's segment being written, "<seq>.seg.tmp" in
 * the queue directory (created when missing). Not
 * durable nor deliverable until outbox_sync() and outbox_commit(). Returns
 * 0, or -1 with a malloc'd message in *error_r (ENOSPC, less than
 * OUTBOX_RESERVE bytes would stay free, a bad name...);
 * on failure nothing of this put remains on disk.
 */
int outbox_put(struct outbox *ob, const char *webhook, const char *trigger,
    uint32_t epoch, uint32_t uid, const char *body, size_t len, char **error_r);
/*
 * Makes every put of trigger (NULL: of all triggers) since its last sync
 * durable and visible under its final name. Returns 0, or -1 with a
 * malloc'd message in *error_r: then those puts are forgotten (their files
 * removed), and the caller writes them again (a sync is never retried on
 * the same data: after a failed fsync(2) the kernel may have dropped the
 * pages, and a second fsync would report success).
 */
int outbox_sync(struct outbox *ob, const char *trigger, char **error_r);
/* Makes every synced put of trigger (NULL: all) deliverable, in key order
 * within each queue. */
void outbox_commit(struct outbox *ob, const char *trigger);
/*
 * Forgets trigger's puts not yet synced whose key is from or above (a poll
 * that failed: from 0; a put that failed for one webhook after succeeding
 * for others: its key). They must be the last ones the trigger put to
 * their queues, as puts come in key order. What cannot be cut off makes
 * the trigger's next outbox_sync fail.
 */
void outbox_drop(struct outbox *ob, const char *trigger, uint64_t from);
/* Deliverable events of (webhook, trigger); NULL for either sums over all. */
size_t outbox_depth(const struct outbox *ob, const char *webhook, const char *trigger);

/*
 * Holds back trigger's queued events (for every webhook) whose key is above
 * after: events a poll wrote and synced whose trigger state was never saved
 * (a crash in between). The trigger fetches them again: delivering them now
 * and the new copies later would send them twice. Held events are not
 * deliverable until a commit of their queue reaches their key (a commit of
 * the same key takes its place) or outbox_release. Call before delivery
 * starts. Returns how many were held.
 */
size_t outbox_hold_after(struct outbox *ob, const char *trigger, uint64_t after);
/*
 * Makes trigger's held events deliverable again: call once the trigger has
 * polled (what it wrote again replaced them; the rest, say mail expunged
 * meanwhile, is still owed). Returns how many.
 */
size_t outbox_release(struct outbox *ob, const char *trigger);

/* Formats key as "%08x-%010u" into buf. */
void outbox_key_name(uint64_t key, char buf[static OUTBOX_KEY_NAME_LEN]);

/*
 * Sender interface. Queues are created by outbox_open (existing events) and
 * outbox_put (new pairs) and live as long as the outbox: indices and
 * pointers stay valid, new queues are appended.
 */
size_t outbox_queue_count(const struct outbox *ob);
struct outbox_queue *outbox_queue_get(const struct outbox *ob, size_t i);
const char *outbox_queue_webhook(const struct outbox_queue *q);
const char *outbox_queue_trigger(const struct outbox_queue *q);
/* Deliverable events of this queue. */
size_t outbox_queue_depth(const struct outbox_queue *q);
/* The smallest deliverable key: true and *key_r, or false when empty. */
bool outbox_queue_head(const struct outbox_queue *q, uint64_t *key_r);
/*
 * Reads the body of deliverable event key (at most OUTBOX_MAX_BODY bytes).
 * Returns 0 with a malloc'd NUL-terminated buffer in *body_r and its length
 * in *len_r, or -1 with errno set (ENOENT: the file or the key is gone;
 * EFBIG: too large; EBADMSG: the record on disk is damaged) and a malloc'd
 * message in *error_r.
 */
int outbox_read(struct outbox_queue *q, uint64_t key, char **body_r,
    size_t *len_r, char **error_r);
/* Closes what the queue keeps open for reading: call when it has to wait
 * (a failed request), so that a long outage of many queues does not hold a
 * descriptor each. */
void outbox_queue_close(struct outbox_queue *q);
/*
 * Delivered: marks the event's record done (and removes its segment when
 * that was the last record queued in it) and forgets the key. A file
 * already gone is fine. Returns 0, or -1 with a message when the mark could
 * not be written (the key is forgotten anyway, so a restart would deliver
 * it again).
 */
int outbox_remove(struct outbox_queue *q, uint64_t key, char **error_r);
/*
 * Copies the event to dead letters as <key>.json (when its record is
 * damaged or gone, its segment is kept in the outbox, done, and a legacy
 * file is moved there as it is) with reason (one line: control bytes and
 * invalid UTF-8 are replaced) beside it as <key>.reason, then removes it as
 * outbox_remove does. Returns 0, or -1 with a malloc'd message in *error_r
 * and the event still queued (dead letters cannot be written, or its body
 * cannot be read for now: EMFILE, EIO...). *path_r (may be NULL) gets the
 * dead letter's path.
 */
int outbox_bury(struct outbox *ob, struct outbox_queue *q, uint64_t key,
    const char *reason, char **path_r, char **error_r);

#endif
