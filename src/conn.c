/*
 * conn.c - listeners, accepted connections and their output.
 *
 * Output path: every frame is appended to the connection's flat output
 * buffer; at the end of the loop turn one send(2) carries all frames queued
 * in that turn, and only what the socket does not take goes through the
 * bufferevent.  MESSAGE frames reference the shared tail of the message
 * instead of copying it: the turn's send gathers the connection's own bytes
 * and the tails (sendmsg), so a room's fan-out writes each tail once, not
 * once per subscriber into buffers no cache holds.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "access.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "session.h"
#include "util.h"
#include "ws.h"

/* Tails from this size on are referenced by an evbuffer chain (kept past
 * the turn if the socket does not take them); smaller ones by the turn's
 * iov, and copied only if the socket does not take them. */
#define SHARE_MIN 1024
/* An obuf piece in iov: iov_base is an offset into obuf. */
#define IOV_OBUF ((size_t)1 << (sizeof(size_t) * 8 - 1))
/* More queued pieces than this spill to pend (a burst). */
#define IOV_SPILL 4096
#ifndef IOV_MAX
#define IOV_MAX 1024		/* Linux's UIO_MAXIOV */
#endif
/* Connections with at most this much queued are written first. */
#define FLUSH_FIRST_MAX 512
/* After a close was queued, give the peer this long to read it. */
#define CLOSE_LINGER_MS 5000

TAILQ_HEAD(connq, conn);

static struct config *cfg;
static struct event_base *base;
static struct connq conns = TAILQ_HEAD_INITIALIZER(conns);
static struct connq dirty = TAILQ_HEAD_INITIALIZER(dirty);
static struct event *flush_ev;
static struct connq trimq = TAILQ_HEAD_INITIALIZER(trimq);
static struct pmsg *held;	/* tails the turn's iovs point at */
static struct event *trim_ev;
static int flush_armed;
static size_t nconns;
static struct evconnlistener *listeners[4];
static int nlisteners;
/*
 * libevent 2.1's bufferevent reads at most 4,096 bytes a callback
 * (EVBUFFER_MAX_READ), after an ioctl(FIONREAD).  When such a read came
 * back full, more is likely waiting: one read(2) of up to READ_MORE bytes
 * takes it in the same callback (read_more).  Never more than a sixteenth
 * of [server] max_outbound: one turn's input, fanned out, must not by
 * itself make a subscriber that keeps up look like a slow consumer.
 */
#define READ_FULL 4096
#define READ_MORE (60u << 10)
/* accept(2) failures: see accept_error_cb */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_MS 10000
static struct event *accept_ev;
static int accept_paused;
static uint64_t accept_fails;
static int64_t accept_logged = -ACCEPT_LOG_MS;
static SSL_CTX *tls_ctx;

#define LISTEN_TLS 0x100	/* or'ed into the listener's kind */

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static int drained;		/* a bufferevent's output emptied since the
				 * last trim pass */
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_destroy(struct conn *c);

static void flush_cb(evutil_socket_t fd, short what, void *arg);
static void trim_cb(evutil_socket_t fd, short what, void *arg);
static void accept_resume_cb(evutil_socket_t fd, short what, void *arg);
static void release_held(void);

int
conn_init(struct config *c, struct event_base *b)
{
	cfg = c;
	base = b;
	if ((flush_ev = event_new(base, -1, 0, flush_cb, NULL)) == NULL ||
	    (trim_ev = event_new(base, -1, EV_PERSIST, trim_cb, NULL)) ==
	    NULL || (accept_ev = evtimer_new(base, accept_resume_cb, NULL)) ==
	    NULL)
		return -1;
	return 0;
}

struct event_base *
conn_base(void)
{
	return base;
}

size_t
conn_count(void)
{
	return nconns;
}

size_t
conn_outbound_total(size_t *max)
{
	struct conn *c;
	size_t total = 0, n;

	*max = 0;
	TAILQ_FOREACH(c, &conns, entry) {
		if (c->bev == NULL)
			continue;
		n = conn_outbound(c);
		total += n;
		if (n > *max)
			*max = n;
	}
	return total;
}

/*
 * A peer whose path went away without a FIN (a dropped NAT mapping, a
 * machine switched off) is found by the kernel's keepalive probes: after
 * [server] tcp_keepalive_ms of silence, 3 probes a third of that apart (at
 * least 1 s); with no answer the socket fails with ETIMEDOUT and the
 * connection goes.  Heart-beats do the same for clients that negotiate
 * them; this covers those that do not, and HTTP.
 */
static void
keepalive(evutil_socket_t fd)
{
	int on = 1, idle, intvl, cnt = 3;

	if (cfg->tcp_keepalive_ms <= 0)
		return;
	idle = (cfg->tcp_keepalive_ms + 999) / 1000;
	intvl = idle / 3 > 0 ? idle / 3 : 1;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
	    sizeof(idle)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof(intvl)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == -1)
		log_debug("TCP keepalive not set: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	int tls = ((intptr_t)arg & LISTEN_TLS) != 0;
	enum conn_kind kind = (enum conn_kind)((intptr_t)arg & 0xff);
	struct conn *c;
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0, one = 1, via;

	(void)l;
	(void)salen;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	}
	/* a trusted proxy's HTTP connection is counted for the client it
	 * names, at the WebSocket upgrade (conn_admit_client) */
	via = kind != CONN_STOMP && access_trusted_proxy(addr);
	if (!via && access_ip_admit(addr) == -1) {
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	keepalive(fd);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		if (!via)
			access_ip_release(addr);
		evutil_closesocket(fd);
		return;
	}
	snprintf(c->ip, sizeof(c->ip), "%s", addr);
	c->admitted = !via;
	c->via_proxy = via;
	c->refcnt = 1;
	c->kind = kind;
	snprintf(c->peer, sizeof(c->peer), "%s:%d", addr, port);
	c->tls = tls;
	if (tls) {
		SSL *ssl = SSL_new(tls_ctx);

		c->bev = ssl == NULL ? NULL : bufferevent_openssl_socket_new(
		    base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL && ssl != NULL)
			SSL_free(ssl);
	} else
		c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		if (!via)
			access_ip_release(addr);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	stats.connections_total++;
	stats.connections_open++;
	if (kind == CONN_STOMP) {
		if ((c->session = session_new(c, NULL)) == NULL) {
			conn_close(c, 1011, "out of memory");
			return;
		}
	} else if ((c->http = http_conn_new(c)) == NULL) {
		conn_close(c, 1011, "out of memory");
		return;
	} else {
		/* a request (or the TLS handshake) that stalls, an idle
		 * keep-alive connection, and an answer the client stops
		 * reading, end: see http_timeout */
		struct timeval tv = { cfg->http_timeout_ms / 1000,
		    (cfg->http_timeout_ms % 1000) * 1000 };

		bufferevent_set_timeouts(c->bev, &tv, &tv);
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug("%s: connected (%s)", c->peer,
	    kind == CONN_STOMP ? "stomp" : "http");
}

/*
 * accept(2) failed.  Out of descriptors or memory, the pending connection
 * stays in the backlog and the listener stays readable: accepting again at
 * once would spin.  Stop accepting for ACCEPT_PAUSE_MS instead (connections
 * in the backlog wait, new ones queue in it or are refused by the kernel),
 * count it, and log once per ACCEPT_LOG_MS with the number of failures.
 */
static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	int i;

	(void)fd;
	(void)what;
	(void)arg;
	accept_paused = 0;
	for (i = 0; i < nlisteners; i++)
		evconnlistener_enable(listeners[i]);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { 0, ACCEPT_PAUSE_MS * 1000 };
	int64_t now = mono_ms();
	int i;

	(void)l;
	(void)arg;
	stats.err_accept++;
	accept_fails++;
	if (now - accept_logged >= ACCEPT_LOG_MS) {
		log_error("accept: %s (%llu time%s since the last report); "
		    "not accepting for %d ms at a time while it lasts%s",
		    evutil_socket_error_to_string(err),
		    (unsigned long long)accept_fails, accept_fails == 1 ? "" :
		    "s", ACCEPT_PAUSE_MS, err == EMFILE || err == ENFILE ?
		    ": raise the open-file limit (LimitNOFILE=, ulimit -n) or "
		    "lower [limits] ip_max_connections" : "");
		accept_logged = now;
		accept_fails = 0;
	}
	if (accept_paused || accept_ev == NULL)
		return;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS &&
	    err != ENOMEM)
		return;		/* a failure of that one connection */
	accept_paused = 1;
	for (i = 0; i < nlisteners; i++)
		evconnlistener_disable(listeners[i]);
	evtimer_add(accept_ev, &pause);
}

static int
listen_on(const char *hostport, enum conn_kind kind)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct evconnlistener *l;

	if (nlisteners == (int)(sizeof(listeners) / sizeof(listeners[0])))
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss,
	    &sslen) == -1) {
		log_error("cannot parse listen address '%s'", hostport);
		return -1;
	}
	l = evconnlistener_new_bind(base, accept_cb, (void *)(intptr_t)kind,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    1024, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		log_error("cannot listen on %s: %s", hostport, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(l, accept_error_cb);
	listeners[nlisteners++] = l;
	log_info("listening on %s (%s%s)", hostport, (kind & LISTEN_TLS) ?
	    "TLS, " : "", (kind & 0xff) == CONN_STOMP ? "STOMP" :
	    "HTTP, WebSocket at /ws");
	return 0;
}

int
conn_tls_init(void)
{
	const char *what;

	if ((tls_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		what = "cannot create a TLS context";
		goto fail;
	}
	SSL_CTX_set_min_proto_version(tls_ctx, cfg->tls_min_version == 1 ?
	    TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(tls_ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(tls_ctx, cfg->tls_cert) != 1) {
		what = "[tls] cert: cannot load the certificate chain";
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(tls_ctx, cfg->tls_key,
	    SSL_FILETYPE_PEM) != 1) {
		what = "[tls] key: cannot load the private key";
		goto fail;
	}
	if (SSL_CTX_check_private_key(tls_ctx) != 1) {
		what = "[tls] key does not match [tls] cert";
		goto fail;
	}
	return 0;
fail:
	log_error("%s: %s (%s, %s): %s", cfg->file, what, cfg->tls_cert,
	    cfg->tls_key, ERR_reason_error_string(ERR_get_error()) ?
	    ERR_reason_error_string(ERR_get_error()) : "see above");
	return -1;
}

int
conn_listen_tls(const char *hostport, int stomp)
{
	return listen_on(hostport, (enum conn_kind)((stomp ? CONN_STOMP :
	    CONN_HTTP) | LISTEN_TLS));
}

int
conn_listen_http(const char *hostport)
{
	return listen_on(hostport, CONN_HTTP);
}

int
conn_listen_stomp(const char *hostport)
{
	return listen_on(hostport, CONN_STOMP);
}

void
conn_stop_listening(void)
{
	int i;

	for (i = 0; i < nlisteners; i++)
		evconnlistener_free(listeners[i]);
	nlisteners = 0;
}

void
conn_fini(void)
{
	if (flush_ev != NULL)
		event_free(flush_ev);
	flush_ev = NULL;
	if (trim_ev != NULL)
		event_free(trim_ev);
	trim_ev = NULL;
	if (accept_ev != NULL)
		event_free(accept_ev);
	accept_ev = NULL;
	release_held();
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}

void
conn_shutdown_all(void)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->closed || c->closing)
			continue;
		if (c->session != NULL)
			session_shutdown(c->session);
		else
			conn_close(c, 1001, "server shutting down");
	}
}

/* ------------------------------------------------------------ input */

/*
 * A busy client's frames otherwise come 4 KiB a loop turn (about 20 SENDs
 * of a chat line), and every turn's fan-out costs a send(2) per
 * subscriber: reading what else is waiting makes the turns, and the
 * writes, fewer and larger (doc/performance.md, seventh round).  Plain TCP
 * only (TLS reads through OpenSSL's records), not while paused.  The
 * bufferevent keeps its input's end frozen and thaws it for its own reads;
 * so does this one.  End of file, an error or nothing more to read leave
 * the input as it was: the bufferevent meets them itself at its next read
 * (the socket stays readable).
 */
static void
read_more(struct conn *c, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	size_t more = (size_t)cfg->max_outbound / 16;
	ssize_t n;

	if (c->tls || c->reading_paused || evbuffer_get_length(in) < READ_FULL)
		return;
	if (more > READ_MORE)
		more = READ_MORE;
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, (ev_ssize_t)more, &v, 1) == 1) {
		if (v.iov_len > more)
			v.iov_len = more;
		n = read(bufferevent_getfd(c->bev), v.iov_base, v.iov_len);
		v.iov_len = n > 0 ? (size_t)n : 0;
		(void)evbuffer_commit_space(in, &v, 1);
	}
	evbuffer_freeze(in, 0);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->closed)
		return;
	if (c->kind != CONN_HTTP)
		read_more(c, in);
	stats.bytes_in += evbuffer_get_length(in);
	conn_ref(c);
	switch (c->kind) {
	case CONN_HTTP:
		http_input(c);
		break;
	case CONN_WS:
		ws_input(c);
		break;
	case CONN_STOMP: {
		struct evbuffer_iovec v[8];
		int i, n;
		size_t len = evbuffer_get_length(in);

		/* hand contiguous pieces to the parser, then drop them */
		n = evbuffer_peek(in, -1, NULL, v, 8);
		for (i = 0; i < n && i < 8 && !c->closed && !c->closing; i++)
			session_input(c->session, v[i].iov_base, v[i].iov_len);
		if (n > 8) {
			/* rare: more chunks than we peeked; handle the rest
			 * on the next callback */
			size_t done = 0;

			for (i = 0; i < 8; i++)
				done += v[i].iov_len;
			evbuffer_drain(in, done);
			bufferevent_trigger(bev, EV_READ, 0);
		} else
			evbuffer_drain(in, len);
		break;
	}
	}
	conn_unref(c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	/* the bufferevent's output is empty: send directly again.  Its
	 * chains (a backlog's worth, maybe) were freed as they went out: the
	 * next trim pass gives the pages back. */
	if (c->bev_busy) {
		drained = 1;
		conn_trim_later(c);
	}
	c->bev_busy = 0;
	if (c->closing && !c->closed && !c->dirty && conn_outbound(c) == 0)
		conn_destroy(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_ready = 1;	/* TLS handshake done */
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    c->kind == CONN_HTTP && http_timeout(c) == 0)
		return;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING) &&
	    c->kind == CONN_HTTP && !c->closing) {
		log_client(c->ip, "%s: HTTP answer not read for %d ms: closed",
		    c->peer, cfg->http_timeout_ms);
		metrics_counter_add("parley_connections_timed_out_total",
		    "reason=\"http_unread\"", 1);
	} else if (what & BEV_EVENT_TIMEOUT) {
		log_client(c->ip, "%s: closed after linger timeout", c->peer);
	} else if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		unsigned long tlserr = bufferevent_get_openssl_error(bev);

		if (tlserr != 0)
			log_client(c->ip, "%s: TLS error: %s", c->peer,
			    ERR_reason_error_string(tlserr) ?
			    ERR_reason_error_string(tlserr) : "unknown");
		else if (err == ETIMEDOUT) {
			log_client(c->ip, "%s: peer unreachable (no answer to "
			    "TCP keepalive or retransmissions): closed", c->peer);
			metrics_counter_add("parley_connections_timed_out_total",
			    "reason=\"unreachable\"", 1);
		}
		else
			log_debug("%s: connection error: %s", c->peer,
			    evutil_socket_error_to_string(err));
	} else if (what & BEV_EVENT_EOF)
		log_debug("%s: peer closed", c->peer);
	conn_destroy(c);
}

/* ------------------------------------------------------------ output */

/*
 * The flat output buffer grows to OBUF_MAX before bytes spill into pend.
 * Past OBUF_HOLD it goes straight to OBUF_MAX, and is freed once its
 * bytes went out: a busy connection's turn (a small room's burst of 60
 * frames, 16-20 KiB) is one send(2) without copies into evbuffer chains,
 * and no connection holds more than OBUF_HOLD between turns.
 */
#define OBUF_MAX (64 * 1024)
#define OBUF_HOLD (16 * 1024)
/* Kept by a connection in use; bigger ones are freed by the trim pass. */
#define OBUF_KEEP (2 * 1024)

size_t
conn_outbound(struct conn *c)
{
	size_t n = c->olen + c->oext;

	if (c->pend != NULL)
		n += evbuffer_get_length(c->pend);
	if (c->bev_busy || c->tls)
		n += evbuffer_get_length(bufferevent_get_output(c->bev));
	return n;
}

struct evbuffer *
conn_output(struct conn *c)
{
	c->bev_busy = 1;
	return bufferevent_get_output(c->bev);
}

static void
queue_reset(struct conn *c)
{
	c->olen = 0;
	c->niov = 0;
	c->osealed = 0;
	c->oext = 0;
}

/* Room for two more iov entries (a frame's head piece and its tail) and
 * one spare for the piece of obuf that may follow (iov_fix). */
static int
iov_reserve(struct conn *c)
{
	struct iovec *v;
	int cap;

	if (c->niov + 3 <= c->iovcap)
		return 0;
	cap = c->iovcap ? c->iovcap * 2 : 16;
	if ((v = realloc(c->iov, (size_t)cap * sizeof(*v))) == NULL)
		return -1;
	c->iov = v;
	c->iovcap = cap;
	return 0;
}

/* obuf's bytes not yet in iov become its next entry (room reserved). */
static void
iov_seal(struct conn *c)
{
	if (c->olen == c->osealed)
		return;
	c->iov[c->niov].iov_base = (void *)(uintptr_t)c->osealed;
	c->iov[c->niov].iov_len = (c->olen - c->osealed) | IOV_OBUF;
	c->niov++;
	c->osealed = c->olen;
}

/* The turn's queue as real pointers (obuf does not move after this);
 * returns its length in bytes. */
static size_t
iov_fix(struct conn *c)
{
	size_t total = 0;
	int i;

	iov_seal(c);
	for (i = 0; i < c->niov; i++) {
		struct iovec *v = &c->iov[i];

		if (v->iov_len & IOV_OBUF) {
			v->iov_len &= ~IOV_OBUF;
			v->iov_base = c->obuf + (uintptr_t)v->iov_base;
		}
		total += v->iov_len;
	}
	return total;
}

/* evbuffer is done with a flat output buffer it was handed */
static void
obuf_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

/* Copy the turn's queue from byte off on to dst (pend or the
 * bufferevent's output) and empty it.  A burst's flat buffer (past
 * OBUF_HOLD, freed after the turn anyway) is handed over instead of
 * copied: dst frees it once its bytes went out, and the next bytes get a
 * new one. */
static void
queue_to(struct conn *c, struct evbuffer *dst, size_t off)
{
	int i;

	if (c->niov == 0 && c->ocap > OBUF_HOLD && off < c->olen &&
	    evbuffer_add_reference(dst, c->obuf + off, c->olen - off,
	    obuf_release, c->obuf) == 0) {
		c->obuf = NULL;
		c->ocap = 0;
		queue_reset(c);
		return;
	}

	if (c->niov > 0) {
		iov_fix(c);
		for (i = 0; i < c->niov; i++) {
			size_t len = c->iov[i].iov_len;

			if (off >= len) {
				off -= len;
				continue;
			}
			evbuffer_add(dst, (char *)c->iov[i].iov_base + off,
			    len - off);
			off = 0;
		}
	} else if (off < c->olen)
		evbuffer_add(dst, c->obuf + off, c->olen - off);
	queue_reset(c);
}

/* Keep p until the end of the turn's flush (its tail is in iovs). */
static void
hold(struct pmsg *p)
{
	if (p->held)
		return;
	p->held = 1;
	pmsg_ref(p);
	p->held_next = held;
	held = p;
}

static void
release_held(void)
{
	struct pmsg *p;

	while ((p = held) != NULL) {
		held = p->held_next;
		p->held = 0;
		p->held_next = NULL;
		pmsg_unref(p);
	}
}

/* sendmsg(2) the iov's n entries (total bytes) without blocking, IOV_MAX
 * at a time; returns the bytes the socket took. */
static size_t
send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr mh;
	size_t done = 0, want;
	ssize_t r;
	int i, k;

	while (n > 0) {
		k = n > IOV_MAX ? IOV_MAX : n;
		for (i = 0, want = 0; i < k; i++)
			want += iov[i].iov_len;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)k;
		if ((r = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL)) <= 0)
			break;
		done += (size_t)r;
		if ((size_t)r < want)
			break;
		iov += k;
		n -= k;
	}
	return done;
}

/*
 * End of the loop turn: write what each connection queued.  When nothing
 * is waiting in the bufferevent, one send goes straight to the socket (no
 * EV_WRITE to arm and disarm); the rest, if any, is copied to the
 * bufferevent, which writes it when the socket can take it.
 */
static void
flush_one(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t off = 0, total;
	ssize_t n;
	int fd = bufferevent_getfd(c->bev), direct = !c->tls && !c->bev_busy;

	if (c->pend != NULL && evbuffer_get_length(c->pend) > 0) {
		/* referenced tails or a spill: the turn's queue goes behind,
		 * one writev */
		queue_to(c, c->pend, 0);
		if (direct)
			(void)evbuffer_write(c->pend, fd);
		if (evbuffer_get_length(c->pend) > 0) {
			evbuffer_add_buffer(out, c->pend);
			c->bev_busy = 1;
		}
	} else if (c->niov > 0) {
		total = iov_fix(c);
		if (direct)
			off = send_iov(fd, c->iov, c->niov);
		if (off < total) {
			/* EAGAIN, or an error the bufferevent will meet and
			 * report itself: the rest is copied there */
			queue_to(c, out, off);
			c->bev_busy = 1;
		}
		queue_reset(c);
	} else if (c->olen > 0) {
		if (direct) {
			n = send(fd, c->obuf, c->olen,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				off = (size_t)n;
		}
		if (off < c->olen) {
			queue_to(c, out, off);
			c->bev_busy = 1;
		}
		queue_reset(c);
	}
	if (c->ocap > OBUF_HOLD) {	/* a burst's buffer: gone now */
		free(c->obuf);
		c->obuf = NULL;
		c->ocap = 0;
	}
	if (c->iovcap > 1024) {
		free(c->iov);
		c->iov = NULL;
		c->iovcap = 0;
	}
	if (c->closing && conn_outbound(c) == 0)
		conn_destroy(c);
}

/*
 * Write what c queued now instead of at the end of the turn: the fan-out
 * calls this for a subscriber whose turn is complete, while its buffer
 * (and the connection's state) is still in the cache.  The kernel then
 * copies from cached bytes, and a burst's buffer, freed here, is the
 * one malloc hands to the next subscriber.
 */
void
conn_flush_now(struct conn *c)
{
	if (!c->dirty || c->closed)
		return;
	TAILQ_REMOVE(&dirty, c, dirty_entry);
	c->dirty = 0;
	flush_one(c);
	conn_unref(c);
}

/* Write the connections that have little to send (receipts, a quiet
 * room's frame), the others move to the tail (once each: the walk stops
 * at the first one moved).  With all, every dirty connection then. */
static void
flush_dirty(int all)
{
	struct conn *c, *next, *last;

	for (c = TAILQ_FIRST(&dirty), last = NULL; c != NULL && c != last;
	    c = next) {
		next = TAILQ_NEXT(c, dirty_entry);
		if (c->olen > FLUSH_FIRST_MAX || (c->pend != NULL &&
		    evbuffer_get_length(c->pend) > 0)) {
			TAILQ_REMOVE(&dirty, c, dirty_entry);
			TAILQ_INSERT_TAIL(&dirty, c, dirty_entry);
			if (last == NULL)
				last = c;
		}
	}
	while ((c = TAILQ_FIRST(&dirty)) != NULL && (all || c != last)) {
		TAILQ_REMOVE(&dirty, c, dirty_entry);
		c->dirty = 0;
		if (!c->closed)
			flush_one(c);
		conn_unref(c);
	}
}

/* Before a big room's fan-out: what little the others queued goes first,
 * so a receipt or a quiet room's frame does not wait behind its sends. */
void
conn_flush_quiet(void)
{
	flush_dirty(0);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	/* the turn's room messages to their subscribers first (still armed:
	 * the connections they make dirty are flushed below) */
	broker_flush();
	flush_armed = 0;
	/* connections with little to send first: a quiet room's frame does
	 * not wait behind thousands of sends to a busy room's members */
	flush_dirty(1);
	/* every queue pointing at a held tail was sent or copied */
	release_held();
}

void
conn_arm_flush(void)
{
	if (!flush_armed) {
		flush_armed = 1;
		event_active(flush_ev, EV_TIMEOUT, 0);
	}
}

static void
mark_dirty(struct conn *c)
{
	c->wrote = 1;
	if (c->dirty)
		return;
	c->dirty = 1;
	conn_ref(c);		/* until flushed */
	TAILQ_INSERT_TAIL(&dirty, c, dirty_entry);
	conn_arm_flush();
}

/*
 * Per-connection buffers (the output buffer here, wslay's context in ws.c)
 * are kept while a connection is busy (no malloc per turn) and freed once
 * a pass, every second, finds them unused since the last one: an idle
 * connection holds none, and a burst (a history replay, say) does not pin
 * a big buffer for the life of the connection.
 */
void
conn_trim_later(struct conn *c)
{
	struct timeval sec = { 1, 0 };

	if (c->trimq || c->closed)
		return;
	if (TAILQ_EMPTY(&trimq))
		event_add(trim_ev, &sec);
	TAILQ_INSERT_TAIL(&trimq, c, trim_entry);
	c->trimq = 1;
}

static void
trim_remove(struct conn *c)
{
	if (c->trimq) {
		TAILQ_REMOVE(&trimq, c, trim_entry);
		c->trimq = 0;
	}
}

static size_t trimmed;		/* bytes of buffers freed in this pass */

static void
obuf_free(struct conn *c)
{
	trimmed += c->ocap + (size_t)c->iovcap * sizeof(*c->iov);
	free(c->obuf);
	c->obuf = NULL;
	c->ocap = 0;
	free(c->iov);
	c->iov = NULL;
	c->iovcap = 0;
	queue_reset(c);
}

static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c, *next;
	int keep;

	(void)fd;
	(void)what;
	(void)arg;
	for (c = TAILQ_FIRST(&trimq); c != NULL; c = next) {
		next = TAILQ_NEXT(c, trim_entry);
		keep = 0;
		if (c->obuf != NULL) {
			/* unused, or grown by a burst: a busy connection
			 * allocates again at the size it needs now */
			if (c->olen == 0 && (!c->oused || c->ocap > OBUF_KEEP))
				obuf_free(c);
			else {
				c->oused = 0;
				keep = 1;
			}
		}
		if (c->kind == CONN_WS && c->ws != NULL && ws_trim(c))
			keep = 1;
		if (!keep)
			trim_remove(c);
	}
	/* after a burst (its output chains are freed as they are written,
	 * its buffers here), give free pages back: free() keeps them in the
	 * heap while anything above them is in use */
	if (trimmed > 0 || drained)
		malloc_trim(0);
	trimmed = 0;
	drained = 0;
	if (TAILQ_EMPTY(&trimq))
		event_del(trim_ev);
}

/* Room for n more bytes in obuf; NULL when out of memory. */
static unsigned char *
obuf_grow(struct conn *c, size_t n)
{
	size_t cap;
	unsigned char *b;

	c->oused = 1;
	if (c->olen + n <= c->ocap)
		return c->obuf + c->olen;
	if ((c->olen > 0 && c->olen + n > OBUF_MAX) || c->niov > IOV_SPILL) {
		/* a burst (presence storm, replay): what is queued moves to
		 * pend, and the flat buffer stays small */
		if (c->pend == NULL && (c->pend = evbuffer_new()) == NULL)
			return NULL;
		queue_to(c, c->pend, 0);
		if (n <= c->ocap)
			return c->obuf;
	}
	for (cap = c->ocap ? c->ocap * 2 : 512; cap < c->olen + n; cap *= 2)
		;
	if (cap > OBUF_HOLD && cap < OBUF_MAX)
		cap = OBUF_MAX;
	if ((b = realloc(c->obuf, cap)) == NULL)
		return NULL;
	c->obuf = b;
	c->ocap = cap;
	conn_trim_later(c);
	return b + c->olen;
}

int
conn_write_raw(struct conn *c, const void *data, size_t len)
{
	unsigned char *b;

	if (c->closed || c->bev == NULL || (b = obuf_grow(c, len)) == NULL)
		return -1;
	memcpy(b, data, len);
	c->olen += len;
	mark_dirty(c);
	return 0;
}

static int
conn_check_room(struct conn *c)
{
	if (c->closed || c->closing)
		return -1;
	if ((int64_t)conn_outbound(c) > cfg->max_outbound) {
		char why[128];

		stats.slow_consumers++;
		snprintf(why, sizeof(why), "slow consumer: more than %lld "
		    "bytes queued", (long long)cfg->max_outbound);
		log_client_warn(c->ip, "%s: disconnecting %s", c->peer, why);
		if (c->session != NULL)
			session_shutdown(c->session);	/* ERROR + close */
		conn_close(c, 1008, why);
		return -1;
	}
	return 0;
}

/* Length of a server frame's WebSocket header for a payload of len. */
static size_t
ws_header_len(size_t len)
{
	return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

/* Header of an unmasked server WebSocket frame; returns its length. */
static size_t
ws_frame_header(unsigned char *h, int opcode, size_t len)
{
	size_t n = ws_header_len(len);

	h[0] = 0x80 | opcode;
	if (n == 2)
		h[1] = (unsigned char)len;
	else if (n == 4) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
	} else {
		h[1] = 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
	return n;
}

/* evbuffer is done with a referenced tail */
static void
tail_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	pmsg_unref(arg);
}

static int
conn_append(struct conn *c, const void *head, size_t head_len,
    struct pmsg *p, int binary)
{
	size_t tail = p ? p->tail_len : 0, total = head_len + tail;
	unsigned char hdr[10], *b;
	size_t hn = 0;
	int share = tail > 0 && tail < SHARE_MIN && p->share &&
	    iov_reserve(c) == 0;

	if (c->kind == CONN_WS) {
		if (!ws_can_send(c))
			return -1;
		hn = ws_frame_header(hdr, binary ? 0x2 : 0x1, total);
		stats.bytes_out += hn;
	}
	if (tail >= SHARE_MIN) {
		/* a large shared tail is referenced by a chain that can
		 * outlive the turn: the frame goes to pend, behind everything
		 * queued before it */
		if (c->pend == NULL && (c->pend = evbuffer_new()) == NULL)
			return -1;
		queue_to(c, c->pend, 0);
		evbuffer_add(c->pend, hdr, hn);
		evbuffer_add(c->pend, head, head_len);
		pmsg_ref(p);
		if (evbuffer_add_reference(c->pend, p->tail, tail,
		    tail_release, p) == -1)
			pmsg_unref(p);
	} else {
		size_t copied = hn + head_len + (share ? 0 : tail);

		if ((b = obuf_grow(c, copied)) == NULL)
			return -1;
		memcpy(b, hdr, hn);
		memcpy(b + hn, head, head_len);
		if (!share && tail > 0)
			memcpy(b + hn + head_len, p->tail, tail);
		c->olen += copied;
		if (share) {
			/* the room reserved above is still there: a spill in
			 * obuf_grow empties iov but keeps its array */
			iov_seal(c);
			c->iov[c->niov].iov_base = p->tail;
			c->iov[c->niov].iov_len = tail;
			c->niov++;
			c->oext += tail;
			hold(p);
		}
	}
	stats.bytes_out += total;
	stats.frames_out++;
	mark_dirty(c);
	return 0;
}

int
conn_send(struct conn *c, const void *data, size_t len)
{
	if (conn_check_room(c) == -1)
		return -1;
	return conn_append(c, data, len, NULL, 0);
}

int
conn_send_final(struct conn *c, const void *data, size_t len)
{
	if (c->closed || c->closing)
		return -1;
	return conn_append(c, data, len, NULL, 0);
}

int
conn_send_msg(struct conn *c, const char *head, size_t head_len,
    struct pmsg *p)
{
	if (conn_check_room(c) == -1)
		return -1;
	return conn_append(c, head, head_len, p, p->binary);
}

/* Frame by frame; returns how many were queued. */
static size_t
send_each(struct conn *c, const char *head, size_t head_len,
    struct pmsg *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (conn_send_msg(c, head, head_len, v[i]) == -1)
			break;
	return i;
}

/*
 * A turn's unshared frames for one subscriber in one pass per OBUF_MAX of
 * them: each piece is sized, the buffer grows once (a full one is handed
 * to pend, not copied) and each frame's WebSocket header, head and tail
 * are copied in one loop.  Returns how many frames were queued.
 */
static size_t
copy_msgs(struct conn *c, const char *head, size_t head_len,
    struct pmsg *const *v, size_t n)
{
	size_t i = 0, j, len, total;
	int ws = c->kind == CONN_WS;
	unsigned char *b;

	while (i < n) {
		for (total = 0, j = i; j < n; j++) {
			len = head_len + v[j]->tail_len;
			len += ws ? ws_header_len(len) : 0;
			if (j > i && total + len > OBUF_MAX)
				break;
			total += len;
		}
		if ((b = obuf_grow(c, total)) == NULL)
			break;
		stats.frames_out += j - i;
		for (; i < j; i++) {
			len = head_len + v[i]->tail_len;
			if (ws)
				b += ws_frame_header(b, v[i]->binary ? 0x2 :
				    0x1, len);
			memcpy(b, head, head_len);
			memcpy(b + head_len, v[i]->tail, v[i]->tail_len);
			b += len;
		}
		c->olen += total;
		stats.bytes_out += total;
	}
	if (i > 0)
		mark_dirty(c);
	return i;
}

/*
 * A subscription's frames of one turn.  When all are copied ones (below
 * SHARE_MIN, not gathered) they are written in one pass per OBUF_MAX of
 * them (copy_msgs): one slow-consumer check, one growth per piece, no
 * per-frame bookkeeping.  Otherwise frame by frame.
 */
size_t
conn_send_msgs(struct conn *c, const char *head, size_t head_len,
    struct pmsg *const *v, size_t n)
{
	size_t i;

	if (n > 1 && conn_check_room(c) == 0 &&
	    (c->kind != CONN_WS || ws_can_send(c))) {
		for (i = 0; i < n; i++)
			if (v[i]->share || v[i]->tail_len >= SHARE_MIN)
				break;
		if (i < n)
			i = 0;		/* shared tails: frame by frame */
		else
			i = copy_msgs(c, head, head_len, v, n);
		if (i == n)
			return n;
		return i + send_each(c, head, head_len, v + i, n - i);
	}
	return send_each(c, head, head_len, v, n);
}

/* ------------------------------------------------------------ lifetime */

void
conn_ref(struct conn *c)
{
	c->refcnt++;
}

static void
conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	free(c);
}

void
conn_unref(struct conn *c)
{
	if (--c->refcnt > 0)
		return;
	/* never free inside our own callbacks: defer to a fresh loop turn */
	if (event_base_once(base, -1, EV_TIMEOUT, conn_free_cb, c, NULL) == -1)
		free(c);
}

static void
conn_destroy(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	stats.connections_open--;
	if (c->session != NULL) {
		session_closed(c->session);
		c->session = NULL;
	}
	if (c->http != NULL) {
		http_conn_free(c->http);
		c->http = NULL;
	}
	if (c->ws != NULL)
		ws_free(c);
	if (c->unpause != NULL)
		event_free(c->unpause);
	c->unpause = NULL;
	if (c->dirty) {
		TAILQ_REMOVE(&dirty, c, dirty_entry);
		c->dirty = 0;
		conn_unref(c);
	}
	if (c->pend != NULL)
		evbuffer_free(c->pend);
	c->pend = NULL;
	obuf_free(c);
	trim_remove(c);
	if (c->admitted)
		access_ip_release(c->ip);
	c->admitted = 0;
	bufferevent_free(c->bev);
	c->bev = NULL;
	conn_unref(c);
}

void
conn_close(struct conn *c, int code, const char *reason)
{
	struct timeval linger = { CLOSE_LINGER_MS / 1000,
	    (CLOSE_LINGER_MS % 1000) * 1000 };

	if (c->closed || c->closing)
		return;
	if (c->kind == CONN_WS && c->ws != NULL)
		ws_close(c, code, reason);
	c->closing = 1;
	c->close_code = code;
	if (code != 1000 && code != 1001)
		log_client(c->ip, "%s: closing: %s", c->peer,
		    reason ? reason : "");
	/* stop reading, flush, then close; bounded by the linger timeout.
	 * Within a TLS handshake nothing can be flushed (and no write is
	 * pending for the timeout to watch): close at once. */
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_set_timeouts(c->bev, NULL, &linger);
	if ((conn_outbound(c) == 0 && !c->dirty) || (c->tls && !c->tls_ready))
		conn_destroy(c);
}

static void
unpause_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->closed || c->closing)
		return;
	c->reading_paused = 0;
	bufferevent_enable(c->bev, EV_READ);
	if (c->session != NULL) {
		conn_ref(c);
		session_unpaused(c->session);
		conn_unref(c);
	}
}

void
conn_pause(struct conn *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (c->closed || c->closing)
		return;
	if (c->unpause == NULL &&
	    (c->unpause = evtimer_new(base, unpause_cb, c)) == NULL)
		return;
	c->reading_paused = 1;
	bufferevent_disable(c->bev, EV_READ);
	evtimer_add(c->unpause, &tv);
}

int
conn_admit_client(struct conn *c, const char *xff)
{
	char ip[INET6_ADDRSTRLEN];
	char peer[sizeof(c->peer)];

	if (!c->via_proxy || c->admitted)
		return 0;
	access_client_ip(c->ip, xff, ip, sizeof(ip));
	if (access_ip_admit(ip) == -1)
		return -1;
	snprintf(peer, sizeof(peer), "%.46s via %.60s", ip, c->peer);
	memcpy(c->peer, peer, sizeof(peer));
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->admitted = 1;
	return 0;
}

int
conn_upgrade_ws(struct conn *c, const char *bearer)
{
	c->kind = CONN_WS;
	/* from here the session's CONNECT timeout and heart-beats rule */
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (ws_init(c, cfg->max_frame) == -1)
		return -1;
	if ((c->session = session_new(c, bearer)) == NULL)
		return -1;
	return 0;
}
