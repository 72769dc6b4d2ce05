/* state: see state.h */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

static bool
trigger_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= 200 && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

void
trigger_state_clear(struct trigger_state *st)
{
	free(st->connection);
	free(st->mailbox);
	memset(st, 0, sizeof(*st));
}

/* An integer member in [0, UINT32_MAX]; absent gives def (or -1 if def < 0). */
static int
get_u32(json_t *obj, const char *key, int64_t def, uint32_t *v_r)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (v == NULL) {
		if (def < 0)
			return -1;
		*v_r = (uint32_t)def;
		return 0;
	}
	if (!json_is_integer(v))
		return -1;
	n = json_integer_value(v);
	if (n < 0 || n > (json_int_t)UINT32_MAX)
		return -1;
	*v_r = (uint32_t)n;
	return 0;
}

/* An optional string member: NULL when absent or null. */
static int
get_str(json_t *obj, const char *key, char **v_r)
{
	json_t *v = json_object_get(obj, key);

	*v_r = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	*v_r = xstrdup(json_string_value(v));
	return 0;
}

/* Parses a state file; returns 0, or -1 with a short description. */
static int
state_parse(const char *data, size_t len, struct trigger_state *st,
    char **why_r)
{
	json_error_t jerr;
	json_t *root;
	int ret = -1;

	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		*why_r = xasprintf("line %d: %s", jerr.line, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		*why_r = xstrdup("not a JSON object");
		goto out;
	}
	if (get_u32(root, "uidValidity", -1, &st->uidvalidity) < 0 ||
	    get_u32(root, "lastUid", -1, &st->last_uid) < 0 ||
	    get_u32(root, "epoch", 0, &st->epoch) < 0) {
		*why_r = xstrdup("uidValidity, lastUid and epoch must be "
		    "integers from 0 to 4294967295");
		goto out;
	}
	if (get_u32(root, "seenFrom", 0, &st->seen_from) < 0 ||
	    get_u32(root, "seenTo", 0, &st->seen_to) < 0 ||
	    (st->seen_from == 0) != (st->seen_to == 0) || st->seen_from > st->seen_to ||
	    st->seen_to > st->last_uid) {
		*why_r = xstrdup("seenFrom and seenTo must be UIDs from 1 to lastUid, "
		    "seenFrom <= seenTo");
		goto out;
	}
	if (get_str(root, "connection", &st->connection) < 0 ||
	    get_str(root, "mailbox", &st->mailbox) < 0) {
		*why_r = xstrdup("connection and mailbox must be strings");
		goto out;
	}
	st->exists = true;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

/*
 * Renames a bad state file aside (never over an earlier one) and builds the
 * error message.
 */
static void
set_aside(const char *path, const char *why, char **error_r)
{
	char *aside = NULL;
	unsigned i;
	int ret = -1;

	for (i = 0; i < 100 && ret < 0; i++) {
		free(aside);
		if (i == 0)
			aside = xasprintf("%s.corrupt-%lld", path, (long long)time(NULL));
		else
			aside = xasprintf("%s.corrupt-%lld-%u", path,
			    (long long)time(NULL), i);
		ret = renameat2(AT_FDCWD, path, AT_FDCWD, aside, RENAME_NOREPLACE);
		if (ret < 0 && errno == EINVAL) {
			/* File system without RENAME_NOREPLACE. */
			ret = rename(path, aside);
		}
		if (ret < 0 && errno != EEXIST)
			break;
	}
	if (ret < 0) {
		*error_r = xasprintf("state file %s is corrupt (%s), and "
		    "cannot be moved aside: %s", path, why, strerror(errno));
	} else {
		*error_r = xasprintf("state file %s is corrupt (%s); moved "
		    "to %s", path, why, aside);
	}
	free(aside);
}

int
state_load(const char *state_dir, const char *trigger,
    struct trigger_state *st_r, char **error_r)
{
	char *path, *data = NULL, *why = NULL;
	size_t len;
	int ret = -1;

	memset(st_r, 0, sizeof(*st_r));
	if (!trigger_name_ok(trigger)) {
		*error_r = xasprintf("state: unusable trigger name \"%s\"", trigger);
		return -1;
	}
	path = xasprintf("%s/triggers/%s.json", state_dir, trigger);
	if (read_file(path, STATE_MAX_FILE, &data, &len) < 0) {
		if (errno == ENOENT) {
			ret = 0;
		} else if (errno == EFBIG || errno == EISDIR) {
			set_aside(path, strerror(errno), error_r);
		} else {
			*error_r = xasprintf("cannot read state file %s: %s",
			    path, strerror(errno));
		}
		free(path);
		return ret;
	}
	if (state_parse(data, len, st_r, &why) < 0) {
		trigger_state_clear(st_r);
		set_aside(path, why, error_r);
		free(why);
	} else {
		ret = 0;
	}
	free(data);
	free(path);
	return ret;
}

static int
state_write(const char *state_dir, const char *trigger,
    const struct trigger_state *st, bool sync, char **error_r)
{
	char *dir, *path = NULL, *text = NULL;
	struct stat sb;
	json_t *root;
	int ret = -1;

	if (!trigger_name_ok(trigger)) {
		*error_r = xasprintf("state: unusable trigger name \"%s\"", trigger);
		return -1;
	}
	dir = xasprintf("%s/triggers", state_dir);
	if (stat(dir, &sb) < 0) {
		if (errno != ENOENT || mkdir_p(dir, 0750) < 0 ||
		    fsync_dir(state_dir) < 0) {
			*error_r = xasprintf("cannot create %s: %s", dir,
			    strerror(errno));
			goto out;
		}
	}
	root = json_pack("{s:I, s:I, s:I, s:s?, s:s?}",
	    "uidValidity", (json_int_t)st->uidvalidity,
	    "lastUid", (json_int_t)st->last_uid,
	    "epoch", (json_int_t)st->epoch,
	    "connection", st->connection,
	    "mailbox", st->mailbox);
	if (root != NULL && st->seen_to != 0) {
		json_object_set_new(root, "seenFrom", json_integer(st->seen_from));
		json_object_set_new(root, "seenTo", json_integer(st->seen_to));
	}
	if (root == NULL) {
		/* Only a connection or mailbox that is not UTF-8 gets here. */
		*error_r = xasprintf("state of %s: connection or mailbox is not "
		    "valid UTF-8", trigger);
		goto out;
	}
	text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (text == NULL) {
		*error_r = xasprintf("state of %s: cannot encode JSON", trigger);
		goto out;
	}
	path = xasprintf("%s/%s.json", dir, trigger);
	if ((sync ? write_file_atomic : write_file_atomic_nosync)(path, text,
	    strlen(text), 0640) < 0) {
		*error_r = xasprintf("cannot write state file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(text);
	free(path);
	free(dir);
	return ret;
}

int
state_save(const char *state_dir, const char *trigger,
    const struct trigger_state *st, char **error_r)
{
	return state_write(state_dir, trigger, st, true, error_r);
}

int
state_save_nosync(const char *state_dir, const char *trigger,
    const struct trigger_state *st, char **error_r)
{
	return state_write(state_dir, trigger, st, false, error_r);
}

int
state_sync(const char *state_dir, char **error_r)
{
	char *dir = xasprintf("%s/triggers", state_dir);
	int fd, ret = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		*error_r = xasprintf("cannot sync %s: %s", dir, strerror(errno));
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

int
state_lock(const char *state_dir, char **error_r)
{
	char *path, pid[32];
	int fd, n;

	if (mkdir_p(state_dir, 0750) < 0) {
		*error_r = xasprintf("cannot create state directory %s: %s",
		    state_dir, strerror(errno));
		return -1;
	}
	path = xasprintf("%s/lock", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		*error_r = xasprintf("cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			*error_r = xasprintf("another imaphookd is using %s",
			    state_dir);
		else
			*error_r = xasprintf("cannot lock %s: %s", path,
			    strerror(errno));
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	/* For the operator's eyes only: failing to write it is harmless. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_debug("cannot write our pid into %s/lock: %s", state_dir,
		    strerror(errno));
	return fd;
}
