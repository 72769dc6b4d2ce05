/* imap_queue: the tagged command queue of imap_conn (pipelining, literals,
 * continuations, IDLE); see imap_conn.h */
#include "imap_conn_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "util.h"

static void
cmd_deferred_fail_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct imap_cmd *cmd = arg;
	struct imap_conn *conn = cmd->conn;
	struct imap_reply reply = { .status = IMAP_STATUS_NONE };

	imap_error_set(&reply.err, IMAP_ERR_CLOSED, "%s: connection is not open",
	    conn->name);
	if (cmd->done != NULL)
		cmd->done(conn, &reply, cmd->arg);
	imap_cmd_free(cmd);
	imap_conn_unref(&conn);
}

void
imap_cmd_send(struct imap_cmd *cmd, imap_done_cb *done, imap_untagged_cb *untagged, void *arg)
{
	struct imap_conn *conn = cmd->conn;

	cmd->done = done;
	cmd->untagged = untagged;
	cmd->arg = arg;
	snprintf(cmd->tag, sizeof(cmd->tag), "A%u", conn->next_tag++);
	imap_cmd_add(cmd, "\r\n");
	if (conn->state == IMAP_CONN_CLOSED || conn->state == IMAP_CONN_LOGOUT ||
	    conn->bev == NULL) {
		imap_conn_ref(conn);
		if (event_base_once(conn->base, -1, EV_TIMEOUT, cmd_deferred_fail_cb,
		    cmd, &(struct timeval){ 0, 0 }) < 0)
			abort();
		return;
	}
	TAILQ_INSERT_TAIL(&conn->queued, cmd, entry);
	if (conn->idle_cmd != NULL)
		imap_conn_idle_done(conn);      /* a command ends the IDLE */
	imap_conn_flush(conn);
	imap_conn_timer_update(conn);
}

void
imap_conn_idle(struct imap_conn *conn, imap_done_cb *done, imap_untagged_cb *untagged,
    imap_cont_cb *idling, void *arg)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_add(cmd, "IDLE");
	cmd->idle = true;
	cmd->on_cont = idling;
	imap_cmd_send(cmd, done, untagged, arg);
}

void
imap_conn_idle_done(struct imap_conn *conn)
{
	if (conn->idle_cmd != NULL && !conn->idling) {
		/* the server has not said "+" yet: DONE goes right after it */
		conn->idle_done_pending = true;
		return;
	}
	if (!conn->idling || conn->bev == NULL)
		return;
	conn->idling = false;
	bufferevent_write(conn->bev, "DONE\r\n", 6);
	log_debug("%s: C: DONE", conn->name);
	imap_conn_timer_update(conn);
}

bool
imap_conn_idling(const struct imap_conn *conn)
{
	return conn->idling;
}

void
imap_conn_cmd(struct imap_conn *conn, const char *text, imap_done_cb *done,
    imap_untagged_cb *untagged, void *arg)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_add(cmd, text);
	imap_cmd_send(cmd, done, untagged, arg);
}

void
imap_conn_send_internal(struct imap_cmd *cmd)
{
	cmd->internal = true;
	imap_cmd_send(cmd, imap_conn_internal_done, NULL, NULL);
}

void
imap_conn_internal_cmd(struct imap_conn *conn, const char *text)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_add(cmd, text);
	imap_conn_send_internal(cmd);
}

/* Writes queued commands until one waits for a continuation. */
void
imap_conn_flush(struct imap_conn *conn)
{
	struct imap_cmd *cmd;

	while (conn->waiting_cont == NULL && conn->idle_cmd == NULL && conn->bev != NULL &&
	    (cmd = TAILQ_FIRST(&conn->queued)) != NULL) {
		/* the caller's commands wait for the log-in */
		if (!cmd->internal && conn->state != IMAP_CONN_READY)
			break;
		TAILQ_REMOVE(&conn->queued, cmd, entry);
		TAILQ_INSERT_TAIL(&conn->sent, cmd, entry);
		imap_cmd_log(conn, cmd);
		if (cmd->idle) {
			conn->idle_cmd = cmd;
			conn->idle_done_pending = false;
		}
		bufferevent_write(conn->bev, cmd->tag, strlen(cmd->tag));
		bufferevent_write(conn->bev, " ", 1);
		while (cmd->next_seg < cmd->nsegs) {
			struct imap_seg *seg = &cmd->segs[cmd->next_seg++];

			bufferevent_write(conn->bev, seg->data.data, seg->data.len);
			if (seg->wait_cont) {
				conn->waiting_cont = cmd;
				break;
			}
		}
	}
}

/* "+" from the server: the rest of a command held by a synchronizing
 * literal may go. */
void
imap_conn_continuation(struct imap_conn *conn, const struct imap_resp *resp ATTR_UNUSED)
{
	struct imap_cmd *cmd = conn->waiting_cont;
	struct imap_error err;

	if (cmd == NULL) {
		cmd = TAILQ_FIRST(&conn->sent);
		if (cmd != NULL && cmd->idle && !conn->idling && cmd == conn->idle_cmd) {
			conn->idling = true;
			if (conn->idle_done_pending) {
				imap_conn_idle_done(conn);
				return;
			}
			imap_conn_timer_update(conn);
			if (cmd->on_cont != NULL)
				cmd->on_cont(conn, cmd->arg);
			return;
		}
		if (cmd != NULL && cmd->cont_reply != NULL && !cmd->cont_replied) {
			/* a SASL mechanism's error challenge: answer, then NO */
			cmd->cont_replied = true;
			bufferevent_write(conn->bev, cmd->cont_reply, strlen(cmd->cont_reply));
			return;
		}
		if (cmd != NULL && cmd->cont_reply != NULL) {
			/* our answer ended the exchange ("*" cancels it, RFC 3501
			 * 6.2.2; XOAUTH2's empty line asks for the NO): a server
			 * challenging on would keep us in AUTH for ever, each
			 * "+" restarting the time-out */
			imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: another SASL "
			    "challenge after the authentication was cancelled",
			    conn->name);
			imap_conn_fail(conn, &err);
			return;
		}
		imap_error_set(&err, IMAP_ERR_PROTOCOL, "%s: unexpected continuation "
		    "from server", conn->name);
		imap_conn_fail(conn, &err);
		return;
	}
	conn->waiting_cont = NULL;
	while (cmd->next_seg < cmd->nsegs) {
		struct imap_seg *seg = &cmd->segs[cmd->next_seg++];

		bufferevent_write(conn->bev, seg->data.data, seg->data.len);
		if (seg->wait_cont) {
			conn->waiting_cont = cmd;
			return;
		}
	}
	imap_conn_flush(conn);
}

void
imap_cmd_complete(struct imap_conn *conn, struct imap_cmd *cmd, const struct imap_reply *reply)
{
	if (conn->waiting_cont == cmd)
		conn->waiting_cont = NULL;
	if (conn->idle_cmd == cmd) {
		conn->idle_cmd = NULL;
		conn->idling = false;
	}
	if (cmd->done != NULL)
		cmd->done(conn, reply, cmd->arg);
	imap_cmd_free(cmd);
}
