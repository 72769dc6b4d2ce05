/* batch: the events of one UID FETCH window of a trigger; see batch.h */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

void
batch_init(struct batch *b, const char *trigger, char *const *webhooks, size_t nwebhooks)
{
	memset(b, 0, sizeof(*b));
	b->trigger = trigger;
	b->webhooks = webhooks;
	b->nwebhooks = nwebhooks;
}

void
batch_free(struct batch *b)
{
	free(b->error);
	b->error = NULL;
}

void
batch_reset(struct batch *b)
{
	b->max = 0;
	b->count = 0;
	free(b->error);
	b->error = NULL;
	b->error_uid = 0;
}

int
batch_write(struct batch *b, struct outbox *ob, uint32_t epoch, uint32_t uid,
    const json_t *ev)
{
	char *body = json_dumps(ev, JSON_COMPACT), *err = NULL;
	size_t i;
	int ret = 0;

	if (body == NULL)
		abort();        /* jansson only fails on out-of-memory */
	for (i = 0; i < b->nwebhooks; i++) {
		if (outbox_put(ob, b->webhooks[i], b->trigger, epoch, uid, body, strlen(body),
		    &err) < 0) {
			if (b->error == NULL) {
				b->error = err;
				b->error_uid = uid;
			} else {
				free(err);
			}
			/* all webhooks or none: the mail is fetched again */
			outbox_drop(ob, b->trigger, OUTBOX_KEY(epoch, uid));
			ret = -1;
			break;
		}
	}
	free(body);
	return ret;
}

int
batch_add(struct batch *b, struct outbox *ob, uint32_t epoch, uint32_t uid, const json_t *ev)
{
	if (batch_write(b, ob, epoch, uid, ev) < 0)
		return -1;
	b->count++;
	if (uid > b->max)
		b->max = uid;
	return 0;
}

char *
batch_take_error(struct batch *b)
{
	char *err = b->error;

	b->error = NULL;
	return err;
}
