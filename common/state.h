/*
 * state: the persisted state of each trigger and the state directory lock.
 *
 * A trigger's state lives in state_dir/triggers/<trigger>.json, e.g.
 *   {"uidValidity":1795653631,"lastUid":42,"epoch":3,
 *    "connection":"work","mailbox":"INBOX"}
 * plus, with mark_as_read, "seenFrom" and "seenTo" while the UIDs from:to
 * queued last are still to be marked \Seen (a poll cut off after queueing
 * them: the next poll marks them).
 * and is replaced atomically and durably (tmp file, fsync, rename, fsync of
 * the directory). "epoch" counts uidValidity changes; it is the high half
 * of the outbox keys, so that events of a new epoch sort after the old ones.
 */
#ifndef IMAPHOOK_STATE_H
#define IMAPHOOK_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* Largest state file state_load() accepts. */
#define STATE_MAX_FILE (64 * 1024)

struct trigger_state {
	bool exists;            /* false: no state file yet (first run) */
	uint32_t uidvalidity;
	uint32_t last_uid;      /* the highest UID queued */
	uint32_t epoch;
	uint32_t seen_from;     /* UIDs seen_from:seen_to still to mark \Seen; */
	uint32_t seen_to;       /* both 0: none */
	char *connection;       /* owned; NULL when not recorded */
	char *mailbox;          /* owned; NULL when not recorded */
};

/*
 * Loads the state of trigger into *st_r (cleared first). Returns 0 with
 * exists = false when there is no state file, 0 with exists = true when it
 * was loaded, or -1 with a malloc'd message in *error_r. A corrupt file (bad
 * JSON, missing or out-of-range "uidValidity"/"lastUid", "seenFrom"/"seenTo"
 * not both there or not 1 <= from <= to <= lastUid, wrong types, larger
 * than STATE_MAX_FILE, a directory) is renamed aside to
 * "<trigger>.json.corrupt-<unix time>" so the next load finds no file; a
 * file that cannot be read for another reason (EACCES, EIO, EMFILE...) is
 * left in place, because the problem may pass and the state is precious.
 */
int state_load(const char *state_dir, const char *trigger,
    struct trigger_state *st_r, char **error_r);
/*
 * Writes st (its "exists" field is ignored) as the state of trigger,
 * creating state_dir/triggers when missing. Returns 0 once durable, or -1
 * with a malloc'd message in *error_r (the previous state is intact).
 */
int state_save(const char *state_dir, const char *trigger,
    const struct trigger_state *st, char **error_r);
/*
 * The same, atomic but not yet durable: for a new trigger's first baseline,
 * where thousands of triggers starting at once would otherwise cost two
 * fsyncs each. The caller calls state_sync() soon after (one syncfs(2) for
 * all of them).
 */
int state_save_nosync(const char *state_dir, const char *trigger,
    const struct trigger_state *st, char **error_r);
/* Makes every state file saved so far durable: syncfs(2) of state_dir's
 * file system. Returns 0, or -1 with a malloc'd message in *error_r. */
int state_sync(const char *state_dir, char **error_r);
/* Frees the strings of st and zeroes it (st itself is not freed). */
void trigger_state_clear(struct trigger_state *st);

/*
 * Creates state_dir (mode 0750) when missing and takes an exclusive,
 * non-blocking flock(2) on state_dir/lock, writing our pid into it. Returns
 * the descriptor, to keep open for the life of the process, or -1 with a
 * malloc'd message in *error_r ("another imaphookd is using <dir>" when the
 * lock is held).
 */
int state_lock(const char *state_dir, char **error_r);

#endif
