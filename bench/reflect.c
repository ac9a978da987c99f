/*
 * reflect.c - the trivial fan-out server that shows the machine's ceiling.
 *
 * It speaks just enough STOMP 1.2 (over WebSocket at any path, and over
 * TCP) for the generator and stompjs-like clients: CONNECT, SUBSCRIBE,
 * UNSUBSCRIBE, SEND, DISCONNECT and receipts.  No auth, no storage, no
 * ordering authority, no presence: a SEND is turned into one shared MESSAGE
 * tail and copied, behind a per-subscription head, into every subscriber's
 * output buffer; each socket is written once per loop turn.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "bench.h"

#define R_MAX_FRAME	(1u << 20)
#define R_HEAD_MAX	80
#define R_BUCKETS	4096

struct rroom;

struct rentry {			/* one subscription in a room */
	struct rconn *c;
	unsigned char hlen;
	char head[R_HEAD_MAX];	/* "MESSAGE\nsubscription:ID\n" */
};

struct rroom {
	char *name;		/* destination */
	struct rentry *v;
	size_t n, cap;
	struct rroom *next;	/* hash chain */
};

struct rsub {
	struct rroom *room;
	char id[64];
};

struct rconn {
	struct io *io;
	int ws;			/* WebSocket (else plain STOMP) */
	int upgraded;
	int dead;		/* closed: freed by reap_cb */
	struct rsub *subs;
	size_t nsubs, capsubs;
};

static struct rroom *buckets[R_BUCKETS];
static char *shared;		/* the MESSAGE tail being fanned out */
static uint64_t msgid;
static uint64_t nconns, delivered;
static int rquiet;
static unsigned drop_every, dup_every;	/* fault injection (tests) */

static unsigned
hash(const char *s, size_t n)
{
	unsigned h = 2166136261u;

	while (n-- > 0)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % R_BUCKETS;
}

static struct rroom *
room_get(const char *name, size_t n, int create)
{
	unsigned b = hash(name, n);
	struct rroom *r;

	for (r = buckets[b]; r != NULL; r = r->next)
		if (strlen(r->name) == n && memcmp(r->name, name, n) == 0)
			return r;
	if (!create || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->name = strndup(name, n)) == NULL) {
		free(r);
		return NULL;
	}
	r->next = buckets[b];
	buckets[b] = r;
	return r;
}

/* send one whole frame to c (WebSocket text message or raw) */
static void
r_send(struct rconn *c, const char *data, size_t len)
{
	if (c->ws)
		ws_send(c->io, 0x1, data, len, 0);
	else
		io_write(c->io, data, len);
}

static void
r_receipt(struct rconn *c, const struct sframe *f)
{
	char id[256], buf[320];
	int n;

	if (stomp_hdr(f, "receipt", id, sizeof(id)) == -1)
		return;
	n = snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%s\n\n", id);
	r_send(c, buf, (size_t)n + 1);
}

static void r_unsub(struct rconn *c, size_t k);

/* drop c's subscriptions and close it (after writing what is queued) */
static void
r_close(struct rconn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	while (c->nsubs > 0)
		r_unsub(c, c->nsubs - 1);
	io_flush_all();
	io_close(c->io);
	nconns--;
}

static void
r_error(struct rconn *c, const char *msg)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf), "ERROR\nmessage:%s\n\n", msg);
	r_send(c, buf, (size_t)n + 1);
	r_close(c);
}

static void
r_unsub(struct rconn *c, size_t k)
{
	struct rroom *r = c->subs[k].room;
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->v[i].c == c && strncmp(r->v[i].head + 21,
		    c->subs[k].id, strlen(c->subs[k].id)) == 0 &&
		    r->v[i].head[21 + strlen(c->subs[k].id)] == '\n') {
			r->v[i] = r->v[--r->n];
			break;
		}
	c->subs[k] = c->subs[--c->nsubs];
}

static void
r_subscribe(struct rconn *c, const struct sframe *f)
{
	char dest[256], id[64];
	struct rroom *r;
	struct rentry *e;
	int n;

	if (stomp_hdr(f, "destination", dest, sizeof(dest)) == -1 ||
	    stomp_hdr(f, "id", id, sizeof(id)) == -1) {
		r_error(c, "SUBSCRIBE needs destination and id");
		return;
	}
	if ((r = room_get(dest, strlen(dest), 1)) == NULL) {
		r_error(c, "out of memory");
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct rentry *v = realloc(r->v, cap * sizeof(*v));

		if (v == NULL) {
			r_error(c, "out of memory");
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	if (c->nsubs == c->capsubs) {
		size_t cap = c->capsubs ? c->capsubs * 2 : 2;
		struct rsub *v = realloc(c->subs, cap * sizeof(*v));

		if (v == NULL) {
			r_error(c, "out of memory");
			return;
		}
		c->subs = v;
		c->capsubs = cap;
	}
	e = &r->v[r->n++];
	e->c = c;
	n = snprintf(e->head, sizeof(e->head), "MESSAGE\nsubscription:%s\n",
	    id);
	e->hlen = (unsigned char)n;
	c->subs[c->nsubs].room = r;
	snprintf(c->subs[c->nsubs].id, sizeof(c->subs[c->nsubs].id), "%s",
	    id);
	c->nsubs++;
	r_receipt(c, f);
}

static void
r_fanout(struct rconn *from, const struct sframe *f)
{
	static uint64_t nfault, ndup;
	char dest[256];
	struct rroom *r;
	size_t slen, i;
	int n;

	if (stomp_hdr(f, "destination", dest, sizeof(dest)) == -1) {
		r_error(from, "SEND needs destination");
		return;
	}
	if ((r = room_get(dest, strlen(dest), 0)) != NULL && r->n > 0) {
		/* the shared tail, built once */
		n = snprintf(shared, 512, "message-id:%llu\ndestination:%s\n"
		    "content-length:%zu\n\n", (unsigned long long)++msgid,
		    dest, f->bodylen);
		slen = (size_t)n;
		memcpy(shared + slen, f->body, f->bodylen);
		slen += f->bodylen;
		shared[slen++] = '\0';
		for (i = 0; i < r->n; i++) {
			struct rentry *e = &r->v[i];
			struct io *io = e->c->io;
			size_t total = e->hlen + slen, hl = 0;
			unsigned char h[14];
			uint32_t k;
			char *p;

			if (io->closed)
				continue;
			if (drop_every && ++nfault % drop_every == 0)
				continue;
			if (e->c->ws)
				hl = ws_header(h, 0x1, total, 0, &k);
			if ((p = io_reserve(io, hl + total)) == NULL)
				continue;
			memcpy(p, h, hl);
			memcpy(p + hl, e->head, e->hlen);
			memcpy(p + hl + e->hlen, shared, slen);
			io_commit(io, hl + total);
			delivered++;
			if (dup_every && ++ndup % dup_every == 0 &&
			    (p = io_reserve(io, hl + total)) != NULL) {
				memcpy(p, io->out + io->olen - hl - total,
				    hl + total);
				io_commit(io, hl + total);
			}
		}
	}
	r_receipt(from, f);
}

/* one STOMP frame from c */
static void
r_frame(struct rconn *c, const struct sframe *f)
{
	if (f->cmd == NULL)
		return;		/* heart-beats */
	if (stomp_is(f, "SEND"))
		r_fanout(c, f);
	else if (stomp_is(f, "CONNECT") || stomp_is(f, "STOMP")) {
		static const char ok[] = "CONNECTED\nversion:1.2\n"
		    "heart-beat:0,0\nserver:parley-bench-reflector\n\n";

		r_send(c, ok, sizeof(ok));
	} else if (stomp_is(f, "SUBSCRIBE"))
		r_subscribe(c, f);
	else if (stomp_is(f, "UNSUBSCRIBE")) {
		char id[64];
		size_t k;

		if (stomp_hdr(f, "id", id, sizeof(id)) == 0)
			for (k = 0; k < c->nsubs; k++)
				if (strcmp(c->subs[k].id, id) == 0) {
					r_unsub(c, k);
					break;
				}
		r_receipt(c, f);
	} else if (stomp_is(f, "DISCONNECT")) {
		r_receipt(c, f);
		r_close(c);
	} else if (stomp_is(f, "ACK") || stomp_is(f, "NACK") ||
	    stomp_is(f, "BEGIN") || stomp_is(f, "COMMIT") ||
	    stomp_is(f, "ABORT"))
		r_receipt(c, f);
	else
		r_error(c, "unknown command");
}

/* STOMP frames in buf; returns bytes consumed or -1 */
static ssize_t
r_stomp(struct rconn *c, char *buf, size_t len)
{
	size_t off = 0;
	struct sframe f;
	ssize_t n;

	while (off < len && !c->io->closed) {
		n = stomp_parse(buf + off, len - off, R_MAX_FRAME, &f);
		if (n < 0) {
			r_error(c, "malformed frame");
			return -1;
		}
		if (n == 0)
			break;
		r_frame(c, &f);
		off += (size_t)n;
	}
	return (ssize_t)off;
}

static int
hdr_value(const char *req, size_t reqlen, const char *name, const char **v,
    size_t *vlen)
{
	const char *p = req, *end = req + reqlen, *nl;
	size_t n = strlen(name);

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((size_t)(nl - p) > n && strncasecmp(p, name, n) == 0 &&
		    p[n] == ':') {
			const char *s = p + n + 1, *e = nl;

			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
			while (e > s && isspace((unsigned char)e[-1]))
				e--;
			*v = s;
			*vlen = (size_t)(e - s);
			return 0;
		}
		p = nl + 1;
	}
	return -1;
}

static ssize_t
r_handshake(struct rconn *c, char *buf, size_t len)
{
	const char *end, *key, *proto;
	size_t keylen, protolen, reqlen;
	char accept[64], resp[512];
	int n;

	end = memmem(buf, len, "\r\n\r\n", 4);
	if (end == NULL)
		return len > 16384 ? -1 : 0;
	reqlen = (size_t)(end - buf) + 4;
	if (hdr_value(buf, reqlen, "Sec-WebSocket-Key", &key, &keylen) == -1) {
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3"
		    "\r\nConnection: close\r\n\r\nok\n";

		io_write(c->io, ok, sizeof(ok) - 1);
		r_close(c);
		return -1;
	}
	ws_accept(key, keylen, accept);
	proto = NULL;
	if (hdr_value(buf, reqlen, "Sec-WebSocket-Protocol", &proto,
	    &protolen) == 0 && memmem(proto, protolen, "v12.stomp", 9) != NULL)
		proto = "v12.stomp";
	else if (proto != NULL && memmem(proto, protolen, "v11.stomp", 9))
		proto = "v11.stomp";
	else
		proto = NULL;
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n", accept,
	    proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
	    proto ? "\r\n" : "");
	io_write(c->io, resp, (size_t)n);
	c->upgraded = 1;
	return (ssize_t)reqlen;
}

static ssize_t
r_data(struct io *io, char *buf, size_t len)
{
	struct rconn *c = io->arg;
	size_t off = 0;
	struct wsframe wf;
	ssize_t n;

	if (!c->ws)
		return r_stomp(c, buf, len);
	if (!c->upgraded) {
		n = r_handshake(c, buf, len);
		if (n <= 0)
			return n;
		off = (size_t)n;
	}
	while (off < len && !io->closed) {
		n = ws_parse(buf + off, len - off, R_MAX_FRAME, &wf);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		switch (wf.opcode) {
		case 0x1:
		case 0x2: {
			ssize_t used = r_stomp(c, wf.payload, wf.len);

			if (used >= 0 && (size_t)used != wf.len &&
			    !io->closed)
				r_error(c, "incomplete STOMP frame in a "
				    "WebSocket message");
			break;
		}
		case 0x8:
			ws_send(io, 0x8, wf.payload, wf.len >= 2 ? 2 : 0, 0);
			r_close(c);
			break;
		case 0x9:
			ws_send(io, 0xa, wf.payload, wf.len, 0);
			break;
		default:
			break;
		}
		off += (size_t)n;
	}
	return (ssize_t)off;
}

static void
r_event(struct io *io, int what, int err)
{
	(void)what;
	(void)err;
	r_close(io->arg);
}

/* every connection, so that closed ones can be freed once a second (never
 * inside their own callbacks) */
static struct rconn **all;
static size_t nall, capall;

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	size_t i;

	(void)fd;
	(void)what;
	(void)arg;
	for (i = 0; i < nall; ) {
		if (all[i]->dead) {
			free(all[i]->subs);
			free(all[i]);
			all[i] = all[--nall];
		} else
			i++;
	}
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct rconn *c;

	(void)l;
	(void)sa;
	(void)salen;
	if (nall == capall) {
		size_t cap = capall ? capall * 2 : 1024;
		struct rconn **v = realloc(all, cap * sizeof(*v));

		if (v == NULL) {
			close(fd);
			return;
		}
		all = v;
		capall = cap;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->ws = arg != NULL;
	if ((c->io = io_accept(fd, r_data, r_event, c)) == NULL) {
		free(c);
		close(fd);
		return;
	}
	all[nall++] = c;
	nconns++;
}

static void
sig_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static struct evconnlistener *
r_listen(struct event_base *base, const char *hostport, int ws)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct evconnlistener *l;

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss,
	    &sslen) == -1) {
		fprintf(stderr, "reflector: cannot parse '%s' (host:port)\n",
		    hostport);
		return NULL;
	}
	l = evconnlistener_new_bind(base, accept_cb, ws ? (void *)1 : NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    4096, (struct sockaddr *)&ss, sslen);
	if (l == NULL)
		fprintf(stderr, "reflector: cannot listen on %s: %s\n",
		    hostport, strerror(errno));
	else if (!rquiet)
		fprintf(stderr, "reflector: pid %ld listening on %s (%s)\n",
		    (long)getpid(), hostport, ws ? "STOMP over WebSocket" :
		    "STOMP over TCP");
	return l;
}

int
reflect_main(const char *ws_listen, const char *stomp_listen, int quiet,
    unsigned drop, unsigned dup)
{
	struct event_base *base;
	struct evconnlistener *lw = NULL, *ls = NULL;
	struct event *sint, *sterm, *reap;
	struct timeval sec = { 1, 0 };

	rquiet = quiet;
	drop_every = drop;
	dup_every = dup;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL || net_init(base) == -1 ||
	    (shared = malloc(R_MAX_FRAME + 512)) == NULL) {
		fprintf(stderr, "reflector: out of memory\n");
		return 1;
	}
	if (ws_listen != NULL && (lw = r_listen(base, ws_listen, 1)) == NULL)
		return 1;
	if (stomp_listen != NULL &&
	    (ls = r_listen(base, stomp_listen, 0)) == NULL)
		return 1;
	sint = evsignal_new(base, SIGINT, sig_cb, base);
	sterm = evsignal_new(base, SIGTERM, sig_cb, base);
	reap = event_new(base, -1, EV_PERSIST, reap_cb, NULL);
	event_add(sint, NULL);
	event_add(sterm, NULL);
	event_add(reap, &sec);
	event_base_dispatch(base);
	if (!quiet)
		fprintf(stderr, "reflector: exiting, %llu deliveries\n",
		    (unsigned long long)delivered);
	if (lw != NULL)
		evconnlistener_free(lw);
	if (ls != NULL)
		evconnlistener_free(ls);
	event_free(sint);
	event_free(sterm);
	event_free(reap);
	net_fini();
	event_base_free(base);
	return 0;
}
