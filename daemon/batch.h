/*
 * batch: what one UID FETCH window of a trigger queues. Each event is
 * written to the outbox queue of every webhook of the trigger, all or none;
 * the batch keeps the highest UID queued, its count, and the first write
 * that failed.
 */
#ifndef IMAPHOOKD_BATCH_H
#define IMAPHOOKD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "outbox.h"

struct batch {
	/* set by batch_init, not owned */
	const char *trigger;
	char *const *webhooks;
	size_t nwebhooks;

	uint32_t max;                   /* highest UID added, 0: none */
	unsigned count;                 /* events added */
	char *error;                    /* the first write failure, or NULL */
	uint32_t error_uid;             /* the UID whose write failed */
};

/* The strings must outlive the batch. */
void batch_init(struct batch *b, const char *trigger, char *const *webhooks,
    size_t nwebhooks);
/* Frees what the batch owns (the error). */
void batch_free(struct batch *b);
/* A new window: nothing added, no error (a pending one is freed). */
void batch_reset(struct batch *b);
/*
 * Writes ev as event (epoch, uid) to the queue of every webhook. Returns 0,
 * or -1: no copy of it is left in the outbox, and the first failure of the
 * batch is kept in b->error, its UID in b->error_uid.
 */
int batch_write(struct batch *b, struct outbox *ob, uint32_t epoch, uint32_t uid,
    const json_t *ev);
/* batch_write of a message's event that, when written, counts in count
 * and max. */
int batch_add(struct batch *b, struct outbox *ob, uint32_t epoch, uint32_t uid,
    const json_t *ev);
/* The error (the caller frees it), or NULL; the batch has none after. */
char *batch_take_error(struct batch *b);

#endif
