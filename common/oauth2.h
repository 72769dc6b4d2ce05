/*
 * oauth2: access tokens for auth = "xoauth2". The token comes from the
 * connection's oauth2_token_command, run without a shell, with a time-out,
 * in a process group of its own (a time-out kills the whole group), with
 * none of our descriptors but its stdin (/dev/null), stdout and stderr, and
 * signals at their defaults. The command prints either the bare token or a
 * JSON object
 *   {"access_token": "...", "expires_in": 3599}
 * (surrounding white space ignored). It is done when it exits, even if a
 * background child of its still holds its output open. Non-zero exit, no
 * output or a time-out is an authentication failure. Its stdout (the
 * secret) is never logged; the first 2 KiB of its stderr only when it
 * failed, with any token found in its stdout blanked out.
 *
 * Also the SASL initial responses of XOAUTH2 (Google, Microsoft) and
 * OAUTHBEARER (RFC 7628).
 */
#ifndef IMAPHOOK_OAUTH2_H
#define IMAPHOOK_OAUTH2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct oauth2_fetch;

/* Largest output accepted from a token command. */
#define OAUTH2_MAX_OUTPUT (64 * 1024)

/* token NULL: the command failed, error says why. expires_in is in seconds,
 * 0 when the command did not say. */
typedef void oauth2_fetch_cb(const char *token, uint64_t expires_in, const char *error,
    void *arg);

/*
 * Runs argv (argv[0] searched in PATH, no shell) and calls cb once from the
 * event loop with the token. name prefixes the log lines of the command's
 * stderr (logged when it failed). Returns the job (cancel with
 * oauth2_fetch_cancel, which kills the command's process group), or NULL
 * with cb never called and *error_r set (malloc'd) when it cannot even
 * start.
 */
struct oauth2_fetch *oauth2_fetch_start(struct event_base *base, char *const *argv,
    unsigned timeout_seconds, const char *name, oauth2_fetch_cb *cb, void *arg,
    char **error_r);
void oauth2_fetch_cancel(struct oauth2_fetch **fetch);

/*
 * Parses a token command's output: a bare token, or a JSON object with a
 * string "access_token" and an optional non-negative integer "expires_in".
 * Returns 0 with a malloc'd *token_r, or -1 with a malloc'd *error_r.
 */
int oauth2_parse_output(const char *out, size_t len, char **token_r, uint64_t *expires_in_r,
    char **error_r);

/* base64 SASL initial responses (malloc'd). */
char *oauth2_xoauth2_response(const char *user, const char *token);
char *oauth2_oauthbearer_response(const char *user, const char *host, unsigned port,
    const char *token);

#endif
