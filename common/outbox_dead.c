/* outbox dead letters: see outbox.h (outbox_bury) */
#include "outbox.h"
#include "outbox_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonutil.h"
#include "log.h"
#include "util.h"

/* One printable line of at most OUTBOX_REASON_MAX bytes, valid UTF-8. */
static char *
reason_line(const char *reason)
{
	size_t len = strlen(reason), i;
	char *line;

	if (len > OUTBOX_REASON_MAX)
		len = OUTBOX_REASON_MAX;
	line = utf8_repair(reason, len, &len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			line[i] = ' ';
	}
	return line;
}

int
outbox_bury(struct outbox *ob, struct outbox_queue *q, uint64_t key,
    const char *reason, char **path_r, char **error_r)
{
	char name[OUTBOX_KEY_NAME_LEN];
	char *dir, *dst = NULL, *rpath = NULL, *line, *text, *err = NULL;
	struct outbox_rec *rec;
	bool created;
	int ret = -1, copied;

	outbox_key_name(key, name);
	dir = xasprintf("%s/%s", ob->dead_dir, q->webhook);
	if (outbox_mkdir_one(dir, &created) < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s", dir,
		    strerror(errno));
		free(dir);
		return -1;
	}
	if (created)
		(void)outbox_fsync_path(ob->dead_dir, true);
	free(dir);
	dir = xasprintf("%s/%s/%s", ob->dead_dir, q->webhook, q->trigger);
	if (outbox_mkdir_one(dir, &created) < 0) {
		*error_r = xasprintf("outbox: cannot create %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	if (created) {
		char *parent = xasprintf("%s/%s", ob->dead_dir, q->webhook);

		(void)outbox_fsync_path(parent, true);
		free(parent);
	}
	dst = xasprintf("%s/%s.json", dir, name);
	rpath = xasprintf("%s/%s.reason", dir, name);
	line = reason_line(reason);
	text = xasprintf("%s\n", line);
	free(line);
	if (write_file_atomic(rpath, text, strlen(text), 0640) < 0) {
		*error_r = xasprintf("outbox: cannot write %s: %s", rpath,
		    strerror(errno));
		free(text);
		goto out;
	}
	free(text);
	copied = outbox_seg_copy(q, key, dst, error_r);
	if (copied < 0) {
		/* still queued: no reason without its event */
		(void)unlink(rpath);
		goto out;
	}
	if (copied == 1 && (rec = outbox_queue_find(q, key)) != NULL) {
		/* unreadable: nothing is thrown away unseen. A legacy file moves
		 * to dead letters as it is; a segment stays (the record is
		 * marked done, the file never removed) */
		if (rec->seg->legacy) {
			char *src = outbox_seg_path(q, rec->seg, "");

			if (rename(src, dst) == 0)
				copied = 0;
			free(src);
		} else {
			rec->seg->keep = true;
			log_warn("outbox: the body of %s cannot be read; its segment "
			    "%s/%s is kept", name, q->dir, rec->seg->name);
		}
	}
	if (outbox_remove(q, key, &err) < 0) {
		/* buried; only a restart would deliver it again */
		log_warn("%s", err);
		free(err);
	}
	if (path_r != NULL && copied == 0) {
		*path_r = dst;
		dst = NULL;
	} else if (path_r != NULL) {
		*path_r = rpath;
		rpath = NULL;
	}
	ret = 0;
out:
	free(dir);
	free(dst);
	free(rpath);
	return ret;
}
