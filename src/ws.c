/*
 * ws.c - WebSocket handshake and framing.  wslay parses client frames
 * (masking, fragmentation, control frames, size limit) and answers pings
 * and closes; conn.c writes data frames itself so that shared message bytes
 * are not copied into wslay's queue.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "util.h"
#include "ws.h"

/* Reads within one trim pass (about a second) that make a connection busy
 * enough to keep its wslay context between messages. */
#define WS_BUSY_INPUTS 8

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void
ws_accept_key(const char *key, char *out, size_t outlen)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char buf[128];
	unsigned char b64[64];

	snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
	SHA1((const unsigned char *)buf, strlen(buf), md);
	EVP_EncodeBlock(b64, md, SHA_DIGEST_LENGTH);
	snprintf(out, outlen, "%s", (char *)b64);
}

/* Does the comma-separated list contain token (case-insensitive)? */
static int
list_has(const char *list, const char *token)
{
	size_t tl = strlen(token);
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *e;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p;
		while (*e != '\0' && *e != ',')
			e++;
		n = (size_t)(e - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tl && strncasecmp(p, token, tl) == 0)
			return 1;
		p = e;
	}
	return 0;
}

int
ws_select_protocol(const char *offered, char *out, size_t outlen)
{
	static const char *const prefs[] = { "v12.stomp", "v11.stomp",
	    "v10.stomp" };
	static const int vers[] = { 12, 11, 10 };
	size_t i;

	if (offered == NULL)
		return -1;
	for (i = 0; i < 3; i++)
		if (list_has(offered, prefs[i])) {
			snprintf(out, outlen, "%s", prefs[i]);
			return vers[i];
		}
	return -1;
}

static int
key_valid(const char *key)
{
	unsigned char raw[64];
	size_t n = strlen(key);

	/* base64 of 16 bytes: 24 chars ending in "==" */
	if (n != 24 || key[22] != '=' || key[23] != '=')
		return 0;
	return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

int
ws_check_upgrade(const struct ws_request *r, const char *origins,
    struct ws_answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	ans->status = 400;
	if (r->method == NULL || strcmp(r->method, "GET") != 0) {
		ans->status = 405;
		ans->error = "WebSocket upgrade needs GET";
		return -1;
	}
	if (r->http_major < 1 || (r->http_major == 1 && r->http_minor < 1)) {
		ans->error = "WebSocket upgrade needs HTTP/1.1";
		return -1;
	}
	if (r->upgrade == NULL || !list_has(r->upgrade, "websocket")) {
		ans->status = 426;
		ans->error = "this endpoint speaks WebSocket: send "
		    "Upgrade: websocket";
		return -1;
	}
	if (r->connection == NULL || !list_has(r->connection, "upgrade")) {
		ans->error = "Connection header must contain Upgrade";
		return -1;
	}
	if (r->version == NULL || strcmp(r->version, "13") != 0) {
		ans->status = 426;
		ans->error = "unsupported Sec-WebSocket-Version (only 13)";
		return -1;
	}
	if (r->key == NULL || !key_valid(r->key)) {
		ans->error = "missing or malformed Sec-WebSocket-Key";
		return -1;
	}
	if (origins != NULL && origins[0] != '\0' &&
	    (r->origin == NULL || !list_has(origins, r->origin))) {
		ans->status = 403;
		ans->error = "Origin not allowed";
		return -1;
	}
	ans->stomp_version = ws_select_protocol(r->protocols, ans->protocol,
	    sizeof(ans->protocol));
	if (ans->stomp_version == -1) {
		ans->error = "Sec-WebSocket-Protocol must offer v12.stomp, "
		    "v11.stomp or v10.stomp";
		return -1;
	}
	ws_accept_key(r->key, ans->accept, sizeof(ans->accept));
	ans->status = 101;
	return 0;
}

/* ------------------------------------------------------------ framing */

/*
 * A connection's WebSocket state.  wslay's context (two 4 KiB buffers) only
 * exists while it holds something: between messages, with every byte it
 * was given turned into whole frames, it is freed, and made again when the
 * next bytes arrive.  An idle connection then costs a few dozen bytes here.
 */
struct ws {
	wslay_event_context_ptr ctx;	/* NULL while idle */
	size_t max_msg;
	uint64_t handed;	/* bytes given to this ctx */
	uint64_t framed;	/* bytes of the frames it finished */
	uint64_t cur;		/* size of the frame being read */
	int in_msg;		/* a fragmented message is open */
	int close_sent;		/* a close frame went out */
	int recent;		/* inputs since the last trim pass */
};

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct conn *c = user;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	int n;

	(void)flags;
	n = evbuffer_remove(in, buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	((struct ws *)c->ws)->handed += (uint64_t)n;
	return n;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct conn *c = user;

	(void)flags;
	/* behind the data frames queued this turn, never before them */
	if (c->bev == NULL || conn_write_raw(c, data, len) == -1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static int
genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	if (getrandom(buf, len, 0) != (ssize_t)len)
		memset(buf, 0x5a, len);
	return 0;
}

static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg
    *arg, void *user)
{
	struct conn *c = user;

	if (c->closing || c->closed)
		return;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		if (!utf8_valid(arg->msg, arg->msg_length)) {
			static const char why[] = "invalid UTF-8 in a text "
			    "message";

			stats.err_ws++;
			log_info("%s: %s", c->peer, why);
			wslay_event_queue_close(ctx, 1007,
			    (const uint8_t *)why, sizeof(why) - 1);
			return;
		}
		/* FALLTHROUGH */
	case WSLAY_BINARY_FRAME:
		if (c->session != NULL)
			session_input(c->session, (const char *)arg->msg,
			    arg->msg_length);
		break;
	case WSLAY_CONNECTION_CLOSE:
		log_debug("%s: WebSocket close %u", c->peer,
		    arg->status_code);
		break;
	default:
		break;
	}
}

static void
frame_start_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct conn *c = user;
	struct ws *w = c->ws;
	uint64_t len = arg->payload_length;

	(void)ctx;
	/* client frames: 2-byte header, extended length, 4-byte mask */
	w->cur = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4 + len;
	if (arg->opcode < 0x8)		/* data or continuation */
		w->in_msg = !arg->fin;
}

static void
frame_end_cb(wslay_event_context_ptr ctx, void *user)
{
	struct conn *c = user;
	struct ws *w = c->ws;

	(void)ctx;
	w->framed += w->cur;
	w->cur = 0;
}

static const struct wslay_event_callbacks callbacks = {
	recv_cb, send_cb, genmask_cb, frame_start_cb, NULL, frame_end_cb,
	msg_cb
};

static int
ws_ctx_new(struct conn *c)
{
	struct ws *w = c->ws;

	if (wslay_event_context_server_init(&w->ctx, &callbacks, c) != 0) {
		w->ctx = NULL;
		return -1;
	}
	/* STOMP frames ride in messages: the frame limit bounds them */
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_msg);
	w->handed = w->framed = w->cur = 0;
	return 0;
}

int
ws_init(struct conn *c, size_t max_msg)
{
	struct ws *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->max_msg = max_msg;
	c->ws = w;
	return 0;		/* the wslay context comes with the first bytes */
}

/* Every byte handed to the context has become whole frames, no
 * fragmented message is open and nothing waits to be sent: the context
 * can go (wslay's is about 8.6 KiB) and a fresh one take over later. */
static int
ws_droppable(struct ws *w)
{
	return !w->in_msg && w->cur == 0 && w->handed == w->framed &&
	    !wslay_event_want_write(w->ctx);
}

int
ws_has_context(struct conn *c)
{
	return c->ws != NULL && ((struct ws *)c->ws)->ctx != NULL;
}

int
ws_trim(struct conn *c)
{
	struct ws *w = c->ws;
	int was = w->recent;

	w->recent = 0;
	if (w->ctx != NULL && !was && ws_droppable(w)) {
		wslay_event_context_free(w->ctx);
		w->ctx = NULL;
	}
	return w->ctx != NULL || was;
}

void
ws_input(struct conn *c)
{
	struct ws *w = c->ws;
	int rv, busy = w->recent >= WS_BUSY_INPUTS;

	if (w->ctx == NULL && ws_ctx_new(c) == -1) {
		conn_close(c, 1011, "out of memory");
		return;
	}
	if (w->recent < WS_BUSY_INPUTS)
		w->recent++;
	conn_trim_later(c);
	rv = wslay_event_recv(w->ctx);
	if (!c->closed && c->ws != NULL)
		wslay_event_send(w->ctx);
	if (c->closed || c->closing)
		return;
	if (rv != 0) {
		stats.err_ws++;
		conn_close(c, 1011, "WebSocket receive failed");
		return;
	}
	if (wslay_event_get_close_received(w->ctx) ||
	    wslay_event_get_close_sent(w->ctx)) {
		uint16_t code = wslay_event_get_status_code_sent(w->ctx);

		w->close_sent |= wslay_event_get_close_sent(w->ctx);
		if (code == 1002 || code == 1009)
			stats.err_ws++;
		if (code != WSLAY_CODE_NORMAL_CLOSURE &&
		    code != WSLAY_CODE_NO_STATUS_RCVD && code != 0)
			log_info("%s: WebSocket closed with code %u", c->peer,
			    code);
		conn_close(c, code, "WebSocket closed");
		return;
	}
	/*
	 * Between messages and nothing half-read: an occasional sender
	 * (heart-beats, a chat line now and then, the frames of a login)
	 * drops the context now; a busy one (WS_BUSY_INPUTS reads within a
	 * trim pass) keeps it, and the trim pass drops it once the
	 * connection has been quiet for a second.
	 */
	if (!busy && ws_droppable(w)) {
		wslay_event_context_free(w->ctx);
		w->ctx = NULL;
	}
}

int
ws_can_send(struct conn *c)
{
	struct ws *w = c->ws;

	if (w == NULL || w->close_sent)
		return 0;
	return w->ctx == NULL || !wslay_event_get_close_sent(w->ctx);
}

void
ws_close(struct conn *c, int code, const char *reason)
{
	struct ws *w = c->ws;
	size_t n = reason ? strlen(reason) : 0;

	if (w == NULL || w->close_sent)
		return;
	if (w->ctx == NULL && ws_ctx_new(c) == -1)
		return;
	if (wslay_event_get_close_sent(w->ctx))
		return;
	if (n > 123)
		n = 123;	/* control frame payload limit */
	wslay_event_queue_close(w->ctx, (uint16_t)code,
	    (const uint8_t *)reason, n);
	wslay_event_send(w->ctx);
	w->close_sent = 1;
}

void
ws_free(struct conn *c)
{
	struct ws *w = c->ws;

	if (w != NULL && w->ctx != NULL)
		wslay_event_context_free(w->ctx);
	free(w);
	c->ws = NULL;
}
