/*
 * broker.h - rooms and subscriptions: fan-out of backplane messages to local
 * subscribers, publishing, and resume (history replay then live, no gap and
 * no duplicate at the seam).
 */
#ifndef PARLEY_BROKER_H
#define PARLEY_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <parley/plugin.h>

struct config;
struct session;
struct pmsg;
struct room;

enum ack_mode { ACK_AUTO = 0, ACK_CLIENT, ACK_CLIENT_INDIVIDUAL };

enum resume_kind { RESUME_NONE = 0, RESUME_SINCE, RESUME_HISTORY };

struct sub {
	struct session *session;	/* owner */
	struct room *room;
	char *id;			/* client's subscription id */
	enum ack_mode ack;
	uint64_t last_position;		/* newest position sent: seam dedupe */
	int replaying;			/* resume in progress: buffer live */
	struct pmsg **buf;		/* live messages buffered while replaying */
	size_t nbuf, capbuf;
	char *receipt;			/* SUBSCRIBE receipt, sent after resume */
	struct resume *resume;		/* replay job in flight, or NULL */
	void *ext;			/* session's per-sub data (acks) */
	TAILQ_ENTRY(sub) room_entry;
	TAILQ_ENTRY(sub) session_entry;
};
TAILQ_HEAD(subq, sub);

struct room {
	char *name;
	struct subq subs;
	size_t nsubs;
	uint64_t last_position;		/* newest delivered */
	uint64_t messages;		/* delivered through this instance */
};

int	broker_init(struct config *c);
void	broker_fini(void);

/* The backplane's deliver(): fan m out to local subscribers, queue it for
 * storage.  Duplicates (by position) are dropped. */
void	broker_deliver(const struct parley_msg *m);

/* The backplane's persist(): queue m for storage, ack token after commit. */
void	broker_persist(const struct parley_msg *m, uint64_t token);

/*
 * Subscribe s to room (validated name).  With RESUME_SINCE/HISTORY the sub
 * replays first; receipt (may be NULL) is answered after the replay with the
 * recovered header.  Returns the sub or NULL (out of memory).
 */
struct sub *broker_subscribe(struct session *s, const char *id,
	    const char *room, enum ack_mode ack, enum resume_kind rk,
	    uint64_t since, int history, const char *receipt);
/* Remove and free sub. */
void	broker_unsubscribe(struct sub *sub);

/*
 * Publish m (position 0, id/sender/timestamp set; borrowed).  cb runs once
 * on the loop when the message is durable (status 0) or failed (-1, why).
 * With a non-durable backplane "durable" means committed to storage; events
 * that are never stored settle when the backplane accepted them.
 * Returns 0, or -1 with *why set when it cannot even be attempted.
 */
typedef void (*publish_cb)(void *arg, int status, uint64_t position,
    const char *why);
int	broker_publish(const struct parley_msg *m, publish_cb cb, void *arg,
	    const char **why);

/* Counts for /metrics and REST. */
void	broker_foreach_room(void (*fn)(const struct room *, void *), void *arg);
size_t	broker_room_count(void);
struct room *broker_room(const char *name);

#endif
