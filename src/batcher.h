/*
 * batcher.h - write-behind persistence: messages delivered by the backplane
 * are queued and written to storage in batches (on size or interval) on a
 * worker thread, one batch at a time, retried with backoff on failure.
 */
#ifndef PARLEY_BATCHER_H
#define PARLEY_BATCHER_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct pmsg;

int	batcher_init(struct config *c, struct event_base *base);
/* Queue p (takes a reference).  Returns 0, or -1 when out of memory. */
int	batcher_add(struct pmsg *p);
/* 1 when the backlog has room for another message. */
int	batcher_has_room(void);
/*
 * Call cb(arg, 0) once the message with this id is committed, or
 * cb(arg, -1) if the batcher shuts down first.
 */
int	batcher_wait(const char *id, void (*cb)(void *, int), void *arg);
/* Messages not yet committed (queued + in flight). */
size_t	batcher_backlog(void);
/*
 * References to the uncommitted messages of room with position > after, in
 * position order.  *out is malloc'ed; the caller unrefs each and frees it.
 */
void	batcher_snapshot(const char *room, uint64_t after, struct pmsg ***out,
	    size_t *n);
/* Flush everything now; returns when committed or after timeout_ms (the
 * loop keeps running meanwhile).  0 if all was written. */
int	batcher_drain(int timeout_ms);
void	batcher_fini(void);

#endif
