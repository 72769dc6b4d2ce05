/*
 * cfgval: typed values out of libconfig settings for the config loader.
 * Every problem is recorded as "FILE:LINE: CTX: message" in a struct cfgval
 * (the state of one load) instead of stopping at the first; the loader
 * sorts them by file and line at the end. Used only by config.c.
 *
 * The getters return 1 with a value, 0 when the setting is NULL (absent),
 * -1 after recording a problem. Values that point into libconfig's tree
 * live as long as the config_t. Secret values never reach a message.
 */
#ifndef IMAPHOOK_CFGVAL_H
#define IMAPHOOK_CFGVAL_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "config.h"
#include "util.h"

#define CFGVAL_SECRET_MAX 65536         /* bytes of a *_file */

/* Flags of cfgval_string(). */
#define CFGVAL_NONEMPTY 0x1
#define CFGVAL_NOCTL 0x2                /* no control characters */
#define CFGVAL_NAME (CFGVAL_NONEMPTY | CFGVAL_NOCTL)

struct cfgval_problem;

struct cfgval {
	const char *path;       /* the config file, for problems without a setting */
	struct cfgval_problem *probs;
	size_t nprobs;
	char **files;           /* file names in order of their first problem */
	size_t nfiles;
	char **warned;          /* files already warned about */
	size_t nwarned;
	/* set by the caller around secrets it will not use: cfgval_secret
	 * checks their form but reads no file and no environment variable */
	bool skip_secrets;
	const void *user;       /* the caller's, for its loaders */
};

/* Starts a load of path (not copied: it must outlive cv). */
void cfgval_init(struct cfgval *cv, const char *path);
/* Records a problem at setting s (NULL: line 1 of the config file). ctx,
 * for example "connections[0] (\"work\")", may be "". */
void cfgval_problem(struct cfgval *cv, const config_setting_t *s,
    const char *ctx, const char *fmt, ...) ATTR_FORMAT(4, 5);
/* Records "FILE:LINE: message", or "FILE: message" when line is 0. */
void cfgval_problem_at(struct cfgval *cv, const char *file, unsigned line,
    const char *fmt, ...) ATTR_FORMAT(4, 5);
/* Appends the problems, sorted by file and line, to errs and frees
 * everything cv holds. */
void cfgval_finish(struct cfgval *cv, struct config_errors *errs);

/* Logs once per file a warning when path, which holds a secret, can be
 * read by group or others. */
void cfgval_warn_secret_file(struct cfgval *cv, const char *path);

/* "a string", "an integer"... for messages. */
const char *cfgval_type_name(const config_setting_t *s);
/* True when s has a byte below 0x20 or 0x7f. */
bool cfgval_has_ctl(const char *s);
/* path made relative to the directory of the file that holds s (absolute
 * paths unchanged). Caller frees. */
char *cfgval_path(const config_setting_t *s, const char *path);
/* Reports every member of group g whose name is not in the NULL-terminated
 * keys. */
void cfgval_check_keys(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, const char *const *keys);

/* A string; *v_r points into the tree. flags: CFGVAL_*. */
int cfgval_string(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    int flags, const char **v_r);
/* Same for member key of group g, reported at g when missing. */
int cfgval_require_string(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, const char *key, int flags, const char **v_r);
/* An int or int64 in [min, max]. */
int cfgval_int(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    long long min, long long max, long long *v_r);
/* Member key of g into *field when present and valid (else unchanged). */
void cfgval_set_uint(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, const char *key, long long min, long long max,
    unsigned *field);
void cfgval_set_bool(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, const char *key, bool *field);
/* One of the NULL-terminated names: *v_r gets its index. */
int cfgval_enum(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    const char *const *names, int *v_r);

/* An array or list of strings, or (single_ok) one string: a NULL-terminated
 * vector of copies (free with cfgval_strv_free) and its length. */
int cfgval_strv(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    bool single_ok, char ***v_r, size_t *n_r);
void cfgval_strv_free(char **v);
/* The setting of element i of such a value (s itself for one string). */
const config_setting_t *cfgval_strv_elem(const config_setting_t *s, size_t i);

/*
 * The secret given by at most one of the members keys[0] (inline), keys[1]
 * (a file, at most CFGVAL_SECRET_MAX bytes, one trailing newline dropped)
 * and keys[2] (an environment variable; keys[2] may be NULL). Returns 1
 * with a malloc'd NUL-terminated value of *len_r bytes and the setting it
 * came from in *from_r; 0 when none is set; -1 after recording a problem
 * (two keys set, unreadable file, unset variable, empty value, or a NUL
 * byte when !nul_ok). Warns about loose permissions of the holding file.
 * With cv->skip_secrets a file or variable is not read: 1 with a
 * placeholder value that is no secret.
 */
int cfgval_secret(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    const char *const keys[3], bool nul_ok, char **val_r, size_t *len_r,
    const config_setting_t **from_r);

#endif
