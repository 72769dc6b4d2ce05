/*
 * imap_conn_private: what imap_conn.c, imap_cmd.c and imap_tls.c share.
 * Nothing outside those three files includes this.
 */
#ifndef IMAPHOOK_IMAP_CONN_PRIVATE_H
#define IMAPHOOK_IMAP_CONN_PRIVATE_H

#include <sys/queue.h>

#include <event2/bufferevent.h>

#include "imap_conn.h"
#include "util.h"

/* One piece of a command: bytes to write, then maybe wait for "+". */
struct imap_seg {
	struct str data;
	bool wait_cont;
};

struct imap_cmd {
	struct imap_conn *conn;
	TAILQ_ENTRY(imap_cmd) entry;
	char tag[16];
	struct imap_seg *segs;
	size_t nsegs;
	size_t next_seg;        /* next segment to write */
	bool secret;
	bool internal;          /* a set-up step of the connection itself */
	bool idle;              /* IDLE: "+" means idling, DONE ends it */
	const char *cont_reply; /* answer to an unexpected "+" (SASL errors) */
	bool cont_replied;      /* ...given: one error challenge, not a loop */
	imap_cont_cb *on_cont;  /* IDLE: told when the server idles */
	imap_done_cb *done;
	imap_untagged_cb *untagged;
	void *arg;
};
TAILQ_HEAD(imap_cmd_list, imap_cmd);

struct imap_conn {
	int refs;
	enum imap_conn_state state;
	char *name;
	const struct cfg_connection *cfg;
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl_ctx;
	SSL *ssl;               /* owned by the bufferevent once handed over */
	struct bufferevent *bev;
	struct imap_parser *parser;
	struct event *timer;    /* connect/greeting/command time-out */

	struct imap_cmd_list queued;    /* not yet (fully) written */
	struct imap_cmd_list sent;      /* written, awaiting the tagged answer */
	struct imap_cmd *waiting_cont;  /* holds the queue until "+" */
	struct imap_cmd *idle_cmd;      /* IDLE in progress: holds the queue */
	bool idling;                    /* the server said "+", DONE not sent */
	bool idle_done_pending;         /* DONE asked for before the "+" */
	char *token;                    /* auth = xoauth2: the access token */
	size_t unarmed_bytes;           /* read since the time-out was restarted */
	unsigned untagged_count;        /* since the last tagged response */
	bool in_connect;                /* inside imap_conn_connect() */
	struct imap_error deferred_err; /* a failure reported from the loop */
	bool logout_ref;                /* holds a reference until LOGOUT is out */
	unsigned next_tag;

	char **caps;
	size_t ncaps;
	bool preauth;
	char *bye;              /* text of an untagged BYE */
	char *selected;
	bool selected_ro;
	uint64_t last_used;

	imap_conn_cb *ready_cb;
	void *ready_arg;
	imap_conn_cb *lost_cb;
	void *lost_arg;
	imap_untagged_cb *unsolicited_cb;
	void *unsolicited_arg;
};

/* imap_conn.c */
void imap_conn_set_state(struct imap_conn *conn, enum imap_conn_state next);
/* Fails the connection: pending commands complete with err; the ready or
 * lost callback hears of it. */
void imap_conn_fail(struct imap_conn *conn, const struct imap_error *err);
/* Restarts (or stops) the time-out as the connection waits or not. */
void imap_conn_timer_update(struct imap_conn *conn);
/* Completion of the connection's own set-up commands. */
void imap_conn_internal_done(struct imap_conn *conn, const struct imap_reply *reply, void *arg);

/* imap_queue.c */
/* Writes queued commands until one waits for a continuation. */
void imap_conn_flush(struct imap_conn *conn);
/* "+" from the server. */
void imap_conn_continuation(struct imap_conn *conn, const struct imap_resp *resp);
void imap_cmd_complete(struct imap_conn *conn, struct imap_cmd *cmd, const struct imap_reply *reply);
/* Queues a set-up command of the connection itself. */
void imap_conn_send_internal(struct imap_cmd *cmd);
void imap_conn_internal_cmd(struct imap_conn *conn, const char *text);

/* imap_auth.c */
/* Logs in with what the configuration and the server's capabilities allow. */
void imap_conn_start_auth(struct imap_conn *conn);

/* imap_cmd.c */
/* Ends the current segment: what follows waits for the server's "+". */
void imap_cmd_break(struct imap_cmd *cmd);
void imap_cmd_free(struct imap_cmd *cmd);
/* Debug log of a command being sent (secrets masked). */
void imap_cmd_log(struct imap_conn *conn, const struct imap_cmd *cmd);

/* imap_tls.c */
/* A new SSL for conn: SNI and host name (or IP) verification. */
SSL *imap_tls_new_ssl(struct imap_conn *conn, struct imap_error *err);
/* After the handshake: refuse finite-field DH below min_dh_size. 0 or -1. */
int imap_tls_check_dh(struct imap_conn *conn, struct imap_error *err);
/* Why the handshake on conn failed, into err. */
void imap_tls_describe_failure(struct imap_conn *conn, struct imap_error *err);

#endif
