/*
 * push: new mail without waiting for the interval, for triggers with
 * mode = "idle". Per connection (account):
 *
 *   - IDLE (RFC 2177) when every mailbox can have a connection of its own
 *     within max_connections - 1 (one stays for polls and API calls): one
 *     connection per mailbox, sitting in IDLE;
 *   - else, with NOTIFY (RFC 5465): one connection watches every idle
 *     trigger's mailbox in a personal namespace, whatever their number;
 *     its "personal" filter does not cover shared, public or other users'
 *     mailboxes (NAMESPACE, RFC 2342, tells which): those get IDLE within
 *     the budget, one connection each, and poll beyond it (logged);
 *   - else IDLE within the budget; the mailboxes beyond it keep polling
 *     (logged);
 *   - a server with neither: polling (logged once).
 *
 * A watcher only wakes triggers: the fetch itself is the trigger's ordinary
 * poll on a pooled connection, so UID state, batching and durability are
 * the same as for polling. IDLE is re-issued (or NOTIFY checked with NOOP)
 * every idle_restart seconds, which also notices a dead connection through
 * the command time-out; TCP keepalive backs that up. A watcher that fails is
 * reconnected with capped exponential back-off, and its triggers are woken
 * when it is back (mail may have come meanwhile).
 */
#ifndef IMAPHOOKD_PUSH_H
#define IMAPHOOKD_PUSH_H

struct daemon;
struct push;

/* Starts watching for the idle-mode triggers of d (none: returns a push
 * that does nothing). */
struct push *push_new(struct daemon *d);
/* The UIDVALIDITY of connection's mailbox changed (deleted and created
 * again): an IDLE watcher on it selects it anew. */
void push_refresh(struct push *push, const char *connection, const char *mailbox);
/* Reload, before the old pools go: stops the accounts whose connection has
 * a new pool (or none). */
void push_prune(struct push *push);
/* Reload, once d's new triggers are there: an account on the same pool
 * watching the same mailboxes goes on as it is (no new log-ins); the
 * others start over. *push may be NULL. */
void push_reload(struct push **push, struct daemon *d);
/* Closes every watcher connection. */
void push_free(struct push **push);

#endif
