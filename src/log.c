/*
 * log.c - the logger.  Thread-safe: lines from several threads never
 * interleave.
 *
 * Until log_async_start() a line is one fprintf to stderr.  After it, a
 * line is written at once only when nothing is queued and stderr polls
 * writable (so it cannot block); otherwise it is copied into a ring that a
 * writer thread empties into stderr.  A reader of stderr that stops (a
 * full pipe nobody reads, a stuck log collector) therefore cannot stop the
 * event loop: when the ring is full, lines are dropped and counted
 * (log_dropped(), /metrics), and the writer says how many once there is
 * room again.  log_async_stop() (also at exit) writes what the ring holds
 * and goes back to fprintf.
 */
#define _GNU_SOURCE		/* pthread_timedjoin_np */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"

int log_level = PARLEY_LOG_INFO;

#define LOG_RING	(1u << 20)	/* bytes of lines waiting for stderr */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int on;			/* lines go through the ring */
	int stop;
	char *buf;
	size_t head, len;	/* ring: len bytes from head */
	uint64_t dropped;	/* since the start */
	uint64_t unsaid;	/* dropped, not yet reported in a line */
} ring = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* Append n bytes (ring.mu held); 0, or -1 when they do not fit. */
static int
ring_put(const char *p, size_t n)
{
	size_t at, first;

	if (n > LOG_RING - ring.len)
		return -1;
	at = (ring.head + ring.len) % LOG_RING;
	first = n < LOG_RING - at ? n : LOG_RING - at;
	memcpy(ring.buf + at, p, first);
	memcpy(ring.buf, p + first, n - first);
	ring.len += n;
	return 0;
}

static void
write_all(const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(STDERR_FILENO, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return;		/* nowhere to say it */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void *
writer(void *arg)
{
	size_t n;

	(void)arg;
	pthread_mutex_lock(&ring.mu);
	for (;;) {
		while (ring.len == 0 && !ring.stop)
			pthread_cond_wait(&ring.cv, &ring.mu);
		if (ring.len == 0)
			break;		/* stopped and empty */
		/* write the contiguous part without the lock */
		n = ring.len < LOG_RING - ring.head ? ring.len :
		    LOG_RING - ring.head;
		pthread_mutex_unlock(&ring.mu);
		write_all(ring.buf + ring.head, n);
		pthread_mutex_lock(&ring.mu);
		ring.head = (ring.head + n) % LOG_RING;
		ring.len -= n;
		if (ring.unsaid > 0) {
			char line[200];
			int k = log_format(line, sizeof(line), PARLEY_LOG_WARN,
			    NULL, "%llu log lines dropped: stderr was not "
			    "read fast enough", (unsigned long long)ring.unsaid);
			if (k > 0 && ring_put(line, (size_t)k) == 0)
				ring.unsaid = 0;
		}
	}
	pthread_mutex_unlock(&ring.mu);
	return NULL;
}

int
log_async_start(void)
{
	int rv = 0;

	pthread_mutex_lock(&ring.mu);
	if (!ring.on) {
		if ((ring.buf = malloc(LOG_RING)) == NULL)
			rv = -1;
		else {
			ring.stop = 0;
			ring.head = ring.len = 0;
			if (pthread_create(&ring.thread, NULL, writer,
			    NULL) != 0) {
				free(ring.buf);
				ring.buf = NULL;
				rv = -1;
			} else
				ring.on = 1;
		}
	}
	pthread_mutex_unlock(&ring.mu);
	if (rv == 0)
		atexit(log_async_stop);
	return rv;
}

void
log_async_stop(void)
{
	struct timespec until;

	pthread_mutex_lock(&ring.mu);
	if (!ring.on) {
		pthread_mutex_unlock(&ring.mu);
		return;
	}
	ring.stop = 1;
	pthread_cond_signal(&ring.cv);
	pthread_mutex_unlock(&ring.mu);
	/* a stderr that stays stuck must not keep the process from exiting:
	 * wait up to 5 s for the rest, then leave it (and the thread) */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	if (pthread_timedjoin_np(ring.thread, NULL, &until) != 0)
		return;
	pthread_mutex_lock(&ring.mu);
	ring.on = 0;
	free(ring.buf);
	ring.buf = NULL;
	pthread_mutex_unlock(&ring.mu);
}

uint64_t
log_dropped(void)
{
	uint64_t n;

	pthread_mutex_lock(&ring.mu);
	n = ring.dropped;
	pthread_mutex_unlock(&ring.mu);
	return n;
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/*
 * Format one line, "time level [who] message\n", into out (at most len
 * bytes, cut to fit, always ending in a newline).  Returns its length.
 */
int
log_vformat(char *out, size_t len, int level, const char *who,
    const char *fmt, va_list ap)
{
	char line[2048], ts[32];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int k;

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
	k = snprintf(out, len, "%s.%03dZ %-5s %s%s%s%s\n", ts,
	    (int)(tv.tv_usec / 1000), level_names[level], who ? "[" : "",
	    who ? who : "", who ? "] " : "", line);
	if (k < 0 || len == 0)
		return 0;
	if ((size_t)k >= len) {		/* cut: keep the newline */
		k = (int)len - 1;
		out[k - 1] = '\n';
	}
	return k;
}

int
log_format(char *out, size_t len, int level, const char *who,
    const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = log_vformat(out, len, level, who, fmt, ap);
	va_end(ap);
	return k;
}

void
log_vmsg(int level, const char *who, const char *fmt, va_list ap)
{
	char out[2200];
	int k;

	if (level > log_level)
		return;
	k = log_vformat(out, sizeof(out), level, who, fmt, ap);
	pthread_mutex_lock(&ring.mu);
	if (ring.on) {
		struct pollfd pf = { .fd = STDERR_FILENO, .events = POLLOUT };

		/* nothing queued and room for a line (a pipe that polls
		 * writable takes PIPE_BUF bytes at once): write it now, so
		 * the line is out before whatever the caller does next */
		if (ring.len == 0 && (size_t)k <= PIPE_BUF &&
		    poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT))
			write_all(out, (size_t)k);
		else if (ring_put(out, (size_t)k) == 0)
			pthread_cond_signal(&ring.cv);
		else {
			ring.dropped++;
			ring.unsaid++;
		}
		pthread_mutex_unlock(&ring.mu);
		return;
	}
	pthread_mutex_unlock(&ring.mu);
	fwrite(out, 1, (size_t)k, stderr);
}

void
log_msg(int level, const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, who, fmt, ap);
	va_end(ap);
}
