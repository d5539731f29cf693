/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Every line has "time" (UTC, microseconds), "level", "component" and "msg",
 * followed by typed fields:
 *
 *   log_info("http", "listening", LF_STR("addr", addr), LF_INT("port", 8443));
 *   log_warn("identity", "login failed", LF_SECRET("password"));
 *
 * A field made with LF_SECRET never prints a value: it prints "[secret]", so
 * a caller can say a secret was involved without leaking it. A line is
 * written with one write(2) call, so lines from several threads and
 * processes never interleave. Thread-safe.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stddef.h>
#include <stdio.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_field_type {
	LOG_F_END = 0,	/* terminates a field list */
	LOG_F_STR,
	LOG_F_INT,
	LOG_F_DOUBLE,
	LOG_F_BOOL,
	LOG_F_SECRET
};

struct log_field {
	const char *key;
	enum log_field_type type;
	const char *s;
	long long i;
	double d;
};

#define LF_STR(k, v)	((struct log_field){ .key = (k), .type = LOG_F_STR, .s = (v) })
#define LF_INT(k, v)	((struct log_field){ .key = (k), .type = LOG_F_INT, .i = (long long)(v) })
#define LF_DOUBLE(k, v)	((struct log_field){ .key = (k), .type = LOG_F_DOUBLE, .d = (v) })
#define LF_BOOL(k, v)	((struct log_field){ .key = (k), .type = LOG_F_BOOL, .i = !!(v) })
#define LF_SECRET(k)	((struct log_field){ .key = (k), .type = LOG_F_SECRET })
#define LF_END		((struct log_field){ .type = LOG_F_END })

/* Messages below level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *name);

/* Where lines go; default fd 2. Used by tests to capture output. */
void log_set_fd(int fd);

/* Writes one line. fields is terminated by an LOG_F_END entry. */
void log_write(enum log_level level, const char *component, const char *msg,
    const struct log_field *fields);

/* Formats one line (with trailing newline) into out; returns its length, or
 * the length it would have had when out is too small (like snprintf). */
size_t log_format(char *out, size_t outlen, enum log_level level,
    const char *component, const char *msg, const struct log_field *fields);

#define log_msg(level, comp, msg, ...) \
	log_write((level), (comp), (msg), \
	    (const struct log_field[]){ __VA_ARGS__ __VA_OPT__(,) LF_END })
#define log_debug(comp, msg, ...) \
	do { if (log_get_level() <= LOG_DEBUG) \
		log_msg(LOG_DEBUG, comp, msg __VA_OPT__(,) __VA_ARGS__); } while (0)
#define log_info(comp, msg, ...)  log_msg(LOG_INFO, comp, msg __VA_OPT__(,) __VA_ARGS__)
#define log_warn(comp, msg, ...)  log_msg(LOG_WARN, comp, msg __VA_OPT__(,) __VA_ARGS__)
#define log_error(comp, msg, ...) log_msg(LOG_ERROR, comp, msg __VA_OPT__(,) __VA_ARGS__)

#endif
