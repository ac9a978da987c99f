/*
 * ws.c - WebSocket handshake and framing.  wslay's frame layer reads client
 * frames (header, lengths, unmasking); this file assembles messages,
 * checks the protocol's rules (masking, opcodes, fragmentation, UTF-8, the
 * size limit) and answers pings and closes.  conn.c writes data frames
 * itself so that shared message bytes are not copied per connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn.h"
#include "access.h"
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
 * A connection's WebSocket state.  wslay's frame layer reads client frames
 * (header, lengths, unmasking); messages, control frames and the protocol's
 * rules are here.  (wslay's event layer did the same with a byte-at-a-time
 * UTF-8 check and two allocations per message: 13% of the loop's time in
 * `bench rooms`, doc/performance.md.)
 *
 * wslay's frame context holds a 4 KiB input buffer, so it only exists
 * while it holds something: between messages, with every byte it was given
 * turned into whole frames, it is freed, and made again when the next
 * bytes arrive.  An idle connection then costs a few dozen bytes here.
 */
struct ws {
	wslay_frame_context_ptr ctx;	/* NULL while idle */
	size_t max_msg;
	uint64_t handed;	/* bytes given to this ctx */
	uint64_t framed;	/* bytes of the frames it finished */
	uint64_t cur;		/* size of the frame being read, 0 between */
	uint64_t off;		/* payload bytes of it read so far */
	int op;			/* its opcode */
	int fin;		/* its FIN bit */
	int msg_op;		/* text/binary of an open fragmented message */
	unsigned char *msg;	/* fragments (or a frame split over reads) */
	size_t msg_len, msg_cap;
	unsigned char ctl[125];	/* a control frame's payload */
	size_t ctl_len;
	int close_sent;		/* a close frame went out */
	int recent;		/* inputs since the last trim pass */
	int reading;		/* inside ws_input */
	int freed;		/* ws_free was called meanwhile */
};

static ssize_t
recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
	struct conn *c = user;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	int n;

	(void)flags;
	n = evbuffer_remove(in, buf, len);
	if (n <= 0)
		return -1;	/* wslay: WSLAY_ERR_WANT_READ */
	((struct ws *)c->ws)->handed += (uint64_t)n;
	return n;
}

/* The frame layer is only used to read; a server does not mask. */
static ssize_t
send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
	(void)data;
	(void)len;
	(void)flags;
	(void)user;
	return -1;
}

static int
genmask_cb(uint8_t *buf, size_t len, void *user)
{
	(void)buf;
	(void)len;
	(void)user;
	return -1;
}

static const struct wslay_frame_callbacks callbacks = {
	send_cb, recv_cb, genmask_cb
};

/* A control frame from the server (unmasked), behind the queued frames. */
static int
ctl_send(struct conn *c, int opcode, const void *payload, size_t len)
{
	unsigned char f[2 + 125];

	if (len > 125)
		len = 125;
	f[0] = (unsigned char)(0x80 | opcode);
	f[1] = (unsigned char)len;
	if (len > 0)
		memcpy(f + 2, payload, len);
	return conn_write_raw(c, f, 2 + len);
}

static void
ctx_drop(struct ws *w)
{
	wslay_frame_context_free(w->ctx);
	w->ctx = NULL;
	free(w->msg);
	w->msg = NULL;
	w->msg_len = w->msg_cap = 0;
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

/* Every byte handed to the context has become whole frames and no
 * fragmented message is open: the context can go. */
static int
ws_droppable(struct ws *w)
{
	return w->cur == 0 && w->msg_op == 0 && w->handed == w->framed;
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
	if (w->ctx != NULL && !was && ws_droppable(w))
		ctx_drop(w);
	return w->ctx != NULL || was;
}

/* A protocol error: close frame with code and reason, stop reading. */
static void
fail(struct conn *c, int code, const char *why)
{
	if (code == 1002 || code == 1007 || code == 1009)
		stats.err_ws++;
	log_client(c->ip, "%s: WebSocket: %s", c->peer, why);
	ws_close(c, code, why);
	conn_close(c, code, why);
}

/* RFC 6455 7.4: codes a peer may send in a close frame. */
static int
close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1011 && code != 1004 &&
	    code != 1005 && code != 1006) || (code >= 3000 && code <= 4999);
}

static void
on_control(struct conn *c, struct ws *w)
{
	unsigned code;

	switch (w->op) {
	case WSLAY_PING:
		(void)ctl_send(c, WSLAY_PONG, w->ctl, w->ctl_len);
		break;
	case WSLAY_CONNECTION_CLOSE:
		if (w->ctl_len == 1) {
			fail(c, 1002, "close frame with a 1-byte payload");
			return;
		}
		code = w->ctl_len >= 2 ? (unsigned)(w->ctl[0] << 8 | w->ctl[1])
		    : 0;
		if (w->ctl_len >= 2 && !close_code_valid(code)) {
			fail(c, 1002, "invalid close code");
			return;
		}
		if (w->ctl_len > 2 && !utf8_valid(w->ctl + 2, w->ctl_len - 2)) {
			fail(c, 1007, "invalid UTF-8 in a close reason");
			return;
		}
		log_debug("%s: WebSocket close %u", c->peer, code);
		/* echo the code (none when the peer sent none), then close */
		if (!w->close_sent)
			(void)ctl_send(c, WSLAY_CONNECTION_CLOSE, w->ctl,
			    w->ctl_len >= 2 ? 2 : 0);
		w->close_sent = 1;
		if (code != 0 && code != 1000 && code != 1001)
			log_client(c->ip, "%s: WebSocket closed with code %u",
			    c->peer, code);
		conn_close(c, code != 0 ? (int)code : 1000, "WebSocket closed");
		break;
	default:		/* a pong */
		break;
	}
}

/* A whole message: check a text one, hand it to the session. */
static void
on_message(struct conn *c, int op, const unsigned char *m, size_t len)
{
	if (m == NULL)
		m = (const unsigned char *)"";	/* empty fragments: no buffer */
	if (op == WSLAY_TEXT_FRAME && !utf8_valid(m, len)) {
		fail(c, 1007, "invalid UTF-8 in a text message");
		return;
	}
	if (c->session != NULL)
		session_input(c->session, (const char *)m, len);
}

static int
msg_append(struct ws *w, const unsigned char *p, size_t n)
{
	size_t cap;
	unsigned char *b;

	if (w->msg_len + n > w->msg_cap) {
		for (cap = w->msg_cap ? w->msg_cap * 2 : 1024;
		    cap < w->msg_len + n; cap *= 2)
			;
		if ((b = realloc(w->msg, cap)) == NULL)
			return -1;
		w->msg = b;
		w->msg_cap = cap;
	}
	memcpy(w->msg + w->msg_len, p, n);
	w->msg_len += n;
	return 0;
}

/* A new frame's header: the protocol's rules.  Returns -1 after fail(). */
static int
frame_start(struct conn *c, struct ws *w, const struct wslay_frame_iocb *io)
{
	uint64_t len = io->payload_length;

	if (io->rsv != 0)
		return fail(c, 1002, "reserved bits set without an extension"),
		    -1;
	if (!io->mask)
		return fail(c, 1002, "unmasked client frame"), -1;
	switch (io->opcode) {
	case WSLAY_CONTINUATION_FRAME:
		if (w->msg_op == 0)
			return fail(c, 1002, "continuation frame without a "
			    "message"), -1;
		break;
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		if (w->msg_op != 0)
			return fail(c, 1002, "new message inside a fragmented "
			    "one"), -1;
		break;
	case WSLAY_CONNECTION_CLOSE:
	case WSLAY_PING:
	case WSLAY_PONG:
		break;		/* wslay checked: FIN set, at most 125 bytes */
	default:
		return fail(c, 1002, "reserved opcode"), -1;
	}
	if (io->opcode < 0x8 && w->msg_len + len > w->max_msg)
		return fail(c, 1009, "message over the size limit"), -1;
	w->cur = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4 + len;
	w->off = 0;
	w->op = io->opcode;
	w->fin = io->fin;
	w->ctl_len = 0;
	if (io->opcode == WSLAY_TEXT_FRAME || io->opcode == WSLAY_BINARY_FRAME)
		w->msg_op = io->opcode;
	return 0;
}

/* Read every whole frame in the input; 0, or -1 when the connection
 * closed or is closing. */
static int
read_frames(struct conn *c, struct ws *w)
{
	struct wslay_frame_iocb io;
	ssize_t r;
	int whole;

	while (!c->closed && !c->closing && !w->freed) {
		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(w->ctx, &io);
		if (r == WSLAY_ERR_WANT_READ)
			return 0;
		if (r < 0) {
			fail(c, r == WSLAY_ERR_PROTO ? 1002 : 1011,
			    "malformed frame header");
			return -1;
		}
		if (w->cur == 0 && frame_start(c, w, &io) == -1)
			return -1;
		/* a whole message in one piece is handed over without a copy */
		whole = w->op < 0x8 && w->fin && w->off == 0 &&
		    w->msg_len == 0 && io.data_length == io.payload_length;
		if (w->op >= 0x8) {
			memcpy(w->ctl + w->ctl_len, io.data, io.data_length);
			w->ctl_len += io.data_length;
		} else if (!whole && io.data_length > 0 &&
		    msg_append(w, io.data, io.data_length) == -1) {
			conn_close(c, 1011, "out of memory");
			return -1;
		}
		w->off += io.data_length;
		if (w->off < io.payload_length)
			continue;	/* the rest of the frame comes later */
		w->framed += w->cur;
		w->cur = 0;
		if (w->op >= 0x8)
			on_control(c, w);
		else if (w->fin) {
			int op = w->msg_op;
			size_t len = w->msg_len;

			w->msg_op = 0;
			w->msg_len = 0;
			if (whole)
				on_message(c, op, io.data, io.data_length);
			else
				on_message(c, op, w->msg, len);
		}
	}
	return -1;
}

void
ws_input(struct conn *c)
{
	struct ws *w = c->ws;
	int busy = w->recent >= WS_BUSY_INPUTS;

	if (w->ctx == NULL &&
	    wslay_frame_context_init(&w->ctx, &callbacks, c) != 0) {
		w->ctx = NULL;
		conn_close(c, 1011, "out of memory");
		return;
	}
	if (w->recent < WS_BUSY_INPUTS)
		w->recent++;
	conn_trim_later(c);
	w->reading = 1;
	(void)read_frames(c, w);
	w->reading = 0;
	if (w->freed) {			/* the connection went meanwhile */
		ctx_drop(w);
		free(w);
		return;
	}
	/*
	 * Between messages and nothing half-read: an occasional sender
	 * (heart-beats, a chat line now and then, the frames of a login)
	 * drops the context now; a busy one (WS_BUSY_INPUTS reads within a
	 * trim pass) keeps it, and the trim pass drops it once the
	 * connection has been quiet for a second.
	 */
	if (!busy && w->ctx != NULL && ws_droppable(w))
		ctx_drop(w);
}

int
ws_can_send(struct conn *c)
{
	struct ws *w = c->ws;

	return w != NULL && !w->close_sent;
}

void
ws_close(struct conn *c, int code, const char *reason)
{
	struct ws *w = c->ws;
	unsigned char p[125];
	size_t n = reason ? strlen(reason) : 0;

	if (w == NULL || w->close_sent)
		return;
	if (n > sizeof(p) - 2)
		n = sizeof(p) - 2;	/* control frame payload limit */
	p[0] = (unsigned char)(code >> 8);
	p[1] = (unsigned char)code;
	if (n > 0)
		memcpy(p + 2, reason, n);
	(void)ctl_send(c, WSLAY_CONNECTION_CLOSE, p, 2 + n);
	w->close_sent = 1;
}

void
ws_free(struct conn *c)
{
	struct ws *w = c->ws;

	c->ws = NULL;
	if (w == NULL)
		return;
	if (w->reading) {		/* ws_input frees it on its way out */
		w->freed = 1;
		return;
	}
	if (w->ctx != NULL)
		ctx_drop(w);
	free(w);
}
