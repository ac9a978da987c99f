/*
 * broker.c - rooms, subscriptions, fan-out, publishing and resume.
 *
 * Fan-out: the backplane delivers each room message once per instance; the
 * broker builds its frame tail once (pmsg) and hands the same bytes to every
 * local subscriber.  Per subscription, last_position drops anything already
 * sent, which is what makes the seam between a replay and live messages
 * free of duplicates.
 *
 * Resume: the sub is marked replaying and live messages for it are
 * buffered.  History comes from storage (a worker reads it) merged with the
 * batcher's not-yet-committed messages; everything is ordered and deduped
 * by position, sent, followed by an event:resumed marker, then the buffered
 * live messages newer than what was replayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "plugin.h"
#include "session.h"
#include "util.h"
#include "worker.h"

static struct config *cfg;
static struct strmap rooms;
static TAILQ_HEAD(, room) pending = TAILQ_HEAD_INITIALIZER(pending);
/* the room being fanned out is the turn's last: a subscriber of several
 * rooms has all its frames of the turn once its share of it is queued */
static int fan_last;

int
broker_init(struct config *c)
{
	cfg = c;
	strmap_init(&rooms);
	return 0;
}

static void
room_free(const char *key, void *value, void *arg)
{
	struct room *r = value;
	size_t i;

	(void)key;
	(void)arg;
	for (i = 0; i < r->nq; i++)
		pmsg_unref(r->q[i]);
	free(r->q);
	free(r->fan);
	free(r->name);
	free(r);
}

void
broker_fini(void)
{
	strmap_foreach(&rooms, room_free, NULL);
	strmap_free(&rooms);
}

struct room_walk {
	void (*fn)(const struct room *, void *);
	void *arg;
};

static void
room_walk(const char *key, void *value, void *arg)
{
	struct room_walk *w = arg;

	(void)key;
	w->fn(value, w->arg);
}

void
broker_foreach_room(void (*fn)(const struct room *, void *), void *arg)
{
	struct room_walk w = { fn, arg };

	strmap_foreach(&rooms, room_walk, &w);
}

size_t
broker_room_count(void)
{
	return rooms.count;
}

struct room *
broker_room(const char *name)
{
	return strmap_get(&rooms, name);
}

static struct room *
room_get(const char *name)
{
	struct room *r;

	if ((r = strmap_get(&rooms, name)) != NULL)
		return r;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->name = strdup(name)) == NULL ||
	    strmap_put(&rooms, r->name, r) == -1) {
		free(r->name);
		free(r);
		return NULL;
	}
	return r;
}

static int
sub_buffer(struct sub *s, struct pmsg *p)
{
	if (s->nbuf == s->capbuf) {
		size_t cap = s->capbuf ? s->capbuf * 2 : 16;
		struct pmsg **v = realloc(s->buf, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		s->buf = v;
		s->capbuf = cap;
	}
	s->buf[s->nbuf++] = pmsg_ref(p);
	return 0;
}

/* The fan entry of s follows its state. */
static void
fan_refresh(struct sub *s)
{
	struct fan *f = &s->room->fan[s->fan];

	f->conn = s->replaying ? NULL : s->direct;
	f->head = s->head;
	f->head_len = s->head_len;
}

void
broker_sub_direct(struct sub *s, struct conn *conn, const char *head,
    size_t head_len)
{
	if (s->direct != conn) {
		if (s->direct != NULL)
			s->direct->direct_subs--;
		if (conn != NULL)
			conn->direct_subs++;
	}
	s->direct = conn;
	s->head = head;
	s->head_len = head_len;
	fan_refresh(s);
}

/* Close the holes left by unsubscribes during a fan-out. */
static void
fan_compact(struct room *r)
{
	size_t i, j;

	for (i = j = 0; i < r->nfan; i++) {
		if (r->fan[i].sub == NULL)
			continue;
		if (i != j) {
			r->fan[j] = r->fan[i];
			r->fan[j].sub->fan = j;
		}
		j++;
	}
	r->nfan = j;
	r->holes = 0;
}

/*
 * Hand the room's messages v[0..n) (ascending positions) to its
 * subscribers, each subscriber's share in one go.  A delivery can close a
 * slow consumer and so remove subscribers: while busy, removal leaves a
 * hole (sub NULL) instead of moving entries, and subscribers added
 * meanwhile start after the newest position.  The array may be reallocated
 * by a subscribe, hence r->fan[i] each time.
 */
static void
fan_out(struct room *r, struct pmsg *const *v, size_t n)
{
	struct fan *f;
	size_t i, j;
	/*
	 * From [server] gather_min subscribers on, the frames reference the
	 * shared tail instead of copying it into each connection's buffer:
	 * a big room's buffers are not in any cache by the time the next
	 * frame comes, and each copy is a miss.  A small room's members get
	 * many frames per turn into buffers that stay cached, and a flat
	 * buffer sends faster than a long iovec.
	 */
	int share = cfg->gather_min > 0 &&
	    r->nfan >= (size_t)cfg->gather_min;

	for (j = 0; j < n; j++)
		v[j]->share = share;
	r->busy++;
	for (i = 0; i < r->nfan; i++) {
		f = &r->fan[i];
		if (f->sub == NULL)
			continue;
		/* already sent (seam, duplicate) */
		for (j = 0; j < n && v[j]->m.position <= f->last_position; j++)
			;
		if (j == n)
			continue;
		if (f->conn != NULL) {
			struct conn *c = f->conn;

			f->last_position = v[n - 1]->m.position;
			stats.deliveries += conn_send_msgs(c, f->head,
			    f->head_len, v + j, n - j);
			/* its only room's frames of the turn (or the last
			 * room's) are all queued: written now, while they are
			 * in the cache */
			if (c->direct_subs == 1 || fan_last)
				conn_flush_now(c);
			continue;
		}
		for (; j < n; j++) {
			f = &r->fan[i];
			if (f->sub == NULL)
				break;
			if (f->sub->replaying)
				sub_buffer(f->sub, v[j]);
			else
				session_deliver(f->sub, v[j]);
		}
	}
	if (--r->busy == 0 && r->holes > 0)
		fan_compact(r);
}

/* Fan out the room's queue.  Deliveries may queue more (a slow consumer's
 * leave): those wait for the next pass. */
static void
room_fan(struct room *r)
{
	struct pmsg **q = r->q;
	size_t n = r->nq, cap = r->capq, i;

	if (n == 0)
		return;
	r->q = NULL;
	r->nq = r->capq = 0;
	fan_out(r, q, n);
	for (i = 0; i < n; i++)
		pmsg_unref(q[i]);
	if (r->q == NULL) {	/* keep the array for the next turn */
		r->q = q;
		r->capq = cap;
	} else
		free(q);
}

/*
 * The turn's rooms, small ones first; before the first big one, what
 * little other connections queued (receipts, frames of subscribers of
 * several rooms) is written, so none of it waits behind the big room's
 * sends.  In the last room a subscriber of several rooms is written
 * during the fan-out too (fan_last).  Fan-outs may queue more rooms (a
 * slow consumer's leave): those go in the same pass.
 */
#define FAN_BIG 64

static void
fan_pending(struct room *r, int last)
{
	r->pending = 0;
	fan_last = last;
	room_fan(r);
	fan_last = 0;
}

void
broker_flush(void)
{
	TAILQ_HEAD(, room) big = TAILQ_HEAD_INITIALIZER(big);
	struct room *r;

	do {
		while ((r = TAILQ_FIRST(&pending)) != NULL) {
			TAILQ_REMOVE(&pending, r, pending_entry);
			if (r->nfan >= FAN_BIG) {
				/* still pending: room_queue leaves it */
				TAILQ_INSERT_TAIL(&big, r, pending_entry);
				continue;
			}
			fan_pending(r, TAILQ_EMPTY(&pending) && TAILQ_EMPTY(&big));
		}
		if (TAILQ_EMPTY(&big))
			break;
		conn_flush_quiet();
		while ((r = TAILQ_FIRST(&big)) != NULL) {
			TAILQ_REMOVE(&big, r, pending_entry);
			fan_pending(r, TAILQ_EMPTY(&big) && TAILQ_EMPTY(&pending));
		}
	} while (!TAILQ_EMPTY(&pending));
}

static int
room_queue(struct room *r, struct pmsg *p)
{
	if (r->nq == r->capq) {
		size_t cap = r->capq ? r->capq * 2 : 16;
		struct pmsg **v = realloc(r->q, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		r->q = v;
		r->capq = cap;
	}
	r->q[r->nq++] = pmsg_ref(p);
	if (!r->pending) {
		r->pending = 1;
		TAILQ_INSERT_TAIL(&pending, r, pending_entry);
		conn_arm_flush();
	}
	return 0;
}

void
broker_deliver(const struct parley_msg *m)
{
	struct room *r;
	struct pmsg *p;
	uint64_t pos = m->position;

	if ((r = room_get(m->room)) == NULL)
		return;
	if (pos <= r->last_position) {
		log_debug("room %s: dropping duplicate position %llu", m->room,
		    (unsigned long long)pos);
		return;
	}
	if ((p = pmsg_new(m, NULL)) == NULL) {
		log_error("room %s: dropping message %s at position %llu: "
		    "malformed fields or out of memory", m->room,
		    m->id ? m->id : "?", (unsigned long long)pos);
		return;
	}
	r->last_position = pos;
	r->messages++;
	if (room_queue(r, p) == -1) {
		/* out of memory: what is queued, then this one, at once */
		room_fan(r);
		fan_out(r, &p, 1);
	}
	/* persist-feed backplanes say what to store through host->persist */
	if (p->stored && !(plugins.backplane->p->backplane->flags &
	    PARLEY_BP_PERSIST_FEED) && batcher_add(p) == -1)
		log_error("room %s: out of memory queueing position %llu for "
		    "storage", m->room, (unsigned long long)pos);
	pmsg_unref(p);
}

void
broker_persist(const struct parley_msg *m, uint64_t token)
{
	struct pmsg *p;

	if (!event_is_stored(m->event)) {
		/* nothing to write: acknowledge at once */
		struct parley_ctx *bp = plugins.backplane;

		if (bp->p->backplane->persist_ack != NULL)
			bp->p->backplane->persist_ack(bp->state, &token, 1);
		return;
	}
	if ((p = pmsg_new(m, NULL)) == NULL) {
		log_error("room %s: out of memory queueing for storage "
		    "(left unacknowledged: it will be fed again)", m->room);
		return;
	}
	p->has_token = 1;
	p->token = token;
	if (batcher_add(p) == -1)
		log_error("room %s: out of memory queueing for storage",
		    m->room);
	pmsg_unref(p);
}

/* ------------------------------------------------------------ publish */

static void
pub_committed(void *arg, int status)
{
	struct broker_pub *pb = arg;

	pb->cb(pb->arg, status, pb->position, status == 0 ? NULL :
	    "server shut down before the message was stored");
}

static void
pub_settled(void *arg, int status, uint64_t position, const char *why)
{
	struct broker_pub *pb = arg;
	struct parley_ctx *bp = plugins.backplane;

	if (status != 0) {
		pb->cb(pb->arg, -1, 0, why ? why : "backplane refused");
		return;
	}
	pb->position = position;
	if (!pb->stored || (bp->p->backplane->flags & PARLEY_BP_DURABLE)) {
		pb->cb(pb->arg, 0, position, NULL);
		return;
	}
	/* a non-durable backplane: durable means committed to storage */
	if (batcher_wait(pb->id, pub_committed, pb) == -1)
		pb->cb(pb->arg, -1, position, "out of memory");
}

int
broker_publish(const struct parley_msg *m, struct broker_pub *pb,
    publish_cb cb, void *arg, const char **why)
{
	struct parley_ctx *bp = plugins.backplane;
	size_t idlen = strlen(m->id);

	if (event_is_stored(m->event) && !batcher_has_room()) {
		*why = "storage backlog full: messages are not being stored, "
		    "try again later";
		return -1;
	}
	pb->cb = cb;
	pb->arg = arg;
	pb->stored = event_is_stored(m->event);
	pb->position = 0;
	if (idlen >= sizeof(pb->id))
		idlen = sizeof(pb->id) - 1;
	memcpy(pb->id, m->id, idlen);
	pb->id[idlen] = '\0';
	stats.messages_published++;
	bp->p->backplane->publish(bp->state, m, pub_settled, pb);
	return 0;
}

/* ------------------------------------------------------------ subscribe */

struct resume {
	struct sub *sub;	/* NULL once unsubscribed */
	char room[PARLEY_ROOM_MAX + 1];
	enum resume_kind kind;
	uint64_t since;
	size_t limit;
	struct parley_msg_list list;
	int status;
	int more;		/* more than limit after since */
	char err[256];
	struct pmsg **snap;
	size_t nsnap;
	struct parley_msg_list bp;	/* from the backplane's retention */
	int bp_used, bp_status, bp_complete;
};

static void
resume_work(void *arg)
{
	struct resume *rs = arg;
	struct parley_ctx *st = plugins.storage;
	const struct parley_storage_ops *ops = st->p->storage;

	if (rs->kind == RESUME_SINCE) {
		rs->status = ops->fetch(st->state, rs->room, PARLEY_PAGE_AFTER,
		    rs->since, rs->limit + 1, &msg_list_api, &rs->list,
		    rs->err, sizeof(rs->err));
		if (rs->status == 0 && rs->list.n > rs->limit) {
			/* too far behind: the newest `limit`, flagged */
			rs->more = 1;
			msg_list_clear(&rs->list);
			rs->status = ops->fetch(st->state, rs->room,
			    PARLEY_PAGE_BEFORE, 0, rs->limit, &msg_list_api,
			    &rs->list, rs->err, sizeof(rs->err));
		}
	} else
		rs->status = ops->fetch(st->state, rs->room,
		    PARLEY_PAGE_BEFORE, 0, rs->limit, &msg_list_api,
		    &rs->list, rs->err, sizeof(rs->err));
}

static void resume_finish(struct resume *rs);

/* The backplane's retention answered (messages newer than storage has). */
static void
resume_ranged(void *arg, int status, const struct parley_range *r)
{
	struct resume *rs = arg;
	size_t i;

	rs->bp_status = status;
	if (status == 0 && r != NULL) {
		rs->bp_complete = r->complete && r->n < rs->limit;
		/* history is chat, edits and deletes, as from storage */
		for (i = 0; i < r->n; i++)
			if (event_is_stored(r->msgs[i].event))
				msg_list_api.msg_add(&rs->bp, &r->msgs[i]);
	}
	resume_finish(rs);
}

/*
 * Storage answered.  A backplane that retains messages (Redis Streams,
 * Kafka) may hold newer ones that no instance has written yet: ask it for
 * what follows the newest position storage gave.
 */
static void
resume_done(void *arg)
{
	struct resume *rs = arg;
	struct parley_ctx *bp = plugins.backplane;
	uint64_t after;

	if (rs->sub == NULL || bp == NULL ||
	    bp->p->backplane->read_range == NULL) {
		resume_finish(rs);
		return;
	}
	after = rs->kind == RESUME_SINCE ? rs->since : 0;
	if (rs->status == 0 && rs->list.n > 0 &&
	    rs->list.v[rs->list.n - 1]->m.position > after)
		after = rs->list.v[rs->list.n - 1]->m.position;
	rs->bp_used = 1;
	bp->p->backplane->read_range(bp->state, rs->room, after, rs->limit,
	    resume_ranged, rs);
}

static void
resume_finish(struct resume *rs)
{
	struct sub *s = rs->sub;
	struct pmsg **all = NULL;
	size_t n = 0, i, first;
	int recovered;
	uint64_t last;

	if (s == NULL)
		goto out;
	s->replaying = 0;
	fan_refresh(s);
	if (rs->status != 0)
		log_warn("room %s: resume from storage failed: %s (replaying "
		    "only what the backplane and memory hold, "
		    "recovered=false)", rs->room, rs->err);
	recovered = rs->status == 0 && !rs->more;
	if (rs->bp_used && (rs->bp_status != 0 || !rs->bp_complete))
		recovered = 0;	/* cannot prove the tail is complete */
	/* storage + backplane + not yet committed, ordered, deduped */
	all = malloc((rs->list.n + rs->bp.n + rs->nsnap + 1) * sizeof(*all));
	if (all == NULL) {
		recovered = 0;
		goto live;
	}
	for (i = 0; i < rs->list.n; i++)
		all[n++] = rs->list.v[i];
	for (i = 0; i < rs->bp.n; i++)
		all[n++] = rs->bp.v[i];
	for (i = 0; i < rs->nsnap; i++)
		all[n++] = rs->snap[i];
	n = pmsg_sort_unique(all, n);
	first = 0;
	if (rs->kind == RESUME_SINCE) {
		while (first < n && all[first]->m.position <= rs->since)
			first++;
		if (n - first > rs->limit) {
			first = n - rs->limit;
			recovered = 0;
		}
	} else if (n > rs->limit)
		first = n - rs->limit;
	for (i = first; i < n && s->session != NULL; i++)
		session_deliver(s, all[i]);
live:
	last = *sub_last_position(s);
	if (rs->kind == RESUME_SINCE && last < rs->since)
		*sub_last_position(s) = last = rs->since;
	stats.resumes++;
	if (!recovered)
		stats.resumes_unrecovered++;
	session_resumed(s, last, recovered);
	/* then live messages that arrived meanwhile */
	for (i = 0; i < s->nbuf; i++) {
		session_deliver(s, s->buf[i]);
		pmsg_unref(s->buf[i]);
	}
	free(s->buf);
	s->buf = NULL;
	s->nbuf = s->capbuf = 0;
out:
	free(all);
	msg_list_clear(&rs->list);
	msg_list_clear(&rs->bp);
	for (i = 0; i < rs->nsnap; i++)
		pmsg_unref(rs->snap[i]);
	free(rs->snap);
	if (s != NULL)
		s->resume = NULL;
	free(rs);
}

struct sub *
broker_subscribe(struct session *ses, const char *id, const char *room,
    enum ack_mode ack, enum resume_kind rk, uint64_t since, int history,
    const char *receipt)
{
	struct parley_ctx *bp = plugins.backplane;
	struct room *r;
	struct sub *s;
	struct resume *rs;

	if ((r = room_get(room)) == NULL)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->id = strdup(id)) == NULL ||
	    (receipt != NULL && (s->receipt = strdup(receipt)) == NULL)) {
		free(s->id);
		free(s);
		return NULL;
	}
	if (r->nfan == r->capfan) {
		size_t cap = r->capfan ? r->capfan * 2 : 8;
		struct fan *v = realloc(r->fan, cap * sizeof(*v));

		if (v == NULL) {
			free(s->receipt);
			free(s->id);
			free(s);
			return NULL;
		}
		r->fan = v;
		r->capfan = cap;
	}
	s->session = ses;
	s->room = r;
	s->ack = ack;
	s->fan = r->nfan++;
	memset(&r->fan[s->fan], 0, sizeof(r->fan[s->fan]));
	r->fan[s->fan].sub = s;
	r->fan[s->fan].last_position = r->last_position;
	if (r->nsubs++ == 0 && bp->p->backplane->watch_room != NULL)
		bp->p->backplane->watch_room(bp->state, room);
	if (rk == RESUME_NONE)
		return s;

	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		goto fail;
	s->replaying = 1;
	*sub_last_position(s) = 0;
	fan_refresh(s);
	s->resume = rs;
	rs->sub = s;
	snprintf(rs->room, sizeof(rs->room), "%s", room);
	rs->kind = rk;
	rs->since = since;
	rs->limit = rk == RESUME_SINCE ? (size_t)cfg->resume_max :
	    (size_t)history;
	batcher_snapshot(room, rk == RESUME_SINCE ? since : 0, &rs->snap,
	    &rs->nsnap);
	if (worker_submit(resume_work, resume_done, rs) == -1) {
		rs->status = -1;
		snprintf(rs->err, sizeof(rs->err), "server shutting down");
		resume_done(rs);
	}
	return s;
fail:
	broker_unsubscribe(s);
	return NULL;
}

void
broker_unsubscribe(struct sub *s)
{
	struct parley_ctx *bp = plugins.backplane;
	struct room *r = s->room;
	size_t i;

	if (r->busy) {
		/* a fan-out is walking the array: leave a hole */
		memset(&r->fan[s->fan], 0, sizeof(r->fan[s->fan]));
		r->holes++;
	} else {
		/* the last entry takes its place */
		if (s->fan != --r->nfan) {
			r->fan[s->fan] = r->fan[r->nfan];
			r->fan[s->fan].sub->fan = s->fan;
		}
	}
	if (s->direct != NULL)
		s->direct->direct_subs--;
	s->direct = NULL;
	if (--r->nsubs == 0 && bp != NULL &&
	    bp->p->backplane->unwatch_room != NULL)
		bp->p->backplane->unwatch_room(bp->state, r->name);
	if (s->resume != NULL)
		s->resume->sub = NULL;	/* the worker result is dropped */
	for (i = 0; i < s->nbuf; i++)
		pmsg_unref(s->buf[i]);
	free(s->buf);
	free(s->receipt);
	free(s->id);
	free(s);
}
