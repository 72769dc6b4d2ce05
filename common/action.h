/*
 * action: the one table of actions (after tmux's cmd_entry table) that both
 * doors use: `imaphook ACTION --param value` and the daemon's
 * `POST /v1/actions/ACTION`. An entry names its parameters (type, required)
 * and runs as a small state machine on a leased IMAP connection: start()
 * sends the first commands, step() is called as each one completes and
 * untagged() receives the untagged responses, until the action calls
 * action_finish() or action_fail().
 *
 * Parameters arrive as one JSON object (the CLI builds it from its options,
 * the HTTP API receives it), are checked against the table by
 * action_params_check(), and results leave as JSON (download writes raw
 * bytes to a sink instead).
 */
#ifndef IMAPHOOK_ACTION_H
#define IMAPHOOK_ACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "imap_conn.h"
#include "util.h"

/* How an action can fail; each maps to an exit code and an HTTP status. */
enum action_status {
	ACTION_OK,
	ACTION_ERR_USAGE,       /* bad or missing parameter: 64 / 400 */
	ACTION_ERR_INPUT,       /* input file missing, unreadable, not a message: 65 / 400 */
	ACTION_ERR_NOTFOUND,    /* no such mailbox or message: 1 / 404 */
	ACTION_ERR_EXISTS,      /* already exists: 1 / 409 */
	ACTION_ERR_REFUSED,     /* the server said NO or BAD: 1 / 422 */
	ACTION_ERR_UNREACHABLE, /* connect, TLS, lost connection, timeout: 69 / 502 */
	ACTION_ERR_AUTH,        /* authentication failed: 77 / 502 */
};

struct action_error {
	enum action_status status;
	char msg[512];
};

int action_exit_code(enum action_status status);
int action_http_status(enum action_status status);
/* A short machine-readable code for JSON errors ("bad_parameter"...). */
const char *action_error_code(enum action_status status);
/* Maps a connection/pool error onto an action status. */
enum action_status action_status_from_imap(enum imap_err kind);

enum action_ptype {
	APT_STRING,
	APT_MAILBOX,            /* UTF-8 mailbox path */
	APT_INT,                /* integer from 0 to ACTION_INT_MAX */
	APT_BOOL,
	APT_FLAGS,              /* list of flags / keywords */
	APT_RANGE,              /* IMAP set: 1:5,9 or * */
	APT_DATE,               /* YYYY-MM-DD */
	APT_ENUM,               /* one of choices */
	APT_PARTID,             /* 1, 1.2, 2.1.3 */
	APT_MESSAGE,            /* raw RFC 822 text (HTTP) */
	APT_FILE,               /* CLI: a path, or - for stdin */
};

/*
 * Parameter limits, checked by action_params_check (400 / exit 64 naming
 * the parameter). With them, everything one command carries stays well
 * below Dovecot's 64 KiB command line (imap_max_line_length, which counts
 * literals too): four search strings and a range at their limits make
 * about 48 KiB.
 */
#define ACTION_INT_MAX 4294967295U      /* integers are 32-bit IMAP numbers */
#define ACTION_MAILBOX_MAX 1024         /* bytes of a mailbox path (UTF-8) */
#define ACTION_STRING_MAX 8192          /* bytes of a search string */
#define ACTION_RANGE_MAX 16384          /* bytes of a range */
#define ACTION_FLAGS_MAX 4096           /* bytes of a flag list, one space between */
#define ACTION_PARTID_MAX 95            /* bytes of a part number ("1.2.3") */
/* Levels of a part number: a BODYSTRUCTURE nests a list per level, and
 * the IMAP parser reads 32 levels of lists at most. */
#define ACTION_PARTID_DEPTH_MAX 32

#define AP_REQUIRED 0x1         /* must be given */
#define AP_CLI_ONLY 0x2         /* not accepted over HTTP */
#define AP_HTTP_ONLY 0x4        /* not offered as a CLI option */

struct action_param {
	const char *name;       /* JSON name, camelCase; the CLI uses kebab-case */
	enum action_ptype type;
	unsigned flags;
	const char *const *choices;     /* APT_ENUM: NULL-terminated */
	const char *help;
};

struct action_run;

struct action_entry {
	const char *name;
	const char *summary;
	const struct action_param *params;      /* terminated by { NULL } */
	/* Cross-parameter checks beyond the table ("uid or index"): returns 0,
	 * or -1 with err set. May be NULL. */
	int (*check)(json_t *params, bool seq, struct action_error *err);
	void (*start)(struct action_run *run);
	void (*step)(struct action_run *run, const struct imap_reply *reply);
	void (*untagged)(struct action_run *run, const struct imap_resp *resp);
	size_t state_size;      /* bytes of run->state, zeroed */
	void (*state_free)(struct action_run *run);
	/* download writes bytes to the sink rather than returning JSON */
	bool raw_output;
	/* Raw output: the sink, which answered ACTION_SINK_FULL, can take more.
	 * Called by the sink's owner from the event loop, never from within
	 * sink.write(); the action then goes on if it was waiting. May be NULL
	 * when the action never waits. */
	void (*resume)(struct action_run *run);
};

/* NULL-terminated table of every action. */
extern const struct action_entry *const action_table[];
const struct action_entry *action_find(const char *name);

/* sink.write(): the bytes were taken, but the sink holds enough for now */
#define ACTION_SINK_FULL 1

/* Where download's bytes go. */
struct action_sink {
	/* Returns 0 when it took the bytes; ACTION_SINK_FULL when it took
	 * them but the action must fetch no more until entry->resume() (the
	 * action keeps its connection meanwhile: that is the backpressure);
	 * or -1 (errno) to abort the action. A sink that never blocks (a
	 * file) only returns 0 or -1. */
	int (*write)(void *arg, const void *data, size_t len);
	void *arg;
};

typedef void action_done_cb(struct action_run *run, void *arg);

struct action_run {
	const struct action_entry *entry;
	json_t *params;         /* checked parameters (owned) */
	bool seq;               /* ranges are sequence numbers */
	struct imap_conn *conn; /* leased by the caller for the run */
	void *state;            /* entry->state_size bytes */
	int step;               /* free for the action's own state machine */
	unsigned inflight;      /* commands sent and not yet completed */
	struct action_sink sink;
	const char *content_type;       /* raw output: what the bytes are */
	json_t *result;         /* on success, JSON actions */
	struct action_error err;
	bool finished;
	bool starting;          /* inside entry->start() */
	bool failing;           /* action_fail_mailbox() is asking LIST: later
				 * replies no longer reach step() */
	bool orphaned;          /* freed while commands were in flight */
	action_done_cb *done;
	void *done_arg;
};

/*
 * Checks params (a JSON object) against entry: unknown keys, types,
 * required ones, enum values, ranges and dates, NUL bytes in any string,
 * and the limits above. http says which door the
 * parameters came through. Returns 0, or -1 with err (ACTION_ERR_USAGE)
 * naming the parameter.
 */
int action_params_check(const struct action_entry *entry, json_t *params, bool http,
    bool seq, struct action_error *err);

/* Creates a run; params is referenced. */
struct action_run *action_run_new(const struct action_entry *entry, json_t *params, bool seq);
/* Frees run (or, while its commands are in flight, once they complete). */
void action_run_free(struct action_run **run);
/* Starts run on a ready connection; done is called once, from the loop. */
void action_run_start(struct action_run *run, struct imap_conn *conn,
    action_done_cb *done, void *arg);

/* For actions. */
void action_send(struct action_run *run, struct imap_cmd *cmd);
void action_send_text(struct action_run *run, const char *text);
/* Adds the mailbox parameter's value as a command argument; fails the run
 * (usage) and returns -1 if it is not a valid name. */
int action_cmd_mailbox(struct action_run *run, struct imap_cmd *cmd, const char *utf8);
void action_finish(struct action_run *run, json_t *result);
void action_fail(struct action_run *run, enum action_status status, const char *fmt, ...)
    ATTR_FORMAT(3, 4);
/* Fails with the server's NO/BAD or the connection's error; what says what
 * was being done ("SELECT Archive"). A NO with [NONEXISTENT] or [TRYCREATE]
 * becomes NOTFOUND, [ALREADYEXISTS] becomes EXISTS. */
void action_fail_reply(struct action_run *run, const struct imap_reply *reply, const char *what);
/* Like action_fail_reply for a command on mailbox, but a plain NO is
 * checked with LIST: 404 when the mailbox does not exist. */
void action_fail_mailbox(struct action_run *run, const struct imap_reply *reply,
    const char *mailbox, const char *what);
/* Like action_fail_mailbox for CREATE: [ALREADYEXISTS], or a plain NO for
 * a mailbox that LIST shows, becomes EXISTS (409). */
void action_fail_mailbox_exists(struct action_run *run, const struct imap_reply *reply,
    const char *mailbox, const char *what);

/* Sends cmd without passing its reply to step(): housekeeping whose outcome
 * does not matter (UNSELECT). Its untagged responses still reach
 * untagged(). Replies come in order, so a quiet command sent before the
 * action's own ones has completed by the time they do. */
void action_send_quiet(struct action_run *run, struct imap_cmd *cmd);
/* Sends SELECT (readonly: EXAMINE) of the UTF-8 mailbox; its reply goes to
 * step() like any other. Returns 0, or -1 after failing the run (usage)
 * when the name is not valid UTF-8. */
int action_select(struct action_run *run, const char *mailbox, bool readonly);
/* For step(), with the reply to action_select(): true when it is OK (the
 * connection then records the selection); otherwise fails the run (404 for
 * a missing mailbox) and returns false. */
bool action_select_done(struct action_run *run, const struct imap_reply *reply,
    const char *mailbox, bool readonly);
/* Leaves no mailbox selected, quietly and without expunging anything:
 * when the connection records a selection (imap_conn_selected), UNSELECT,
 * or else EXAMINE + CLOSE of it (CLOSE alone when it is read-only).
 * Renaming or deleting a selected mailbox makes some servers (Dovecot)
 * drop the connection. */
void action_deselect(struct action_run *run);

/* Is data[0..len) an RFC 822 message: not empty, no NUL byte, and a header
 * line ("Name: value") before the first blank line? Returns 0, or -1 with
 * err (ACTION_ERR_INPUT) saying why not. */
int action_message_check(const char *data, size_t len, struct action_error *err);

/* A growable list of UIDs (or sequence numbers). */
struct action_uids {
	uint32_t *v;
	size_t n, cap;
};
/* A search answer larger than this many numbers is refused. */
#define ACTION_UIDS_MAX 5000000
/* Messages one search returns (their envelopes are held and answered as
 * one JSON document): more matches need a limit or a narrower search. */
#define ACTION_SEARCH_MAX 10000
void action_uids_add(struct action_uids *u, uint32_t v);
/* Sorts ascending and drops duplicates. */
void action_uids_sort(struct action_uids *u);
void action_uids_free(struct action_uids *u);
/* Appends v[from..to) of a sorted list as a compact IMAP set ("1:5,9"). */
void action_uids_to_set(const struct action_uids *u, size_t from, size_t to, struct str *out);
/* Adds the numbers of an untagged SEARCH, or of the ALL of an ESEARCH.
 * Returns 1 when resp was one of those, 0 when not, -1 when the answer
 * would exceed ACTION_UIDS_MAX. */
int action_uids_from_search(struct action_uids *u, const struct imap_resp *resp);

/* Adds the pairs of a [COPYUID uidvalidity src dst] in resp (may be NULL)
 * to map ("<src uid>": dst uid), walking both sets once. Returns 1 when
 * resp had one, 0 when not, -1 (map unchanged) when the map would hold
 * more than ACTION_UIDS_MAX pairs. */
int action_copyuid_map(json_t *map, const struct imap_resp *resp);

/*
 * "*" in a UID range. RFC 3501 reads "n:*" as max:n when the mailbox's
 * largest UID max is below n, so that "100:*" would act on UID 50. An
 * action with such a range first asks for max (UID FETCH * (UID), read
 * only: it may follow a SELECT at once; the untagged answers go to
 * action_max_uid_untagged) and then sends the exact set of
 * action_range_set() instead.
 */
/* Does the run's "range" hold "*" as a UID (not with seq)? */
bool action_range_needs_max(const struct action_run *run);
/* Sends UID FETCH * (UID) when action_range_needs_max (read only: it may
 * follow the SELECT at once); returns whether it did. */
bool action_ask_max_uid(struct action_run *run);
/* Raises *max_r to the UID of an untagged FETCH. */
void action_max_uid_untagged(const struct imap_resp *resp, uint32_t *max_r);
/* Its answer is in: true to go on (a NO or BAD, as some servers give for
 * an empty mailbox, which has no "*", leaves max 0); false when the run
 * failed (the connection). */
bool action_max_uid_done(struct action_run *run, const struct imap_reply *reply);
/* Appends range (as checked by the table) to out with "*" as max (0: an
 * empty mailbox, where "*" is nothing): "*" is max, "n:*" and "*:n" are
 * n:max, or nothing when n > max; the ranges sorted and merged. Returns
 * false, with nothing appended, when nothing of the range is left. */
bool action_range_resolve(const char *range, uint32_t max, struct str *out);
/* The run's range as a malloc'd set to send: the parameter itself, unless
 * action_range_needs_max; then resolved against max. NULL when nothing of
 * the range is left: the action acts on no message. */
char *action_range_set(const struct action_run *run, uint32_t max);

/* The value of data item name (case-insensitive) in an untagged FETCH, or
 * NULL. With prefix, the first item whose name starts with name
 * ("BODY[" matches "BODY[2]<0>"); *name_r (may be NULL) gets its name. */
const struct imap_arg *action_fetch_item(const struct imap_resp *resp, const char *name,
    bool prefix, const char **name_r);
/* Appends the JSON list of flags as an IMAP list: (\Seen urgent). */
void action_cmd_flags(struct imap_cmd *cmd, json_t *flags);

/* Parameter access (after action_params_check). */
const char *action_param_str(const struct action_run *run, const char *name);
bool action_param_has(const struct action_run *run, const char *name);
json_int_t action_param_int(const struct action_run *run, const char *name, json_int_t def);
bool action_param_bool(const struct action_run *run, const char *name, bool def);

/* Mailbox name from the server (modified UTF-7 or, leniently, UTF-8) as a
 * malloc'd UTF-8 string. */
char *action_mailbox_from_wire(const char *wire, size_t len);
/* Appends the flags of an IMAP list argument to a JSON array. */
json_t *action_flags_json(const struct imap_arg *list);

#endif
