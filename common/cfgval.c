/* cfgval: see cfgval.h */
#include "cfgval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* One problem, kept with its position so that the list can be sorted. */
struct cfgval_problem {
	char *msg;
	size_t file_rank;       /* order in which files first had a problem */
	unsigned line;
	size_t seq;
};

void
cfgval_init(struct cfgval *cv, const char *path)
{
	memset(cv, 0, sizeof(*cv));
	cv->path = path;
}

static void vproblem(struct cfgval *, const char *, unsigned, const char *,
    const char *, va_list) ATTR_FORMAT(5, 0);

static void
vproblem(struct cfgval *cv, const char *file, unsigned line, const char *ctx,
    const char *fmt, va_list ap)
{
	struct cfgval_problem *p;
	struct str msg;
	size_t rank;

	for (rank = 0; rank < cv->nfiles; rank++) {
		if (strcmp(cv->files[rank], file) == 0)
			break;
	}
	if (rank == cv->nfiles) {
		cv->files = xreallocarray(cv->files, cv->nfiles + 1,
		    sizeof(*cv->files));
		cv->files[cv->nfiles++] = xstrdup(file);
	}
	str_init(&msg);
	if (line > 0)
		str_printf(&msg, "%s:%u: ", file, line);
	else
		str_printf(&msg, "%s: ", file);
	if (*ctx != '\0')
		str_printf(&msg, "%s: ", ctx);
	str_vprintf(&msg, fmt, ap);
	/* one problem, one line: values quoted from the file may hold line
	 * breaks or control characters */
	for (size_t i = 0; i < msg.len; i++)
		if ((unsigned char)msg.data[i] < 0x20 || msg.data[i] == 0x7f)
			msg.data[i] = '?';

	cv->probs = xreallocarray(cv->probs, cv->nprobs + 1, sizeof(*cv->probs));
	p = &cv->probs[cv->nprobs];
	p->msg = str_steal(&msg);
	p->file_rank = rank;
	p->line = line;
	p->seq = cv->nprobs++;
}

void
cfgval_problem(struct cfgval *cv, const config_setting_t *s, const char *ctx,
    const char *fmt, ...)
{
	const char *file = NULL;
	unsigned line = 1;
	va_list ap;

	if (s != NULL) {
		file = config_setting_source_file(s);
		if (config_setting_source_line(s) > 0)
			line = config_setting_source_line(s);
	}
	va_start(ap, fmt);
	vproblem(cv, file != NULL ? file : cv->path, line, ctx, fmt, ap);
	va_end(ap);
}

void
cfgval_problem_at(struct cfgval *cv, const char *file, unsigned line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(cv, file, line, "", fmt, ap);
	va_end(ap);
}

static int
problem_cmp(const void *va, const void *vb)
{
	const struct cfgval_problem *a = va, *b = vb;

	if (a->file_rank != b->file_rank)
		return a->file_rank < b->file_rank ? -1 : 1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void
cfgval_finish(struct cfgval *cv, struct config_errors *errs)
{
	size_t i;

	if (cv->nprobs > 0) {
		qsort(cv->probs, cv->nprobs, sizeof(*cv->probs), problem_cmp);
		errs->msgs = xreallocarray(errs->msgs, errs->count + cv->nprobs,
		    sizeof(*errs->msgs));
		for (i = 0; i < cv->nprobs; i++)
			errs->msgs[errs->count++] = cv->probs[i].msg;
	}
	free(cv->probs);
	for (i = 0; i < cv->nfiles; i++)
		free(cv->files[i]);
	free(cv->files);
	for (i = 0; i < cv->nwarned; i++)
		free(cv->warned[i]);
	free(cv->warned);
}

void
cfgval_warn_secret_file(struct cfgval *cv, const char *path)
{
	struct stat st;
	size_t i;

	if (stat(path, &st) < 0 || (st.st_mode & (S_IRGRP | S_IROTH)) == 0)
		return;
	for (i = 0; i < cv->nwarned; i++) {
		if (strcmp(cv->warned[i], path) == 0)
			return;
	}
	cv->warned = xreallocarray(cv->warned, cv->nwarned + 1,
	    sizeof(*cv->warned));
	cv->warned[cv->nwarned++] = xstrdup(path);
	log_warn("%s: holds a secret and is readable by group/others "
	    "(mode %04o); chmod 600 it", path, (unsigned)(st.st_mode & 07777));
}

const char *
cfgval_type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a floating-point number";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	}
	return "an unknown type";
}

bool
cfgval_has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

char *
cfgval_path(const config_setting_t *s, const char *path)
{
	const char *file = config_setting_source_file(s), *slash;

	if (path[0] == '/' || file == NULL ||
	    (slash = strrchr(file, '/')) == NULL)
		return xstrdup(path);
	return xasprintf("%.*s/%s", (int)(slash - file), file, path);
}

void
cfgval_check_keys(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, const char *const *keys)
{
	const config_setting_t *s;
	const char *name;
	size_t i, k;

	for (i = 0; (s = config_setting_get_elem(g, (unsigned)i)) != NULL; i++) {
		name = config_setting_name(s);
		for (k = 0; keys[k] != NULL && strcmp(keys[k], name) != 0; k++)
			;
		if (keys[k] == NULL)
			cfgval_problem(cv, s, ctx, "unknown key \"%s\"", name);
	}
}

int
cfgval_string(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    int flags, const char **v_r)
{
	const char *key;

	if (s == NULL)
		return 0;
	key = config_setting_name(s);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfgval_problem(cv, s, ctx, "\"%s\" must be a string (got %s)", key,
		    cfgval_type_name(s));
		return -1;
	}
	*v_r = config_setting_get_string(s);
	if ((flags & CFGVAL_NONEMPTY) && **v_r == '\0') {
		cfgval_problem(cv, s, ctx, "\"%s\" must not be empty", key);
		return -1;
	}
	if ((flags & CFGVAL_NOCTL) && cfgval_has_ctl(*v_r)) {
		cfgval_problem(cv, s, ctx, "\"%s\" must not contain control "
		    "characters", key);
		return -1;
	}
	return 1;
}

int
cfgval_require_string(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, const char *key, int flags, const char **v_r)
{
	config_setting_t *s = config_setting_get_member(g, key);

	if (s == NULL) {
		cfgval_problem(cv, g, ctx, "missing required key \"%s\"", key);
		return -1;
	}
	return cfgval_string(cv, ctx, s, flags, v_r);
}

int
cfgval_int(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    long long min, long long max, long long *v_r)
{
	long long v;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		cfgval_problem(cv, s, ctx, "\"%s\" must be an integer between %lld "
		    "and %lld (got %s)", config_setting_name(s), min, max,
		    cfgval_type_name(s));
		return -1;
	}
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		cfgval_problem(cv, s, ctx, "\"%s\" must be an integer between %lld "
		    "and %lld", config_setting_name(s), min, max);
		return -1;
	}
	*v_r = v;
	return 1;
}

void
cfgval_set_uint(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    const char *key, long long min, long long max, unsigned *field)
{
	long long v;

	if (cfgval_int(cv, ctx, config_setting_get_member(g, key), min, max,
	    &v) > 0)
		*field = (unsigned)v;
}

void
cfgval_set_bool(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    const char *key, bool *field)
{
	config_setting_t *s = config_setting_get_member(g, key);

	if (s == NULL)
		return;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cfgval_problem(cv, s, ctx, "\"%s\" must be true or false (got %s)",
		    key, cfgval_type_name(s));
		return;
	}
	*field = config_setting_get_bool(s) != 0;
}

int
cfgval_enum(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    const char *const *names, int *v_r)
{
	struct str want;
	const char *v;
	int i, r;

	if ((r = cfgval_string(cv, ctx, s, 0, &v)) <= 0)
		return r;
	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(v, names[i]) == 0) {
			*v_r = i;
			return 1;
		}
	}
	str_init(&want);
	for (i = 0; names[i] != NULL; i++) {
		str_printf(&want, "%s\"%s\"", i == 0 ? "" :
		    names[i + 1] == NULL ? " or " : ", ", names[i]);
	}
	cfgval_problem(cv, s, ctx, "\"%s\" must be %s (got \"%.64s\")",
	    config_setting_name(s), want.data, cfgval_has_ctl(v) ? "?" : v);
	str_free(&want);
	return -1;
}

void
cfgval_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

const config_setting_t *
cfgval_strv_elem(const config_setting_t *s, size_t i)
{
	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return s;
	return config_setting_get_elem(s, (unsigned)i);
}

int
cfgval_strv(struct cfgval *cv, const char *ctx, const config_setting_t *s,
    bool single_ok, char ***v_r, size_t *n_r)
{
	const config_setting_t *e;
	const char *key;
	char **v;
	size_t i, n;

	if (s == NULL)
		return 0;
	key = config_setting_name(s);
	if (single_ok && config_setting_type(s) == CONFIG_TYPE_STRING) {
		n = 1;
	} else if (config_setting_type(s) == CONFIG_TYPE_ARRAY ||
	    config_setting_type(s) == CONFIG_TYPE_LIST) {
		n = (size_t)config_setting_length(s);
	} else {
		cfgval_problem(cv, s, ctx, "\"%s\" must be %s[ \"...\", ... ] "
		    "(got %s)", key, single_ok ? "a string or " : "",
		    cfgval_type_name(s));
		return -1;
	}
	for (i = 0; i < n; i++) {
		e = cfgval_strv_elem(s, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cfgval_problem(cv, e, ctx, "\"%s\" must contain only strings "
			    "(element %zu is %s)", key, i, cfgval_type_name(e));
			return -1;
		}
	}
	v = xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = xstrdup(config_setting_get_string(cfgval_strv_elem(s, i)));
	*v_r = v;
	*n_r = n;
	return 1;
}

/* The secret of the inline key, or NULL after a problem. */
static char *
secret_inline(struct cfgval *cv, const config_setting_t *from, const char *v,
    size_t *len_r)
{
	if (config_setting_source_file(from) != NULL)
		cfgval_warn_secret_file(cv, config_setting_source_file(from));
	*len_r = strlen(v);
	return xstrndup(v, *len_r);
}

/* The content of the file named by from, one trailing newline removed. */
static char *
secret_file(struct cfgval *cv, const char *ctx, const config_setting_t *from,
    const char *v, size_t *len_r)
{
	char *path, *val;

	path = cfgval_path(from, v);
	if (read_file(path, CFGVAL_SECRET_MAX, &val, len_r) < 0) {
		cfgval_problem(cv, from, ctx, "\"%s\": cannot read \"%s\": %s",
		    config_setting_name(from), path,
		    errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
		free(path);
		return NULL;
	}
	strip_one_newline(val, len_r);
	cfgval_warn_secret_file(cv, path);
	if (*len_r == 0) {
		cfgval_problem(cv, from, ctx, "\"%s\": \"%s\" is empty",
		    config_setting_name(from), path);
	}
	free(path);
	return val;
}

/* The value of the environment variable named by from. */
static char *
secret_env(struct cfgval *cv, const char *ctx, const config_setting_t *from,
    const char *v, size_t *len_r)
{
	const char *env;

	if ((env = getenv(v)) == NULL) {
		cfgval_problem(cv, from, ctx, "\"%s\": environment variable "
		    "\"%s\" is not set", config_setting_name(from), v);
		return NULL;
	}
	*len_r = strlen(env);
	if (*len_r == 0) {
		cfgval_problem(cv, from, ctx, "\"%s\": environment variable "
		    "\"%s\" is empty", config_setting_name(from), v);
	}
	return xstrndup(env, *len_r);
}

int
cfgval_secret(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    const char *const keys[3], bool nul_ok, char **val_r, size_t *len_r,
    const config_setting_t **from_r)
{
	const config_setting_t *from = NULL, *s;
	const char *v;
	char *val;
	size_t len = 0;
	int which = -1, i;

	for (i = 0; i < 3 && keys[i] != NULL; i++) {
		if ((s = config_setting_get_member(g, keys[i])) == NULL)
			continue;
		if (from != NULL) {
			/* reported where the second one is written */
			cfgval_problem(cv, config_setting_source_line(s) >=
			    config_setting_source_line(from) ? s : from, ctx,
			    "\"%s\" and \"%s\" are mutually exclusive",
			    keys[which], keys[i]);
			return -1;
		}
		from = s;
		which = i;
	}
	if (from == NULL)
		return 0;
	if (cfgval_string(cv, ctx, from, which == 0 ? 0 : CFGVAL_NAME, &v) < 0)
		return -1;
	if (cv->skip_secrets && which != 0) {
		*val_r = xstrdup("(not read)");
		*len_r = strlen(*val_r);
		*from_r = from;
		return 1;
	}
	if (which == 0)
		val = secret_inline(cv, from, v, &len);
	else if (which == 1)
		val = secret_file(cv, ctx, from, v, &len);
	else
		val = secret_env(cv, ctx, from, v, &len);
	if (val == NULL)
		return -1;
	if (len == 0) {
		/* file and environment already said why */
		if (which == 0) {
			cfgval_problem(cv, from, ctx, "\"%s\" must not be empty",
			    keys[0]);
		}
		free(val);
		return -1;
	}
	if (!nul_ok && memchr(val, '\0', len) != NULL) {
		cfgval_problem(cv, from, ctx, "\"%s\": the value contains a NUL "
		    "byte", keys[which]);
		explicit_bzero(val, len);
		free(val);
		return -1;
	}
	*val_r = val;
	*len_r = len;
	*from_r = from;
	return 1;
}
