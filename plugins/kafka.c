/*
 * kafka.c - the "kafka" backplane: one topic, the room as message key
 * (librdkafka on the core loop through queue event fds), shared by every
 * instance, durable, with a persist feed.
 *
 * Producing: an idempotent producer (enable.idempotence, acks=all).  The
 * room picks the partition (librdkafka's consistent CRC32 partitioner over
 * the key), so one partition orders each room; the publish callback (the
 * client's RECEIPT) runs only after the delivery report.  Record layout:
 * key = room, value = body, headers id, sender, ts, event and, when set,
 * ctype, ref, media, flags.
 *
 * Position: partition offset + 1.  Several rooms share a partition, so a
 * room's positions are not dense, but they only grow.
 *
 * Consuming:
 *  - local storage (every instance stores everything): one consumer,
 *    group.id "<group>-<instance_id>", assign()s every partition at its
 *    committed offset (no group join: the coordinator is only asked for
 *    offsets).  Each record is handed to host->persist() and, when the room
 *    has local subscribers, to host->deliver() in the same step, so a
 *    subscribe that happens now finds every earlier record in storage or
 *    the write-behind queue and every later one live.  Offsets are
 *    committed once the host acknowledged everything before them.
 *  - shared storage (exactly one instance stores each record): a fan-out
 *    consumer assign()s every partition at the end (its own group.id, never
 *    committed), and a persist consumer subscribe()s in group "<group>"
 *    (joins, rebalances across instances) and commits after the acks.
 * Every handle's queue signals a pipe (rd_kafka_queue_io_event_enable)
 * watched on the core loop: no thread of ours, no blocking, no busy poll.
 *
 * Duplicates: producer retries can write a record twice (and the mock
 * cluster does not drop idempotent retries): the fan-out drops a record
 * whose message id was seen recently in its partition (a bounded window),
 * so clients never see one twice; storage is idempotent on (room, id) too.
 *
 * read_range runs on a worker (a temporary consumer reads the room's
 * partition from the position on; watermarks tell what is retained).
 *
 * See doc/backplane.md for keys and trade-offs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include <parley/plugin.h>

#define KB_OFFSET_BITS 48
#define KB_OFFSET_MASK ((1ULL << KB_OFFSET_BITS) - 1)
#define KB_POLL_BUDGET 2000	/* records per wakeup, then yield */
#define KB_MINBUCKETS 64

struct kbp;

/* A librdkafka queue signalled through a pipe watched on the loop. */
struct kq {
	struct kbp *b;
	const char *name;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	int pfd[2];
	struct parley_watch *w;
	struct parley_timer *again;	/* budget used up: continue soon */
	void (*serve)(struct kq *);
};

/* Recently seen message ids of one partition: a ring and a set. */
struct seen {
	uint64_t *ring;		/* id hashes, oldest at head */
	size_t head, n, cap;
	uint64_t *set;		/* open addressing, 0 = empty */
	size_t setcap;
};

/* Fed offsets of one partition, in order, until acknowledged. */
struct track {
	int64_t *off;
	unsigned char *acked;
	size_t head, n, cap;
	int64_t commit;		/* next offset to commit, -1 = none yet */
	int dirty;
	int owned;		/* assigned to the persisting consumer */
};

struct kpart {
	struct seen seen;
	struct track trk;
};

/* A watched room (has local subscribers). */
struct kroom {
	struct kroom *next;
	uint32_t hash;
	char name[];
};

struct kbp {
	const struct parley_host *host;
	struct parley_ctx *ctx;

	/* configuration */
	const char *brokers;
	const char *topic;
	const char *groupcfg;	/* [kafka] group */
	char *group;		/* persist group */
	char *fangroup;		/* fan-out consumer's group.id (shared) */
	long long partitions_cfg;	/* expected count, 0 = any */
	long long dedupe_window;
	long long max_inflight;
	long long commit_interval_ms;
	long long range_timeout_ms;
	long long range_scan_max;
	long long meta_timeout_ms;
	int shared;
	int from_oldest;
	const char **pass;	/* kafka.*: name, value, ..., NULL */
	char *client_id;	/* instance_id, for clients made on workers */

	rd_kafka_t *prod;
	rd_kafka_topic_t *prkt;
	struct kq prodq;
	rd_kafka_t *fan;	/* fan-out (local mode: fan-out + persist) */
	struct kq fanq;
	rd_kafka_t *per;	/* persist consumer (shared mode only) */
	struct kq perq;

	int nparts;		/* 0 until metadata is known */
	struct kpart *parts;
	size_t outstanding;	/* fed, not acknowledged */
	int per_paused;

	struct kroom **buckets;
	size_t nbuckets, nrooms;

	int ready;		/* as last told to the host */
	int all_down;		/* librdkafka says all brokers are down */
	int meta_busy;		/* a metadata job is on a worker */
	char why[512];
	struct parley_timer *meta_timer;
	struct parley_timer *commit_timer;
	int stopping;
};

/* One publish until its delivery report. */
struct kpub {
	struct kbp *b;
	parley_publish_cb cb;
	void *arg;
};

static void ready_set(struct kbp *b, int ready, const char *why);
static void meta_start(struct kbp *b);

/* ------------------------------------------------------------ helpers */

static uint32_t
hash_name(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return (h);
}

/* A 64-bit hash of a message id; never 0. */
static uint64_t
hash_id(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a 64 */
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return (h != 0 ? h : 1);
}

static uint64_t
mix(uint64_t t)
{
	t ^= t >> 33;
	t *= 0xff51afd7ed558ccdULL;
	t ^= t >> 33;
	return (t);
}

/* ------------------------------------------------------------ seen ids */

static int
seen_init(struct seen *s, size_t cap)
{
	s->cap = cap;
	s->setcap = 16;
	while (s->setcap < cap * 2)
		s->setcap *= 2;
	s->ring = calloc(cap, sizeof(*s->ring));
	s->set = calloc(s->setcap, sizeof(*s->set));
	return (s->ring != NULL && s->set != NULL ? 0 : -1);
}

static void
seen_free(struct seen *s)
{
	free(s->ring);
	free(s->set);
	memset(s, 0, sizeof(*s));
}

static int
seen_has(const struct seen *s, uint64_t h)
{
	size_t i, m = s->setcap - 1;

	for (i = mix(h) & m; s->set[i] != 0; i = (i + 1) & m)
		if (s->set[i] == h)
			return (1);
	return (0);
}

static void
seen_del(struct seen *s, uint64_t h)
{
	size_t i, j, k, m = s->setcap - 1;

	for (i = mix(h) & m; s->set[i] != h; i = (i + 1) & m)
		if (s->set[i] == 0)
			return;
	s->set[i] = 0;
	for (j = (i + 1) & m; s->set[j] != 0; j = (j + 1) & m) {
		k = mix(s->set[j]) & m;
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			s->set[i] = s->set[j];
			s->set[j] = 0;
			i = j;
		}
	}
}

/*
 * Remember h.  Returns 1 when it was seen within the window (a duplicate),
 * 0 when it is new.
 */
static int
seen_check(struct seen *s, uint64_t h)
{
	size_t i, m = s->setcap - 1;

	if (s->cap == 0)
		return (0);
	if (seen_has(s, h))
		return (1);
	if (s->n == s->cap) {
		seen_del(s, s->ring[s->head]);
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
	s->ring[(s->head + s->n) % s->cap] = h;
	s->n++;
	for (i = mix(h) & m; s->set[i] != 0; i = (i + 1) & m)
		;
	s->set[i] = h;
	return (0);
}

/* ------------------------------------------------------------ commits */

static void
track_reset(struct track *t)
{
	t->head = t->n = 0;
	t->commit = -1;
	t->dirty = 0;
}

/* Record offset o as fed.  Returns 0, or -1 out of memory. */
static int
track_add(struct track *t, int64_t o)
{
	size_t i, cap;
	int64_t *no;
	unsigned char *na;

	if (t->n == t->cap) {
		cap = t->cap ? t->cap * 2 : 256;
		if ((no = malloc(cap * sizeof(*no))) == NULL ||
		    (na = malloc(cap)) == NULL) {
			free(no);
			return (-1);
		}
		for (i = 0; i < t->n; i++) {
			no[i] = t->off[(t->head + i) % t->cap];
			na[i] = t->acked[(t->head + i) % t->cap];
		}
		free(t->off);
		free(t->acked);
		t->off = no;
		t->acked = na;
		t->head = 0;
		t->cap = cap;
	}
	t->off[(t->head + t->n) % t->cap] = o;
	t->acked[(t->head + t->n) % t->cap] = 0;
	t->n++;
	return (0);
}

/* Acknowledge offset o.  Returns 1 if it was outstanding, else 0. */
static int
track_ack(struct track *t, int64_t o)
{
	size_t lo = 0, hi = t->n, mid;
	int64_t v;

	/* offsets were added in increasing order */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		v = t->off[(t->head + mid) % t->cap];
		if (v < o)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == t->n || t->off[(t->head + lo) % t->cap] != o ||
	    t->acked[(t->head + lo) % t->cap])
		return (0);
	t->acked[(t->head + lo) % t->cap] = 1;
	while (t->n > 0 && t->acked[t->head]) {
		t->commit = t->off[t->head] + 1;
		t->dirty = 1;
		t->head = (t->head + 1) % t->cap;
		t->n--;
	}
	return (1);
}

/* ------------------------------------------------------------ rooms */

static struct kroom *
room_find(struct kbp *b, const char *name, size_t len)
{
	struct kroom *r;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	for (r = b->buckets[h & (b->nbuckets - 1)]; r != NULL; r = r->next)
		if (r->hash == h && strlen(r->name) == len &&
		    memcmp(r->name, name, len) == 0)
			return (r);
	return (NULL);
}

static void
kb_watch_room(void *state, const char *room)
{
	struct kbp *b = state;
	struct kroom *r, **nb, *next;
	size_t len = strlen(room), i, n;

	if (room_find(b, room, len) != NULL)
		return;
	if (b->nrooms >= b->nbuckets &&
	    (nb = calloc(n = b->nbuckets * 2, sizeof(*nb))) != NULL) {
		for (i = 0; i < b->nbuckets; i++)
			for (r = b->buckets[i]; r != NULL; r = next) {
				next = r->next;
				r->next = nb[r->hash & (n - 1)];
				nb[r->hash & (n - 1)] = r;
			}
		free(b->buckets);
		b->buckets = nb;
		b->nbuckets = n;
	}
	if ((r = malloc(sizeof(*r) + len + 1)) == NULL) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "room %s: out of "
		    "memory: no fan-out from other instances", room);
		return;
	}
	memcpy(r->name, room, len + 1);
	r->hash = hash_name(room);
	r->next = b->buckets[r->hash & (b->nbuckets - 1)];
	b->buckets[r->hash & (b->nbuckets - 1)] = r;
	b->nrooms++;
}

static void
kb_unwatch_room(void *state, const char *room)
{
	struct kbp *b = state;
	struct kroom **rp, *r;
	uint32_t h = hash_name(room);

	for (rp = &b->buckets[h & (b->nbuckets - 1)]; (r = *rp) != NULL;
	    rp = &r->next) {
		if (r->hash == h && strcmp(r->name, room) == 0) {
			*rp = r->next;
			free(r);
			b->nrooms--;
			return;
		}
	}
}

/* ------------------------------------------------------------ records */

/* A decoded record; strings are NUL-terminated copies. */
struct rec {
	struct parley_msg m;
	char room[PARLEY_ROOM_MAX + 1];
	char id[PARLEY_ID_MAX + 1];
	char sender[PARLEY_LOGIN_MAX + 1];
	char ctype[256];
	char ref[PARLEY_ID_MAX + 1];
	char media[PARLEY_ID_MAX + 1];
};

static int
hdr_str(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
	const void *v;
	size_t n;

	if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR || v == NULL) {
		buf[0] = '\0';
		return (0);
	}
	if (n >= len)
		n = len - 1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return (1);
}

/*
 * Decode a consumed record into r (the body points into rkm).  Returns 0,
 * or -1 when it is not a Parley record.
 */
static int
rec_decode(const rd_kafka_message_t *rkm, struct rec *r)
{
	rd_kafka_headers_t *h = NULL;
	char num[32];

	memset(r, 0, sizeof(*r));
	if (rkm->key == NULL || rkm->key_len == 0 ||
	    rkm->key_len > PARLEY_ROOM_MAX || rkm->offset < 0)
		return (-1);
	memcpy(r->room, rkm->key, rkm->key_len);
	r->room[rkm->key_len] = '\0';
	if (rd_kafka_message_headers(rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return (-1);
	if (!hdr_str(h, "id", r->id, sizeof(r->id)) || r->id[0] == '\0' ||
	    !hdr_str(h, "sender", r->sender, sizeof(r->sender)))
		return (-1);
	r->m.room = r->room;
	r->m.id = r->id;
	r->m.sender = r->sender;
	r->m.position = (uint64_t)rkm->offset + 1;
	if (hdr_str(h, "ts", num, sizeof(num)))
		r->m.timestamp_ms = strtoll(num, NULL, 10);
	if (hdr_str(h, "event", num, sizeof(num)))
		r->m.event = (int)strtol(num, NULL, 10);
	if (hdr_str(h, "ctype", r->ctype, sizeof(r->ctype)))
		r->m.content_type = r->ctype;
	if (hdr_str(h, "ref", r->ref, sizeof(r->ref)))
		r->m.ref_id = r->ref;
	if (hdr_str(h, "media", r->media, sizeof(r->media)))
		r->m.media_id = r->media;
#ifdef PARLEY_MSG_MODERATED
	if (hdr_str(h, "flags", num, sizeof(num)))
		r->m.flags = (unsigned)strtoul(num, NULL, 10);
#endif
	r->m.body = rkm->payload != NULL ? rkm->payload : "";
	r->m.body_len = rkm->payload != NULL ? rkm->len : 0;
	return (0);
}

/* ------------------------------------------------------------ queues */

static void
kq_wake(int fd, int what, void *arg)
{
	struct kq *q = arg;
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	q->serve(q);
}

static void
kq_again(void *arg)
{
	struct kq *q = arg;

	q->again = NULL;	/* one-shot: gone once fired */
	q->serve(q);
}

/* The poll budget ran out with records left: continue on a later turn. */
static void
kq_yield(struct kq *q)
{
	if (q->again == NULL && !q->b->stopping)
		q->again = q->b->host->timer_add(q->b->ctx, 0, 0, kq_again, q);
}

/* Route queue q of rk to a pipe watched on the loop.  Returns 0 or -1. */
static int
kq_open(struct kbp *b, struct kq *q, const char *name, rd_kafka_t *rk,
    rd_kafka_queue_t *rkq, void (*serve)(struct kq *))
{
	int i;

	q->b = b;
	q->name = name;
	q->rk = rk;
	q->q = rkq;
	q->serve = serve;
	q->pfd[0] = q->pfd[1] = -1;
	if (rkq == NULL || pipe(q->pfd) == -1) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s queue: %s", name,
		    rkq == NULL ? "no queue" : strerror(errno));
		return (-1);
	}
	for (i = 0; i < 2; i++) {
		(void)fcntl(q->pfd[i], F_SETFL, O_NONBLOCK);
		(void)fcntl(q->pfd[i], F_SETFD, FD_CLOEXEC);
	}
	if ((q->w = b->host->watch_add(b->ctx, q->pfd[0], PARLEY_WATCH_READ,
	    kq_wake, q)) == NULL) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s queue: cannot watch "
		    "its pipe", name);
		return (-1);
	}
	rd_kafka_queue_io_event_enable(rkq, q->pfd[1], "1", 1);
	/* whatever was queued before the pipe existed */
	kq_yield(q);
	return (0);
}

static void
kq_close(struct kq *q)
{
	if (q->q != NULL) {
		rd_kafka_queue_io_event_enable(q->q, -1, NULL, 0);
		rd_kafka_queue_destroy(q->q);
		q->q = NULL;
	}
	if (q->w != NULL)
		q->b->host->watch_del(q->w);
	q->w = NULL;
	if (q->again != NULL)
		q->b->host->timer_del(q->again);
	q->again = NULL;
	if (q->pfd[0] >= 0)
		close(q->pfd[0]);
	if (q->pfd[1] >= 0)
		close(q->pfd[1]);
	q->pfd[0] = q->pfd[1] = -1;
}

/* ------------------------------------------------------------ readiness */

static void
ready_set(struct kbp *b, int ready, const char *why)
{
	if (b->stopping)
		return;
	if (ready) {
		if (b->ready != 1)
			b->host->set_ready(b->ctx, 1, NULL);
		b->ready = 1;
		b->why[0] = '\0';
		return;
	}
	if (b->ready != 0 || strcmp(b->why, why) != 0) {
		snprintf(b->why, sizeof(b->why), "%s", why);
		b->host->set_ready(b->ctx, 0, why);
	}
	b->ready = 0;
	/* poll the cluster until it answers again */
	meta_start(b);
}

/* librdkafka error events (loop thread, served from a queue). */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kbp *b = opaque;
	char why[512];

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		b->all_down = 1;
		/* no counts in the text: it would change with each retry */
		(void)reason;
		snprintf(why, sizeof(why), "kafka %s: all brokers down",
		    b->brokers);
		ready_set(b, 0, why);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char fatal[256];

		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		snprintf(why, sizeof(why), "kafka: fatal error: %s (restart "
		    "needed)", fatal);
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s", why);
		ready_set(b, 0, why);
		return;
	}
	b->host->log(b->ctx, PARLEY_LOG_DEBUG, "kafka: %s: %s",
	    rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* librdkafka's own log lines (any thread). */
static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct kbp *b = rd_kafka_opaque(rk);
	int l;

	if (b == NULL)
		return;
	l = level <= 3 ? PARLEY_LOG_ERROR : level == 4 ? PARLEY_LOG_WARN :
	    level <= 6 ? PARLEY_LOG_INFO : PARLEY_LOG_DEBUG;
	/* connection churn is reported through readiness instead */
	if (strcmp(fac, "FAIL") == 0 || strcmp(fac, "REQTMOUT") == 0)
		l = PARLEY_LOG_DEBUG;
	b->host->log(b->ctx, l, "librdkafka %s: %s: %s", rd_kafka_name(rk),
	    fac, buf);
}

/* ------------------------------------------------------------ config */

enum { ROLE_PRODUCER, ROLE_CONSUMER };

/*
 * A client configuration (any thread): our defaults for all clients and
 * for the role, then the [kafka] kafka.* keys, then forced (what this
 * plugin depends on; NULL-terminated name/value pairs).  NULL on error.
 */
static rd_kafka_conf_t *
conf_for(struct kbp *b, int role, const char *const *forced)
{
	static const char *const common[] = {
		"reconnect.backoff.ms", "100",
		"reconnect.backoff.max.ms", "5000",
		"topic.metadata.refresh.interval.ms", "10000",
		"socket.nagle.disable", "true",
		NULL
	};
	static const char *const producer[] = {
		"linger.ms", "1",
		"message.timeout.ms", "10000",
		NULL
	};
	static const char *const consumer[] = {
		/* the broker answers an empty fetch after this: latency */
		"fetch.wait.max.ms", "10",
		"fetch.error.backoff.ms", "50",
		NULL
	};
	const char *const *lists[4];
	const char *const *kv;
	rd_kafka_conf_t *conf;
	char err[512];
	size_t i;
	int l;

	if ((conf = rd_kafka_conf_new()) == NULL)
		return (NULL);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", b->brokers, err,
	    sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "client.id", b->client_id, err,
	    sizeof(err)) != RD_KAFKA_CONF_OK)
		goto bad;
	lists[0] = common;
	lists[1] = role == ROLE_PRODUCER ? producer : consumer;
	lists[2] = b->pass;
	lists[3] = forced;
	for (l = 0; l < 4; l++) {
		for (kv = lists[l], i = 0; kv != NULL && kv[i] != NULL;
		    i += 2) {
			if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], err,
			    sizeof(err)) != RD_KAFKA_CONF_OK) {
				b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s%s = "
				    "%s: %s", l == 2 ? "[kafka] kafka." : "",
				    kv[i], kv[i + 1], err);
				rd_kafka_conf_destroy(conf);
				return (NULL);
			}
		}
	}
	return (conf);
bad:
	b->host->log(b->ctx, PARLEY_LOG_ERROR, "[kafka] brokers = %s: %s",
	    b->brokers, err);
	rd_kafka_conf_destroy(conf);
	return (NULL);
}

/* ------------------------------------------------------------ produce */

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
	struct kpub *p = rkm->_private;
	struct kbp *b = opaque;
	char why[300];

	(void)rk;
	if (p == NULL)
		return;
	if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(why, sizeof(why), "kafka did not confirm the message: "
		    "%s", rd_kafka_err2str(rkm->err));
		b->host->counter_add(b->ctx,
		    "parley_kafka_publish_failed_total", NULL, 1);
		p->cb(p->arg, -1, 0, why);
	} else {
		if (b->all_down || b->ready == 0) {
			b->all_down = 0;
			if (b->nparts > 0)
				ready_set(b, 1, NULL);
		}
		b->host->counter_add(b->ctx, "parley_kafka_published_total",
		    NULL, 1);
		p->cb(p->arg, 0, (uint64_t)rkm->offset + 1, NULL);
	}
	free(p);
}

static void
serve_prod(struct kq *q)
{
	/* delivery reports and errors; each poll serves what is queued */
	rd_kafka_poll(q->rk, 0);
}

static int32_t
room_partition(struct kbp *b, const char *room)
{
	return (rd_kafka_msg_partitioner_consistent(b->prkt, room,
	    strlen(room), b->nparts, NULL, NULL));
}

static void
kb_publish(void *state, const struct parley_msg *msg, parley_publish_cb cb,
    void *arg)
{
	struct kbp *b = state;
	struct kpub *p;
	rd_kafka_headers_t *h;
	rd_kafka_resp_err_t err;
	char ts[24], ev[16], why[600];

	if (msg->room == NULL || msg->id == NULL || msg->sender == NULL ||
	    (msg->body == NULL && msg->body_len > 0)) {
		cb(arg, -1, 0, "malformed message");
		return;
	}
	if (b->nparts == 0 || b->all_down) {
		snprintf(why, sizeof(why), "kafka backplane unavailable: %s "
		    "(not stored, try again later)", b->why[0] ? b->why :
		    "no topic metadata yet");
		cb(arg, -1, 0, why);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (h = rd_kafka_headers_new(8)) == NULL) {
		free(p);
		cb(arg, -1, 0, "out of memory");
		return;
	}
	p->b = b;
	p->cb = cb;
	p->arg = arg;
	snprintf(ts, sizeof(ts), "%lld", (long long)msg->timestamp_ms);
	snprintf(ev, sizeof(ev), "%d", msg->event);
	rd_kafka_header_add(h, "id", -1, msg->id, -1);
	rd_kafka_header_add(h, "sender", -1, msg->sender, -1);
	rd_kafka_header_add(h, "ts", -1, ts, -1);
	rd_kafka_header_add(h, "event", -1, ev, -1);
	if (msg->content_type != NULL)
		rd_kafka_header_add(h, "ctype", -1, msg->content_type, -1);
	if (msg->ref_id != NULL)
		rd_kafka_header_add(h, "ref", -1, msg->ref_id, -1);
	if (msg->media_id != NULL)
		rd_kafka_header_add(h, "media", -1, msg->media_id, -1);
#ifdef PARLEY_MSG_MODERATED
	if (msg->flags != 0) {
		char fl[16];

		snprintf(fl, sizeof(fl), "%u", msg->flags);
		rd_kafka_header_add(h, "flags", -1, fl, -1);
	}
#endif
	err = rd_kafka_producev(b->prod,
	    RD_KAFKA_V_RKT(b->prkt),
	    RD_KAFKA_V_PARTITION(room_partition(b, msg->room)),
	    RD_KAFKA_V_KEY(msg->room, strlen(msg->room)),
	    RD_KAFKA_V_VALUE((void *)(msg->body != NULL ? msg->body : ""),
	    msg->body_len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_OPAQUE(p),
	    RD_KAFKA_V_END);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_headers_destroy(h);	/* not taken on failure */
		free(p);
		snprintf(why, sizeof(why), "kafka refused the message: %s",
		    rd_kafka_err2str(err));
		cb(arg, -1, 0, why);
	}
}

/* ------------------------------------------------------------ consume */

static void
commit_dirty(struct kbp *b, int async)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_t *rk = b->shared ? b->per : b->fan;
	rd_kafka_resp_err_t err;
	int i, n = 0;

	if (rk == NULL || b->parts == NULL)
		return;
	for (i = 0; i < b->nparts; i++)
		if (b->parts[i].trk.dirty && b->parts[i].trk.owned)
			n++;
	if (n == 0 || (l = rd_kafka_topic_partition_list_new(n)) == NULL)
		return;
	for (i = 0; i < b->nparts; i++) {
		struct track *t = &b->parts[i].trk;

		if (!t->dirty || !t->owned)
			continue;
		rd_kafka_topic_partition_list_add(l, b->topic, i)->offset =
		    t->commit;
		t->dirty = 0;
	}
	err = rd_kafka_commit(rk, l, async);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
	    err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		b->host->log(b->ctx, PARLEY_LOG_WARN, "commit: %s (records are "
		    "stored again after a restart: a no-op)",
		    rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
}

static void
commit_tick(void *arg)
{
	commit_dirty(arg, 1);
}

static void
on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	struct kbp *b = opaque;

	(void)rk;
	(void)offsets;
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
	    err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		b->host->log(b->ctx, PARLEY_LOG_WARN, "offset commit failed: "
		    "%s (records may be stored again: a no-op)",
		    rd_kafka_err2str(err));
}

/* Shared mode: pause/resume the persist consumer around max_inflight. */
static void
per_flow(struct kbp *b)
{
	rd_kafka_topic_partition_list_t *l;

	if (!b->shared || b->per == NULL)
		return;
	if (!b->per_paused && (long long)b->outstanding < b->max_inflight)
		return;
	if (b->per_paused && (long long)b->outstanding > b->max_inflight / 2)
		return;
	if (rd_kafka_assignment(b->per, &l) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (b->per_paused) {
		rd_kafka_resume_partitions(b->per, l);
		b->per_paused = 0;
	} else {
		rd_kafka_pause_partitions(b->per, l);
		b->per_paused = 1;
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Hand one record to the host for storage. */
static void
persist_rec(struct kbp *b, const struct rec *r, int32_t part, int64_t off)
{
	struct track *t = &b->parts[part].trk;

	if (!t->owned)
		return;
	if (track_add(t, off) == -1) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "persist: out of memory "
		    "(the record is stored again after a restart)");
		return;
	}
	b->outstanding++;
	b->host->persist(b->ctx, &r->m, ((uint64_t)part << KB_OFFSET_BITS) |
	    (uint64_t)off);
	per_flow(b);
}

static void
kb_persist_ack(void *state, const uint64_t *tokens, size_t n)
{
	struct kbp *b = state;
	int32_t part;
	size_t i;

	for (i = 0; i < n; i++) {
		part = (int32_t)(tokens[i] >> KB_OFFSET_BITS);
		if (part < 0 || part >= b->nparts)
			continue;
		if (track_ack(&b->parts[part].trk,
		    (int64_t)(tokens[i] & KB_OFFSET_MASK)) &&
		    b->outstanding > 0)
			b->outstanding--;
	}
	per_flow(b);
}

/* Fan-out of one record to local subscribers, duplicates dropped. */
static void
deliver_rec(struct kbp *b, const struct rec *r, int32_t part)
{
	if (seen_check(&b->parts[part].seen, hash_id(r->id,
	    strlen(r->id)))) {
		b->host->counter_add(b->ctx, "parley_kafka_duplicates_total",
		    NULL, 1);
		return;
	}
	if (room_find(b, r->room, strlen(r->room)) == NULL)
		return;
	b->host->deliver(b->ctx, &r->m);
	b->host->counter_add(b->ctx, "parley_kafka_delivered_total", NULL, 1);
}

static void
consumed(struct kbp *b, rd_kafka_message_t *rkm, int fanout, int persist)
{
	struct rec r;

	if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			b->host->log(b->ctx, PARLEY_LOG_WARN, "consume: %s",
			    rd_kafka_message_errstr(rkm));
		return;
	}
	if (rkm->partition < 0 || rkm->partition >= b->nparts)
		return;
	if (rec_decode(rkm, &r) == -1) {
		b->host->log(b->ctx, PARLEY_LOG_WARN, "partition %d offset "
		    "%lld: not a Parley record, skipped", (int)rkm->partition,
		    (long long)rkm->offset);
		if (persist && b->parts[rkm->partition].trk.owned &&
		    track_add(&b->parts[rkm->partition].trk,
		    rkm->offset) == 0)
			(void)track_ack(&b->parts[rkm->partition].trk,
			    rkm->offset);
		return;
	}
	if (persist)
		persist_rec(b, &r, rkm->partition, rkm->offset);
	if (fanout)
		deliver_rec(b, &r, rkm->partition);
}

static void
serve_consumer(struct kq *q, int fanout, int persist)
{
	rd_kafka_message_t *rkm;
	int n;

	for (n = 0; n < KB_POLL_BUDGET; n++) {
		if (q->b->stopping || (rkm = rd_kafka_consumer_poll(q->rk,
		    0)) == NULL)
			return;
		consumed(q->b, rkm, fanout, persist);
		rd_kafka_message_destroy(rkm);
	}
	kq_yield(q);
}

static void
serve_fan(struct kq *q)
{
	/* local storage: this consumer persists everything too */
	serve_consumer(q, 1, !q->b->shared);
}

static void
serve_per(struct kq *q)
{
	serve_consumer(q, 0, 1);
}

/* Shared mode: partitions move between instances. */
static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kbp *b = opaque;
	int i, p;

	if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
		commit_dirty(b, 0);	/* before someone else takes over */
	for (i = 0; i < parts->cnt; i++) {
		p = parts->elems[i].partition;
		if (p < 0 || p >= b->nparts)
			continue;
		if (b->outstanding >= b->parts[p].trk.n)
			b->outstanding -= b->parts[p].trk.n;
		track_reset(&b->parts[p].trk);
		b->parts[p].trk.owned =
		    err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
	}
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		b->host->log(b->ctx, PARLEY_LOG_INFO, "persist group %s: this "
		    "instance stores %d of %d partitions", b->group,
		    parts->cnt, b->nparts);
		rd_kafka_assign(rk, parts);
	} else {
		rd_kafka_assign(rk, NULL);
	}
	b->per_paused = 0;
}

/* Create the consumers once the partition count is known. */
static int
consumers_start(struct kbp *b)
{
	const char *fankv[] = {
		"group.id", NULL,
		"enable.auto.commit", "false",
		"enable.auto.offset.store", "false",
		"auto.offset.reset", NULL,
		NULL
	};
	const char *perkv[] = {
		"group.id", NULL,
		"enable.auto.commit", "false",
		"enable.auto.offset.store", "false",
		"auto.offset.reset", NULL,
		/* on_rebalance does eager (full) assignments */
		"partition.assignment.strategy", "range,roundrobin",
		NULL
	};
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_conf_t *conf;
	char err[512];
	int i;

	fankv[1] = b->shared ? b->fangroup : b->group;
	fankv[7] = b->shared ? "latest" : (b->from_oldest ? "earliest" :
	    "latest");
	if ((conf = conf_for(b, ROLE_CONSUMER, fankv)) == NULL)
		return (-1);
	rd_kafka_conf_set_opaque(conf, b);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
	if ((b->fan = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err,
	    sizeof(err))) == NULL) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "consumer: %s", err);
		return (-1);
	}
	rd_kafka_poll_set_consumer(b->fan);
	if (kq_open(b, &b->fanq, "fan-out", b->fan,
	    rd_kafka_queue_get_consumer(b->fan), serve_fan) == -1)
		return (-1);
	if ((l = rd_kafka_topic_partition_list_new(b->nparts)) == NULL)
		return (-1);
	for (i = 0; i < b->nparts; i++) {
		rd_kafka_topic_partition_list_add(l, b->topic, i)->offset =
		    b->shared ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_STORED;
		if (!b->shared)
			b->parts[i].trk.owned = 1;
	}
	if (rd_kafka_assign(b->fan, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_topic_partition_list_destroy(l);
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "cannot assign the "
		    "partitions of %s", b->topic);
		return (-1);
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (!b->shared)
		return (0);

	perkv[1] = b->group;
	perkv[7] = b->from_oldest ? "earliest" : "latest";
	if ((conf = conf_for(b, ROLE_CONSUMER, perkv)) == NULL)
		return (-1);
	rd_kafka_conf_set_opaque(conf, b);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	if ((b->per = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err,
	    sizeof(err))) == NULL) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "persist consumer: %s",
		    err);
		return (-1);
	}
	rd_kafka_poll_set_consumer(b->per);
	if (kq_open(b, &b->perq, "persist", b->per,
	    rd_kafka_queue_get_consumer(b->per), serve_per) == -1)
		return (-1);
	if ((l = rd_kafka_topic_partition_list_new(1)) == NULL)
		return (-1);
	rd_kafka_topic_partition_list_add(l, b->topic,
	    RD_KAFKA_PARTITION_UA);
	if (rd_kafka_subscribe(b->per, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_topic_partition_list_destroy(l);
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "cannot subscribe to %s",
		    b->topic);
		return (-1);
	}
	rd_kafka_topic_partition_list_destroy(l);
	return (0);
}

/* ------------------------------------------------------------ metadata */

struct meta {
	struct kbp *b;
	int nparts;		/* -1 error */
	char err[400];
};

static void
meta_work(void *arg)
{
	struct meta *m = arg;
	struct kbp *b = m->b;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;

	m->nparts = -1;
	err = rd_kafka_metadata(b->prod, 0, b->prkt, &md,
	    (int)b->meta_timeout_ms);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(m->err, sizeof(m->err), "kafka %.200s: metadata: %s",
		    b->brokers, rd_kafka_err2str(err));
		return;
	}
	if (md->topic_cnt < 1 || md->topics[0].err ==
	    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	    md->topics[0].partition_cnt == 0)
		snprintf(m->err, sizeof(m->err), "kafka: topic %.100s does not "
		    "exist: create it (with the partition count you want; "
		    "contrib/kafka-mock -t %.100s:N for the mock cluster)",
		    b->topic, b->topic);
	else if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(m->err, sizeof(m->err), "kafka: topic %.100s: %s",
		    b->topic, rd_kafka_err2str(md->topics[0].err));
	else
		m->nparts = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
}

static void
meta_retry(void *arg)
{
	struct kbp *b = arg;

	b->meta_timer = NULL;	/* one-shot: gone once fired */
	meta_start(b);
}

static void
meta_done(void *arg)
{
	struct meta *m = arg;
	struct kbp *b = m->b;
	char why[512];
	int i;

	b->meta_busy = 0;
	if (b->stopping) {
		free(m);
		return;
	}
	if (m->nparts < 0) {
		ready_set(b, 0, m->err);
		goto retry;
	}
	if (b->nparts == 0) {
		if (b->partitions_cfg > 0 && m->nparts != b->partitions_cfg) {
			snprintf(why, sizeof(why), "kafka: topic %s has %d "
			    "partitions but [kafka] partitions = %lld: fix one "
			    "of them (rooms map to partitions by count)",
			    b->topic, m->nparts, b->partitions_cfg);
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s", why);
			ready_set(b, 0, why);
			goto retry;
		}
		if ((b->parts = calloc((size_t)m->nparts,
		    sizeof(*b->parts))) == NULL)
			goto nomem;
		for (i = 0; i < m->nparts; i++) {
			if (seen_init(&b->parts[i].seen,
			    (size_t)b->dedupe_window) == -1)
				goto nomem;
			track_reset(&b->parts[i].trk);
		}
		b->nparts = m->nparts;
		if (consumers_start(b) == -1) {
			ready_set(b, 0, "kafka: cannot start the consumers "
			    "(see the log)");
			free(m);
			return;	/* configuration problem: no retry */
		}
		b->host->log(b->ctx, PARLEY_LOG_INFO, "topic %s: %d partitions;"
		    " %s", b->topic, b->nparts, b->shared ? "fan-out consumer "
		    "at the end, persist group joins" : "one consumer fans out "
		    "and persists from the committed offsets");
	} else if (m->nparts != b->nparts) {
		snprintf(why, sizeof(why), "kafka: topic %s now has %d "
		    "partitions, it had %d at start: rooms would move between "
		    "partitions; restart every instance", b->topic, m->nparts,
		    b->nparts);
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s", why);
		ready_set(b, 0, why);
		goto retry;
	}
	b->all_down = 0;
	ready_set(b, 1, NULL);
	free(m);
	return;
nomem:
	b->host->log(b->ctx, PARLEY_LOG_ERROR, "out of memory");
retry:
	free(m);
	if (b->meta_timer == NULL)
		b->meta_timer = b->host->timer_add(b->ctx, 1000, 0, meta_retry,
		    b);
}

/* Ask for the topic's metadata on a worker (it blocks). */
static void
meta_start(struct kbp *b)
{
	struct meta *m;

	if (b->meta_busy || b->meta_timer != NULL || b->stopping)
		return;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return;
	m->b = b;
	b->meta_busy = 1;
	if (b->host->submit(b->ctx, meta_work, meta_done, m) == -1) {
		b->meta_busy = 0;
		free(m);
	}
}

/* ------------------------------------------------------------ read_range */

struct krange {
	struct kbp *b;
	char room[PARLEY_ROOM_MAX + 1];
	uint64_t after;
	size_t limit;
	int32_t part;
	parley_range_cb cb;
	void *arg;
	int status;
	struct parley_range res;
	struct rec *recs;	/* res.msgs point into these */
	struct parley_msg *msgs;
	char **bodies;
	size_t n, cap;
	char err[300];
};

static int
range_keep(struct krange *k, const struct rec *r)
{
	size_t cap;
	void *v;
	char *body;

	if (k->n == k->cap) {
		cap = k->cap ? k->cap * 2 : 64;
		if ((v = realloc(k->recs, cap * sizeof(*k->recs))) == NULL)
			return (-1);
		k->recs = v;
		if ((v = realloc(k->bodies, cap * sizeof(*k->bodies))) == NULL)
			return (-1);
		k->bodies = v;
		k->cap = cap;
	}
	if ((body = malloc(r->m.body_len + 1)) == NULL)
		return (-1);
	memcpy(body, r->m.body, r->m.body_len);
	body[r->m.body_len] = '\0';
	k->recs[k->n] = *r;
	k->bodies[k->n] = body;
	k->n++;
	return (0);
}

static void
range_work(void *arg)
{
	struct krange *k = arg;
	struct kbp *b = k->b;
	const char *kv[] = {
		"group.id", NULL,
		"enable.auto.commit", "false",
		"enable.auto.offset.store", "false",
		"enable.partition.eof", "true",
		NULL
	};
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_message_t *rkm;
	struct seen seen;
	struct rec r;
	int64_t lo, hi, start, deadline, scanned = 0;
	char err[512];
	int done = 0;

	k->status = -1;
	kv[1] = b->fangroup;
	memset(&seen, 0, sizeof(seen));
	if ((conf = conf_for(b, ROLE_CONSUMER, kv)) == NULL) {
		snprintf(k->err, sizeof(k->err), "bad configuration");
		return;
	}
	rd_kafka_conf_set_opaque(conf, b);
	rd_kafka_conf_set_log_cb(conf, on_log);
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err,
	    sizeof(err))) == NULL) {
		snprintf(k->err, sizeof(k->err), "%.200s", err);
		return;
	}
	if (rd_kafka_query_watermark_offsets(rk, b->topic, k->part, &lo, &hi,
	    (int)b->range_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(k->err, sizeof(k->err), "watermarks of partition %d "
		    "unavailable", (int)k->part);
		goto out;
	}
	/* position p is offset p - 1: we want offsets >= after */
	start = (int64_t)k->after;
	k->res.first_position = (uint64_t)lo + 1;
	k->res.last_position = 0;
	k->res.complete = start >= lo;
	if (start < lo)
		start = lo;
	if (start >= hi) {
		k->status = 0;
		goto out;
	}
	if (seen_init(&seen, 4096) == -1 ||
	    (l = rd_kafka_topic_partition_list_new(1)) == NULL) {
		snprintf(k->err, sizeof(k->err), "out of memory");
		goto out;
	}
	rd_kafka_topic_partition_list_add(l, b->topic, k->part)->offset =
	    start;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	deadline = b->host->now_ms() + b->range_timeout_ms;
	while (!done && b->host->now_ms() < deadline) {
		if ((rkm = rd_kafka_consumer_poll(rk, 100)) == NULL)
			continue;
		if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			done = 1;
		else if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    rkm->partition == k->part) {
			scanned++;
			if (rkm->offset >= hi - 1)
				done = 1;
			if (rec_decode(rkm, &r) == 0 &&
			    strcmp(r.room, k->room) == 0 &&
			    !seen_check(&seen, hash_id(r.id, strlen(r.id)))) {
				if (range_keep(k, &r) == -1) {
					rd_kafka_message_destroy(rkm);
					snprintf(k->err, sizeof(k->err),
					    "out of memory");
					goto out;
				}
				if (k->n >= k->limit)
					done = 2;
			}
			if (scanned >= b->range_scan_max && !done)
				break;
		}
		rd_kafka_message_destroy(rkm);
	}
	if (!done)
		k->res.complete = 0;	/* stopped early: cannot prove */
	if (done == 1 && k->n > 0)
		k->res.last_position = k->recs[k->n - 1].m.position;
	k->status = 0;
out:
	seen_free(&seen);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

static void
range_done(void *arg)
{
	struct krange *k = arg;
	size_t i;

	if (k->status == 0 && k->n > 0 &&
	    (k->msgs = calloc(k->n, sizeof(*k->msgs))) == NULL)
		k->status = -1;
	if (k->status == 0) {
		for (i = 0; i < k->n; i++) {
			struct rec *r = &k->recs[i];

			k->msgs[i] = r->m;
			k->msgs[i].room = r->room;
			k->msgs[i].id = r->id;
			k->msgs[i].sender = r->sender;
			k->msgs[i].content_type = r->m.content_type ?
			    r->ctype : NULL;
			k->msgs[i].ref_id = r->m.ref_id ? r->ref : NULL;
			k->msgs[i].media_id = r->m.media_id ? r->media : NULL;
			k->msgs[i].body = k->bodies[i];
		}
		k->res.msgs = k->msgs;
		k->res.n = k->n;
		k->cb(k->arg, 0, &k->res);
	} else {
		k->b->host->log(k->b->ctx, PARLEY_LOG_WARN, "room %s: range "
		    "read: %s", k->room, k->err);
		k->cb(k->arg, -1, NULL);
	}
	for (i = 0; i < k->n; i++)
		free(k->bodies[i]);
	free(k->bodies);
	free(k->recs);
	free(k->msgs);
	free(k);
}

static void
kb_read_range(void *state, const char *room, uint64_t after, size_t limit,
    parley_range_cb cb, void *arg)
{
	struct kbp *b = state;
	struct krange *k;

	if (b->nparts == 0 || (k = calloc(1, sizeof(*k))) == NULL) {
		cb(arg, -1, NULL);
		return;
	}
	k->b = b;
	snprintf(k->room, sizeof(k->room), "%s", room);
	k->after = after;
	k->limit = limit > 0 ? limit : 1;
	k->part = room_partition(b, room);
	k->cb = cb;
	k->arg = arg;
	if (b->host->submit(b->ctx, range_work, range_done, k) == -1) {
		free(k);
		cb(arg, -1, NULL);
	}
}

/* ------------------------------------------------------------ init/fini */

/*
 * Read and check the [kafka] section into b (host and ctx set): what init
 * and check (parleyd -t) share, so -t checks every key init reads.  Sets
 * brokers, topic, the numbers, from_oldest, groupcfg (the configured name:
 * init adds the instance), client_id and pass, and returns the producer's
 * configuration in *confp (every kafka.* key set: librdkafka checks names
 * and values), which the caller owns.  Connects to nothing.  Returns 0, or
 * -1 after logging; kb_config_free() frees what it set either way.
 */
static int
kb_config(struct kbp *b, rd_kafka_conf_t **confp)
{
	const struct parley_host *host = b->host;
	struct parley_ctx *ctx = b->ctx;
	const char *const *keys;
	const char *from;
	size_t nkeys, i, n;
	const char *prodkv[] = {
		"enable.idempotence", "true",
		"acks", "all",
		NULL
	};

	*confp = NULL;
	b->brokers = host->config_get(ctx, "brokers", "127.0.0.1:9092");
	b->topic = host->config_get(ctx, "topic", "parley");
	if (b->brokers[0] == '\0' || b->topic[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "[kafka] brokers and topic "
		    "must not be empty");
		return (-1);
	}
	if (host->config_int(ctx, "partitions", 0, 0, 100000,
	    &b->partitions_cfg) == -1 ||
	    host->config_int(ctx, "dedupe_window", 4096, 0, 10000000,
	    &b->dedupe_window) == -1 ||
	    host->config_int(ctx, "persist_max_inflight", 20000, 1, 100000000,
	    &b->max_inflight) == -1 ||
	    host->config_int(ctx, "commit_interval_ms", 200, 1, 600000,
	    &b->commit_interval_ms) == -1 ||
	    host->config_int(ctx, "range_timeout_ms", 5000, 100, 600000,
	    &b->range_timeout_ms) == -1 ||
	    host->config_int(ctx, "range_scan_max", 100000, 1, 1000000000,
	    &b->range_scan_max) == -1 ||
	    host->config_int(ctx, "metadata_timeout_ms", 3000, 100, 600000,
	    &b->meta_timeout_ms) == -1)
		return (-1);
	from = host->config_get(ctx, "persist_from", "oldest");
	if (strcmp(from, "oldest") == 0)
		b->from_oldest = 1;
	else if (strcmp(from, "newest") != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "[kafka] persist_from = %s: "
		    "expected oldest or newest", from);
		return (-1);
	}
	b->groupcfg = host->config_get(ctx, "group", "parley-persist");
	if (b->groupcfg[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "[kafka] group is empty");
		return (-1);
	}
	if ((b->client_id = strdup(host->instance_id(ctx))) == NULL)
		goto nomem;

	/* kafka.* keys, passed through to every client */
	keys = host->config_keys(ctx, &nkeys);
	if ((b->pass = calloc(2 * nkeys + 1, sizeof(*b->pass))) == NULL)
		goto nomem;
	for (i = 0, n = 0; i < nkeys; i++) {
		if (strncmp(keys[i], "kafka.", 6) != 0 || keys[i][6] == '\0')
			continue;
		b->pass[n++] = keys[i] + 6;
		b->pass[n++] = host->config_get(ctx, keys[i], "");
	}
	/* properties this plugin depends on win over kafka.* */
	if ((*confp = conf_for(b, ROLE_PRODUCER, prodkv)) == NULL)
		return (-1);
	return (0);
nomem:
	host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
	return (-1);
}

/* Free what kb_config() set. */
static void
kb_config_free(struct kbp *b)
{
	free(b->pass);
	free(b->client_id);
	b->pass = NULL;
	b->client_id = NULL;
}

static void kb_fini(void *state);

static int
kb_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	rd_kafka_conf_t *conf;
	struct kbp *b;
	char err[512];
	size_t n;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	b->host = host;
	b->ctx = ctx;
	b->ready = -1;
	if (kb_config(b, &conf) == -1)
		goto fail;
	b->shared = host->storage_shared(ctx) == 1;
	n = strlen(b->groupcfg) + strlen(host->instance_id(ctx)) + 16;
	if ((b->group = malloc(n)) == NULL || (b->fangroup = malloc(n)) ==
	    NULL) {
		rd_kafka_conf_destroy(conf);
		goto nomem;
	}
	if (b->shared)
		snprintf(b->group, n, "%s", b->groupcfg);
	else {
		snprintf(b->group, n, "%s-%s", b->groupcfg,
		    host->instance_id(ctx));
	}
	snprintf(b->fangroup, n, "parley-fanout-%s", host->instance_id(ctx));

	rd_kafka_conf_set_opaque(conf, b);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	if ((b->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err,
	    sizeof(err))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "producer: %s", err);
		goto fail;
	}
	if ((b->prkt = rd_kafka_topic_new(b->prod, b->topic, NULL)) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "topic %s: %s", b->topic,
		    rd_kafka_err2str(rd_kafka_last_error()));
		goto fail;
	}
	if (kq_open(b, &b->prodq, "producer", b->prod,
	    rd_kafka_queue_get_main(b->prod), serve_prod) == -1)
		goto fail;
	if ((b->buckets = calloc(KB_MINBUCKETS, sizeof(*b->buckets))) == NULL)
		goto nomem;
	b->nbuckets = KB_MINBUCKETS;
	if ((b->commit_timer = host->timer_add(ctx,
	    (unsigned)b->commit_interval_ms, 1, commit_tick, b)) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "cannot add a timer");
		goto fail;
	}
	host->log(ctx, PARLEY_LOG_INFO, "kafka %s topic %s, persist group %s "
	    "(%s storage), librdkafka %s", b->brokers, b->topic, b->group,
	    b->shared ? "shared" : "local", rd_kafka_version_str());
	snprintf(b->why, sizeof(b->why), "kafka %s: fetching topic metadata",
	    b->brokers);
	host->set_ready(ctx, 0, b->why);
	b->ready = 0;
	meta_start(b);
	*state = b;
	return (0);
nomem:
	host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
fail:
	kb_fini(b);
	return (-1);
}

static void
kb_fini(void *state)
{
	struct kbp *b = state;
	struct kroom *r, *next;
	size_t i;
	int k;

	if (b == NULL)
		return;
	b->stopping = 1;
	if (b->meta_timer != NULL)
		b->host->timer_del(b->meta_timer);
	if (b->commit_timer != NULL)
		b->host->timer_del(b->commit_timer);
	/* what the host acknowledged is committed (asynchronously: a dead
	 * cluster must not hold up the exit); the rest comes again */
	commit_dirty(b, 1);
	if (b->per != NULL) {
		kq_close(&b->perq);
		rd_kafka_consumer_close(b->per);
		rd_kafka_destroy(b->per);
	}
	if (b->fan != NULL) {
		kq_close(&b->fanq);
		rd_kafka_consumer_close(b->fan);
		rd_kafka_destroy(b->fan);
	}
	if (b->prod != NULL) {
		/* unsettled publishes fail (exactly one callback each) */
		rd_kafka_purge(b->prod, RD_KAFKA_PURGE_F_QUEUE |
		    RD_KAFKA_PURGE_F_INFLIGHT);
		kq_close(&b->prodq);
		rd_kafka_poll(b->prod, 0);
		for (k = 0; k < 50 && rd_kafka_outq_len(b->prod) > 0; k++)
			rd_kafka_poll(b->prod, 10);
		if (b->prkt != NULL)
			rd_kafka_topic_destroy(b->prkt);
		rd_kafka_destroy(b->prod);
	}
	kb_config_free(b);
	if (b->parts != NULL) {
		for (k = 0; k < b->nparts; k++) {
			seen_free(&b->parts[k].seen);
			free(b->parts[k].trk.off);
			free(b->parts[k].trk.acked);
		}
		free(b->parts);
	}
	if (b->buckets != NULL)
		for (i = 0; i < b->nbuckets; i++)
			for (r = b->buckets[i]; r != NULL; r = next) {
				next = r->next;
				free(r);
			}
	free(b->buckets);
	free(b->group);
	free(b->fangroup);
	free(b);
}

/* librdkafka's log during check: that the handle has no brokers is the
 * point there, not news */
static void
on_check_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
	if (strstr(buf, "bootstrap.servers") == NULL)
		on_log(rk, level, fac, buf);
}

/*
 * parleyd -t: properties that are each valid but conflict (say
 * max.in.flight above 5 with idempotence) are refused only by
 * rd_kafka_new.  Make the handle with no bootstrap servers, so it connects
 * to nothing, and destroy it at once (its threads end with it).  Takes
 * conf.  0, or -1 after logging what a start would say.
 */
static int
kb_check_handle(struct kbp *b, rd_kafka_conf_t *conf, rd_kafka_type_t type,
    const char *what)
{
	char err[512];
	rd_kafka_t *rk;

	rd_kafka_conf_set_opaque(conf, b);
	rd_kafka_conf_set_log_cb(conf, on_check_log);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", "", err,
	    sizeof(err)) != RD_KAFKA_CONF_OK ||
	    (rk = rd_kafka_new(type, conf, err, sizeof(err))) == NULL) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s: %s", what, err);
		rd_kafka_conf_destroy(conf);
		return (-1);
	}
	rd_kafka_destroy(rk);	/* it owned conf */
	return (0);
}

/* parleyd -t: read and check the [kafka] section, connect to nothing. */
static int
kb_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	rd_kafka_conf_t *conf;
	struct kbp *b;
	int rv;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	b->host = host;
	b->ctx = ctx;
	/* kb_config returns the producer's configuration only on success */
	if ((rv = kb_config(b, &conf)) == 0)
		rv = kb_check_handle(b, conf, RD_KAFKA_PRODUCER, "producer");
	if (rv == 0)	/* conf_for logs why it fails */
		rv = (conf = conf_for(b, ROLE_CONSUMER, NULL)) == NULL ? -1 :
		    kb_check_handle(b, conf, RD_KAFKA_CONSUMER, "consumer");
	kb_config_free(b);
	free(b);
	return (rv);
}

static const struct parley_backplane_ops kb_ops = {
	.size = sizeof(struct parley_backplane_ops),
	.flags = PARLEY_BP_DURABLE | PARLEY_BP_SHARED | PARLEY_BP_PERSIST_FEED,
	.publish = kb_publish,
	.watch_room = kb_watch_room,
	.unwatch_room = kb_unwatch_room,
	.read_range = kb_read_range,
	.persist_ack = kb_persist_ack,
};

static const struct parley_plugin kb_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_BACKPLANE,
	.name = "kafka",
	.version = "1.0",
	.description = "Kafka backplane (shared, durable, persist feed)",
	.init = kb_init,
	.fini = kb_fini,
	.check = kb_check,
	.backplane = &kb_ops,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&kb_plugin);
}
