/*
 * ws_test.c - TAP unit tests for the WebSocket handshake and framing
 * (src/ws.c): ws_accept_key (RFC 6455 sample), ws_select_protocol,
 * ws_check_upgrade (every refusal and its status), and ws_input on a
 * connection with client frames (masking, fragmentation, ping, UTF-8,
 * size limit, protocol errors -> the close code in the close frame).
 *
 * ws.c calls into conn/session/log/stats; minimal definitions are below so
 * that it links alone.  utf8_valid is the real one (util.c is included).
 * Prints TAP (plan at the end); exits 1 if any test failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "ws.h"

/* the real utf8_valid (and the rest of util.c, unused here) */
#include "../../src/util.c"

/* ------------------------------------------------------------ stubs */

int log_level = PARLEY_LOG_ERROR;
struct core_stats stats;

/* What the framing layer handed to the session / asked of the conn. */
static char got[1 << 17];
static size_t got_len;
static int got_calls;
static int closed_code;

void
log_msg(int level, const char *who, const char *fmt, ...)
{
	(void)level;
	(void)who;
	(void)fmt;
}

void
access_log_client(int level, const char *ip, const char *fmt, ...)
{
	(void)level;
	(void)ip;
	(void)fmt;
}

void
session_input(struct session *s, const char *data, size_t len)
{
	(void)s;
	got_calls++;
	if (got_len + len <= sizeof(got)) {
		memcpy(got + got_len, data, len);
		got_len += len;
	}
}

/* The framing layer's output (control frames) goes behind queued data;
 * here straight to the bufferevent the test reads. */
int
conn_write_raw(struct conn *c, const void *data, size_t len)
{
	return evbuffer_add(bufferevent_get_output(c->bev), data, len);
}

static int trim_asked;

void
conn_trim_later(struct conn *c)
{
	(void)c;
	trim_asked++;
}

void
conn_close(struct conn *c, int code, const char *reason)
{
	(void)reason;
	if (c->closing)
		return;
	c->closing = 1;
	closed_code = code;
}

/* ------------------------------------------------------------ TAP */

static int ntest, nfail;

static int
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - ", cond ? "" : "not ", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static void
is_str(const char *got_s, const char *want, const char *name)
{
	if (!ok(got_s != NULL && strcmp(got_s, want) == 0, "%s", name))
		printf("# got: '%s'\n# want: '%s'\n", got_s ? got_s : "(null)",
		    want);
}

/* ------------------------------------------------------------ handshake */

static void
test_accept_key(void)
{
	char out[64];

	/* RFC 6455 section 1.3 */
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof(out));
	is_str(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
	    "accept key of RFC 6455's sample nonce");
	ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out, sizeof(out));
	is_str(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=",
	    "accept key of a second known nonce (Wikipedia's example)");
	ok(strlen(out) == 28, "accept key is 28 characters");
}

static void
test_select(void)
{
	char p[16];
	static const struct {
		const char *offered;
		int version;
		const char *proto;
	} cases[] = {
		{ "v12.stomp", 12, "v12.stomp" },
		{ "v11.stomp", 11, "v11.stomp" },
		{ "v10.stomp", 10, "v10.stomp" },
		{ "v10.stomp, v11.stomp, v12.stomp", 12, "v12.stomp" },
		{ "v10.stomp,v11.stomp", 11, "v11.stomp" },
		{ "   v10.stomp   ,\tv12.stomp\t", 12, "v12.stomp" },
		{ ",,v11.stomp,,", 11, "v11.stomp" },
		{ "mqtt, v10.stomp, wamp", 10, "v10.stomp" },
		{ "stomp", -1, NULL },
		{ "v13.stomp", -1, NULL },
		{ "v12.stompx", -1, NULL },
		{ "xv12.stomp", -1, NULL },
		{ "v12", -1, NULL },
		{ "", -1, NULL },
		{ "mqtt", -1, NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int v;

		memset(p, 0, sizeof(p));
		v = ws_select_protocol(cases[i].offered, p, sizeof(p));
		if (cases[i].version == -1)
			ok(v == -1, "select_protocol('%s') refuses",
			    cases[i].offered);
		else
			ok(v == cases[i].version &&
			    strcmp(p, cases[i].proto) == 0,
			    "select_protocol('%s') = %d %s (got %d %s)",
			    cases[i].offered, cases[i].version,
			    cases[i].proto, v, p);
	}
	ok(ws_select_protocol(NULL, p, sizeof(p)) == -1,
	    "select_protocol(NULL) refuses");
}

static struct ws_request
good_request(void)
{
	struct ws_request r;

	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.http_major = 1;
	r.http_minor = 1;
	r.upgrade = "websocket";
	r.connection = "Upgrade";
	r.key = "dGhlIHNhbXBsZSBub25jZQ==";
	r.version = "13";
	r.protocols = "v10.stomp, v11.stomp, v12.stomp";
	r.origin = NULL;
	return r;
}

static void
expect(const struct ws_request *r, const char *origins, int status,
    const char *name)
{
	struct ws_answer a;
	int rv = ws_check_upgrade(r, origins, &a);

	if (status == 101) {
		if (!ok(rv == 0 && a.status == 101, "%s: 101", name))
			printf("# got rv %d status %d: %s\n", rv, a.status,
			    a.error ? a.error : "");
		return;
	}
	if (!ok(rv == -1 && a.status == status && a.error != NULL &&
	    a.error[0] != '\0', "%s: %d with a reason", name, status))
		printf("# got rv %d status %d: %s\n", rv, a.status,
		    a.error ? a.error : "(no reason)");
}

static void
test_upgrade(void)
{
	struct ws_request r;
	struct ws_answer a;

	r = good_request();
	ok(ws_check_upgrade(&r, NULL, &a) == 0 && a.status == 101,
	    "a well-formed upgrade is accepted");
	is_str(a.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
	    "answer carries Sec-WebSocket-Accept for the key");
	is_str(a.protocol, "v12.stomp", "answer echoes the best subprotocol");
	ok(a.stomp_version == 12, "STOMP version 12 chosen");

	r.protocols = "v10.stomp";
	ok(ws_check_upgrade(&r, "", &a) == 0 && a.stomp_version == 10 &&
	    strcmp(a.protocol, "v10.stomp") == 0,
	    "v10.stomp only: chosen and echoed");

	r = good_request();
	r.method = "POST";
	expect(&r, NULL, 405, "POST");
	r = good_request();
	r.method = NULL;
	expect(&r, NULL, 405, "no method");
	r = good_request();
	r.http_minor = 0;
	expect(&r, NULL, 400, "HTTP/1.0");

	r = good_request();
	r.upgrade = NULL;
	expect(&r, NULL, 426, "no Upgrade header");
	r.upgrade = "h2c";
	expect(&r, NULL, 426, "Upgrade: h2c");
	r.upgrade = "WebSocket";
	expect(&r, NULL, 101, "Upgrade: WebSocket (case-insensitive)");
	r.upgrade = "foo/1, websocket";
	expect(&r, NULL, 101, "Upgrade listing websocket second");
	r.upgrade = "websockets";
	expect(&r, NULL, 426, "Upgrade: websockets (not the token)");

	r = good_request();
	r.connection = NULL;
	expect(&r, NULL, 400, "no Connection header");
	r.connection = "keep-alive";
	expect(&r, NULL, 400, "Connection: keep-alive only");
	r.connection = "keep-alive, Upgrade";
	expect(&r, NULL, 101, "Connection: keep-alive, Upgrade");
	r.connection = "upgrade";
	expect(&r, NULL, 101, "Connection: upgrade (lower case)");

	r = good_request();
	r.version = NULL;
	expect(&r, NULL, 426, "no Sec-WebSocket-Version");
	r.version = "8";
	expect(&r, NULL, 426, "Sec-WebSocket-Version: 8");
	r.version = "13 ";
	expect(&r, NULL, 426, "Sec-WebSocket-Version: '13 '");

	r = good_request();
	r.key = NULL;
	expect(&r, NULL, 400, "no Sec-WebSocket-Key");
	r.key = "";
	expect(&r, NULL, 400, "empty Sec-WebSocket-Key");
	r.key = "dGhlIHNhbXBsZSBub25jZQ";
	expect(&r, NULL, 400, "key without padding");
	r.key = "dGhlIHNhbXBsZSBub25jZQ==A";
	expect(&r, NULL, 400, "key of 25 characters");
	r.key = "dGhlIHNhbXBsZSBub25j!!==";
	expect(&r, NULL, 400, "key with non-base64 characters");
	r.key = "dGhlIHNhbXBsZSBub25jZQ=A";
	expect(&r, NULL, 400, "key with misplaced padding");
	r.key = "AAAAAAAAAAAAAAAAAAAAAA==";
	expect(&r, NULL, 101, "any 16-byte base64 key");

	r = good_request();
	r.protocols = NULL;
	expect(&r, NULL, 400, "no Sec-WebSocket-Protocol");
	r.protocols = "mqtt";
	expect(&r, NULL, 400, "only a foreign subprotocol");
	r.protocols = "v13.stomp";
	expect(&r, NULL, 400, "an unknown STOMP version");

	r = good_request();
	expect(&r, "", 101, "empty Origin allow-list, no Origin");
	r.origin = "https://evil.example";
	expect(&r, "", 101, "empty Origin allow-list, any Origin");
	expect(&r, "https://chat.example, https://example.com", 403,
	    "Origin not in the allow-list");
	r.origin = "https://example.com";
	expect(&r, "https://chat.example, https://example.com", 101,
	    "Origin in the allow-list (second entry, after spaces)");
	r.origin = "https://chat.example";
	expect(&r, "https://chat.example,https://example.com", 101,
	    "Origin in the allow-list (first entry)");
	r.origin = "https://chat.example.evil";
	expect(&r, "https://chat.example", 403,
	    "Origin that only starts like an allowed one");
	r.origin = NULL;
	expect(&r, "https://chat.example", 403,
	    "no Origin while an allow-list is set");

	/* order of checks: the status says the first problem */
	r = good_request();
	r.upgrade = NULL;
	r.key = NULL;
	expect(&r, NULL, 426, "no Upgrade and no key: 426 first");
}

/* ------------------------------------------------------------ framing */

static struct event_base *base;

/* A client frame: FIN, opcode, masked with a fixed key unless unmasked. */
static size_t
client_frame(unsigned char *out, int fin, int opcode, const void *payload,
    size_t len, int masked)
{
	static const unsigned char key[4] = { 0x12, 0x34, 0x56, 0x78 };
	const unsigned char *p = payload;
	size_t n = 0, i;

	out[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (len < 126)
		out[n++] = (unsigned char)((masked ? 0x80 : 0) | len);
	else if (len <= 0xffff) {
		out[n++] = (unsigned char)((masked ? 0x80 : 0) | 126);
		out[n++] = (unsigned char)(len >> 8);
		out[n++] = (unsigned char)len;
	} else {
		out[n++] = (unsigned char)((masked ? 0x80 : 0) | 127);
		for (i = 0; i < 8; i++)
			out[n++] = (unsigned char)((uint64_t)len >>
			    (56 - 8 * i));
	}
	if (masked) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	for (i = 0; i < len; i++)
		out[n++] = masked ? p[i] ^ key[i % 4] : p[i];
	return n;
}

static void
ws_setup(struct conn *c, size_t max_msg)
{
	static char dummy_session;

	memset(c, 0, sizeof(*c));
	c->kind = CONN_WS;
	c->session = (struct session *)&dummy_session;
	c->bev = bufferevent_socket_new(base, -1, 0);
	got_len = 0;
	got_calls = 0;
	closed_code = 0;
	if (c->bev == NULL || ws_init(c, max_msg) != 0) {
		printf("Bail out! cannot set up a WebSocket context\n");
		exit(1);
	}
	/* no socket: we fill the input and read the output ourselves */
	if (evbuffer_unfreeze(bufferevent_get_input(c->bev), 0) != 0 ||
	    evbuffer_unfreeze(bufferevent_get_output(c->bev), 1) != 0) {
		printf("Bail out! cannot set up a WebSocket context\n");
		exit(1);
	}
}

static void
ws_teardown(struct conn *c)
{
	ws_free(c);
	bufferevent_free(c->bev);
}

static void
feed(struct conn *c, const void *data, size_t len)
{
	if (evbuffer_add(bufferevent_get_input(c->bev), data, len) != 0) {
		printf("Bail out! cannot fill the input buffer\n");
		exit(1);
	}
	ws_input(c);
}

/* A fresh connection (max_msg) that has read one client frame. */
static void
one_frame(struct conn *c, size_t max_msg, int fin, int opcode,
    const void *payload, size_t len, int masked)
{
	static unsigned char fr[200016];

	ws_setup(c, max_msg);
	feed(c, fr, client_frame(fr, fin, opcode, payload, len, masked));
}

/*
 * Find the first server frame with opcode in the output; returns its
 * payload length (or -1) and copies up to cap payload bytes.
 */
static long
out_frame(struct conn *c, int opcode, unsigned char *payload, size_t cap)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t n = evbuffer_get_length(out), off = 0;
	unsigned char *b = evbuffer_pullup(out, -1);

	while (off + 2 <= n) {
		int op = b[off] & 0x0f, masked = b[off + 1] & 0x80;
		size_t len = b[off + 1] & 0x7f, hl = 2, i;

		if (len == 126) {
			len = ((size_t)b[off + 2] << 8) | b[off + 3];
			hl = 4;
		} else if (len == 127) {
			len = 0;
			for (i = 0; i < 8; i++)
				len = (len << 8) | b[off + 2 + i];
			hl = 10;
		}
		if (masked)
			return -2;	/* a server must not mask */
		if (off + hl + len > n)
			return -1;
		if (op == opcode) {
			memcpy(payload, b + off + hl, len < cap ? len : cap);
			return (long)len;
		}
		off += hl + len;
	}
	return -1;
}

/* The close code the server sent, or -1 when it sent no close frame. */
static int
close_code_sent(struct conn *c)
{
	unsigned char p[128];
	long n = out_frame(c, 0x8, p, sizeof(p));

	if (n < 2)
		return (int)n;
	return (p[0] << 8) | p[1];
}

static void
test_framing(void)
{
	struct conn c;
	unsigned char fr[200000], pl[256];
	static const char stomp_frame[] = "CONNECT\naccept-version:1.2\n\n";
	size_t n;
	long pn;
	char *big;

	/* a masked text message reaches the session */
	one_frame(&c, 65536, 1, 0x1, stomp_frame, sizeof(stomp_frame), 1);
	ok(got_len == sizeof(stomp_frame) &&
	    memcmp(got, stomp_frame, got_len) == 0 && !c.closing,
	    "masked text message is unmasked and handed to the session");
	ws_teardown(&c);

	/* split at every byte: the same message, once */
	ws_setup(&c, 65536);
	n = client_frame(fr, 1, 0x1, stomp_frame, sizeof(stomp_frame), 1);
	for (size_t i = 0; i < n; i++)
		feed(&c, fr + i, 1);
	ok(got_calls == 1 && got_len == sizeof(stomp_frame) &&
	    memcmp(got, stomp_frame, got_len) == 0,
	    "a frame arriving one byte at a time is one message");
	ws_teardown(&c);

	/* fragmentation: text + continuation + continuation(FIN) */
	ws_setup(&c, 65536);
	n = client_frame(fr, 0, 0x1, "SEND\ndesti", 10, 1);
	n += client_frame(fr + n, 0, 0x0, "nation:/room/a\n\nh", 17, 1);
	n += client_frame(fr + n, 1, 0x0, "i\0", 2, 1);
	feed(&c, fr, n);
	ok(got_calls == 1 && got_len == 29 &&
	    memcmp(got, "SEND\ndestination:/room/a\n\nhi\0", 29) == 0,
	    "fragmented message is reassembled into one");
	ws_teardown(&c);

	/* a UTF-8 character split across fragments is still valid */
	ws_setup(&c, 65536);
	n = client_frame(fr, 0, 0x1, "caf\xc3", 4, 1);
	n += client_frame(fr + n, 1, 0x0, "\xa9", 1, 1);
	feed(&c, fr, n);
	ok(got_len == 5 && !c.closing && close_code_sent(&c) == -1,
	    "UTF-8 character split across fragments is accepted");
	ws_teardown(&c);

	/* binary message: no UTF-8 check */
	one_frame(&c, 65536, 1, 0x2, "\xff\xfe\x00", 3, 1);
	ok(got_len == 3 && !c.closing, "binary message with non-UTF-8 bytes "
	    "is handed over");
	ws_teardown(&c);

	/* ping -> pong with the same payload */
	one_frame(&c, 65536, 1, 0x9, "are you there", 13, 1);
	pn = out_frame(&c, 0xA, pl, sizeof(pl));
	ok(pn == 13 && memcmp(pl, "are you there", 13) == 0 && got_len == 0,
	    "ping is answered by a pong with its payload (unmasked)");
	ws_teardown(&c);

	/* invalid UTF-8 in a text message -> 1007 */
	one_frame(&c, 65536, 1, 0x1, "SEND\n\xc0\xaf\n\n\0", 10, 1);
	ok(close_code_sent(&c) == 1007, "invalid UTF-8 (overlong) in text: "
	    "close frame 1007 (got %d)", close_code_sent(&c));
	ok(c.closing && closed_code == 1007 && got_len == 0,
	    "connection closed with 1007, nothing reached the session");
	ws_teardown(&c);

	one_frame(&c, 65536, 1, 0x1, "\xed\xa0\x80", 3, 1);
	ok(close_code_sent(&c) == 1007, "UTF-16 surrogate in text: 1007");
	ws_teardown(&c);

	one_frame(&c, 65536, 1, 0x1, "abc\xe2\x82", 5, 1);
	ok(close_code_sent(&c) == 1007, "text ending mid-character: 1007");
	ws_teardown(&c);

	/* oversized message -> 1009 */
	ws_setup(&c, 1024);
	big = malloc(70000);
	memset(big, 'a', 70000);
	n = client_frame(fr, 1, 0x1, big, 1025, 1);
	feed(&c, fr, n);
	ok(close_code_sent(&c) == 1009 && closed_code == 1009 && got_len == 0,
	    "message one byte over the limit: 1009 (got %d)",
	    close_code_sent(&c));
	ws_teardown(&c);

	one_frame(&c, 1024, 1, 0x1, big, 1024, 1);
	ok(got_len == 1024 && !c.closing, "message exactly at the limit is "
	    "accepted");
	ws_teardown(&c);

	ws_setup(&c, 1024);
	n = client_frame(fr, 0, 0x1, big, 600, 1);
	n += client_frame(fr + n, 1, 0x0, big, 600, 1);
	feed(&c, fr, n);
	ok(close_code_sent(&c) == 1009 && got_len == 0,
	    "fragments adding up past the limit: 1009");
	ws_teardown(&c);

	one_frame(&c, 65536, 1, 0x1, big, 65537, 1);
	ok(close_code_sent(&c) == 1009, "64-bit length frame over the limit: "
	    "1009");
	ws_teardown(&c);
	free(big);

	/* unmasked client frame -> 1002 */
	one_frame(&c, 65536, 1, 0x1, stomp_frame, sizeof(stomp_frame), 0);
	ok(close_code_sent(&c) == 1002 && closed_code == 1002 && got_len == 0,
	    "unmasked client frame: 1002 (got %d)", close_code_sent(&c));
	ws_teardown(&c);

	/* reserved opcode -> 1002 */
	one_frame(&c, 65536, 1, 0x3, "x", 1, 1);
	ok(close_code_sent(&c) == 1002 && got_len == 0,
	    "reserved opcode 0x3: 1002 (got %d)", close_code_sent(&c));
	ws_teardown(&c);

	/* RSV bit without an extension -> 1002 */
	ws_setup(&c, 65536);
	n = client_frame(fr, 1, 0x1, "x", 1, 1);
	fr[0] |= 0x40;
	feed(&c, fr, n);
	ok(close_code_sent(&c) == 1002 && got_len == 0,
	    "RSV1 set without a negotiated extension: 1002");
	ws_teardown(&c);

	/* continuation without a start -> 1002 */
	one_frame(&c, 65536, 1, 0x0, "x", 1, 1);
	ok(close_code_sent(&c) == 1002 && got_len == 0,
	    "continuation frame without a message: 1002");
	ws_teardown(&c);

	/* fragmented control frame -> 1002 */
	one_frame(&c, 65536, 0, 0x9, "x", 1, 1);
	ok(close_code_sent(&c) >= 0 && c.closing, "fragmented ping: close "
	    "frame sent, connection closing");
	ok(close_code_sent(&c) == 1002, "fragmented ping: close code 1002");
	ws_teardown(&c);

	ws_setup(&c, 65536);
	{
		char pp[126];

		memset(pp, 'p', sizeof(pp));
		n = client_frame(fr, 1, 0x9, pp, sizeof(pp), 1);
	}
	feed(&c, fr, n);
	ok(close_code_sent(&c) >= 0 && c.closing && out_frame(&c, 0xA, pl,
	    sizeof(pl)) == -1, "ping with a 126-byte payload: no pong, close "
	    "frame sent");
	ok(close_code_sent(&c) == 1002, "ping with a 126-byte payload: close "
	    "code 1002");
	ws_teardown(&c);

	/* client close -> echoed close, connection closing */
	one_frame(&c, 65536, 1, 0x8, "\x03\xe8" "bye", 5, 1);
	ok(close_code_sent(&c) == 1000 && c.closing,
	    "client close 1000 is answered with close 1000 (got %d)",
	    close_code_sent(&c));
	ws_teardown(&c);

	/* a close without a code is answered without one */
	one_frame(&c, 65536, 1, 0x8, "", 0, 1);
	pn = out_frame(&c, 0x8, pl, sizeof(pl));
	ok(pn == 0 && c.closing && closed_code == 1000, "empty client close "
	    "is answered by an empty close (payload %ld)", pn);
	ws_teardown(&c);

	/* a close code a peer may not send, a 1-byte close, a bad reason */
	ws_setup(&c, 65536);
	n = client_frame(fr, 1, 0x8, "\x03\xed", 2, 1);	/* 1005 */
	feed(&c, fr, n);
	ok(close_code_sent(&c) == 1002 && closed_code == 1002,
	    "client close with code 1005: 1002 (got %d)", close_code_sent(&c));
	ws_teardown(&c);

	one_frame(&c, 65536, 1, 0x8, "\x03", 1, 1);
	ok(close_code_sent(&c) == 1002, "close with a 1-byte payload: 1002");
	ws_teardown(&c);

	one_frame(&c, 65536, 1, 0x8, "\x03\xe8\xff", 3, 1);
	ok(close_code_sent(&c) == 1007, "close reason that is not UTF-8: "
	    "1007 (got %d)", close_code_sent(&c));
	ws_teardown(&c);

	/* a ping between fragments is answered; the message stays whole */
	ws_setup(&c, 65536);
	n = client_frame(fr, 0, 0x1, "SEND\ndesti", 10, 1);
	n += client_frame(fr + n, 1, 0x9, "mid", 3, 1);
	n += client_frame(fr + n, 1, 0x0, "nation:/room/a\n\nhi\0", 19, 1);
	for (size_t i = 0; i < n; i += 7)
		feed(&c, fr + i, n - i < 7 ? n - i : 7);
	pn = out_frame(&c, 0xA, pl, sizeof(pl));
	ok(got_calls == 1 && got_len == 29 &&
	    memcmp(got, "SEND\ndestination:/room/a\n\nhi\0", 29) == 0 &&
	    pn == 3 && !c.closing, "ping between fragments (7-byte reads): "
	    "pong, and one message");
	ws_teardown(&c);

	/* an empty message in two empty fragments */
	ws_setup(&c, 65536);
	n = client_frame(fr, 0, 0x1, "", 0, 1);
	n += client_frame(fr + n, 1, 0x0, "", 0, 1);
	feed(&c, fr, n);
	ok(got_calls == 1 && got_len == 0 && !c.closing, "an empty message in "
	    "two empty fragments is one (empty) message");
	ws_teardown(&c);

	/* a new text frame while a fragmented message is open */
	ws_setup(&c, 65536);
	n = client_frame(fr, 0, 0x1, "ab", 2, 1);
	n += client_frame(fr + n, 1, 0x1, "cd", 2, 1);
	feed(&c, fr, n);
	ok(close_code_sent(&c) == 1002 && got_len == 0, "new message inside "
	    "a fragmented one: 1002");
	ws_teardown(&c);

	/* several messages in one read, one of them larger than wslay's
	 * 4 KiB input buffer: each arrives once, whole, in order */
	ws_setup(&c, 65536);
	big = malloc(10000);
	memset(big, 'b', 10000);
	n = client_frame(fr, 1, 0x1, "one", 3, 1);
	n += client_frame(fr + n, 1, 0x2, big, 10000, 1);
	n += client_frame(fr + n, 1, 0x1, "two", 3, 1);
	feed(&c, fr, n);
	ok(got_calls == 3 && got_len == 10006 && memcmp(got, "one", 3) == 0 &&
	    got[3] == 'b' && got[10002] == 'b' &&
	    memcmp(got + 10003, "two", 3) == 0 && !c.closing,
	    "three messages in one read (3, 10000, 3 bytes) arrive whole");
	free(big);
	ws_teardown(&c);

	/* ws_close sends our code and reason; nothing is sent after it */
	ws_setup(&c, 65536);
	ws_close(&c, 1001, "server shutting down");
	pn = out_frame(&c, 0x8, pl, sizeof(pl));
	ok(pn == 22 && pl[0] == 0x03 && pl[1] == 0xe9 &&
	    memcmp(pl + 2, "server shutting down", 20) == 0,
	    "ws_close(1001, reason) queues a close frame with both");
	ok(!ws_can_send(&c), "no data frames after our close frame");
	ws_teardown(&c);

	ws_setup(&c, 65536);
	{
		char reason[300];

		memset(reason, 'r', sizeof(reason) - 1);
		reason[sizeof(reason) - 1] = '\0';
		ws_close(&c, 1008, reason);
		pn = out_frame(&c, 0x8, pl, sizeof(pl));
		ok(pn == 125, "a long close reason is cut to fit a control "
		    "frame (125 bytes, got %ld)", pn);
	}
	ws_teardown(&c);
}

/*
 * The wslay context of a busy connection is kept between messages and
 * dropped by the trim pass once the connection was quiet for a pass; a
 * half-read frame is never dropped.  ws_trim says whether to look again.
 */
static void
test_trim(void)
{
	struct conn c;
	unsigned char fr[256];
	static const char m1[] = "SEND\ndestination:/room/a\n\none";
	static const char m2[] = "SEND\ndestination:/room/a\n\ntwo";
	size_t n;
	int r1, r2, r3;

	ws_setup(&c, 65536);
	trim_asked = 0;
	n = client_frame(fr, 1, 0x1, m1, sizeof(m1), 1);
	feed(&c, fr, n);
	ok(trim_asked == 1, "input asks for a trim pass");
	ok(!ws_has_context(&c), "one message: the context is dropped at once");
	r1 = ws_trim(&c);
	r2 = ws_trim(&c);
	ok(r1 == 1 && r2 == 0, "one message: the next passes clear the "
	    "connection (%d, %d)", r1, r2);

	/* a few inputs (a login: CONNECT, SUBSCRIBE) are not busy */
	feed(&c, fr, n);
	feed(&c, fr, n);
	feed(&c, fr, n);
	ok(!ws_has_context(&c), "three messages: still dropped at once");
	r1 = ws_trim(&c);
	r2 = ws_trim(&c);
	ok(r1 == 1 && r2 == 0, "three inputs: dropped at once, the passes "
	    "clear the connection (%d, %d)", r1, r2);

	/* busy: many inputs before a pass */
	for (int i = 0; i < 10; i++)
		feed(&c, fr, n);
	n = client_frame(fr, 1, 0x1, m2, sizeof(m2), 1);
	feed(&c, fr, n);
	ok(ws_has_context(&c), "eleven messages: busy, the context is kept");
	r1 = ws_trim(&c);
	ok(r1 == 1 && ws_has_context(&c), "kept through a pass after input");
	r2 = ws_trim(&c);
	ok(r2 == 0 && !ws_has_context(&c), "dropped by a pass after a quiet "
	    "second");
	got_len = 0;
	feed(&c, fr, n);
	ok(got_len == sizeof(m2) && memcmp(got, m2, got_len) == 0 &&
	    !c.closing, "a message after the drop is read by a fresh context");

	/* a frame split across reads survives any number of passes */
	got_len = 0;
	feed(&c, fr, 5);
	feed(&c, fr + 5, 5);
	r1 = ws_trim(&c);
	r2 = ws_trim(&c);
	r3 = ws_trim(&c);
	ok(ws_has_context(&c), "half a frame: the context stays");
	feed(&c, fr + 10, n - 10);
	ok(r1 == 1 && r2 == 1 && r3 == 1 && got_len == sizeof(m2) &&
	    memcmp(got, m2, got_len) == 0 && !c.closing,
	    "half a frame is kept through trim passes and completes after "
	    "them (%d, %d, %d)", r1, r2, r3);
	ws_teardown(&c);
}

int
main(void)
{
	if ((base = event_base_new()) == NULL) {
		printf("Bail out! event_base_new\n");
		return 1;
	}
	test_accept_key();
	test_select();
	test_upgrade();
	test_framing();
	test_trim();
	event_base_free(base);
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
