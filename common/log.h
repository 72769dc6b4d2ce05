/*
 * log: one line per event on stderr (systemd and Docker collect it), as text
 * or as one JSON object per line. Secrets must never be passed to these.
 */
#ifndef IMAPHOOK_LOG_H
#define IMAPHOOK_LOG_H

#include "util.h"

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Sets the program name printed in text lines and the JSON "prog" field. */
void log_init(const char *prog);
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
enum log_level log_get_level(void);
/* Parses "error" | "warn" | "info" | "debug"; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *level_r);

void log_msg(enum log_level level, const char *fmt, ...) ATTR_FORMAT(2, 3);
void log_vmsg(enum log_level level, const char *fmt, va_list ap) ATTR_FORMAT(2, 0);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
