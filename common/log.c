/* log: see log.h */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <jansson.h>

#include "jsonutil.h"

static const char *log_prog = "imaphook";
static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(const char *prog)
{
	log_prog = prog;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *s, enum log_level *level_r)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	char ts[64], *msg;

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
	msg = xvasprintf(fmt, ap);
	if (log_format == LOG_FORMAT_JSON) {
		/* json_str: a message quoting the server (or cut at a byte
		 * limit) may not be UTF-8; "s" would lose the whole line */
		json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "time", ts,
		    "level", level_names[level], "prog", log_prog, "msg", json_str(msg));
		char *line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

		if (line != NULL)
			fprintf(stderr, "%s\n", line);
		free(line);
		json_decref(o);
	} else {
		/* keep one event on one line whatever the message holds */
		for (char *p = msg; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		fprintf(stderr, "%s %s %s: %s\n", ts, log_prog,
		    level_names[level], msg);
	}
	free(msg);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
