/*
 * ws.h - WebSocket (RFC 6455): the upgrade handshake (a pure function, no
 * I/O) and framing through wslay on a connection.
 */
#ifndef PARLEY_WS_H
#define PARLEY_WS_H

#include <stddef.h>

struct conn;

/* What the client sent that matters to the handshake; NULL when absent. */
struct ws_request {
	const char *method;
	int http_major, http_minor;
	const char *upgrade;		/* Upgrade: */
	const char *connection;		/* Connection: */
	const char *key;		/* Sec-WebSocket-Key: */
	const char *version;		/* Sec-WebSocket-Version: */
	const char *protocols;		/* Sec-WebSocket-Protocol: (joined) */
	const char *origin;		/* Origin: */
};

struct ws_answer {
	int status;		/* 101, or 400/403/405/426 */
	const char *error;	/* why, when status != 101 */
	char accept[32];	/* Sec-WebSocket-Accept */
	char protocol[16];	/* the chosen subprotocol, echoed */
	int stomp_version;	/* 10, 11 or 12 */
};

/*
 * Decide on an upgrade request.  origins is the allow-list (comma-separated,
 * "" or NULL = allow all).  Fills ans; returns 0 for 101, -1 otherwise.
 * Extensions are declined by not answering them.
 */
int	ws_check_upgrade(const struct ws_request *r, const char *origins,
	    struct ws_answer *ans);
/* Pick the best of "v12.stomp, v11.stomp, v10.stomp" from a header value
 * (any spacing, any order, other tokens ignored).  Returns 12/11/10 and
 * writes the token to out, or -1 when none is offered. */
int	ws_select_protocol(const char *offered, char *out, size_t outlen);
/* base64(SHA-1(key + GUID)) into out (29 bytes with NUL). */
void	ws_accept_key(const char *key, char *out, size_t outlen);

/* Framing on an upgraded connection (conn.c calls these). */
int	ws_init(struct conn *c, size_t max_msg);
void	ws_input(struct conn *c);
int	ws_can_send(struct conn *c);
/* The trim pass (conn.c): free the wslay context of a connection quiet
 * since the last pass; returns 1 while there is something to look at
 * again. */
int	ws_trim(struct conn *c);
/* Does c hold a wslay context now (tests)? */
int	ws_has_context(struct conn *c);
void	ws_close(struct conn *c, int code, const char *reason);
void	ws_free(struct conn *c);

#endif
