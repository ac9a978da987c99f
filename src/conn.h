/*
 * conn.h - a client connection: accepted socket with a bufferevent, speaking
 * HTTP (then maybe WebSocket) on the HTTP port, or plain STOMP on the STOMP
 * port.  Connections are refcounted and freed from a deferred callback,
 * never inside their own callbacks.
 */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

struct bufferevent;
struct evbuffer;
struct event_base;
struct config;
struct session;
struct pmsg;
struct http_req;

enum conn_kind {
	CONN_HTTP,		/* HTTP/1.1 requests */
	CONN_WS,		/* WebSocket carrying STOMP */
	CONN_STOMP		/* plain STOMP over TCP */
};

struct conn {
	int refcnt;
	enum conn_kind kind;
	struct bufferevent *bev;
	char peer[112];			/* "addr:port" (or "client via
					 * proxy:port") for logs */
	struct session *session;	/* WS and STOMP */
	struct http_conn *http;		/* HTTP parser state */
	void *ws;			/* wslay context (CONN_WS) */
	int closing;			/* close after output drains */
	int direct_subs;		/* subscriptions written straight from
					 * a room's fan-out (broker.c) */
	int closed;			/* freed soon; ignore everything */
	int close_code;			/* WebSocket close code sent */
	int reading_paused;
	struct event *unpause;		/* re-enables reading (rate limits) */
	char ip[48];			/* peer address, for per-IP limits */
	int tls;			/* bufferevent_openssl */
	int tls_ready;			/* its handshake is done */
	/*
	 * Frames queued this loop turn.  Per-connection bytes (WebSocket
	 * header, "MESSAGE\nsubscription:..") go to one flat buffer (obuf)
	 * kept while the connection is busy, and so do MESSAGE tails unless
	 * they are shared: then iov lists the turn's queue in order, pieces
	 * of obuf (as offsets, obuf may move) and the tails, and obuf's bytes
	 * from osealed on follow its last entry.  A flush at the end of the
	 * turn sends it all with one send(2)/sendmsg(2) when the socket takes
	 * it and copies what is left to the bufferevent's output.  pend
	 * (created on first use) holds frames that reference a large tail for
	 * longer than the turn, and what a burst spilled past 64 KiB; its
	 * bytes go first.
	 */
	unsigned char *obuf;
	size_t olen, ocap;
	struct iovec *iov;		/* empty while no tail is shared */
	int niov, iovcap;
	size_t osealed;			/* obuf bytes already in iov */
	size_t oext;			/* tail bytes referenced by iov */
	struct evbuffer *pend;
	int bev_busy;			/* bytes may wait in the bufferevent */
	int oused;			/* obuf used since the last trim pass */
	int trimq;			/* on the trim list (conn_trim_later) */
	TAILQ_ENTRY(conn) trim_entry;
	int wrote;			/* a frame was queued (heart-beats) */
	int dirty;			/* on the flush list */
	TAILQ_ENTRY(conn) dirty_entry;
	int admitted;			/* counted in the per-IP table */
	int via_proxy;			/* from a trusted proxy (HTTP) */
	TAILQ_ENTRY(conn) entry;
};

int	conn_init(struct config *c, struct event_base *base);
/* Start listening; -1 after logging why. */
int	conn_listen_http(const char *hostport);
int	conn_listen_stomp(const char *hostport);
/* Native TLS ([tls]): load cert and key (-1 after logging why), then
 * listen for HTTPS/wss (stomp 0) or STOMP over TLS (stomp 1). */
int	conn_tls_init(void);
int	conn_listen_tls(const char *hostport, int stomp);
void	conn_fini(void);
/* Stop accepting new connections. */
void	conn_stop_listening(void);
/* Ask every session to close (shutdown). */
void	conn_shutdown_all(void);
size_t	conn_count(void);
/* Output queued on all connections (and the largest queue, in *max). */
size_t	conn_outbound_total(size_t *max);
struct event_base *conn_base(void);

/*
 * Output.  conn_send queues one STOMP frame (WebSocket: one message).
 * conn_send_msg queues a MESSAGE frame made of the per-subscription head
 * (copied) and the shared tail of p (referenced, not copied, for a big
 * room or a large tail).
 * Both return 0, or -1 when the connection is closing or over its
 * outbound limit (then it is being closed as a slow consumer).
 */
int	conn_send(struct conn *c, const void *data, size_t len);
int	conn_send_msg(struct conn *c, const char *head, size_t head_len,
	    struct pmsg *p);
/* n MESSAGE frames with the same head; returns how many were queued. */
size_t	conn_send_msgs(struct conn *c, const char *head, size_t head_len,
	    struct pmsg *const *v, size_t n);
/* Make sure the end-of-turn flush runs (it calls broker_flush first). */
void	conn_arm_flush(void);
/* Write what c queued now (the fan-out, for a single-room subscriber). */
void	conn_flush_now(struct conn *c);
/* Write the connections with little queued (before a big room's sends). */
void	conn_flush_quiet(void);
/* Raw bytes after the frames queued so far (wslay's control frames). */
int	conn_write_raw(struct conn *c, const void *data, size_t len);
/* Like conn_send without the outbound limit: the last frame before a
 * close (the slow-consumer ERROR). */
int	conn_send_final(struct conn *c, const void *data, size_t len);
/* The bufferevent's output, for HTTP responses written there directly
 * (marks the connection's output busy, so direct sends wait for it). */
struct evbuffer *conn_output(struct conn *c);
/* Look at c's idle buffers in the next once-a-second trim pass (which
 * calls ws_trim for WebSocket connections). */
void	conn_trim_later(struct conn *c);
/* Queued output bytes. */
size_t	conn_outbound(struct conn *c);
/*
 * Close after flushing what is queued.  code is the WebSocket close code
 * (1000 normal, 1002 protocol, 1008 policy, 1011 error...); reason is logged
 * and sent in the close frame.
 */
void	conn_close(struct conn *c, int code, const char *reason);
void	conn_ref(struct conn *c);
void	conn_unref(struct conn *c);

/* Stop reading from c for ms milliseconds (rate limits). */
void	conn_pause(struct conn *c, int ms);

/* For ws.c/http.c: switch an HTTP connection to WebSocket. */
int	conn_upgrade_ws(struct conn *c, const char *bearer);
/*
 * A connection from a [limits] trusted_proxies address: count it for the
 * client X-Forwarded-For (xff, may be NULL) names, which also goes into
 * c->ip and c->peer.  0, or -1 when that client is over its per-IP limits.
 * Any other connection was counted at accept: 0.
 */
int	conn_admit_client(struct conn *c, const char *xff);

#endif
