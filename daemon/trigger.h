/*
 * trigger: the "New Emails" trigger of one mailbox. A poll is a small state
 * machine on a leased pooled connection (one enum, one state function, one
 * completion callback, after OpenSMTPD's smtp_client.c):
 *
 *   wait -> lease -> status --(nothing new)--> done -> wait
 *                      |
 *                      +--> fetch (EXAMINE/SELECT + UID FETCH, batch by
 *                           batch: queue, sync, save state, commit)
 *                           -> mark (UID STORE +FLAGS.SILENT \Seen)
 *                           -> close (UNSELECT) -> done -> wait
 *
 * Any failure is logged, counted, shown in /healthz and retried after a
 * capped exponential back-off, for ever.
 */
#ifndef IMAPHOOKD_TRIGGER_H
#define IMAPHOOKD_TRIGGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "state.h"

struct daemon;

struct trigger_info {
	const char *name, *connection, *mailbox, *mode;
	const char *push;               /* "notify", "idle" or NULL (polling) */
	time_t last_poll_at;            /* 0: never */
	time_t last_success_at;         /* 0: never */
	const char *last_error;         /* NULL when the last poll succeeded */
	bool failing;
	uint64_t polls_ok, polls_failed, events_queued;
	uint32_t uidvalidity, last_uid;
};

/* Creates the trigger of cfg (copied) and loads its persisted state. */
struct trigger *trigger_new(struct daemon *d, const struct cfg_trigger *cfg);
void trigger_free(struct trigger **t);
/*
 * At start, before delivery: holds back the trigger's queued events above
 * its saved state (a crash between an outbox sync and the state write);
 * its next poll writes them again and releases the rest. Returns how many.
 */
size_t trigger_hold_unsaved(struct trigger *t);
/* Schedules the first poll (immediately with --once, else after a small
 * random delay so that the together triggers starting at once do not fire
 * at the same moment). */
void trigger_start(struct trigger *t, size_t together);
/* Stops polling: a poll in progress is abandoned (nothing half-done is
 * persisted: what was not synced is fetched again next time). */
void trigger_stop(struct trigger *t);
const char *trigger_name(const struct trigger *t);
const char *trigger_connection(const struct trigger *t);
const char *trigger_mailbox(const struct trigger *t);
/* mode = "idle" (and not --once) */
bool trigger_is_idle(const struct trigger *t);
/* How new mail reaches the trigger ("notify", "idle"), or NULL: polling. */
void trigger_set_push(struct trigger *t, const char *method);
/* New mail (push): poll now, or right after the poll in progress; while
 * backing off from failed polls, the retry looks in its time. */
void trigger_wake(struct trigger *t);
/* True when cfg describes this trigger exactly (reload keeps it). */
bool trigger_same(const struct trigger *t, const struct cfg_trigger *cfg);
void trigger_info(const struct trigger *t, struct trigger_info *info_r);

#endif
