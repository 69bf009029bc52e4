/*
 * log.c: JSON-lines logger.
 *
 * A line is built in a local buffer with jansson (which escapes strings
 * correctly) and written with a single write(2), so lines from different
 * threads never interleave.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static volatile int log_level = PB_LOG_INFO;
static volatile int log_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void pb_log_set_level(pb_log_level_t level)
{
	log_level = (int)level;
}
pb_log_level_t pb_log_get_level(void)
{
	return (pb_log_level_t)log_level;
}
void pb_log_set_fd(int fd)
{
	log_fd = fd;
}

bool pb_log_level_parse(const char *name, pb_log_level_t *level_out)
{
	if (!name)
		return false;
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level_out = (pb_log_level_t)i;
			return true;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*level_out = PB_LOG_WARN;
		return true;
	}
	return false;
}

static void log_emit(pb_log_level_t level, const char *msg, va_list *kv)
{
	char ts[40];
	pb_now_rfc3339(ts, sizeof(ts));
	json_t *o = json_object();
	if (!o)
		return;
	json_object_set_new(o, "time", json_string(ts));
	json_object_set_new(o, "level", json_string(level_names[level]));
	json_object_set_new(o, "msg", json_string(msg ? msg : ""));
	if (kv) {
		const char *k;
		while ((k = va_arg(*kv, const char *)) != NULL) {
			const char *v = va_arg(*kv, const char *);
			json_object_set_new(o, k,
					    v ? json_string(v) : json_null());
		}
	}
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!line)
		return;
	size_t n = strlen(line);
	char *out = realloc(line, n + 2);
	if (!out) {
		free(line);
		return;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	ssize_t w = write(log_fd, out, n + 1);
	(void)w;
	free(out);
}

void pb_log(pb_log_level_t level, const char *msg, ...)
{
	if ((int)level < log_level)
		return;
	va_list ap;
	va_start(ap, msg);
	log_emit(level, msg, &ap);
	va_end(ap);
}

void pb_logf(pb_log_level_t level, const char *fmt, ...)
{
	if ((int)level < log_level)
		return;
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(level, buf, NULL);
}
