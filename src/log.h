/*
 * log.h - one line per event on stderr: "time level [who] message".
 */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stdarg.h>
#include <parley/plugin.h>

extern int log_level;		/* enum parley_log_level; lines above it are dropped */

void	log_msg(int level, const char *who, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	log_vmsg(int level, const char *who, const char *fmt, va_list ap);

#define log_error(...) log_msg(PARLEY_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(PARLEY_LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_msg(PARLEY_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) do { if (log_level >= PARLEY_LOG_DEBUG) \
	log_msg(PARLEY_LOG_DEBUG, NULL, __VA_ARGS__); } while (0)

#endif
