/*
 * bench.h - parley-bench: a one-thread libevent load generator for STOMP 1.2
 * over WebSocket and TCP, and a trivial fan-out reflector that shows the
 * machine's ceiling.  Shared declarations of hist.c, net.c, proto.c,
 * gen.c and reflect.c.
 */
#ifndef PARLEY_BENCH_H
#define PARLEY_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct event_base;
struct event;

/* ------------------------------------------------------------ hist.c */

/*
 * Log-bucket latency histogram in microseconds: 16 linear sub-buckets per
 * power of two (relative error under 6.25%), values up to 2^40 us.  No
 * allocation; record is a few instructions.
 */
#define HIST_SUB	16
#define HIST_EXP	41
struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t min;
	double sum;
	uint64_t b[HIST_EXP * HIST_SUB];
};

void	 hist_init(struct hist *h);
void	 hist_add(struct hist *h, uint64_t us);
void	 hist_merge(struct hist *dst, const struct hist *src);
/* The value below which q (0..1) of the samples lie (bucket upper bound,
 * capped at the max seen); 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

/* ------------------------------------------------------------ net.c */

/*
 * A non-blocking socket with its own small buffers, driven by libevent.
 * Input: each readable event reads into one shared buffer (the previous
 * partial frame, kept in carry, copied in front of it) and hands the bytes
 * to on_data, which returns how many it consumed; the rest is carried.
 * Output: io_write appends to out; all dirty sockets are written once at
 * the end of the loop turn (one write(2) per socket per turn, many frames
 * per write).  io_close defers the free to the end of the turn, so an io
 * stays valid inside its own callbacks.
 */
struct io;
typedef ssize_t	(*io_data_fn)(struct io *io, char *buf, size_t len);
typedef void	(*io_event_fn)(struct io *io, int what, int err);

#define IO_EV_CONNECTED	1	/* connect(2) finished (err 0 or errno) */
#define IO_EV_CLOSED	2	/* peer closed (err 0) or failed (errno) */

struct io {
	int fd;
	int closed;		/* io_close called: ignore everything */
	int connecting;
	int dirty;		/* on the flush list */
	int wpending;		/* waiting for EV_WRITE */
	struct event *rev, *wev;
	char *out;		/* pending output, malloc'ed, grows */
	size_t olen, ocap;
	char *carry;		/* unconsumed input, malloc'ed, grows */
	size_t clen, ccap;
	io_data_fn on_data;
	io_event_fn on_event;
	void *arg;		/* owner (generator client or reflector conn) */
	uint64_t bytes_in, bytes_out;
	TAILQ_ENTRY(io) flushq;
	TAILQ_ENTRY(io) freeq;
};

int	 net_init(struct event_base *base);
void	 net_fini(void);
/* Start a non-blocking connect; IO_EV_CONNECTED reports the result. */
struct io *io_connect(const char *host, int port, io_data_fn, io_event_fn,
	    void *arg);
/* Wrap an accepted socket. */
struct io *io_accept(int fd, io_data_fn, io_event_fn, void *arg);
/* Append to the output buffer (copied); -1 when out of memory. */
int	 io_write(struct io *io, const void *data, size_t len);
/* Reserve n bytes at the end of out and return them (commit with
 * io_commit(io, used)); NULL when out of memory. */
char	*io_reserve(struct io *io, size_t n);
void	 io_commit(struct io *io, size_t n);
/* Stop reading and writing; freed at the end of the loop turn. */
void	 io_close(struct io *io);
/* Write every dirty socket now (also done at the end of each turn). */
void	 io_flush_all(void);
/* Raise RLIMIT_NOFILE to the hard limit; returns the new soft limit. */
long	 raise_nofile(void);
uint64_t now_ns(void);		/* CLOCK_MONOTONIC */

/* ------------------------------------------------------------ proto.c */

/* A parsed WebSocket frame (payload unmasked in place). */
struct wsframe {
	int fin;
	int opcode;
	char *payload;
	size_t len;
};

/*
 * Parse one WebSocket frame at buf.  Returns the bytes it spans, 0 when
 * more input is needed, -1 on a protocol error (a frame larger than max).
 * Masked payloads are unmasked in place.
 */
ssize_t	 ws_parse(char *buf, size_t len, size_t max, struct wsframe *f);
/* Append a frame header; masked when mask is non-NULL (4 bytes written
 * there).  Returns the header length (2..14). */
size_t	 ws_header(unsigned char *h, int opcode, size_t len, int masked,
	    uint32_t *maskkey);
/* Append one whole frame to io: masked (client) or not (server). */
int	 ws_send(struct io *io, int opcode, const char *data, size_t len,
	    int masked);
/* Sec-WebSocket-Accept for key (base64 of SHA-1), into out[29+]. */
void	 ws_accept(const char *key, size_t keylen, char *out);

/* A parsed STOMP frame: pointers into the input buffer. */
struct sframe {
	const char *cmd;
	size_t cmdlen;
	const char *hdr;	/* header lines, "name:value\n"... */
	size_t hdrlen;
	const char *body;
	size_t bodylen;
	int eols;		/* heart-beat EOLs skipped before it */
};

/*
 * Parse one STOMP frame at buf (EOLs before it are heart-beats, counted in
 * f->eols).  Returns the bytes it spans (with its NUL), 0 when more input
 * is needed, -1 when malformed or larger than max.  With only EOLs in buf
 * returns their count and sets f->cmd = NULL.
 */
ssize_t	 stomp_parse(const char *buf, size_t len, size_t max,
	    struct sframe *f);
/* Value of header name (first occurrence) copied to out (NUL-terminated,
 * truncated to outlen); -1 when absent. */
int	 stomp_hdr(const struct sframe *f, const char *name, char *out,
	    size_t outlen);
int	 stomp_is(const struct sframe *f, const char *cmd);

/*
 * A benchmark body: "PB<room>:<publisher>:<seq>:<send time, ns>:" then
 * padding.  pb_parse reads the four numbers; -1 when one is missing.
 */
struct pbody {
	uint64_t room, pub, seq, t;
};

int	 pb_parse(const char *b, size_t len, struct pbody *pb);

/* ------------------------------------------------------------ reflect.c */

/* Run the reflector until SIGINT/SIGTERM.  ws_listen and stomp_listen are
 * "host:port" or NULL.  drop/dup (0 = off): drop or duplicate every n-th
 * delivery, so that tests can show the generator catches it. */
int	 reflect_main(const char *ws_listen, const char *stomp_listen,
	    int quiet, unsigned drop, unsigned dup);

/* ------------------------------------------------------------ gen.c */

int	 gen_main(int argc, char **argv);

/* host:port split; port 0 on error. */
int	 split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
