/*
 * log.h - one line per event on stderr: "time level [who] message".
 */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <parley/plugin.h>

extern int log_level;		/* enum parley_log_level; lines above it are dropped */

void	log_msg(int level, const char *who, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	log_vmsg(int level, const char *who, const char *fmt, va_list ap);
/* One formatted line with its newline in out; returns its length. */
int	log_format(char *out, size_t len, int level, const char *who,
	    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int	log_vformat(char *out, size_t len, int level, const char *who,
	    const char *fmt, va_list ap);
/*
 * From log_async_start() on, a line that could block goes to stderr through
 * a writer thread (a ring of 1 MiB; when it is full, lines are dropped and
 * counted), so a stderr nobody reads cannot block the caller.
 * log_async_stop() writes what is left and goes back to writing directly;
 * it also runs at exit.
 */
int	log_async_start(void);
void	log_async_stop(void);
uint64_t log_dropped(void);	/* lines dropped since the start */

#define log_error(...) log_msg(PARLEY_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(PARLEY_LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_msg(PARLEY_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) do { if (log_level >= PARLEY_LOG_DEBUG) \
	log_msg(PARLEY_LOG_DEBUG, NULL, __VA_ARGS__); } while (0)

#endif
