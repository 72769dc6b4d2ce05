/*
 * imap_conn: one IMAP client connection on a libevent bufferevent, plain or
 * OpenSSL (implicit TLS or STARTTLS), after OpenSMTPD's smtp_client.c: one
 * struct with an enum state (logged as "old -> new"), one read callback that
 * feeds the I/O-free imap_parser, one state function that sends the command
 * of each set-up step (greeting, CAPABILITY, STARTTLS, LOGIN/AUTHENTICATE).
 *
 * Once ready, callers queue tagged commands built with imap_cmd_*. Commands
 * are pipelined; a synchronizing literal holds the queue until the server's
 * continuation. Untagged responses go to the oldest pending command's
 * untagged callback. When the connection fails every pending command
 * completes with an error.
 *
 * Connections are reference counted (tmux style): the last unref never
 * frees inside one of the connection's own callbacks, it is deferred to the
 * next loop turn.
 */
#ifndef IMAPHOOK_IMAP_CONN_H
#define IMAPHOOK_IMAP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"
#include "imap_parser.h"

struct event_base;
struct evdns_base;

/* What went wrong, by kind: the kinds map onto exit codes and HTTP codes. */
enum imap_err {
	IMAP_ERR_NONE,
	IMAP_ERR_NO,            /* the server answered NO */
	IMAP_ERR_BAD,           /* the server answered BAD */
	IMAP_ERR_CONNECT,       /* name resolution or TCP connect failed */
	IMAP_ERR_TLS,           /* handshake, certificate, DH size, STARTTLS */
	IMAP_ERR_AUTH,          /* the server refused our credentials */
	IMAP_ERR_PROTOCOL,      /* unparseable or unexpected server bytes */
	IMAP_ERR_TIMEOUT,       /* connect, greeting or a command took too long */
	IMAP_ERR_CLOSED,        /* the connection was lost or closed (BYE) */
};

struct imap_error {
	enum imap_err kind;
	char msg[512];
};

/* Sets err (if not NULL) to kind with a printf message. */
void imap_error_set(struct imap_error *err, enum imap_err kind, const char *fmt, ...)
    ATTR_FORMAT(3, 4);
const char *imap_err_name(enum imap_err kind);
/* True for failures of the connection itself (not NO/BAD). */
bool imap_err_is_conn(enum imap_err kind);

enum imap_conn_state {
	IMAP_CONN_INIT,
	IMAP_CONN_CONNECTING,
	IMAP_CONN_GREETING,
	IMAP_CONN_CAPABILITY,
	IMAP_CONN_STARTTLS,
	IMAP_CONN_TLS_HANDSHAKE,
	IMAP_CONN_CAPABILITY_TLS,
	IMAP_CONN_AUTH,
	IMAP_CONN_CAPABILITY_AUTH,
	IMAP_CONN_READY,
	IMAP_CONN_LOGOUT,
	IMAP_CONN_CLOSED,
};

struct imap_conn;
struct imap_cmd;

/* The outcome of a command: status OK/NO/BAD from the tagged response, or
 * status NONE with err.kind saying why the connection failed. resp is the
 * tagged response (NULL when the connection failed). */
struct imap_reply {
	enum imap_status status;
	const struct imap_resp *resp;
	struct imap_error err;
};

typedef void imap_done_cb(struct imap_conn *conn, const struct imap_reply *reply, void *arg);
typedef void imap_untagged_cb(struct imap_conn *conn, const struct imap_resp *resp, void *arg);
typedef void imap_conn_cb(struct imap_conn *conn, const struct imap_error *err, void *arg);
typedef void imap_cont_cb(struct imap_conn *conn, void *arg);

/*
 * Builds the SSL_CTX for a connection's TLS settings (protocol versions,
 * security level, trust anchors, verification). Returns NULL with err set.
 * The caller owns the reference (SSL_CTX_free).
 */
SSL_CTX *imap_tls_ctx_new(const struct cfg_connection *cfg, struct imap_error *err);
/* Whether path holds trust anchors OpenSSL can load (PEM certificates):
 * 0, or -1 with a malloc'd reason in *error_r. For config checks. */
int imap_tls_ca_file_check(const char *path, char **error_r);

/*
 * Contexts shared between connections whose TLS settings are the same: an
 * SSL_CTX holds the whole CA bundle (about 0.8 MiB), too much to repeat for
 * every account. get returns a new reference (SSL_CTX_free it) or NULL with
 * err set; free drops the cache's own references.
 */
struct imap_tls_cache;
struct imap_tls_cache *imap_tls_cache_new(void);
SSL_CTX *imap_tls_cache_get(struct imap_tls_cache *cache, const struct cfg_connection *cfg,
    struct imap_error *err);
void imap_tls_cache_free(struct imap_tls_cache **cache);

/*
 * Creates a connection for cfg (which must outlive it). ssl_ctx may be NULL
 * for a plain connection without STARTTLS; it is referenced, not taken.
 * name is used in log lines. Returns a connection with one reference.
 */
struct imap_conn *imap_conn_new(struct event_base *base, struct evdns_base *dns,
    const struct cfg_connection *cfg, SSL_CTX *ssl_ctx, const char *name);
void imap_conn_ref(struct imap_conn *conn);
/* Drops a reference and NULLs *conn; the last one closes and frees (later). */
void imap_conn_unref(struct imap_conn **conn);

/*
 * Connects, negotiates TLS, reads the greeting and capabilities and logs in.
 * ready_cb is called once, from the event loop: err NULL when the connection
 * is ready for commands, else the failure (the connection is then closed).
 */
void imap_conn_connect(struct imap_conn *conn, imap_conn_cb *ready_cb, void *arg);
/* auth = "xoauth2": the access token to log in with (copied). */
void imap_conn_set_oauth2_token(struct imap_conn *conn, const char *token);
/* Called (once) when a ready connection fails or is closed by the server. */
void imap_conn_set_lost_cb(struct imap_conn *conn, imap_conn_cb *lost_cb, void *arg);
/* Handler for untagged responses while no command is pending (EXISTS
 * during IDLE, a server's unsolicited BYE...). */
void imap_conn_set_unsolicited_cb(struct imap_conn *conn, imap_untagged_cb *cb, void *arg);

/* Sends LOGOUT (if ready; the connection lives on until it is written)
 * and closes. Pending commands fail; the ready and lost callbacks are not
 * called any more. */
void imap_conn_close(struct imap_conn *conn);

enum imap_conn_state imap_conn_state(const struct imap_conn *conn);
const char *imap_conn_state_name(enum imap_conn_state state);
bool imap_conn_is_ready(const struct imap_conn *conn);
/* Number of commands sent or queued and not yet completed. */
unsigned imap_conn_pending(const struct imap_conn *conn);
const char *imap_conn_name(const struct imap_conn *conn);
const struct cfg_connection *imap_conn_config(const struct imap_conn *conn);
/* Case-insensitive capability test ("UIDPLUS", "AUTH=PLAIN"). */
bool imap_conn_has_cap(const struct imap_conn *conn, const char *cap);
/* The capabilities as the server sent them, NULL-terminated (owned by conn). */
const char *const *imap_conn_caps(const struct imap_conn *conn);
/* When the connection last completed a command (monotonic ms). */
uint64_t imap_conn_last_used(const struct imap_conn *conn);
/* The TLS protocol in use ("TLSv1.3") or NULL for plain text. */
const char *imap_conn_tls_version(const struct imap_conn *conn);

/*
 * The mailbox selected on this connection (UTF-8) or NULL, and whether it
 * was opened read-only (EXAMINE). Maintained by imap_cmd_select/examine
 * users through imap_conn_set_selected(); a failed SELECT clears it.
 */
const char *imap_conn_selected(const struct imap_conn *conn, bool *readonly_r);
void imap_conn_set_selected(struct imap_conn *conn, const char *mailbox, bool readonly);

/*
 * Command builder. imap_cmd_new() starts a command on conn; the add
 * functions append to it (a space is inserted between parts by the caller,
 * as part of the text); imap_cmd_send() queues it. The tag is added by the
 * connection.
 */
struct imap_cmd *imap_cmd_new(struct imap_conn *conn);
/* Raw protocol text, written as given. */
void imap_cmd_add(struct imap_cmd *cmd, const char *text);
void imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...) ATTR_FORMAT(2, 3);
/* A string argument: atom when safe, quoted when printable, else (and
 * always beyond 1 KiB) a literal (non-synchronizing with LITERAL+). */
void imap_cmd_astring(struct imap_cmd *cmd, const char *s, size_t len);
/* A mailbox name given in UTF-8: INBOX normalised, modified UTF-7 on the
 * wire. Returns -1 (and adds nothing) if name is not valid UTF-8. */
int imap_cmd_mailbox(struct imap_cmd *cmd, const char *utf8);
/* Always a literal (APPEND message data). */
void imap_cmd_literal(struct imap_cmd *cmd, const void *data, size_t len);
/* Marks the command as carrying a secret: debug logs show only its verb. */
void imap_cmd_secret(struct imap_cmd *cmd);
/*
 * Queues cmd. done is called exactly once with the outcome (from the event
 * loop, never inside this call); untagged (may be NULL) receives untagged
 * responses that arrive while this is the oldest pending command.
 */
void imap_cmd_send(struct imap_cmd *cmd, imap_done_cb *done, imap_untagged_cb *untagged, void *arg);

/*
 * IDLE (RFC 2177): sends IDLE; idling(arg) is called once the server
 * accepted it; untagged responses meanwhile (EXISTS...) go to untagged. The
 * command ends, and done is called, after imap_conn_idle_done(). While IDLE
 * is in progress other commands wait; sending one ends the IDLE first. The
 * command time-out does not run while idling (the caller watches the
 * connection, e.g. by ending and restarting IDLE periodically).
 */
void imap_conn_idle(struct imap_conn *conn, imap_done_cb *done, imap_untagged_cb *untagged,
    imap_cont_cb *idling, void *arg);
/* Sends DONE if idling; a no-op otherwise. */
void imap_conn_idle_done(struct imap_conn *conn);
/* True between the server's "+" for IDLE and our DONE. */
bool imap_conn_idling(const struct imap_conn *conn);

/* Discards a command that was built but not sent; NULLs *cmd. */
void imap_cmd_discard(struct imap_cmd **cmd);

/* A quick one: the whole command line as text. */
void imap_conn_cmd(struct imap_conn *conn, const char *text, imap_done_cb *done,
    imap_untagged_cb *untagged, void *arg);

#endif
