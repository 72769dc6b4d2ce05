/*
 * config: loads and validates an imaphook configuration file (libconfig
 * syntax, see SPEC / imaphook.conf(5)) into struct config, applying every
 * default. Every problem is reported as "FILE:LINE: message"; the loader
 * reports all problems it finds, not just the first.
 *
 * Secrets (passwords, webhook secrets, API tokens) are read here, from the
 * file, a *_file or an environment variable, and are never logged.
 */
#ifndef IMAPHOOK_CONFIG_H
#define IMAPHOOK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_DEFAULT_PATH "/etc/imaphook/imaphook.conf"
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/imaphook"

enum cfg_auth { CFG_AUTH_LOGIN, CFG_AUTH_XOAUTH2 };
enum cfg_mode { CFG_MODE_POLL, CFG_MODE_IDLE };
enum cfg_start_from { CFG_START_NOW, CFG_START_ALL };

struct cfg_connection {
	char *name;
	char *host;
	uint16_t port;          /* default 993 when secure, else 143 */
	bool secure;            /* default true */
	bool starttls;          /* default false */
	char *username;
	char *password;         /* resolved from password/password_file/password_env; NULL with xoauth2 */
	enum cfg_auth auth;     /* default login */
	char **oauth2_token_command; /* NULL-terminated argv, or NULL */
	int min_tls_version;    /* OpenSSL constant, default TLS1_1_VERSION */
	int max_tls_version;    /* default TLS1_3_VERSION */
	unsigned min_dh_size;   /* bits, default 1024 */
	bool tls_verify;        /* default true */
	char *ca_file;          /* or NULL; relative paths resolved against the config's directory */
	unsigned max_connections; /* default 2, at least 1 */
	/* Beyond SPEC (documented in imaphook.conf(5)): */
	unsigned timeout;       /* seconds: connect, greeting, command inactivity; default 60 */
	unsigned idle_restart;  /* seconds an IDLE (or NOTIFY) connection waits before it
	                         * re-issues IDLE / checks with NOOP; default 1500 (< 29 min) */
	int line;               /* where it was defined */
};

struct cfg_webhook {
	char *name;
	char *url;
	unsigned char *secret;  /* the HMAC key: base64-decoded part after "whsec_", else raw bytes; NULL if none */
	size_t secret_len;
	char **headers;         /* "Name: value" strings (normalised to one space after the colon), NULL-terminated (never NULL itself) */
	unsigned timeout;       /* seconds per attempt, default 10 */
	int line;
};

struct cfg_trigger {
	char *name;             /* [A-Za-z0-9_.-]+ */
	struct cfg_connection *connection;      /* points into config->connections */
	char *mailbox;          /* UTF-8 */
	unsigned interval;      /* seconds, default 60, at least 1 */
	enum cfg_mode mode;
	bool fetch_content;
	bool mark_as_read;
	struct cfg_webhook **webhooks;  /* points into config->webhooks; nwebhooks >= 1 */
	size_t nwebhooks;
	enum cfg_start_from start_from;
	/* Beyond SPEC: bytes of a message fetched and parsed for "content";
	 * larger messages are parsed from their first max_content_size bytes
	 * and flagged "truncated". Default 4 MiB. */
	size_t max_content_size;
	int line;
};

struct cfg_api {
	char *listen;           /* as written, "127.0.0.1:8025" or "[::1]:8025" */
	char *host;             /* the address part, brackets removed */
	uint16_t port;
	bool loopback;          /* host is 127.0.0.0/8, ::1 or "localhost" */
	char *token;            /* from token or token_file, or NULL */
	int line;
};

struct config {
	char *path;
	char *state_dir;        /* default CONFIG_DEFAULT_STATE_DIR; relative paths resolved as ca_file */
	enum log_level log_level;       /* default info */
	enum log_format log_format;     /* default text */
	struct cfg_api *api;    /* NULL = no HTTP listener */
	struct cfg_connection *connections;
	size_t nconnections;
	struct cfg_webhook *webhooks;
	size_t nwebhooks;
	struct cfg_trigger *triggers;
	size_t ntriggers;
	/* Beyond SPEC, for tests and impatient operators: caps of the retry
	 * back-offs in seconds (SPEC defaults 60, 900, 300). */
	unsigned poll_backoff_max;
	unsigned auth_backoff_max;
	unsigned webhook_backoff_max;
};

/* Problems found while loading: each a "FILE:LINE: message" string. */
struct config_errors {
	char **msgs;
	size_t count;
};
/* Frees the messages and leaves errs empty (reusable). */
void config_errors_free(struct config_errors *errs);

/*
 * Loads path. Returns 0 with *config_r set (free with config_free), or -1
 * with at least one message appended to errs (start from a zeroed struct;
 * messages already there are kept) and *config_r NULL. The messages of one
 * load are sorted by file and line. Warnings (for example a
 * secret-holding file readable by group or others) are logged with
 * log_warn() and do not fail the load.
 *
 * Relative paths in the file (state_dir, ca_file, *_file) are taken
 * relative to the directory of the file that contains them; @include paths
 * are libconfig's business (relative to the working directory).
 */
int config_load(const char *path, struct config **config_r, struct config_errors *errs);
/*
 * The same for the command-line tool, which uses one connection: it reads
 * the password file or variable of connection only (of every connection
 * when NULL) and no webhook secret or API token file or variable (their
 * form is checked; their values in *config_r are placeholders). Running
 * one action must not need the secrets of everything else.
 */
int config_load_cli(const char *path, const char *connection, struct config **config_r,
    struct config_errors *errs);
/* Frees *config (secrets are wiped first) and sets it to NULL. */
void config_free(struct config **config);

/*
 * For SIGHUP: true when every field is equal (secrets and argv included;
 * "line" is ignored). config_trigger_same compares the connection by name
 * and config_connection_same, and the webhooks by their list of names.
 */
bool config_connection_same(const struct cfg_connection *a,
    const struct cfg_connection *b);
bool config_webhook_same(const struct cfg_webhook *a,
    const struct cfg_webhook *b);
bool config_trigger_same(const struct cfg_trigger *a,
    const struct cfg_trigger *b);

/* Look-ups by name; NULL when there is none. The result points into config. */
/* A deep copy of c that outlives its config (free with
 * config_connection_free, which wipes the password and NULLs *c). */
struct cfg_connection *config_connection_dup(const struct cfg_connection *c);
void config_connection_free(struct cfg_connection **c);

struct cfg_connection *config_find_connection(const struct config *config, const char *name);
struct cfg_webhook *config_find_webhook(const struct config *config, const char *name);
struct cfg_trigger *config_find_trigger(const struct config *config, const char *name);

/* "TLSv1.2" -> TLS1_2_VERSION etc. Returns 0 or -1. */
int config_tls_version_parse(const char *s, int *version_r);
/* TLS1_2_VERSION -> "TLSv1.2" (static string); "unknown" for others. */
const char *config_tls_version_name(int version);

#endif
