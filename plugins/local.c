/*
 * local.c - the "local" backplane: single-node, in-process fan-out.
 *
 * Every publish gets the next position of its room and is handed back to the
 * host with deliver() on a later loop turn; nothing is retained, nothing is
 * shared with other instances, and nothing survives a crash (flags = 0).
 *
 * Positions follow the shape of a Redis stream id: the millisecond clock in
 * the high bits and a counter in the low 16 bits,
 *
 *	position = max(last_position + 1, now_ms << 16),
 *
 * so positions keep growing across restarts as long as the clock does not
 * go back, without writing anything to disk.
 *
 * Publishes are never settled inside publish(): they are copied onto their
 * room's queue and a zero-delay timer settles them on a later loop turn
 * (publish callback, then deliver()): room after room, each room's
 * queued publishes in publish order (so its subscribers get them in one
 * batch).  A wakeup stops after SETTLE_MAX messages and the room it cut
 * goes behind the others, so a room with a backlog of thousands delays
 * another room's message by one wakeup, not by its whole backlog.
 */
#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>

#define LOCAL_SHIFT 16
#define LOCAL_MINBUCKETS 64

struct pending;

/* Last position handed out in one room, and its unsettled publishes. */
struct room {
	struct room *next;	/* hash chain */
	uint32_t hash;
	uint64_t last;
	struct pending *qhead;	/* FIFO of unsettled publishes */
	struct pending **qtail;
	struct room *anext;	/* next room with publishes to settle */
	int active;		/* on that list (never pruned meanwhile) */
	char name[];
};

/* One publish waiting for the next loop turn; one allocation. */
struct pending {
	struct pending *next;
	uint64_t pass;		/* the settle pass it was published in */
	struct parley_msg msg;	/* points into data[] */
	parley_publish_cb cb;
	void *arg;
	char data[];
};

struct local {
	const struct parley_host *host;
	struct parley_ctx *ctx;

	struct room **buckets;
	size_t nbuckets;
	size_t nrooms;

	struct room *ahead;	/* rooms with unsettled publishes, FIFO */
	struct room **atail;
	uint64_t pass;		/* settle passes so far */
	struct parley_timer *timer; /* pending settle timer, or NULL */
};

static uint32_t
hash_name(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

/*
 * Drop rooms whose last position is older than the current millisecond:
 * for them max() picks now_ms << 16 anyway, so they carry no information.
 * This keeps the table as small as the set of rooms active right now.
 */
static void
rooms_prune(struct local *l, uint64_t floor)
{
	struct room **rp, *r;
	size_t i;

	for (i = 0; i < l->nbuckets; i++) {
		rp = &l->buckets[i];
		while ((r = *rp) != NULL) {
			if (r->last < floor && !r->active) {
				*rp = r->next;
				free(r);
				l->nrooms--;
			} else
				rp = &r->next;
		}
	}
}

/* Returns 0, or -1 on allocation failure (the table stays usable). */
static int
rooms_grow(struct local *l)
{
	struct room **nb, *r, *next;
	size_t i, n;

	n = l->nbuckets * 2;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return (-1);
	for (i = 0; i < l->nbuckets; i++) {
		for (r = l->buckets[i]; r != NULL; r = next) {
			next = r->next;
			r->next = nb[r->hash & (n - 1)];
			nb[r->hash & (n - 1)] = r;
		}
	}
	free(l->buckets);
	l->buckets = nb;
	l->nbuckets = n;
	return (0);
}

/*
 * Assign the next position of room.  Returns the room, or NULL on
 * allocation failure.
 */
static struct room *
room_next(struct local *l, const char *name, uint64_t *pos)
{
	struct room *r;
	uint64_t floor;
	uint32_t h;
	size_t len;
	int64_t now;

	now = l->host->now_ms();
	floor = now > 0 ? (uint64_t)now << LOCAL_SHIFT : 0;
	h = hash_name(name);
	for (r = l->buckets[h & (l->nbuckets - 1)]; r != NULL; r = r->next)
		if (r->hash == h && strcmp(r->name, name) == 0)
			break;
	if (r == NULL) {
		if (l->nrooms >= l->nbuckets) {
			rooms_prune(l, floor);
			if (l->nrooms >= l->nbuckets / 2)
				(void)rooms_grow(l);	/* chains just get longer */
		}
		len = strlen(name);
		if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
			return (NULL);
		memcpy(r->name, name, len + 1);
		r->hash = h;
		r->qtail = &r->qhead;
		r->next = l->buckets[h & (l->nbuckets - 1)];
		l->buckets[h & (l->nbuckets - 1)] = r;
		l->nrooms++;
	}
	r->last = r->last + 1 > floor ? r->last + 1 : floor;
	*pos = r->last;
	return (r);
}

static size_t
str_size(const char *s)
{
	return (s != NULL ? strlen(s) + 1 : 0);
}

/* Copy s (NULL stays NULL) to *p and advance it. */
static const char *
str_copy(char **p, const char *s)
{
	char *d = *p;
	size_t n;

	if (s == NULL)
		return (NULL);
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*p += n;
	return (d);
}

/* Deep-copy msg into one allocation.  Returns NULL on allocation failure. */
static struct pending *
pending_new(const struct parley_msg *msg)
{
	struct pending *p;
	size_t len;
	char *d;

	len = str_size(msg->room) + str_size(msg->id) + str_size(msg->sender) +
	    str_size(msg->content_type) + str_size(msg->ref_id) +
	    str_size(msg->media_id) + msg->body_len + 1;
	/* malloc: every field is set before use, the strings by copying */
	if ((p = malloc(sizeof(*p) + len)) == NULL)
		return (NULL);
	d = p->data;
	p->msg = *msg;
	memset(p->msg.spare, 0, sizeof(p->msg.spare));
	p->msg.room = str_copy(&d, msg->room);
	p->msg.id = str_copy(&d, msg->id);
	p->msg.sender = str_copy(&d, msg->sender);
	p->msg.content_type = str_copy(&d, msg->content_type);
	p->msg.ref_id = str_copy(&d, msg->ref_id);
	p->msg.media_id = str_copy(&d, msg->media_id);
	if (msg->body_len > 0)
		memcpy(d, msg->body, msg->body_len);
	d[msg->body_len] = '\0';
	p->msg.body = d;
	return (p);
}

/*
 * Work of one wakeup, at most.  Counted in messages, not time: a time
 * budget (10 ms was tried) cuts a big room's batches and with them its
 * throughput (5,000 subscribers: 3.8 -> 2.4 M deliveries/s).
 */
#define SETTLE_MAX 512

/* Timer: settle queued publishes, room after room. */
static void
local_settle(void *arg)
{
	struct local *l = arg;
	struct pending *p;
	struct room *r, *later = NULL, **latertail = &later;
	uint64_t pass = ++l->pass;
	size_t n = 0;

	l->timer = NULL;	/* a one-shot timer is gone once it fired */
	while (l->ahead != NULL && n < SETTLE_MAX) {
		r = l->ahead;
		if ((l->ahead = r->anext) == NULL)
			l->atail = &l->ahead;
		/*
		 * All of this room's publishes from before this pass, in
		 * order (one batch of frames per subscriber), up to the cap.
		 * r stays marked active meanwhile: the callbacks, which may
		 * publish again (those wait for the next pass) and prune
		 * rooms, neither re-list it nor free it.
		 */
		while (n < SETTLE_MAX && r->qhead != NULL &&
		    r->qhead->pass != pass) {
			p = r->qhead;
			if ((r->qhead = p->next) == NULL)
				r->qtail = &r->qhead;
			n++;
			/* delivered, then settled: the host then finds the
			 * message queued for storage and hangs the publisher's
			 * receipt on it (no lookup by id at commit) */
			l->host->deliver(l->ctx, &p->msg);
			p->cb(p->arg, 0, p->msg.position, NULL);
			free(p);
		}
		r->anext = NULL;
		if (r->qhead == NULL)
			r->active = 0;
		else if (r->qhead->pass == pass) {
			*latertail = r;		/* only new ones: next pass */
			latertail = &r->anext;
		} else {
			*l->atail = r;		/* cut by the cap: others first */
			l->atail = &r->anext;
		}
	}
	if (later != NULL) {
		*l->atail = later;
		l->atail = latertail;
	}
	if (l->ahead == NULL || l->timer != NULL)
		return;
	/* the rest on the next loop turn, after I/O and output */
	l->timer = l->host->timer_add(l->ctx, 0, 0, local_settle, l);
	if (l->timer == NULL)
		l->host->log(l->ctx, PARLEY_LOG_ERROR, "cannot add a timer: "
		    "%s", "queued publishes wait for the next publish");
}

static void
local_publish(void *state, const struct parley_msg *msg, parley_publish_cb cb,
    void *arg)
{
	struct local *l = state;
	struct pending *p;
	struct room *r;

	if (msg->room == NULL || msg->id == NULL ||
	    (msg->body == NULL && msg->body_len > 0)) {
		cb(arg, -1, 0, "malformed message");
		return;
	}
	if ((p = pending_new(msg)) == NULL) {
		cb(arg, -1, 0, "out of memory");
		return;
	}
	if (l->timer == NULL) {
		l->timer = l->host->timer_add(l->ctx, 0, 0, local_settle, l);
		if (l->timer == NULL) {
			/* The queue is empty here: only this publish fails. */
			free(p);
			l->host->log(l->ctx, PARLEY_LOG_ERROR,
			    "cannot add a timer: publish to room '%s' failed",
			    msg->room);
			cb(arg, -1, 0, "cannot schedule delivery");
			return;
		}
	}
	if ((r = room_next(l, msg->room, &p->msg.position)) == NULL) {
		free(p);
		cb(arg, -1, 0, "out of memory");
		return;		/* the timer fires harmlessly */
	}
	p->cb = cb;
	p->arg = arg;
	p->next = NULL;
	p->pass = l->pass;
	*r->qtail = p;
	r->qtail = &p->next;
	if (!r->active) {
		r->active = 1;
		r->anext = NULL;
		*l->atail = r;
		l->atail = &r->anext;
	}
}

static void
local_watch_room(void *state, const char *room)
{
	(void)state;
	(void)room;
}

static void
local_unwatch_room(void *state, const char *room)
{
	(void)state;
	(void)room;
}

static int
local_init(const struct parley_host *host, struct parley_ctx *ctx,
    void **state)
{
	struct local *l;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->buckets = calloc(LOCAL_MINBUCKETS,
	    sizeof(*l->buckets))) == NULL) {
		free(l);
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	l->host = host;
	l->ctx = ctx;
	l->nbuckets = LOCAL_MINBUCKETS;
	l->atail = &l->ahead;
	*state = l;
	return (0);
}

/*
 * Publishes still queued are settled as failed so that every callback runs
 * exactly once; nothing is delivered.
 */
static void
local_fini(void *state)
{
	struct local *l = state;
	struct pending *p, *next;
	struct room *r, *rnext;
	size_t i;

	if (l == NULL)
		return;
	if (l->timer != NULL)
		l->host->timer_del(l->timer);
	while ((r = l->ahead) != NULL) {
		l->ahead = r->anext;
		for (p = r->qhead; p != NULL; p = next) {
			next = p->next;
			p->cb(p->arg, -1, 0, "backplane stopped");
			free(p);
		}
		r->qhead = NULL;
		r->active = 0;
	}
	for (i = 0; i < l->nbuckets; i++) {
		for (r = l->buckets[i]; r != NULL; r = rnext) {
			rnext = r->next;
			free(r);
		}
	}
	free(l->buckets);
	free(l);
}

static const struct parley_backplane_ops local_ops = {
	.size = sizeof(struct parley_backplane_ops),
	.flags = 0,
	.publish = local_publish,
	.watch_room = local_watch_room,
	.unwatch_room = local_unwatch_room,
	.read_range = NULL,
};

static const struct parley_plugin local_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_BACKPLANE,
	.name = "local",
	.version = "1.0",
	.description = "single-node in-process fan-out (not durable, not shared)",
	.init = local_init,
	.fini = local_fini,
	.backplane = &local_ops,
};

__attribute__((visibility("default"))) const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&local_plugin);
}
