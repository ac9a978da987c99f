/*
 * gen.c - the load generator: scenarios, clients, accounting, report.
 *
 * One thread, one libevent loop.  Every client is a struct client on a
 * struct io (net.c); it walks connect -> WebSocket handshake (ws://) ->
 * CONNECT -> CONNECTED -> SUBSCRIBE with a receipt -> ready.  Publishers
 * send SEND frames whose body is
 *
 *	PB<room>:<publisher>:<seq>:<send time, ns, CLOCK_MONOTONIC>:xxxx...
 *
 * padded to --size bytes; seq counts per publisher, and each publisher
 * sends to one room, so with one publisher per room it is the room's
 * sequence.  Every subscriber keeps, per publisher of its room, the next
 * sequence it expects and a 64-bit window of the ones below it: that
 * yields gaps, duplicates and reordering without any per-message memory.
 * Latency is taken once per read (all frames of one read arrived
 * together) and goes into a log-bucket histogram.  Nothing is allocated
 * per message.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "bench.h"

#define MAX_URLS	16
#define MAX_FRAME	(4u << 20)

enum scenario { SC_FANOUT, SC_ROOMS, SC_IDLE, SC_STORM, SC_HISTORY,
	SC_CROSS };
static const char *const scenario_names[] = { "fanout", "rooms", "idle",
	"storm", "history", "cross" };

enum cstate { C_CONNECTING, C_HANDSHAKE, C_CONNECTED_WAIT, C_SUBSCRIBING,
	C_READY, C_DEAD };
enum role { ROLE_SUB, ROLE_PUB, ROLE_RESUMER };

struct url {
	int ws;			/* ws:// (else tcp://) */
	char host[256];
	int port;
	char path[256];
};

struct track {			/* one publisher's stream, seen by one sub */
	uint64_t next;		/* next sequence expected */
	uint64_t seen;		/* bit d: seq next-1-d was received */
};

struct client {
	struct io *io;
	int idx;
	enum role role;
	enum cstate state;
	int url;
	int room;
	int pub;		/* publisher: its index within the room */
	uint64_t t_start;	/* connect(2) started */
	uint64_t t_sub;		/* SUBSCRIBE sent */
	uint64_t seq;		/* publisher: next sequence */
	uint64_t inflight;	/* publisher: receipts outstanding */
	uint64_t got;		/* deliveries received */
	int receipted;		/* resumer: SUBSCRIBE receipt seen */
	int done;		/* resumer: everything replayed */
	struct track *tr;	/* subscriber: one per publisher of the room */
};

static struct {
	enum scenario sc;
	struct url urls[MAX_URLS];
	int nurls;
	const char *target;
	int subs, rooms, ppr, size;
	double rate;
	int window, duration, concurrency, heartbeat, history;
	long pid;
	const char *csv, *label, *prefix, *login, *passcode, *vhost;
	const char *resume;
	int drain, settle_ms, cpu, receipts, quiet;
	const char *sendhdr;	/* --header: extra SEND header line */
	int idle_subs;		/* --idle-subs: more subscriptions per
				 * subscriber, to rooms nobody publishes to */
	int login_fixed;	/* same login for every client */
} opt;

static struct {
	uint64_t sent, receipts, expected, received, gaps, dups, reorder;
	uint64_t other, errors, conn_errors, closed, eols;
	uint64_t last_other_ns, last_delivery_ns, last_progress_ns;
	uint64_t bytes_in, bytes_in0;	/* all bytes read; at the start */
	struct hist lat, conn, resume;
	char first_error[256];
} st;

static struct event_base *base;
static struct client *clients;
static int nclients, nstarted, nready, nfailed, inflight_connects;
static int *room_subs;		/* ready subscribers per room */
static struct event *tick_ev;
static char runid[32];
static int publishing;
static uint64_t t_phase, t_run0, t_run_end;
static uint64_t t_connected;	/* every client ready; settle starts */
static int next_pub;
static enum { P_CONNECT, P_HISTFILL, P_SETTLE, P_RUN, P_DRAIN, P_DONE }
    phase;

/* measurements */
static struct procsnap {
	double cpu_s;		/* utime + stime */
	double user_s;		/* utime alone */
	long rss_kib;
	uint64_t syscw;		/* write(2)-family calls, /proc/PID/io */
} srv0, srv1, srvbase;
static long srv_rss_peak;
static int srv1_ok;		/* the last reading worked (server alive) */
static double gen_cpu0, gen_cpu1;
static double sys_busy0, sys_busy1;	/* all CPUs, seconds, /proc/stat */

/*
 * The /proc files are opened once, before the clients: a run that uses
 * every descriptor the generator may have (storm, idle) can still read
 * them at its end.  Each read starts at offset 0 and gets fresh values.
 */
static int fd_sysstat = -1, fd_stat = -1, fd_status = -1, fd_io = -1;

static void
proc_open(long pid)
{
	char path[64];

	fd_sysstat = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd_stat = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	fd_status = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%ld/io", pid);
	fd_io = open(path, O_RDONLY | O_CLOEXEC);
}

/* Read fd from its start into buf (NUL-terminated).  Returns 0 or -1. */
static int
proc_get(int fd, char *buf, size_t len)
{
	ssize_t n;

	if (fd < 0 || (n = pread(fd, buf, len - 1, 0)) <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* CPU seconds the whole machine was busy (all CPUs) */
static double
sys_busy(void)
{
	unsigned long long v[8] = { 0 };
	char buf[512];
	int n;

	if (proc_get(fd_sysstat, buf, sizeof(buf)) == -1)
		return 0;
	n = sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	if (n < 4)
		return 0;
	/* user nice system [idle] [iowait] irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
	    (double)sysconf(_SC_CLK_TCK);
}

static void client_start(struct client *c);
static void start_run(void);
static void finish(void);
static void pub_send(struct client *c);

/* ------------------------------------------------------------ helpers */

static void
note_error(const char *fmt, ...)
{
	va_list ap;

	st.errors++;
	if (st.first_error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(st.first_error, sizeof(st.first_error), fmt, ap);
		va_end(ap);
		if (!opt.quiet)
			fprintf(stderr, "parley-bench: %s\n", st.first_error);
	}
}

static int
proc_read(long pid, struct procsnap *s)
{
	char buf[4096], *p;
	unsigned long long ut, stt;
	int i;

	s->cpu_s = 0;
	s->user_s = 0;
	s->rss_kib = 0;
	s->syscw = 0;
	if (pid <= 0 || proc_get(fd_stat, buf, sizeof(buf)) == -1 ||
	    (p = strrchr(buf, ')')) == NULL)
		return -1;
	/* after "pid (comm)": field 3 is state; utime is field 14 */
	p += 2;
	for (i = 3; i < 14 && p != NULL; i++)
		if ((p = strchr(p, ' ')) != NULL)
			p++;
	if (p == NULL || sscanf(p, "%llu %llu", &ut, &stt) != 2)
		return -1;
	s->cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
	s->user_s = (double)ut / (double)sysconf(_SC_CLK_TCK);
	if (proc_get(fd_status, buf, sizeof(buf)) == -1 ||
	    (p = strstr(buf, "\nVmRSS:")) == NULL)
		return -1;
	s->rss_kib = strtol(p + 8, NULL, 10);
	/* write syscalls: how many deliveries one write carries (needs the
	 * same user or root; 0 when unreadable) */
	if (proc_get(fd_io, buf, sizeof(buf)) == 0 &&
	    (p = strstr(buf, "syscw:")) != NULL)
		s->syscw = strtoull(p + 6, NULL, 10);
	return 0;
}

static double
self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
parse_url(const char *s, struct url *u)
{
	const char *hp, *slash;
	char hostport[300];
	size_t n;

	memset(u, 0, sizeof(*u));
	if (strncmp(s, "ws://", 5) == 0) {
		u->ws = 1;
		hp = s + 5;
	} else if (strncmp(s, "tcp://", 6) == 0 ||
	    strncmp(s, "stomp://", 8) == 0)
		hp = strchr(s, '/') + 2;
	else
		return -1;
	slash = strchr(hp, '/');
	n = slash ? (size_t)(slash - hp) : strlen(hp);
	if (n >= sizeof(hostport))
		return -1;
	memcpy(hostport, hp, n);
	hostport[n] = '\0';
	snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
	return split_hostport(hostport, u->host, sizeof(u->host), &u->port);
}

/* ------------------------------------------------------------ output */

static int
send_frame(struct client *c, const char *data, size_t len)
{
	if (opt.urls[c->url].ws)
		return ws_send(c->io, 0x1, data, len, 1);
	return io_write(c->io, data, len);
}

static void
send_connect(struct client *c)
{
	char buf[512], login[160];
	int n;

	/* a login per client, except with a fixed account (RabbitMQ guest) */
	if (opt.login_fixed)
		snprintf(login, sizeof(login), "%s", opt.login);
	else
		snprintf(login, sizeof(login), "%s%d", opt.login, c->idx);
	n = snprintf(buf, sizeof(buf), "CONNECT\naccept-version:1.2\n"
	    "host:%s\nlogin:%s\npasscode:%s\nheart-beat:%d,%d\n\n",
	    opt.vhost, login, opt.passcode, opt.heartbeat, opt.heartbeat);
	send_frame(c, buf, (size_t)n + 1);
}

static void
send_subscribe(struct client *c, const char *extra, char rtag)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf), "SUBSCRIBE\nid:s%d\ndestination:%s%s-%d"
	    "\nack:auto\n%s%sreceipt:%c%d\n\n", c->idx, opt.prefix, runid,
	    c->room, extra ? extra : "", extra ? "\n" : "", rtag, c->idx);
	c->t_sub = now_ns();
	send_frame(c, buf, (size_t)n + 1);
}

/* --idle-subs: subscriptions to rooms of their own that nobody publishes
 * to, before the measured one (whose receipt then covers them too) */
static void
send_idle_subscribes(struct client *c)
{
	char buf[512];
	int k, n;

	for (k = 0; k < opt.idle_subs; k++) {
		n = snprintf(buf, sizeof(buf), "SUBSCRIBE\nid:i%d-%d\n"
		    "destination:%s%s-idle-%d-%d\nack:auto\n\n", c->idx, k,
		    opt.prefix, runid, c->idx, k);
		send_frame(c, buf, (size_t)n + 1);
	}
}

/* one SEND; body "PB<room>:<pub>:<seq>:<ns>:" padded with 'x' */
static void
pub_send(struct client *c)
{
	char frame[512 + 65536], body[128], *p;
	size_t bl, hl, blen;
	uint64_t t = now_ns();
	int n;

	n = snprintf(body, sizeof(body), "PB%d:%d:%" PRIu64 ":%" PRIu64 ":",
	    c->room, c->pub, c->seq, t);
	bl = (size_t)n;
	blen = (size_t)opt.size > bl ? (size_t)opt.size : bl;
	if (opt.receipts || opt.rate == 0 || phase == P_HISTFILL)
		n = snprintf(frame, 512, "SEND\ndestination:%s%s-%d\n"
		    "content-length:%zu\n%s%sreceipt:p%" PRIu64 "\n\n",
		    opt.prefix, runid, c->room, blen, opt.sendhdr ?
		    opt.sendhdr : "", opt.sendhdr ? "\n" : "", c->seq);
	else
		n = snprintf(frame, 512, "SEND\ndestination:%s%s-%d\n"
		    "content-length:%zu\n%s%s\n", opt.prefix, runid, c->room,
		    blen, opt.sendhdr ? opt.sendhdr : "", opt.sendhdr ? "\n" :
		    "");
	hl = (size_t)n;
	p = frame + hl;
	memcpy(p, body, bl);
	if (blen > bl)
		memset(p + bl, 'x', blen - bl);
	p[blen] = '\0';
	if (send_frame(c, frame, hl + blen + 1) == -1)
		return;
	c->seq++;
	st.sent++;
	if (opt.receipts || opt.rate == 0 || phase == P_HISTFILL)
		c->inflight++;
	if (phase != P_HISTFILL)
		st.expected += (uint64_t)room_subs[c->room];
}

/* ------------------------------------------------------------ input */

static void
delivery(struct client *c, const char *b, size_t len, uint64_t now)
{
	struct pbody pb;
	uint64_t room, pub, seq, t, d;
	struct track *tr;

	if (pb_parse(b, len, &pb) == -1) {
		note_error("malformed benchmark body");
		return;
	}
	room = pb.room;
	pub = pb.pub;
	seq = pb.seq;
	t = pb.t;
	if (c->tr == NULL || room != (uint64_t)c->room ||
	    pub >= (uint64_t)opt.ppr) {
		note_error("client %d (room %d) got a message for room %" PRIu64
		    " publisher %" PRIu64, c->idx, c->room, room, pub);
		return;
	}
	st.received++;
	c->got++;
	st.last_delivery_ns = now;
	if (c->role == ROLE_RESUMER)
		;		/* history replay: sent long ago, no latency */
	else if (now > t)
		hist_add(&st.lat, (now - t) / 1000);
	else
		hist_add(&st.lat, 0);
	tr = &c->tr[pub];
	if (seq == tr->next) {
		tr->next++;
		tr->seen = (tr->seen << 1) | 1;
	} else if (seq > tr->next) {
		d = seq - tr->next;
		st.gaps += d;
		tr->seen = d + 1 >= 64 ? 1 : (tr->seen << (d + 1)) | 1;
		tr->next = seq + 1;
	} else {
		d = tr->next - 1 - seq;
		if (d < 64 && ((tr->seen >> d) & 1))
			st.dups++;
		else {
			if (d < 64)
				tr->seen |= (uint64_t)1 << d;
			st.reorder++;
			if (st.gaps > 0)
				st.gaps--;	/* late, not lost */
		}
	}
	if (c->role == ROLE_RESUMER && c->got == (uint64_t)opt.history &&
	    c->receipted && !c->done) {
		c->done = 1;
		hist_add(&st.resume, (now - c->t_sub) / 1000);
	}
}

static void
client_ready(struct client *c, uint64_t now)
{
	c->state = C_READY;
	nready++;
	inflight_connects--;
	hist_add(&st.conn, (now - c->t_start) / 1000);
	if (c->role == ROLE_SUB)
		room_subs[c->room]++;
	st.last_progress_ns = now;
}

static void
client_failed(struct client *c)
{
	if (c->state == C_DEAD)
		return;
	if (c->state != C_READY) {
		nfailed++;
		inflight_connects--;
		st.conn_errors++;
	} else {
		st.closed++;
		if (c->role == ROLE_SUB)
			room_subs[c->room]--;
	}
	c->state = C_DEAD;
	if (c->io != NULL && !c->io->closed)
		io_close(c->io);
	c->io = NULL;
}

static void
on_receipt(struct client *c, const struct sframe *f, uint64_t now)
{
	char id[64];

	if (stomp_hdr(f, "receipt-id", id, sizeof(id)) == -1) {
		note_error("RECEIPT without receipt-id");
		return;
	}
	switch (id[0]) {
	case 's':
		if (c->state == C_SUBSCRIBING)
			client_ready(c, now);
		break;
	case 'h':
		c->receipted = 1;
		if (c->got >= (uint64_t)opt.history && !c->done) {
			c->done = 1;
			hist_add(&st.resume, (now - c->t_sub) / 1000);
		}
		break;
	case 'p':
		if (c->inflight > 0)
			c->inflight--;
		st.receipts++;
		st.last_progress_ns = now;
		if (publishing && opt.rate == 0)
			while (c->inflight < (uint64_t)opt.window)
				pub_send(c);
		else if (phase == P_HISTFILL && c->seq < (uint64_t)opt.history)
			while (c->inflight < (uint64_t)opt.window &&
			    c->seq < (uint64_t)opt.history)
				pub_send(c);
		break;
	default:
		note_error("unexpected receipt-id %s", id);
	}
}

static void
on_frame(struct client *c, const struct sframe *f, uint64_t now)
{
	if (f->cmd == NULL) {
		st.eols += (uint64_t)f->eols;
		return;
	}
	if (f->cmdlen == 7 && memcmp(f->cmd, "MESSAGE", 7) == 0) {
		if (f->bodylen >= 2 && f->body[0] == 'P' && f->body[1] == 'B')
			delivery(c, f->body, f->bodylen, now);
		else {
			st.other++;
			st.last_other_ns = now;
		}
	} else if (stomp_is(f, "RECEIPT"))
		on_receipt(c, f, now);
	else if (stomp_is(f, "CONNECTED")) {
		if (c->state != C_CONNECTED_WAIT)
			return;
		if (c->role == ROLE_SUB) {
			c->state = C_SUBSCRIBING;
			send_idle_subscribes(c);
			send_subscribe(c, NULL, 's');
		} else
			client_ready(c, now);
	} else if (stomp_is(f, "ERROR")) {
		char msg[200] = "";

		stomp_hdr(f, "message", msg, sizeof(msg));
		note_error("client %d: ERROR frame: %s", c->idx, msg);
		client_failed(c);
	} else
		note_error("unexpected %.*s frame", (int)f->cmdlen, f->cmd);
}

/* STOMP frames in buf */
static ssize_t
stomp_in(struct client *c, const char *buf, size_t len, uint64_t now)
{
	size_t off = 0;
	struct sframe f;
	ssize_t n;

	while (off < len && c->state != C_DEAD) {
		n = stomp_parse(buf + off, len - off, MAX_FRAME, &f);
		if (n < 0) {
			note_error("client %d: malformed STOMP frame",
			    c->idx);
			client_failed(c);
			return -1;
		}
		if (n == 0)
			break;
		on_frame(c, &f, now);
		off += (size_t)n;
	}
	return (ssize_t)off;
}

static ssize_t
handshake_in(struct client *c, const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);

	if (end == NULL)
		return len > 16384 ? -1 : 0;
	if (len < 12 || memcmp(buf + 9, "101", 3) != 0) {
		const char *nl = memchr(buf, '\r', len);

		note_error("client %d: WebSocket upgrade refused: %.*s",
		    c->idx, (int)(nl ? nl - buf : 40), buf);
		client_failed(c);
		return -1;
	}
	c->state = C_CONNECTED_WAIT;
	send_connect(c);
	return end + 4 - buf;
}

static ssize_t
c_data(struct io *io, char *buf, size_t len)
{
	struct client *c = io->arg;
	uint64_t now = now_ns();
	size_t off = 0;
	struct wsframe wf;
	ssize_t n;

	st.bytes_in += len;
	if (!opt.urls[c->url].ws)
		return stomp_in(c, buf, len, now);
	if (c->state == C_HANDSHAKE) {
		if ((n = handshake_in(c, buf, len)) <= 0)
			return n;
		off = (size_t)n;
	}
	while (off < len && c->state != C_DEAD) {
		n = ws_parse(buf + off, len - off, MAX_FRAME, &wf);
		if (n < 0) {
			note_error("client %d: WebSocket frame too large",
			    c->idx);
			client_failed(c);
			return -1;
		}
		if (n == 0)
			break;
		off += (size_t)n;
		if (!wf.fin || wf.opcode == 0) {
			note_error("client %d: fragmented WebSocket messages "
			    "are not supported", c->idx);
			client_failed(c);
			return -1;
		}
		switch (wf.opcode) {
		case 0x1:
		case 0x2:
			stomp_in(c, wf.payload, wf.len, now);
			break;
		case 0x8:
			note_error("client %d: server sent WebSocket close %d: "
			    "%.*s", c->idx, wf.len >= 2 ?
			    ((unsigned char)wf.payload[0] << 8 |
			    (unsigned char)wf.payload[1]) : 0,
			    wf.len > 2 ? (int)wf.len - 2 : 0, wf.payload + 2);
			client_failed(c);
			return -1;
		case 0x9:
			ws_send(io, 0xa, wf.payload, wf.len, 1);
			break;
		default:
			break;
		}
	}
	return (ssize_t)off;
}

static void
c_event(struct io *io, int what, int err)
{
	struct client *c = io->arg;

	if (what == IO_EV_CONNECTED) {
		if (err != 0) {
			note_error("client %d: connect: %s", c->idx,
			    strerror(err));
			c->io = NULL;	/* net.c closes it */
			client_failed(c);
			return;
		}
		if (opt.urls[c->url].ws) {
			char req[768];
			struct url *u = &opt.urls[c->url];
			int n;

			n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
			    "Host: %s:%d\r\nUpgrade: websocket\r\n"
			    "Connection: Upgrade\r\n"
			    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			    "Sec-WebSocket-Version: 13\r\n"
			    "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n",
			    u->path, u->host, u->port);
			c->state = C_HANDSHAKE;
			io_write(io, req, (size_t)n);
		} else {
			c->state = C_CONNECTED_WAIT;
			send_connect(c);
		}
		return;
	}
	if (phase != P_DONE)
		note_error("client %d: connection %s%s%s", c->idx,
		    err ? "failed: " : "closed by the server",
		    err ? strerror(err) : "", "");
	c->io = NULL;
	client_failed(c);
}

static void
client_start(struct client *c)
{
	c->t_start = now_ns();
	c->state = C_CONNECTING;
	inflight_connects++;
	nstarted++;
	c->io = io_connect(opt.urls[c->url].host, opt.urls[c->url].port,
	    c_data, c_event, c);
	if (c->io == NULL) {
		note_error("client %d: connect: %s", c->idx, strerror(errno));
		client_failed(c);
	}
}

static void
pump_connects(void)
{
	while (nstarted < nclients && inflight_connects < opt.concurrency)
		client_start(&clients[nstarted]);
}

/* ------------------------------------------------------------ phases */

static int
all_connected(void)
{
	return nstarted == nclients && nready + nfailed == nclients;
}

static void
heartbeats(uint64_t now)
{
	static uint64_t last;
	static int slot;
	int nslots, i;

	if (opt.heartbeat <= 0 || now - last < 100000000ull)
		return;
	last = now;
	nslots = opt.heartbeat / 100 > 0 ? opt.heartbeat / 100 : 1;
	slot = (slot + 1) % nslots;
	for (i = slot; i < nclients; i += nslots) {
		struct client *c = &clients[i];

		if (c->state == C_READY && c->io != NULL)
			send_frame(c, "\n", 1);
	}
}

static void
start_resume(void)
{
	int i;

	for (i = 0; i < nclients; i++) {
		struct client *c = &clients[i];

		if (c->role == ROLE_RESUMER && c->state == C_READY)
			send_subscribe(c, opt.resume, 'h');
	}
}

static int
resumers_done(void)
{
	int i;

	for (i = 0; i < nclients; i++)
		if (clients[i].role == ROLE_RESUMER &&
		    clients[i].state == C_READY && !clients[i].done)
			return 0;
	return 1;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns();
	struct procsnap ps;

	(void)fd;
	(void)what;
	(void)arg;
	heartbeats(now);
	switch (phase) {
	case P_CONNECT:
		pump_connects();
		if (!all_connected()) {
			if (now - st.last_progress_ns > 30000000000ull) {
				note_error("connect phase stalled: %d of %d "
				    "ready", nready, nclients);
				finish();
			}
			break;
		}
		t_phase = now;
		t_connected = now;
		if (opt.sc == SC_STORM) {
			t_run_end = st.last_progress_ns;
			finish();
			break;
		}
		if (opt.sc == SC_HISTORY) {
			/* the publisher is client 0: fill the room first */
			struct client *p = &clients[0];

			if (p->state != C_READY) {
				note_error("history: the publisher could not "
				    "connect");
				finish();
				break;
			}
			phase = P_HISTFILL;
			st.last_progress_ns = now;
			while (p->inflight < (uint64_t)opt.window &&
			    p->seq < (uint64_t)opt.history)
				pub_send(p);
			break;
		}
		phase = P_SETTLE;
		break;
	case P_HISTFILL:
		if (clients[0].seq >= (uint64_t)opt.history &&
		    clients[0].inflight == 0) {
			st.expected = (uint64_t)(nready - 1) *
			    (uint64_t)opt.history;
			start_run();
			start_resume();
		} else if (now - st.last_progress_ns > 30000000000ull) {
			note_error("history: receipts stopped coming");
			finish();
		}
		break;
	case P_SETTLE:
		/* presence events (joins) fanned out to the subscribers must
		 * be over before the clock starts */
		if (now - t_phase >= (uint64_t)opt.settle_ms * 1000000ull &&
		    now - st.last_other_ns >= (uint64_t)opt.settle_ms *
		    1000000ull)
			start_run();
		else if (now - t_phase > 60000000000ull)
			start_run();
		break;
	case P_RUN:
		if (opt.pid > 0 && proc_read(opt.pid, &ps) == 0 &&
		    ps.rss_kib > srv_rss_peak)
			srv_rss_peak = ps.rss_kib;
		if (opt.sc == SC_HISTORY) {
			if (resumers_done()) {
				t_run_end = now;
				finish();
			} else if (now - st.last_delivery_ns >
			    (uint64_t)opt.drain * 1000000000ull &&
			    now - t_run0 > (uint64_t)opt.drain *
			    1000000000ull) {
				t_run_end = st.last_delivery_ns;
				finish();
			}
			break;
		}
		if (publishing && opt.rate > 0) {
			double due = (double)(now - t_run0) / 1e9 * opt.rate;
			int tries = 0, npub = nclients - opt.subs;

			while ((double)st.sent < due && tries < npub) {
				struct client *c = &clients[opt.subs +
				    next_pub];

				next_pub = (next_pub + 1) % npub;
				if (c->state == C_READY && (!opt.receipts ||
				    c->inflight < (uint64_t)opt.window)) {
					pub_send(c);
					tries = 0;
				} else
					tries++;
			}
		}
		if (now - t_run0 >= (uint64_t)opt.duration * 1000000000ull) {
			publishing = 0;
			phase = P_DRAIN;
			t_phase = now;
			st.last_progress_ns = now;
		}
		break;
	case P_DRAIN: {
		static uint64_t last_rx;
		int i, pending = 0;

		if (st.received != last_rx) {
			last_rx = st.received;
			st.last_progress_ns = now;
		}
		for (i = opt.subs; i < nclients; i++)
			if (clients[i].state == C_READY)
				pending += clients[i].inflight > 0;
		if ((st.received - st.dups >= st.expected && pending == 0) ||
		    now - st.last_progress_ns > (uint64_t)opt.drain *
		    1000000000ull) {
			t_run_end = st.last_delivery_ns > t_run0 ?
			    st.last_delivery_ns : now;
			if (opt.sc == SC_IDLE)
				t_run_end = now;
			finish();
		}
		break;
	}
	case P_DONE:
		break;
	}
}

static void
start_run(void)
{
	int i;

	phase = P_RUN;
	if (opt.pid > 0) {
		proc_read(opt.pid, &srv0);
		srv_rss_peak = srv0.rss_kib;
	}
	gen_cpu0 = self_cpu();
	sys_busy0 = sys_busy();
	t_run0 = now_ns();
	st.bytes_in0 = st.bytes_in;
	st.last_delivery_ns = t_run0;
	st.last_progress_ns = t_run0;
	if (opt.sc == SC_IDLE || opt.sc == SC_HISTORY)
		return;
	publishing = 1;
	if (opt.rate == 0)
		for (i = opt.subs; i < nclients; i++) {
			struct client *c = &clients[i];

			while (c->state == C_READY &&
			    c->inflight < (uint64_t)opt.window)
				pub_send(c);
		}
}

/* ------------------------------------------------------------ report */

static double other_pct;	/* CPU used by everything else, % of a core */

/* What the run read per delivery: frame sizes on the wire, so servers
 * whose frames differ in size can be compared for it. */
static double
bytes_per_delivery(void)
{
	if (st.received == 0 || opt.sc == SC_IDLE || opt.sc == SC_STORM)
		return 0;
	return (double)(st.bytes_in - st.bytes_in0) / (double)st.received;
}

static void
csv_row(FILE *f, int header, double secs, double rate, double srv_cpu,
    double gen_cpu, const char *bound)
{
	double srv_us = st.received ? srv_cpu * 1e6 / (double)st.received : 0;
	double gen_us = st.received ? gen_cpu * 1e6 / (double)st.received : 0;
	long perconn = 0;
	char date[32];
	time_t now = time(NULL);

	if (header)
		fprintf(f, "date,label,target,scenario,transport,rooms,subs,"
		    "pubs,size,rate,window,duration_s,sent,expected,received,"
		    "missing,gaps,dups,reorder,deliveries_per_s,lat_p50_us,"
		    "lat_p90_us,lat_p99_us,lat_p999_us,lat_max_us,"
		    "connect_p50_us,connect_p99_us,connect_max_us,"
		    "connects_per_s,conn_errors,errors,server_rss_kib,"
		    "server_rss_per_conn_b,server_cpu_pct,"
		    "server_us_per_delivery,gen_cpu_pct,gen_us_per_delivery,"
		    "resume_p50_us,resume_max_us,generator_bound,"
		    "deliveries_per_write,other_cpu_pct,bytes_per_delivery\n");
	if (srv1.rss_kib > 0 && nready > 0)
		perconn = (srv1.rss_kib - srvbase.rss_kib) * 1024 / nready;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", localtime(&now));
	fprintf(f, "%s,%s,%s,%s,%s,%d,%d,%d,%d,%g,%d,%.3f,%" PRIu64 ",%" PRIu64
	    ",%" PRIu64 ",%" PRId64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.0f,"
	    "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
	    ",%" PRIu64 ",%" PRIu64 ",%.0f,%" PRIu64 ",%" PRIu64 ",%ld,%ld,%.1f,"
	    "%.3f,%.1f,%.3f,%" PRIu64 ",%" PRIu64 ",%s,%.1f,%.1f,%.0f\n",
	    date, opt.label, opt.target, scenario_names[opt.sc],
	    opt.urls[0].ws ? "ws" : "tcp", opt.rooms, opt.subs,
	    opt.sc == SC_HISTORY ? 1 : opt.rooms * opt.ppr, opt.size,
	    opt.rate, opt.window, secs, st.sent, st.expected, st.received,
	    (int64_t)st.expected - (int64_t)(st.received - st.dups), st.gaps,
	    st.dups, st.reorder, rate,
	    hist_quantile(&st.lat, 0.5), hist_quantile(&st.lat, 0.9),
	    hist_quantile(&st.lat, 0.99), hist_quantile(&st.lat, 0.999),
	    st.lat.max, hist_quantile(&st.conn, 0.5),
	    hist_quantile(&st.conn, 0.99), st.conn.max,
	    opt.sc == SC_STORM && secs > 0 ? nready / secs : 0,
	    st.conn_errors, st.errors, srv1.rss_kib, perconn,
	    secs > 0 ? srv_cpu / secs * 100 : 0, srv_us,
	    secs > 0 ? gen_cpu / secs * 100 : 0, gen_us,
	    hist_quantile(&st.resume, 0.5), st.resume.max, bound,
	    srv1.syscw > srv0.syscw ? (double)st.received /
	    (double)(srv1.syscw - srv0.syscw) : 0, other_pct,
	    bytes_per_delivery());
}

static void
pr_us(const char *name, uint64_t us)
{
	if (us >= 10000)
		printf("  %-8s %10.1f ms\n", name, us / 1000.0);
	else
		printf("  %-8s %10" PRIu64 " us\n", name, us);
}

static void
report(void)
{
	double secs, rate, srv_cpu = 0, gen_cpu;
	const char *bound = "no";
	int64_t missing;

	if (t_run_end < t_run0)
		t_run_end = now_ns();
	secs = (double)(t_run_end - t_run0) / 1e9;
	if (opt.sc == SC_STORM) {
		secs = (double)(t_run_end - clients[0].t_start) / 1e9;
		srv0 = srvbase;
		gen_cpu0 = 0;
	}
	if (opt.pid > 0) {
		srv1_ok = proc_read(opt.pid, &srv1) == 0;
		if (srv1.rss_kib > srv_rss_peak)
			srv_rss_peak = srv1.rss_kib;
		if (srv1_ok)
			srv_cpu = srv1.cpu_s - srv0.cpu_s;
	}
	gen_cpu = gen_cpu1 - gen_cpu0;
	rate = secs > 0 ? (double)st.received / secs : 0;
	if (secs > 0 && gen_cpu / secs > 0.85)
		bound = "yes";
	if (opt.rate > 0 && opt.sc != SC_IDLE && opt.sc != SC_HISTORY &&
	    (double)st.sent < 0.97 * opt.rate * opt.duration)
		bound = "rate";
	missing = (int64_t)st.expected - (int64_t)(st.received - st.dups);
	/* whatever else ran meanwhile (other processes, the kernel on their
	 * behalf): the run is only as clean as the machine was quiet */
	other_pct = 0;
	if (secs > 0 && sys_busy0 > 0 && sys_busy1 > sys_busy0 &&
	    opt.sc != SC_STORM) {
		other_pct = (sys_busy1 - sys_busy0 - srv_cpu - gen_cpu) / secs *
		    100;
		if (other_pct < 0)
			other_pct = 0;
	}

	printf("\n== parley-bench %s against %s (%s) %s\n",
	    scenario_names[opt.sc], opt.target, opt.label,
	    opt.urls[0].ws ? "STOMP over WebSocket" : "STOMP over TCP");
	printf("  clients: %d subscribers in %d room(s), %d publisher(s), "
	    "%d-byte bodies, %s\n", opt.subs, opt.rooms,
	    opt.sc == SC_HISTORY ? 1 : opt.rooms * opt.ppr, opt.size,
	    opt.rate > 0 ? "fixed rate" : "receipt window");
	if (opt.idle_subs > 0)
		printf("  each subscriber is also subscribed to %d room(s) "
		    "that get no messages\n", opt.idle_subs);
	if (opt.rate > 0)
		printf("  offered: %g msg/s (%g deliveries/s)\n", opt.rate,
		    opt.rate * opt.subs / opt.rooms);
	else if (opt.sc != SC_IDLE && opt.sc != SC_STORM)
		printf("  window: %d receipts in flight per publisher\n",
		    opt.window);
	printf("  connected: %d of %d (%" PRIu64 " connect errors), connect "
	    "p50 %.1f ms p99 %.1f ms max %.1f ms\n", nready, nclients,
	    st.conn_errors, hist_quantile(&st.conn, 0.5) / 1000.0,
	    hist_quantile(&st.conn, 0.99) / 1000.0, st.conn.max / 1000.0);
	if (t_connected > 0 && t_run0 > t_connected && opt.sc != SC_HISTORY)
		printf("  settle: %.2f s from the last subscription to the start "
		    "(until no presence MESSAGE for %d ms; %" PRIu64 " of them)\n",
		    (double)(t_run0 - t_connected) / 1e9, opt.settle_ms,
		    st.other);
	if (opt.sc == SC_STORM)
		printf("  storm: %d connections (CONNECT+SUBSCRIBE+RECEIPT) in "
		    "%.2f s = %.0f connects/s at %d in flight\n", nready, secs,
		    secs > 0 ? nready / secs : 0, opt.concurrency);
	if (opt.sc != SC_IDLE && opt.sc != SC_STORM) {
		printf("  sent %" PRIu64 " messages; deliveries expected %"
		    PRIu64 ", received %" PRIu64 ", missing %" PRId64 "\n",
		    st.sent, st.expected, st.received, missing);
		printf("  gaps %" PRIu64 ", duplicates %" PRIu64 ", reordered %"
		    PRIu64 "; other MESSAGEs (presence) %" PRIu64 "\n",
		    st.gaps, st.dups, st.reorder, st.other);
		printf("  %.0f deliveries/s over %.2f s\n", rate, secs);
		if (st.received > 0)
			printf("  %.0f bytes received per delivery (frames with "
			    "their WebSocket headers, receipts included)\n",
			    bytes_per_delivery());
	}
	if (st.lat.count > 0) {
		printf("  latency (send -> receive):\n");
		pr_us("p50", hist_quantile(&st.lat, 0.5));
		pr_us("p90", hist_quantile(&st.lat, 0.9));
		pr_us("p99", hist_quantile(&st.lat, 0.99));
		pr_us("p99.9", hist_quantile(&st.lat, 0.999));
		pr_us("max", st.lat.max);
	}
	if (st.resume.count > 0)
		printf("  resume of %d messages: %" PRIu64 " clients done, p50 "
		    "%.1f ms, p99 %.1f ms, max %.1f ms\n", opt.history,
		    st.resume.count, hist_quantile(&st.resume, 0.5) / 1000.0,
		    hist_quantile(&st.resume, 0.99) / 1000.0,
		    st.resume.max / 1000.0);
	if (opt.pid > 0 && !srv1_ok)
		printf("  server pid %ld: /proc not readable at the end (the "
		    "server exited?): no RSS or CPU figures\n", opt.pid);
	else if (opt.pid > 0) {
		printf("  server pid %ld: RSS %ld KiB (peak %ld, before the "
		    "clients %ld", opt.pid, srv1.rss_kib, srv_rss_peak,
		    srvbase.rss_kib);
		if (nready > 0 && srv1.rss_kib < srvbase.rss_kib)
			printf(", less than before the clients: memory of "
			    "earlier runs went back, no figure per connection");
		else if (nready > 0)
			printf(", %.1f KiB per connection",
			    (double)(srv1.rss_kib - srvbase.rss_kib) / nready);
		printf("), CPU %.1f%%", secs > 0 ? srv_cpu / secs * 100 : 0);
		if (st.received > 0)
			printf(", %.3f us per delivery (user %.3f, kernel "
			    "%.3f)", srv_cpu * 1e6 / (double)st.received,
			    (srv1.user_s - srv0.user_s) * 1e6 /
			    (double)st.received, (srv_cpu - (srv1.user_s -
			    srv0.user_s)) * 1e6 / (double)st.received);
		if (opt.sc == SC_IDLE && nready > 0 && secs > 0)
			printf(", %.2f us CPU per connection per second",
			    srv_cpu * 1e6 / nready / secs);
		if (opt.sc == SC_STORM && nready > 0)
			printf(", %.1f us per connect",
			    srv_cpu * 1e6 / nready);
		if (st.received > 0 && srv1.syscw > srv0.syscw)
			printf(", %.1f deliveries per write(2)/writev(2) "
			    "(send(2) is not counted by /proc)",
			    (double)st.received /
			    (double)(srv1.syscw - srv0.syscw));
		printf("\n");
	}
	printf("  generator CPU %.1f%%", secs > 0 ? gen_cpu / secs * 100 : 0);
	if (st.received > 0)
		printf(", %.3f us per delivery", gen_cpu * 1e6 /
		    (double)st.received);
	printf("%s\n", strcmp(bound, "yes") == 0 ?
	    "  GENERATOR-BOUND: the generator used >85% of its core; "
	    "the server may be faster than shown" :
	    strcmp(bound, "rate") == 0 ? "  GENERATOR-BOUND: could not send "
	    "at the asked rate" : "");
	if (other_pct > 20)
		printf("  NOISY: other processes used %.0f%% of a CPU during "
		    "the run\n", other_pct);
	else
		printf("  other processes: %.0f%% of a CPU\n", other_pct);
	printf("  errors %" PRIu64 "%s%s\n", st.errors,
	    st.first_error[0] ? ", first: " : "", st.first_error);
	if (opt.csv != NULL) {
		FILE *f;
		int header = access(opt.csv, F_OK) != 0;

		if ((f = fopen(opt.csv, "a")) == NULL)
			fprintf(stderr, "parley-bench: %s: %s\n", opt.csv,
			    strerror(errno));
		else {
			csv_row(f, header, secs, rate, srv_cpu, gen_cpu,
			    bound);
			fclose(f);
		}
	}
	fflush(stdout);
}

static void
finish(void)
{
	int i;

	if (phase == P_DONE)
		return;
	gen_cpu1 = self_cpu();
	sys_busy1 = sys_busy();
	if (opt.sc == SC_IDLE || opt.sc == SC_HISTORY || opt.sc == SC_STORM)
		t_run_end = t_run_end ? t_run_end : now_ns();
	phase = P_DONE;
	publishing = 0;
	report();
	for (i = 0; i < nclients; i++)
		if (clients[i].io != NULL && !clients[i].io->closed)
			io_close(clients[i].io);
	event_base_loopexit(base, NULL);
}

static void
sig_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	note_error("interrupted");
	t_run_end = now_ns();
	finish();
}

/* ------------------------------------------------------------ main */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: parley-bench SCENARIO [options]\n"
"       parley-bench reflect [--listen HOST:PORT] [--stomp-listen HOST:PORT]\n"
"scenarios:\n"
"  fanout   1 room, many subscribers (default 1000), 1 publisher\n"
"  rooms    many small rooms (default 100 x 10 subscribers), 1 publisher each\n"
"  idle     subscribed connections that only heart-beat: RSS and CPU each\n"
"  storm    connects per second (CONNECT + SUBSCRIBE + RECEIPT)\n"
"  history  clients resuming --history messages at once (Parley: since:0)\n"
"  cross    like fanout, subscribers spread over several --url instances\n"
"options:\n"
"  -u, --url URL          ws://HOST:PORT/PATH or tcp://HOST:PORT (repeat for\n"
"                         cross); default ws://127.0.0.1:8080/ws\n"
"  -t, --target NAME      parley | rabbitmq | reflector: sets the destination\n"
"                         prefix and login defaults, and labels the result\n"
"  -n, --subs N           subscribers (idle/storm: connections)\n"
"  -r, --rooms R          rooms (subscribers are spread evenly)\n"
"  -P, --pubs-per-room P  publishers per room (default 1)\n"
"  -s, --size BYTES       message body size (default 100)\n"
"  -R, --rate MSG/S       total publish rate; 0 = as fast as receipts allow\n"
"  -w, --window W         receipts in flight per publisher (default 16)\n"
"  -d, --duration S       publishing (idle: holding) time (default 10)\n"
"  -c, --concurrency C    connects in flight (default 200)\n"
"  -H, --heartbeat MS     STOMP heart-beat both ways (idle default 10000)\n"
"      --history N        messages to resume (default 1000)\n"
"      --resume HDR       resume header for history (default since:0)\n"
"  -p, --pid PID          server process: RSS and CPU from /proc\n"
"      --csv FILE         append a CSV row (header when the file is new)\n"
"      --label TEXT       free text for the table and CSV\n"
"      --prefix P         destination prefix (/room/ Parley, /topic/ RabbitMQ)\n"
"      --login L --passcode P --vhost V\n"
"      --receipts         ask a receipt for every SEND also at a fixed rate\n"
"      --drain S          stop waiting after S s without progress (default 5)\n"
"      --settle MS        quiet time before the clock starts (default 300)\n"
"      --cpu N            pin the generator to CPU N\n"
"      --header K:V       add this header to every SEND (e.g. event:typing,\n"
"                         which Parley fans out without storing)\n"
"      --idle-subs K      each subscriber also subscribes to K rooms of its\n"
"                         own that get no messages (a member of several rooms)\n"
"  -q, --quiet\n");
}

static int
set_target(const char *t)
{
	opt.target = t;
	if (strcmp(t, "rabbitmq") == 0) {
		opt.prefix = "/topic/";
		opt.login = "guest";
		opt.passcode = "guest";
		opt.vhost = "/";
		opt.login_fixed = 1;
	} else if (strcmp(t, "parley") == 0 || strcmp(t, "reflector") == 0 ||
	    strcmp(t, "other") == 0) {
		opt.prefix = "/room/";
		opt.login = "bench";
		opt.passcode = "";
		opt.vhost = "localhost";
		opt.login_fixed = 0;
	} else
		return -1;
	return 0;
}

int
gen_main(int argc, char **argv)
{
	enum { O_HISTORY = 256, O_RESUME, O_CSV, O_LABEL, O_PREFIX, O_LOGIN,
		O_PASSCODE, O_VHOST, O_RECEIPTS, O_DRAIN, O_SETTLE, O_CPU, O_HEADER,
		O_IDLE_SUBS };
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "target", required_argument, NULL, 't' },
		{ "subs", required_argument, NULL, 'n' },
		{ "rooms", required_argument, NULL, 'r' },
		{ "pubs-per-room", required_argument, NULL, 'P' },
		{ "size", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'R' },
		{ "window", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "heartbeat", required_argument, NULL, 'H' },
		{ "pid", required_argument, NULL, 'p' },
		{ "history", required_argument, NULL, O_HISTORY },
		{ "resume", required_argument, NULL, O_RESUME },
		{ "csv", required_argument, NULL, O_CSV },
		{ "label", required_argument, NULL, O_LABEL },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "login", required_argument, NULL, O_LOGIN },
		{ "passcode", required_argument, NULL, O_PASSCODE },
		{ "vhost", required_argument, NULL, O_VHOST },
		{ "receipts", no_argument, NULL, O_RECEIPTS },
		{ "drain", required_argument, NULL, O_DRAIN },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "header", required_argument, NULL, O_HEADER },
		{ "idle-subs", required_argument, NULL, O_IDLE_SUBS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *urls[MAX_URLS];
	const char *prefix = NULL, *login = NULL, *passcode = NULL;
	const char *vhost = NULL;
	int nurl = 0, ch, i, subs = -1, rooms = -1, hb = -1;
	struct event *sint, *sterm;
	struct timeval ms1 = { 0, 1000 };
	long nofile;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < (int)(sizeof(scenario_names) /
	    sizeof(scenario_names[0])); i++)
		if (strcmp(argv[1], scenario_names[i]) == 0)
			break;
	if (i == (int)(sizeof(scenario_names) / sizeof(scenario_names[0]))) {
		fprintf(stderr, "parley-bench: unknown scenario '%s'\n",
		    argv[1]);
		usage(stderr);
		return 2;
	}
	opt.sc = (enum scenario)i;
	set_target("parley");
	opt.label = "";
	opt.ppr = 1;
	opt.size = 100;
	opt.window = 16;
	opt.duration = 10;
	opt.concurrency = 200;
	opt.history = 1000;
	opt.resume = "since:0";
	opt.drain = 5;
	opt.settle_ms = 300;
	opt.cpu = -1;
	argv++;
	argc--;
	while ((ch = getopt_long(argc, argv, "u:t:n:r:P:s:R:w:d:c:H:p:qh", lo,
	    NULL)) != -1) {
		switch (ch) {
		case 'u':
			if (nurl == MAX_URLS) {
				fprintf(stderr, "parley-bench: at most %d "
				    "--url\n", MAX_URLS);
				return 2;
			}
			urls[nurl++] = optarg;
			break;
		case 't':
			if (set_target(optarg) == -1) {
				fprintf(stderr, "parley-bench: --target is "
				    "parley, rabbitmq, reflector or other\n");
				return 2;
			}
			break;
		case 'n': subs = atoi(optarg); break;
		case 'r': rooms = atoi(optarg); break;
		case 'P': opt.ppr = atoi(optarg); break;
		case 's': opt.size = atoi(optarg); break;
		case 'R': opt.rate = atof(optarg); break;
		case 'w': opt.window = atoi(optarg); break;
		case 'd': opt.duration = atoi(optarg); break;
		case 'c': opt.concurrency = atoi(optarg); break;
		case 'H': hb = atoi(optarg); break;
		case 'p': opt.pid = atol(optarg); break;
		case O_HISTORY: opt.history = atoi(optarg); break;
		case O_RESUME: opt.resume = optarg; break;
		case O_CSV: opt.csv = optarg; break;
		case O_LABEL:
			if (strpbrk(optarg, ",\"\n") != NULL) {
				fprintf(stderr, "parley-bench: --label goes into "
				    "a CSV field: no comma, quote or newline\n");
				return 2;
			}
			opt.label = optarg;
			break;
		case O_PREFIX: prefix = optarg; break;
		case O_LOGIN: login = optarg; break;
		case O_PASSCODE: passcode = optarg; break;
		case O_VHOST: vhost = optarg; break;
		case O_RECEIPTS: opt.receipts = 1; break;
		case O_DRAIN: opt.drain = atoi(optarg); break;
		case O_SETTLE: opt.settle_ms = atoi(optarg); break;
		case O_CPU: opt.cpu = atoi(optarg); break;
		case O_HEADER:
			if (strchr(optarg, ':') == NULL ||
			    strchr(optarg, '\n') != NULL || strlen(optarg) > 200) {
				fprintf(stderr, "parley-bench: --header is "
				    "NAME:VALUE (one line, up to 200 bytes)\n");
				return 2;
			}
			opt.sendhdr = optarg;
			break;
		case O_IDLE_SUBS:
			opt.idle_subs = atoi(optarg);
			if (opt.idle_subs < 0 || opt.idle_subs > 100) {
				fprintf(stderr, "parley-bench: --idle-subs is "
				    "0..100\n");
				return 2;
			}
			break;
		case 'q': opt.quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (prefix)
		opt.prefix = prefix;
	if (login) {
		opt.login = login;
		opt.login_fixed = 1;
	}
	if (passcode)
		opt.passcode = passcode;
	if (vhost)
		opt.vhost = vhost;
	if (nurl == 0)
		urls[nurl++] = "ws://127.0.0.1:8080/ws";
	for (i = 0; i < nurl; i++)
		if (parse_url(urls[i], &opt.urls[i]) == -1) {
			fprintf(stderr, "parley-bench: bad --url '%s' (ws://"
			    "HOST:PORT/PATH or tcp://HOST:PORT)\n", urls[i]);
			return 2;
		}
	opt.nurls = nurl;
	if (opt.sc == SC_CROSS && nurl < 2) {
		fprintf(stderr, "parley-bench: cross needs two or more --url "
		    "(instances sharing a backplane)\n");
		return 2;
	}
	switch (opt.sc) {
	case SC_FANOUT:
	case SC_CROSS:
		opt.subs = subs > 0 ? subs : 1000;
		opt.rooms = rooms > 0 ? rooms : 1;
		break;
	case SC_ROOMS:
		opt.subs = subs > 0 ? subs : 1000;
		opt.rooms = rooms > 0 ? rooms : 100;
		break;
	case SC_IDLE:
		opt.subs = subs > 0 ? subs : 10000;
		opt.rooms = rooms > 0 ? rooms : (opt.subs + 9) / 10;
		opt.ppr = 0;
		if (hb < 0)
			hb = 10000;
		break;
	case SC_STORM:
		opt.subs = subs > 0 ? subs : 2000;
		opt.rooms = rooms > 0 ? rooms : (opt.subs + 9) / 10;
		opt.ppr = 0;
		break;
	case SC_HISTORY:
		opt.subs = subs > 0 ? subs : 100;
		opt.rooms = 1;
		opt.ppr = 1;
		break;
	}
	opt.heartbeat = hb > 0 ? hb : 0;
	if ((opt.sc == SC_FANOUT || opt.sc == SC_ROOMS || opt.sc == SC_CROSS) &&
	    opt.ppr < 1) {
		fprintf(stderr, "parley-bench: %s needs at least one publisher "
		    "per room (-P)\n", scenario_names[opt.sc]);
		return 2;
	}
	if (opt.subs < 1 || opt.rooms < 1 || opt.rooms > opt.subs ||
	    opt.ppr < 0 || opt.size < 1 || opt.size > 60000 ||
	    opt.window < 1 || opt.duration < 1 || opt.concurrency < 1 ||
	    opt.rate < 0 || opt.history < 1 || opt.drain < 1) {
		fprintf(stderr, "parley-bench: bad numbers: need subs >= rooms "
		    ">= 1, size 1..60000, window/duration/concurrency >= 1\n");
		return 2;
	}
	if (opt.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == -1)
			fprintf(stderr, "parley-bench: cannot pin to CPU %d: "
			    "%s\n", opt.cpu, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	nofile = raise_nofile();
	snprintf(runid, sizeof(runid), "b%ld", (long)getpid());

	/* clients: subscribers first, then publishers (or resumers) */
	if (opt.sc == SC_HISTORY)
		nclients = 1 + opt.subs;
	else
		nclients = opt.subs + opt.rooms * opt.ppr;
	if (nofile > 0 && nclients + 64 > nofile)
		fprintf(stderr, "parley-bench: %d clients but only %ld file "
		    "descriptors (ulimit -n)\n", nclients, nofile);
	if ((clients = calloc((size_t)nclients, sizeof(*clients))) == NULL ||
	    (room_subs = calloc((size_t)opt.rooms, sizeof(int))) == NULL) {
		fprintf(stderr, "parley-bench: out of memory\n");
		return 1;
	}
	for (i = 0; i < nclients; i++) {
		struct client *c = &clients[i];

		c->idx = i;
		if (opt.sc == SC_HISTORY) {
			c->role = i == 0 ? ROLE_PUB : ROLE_RESUMER;
			c->room = 0;
			c->url = i % opt.nurls;
			if (i > 0 && (c->tr = calloc(1, sizeof(*c->tr))) ==
			    NULL)
				return 1;
			continue;
		}
		if (i < opt.subs) {
			c->role = ROLE_SUB;
			c->room = i % opt.rooms;
			c->url = i % opt.nurls;
			if (opt.ppr > 0 && (c->tr = calloc((size_t)opt.ppr,
			    sizeof(*c->tr))) == NULL)
				return 1;
		} else {
			c->role = ROLE_PUB;
			c->room = (i - opt.subs) % opt.rooms;
			c->pub = (i - opt.subs) / opt.rooms;
			c->url = 0;
		}
	}
	hist_init(&st.lat);
	hist_init(&st.conn);
	hist_init(&st.resume);

	if ((base = event_base_new()) == NULL || net_init(base) == -1) {
		fprintf(stderr, "parley-bench: libevent setup failed\n");
		return 1;
	}
	sint = evsignal_new(base, SIGINT, sig_cb, NULL);
	sterm = evsignal_new(base, SIGTERM, sig_cb, NULL);
	tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(sint, NULL);
	event_add(sterm, NULL);
	event_add(tick_ev, &ms1);
	proc_open(opt.pid);
	if (opt.pid > 0 && proc_read(opt.pid, &srvbase) == -1) {
		fprintf(stderr, "parley-bench: cannot read /proc/%ld\n",
		    opt.pid);
		opt.pid = 0;
	}
	if (!opt.quiet)
		fprintf(stderr, "parley-bench: %s: connecting %d clients to "
		    "%s://%s:%d%s%s\n", scenario_names[opt.sc], nclients,
		    opt.urls[0].ws ? "ws" : "tcp", opt.urls[0].host,
		    opt.urls[0].port, opt.urls[0].ws ? opt.urls[0].path : "",
		    opt.nurls > 1 ? " (and more)" : "");
	phase = P_CONNECT;
	st.last_progress_ns = now_ns();
	pump_connects();
	event_base_dispatch(base);

	event_free(sint);
	event_free(sterm);
	event_free(tick_ev);
	net_fini();
	event_base_free(base);
	for (i = 0; i < nclients; i++)
		free(clients[i].tr);
	free(clients);
	free(room_subs);
	if (st.errors > 0 || st.conn_errors > 0)
		return 1;
	if (opt.sc != SC_IDLE && opt.sc != SC_STORM &&
	    (st.received - st.dups != st.expected || st.dups > 0 ||
	    st.gaps > 0))
		return 1;
	return 0;
}
