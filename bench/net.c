/*
 * net.c - non-blocking sockets with batched output (see bench.h).
 *
 * One shared read buffer for every socket: a readable event copies the
 * socket's carried partial frame in front, reads after it and hands the
 * lot to the owner's on_data.  Output is appended to a per-socket buffer
 * and written by one deferred event at the end of the loop turn, so a turn
 * that queues many frames for a socket costs one write(2).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "bench.h"

#define RBUF_SIZE	(8u << 20)	/* shared read buffer */
#define READ_MAX	(256u << 10)	/* most bytes read per event */
#define CARRY_MAX	(RBUF_SIZE - READ_MAX)

static struct event_base *base;
static char *rbuf;
static struct event *flush_ev;
static TAILQ_HEAD(, io) dirtyq = TAILQ_HEAD_INITIALIZER(dirtyq);
static TAILQ_HEAD(, io) deadq = TAILQ_HEAD_INITIALIZER(deadq);
static int flush_armed;

static void io_read_cb(evutil_socket_t fd, short what, void *arg);
static void io_write_cb(evutil_socket_t fd, short what, void *arg);

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

static void
io_free(struct io *io)
{
	if (io->rev != NULL)
		event_free(io->rev);
	if (io->wev != NULL)
		event_free(io->wev);
	free(io->out);
	free(io->carry);
	free(io);
}

static void
arm_flush(void)
{
	if (!flush_armed) {
		flush_armed = 1;
		event_active(flush_ev, EV_WRITE, 0);
	}
}

/* the peer is gone: tell the owner, then close */
static void
io_fail(struct io *io, int err)
{
	if (io->closed)
		return;
	if (io->on_event != NULL)
		io->on_event(io, IO_EV_CLOSED, err);
	io_close(io);
}

/* write what is pending; 0, or -1 when the socket failed (closed) */
static int
io_do_write(struct io *io)
{
	ssize_t n;

	while (io->olen > 0) {
		n = write(io->fd, io->out, io->olen);
		if (n > 0) {
			io->bytes_out += (uint64_t)n;
			if ((size_t)n < io->olen)
				memmove(io->out, io->out + n, io->olen -
				    (size_t)n);
			io->olen -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!io->wpending) {
				io->wpending = 1;
				event_add(io->wev, NULL);
			}
			return 0;
		}
		io_fail(io, n == -1 ? errno : EPIPE);
		return -1;
	}
	if (io->wpending) {
		io->wpending = 0;
		event_del(io->wev);
	}
	return 0;
}

void
io_flush_all(void)
{
	struct io *io;

	while ((io = TAILQ_FIRST(&dirtyq)) != NULL) {
		TAILQ_REMOVE(&dirtyq, io, flushq);
		io->dirty = 0;
		if (!io->closed && !io->wpending && !io->connecting)
			io_do_write(io);
	}
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io;

	(void)fd;
	(void)what;
	(void)arg;
	flush_armed = 0;
	io_flush_all();
	while ((io = TAILQ_FIRST(&deadq)) != NULL) {
		TAILQ_REMOVE(&deadq, io, freeq);
		io_free(io);
	}
}

int
net_init(struct event_base *b)
{
	base = b;
	if ((rbuf = malloc(RBUF_SIZE)) == NULL)
		return -1;
	if ((flush_ev = event_new(base, -1, 0, flush_cb, NULL)) == NULL)
		return -1;
	return 0;
}

void
net_fini(void)
{
	flush_cb(-1, 0, NULL);
	if (flush_ev != NULL)
		event_free(flush_ev);
	free(rbuf);
}

static struct io *
io_new(int fd, io_data_fn on_data, io_event_fn on_event, void *arg)
{
	struct io *io;

	if ((io = calloc(1, sizeof(*io))) == NULL)
		return NULL;
	io->fd = fd;
	io->on_data = on_data;
	io->on_event = on_event;
	io->arg = arg;
	io->rev = event_new(base, fd, EV_READ | EV_PERSIST, io_read_cb, io);
	io->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, io_write_cb, io);
	if (io->rev == NULL || io->wev == NULL) {
		io_free(io);
		return NULL;
	}
	return io;
}

static int
resolve(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	static char last_host[256];
	static int last_port;
	static struct sockaddr_storage last_ss;
	static socklen_t last_len;
	struct addrinfo hints, *res;
	char ps[16];

	if (last_len != 0 && last_port == port &&
	    strcmp(last_host, host) == 0) {
		*ss = last_ss;
		*sslen = last_len;
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0 || res == NULL)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(last_host, sizeof(last_host), "%s", host);
	last_port = port;
	last_ss = *ss;
	last_len = *sslen;
	return 0;
}

struct io *
io_connect(const char *host, int port, io_data_fn on_data,
    io_event_fn on_event, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct io *io;
	int fd, one = 1;

	if (resolve(host, port, &ss, &sslen) == -1) {
		errno = EHOSTUNREACH;
		return NULL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((io = io_new(fd, on_data, on_event, arg)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) == -1 &&
	    errno != EINPROGRESS) {
		int e = errno;

		io_free(io);
		close(fd);
		errno = e;
		return NULL;
	}
	io->connecting = 1;
	io->wpending = 1;
	event_add(io->wev, NULL);
	return io;
}

struct io *
io_accept(int fd, io_data_fn on_data, io_event_fn on_event, void *arg)
{
	struct io *io;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((io = io_new(fd, on_data, on_event, arg)) == NULL)
		return NULL;
	event_add(io->rev, NULL);
	return io;
}

static void
io_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;

	(void)what;
	if (io->closed)
		return;
	if (io->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		io->connecting = 0;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1)
			err = errno;
		io->wpending = 0;
		event_del(io->wev);
		if (err != 0) {
			if (io->on_event != NULL)
				io->on_event(io, IO_EV_CONNECTED, err);
			io_close(io);
			return;
		}
		event_add(io->rev, NULL);
		if (io->on_event != NULL)
			io->on_event(io, IO_EV_CONNECTED, 0);
		if (!io->closed && io->olen > 0)
			io_do_write(io);
		return;
	}
	io_do_write(io);
}

static void
io_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;
	size_t have, total, left;
	ssize_t n, used;

	(void)what;
	if (io->closed)
		return;
	have = io->clen;
	if (have > 0)
		memcpy(rbuf, io->carry, have);
	n = read(fd, rbuf + have, READ_MAX);
	if (n == 0) {
		io_fail(io, 0);
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			io_fail(io, errno);
		return;
	}
	io->bytes_in += (uint64_t)n;
	total = have + (size_t)n;
	used = io->on_data(io, rbuf, total);
	if (io->closed)
		return;
	if (used < 0) {
		io_fail(io, EPROTO);
		return;
	}
	left = total - (size_t)used;
	if (left > CARRY_MAX) {
		io_fail(io, EMSGSIZE);
		return;
	}
	if (left > io->ccap) {
		size_t cap = io->ccap ? io->ccap : 256;
		char *p;

		while (cap < left)
			cap *= 2;
		if ((p = realloc(io->carry, cap)) == NULL) {
			io_fail(io, ENOMEM);
			return;
		}
		io->carry = p;
		io->ccap = cap;
	}
	if (left > 0)
		memcpy(io->carry, rbuf + used, left);
	io->clen = left;
}

char *
io_reserve(struct io *io, size_t n)
{
	if (io->olen + n > io->ocap) {
		size_t cap = io->ocap ? io->ocap : 512;
		char *p;

		while (cap < io->olen + n)
			cap *= 2;
		if ((p = realloc(io->out, cap)) == NULL)
			return NULL;
		io->out = p;
		io->ocap = cap;
	}
	return io->out + io->olen;
}

void
io_commit(struct io *io, size_t n)
{
	io->olen += n;
	if (!io->dirty && !io->closed) {
		io->dirty = 1;
		TAILQ_INSERT_TAIL(&dirtyq, io, flushq);
		arm_flush();
	}
}

int
io_write(struct io *io, const void *data, size_t len)
{
	char *p;

	if (io->closed)
		return -1;
	if ((p = io_reserve(io, len)) == NULL)
		return -1;
	memcpy(p, data, len);
	io_commit(io, len);
	return 0;
}

void
io_close(struct io *io)
{
	if (io->closed)
		return;
	io->closed = 1;
	event_del(io->rev);
	event_del(io->wev);
	close(io->fd);
	io->fd = -1;
	if (io->dirty) {
		TAILQ_REMOVE(&dirtyq, io, flushq);
		io->dirty = 0;
	}
	TAILQ_INSERT_TAIL(&deadq, io, freeq);
	arm_flush();
}

int
split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	size_t n;

	*port = 0;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		n = (size_t)(end - s - 1);
		if (n >= hostlen)
			return -1;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		colon = end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		n = (size_t)(colon - s);
		if (n >= hostlen)
			return -1;
		memcpy(host, s, n);
		host[n] = '\0';
	}
	*port = atoi(colon + 1);
	return *port > 0 && *port < 65536 ? 0 : -1;
}
