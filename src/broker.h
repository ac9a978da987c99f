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

struct conn;

struct sub {
	struct session *session;	/* owner */
	struct room *room;
	size_t fan;			/* index in room->fan */
	char *id;			/* client's subscription id */
	enum ack_mode ack;
	int replaying;			/* resume in progress: buffer live */
	struct conn *direct;		/* see broker_sub_direct */
	const char *head;
	size_t head_len;
	struct pmsg **buf;		/* live messages buffered while replaying */
	size_t nbuf, capbuf;
	char *receipt;			/* SUBSCRIBE receipt, sent after resume */
	struct resume *resume;		/* replay job in flight, or NULL */
	void *ext;			/* session's per-sub data (acks) */
	TAILQ_ENTRY(sub) session_entry;
};
TAILQ_HEAD(subq, sub);

/*
 * A room's subscribers as the fan-out loop sees them: one contiguous array,
 * so delivering to N subscribers walks N small entries instead of chasing
 * sub -> session -> connection pointers.  conn is set for a subscriber that
 * takes plain MESSAGE frames (auto ack, connected, not replaying): those
 * are written straight to the connection.  The others (sub->replaying,
 * client ack modes) go through session_deliver.
 */
struct fan {
	struct sub *sub;		/* NULL: removed during a fan-out */
	struct conn *conn;
	const char *head;		/* "MESSAGE\nsubscription:ID\n" */
	size_t head_len;
	uint64_t last_position;		/* newest position sent: seam dedupe */
};

struct room {
	char *name;
	struct fan *fan;
	size_t nfan, capfan;		/* entries (holes included), allocated */
	size_t nsubs;			/* subscribers */
	int busy;			/* fan-outs in progress */
	int holes;			/* entries removed while busy */
	uint64_t last_position;		/* newest delivered */
	uint64_t messages;		/* delivered through this instance */
	/* delivered this loop turn, fanned out at its end (broker_flush) */
	struct pmsg **q;
	size_t nq, capq;
	int pending;			/* on the list of rooms to fan out */
	TAILQ_ENTRY(room) pending_entry;
};

int	broker_init(struct config *c);
void	broker_fini(void);

/*
 * The backplane's deliver(): queue m for storage and for the room's local
 * subscribers.  Duplicates (by position) are dropped.  The fan-out happens
 * at the end of the loop turn (broker_flush, called by conn.c's flush): a
 * room's messages of one turn go to each subscriber together, so a big
 * room visits each connection once per turn, not once per message.
 */
void	broker_deliver(const struct parley_msg *m);
/* Fan out what the rooms were delivered this turn. */
void	broker_flush(void);

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
 * The session's fast path for sub: plain MESSAGE frames made of head (kept
 * by the caller while the sub lives) and the shared tail go straight to
 * conn.  conn NULL switches it off (every delivery goes through
 * session_deliver).
 */
void	broker_sub_direct(struct sub *sub, struct conn *conn,
	    const char *head, size_t head_len);

/* Newest position sent to sub (seam dedupe); settable. */
static inline uint64_t *
sub_last_position(struct sub *s)
{
	return &s->room->fan[s->fan].last_position;
}

/*
 * Publish m (position 0, id/sender/timestamp set; borrowed).  cb runs once
 * on the loop when the message is durable (status 0) or failed (-1, why).
 * With a non-durable backplane "durable" means committed to storage; events
 * that are never stored settle when the backplane accepted them.
 * pb is the caller's (usually inside the context arg points to): it must
 * stay put until cb has run, and is free to go from inside cb.
 * Returns 0, or -1 with *why set when it cannot even be attempted (cb
 * does not run).
 */
typedef void (*publish_cb)(void *arg, int status, uint64_t position,
    const char *why);
struct broker_pub {
	publish_cb cb;
	void *arg;
	int stored;
	uint64_t position;
	char id[PARLEY_ID_MAX + 1];
};
int	broker_publish(const struct parley_msg *m, struct broker_pub *pb,
	    publish_cb cb, void *arg, const char **why);

/* Counts for /metrics and REST. */
void	broker_foreach_room(void (*fn)(const struct room *, void *), void *arg);
size_t	broker_room_count(void);
struct room *broker_room(const char *name);

#endif
