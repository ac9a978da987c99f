/*
 * session.h - one STOMP session (over WebSocket or TCP): the state machine
 * from CONNECT to DISCONNECT, heart-beats, subscriptions, transactions.
 */
#ifndef PARLEY_SESSION_H
#define PARLEY_SESSION_H

#include <stddef.h>

struct conn;
struct sub;
struct pmsg;
struct config;

void	session_config(struct config *c);

/* A session speaking over c; bearer is a token from the HTTP upgrade
 * (Authorization header or access_token), may be NULL. */
struct session *session_new(struct conn *c, const char *bearer);
/* Bytes from the peer (a whole WebSocket message, or a TCP read). */
void	session_input(struct session *s, const char *data, size_t len);
/* Reading resumed after a rate-limit pause: handle held-back input. */
void	session_unpaused(struct session *s);
/* The transport is gone: drop subscriptions, free when unreferenced. */
void	session_closed(struct session *s);
/* Server shutdown: send ERROR-less goodbye (close) to the client. */
void	session_shutdown(struct session *s);
/* After auth plugin ctx reloaded: ask it (on a worker) whether the logins
 * of the sessions it allowed are still valid; end those that are not. */
struct parley_ctx;
void	session_revalidate(struct parley_ctx *ctx);

/* Broker -> session. */
void	session_deliver(struct sub *sub, struct pmsg *p);
void	session_resumed(struct sub *sub, uint64_t position, int recovered);

#endif
