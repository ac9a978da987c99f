/*
 * log.c - the logger.  Thread-safe: one fprintf per line (stdio locks the
 * stream), so lines from worker threads never interleave.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "log.h"

int log_level = PARLEY_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
log_vmsg(int level, const char *who, const char *fmt, va_list ap)
{
	char line[2048], ts[32];
	struct timeval tv;
	struct tm tm;
	size_t n;

	if (level > log_level)
		return;
	if (level < 0)
		level = 0;
	if (level > PARLEY_LOG_DEBUG)
		level = PARLEY_LOG_DEBUG;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(line, sizeof(line), fmt, ap);
	/* one event, one line */
	for (n = 0; line[n] != '\0'; n++)
		if (line[n] == '\n' || line[n] == '\r')
			line[n] = ' ';
	/* a plugin that names its section itself ("[kafka] brokers = ...")
	 * gets it once, not twice */
	if (who != NULL && line[0] == '[' &&
	    strncmp(line + 1, who, strlen(who)) == 0 &&
	    strncmp(line + 1 + strlen(who), "] ", 2) == 0)
		who = NULL;
	fprintf(stderr, "%s.%03dZ %-5s %s%s%s%s\n", ts, (int)(tv.tv_usec / 1000),
	    level_names[level], who ? "[" : "", who ? who : "", who ? "] " : "",
	    line);
}

void
log_msg(int level, const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, who, fmt, ap);
	va_end(ap);
}
