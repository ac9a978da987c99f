/*
 * redis.c - the "redis" backplane: Redis Streams (hiredis async on the core
 * loop), shared by every instance, durable, with a persist feed.
 *
 * Data layout (prefix = [redis] key_prefix, default "parley:"):
 *	<prefix>room:<name>	one stream per room: the room's history while
 *				retained, read by instances with local
 *				subscribers (fan-out) and by resumes
 *	<prefix>feed		one stream of every room message, read
 *				through a consumer group by the instances
 *				that persist (the persist feed)
 * A publish is one Lua script (EVALSHA): XADD to the feed with an
 * auto-generated id, then XADD of the same message to the room stream with
 * that very id, so ids are one global order and a room stream's ids only
 * grow.  The room entry also records "p", the id of the entry before it,
 * which lets a reader prove that nothing is missing after a position even
 * when older entries have been trimmed.
 *
 * Position: a stream id "ms-seq" is the room position (ms << 20) | seq.
 * Not dense (ids are global), always growing within a room.  An id with
 * seq > 2^20-1 (a million messages in one millisecond, or a clock far
 * behind) cannot be represented and the publish fails.
 *
 * Three connections, each with a job:
 *	command	the script, XRANGE/XINFO for resumes, XACK, XAUTOCLAIM,
 *		CLIENT UNBLOCK, PING
 *	fan-out	XREAD BLOCK over the streams of the rooms this instance has
 *		local subscribers for; re-issued when the set changes (the
 *		command connection CLIENT UNBLOCKs the waiting read)
 *	persist	XREADGROUP BLOCK on the feed in the persist group: shared
 *		"<group>" when the storage is shared (exactly one instance
 *		stores each message), "<group>-<instance_id>" when each
 *		instance has its own store (each stores everything)
 * hiredis 0.14 integrates through host->watch_add: the adapter below turns
 * its addRead/delRead/addWrite/delWrite/cleanup hooks into fd watches and
 * calls redisAsyncHandleRead/Write from them.  hiredis has no timeouts:
 * a repeating health timer fails a connection whose replies are late
 * (blocking reads get their BLOCK time on top), and connects are bounded
 * the same way.  Host names are resolved on a worker (getaddrinfo blocks).
 *
 * Outage: while the command connection is not ready a publish fails at once
 * ("redis backplane unavailable: ..."), so a client gets an ERROR and never
 * a RECEIPT for something not stored; a publish in flight when the
 * connection drops fails too (it may or may not have been stored: if it
 * was, it is delivered like any other).  Connections come back with
 * exponential backoff; /readyz says not ready until all three are set up.
 *
 * See doc/backplane.md for the keys, the trade-offs and the operations
 * side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>

#include <parley/plugin.h>

#define RB_SEQ_BITS 20
#define RB_SEQ_MAX ((1u << RB_SEQ_BITS) - 1)
#define RB_MINBUCKETS 64
#define RB_ACK_CHUNK 512	/* ids per XACK */
#define RB_HEALTH_MS 200
#define RB_PING_MS 2000
#define RB_PREFIX_MAX 200	/* [redis] key_prefix at most */

enum { C_CMD, C_FAN, C_PER, C_N };

enum cstate {
	C_DOWN,			/* waiting for the retry timer */
	C_RESOLVING,		/* getaddrinfo on a worker */
	C_CONNECTING,		/* TCP/unix connect in progress */
	C_SETUP,		/* AUTH/SELECT/role setup replies pending */
	C_READY
};

struct rbp;

/* One Redis connection and its hiredis event adapter. */
struct rconn {
	struct rbp *b;
	int role;
	const char *name;
	redisAsyncContext *ac;	/* NULL unless CONNECTING/SETUP/READY */
	enum cstate state;
	int fd;
	struct parley_watch *rw, *ww;
	struct parley_timer *retry;	/* backoff timer while DOWN */
	unsigned backoff_ms;
	int npending;		/* replies outstanding */
	int blocking;		/* one of them is a blocking read */
	int64_t progress_ms;	/* last reply, or first command after idle */
	int64_t started_ms;	/* connect attempt started */
	int setup_left;		/* setup replies still expected */
	int was_ready;		/* has been ready since the last log line */
	int resolving;		/* a resolve job is on a worker */
	char ip[INET6_ADDRSTRLEN];
	char err[256];		/* why it is down */
};

/* A room this instance reads for fan-out. */
struct wroom {
	struct wroom *next;	/* hash chain */
	uint32_t hash;
	int watched;		/* has local subscribers */
	int started;		/* last is the position to read after */
	int starting;		/* XREVRANGE for the start in flight */
	uint64_t last;		/* newest position delivered (or start) */
	char *key;		/* stream key */
	size_t keylen;
	char name[];
};

/* Set of outstanding persist tokens (open addressing, linear probing). */
struct tokset {
	uint64_t *v;		/* 0 = empty slot (0 is never a token) */
	size_t cap, n;
};

struct rbp {
	const struct parley_host *host;
	struct parley_ctx *ctx;

	/* configuration */
	char *hostname;		/* NULL with a unix socket */
	int port;
	char *sockpath;
	char *user, *password;
	long long db;
	char *prefix;
	char *feedkey;
	char *group;
	char *consumer;
	char *sha;		/* of the publish script, from SCRIPT LOAD */
	long long maxlen, feed_maxlen, max_age_ms;
	long long block_ms, connect_timeout_ms, command_timeout_ms;
	long long backoff_min_ms, backoff_max_ms;
	long long read_count, persist_count, max_inflight;
	long long claim_idle_ms, claim_interval_ms;
	long long wait_replicas, wait_timeout_ms;
	int shared;		/* storage shared: one group for all */
	int from_oldest;	/* a new group starts at the oldest entry */
	char where[300];	/* "redis 127.0.0.1:6379" for messages */

	struct rconn c[C_N];
	struct parley_timer *health;
	int ready;		/* last readiness told to the host */
	int why_kind;		/* 1 connection down, 2 catching up */
	int stopping;

	/* fan-out */
	struct wroom **buckets;
	size_t nbuckets, nrooms, nwatched;
	long long fan_client_id;	/* CLIENT ID of the fan-out conn. */
	int fan_inflight;	/* an XREAD is outstanding */
	int fan_dirty;		/* the watched set changed since it was sent */
	int unblock_inflight;
	struct parley_timer *fan_timer;	/* coalesces watch changes */

	/* persist feed */
	int per_phase;		/* 0 off, 1 own pending, 2 info, 3 live */
	char per_cursor[48];	/* own-pending cursor */
	int per_inflight;
	int per_known;		/* per_last is meaningful */
	int per_caught_up;	/* a live read returned < a full batch */
	size_t per_refed;	/* own pending entries fed again at start */
	uint64_t per_last;	/* every feed entry <= this has been fed */
	struct tokset out;	/* fed, not yet acknowledged */
	uint64_t *acks;		/* acknowledged, XACK not yet sent */
	size_t nacks, capacks;
	char claim_cursor[48];
	int claim_inflight;
	struct parley_timer *claim_timer;
};

/* One publish until its callback ran and every reply came back. */
struct pub {
	struct rbp *b;
	parley_publish_cb cb;
	void *arg;
	int nout;		/* replies outstanding */
	int settled;
	int retried;		/* EVAL after NOSCRIPT */
	int skip_waits;		/* WAIT replies to ignore */
	int have_pos;
	uint64_t pos;
	int argc;
	const char **argv;	/* argv[0..1] are EVALSHA sha, the rest args */
	size_t *argvlen;
	char *buf;		/* argv[2..] point into it */
};

/* One read_range: MULTI, XINFO STREAM, XRANGE, EXEC. */
struct rread {
	struct rbp *b;
	parley_range_cb cb;
	void *arg;
	uint64_t after;
	char room[PARLEY_ROOM_MAX + 1];
};

/*
 * The publish script.  KEYS[1] feed, KEYS[2] room stream.  ARGV: feed
 * maxlen, room maxlen (0 = no limit), max age in ms (0 = none), room name,
 * then field/value pairs.  Returns the id, or an error with nothing
 * written.
 */
static const char rb_script[] =
	"local fl = tonumber(ARGV[1])\n"
	"local rl = tonumber(ARGV[2])\n"
	"local age = tonumber(ARGV[3])\n"
	"local f = {}\n"
	"for i = 5, #ARGV do f[#f + 1] = ARGV[i] end\n"
	"local prev = '0-0'\n"
	"local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)\n"
	"if #last > 0 then\n"
	"  prev = last[1][1]\n"
	"elseif redis.call('EXISTS', KEYS[2]) == 1 then\n"
	"  local info = redis.call('XINFO', 'STREAM', KEYS[2])\n"
	"  for i = 1, #info, 2 do\n"
	"    if info[i] == 'last-generated-id' then prev = info[i + 1] end\n"
	"  end\n"
	"end\n"
	"local id\n"
	"if fl > 0 then\n"
	"  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', fl, '*', 'n',"
	" ARGV[4], unpack(f))\n"
	"else\n"
	"  id = redis.call('XADD', KEYS[1], '*', 'n', ARGV[4], unpack(f))\n"
	"end\n"
	"local ims, iseq = string.match(id, '^(%d+)-(%d+)$')\n"
	"local pms, pseq = string.match(prev, '^(%d+)-(%d+)$')\n"
	"ims = tonumber(ims); iseq = tonumber(iseq)\n"
	"pms = tonumber(pms); pseq = tonumber(pseq)\n"
	"if ims < pms or (ims == pms and iseq <= pseq) then\n"
	"  redis.call('XDEL', KEYS[1], id)\n"
	"  return redis.error_reply('PARLEY room stream ' .. KEYS[2] ..\n"
	"    ' is ahead of the feed (' .. prev .. ' >= ' .. id .. ')')\n"
	"end\n"
	"if rl > 0 then\n"
	"  redis.call('XADD', KEYS[2], 'MAXLEN', '~', rl, id, 'p', prev,"
	" unpack(f))\n"
	"else\n"
	"  redis.call('XADD', KEYS[2], id, 'p', prev, unpack(f))\n"
	"end\n"
	"if age > 0 and ims > age then\n"
	"  local minid = string.format('%d', ims - age)\n"
	"  redis.call('XTRIM', KEYS[2], 'MINID', '~', minid)\n"
	"  redis.call('XTRIM', KEYS[1], 'MINID', '~', minid)\n"
	"end\n"
	"return id\n";

static void conn_start(struct rconn *c);
static void conn_fail(struct rconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fan_kick(struct rbp *b);
static void fan_schedule(struct rbp *b);
static void per_kick(struct rbp *b);
static void acks_flush(struct rbp *b);
static void starts_resolve(struct rbp *b);

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

/*
 * Parse a stream id "ms-seq" (len bytes) into a position.  Returns 0, or -1
 * when it is malformed or seq does not fit in RB_SEQ_BITS.
 */
static int
id_parse(const char *s, size_t len, uint64_t *pos)
{
	uint64_t ms = 0, seq = 0;
	size_t i = 0;
	int digits = 0;

	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		if (ms > (UINT64_MAX >> RB_SEQ_BITS) / 10)
			return (-1);
		ms = ms * 10 + (uint64_t)(s[i] - '0');
	}
	if (digits == 0 || i == len || s[i] != '-')
		return (-1);
	for (i++, digits = 0; i < len && s[i] >= '0' && s[i] <= '9';
	    i++, digits++) {
		seq = seq * 10 + (uint64_t)(s[i] - '0');
		if (seq > RB_SEQ_MAX)
			return (-1);
	}
	if (digits == 0 || i != len ||
	    ms > (UINT64_MAX >> RB_SEQ_BITS))
		return (-1);
	*pos = (ms << RB_SEQ_BITS) | seq;
	return (0);
}

/* Format a position as a stream id into buf (>= 48 bytes). */
static void
id_format(uint64_t pos, char *buf, size_t len)
{
	snprintf(buf, len, "%llu-%llu",
	    (unsigned long long)(pos >> RB_SEQ_BITS),
	    (unsigned long long)(pos & RB_SEQ_MAX));
}

static int
reply_is(const redisReply *r, int type)
{
	return (r != NULL && r->type == type);
}

static int
reply_streq(const redisReply *r, const char *s)
{
	size_t n = strlen(s);

	return (r != NULL && (r->type == REDIS_REPLY_STRING ||
	    r->type == REDIS_REPLY_STATUS) && r->len == n &&
	    memcmp(r->str, s, n) == 0);
}

/* Copy a reply string into a NUL-terminated buffer. */
static void
reply_copy(const redisReply *r, char *buf, size_t len)
{
	size_t n;

	if (r == NULL || r->str == NULL || len == 0) {
		if (len > 0)
			buf[0] = '\0';
		return;
	}
	n = r->len < len - 1 ? r->len : len - 1;
	memcpy(buf, r->str, n);
	buf[n] = '\0';
}

/* ------------------------------------------------------------ token set */

static uint64_t
tok_hash(uint64_t t)
{
	t ^= t >> 33;
	t *= 0xff51afd7ed558ccdULL;
	t ^= t >> 33;
	return (t);
}

static int
tokset_has(const struct tokset *s, uint64_t t)
{
	size_t i;

	if (s->cap == 0)
		return (0);
	for (i = tok_hash(t) & (s->cap - 1); s->v[i] != 0;
	    i = (i + 1) & (s->cap - 1))
		if (s->v[i] == t)
			return (1);
	return (0);
}

static int tokset_add(struct tokset *s, uint64_t t);

static int
tokset_grow(struct tokset *s)
{
	struct tokset n = { NULL, s->cap ? s->cap * 2 : 1024, 0 };
	size_t i;

	if ((n.v = calloc(n.cap, sizeof(*n.v))) == NULL)
		return (-1);
	for (i = 0; i < s->cap; i++)
		if (s->v[i] != 0)
			(void)tokset_add(&n, s->v[i]);
	free(s->v);
	*s = n;
	return (0);
}

/* Returns 0 (added or present), or -1 out of memory. */
static int
tokset_add(struct tokset *s, uint64_t t)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap && tokset_grow(s) == -1)
		return (-1);
	for (i = tok_hash(t) & (s->cap - 1); s->v[i] != 0;
	    i = (i + 1) & (s->cap - 1))
		if (s->v[i] == t)
			return (0);
	s->v[i] = t;
	s->n++;
	return (0);
}

/* Remove t (backward-shift deletion, no tombstones). */
static void
tokset_del(struct tokset *s, uint64_t t)
{
	size_t i, j, k, mask = s->cap - 1;

	if (s->cap == 0)
		return;
	for (i = tok_hash(t) & mask; s->v[i] != t; i = (i + 1) & mask)
		if (s->v[i] == 0)
			return;
	s->v[i] = 0;
	s->n--;
	for (j = (i + 1) & mask; s->v[j] != 0; j = (j + 1) & mask) {
		k = tok_hash(s->v[j]) & mask;
		/* move v[j] into the hole unless its home lies in (i, j] */
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			s->v[i] = s->v[j];
			s->v[j] = 0;
			i = j;
		}
	}
}

/* ------------------------------------------------------------ rooms */

static struct wroom *
room_find(struct rbp *b, const char *name)
{
	struct wroom *r;
	uint32_t h = hash_name(name);

	for (r = b->buckets[h & (b->nbuckets - 1)]; r != NULL; r = r->next)
		if (r->hash == h && strcmp(r->name, name) == 0)
			return (r);
	return (NULL);
}

static void
room_grow(struct rbp *b)
{
	struct wroom **nb, *r, *next;
	size_t i, n = b->nbuckets * 2;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* chains just get longer */
	for (i = 0; i < b->nbuckets; i++) {
		for (r = b->buckets[i]; r != NULL; r = next) {
			next = r->next;
			r->next = nb[r->hash & (n - 1)];
			nb[r->hash & (n - 1)] = r;
		}
	}
	free(b->buckets);
	b->buckets = nb;
	b->nbuckets = n;
}

/* Returns the room, or NULL out of memory. */
static struct wroom *
room_add(struct rbp *b, const char *name)
{
	struct wroom *r;
	size_t len = strlen(name), plen = strlen(b->prefix);

	if (b->nrooms >= b->nbuckets)
		room_grow(b);
	if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
		return (NULL);
	r->keylen = plen + 5 + len;
	if ((r->key = malloc(r->keylen + 1)) == NULL) {
		free(r);
		return (NULL);
	}
	snprintf(r->key, r->keylen + 1, "%sroom:%s", b->prefix, name);
	memcpy(r->name, name, len + 1);
	r->hash = hash_name(name);
	r->next = b->buckets[r->hash & (b->nbuckets - 1)];
	b->buckets[r->hash & (b->nbuckets - 1)] = r;
	b->nrooms++;
	return (r);
}

static void
room_free(struct rbp *b, struct wroom *r)
{
	struct wroom **rp;

	for (rp = &b->buckets[r->hash & (b->nbuckets - 1)]; *rp != NULL;
	    rp = &(*rp)->next) {
		if (*rp == r) {
			*rp = r->next;
			break;
		}
	}
	b->nrooms--;
	free(r->key);
	free(r);
}

/* The room name of a room stream key, or NULL. */
static const char *
key_room(struct rbp *b, const redisReply *k, char *buf, size_t len)
{
	size_t plen = strlen(b->prefix);

	if (!reply_is(k, REDIS_REPLY_STRING) || k->len <= plen + 5 ||
	    k->len - plen - 5 >= len || memcmp(k->str, b->prefix, plen) != 0 ||
	    memcmp(k->str + plen, "room:", 5) != 0)
		return (NULL);
	memcpy(buf, k->str + plen + 5, k->len - plen - 5);
	buf[k->len - plen - 5] = '\0';
	return (buf);
}

/* ------------------------------------------------------------ messages */

/* Strings of one entry, NUL-terminated copies where the ABI needs them. */
struct entry {
	struct parley_msg m;
	char room[PARLEY_ROOM_MAX + 1];
	char id[PARLEY_ID_MAX + 1];
	char sender[PARLEY_LOGIN_MAX + 1];
	char ctype[256];
	char ref[PARLEY_ID_MAX + 1];
	char media[PARLEY_ID_MAX + 1];
	uint64_t prev;		/* "p": id of the entry before (room streams) */
	int has_room;
};

static long long
reply_ll(const redisReply *v)
{
	char buf[32];

	reply_copy(v, buf, sizeof(buf));
	return (strtoll(buf, NULL, 10));
}

/*
 * Decode one stream entry [id, [field, value, ...]] into e; the body points
 * into the reply.  Returns 0, or -1 (logged by the caller) when malformed.
 */
static int
entry_decode(const redisReply *ent, struct entry *e)
{
	const redisReply *f, *k, *v;
	size_t i;

	memset(e, 0, sizeof(*e));
	if (!reply_is(ent, REDIS_REPLY_ARRAY) || ent->elements != 2 ||
	    !reply_is(ent->element[0], REDIS_REPLY_STRING) ||
	    id_parse(ent->element[0]->str, ent->element[0]->len,
	    &e->m.position) == -1)
		return (-1);
	f = ent->element[1];
	if (!reply_is(f, REDIS_REPLY_ARRAY) || f->elements % 2 != 0)
		return (-1);
	e->m.body = "";
	for (i = 0; i + 1 < f->elements; i += 2) {
		k = f->element[i];
		v = f->element[i + 1];
		if (!reply_is(k, REDIS_REPLY_STRING) || k->len != 1 ||
		    !reply_is(v, REDIS_REPLY_STRING))
			continue;
		switch (k->str[0]) {
		case 'i':
			reply_copy(v, e->id, sizeof(e->id));
			break;
		case 's':
			reply_copy(v, e->sender, sizeof(e->sender));
			break;
		case 't':
			e->m.timestamp_ms = reply_ll(v);
			break;
		case 'e':
			e->m.event = (int)reply_ll(v);
			break;
		case 'c':
			reply_copy(v, e->ctype, sizeof(e->ctype));
			e->m.content_type = e->ctype;
			break;
		case 'b':
			e->m.body = v->str;
			e->m.body_len = v->len;
			break;
		case 'r':
			reply_copy(v, e->ref, sizeof(e->ref));
			e->m.ref_id = e->ref;
			break;
		case 'm':
			reply_copy(v, e->media, sizeof(e->media));
			e->m.media_id = e->media;
			break;
#ifdef PARLEY_MSG_MODERATED
		case 'f':
			e->m.flags = (unsigned)reply_ll(v);
			break;
#endif
		case 'n':
			reply_copy(v, e->room, sizeof(e->room));
			e->has_room = 1;
			break;
		case 'p':
			if (id_parse(v->str, v->len, &e->prev) == -1)
				e->prev = 0;
			break;
		}
	}
	if (e->id[0] == '\0' || e->sender[0] == '\0')
		return (-1);
	e->m.id = e->id;
	e->m.sender = e->sender;
	e->m.room = e->room;
	return (0);
}

/* ------------------------------------------------------------ readiness */

/*
 * Tell the host whether we are ready.  While not ready the reason is only
 * updated when its kind changes (a connection is down / the persist feed
 * catches up), so an outage logs one line, not one per retry.
 */
static void
ready_update(struct rbp *b)
{
	char why[512];
	int i, kind = 0;

	if (b->stopping)
		return;
	for (i = 0; i < C_N && kind == 0; i++) {
		if (b->c[i].state != C_READY) {
			snprintf(why, sizeof(why), "%s: %s connection: %s",
			    b->where, b->c[i].name, b->c[i].err[0] ?
			    b->c[i].err : "connecting");
			kind = 1;
		}
	}
	/*
	 * With a local store this instance holds only what it has been fed:
	 * until the feed is caught up, history and resumes here would miss
	 * messages, so the load balancer should not send clients yet.
	 */
	if (kind == 0 && !b->shared && !b->per_caught_up) {
		snprintf(why, sizeof(why), "%s: persist feed catching up "
		    "(group %s)", b->where, b->group);
		kind = 2;
	}
	if (kind == 0) {
		if (b->ready != 1)
			b->host->set_ready(b->ctx, 1, NULL);
		b->ready = 1;
		b->why_kind = 0;
		return;
	}
	if (b->ready != 0 || b->why_kind != kind)
		b->host->set_ready(b->ctx, 0, why);
	b->ready = 0;
	b->why_kind = kind;
}

/* ------------------------------------------------------------ adapter */

static void
ev_on_read(int fd, int what, void *arg)
{
	struct rconn *c = arg;

	(void)fd;
	(void)what;
	if (c->ac != NULL)
		redisAsyncHandleRead(c->ac);
}

static void
ev_on_write(int fd, int what, void *arg)
{
	struct rconn *c = arg;

	(void)fd;
	(void)what;
	if (c->ac != NULL)
		redisAsyncHandleWrite(c->ac);
}

static void
ev_add_read(void *arg)
{
	struct rconn *c = arg;

	if (c->rw == NULL && (c->rw = c->b->host->watch_add(c->b->ctx, c->fd,
	    PARLEY_WATCH_READ, ev_on_read, c)) == NULL)
		c->b->host->log(c->b->ctx, PARLEY_LOG_ERROR, "%s connection: "
		    "cannot watch fd %d (the health check will reconnect)",
		    c->name, c->fd);
}

static void
ev_del_read(void *arg)
{
	struct rconn *c = arg;

	if (c->rw != NULL) {
		c->b->host->watch_del(c->rw);
		c->rw = NULL;
	}
}

static void
ev_add_write(void *arg)
{
	struct rconn *c = arg;

	if (c->ww == NULL && (c->ww = c->b->host->watch_add(c->b->ctx, c->fd,
	    PARLEY_WATCH_WRITE, ev_on_write, c)) == NULL)
		c->b->host->log(c->b->ctx, PARLEY_LOG_ERROR, "%s connection: "
		    "cannot watch fd %d (the health check will reconnect)",
		    c->name, c->fd);
}

static void
ev_del_write(void *arg)
{
	struct rconn *c = arg;

	if (c->ww != NULL) {
		c->b->host->watch_del(c->ww);
		c->ww = NULL;
	}
}

static void
ev_cleanup(void *arg)
{
	ev_del_read(arg);
	ev_del_write(arg);
}

/* ------------------------------------------------------------ commands */

/*
 * Every reply callback starts with this: count the reply, note progress.
 * Returns the connection; live is set when ac is still its current context
 * (replies of a context being torn down arrive as NULL with live 0).
 */
static struct rconn *
got_reply(redisAsyncContext *ac, int *live)
{
	struct rconn *c = ac->data;

	*live = c->ac == ac;
	if (*live) {
		if (c->npending > 0)
			c->npending--;
		c->progress_ms = c->b->host->now_ms();
	}
	return (c);
}

/*
 * Send a command.  Returns 0, or -1 when the connection cannot take it (fn
 * is not called then).
 */
static int
cmd_send(struct rconn *c, redisCallbackFn *fn, void *priv, int argc,
    const char **argv, const size_t *argvlen)
{
	if (c->ac == NULL || c->state < C_CONNECTING)
		return (-1);
	if (redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, argvlen) !=
	    REDIS_OK)
		return (-1);
	if (c->npending++ == 0)
		c->progress_ms = c->b->host->now_ms();
	return (0);
}

/* cmd_send with NUL-terminated arguments. */
static int
cmd_sendv(struct rconn *c, redisCallbackFn *fn, void *priv, int argc,
    const char **argv)
{
	size_t len[16];
	int i;

	if (argc > 16)
		return (-1);
	for (i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	return (cmd_send(c, fn, priv, argc, argv, len));
}

/* A reply nobody needs (PING, queued MULTI parts). */
static void
on_ignore(redisAsyncContext *ac, void *reply, void *priv)
{
	int live;

	(void)reply;
	(void)priv;
	(void)got_reply(ac, &live);
}

/* ------------------------------------------------------------ connections */

static void
conn_retry(void *arg)
{
	struct rconn *c = arg;

	c->retry = NULL;	/* one-shot: gone once fired */
	conn_start(c);
}

/* Schedule the next attempt with exponential backoff. */
static void
conn_schedule(struct rconn *c)
{
	struct rbp *b = c->b;

	if (b->stopping)
		return;
	c->state = C_DOWN;
	if (c->backoff_ms == 0)
		c->backoff_ms = (unsigned)b->backoff_min_ms;
	else if (c->backoff_ms < b->backoff_max_ms)
		c->backoff_ms = c->backoff_ms * 2 > b->backoff_max_ms ?
		    (unsigned)b->backoff_max_ms : c->backoff_ms * 2;
	if (c->retry != NULL)
		b->host->timer_del(c->retry);
	c->retry = b->host->timer_add(b->ctx, c->backoff_ms, 0, conn_retry,
	    c);
}

/* Role-specific state reset when a connection goes away. */
static void
conn_lost(struct rconn *c)
{
	struct rbp *b = c->b;

	c->state = C_DOWN;
	c->npending = 0;
	c->blocking = 0;
	switch (c->role) {
	case C_CMD:
		b->unblock_inflight = 0;
		b->claim_inflight = 0;
		break;
	case C_FAN:
		b->fan_inflight = 0;
		b->fan_client_id = 0;
		break;
	case C_PER:
		b->per_inflight = 0;
		b->per_phase = 0;
		b->per_caught_up = 0;
		break;
	}
	if (c->was_ready)
		b->host->log(b->ctx, PARLEY_LOG_WARN, "%s: %s connection lost: "
		    "%s (reconnecting with backoff)", b->where, c->name,
		    c->err);
	c->was_ready = 0;
	ready_update(b);
}

/*
 * Tear down the current context (our decision) and schedule a reconnect.
 * Safe inside hiredis callbacks: the free is deferred until it returns.
 */
static void
conn_fail(struct rconn *c, const char *fmt, ...)
{
	redisAsyncContext *ac = c->ac;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->ac = NULL;
	c->state = C_DOWN;
	if (ac != NULL)
		redisAsyncFree(ac);	/* pending callbacks see NULL, stale */
	ev_cleanup(c);
	conn_lost(c);
	conn_schedule(c);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;

	if (c->ac != ac)
		return;		/* we freed it ourselves */
	snprintf(c->err, sizeof(c->err), "%s", status == REDIS_OK ?
	    "closed by the server" : (ac->errstr && ac->errstr[0] ?
	    ac->errstr : "connection error"));
	c->ac = NULL;		/* hiredis frees it after this returns */
	conn_lost(c);
	conn_schedule(c);
}

static void setup_send(struct rconn *c);

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;

	if (c->ac != ac)
		return;
	if (status != REDIS_OK) {
		snprintf(c->err, sizeof(c->err), "connect: %s",
		    ac->errstr && ac->errstr[0] ? ac->errstr : "failed");
		c->ac = NULL;	/* hiredis frees it after this returns */
		conn_lost(c);
		conn_schedule(c);
		return;
	}
	/* setup commands were queued at connect; nothing else to do */
}

/* Role ready: what each connection starts doing. */
static void
role_ready(struct rconn *c)
{
	struct rbp *b = c->b;

	c->state = C_READY;
	c->backoff_ms = 0;
	c->err[0] = '\0';
	if (!c->was_ready)
		b->host->log(b->ctx, PARLEY_LOG_INFO, "%s: %s connection ready",
		    b->where, c->name);
	c->was_ready = 1;
	ready_update(b);
	switch (c->role) {
	case C_CMD:
		acks_flush(b);
		starts_resolve(b);
		if (b->fan_inflight)
			fan_schedule(b);
		break;
	case C_FAN:
		fan_kick(b);
		break;
	case C_PER:
		b->per_phase = 1;
		snprintf(b->per_cursor, sizeof(b->per_cursor), "0-0");
		per_kick(b);
		break;
	}
}

static void
on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
	const char *what = priv;
	redisReply *r = reply;
	struct rconn *c;
	struct rbp *b;
	char err[256];
	int live;

	c = got_reply(ac, &live);
	b = c->b;
	if (!live || r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		if (strcmp(what, "XGROUP") == 0 &&
		    strncmp(r->str, "BUSYGROUP", 9) == 0)
			goto ok;	/* the group exists: fine */
		if (strcmp(what, "CLIENT SETNAME") == 0)
			goto ok;	/* cosmetic */
		snprintf(err, sizeof(err), "%s: %s", what, r->str);
		/* a configuration error: say it once, not once per retry */
		if ((strcmp(what, "AUTH") == 0 || strcmp(what, "SELECT") == 0 ||
		    strncmp(r->str, "NOAUTH", 6) == 0 ||
		    strncmp(r->str, "WRONGPASS", 9) == 0 ||
		    strncmp(r->str, "NOPERM", 6) == 0) &&
		    strcmp(err, c->err) != 0)
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "%s: %s %s: %s "
			    "(check [redis] url, user and password)",
			    b->where, c->name, what, r->str);
		conn_fail(c, "%s", err);
		return;
	}
	if (strcmp(what, "SCRIPT LOAD") == 0) {
		if (r->type != REDIS_REPLY_STRING) {
			conn_fail(c, "SCRIPT LOAD: unexpected reply");
			return;
		}
		free(b->sha);
		if ((b->sha = strndup(r->str, r->len)) == NULL) {
			conn_fail(c, "out of memory");
			return;
		}
	} else if (strcmp(what, "CLIENT ID") == 0) {
		if (r->type != REDIS_REPLY_INTEGER) {
			conn_fail(c, "CLIENT ID: unexpected reply");
			return;
		}
		b->fan_client_id = r->integer;
	}
ok:
	if (--c->setup_left == 0)
		role_ready(c);
}

/* Queue the setup commands (sent once connected). */
static void
setup_send(struct rconn *c)
{
	struct rbp *b = c->b;
	const char *argv[8];
	char dbs[24], cname[200];
	int n = 0;

	c->setup_left = 0;
	if (b->password != NULL) {
		argv[n++] = "AUTH";
		if (b->user != NULL)
			argv[n++] = b->user;
		argv[n++] = b->password;
		if (cmd_sendv(c, on_setup, "AUTH", n, argv) == 0)
			c->setup_left++;
	}
	if (b->db != 0) {
		snprintf(dbs, sizeof(dbs), "%lld", b->db);
		argv[0] = "SELECT";
		argv[1] = dbs;
		if (cmd_sendv(c, on_setup, "SELECT", 2, argv) == 0)
			c->setup_left++;
	}
	snprintf(cname, sizeof(cname), "parley-%s-%s",
	    b->host->instance_id(b->ctx), c->name);
	for (n = 7; cname[n] != '\0'; n++)
		if (cname[n] == ' ' || cname[n] == '\n' || cname[n] == '\r')
			cname[n] = '_';
	argv[0] = "CLIENT";
	argv[1] = "SETNAME";
	argv[2] = cname;
	if (cmd_sendv(c, on_setup, "CLIENT SETNAME", 3, argv) == 0)
		c->setup_left++;
	switch (c->role) {
	case C_CMD:
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = rb_script;
		if (cmd_sendv(c, on_setup, "SCRIPT LOAD", 3, argv) == 0)
			c->setup_left++;
		break;
	case C_FAN:
		argv[0] = "CLIENT";
		argv[1] = "ID";
		if (cmd_sendv(c, on_setup, "CLIENT ID", 2, argv) == 0)
			c->setup_left++;
		break;
	case C_PER:
		argv[0] = "XGROUP";
		argv[1] = "CREATE";
		argv[2] = b->feedkey;
		argv[3] = b->group;
		argv[4] = b->from_oldest ? "0" : "$";
		argv[5] = "MKSTREAM";
		if (cmd_sendv(c, on_setup, "XGROUP", 6, argv) == 0)
			c->setup_left++;
		break;
	}
	if (c->setup_left == 0)
		conn_fail(c, "cannot queue the connection setup");
}

/* Open the connection to ip (or the unix socket). */
static void
conn_open(struct rconn *c)
{
	struct rbp *b = c->b;
	redisAsyncContext *ac;

	c->started_ms = b->host->now_ms();
	if (b->sockpath != NULL)
		ac = redisAsyncConnectUnix(b->sockpath);
	else
		ac = redisAsyncConnect(c->ip, b->port);
	if (ac == NULL) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		conn_schedule(c);
		return;
	}
	if (ac->err) {
		snprintf(c->err, sizeof(c->err), "connect: %s", ac->errstr);
		redisAsyncFree(ac);
		conn_lost(c);
		conn_schedule(c);
		return;
	}
	c->ac = ac;
	c->fd = ac->c.fd;
	c->npending = 0;
	c->blocking = 0;
	c->state = C_CONNECTING;
	ac->data = c;
	ac->ev.data = c;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	c->state = C_SETUP;	/* commands queue until the connect is done */
	setup_send(c);
}

/* A host name resolved on a worker. */
struct resolve {
	struct rconn *c;
	char host[256];
	char ip[INET6_ADDRSTRLEN];
	char err[400];
};

static void
resolve_work(void *arg)
{
	struct resolve *r = arg;
	struct addrinfo hints, *ai = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(r->host, NULL, &hints, &ai)) != 0) {
		snprintf(r->err, sizeof(r->err), "cannot resolve %.150s: %s",
		    r->host, gai_strerror(rc));
		return;
	}
	if (ai->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)
		    ai->ai_addr)->sin_addr, r->ip, sizeof(r->ip));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)
		    ai->ai_addr)->sin6_addr, r->ip, sizeof(r->ip));
	freeaddrinfo(ai);
}

static void
resolve_done(void *arg)
{
	struct resolve *r = arg;
	struct rconn *c = r->c;

	c->resolving = 0;
	if (c->b->stopping || c->state != C_RESOLVING) {
		free(r);
		return;
	}
	if (r->ip[0] == '\0') {
		snprintf(c->err, sizeof(c->err), "%.200s", r->err);
		free(r);
		conn_lost(c);
		conn_schedule(c);
		return;
	}
	snprintf(c->ip, sizeof(c->ip), "%s", r->ip);
	free(r);
	conn_open(c);
}

static void
conn_start(struct rconn *c)
{
	struct rbp *b = c->b;
	struct in6_addr a6;
	struct in_addr a4;
	struct resolve *r;

	if (b->stopping || c->ac != NULL || c->resolving)
		return;
	c->started_ms = b->host->now_ms();
	if (b->sockpath != NULL || inet_pton(AF_INET, b->hostname, &a4) == 1 ||
	    inet_pton(AF_INET6, b->hostname, &a6) == 1) {
		if (b->sockpath == NULL)
			snprintf(c->ip, sizeof(c->ip), "%s", b->hostname);
		conn_open(c);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		conn_schedule(c);
		return;
	}
	r->c = c;
	snprintf(r->host, sizeof(r->host), "%s", b->hostname);
	c->state = C_RESOLVING;
	c->resolving = 1;
	if (b->host->submit(b->ctx, resolve_work, resolve_done, r) == -1) {
		c->resolving = 0;
		free(r);
		snprintf(c->err, sizeof(c->err), "cannot resolve %s: host "
		    "shutting down", b->hostname);
		conn_schedule(c);
	}
}

/* Repeating: time out connects and late replies; ping an idle command
 * connection so a dead server is noticed. */
static void
health_tick(void *arg)
{
	struct rbp *b = arg;
	int64_t now = b->host->now_ms();
	struct rconn *c;
	long long limit;
	int i;

	for (i = 0; i < C_N; i++) {
		c = &b->c[i];
		if (c->ac == NULL)
			continue;
		if (c->state == C_CONNECTING || c->state == C_SETUP) {
			if (now - c->started_ms > b->connect_timeout_ms) {
				conn_fail(c, "connect timed out after %lld ms",
				    b->connect_timeout_ms);
				continue;
			}
		}
		if (c->state != C_READY)
			continue;
		limit = b->command_timeout_ms + (c->blocking ? b->block_ms : 0);
		if (c->npending > 0 && now - c->progress_ms > limit) {
			conn_fail(c, "no reply within %lld ms", limit);
			continue;
		}
		if (i == C_CMD && c->npending == 0 &&
		    now - c->progress_ms > RB_PING_MS) {
			const char *ping[] = { "PING" };

			(void)cmd_sendv(c, on_ignore, NULL, 1, ping);
		}
	}
}

/* ------------------------------------------------------------ publish */

static void
pub_settle(struct pub *p, int status, uint64_t pos, const char *why)
{
	if (p->settled)
		return;
	p->settled = 1;
	if (status == 0)
		p->b->host->counter_add(p->b->ctx,
		    "parley_redis_published_total", NULL, 1);
	else
		p->b->host->counter_add(p->b->ctx,
		    "parley_redis_publish_failed_total", NULL, 1);
	p->cb(p->arg, status, pos, why);
}

static void
pub_free_if_done(struct pub *p)
{
	if (p->settled && p->nout == 0) {
		free(p->buf);
		free(p->argv);
		free(p->argvlen);
		free(p);
	}
}

static int pub_send(struct pub *p, int eval);

static void
on_pub_script(redisAsyncContext *ac, void *reply, void *priv)
{
	struct pub *p = priv;
	redisReply *r = reply;
	struct rbp *b = p->b;
	char why[300];
	uint64_t pos;
	int live;

	(void)got_reply(ac, &live);
	p->nout--;
	if (p->settled)
		goto out;
	if (r == NULL) {
		pub_settle(p, -1, 0, "redis connection lost before the message "
		    "was confirmed (it may or may not have been stored)");
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "NOSCRIPT", 8) == 0 && !p->retried &&
		    live) {
			p->retried = 1;
			if (b->wait_replicas > 0)
				p->skip_waits++;
			if (pub_send(p, 1) == 0)
				goto out;
		}
		snprintf(why, sizeof(why), "redis refused the message: %s",
		    r->str);
		b->host->log(b->ctx, PARLEY_LOG_WARN, "publish: %s", why);
		pub_settle(p, -1, 0, why);
		goto out;
	}
	if (r->type != REDIS_REPLY_STRING ||
	    id_parse(r->str, r->len, &pos) == -1) {
		snprintf(why, sizeof(why), "redis returned an entry id that is "
		    "not a valid position (%.*s)", r->type ==
		    REDIS_REPLY_STRING ? (int)r->len : 1, r->type ==
		    REDIS_REPLY_STRING ? r->str : "?");
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "publish: %s", why);
		pub_settle(p, -1, 0, why);
		goto out;
	}
	p->pos = pos;
	p->have_pos = 1;
	if (b->wait_replicas == 0)
		pub_settle(p, 0, pos, NULL);
out:
	pub_free_if_done(p);
}

static void
on_pub_wait(redisAsyncContext *ac, void *reply, void *priv)
{
	struct pub *p = priv;
	redisReply *r = reply;
	struct rbp *b = p->b;
	char why[300];
	int live;

	(void)got_reply(ac, &live);
	p->nout--;
	if (p->skip_waits > 0) {
		p->skip_waits--;
		goto out;
	}
	if (p->settled || !p->have_pos) {
		if (!p->settled && r == NULL)
			pub_settle(p, -1, 0, "redis connection lost before "
			    "the message was confirmed");
		goto out;
	}
	if (r == NULL)
		pub_settle(p, -1, 0, "redis connection lost while waiting for "
		    "replicas (the message is stored on the master)");
	else if (r->type != REDIS_REPLY_INTEGER || r->integer <
	    b->wait_replicas) {
		snprintf(why, sizeof(why), "only %lld of %lld redis replicas "
		    "confirmed the message within %lld ms (it is on the master "
		    "and may be delivered)", r->type == REDIS_REPLY_INTEGER ?
		    r->integer : 0LL, b->wait_replicas, b->wait_timeout_ms);
		pub_settle(p, -1, 0, why);
	} else
		pub_settle(p, 0, p->pos, NULL);
out:
	pub_free_if_done(p);
}

/* Send the script (EVALSHA, or EVAL with the text) and WAIT if asked. */
static int
pub_send(struct pub *p, int eval)
{
	struct rbp *b = p->b;
	struct rconn *c = &b->c[C_CMD];
	char n[24], t[24];
	const char *wargv[3];

	if (eval) {
		p->argv[0] = "EVAL";
		p->argv[1] = rb_script;
	} else {
		p->argv[0] = "EVALSHA";
		p->argv[1] = b->sha;
	}
	p->argvlen[0] = strlen(p->argv[0]);
	p->argvlen[1] = strlen(p->argv[1]);
	if (cmd_send(c, on_pub_script, p, p->argc, p->argv, p->argvlen) == -1)
		return (-1);
	p->nout++;
	if (b->wait_replicas > 0) {
		snprintf(n, sizeof(n), "%lld", b->wait_replicas);
		snprintf(t, sizeof(t), "%lld", b->wait_timeout_ms);
		wargv[0] = "WAIT";
		wargv[1] = n;
		wargv[2] = t;
		if (cmd_sendv(c, on_pub_wait, p, 3, wargv) == 0)
			p->nout++;
	}
	return (0);
}

#define PUB_MAXARGS 32

static void
rb_publish(void *state, const struct parley_msg *msg, parley_publish_cb cb,
    void *arg)
{
	struct rbp *b = state;
	struct rconn *c = &b->c[C_CMD];
	struct pub *p;
	char why[600], *d;
	char fl[24], rl[24], age[24], ts[24], ev[16], flags[16];
	char roomkey[RB_PREFIX_MAX + 6 + PARLEY_ROOM_MAX];
	const char *av[PUB_MAXARGS];
	size_t al[PUB_MAXARGS], total, i;
	int n = 0;

	if (msg->room == NULL || msg->id == NULL || msg->sender == NULL ||
	    (msg->body == NULL && msg->body_len > 0)) {
		cb(arg, -1, 0, "malformed message");
		return;
	}
	if (c->state != C_READY || b->sha == NULL) {
		snprintf(why, sizeof(why), "redis backplane unavailable: %s "
		    "(not stored, try again later)", c->err[0] ? c->err :
		    "connecting");
		b->host->counter_add(b->ctx,
		    "parley_redis_publish_failed_total", NULL, 1);
		cb(arg, -1, 0, why);
		return;
	}
	snprintf(roomkey, sizeof(roomkey), "%sroom:%.*s", b->prefix,
	    PARLEY_ROOM_MAX, msg->room);
	snprintf(fl, sizeof(fl), "%lld", b->feed_maxlen);
	snprintf(rl, sizeof(rl), "%lld", b->maxlen);
	snprintf(age, sizeof(age), "%lld", b->max_age_ms);
	snprintf(ts, sizeof(ts), "%lld", (long long)msg->timestamp_ms);
	snprintf(ev, sizeof(ev), "%d", msg->event);
	flags[0] = '\0';
#ifdef PARLEY_MSG_MODERATED
	if (msg->flags != 0)
		snprintf(flags, sizeof(flags), "%u", msg->flags);
#endif
	/* argv[0..1] are filled by pub_send */
	av[n++] = NULL;
	av[n++] = NULL;
	av[n++] = "2";
	av[n++] = b->feedkey;
	av[n++] = roomkey;
	av[n++] = fl;
	av[n++] = rl;
	av[n++] = age;
	av[n++] = msg->room;
	av[n++] = "i"; av[n++] = msg->id;
	av[n++] = "s"; av[n++] = msg->sender;
	av[n++] = "t"; av[n++] = ts;
	av[n++] = "e"; av[n++] = ev;
	if (msg->content_type != NULL) {
		av[n++] = "c"; av[n++] = msg->content_type;
	}
	if (msg->ref_id != NULL) {
		av[n++] = "r"; av[n++] = msg->ref_id;
	}
	if (msg->media_id != NULL) {
		av[n++] = "m"; av[n++] = msg->media_id;
	}
	if (flags[0] != '\0') {
		av[n++] = "f"; av[n++] = flags;
	}
	av[n++] = "b";
	av[n++] = msg->body != NULL ? msg->body : "";
	for (i = 0; i < (size_t)n; i++)
		al[i] = av[i] != NULL ? strlen(av[i]) : 0;
	al[n - 1] = msg->body_len;

	/* one allocation for the copies, kept for a NOSCRIPT retry */
	total = 0;
	for (i = 2; i < (size_t)n; i++)
		total += al[i] + 1;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->argv = calloc((size_t)n, sizeof(*p->argv))) == NULL ||
	    (p->argvlen = calloc((size_t)n, sizeof(*p->argvlen))) == NULL ||
	    (d = malloc(total)) == NULL) {
		if (p != NULL) {
			free(p->argv);
			free(p->argvlen);
		}
		free(p);
		cb(arg, -1, 0, "out of memory");
		return;
	}
	p->buf = d;
	for (i = 2; i < (size_t)n; i++) {
		if (al[i] > 0)
			memcpy(d, av[i], al[i]);
		d[al[i]] = '\0';
		p->argv[i] = d;
		p->argvlen[i] = al[i];
		d += al[i] + 1;
	}
	p->b = b;
	p->cb = cb;
	p->arg = arg;
	p->argc = n;
	if (pub_send(p, 0) == -1) {
		free(p->buf);
		free(p->argv);
		free(p->argvlen);
		free(p);
		cb(arg, -1, 0, "redis backplane unavailable: cannot queue "
		    "the command");
		return;
	}
}

/* ------------------------------------------------------------ fan-out */

static void on_fan_read(redisAsyncContext *ac, void *reply, void *priv);

/* Issue the XREAD over every watched room with a known start. */
static void
fan_kick(struct rbp *b)
{
	struct rconn *c = &b->c[C_FAN];
	const char **argv;
	size_t *len, i, n = 0, k;
	char *ids, cnt[24], blk[24];
	struct wroom *r;
	int argc;

	if (c->state != C_READY || b->fan_inflight || b->stopping)
		return;
	for (i = 0; i < b->nbuckets; i++)
		for (r = b->buckets[i]; r != NULL; r = r->next)
			if (r->watched && r->started)
				n++;
	b->fan_dirty = 0;
	if (n == 0)
		return;
	argc = 6 + 2 * (int)n;
	argv = calloc((size_t)argc, sizeof(*argv));
	len = calloc((size_t)argc, sizeof(*len));
	ids = malloc(n * 48);
	if (argv == NULL || len == NULL || ids == NULL) {
		free(argv);
		free(len);
		free(ids);
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "fan-out: out of memory "
		    "(retrying)");
		fan_schedule(b);
		return;
	}
	snprintf(cnt, sizeof(cnt), "%lld", b->read_count);
	snprintf(blk, sizeof(blk), "%lld", b->block_ms);
	argv[0] = "XREAD";
	argv[1] = "COUNT";
	argv[2] = cnt;
	argv[3] = "BLOCK";
	argv[4] = blk;
	argv[5] = "STREAMS";
	k = 0;
	for (i = 0; i < b->nbuckets; i++) {
		for (r = b->buckets[i]; r != NULL; r = r->next) {
			if (!r->watched || !r->started)
				continue;
			argv[6 + k] = r->key;
			id_format(r->last, ids + k * 48, 48);
			argv[6 + n + k] = ids + k * 48;
			k++;
		}
	}
	for (i = 0; i < (size_t)argc; i++)
		len[i] = strlen(argv[i]);
	if (cmd_send(c, on_fan_read, NULL, argc, argv, len) == 0) {
		b->fan_inflight = 1;
		c->blocking = 1;
	} else
		conn_fail(c, "cannot queue XREAD");
	free(argv);
	free(len);
	free(ids);
}

static void
on_fan_read(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply, *s, *ents;
	struct rconn *c;
	struct rbp *b;
	struct wroom *w;
	struct entry e;
	char room[PARLEY_ROOM_MAX + 1];
	size_t i, j;
	int live;

	(void)priv;
	c = got_reply(ac, &live);
	b = c->b;
	if (!live)
		return;
	b->fan_inflight = 0;
	c->blocking = 0;
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		conn_fail(c, "XREAD: %s", r->str);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (i = 0; i < r->elements; i++) {
			s = r->element[i];
			if (!reply_is(s, REDIS_REPLY_ARRAY) ||
			    s->elements != 2 || key_room(b, s->element[0],
			    room, sizeof(room)) == NULL)
				continue;
			ents = s->element[1];
			if (!reply_is(ents, REDIS_REPLY_ARRAY))
				continue;
			for (j = 0; j < ents->elements; j++) {
				if (entry_decode(ents->element[j], &e) == -1) {
					b->host->log(b->ctx, PARLEY_LOG_ERROR,
					    "room %s: skipping a malformed "
					    "stream entry", room);
					continue;
				}
				/* deliver() may unwatch: look up each time */
				if ((w = room_find(b, room)) == NULL ||
				    !w->watched || !w->started ||
				    e.m.position <= w->last)
					continue;
				w->last = e.m.position;
				memcpy(e.room, room, sizeof(room));
				e.m.room = e.room;
				b->host->deliver(b->ctx, &e.m);
				b->host->counter_add(b->ctx,
				    "parley_redis_delivered_total", NULL, 1);
			}
		}
	}
	fan_kick(b);
}

static void
on_unblock(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply;
	struct rconn *c;
	struct rbp *b;
	int live;

	(void)priv;
	c = got_reply(ac, &live);
	b = c->b;
	b->unblock_inflight = 0;
	if (!live || r == NULL)
		return;
	/* 0: the read was not blocked yet; try again shortly */
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 &&
	    b->fan_inflight && b->fan_dirty)
		fan_schedule(b);
}

static void
fan_timer_cb(void *arg)
{
	struct rbp *b = arg;
	struct rconn *cmd = &b->c[C_CMD];
	char id[24];
	const char *argv[3];

	b->fan_timer = NULL;
	if (!b->fan_inflight) {
		fan_kick(b);
		return;
	}
	if (!b->fan_dirty || b->unblock_inflight || b->fan_client_id == 0 ||
	    cmd->state != C_READY)
		return;
	snprintf(id, sizeof(id), "%lld", b->fan_client_id);
	argv[0] = "CLIENT";
	argv[1] = "UNBLOCK";
	argv[2] = id;
	if (cmd_sendv(cmd, on_unblock, NULL, 3, argv) == 0)
		b->unblock_inflight = 1;
}

/*
 * The watched set changed: re-issue the read on the next loop turn (or a
 * little later when an unblock found the read not yet blocked).
 */
static void
fan_schedule(struct rbp *b)
{
	b->fan_dirty = 1;
	if (b->fan_timer == NULL && !b->stopping)
		b->fan_timer = b->host->timer_add(b->ctx,
		    b->unblock_inflight ? 2 : 0, 0, fan_timer_cb, b);
}

static void
on_start(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply;
	struct rconn *c;
	struct rbp *b;
	struct wroom *w;
	char *name = priv;
	uint64_t pos = 0;
	int live;

	c = got_reply(ac, &live);
	b = c->b;
	w = room_find(b, name);
	free(name);
	if (w == NULL)
		return;
	w->starting = 0;
	if (!w->watched) {
		room_free(b, w);
		return;
	}
	if (!live || r == NULL)
		return;		/* retried when the connection is back */
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    reply_is(r->element[0], REDIS_REPLY_ARRAY) &&
	    r->element[0]->elements >= 1 &&
	    reply_is(r->element[0]->element[0], REDIS_REPLY_STRING))
		(void)id_parse(r->element[0]->element[0]->str,
		    r->element[0]->element[0]->len, &pos);
	else if (r->type == REDIS_REPLY_ERROR) {
		b->host->log(b->ctx, PARLEY_LOG_WARN, "room %s: XREVRANGE: %s "
		    "(reading from the start of the stream)", w->name, r->str);
	}
	w->last = pos;
	w->started = 1;
	fan_schedule(b);
}

/*
 * Decide where the fan-out of w starts.  With a local store and the
 * persist feed caught up, at the persist frontier: every message up to it
 * was handed to host->persist (so the core's resume finds it in storage or
 * its write-behind queue) and everything after it is delivered live, which
 * closes the seam without the core reading the backplane.  Otherwise at
 * the stream's newest entry, asked on the command connection before any
 * read_range of the same subscribe, so a range read never ends before the
 * live read starts.
 */
static void
room_start(struct rbp *b, struct wroom *w)
{
	const char *argv[6];
	char *name;

	if (w->started || w->starting)
		return;
	if (!b->shared && b->per_known) {
		w->last = b->per_last;
		w->started = 1;
		fan_schedule(b);
		return;
	}
	if (b->c[C_CMD].state != C_READY)
		return;		/* starts_resolve() when it is */
	if ((name = strdup(w->name)) == NULL)
		return;
	argv[0] = "XREVRANGE";
	argv[1] = w->key;
	argv[2] = "+";
	argv[3] = "-";
	argv[4] = "COUNT";
	argv[5] = "1";
	if (cmd_sendv(&b->c[C_CMD], on_start, name, 6, argv) == 0)
		w->starting = 1;
	else
		free(name);
}

static void
starts_resolve(struct rbp *b)
{
	struct wroom *r, *next;
	size_t i;

	for (i = 0; i < b->nbuckets; i++)
		for (r = b->buckets[i]; r != NULL; r = next) {
			next = r->next;
			if (r->watched)
				room_start(b, r);
		}
}

static void
rb_watch_room(void *state, const char *room)
{
	struct rbp *b = state;
	struct wroom *w;

	if ((w = room_find(b, room)) == NULL &&
	    (w = room_add(b, room)) == NULL) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "room %s: out of "
		    "memory: no fan-out from other instances", room);
		return;
	}
	if (!w->watched) {
		w->watched = 1;
		b->nwatched++;
	}
	room_start(b, w);
}

static void
rb_unwatch_room(void *state, const char *room)
{
	struct rbp *b = state;
	struct wroom *w;

	if ((w = room_find(b, room)) == NULL || !w->watched)
		return;
	w->watched = 0;
	b->nwatched--;
	if (w->starting)
		return;		/* freed when the start reply comes */
	room_free(b, w);
	/* no unblock: the next read leaves the room out */
}

/* ------------------------------------------------------------ persist feed */

static void on_per_read(redisAsyncContext *ac, void *reply, void *priv);

/* Queue one acknowledgement (sent by acks_flush).  Out of memory: the
 * entry stays pending and is fed again later, which is harmless. */
static void
ack_push(struct rbp *b, uint64_t pos)
{
	uint64_t *v;
	size_t cap;

	if (b->nacks == b->capacks) {
		cap = b->capacks ? b->capacks * 2 : 256;
		if ((v = realloc(b->acks, cap * sizeof(*v))) == NULL)
			return;
		b->acks = v;
		b->capacks = cap;
	}
	b->acks[b->nacks++] = pos;
}

/* Hand one feed entry to the host unless it is already in flight. */
static void
per_feed(struct rbp *b, const redisReply *ent, const char *what)
{
	struct entry e;
	uint64_t pos;

	if (!reply_is(ent, REDIS_REPLY_ARRAY) || ent->elements != 2 ||
	    !reply_is(ent->element[0], REDIS_REPLY_STRING) ||
	    id_parse(ent->element[0]->str, ent->element[0]->len, &pos) == -1)
		return;
	if (!reply_is(ent->element[1], REDIS_REPLY_ARRAY)) {
		/* a pending entry whose data was trimmed away */
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "persist: feed entry "
		    "%.*s was trimmed before it was stored: lost for this "
		    "store (raise [redis] feed_maxlen / max_age)",
		    (int)ent->element[0]->len, ent->element[0]->str);
		b->host->counter_add(b->ctx, "parley_redis_persist_lost_total",
		    NULL, 1);
		ack_push(b, pos);	/* so it leaves the pending list */
		return;
	}
	if (tokset_has(&b->out, pos))
		return;		/* fed already, commit pending */
	if (entry_decode(ent, &e) == -1 || !e.has_room) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "persist: skipping "
		    "malformed feed entry %.*s (%s)", (int)ent->element[0]->len,
		    ent->element[0]->str, what);
		ack_push(b, pos);
		return;
	}
	if (tokset_add(&b->out, pos) == -1) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "persist: out of memory "
		    "(entry left pending: it will be fed again)");
		return;
	}
	b->host->persist(b->ctx, &e.m, pos);
}

/* Issue the next persist read if there is room for more in flight. */
static void
per_kick(struct rbp *b)
{
	struct rconn *c = &b->c[C_PER];
	char cnt[24], blk[24];
	const char *argv[12];
	int n = 0;

	if (c->state != C_READY || b->per_inflight || b->stopping)
		return;
	b->host->gauge_set(b->ctx, "parley_redis_persist_inflight", NULL,
	    (double)b->out.n);
	if (b->per_phase == 3 && (long long)b->out.n >= b->max_inflight)
		return;		/* resumed by persist_ack */
	snprintf(cnt, sizeof(cnt), "%lld", b->persist_count);
	snprintf(blk, sizeof(blk), "%lld", b->block_ms);
	if (b->per_phase == 2) {
		argv[0] = "XINFO";
		argv[1] = "GROUPS";
		argv[2] = b->feedkey;
		n = 3;
	} else {
		argv[n++] = "XREADGROUP";
		argv[n++] = "GROUP";
		argv[n++] = b->group;
		argv[n++] = b->consumer;
		argv[n++] = "COUNT";
		argv[n++] = cnt;
		/* block only once caught up: catching up never waits */
		if (b->per_phase == 3 && b->per_caught_up) {
			argv[n++] = "BLOCK";
			argv[n++] = blk;
		}
		argv[n++] = "STREAMS";
		argv[n++] = b->feedkey;
		argv[n++] = b->per_phase == 1 ? b->per_cursor : ">";
	}
	if (cmd_sendv(c, on_per_read, NULL, n, argv) == 0) {
		b->per_inflight = 1;
		c->blocking = b->per_phase == 3 && b->per_caught_up;
	} else
		conn_fail(c, "cannot queue XREADGROUP");
}

/* XINFO GROUPS: our group's last-delivered-id is the persist frontier. */
static void
per_info(struct rbp *b, const redisReply *r)
{
	const redisReply *g;
	size_t i, k;
	int mine;

	if (!reply_is(r, REDIS_REPLY_ARRAY))
		return;
	for (i = 0; i < r->elements; i++) {
		g = r->element[i];
		if (!reply_is(g, REDIS_REPLY_ARRAY))
			continue;
		mine = 0;
		for (k = 0; k + 1 < g->elements; k += 2)
			if (reply_streq(g->element[k], "name") &&
			    reply_streq(g->element[k + 1], b->group))
				mine = 1;
		if (!mine)
			continue;
		for (k = 0; k + 1 < g->elements; k += 2) {
			if (reply_streq(g->element[k], "last-delivered-id") &&
			    reply_is(g->element[k + 1], REDIS_REPLY_STRING) &&
			    id_parse(g->element[k + 1]->str,
			    g->element[k + 1]->len, &b->per_last) == 0) {
				b->per_known = 1;
				/* rooms waiting for a start can use it */
				starts_resolve(b);
			}
		}
	}
}

static void
on_per_read(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply, *s, *ents;
	struct rconn *c;
	struct rbp *b;
	uint64_t pos;
	size_t i, j, got = 0;
	int live;

	(void)priv;
	c = got_reply(ac, &live);
	b = c->b;
	if (!live)
		return;
	c->blocking = 0;
	if (r == NULL) {
		b->per_inflight = 0;
		return;
	}
	/* per_inflight stays set while feeding: acks from inside
	 * host->persist must not start the next read yet */
	if (r->type == REDIS_REPLY_ERROR) {
		b->per_inflight = 0;
		if (strncmp(r->str, "NOGROUP", 7) == 0)
			b->host->log(b->ctx, PARLEY_LOG_WARN, "persist: group "
			    "%s vanished (stream deleted?): recreating",
			    b->group);
		conn_fail(c, "%s: %s", b->per_phase == 2 ? "XINFO GROUPS" :
		    "XREADGROUP", r->str);
		return;
	}
	if (b->per_phase == 2) {
		per_info(b, r);
		b->per_phase = 3;
		b->per_inflight = 0;
		per_kick(b);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (i = 0; i < r->elements; i++) {
			s = r->element[i];
			if (!reply_is(s, REDIS_REPLY_ARRAY) || s->elements != 2)
				continue;
			ents = s->element[1];
			if (!reply_is(ents, REDIS_REPLY_ARRAY))
				continue;
			for (j = 0; j < ents->elements; j++, got++) {
				const redisReply *ent = ents->element[j];

				per_feed(b, ent, b->per_phase == 1 ?
				    "pending" : "new");
				if (reply_is(ent, REDIS_REPLY_ARRAY) &&
				    ent->elements == 2 &&
				    reply_is(ent->element[0],
				    REDIS_REPLY_STRING) &&
				    id_parse(ent->element[0]->str,
				    ent->element[0]->len, &pos) == 0) {
					if (b->per_phase == 1)
						reply_copy(ent->element[0],
						    b->per_cursor,
						    sizeof(b->per_cursor));
					else if (pos > b->per_last) {
						b->per_last = pos;
						b->per_known = 1;
					}
				}
			}
		}
	}
	if (b->per_phase == 1)
		b->per_refed += got;
	if (b->per_phase == 1 && got == 0) {
		/* own pending entries all fed: now the frontier, then new */
		if (b->per_refed > 0)
			b->host->log(b->ctx, PARLEY_LOG_INFO, "persist: fed "
			    "again %zu entries left pending (unacknowledged) "
			    "by an earlier run or connection", b->per_refed);
		b->per_refed = 0;
		b->per_phase = 2;
	} else if (b->per_phase == 3 && !b->per_caught_up &&
	    got < (size_t)b->persist_count) {
		b->per_caught_up = 1;
		b->host->log(b->ctx, PARLEY_LOG_INFO, "persist feed caught up "
		    "(group %s, frontier %llu-%llu)", b->group,
		    (unsigned long long)(b->per_last >> RB_SEQ_BITS),
		    (unsigned long long)(b->per_last & RB_SEQ_MAX));
		ready_update(b);
	}
	b->per_inflight = 0;
	acks_flush(b);
	per_kick(b);
}

static void
on_xack(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply;
	struct rconn *c;
	int live;

	(void)priv;
	c = got_reply(ac, &live);
	if (live && r != NULL && r->type == REDIS_REPLY_ERROR)
		c->b->host->log(c->b->ctx, PARLEY_LOG_WARN, "XACK: %s (the "
		    "entries will be fed again and stored again: a no-op)",
		    r->str);
}

/* Send queued acknowledgements (XACK in chunks) on the command connection. */
static void
acks_flush(struct rbp *b)
{
	struct rconn *c = &b->c[C_CMD];
	const char **argv;
	size_t *len, i, k, n;
	char *ids;

	if (b->nacks == 0 || c->state != C_READY)
		return;
	argv = calloc(RB_ACK_CHUNK + 3, sizeof(*argv));
	len = calloc(RB_ACK_CHUNK + 3, sizeof(*len));
	ids = malloc(RB_ACK_CHUNK * 48);
	if (argv == NULL || len == NULL || ids == NULL)
		goto out;	/* kept: sent with the next flush */
	for (i = 0; i < b->nacks; i += n) {
		n = b->nacks - i < RB_ACK_CHUNK ? b->nacks - i : RB_ACK_CHUNK;
		argv[0] = "XACK";
		argv[1] = b->feedkey;
		argv[2] = b->group;
		for (k = 0; k < n; k++) {
			id_format(b->acks[i + k], ids + k * 48, 48);
			argv[3 + k] = ids + k * 48;
		}
		for (k = 0; k < n + 3; k++)
			len[k] = strlen(argv[k]);
		if (cmd_send(c, on_xack, NULL, (int)n + 3, argv, len) == -1)
			break;	/* the rest: fed again later, stored again */
	}
	b->nacks = 0;
out:
	free(argv);
	free(len);
	free(ids);
}

static void
rb_persist_ack(void *state, const uint64_t *tokens, size_t n)
{
	struct rbp *b = state;
	size_t i;

	if (b->nacks + n > b->capacks) {
		size_t cap = b->capacks ? b->capacks : 256;
		uint64_t *v;

		while (cap < b->nacks + n)
			cap *= 2;
		if ((v = realloc(b->acks, cap * sizeof(*v))) == NULL) {
			/* unacknowledged: fed again later, stored again */
			for (i = 0; i < n; i++)
				tokset_del(&b->out, tokens[i]);
			per_kick(b);
			return;
		}
		b->acks = v;
		b->capacks = cap;
	}
	for (i = 0; i < n; i++) {
		tokset_del(&b->out, tokens[i]);
		b->acks[b->nacks++] = tokens[i];
	}
	acks_flush(b);
	per_kick(b);
}

static void on_claim(redisAsyncContext *ac, void *reply, void *priv);

static void
claim_send(struct rbp *b)
{
	struct rconn *c = &b->c[C_CMD];
	char idle[24], cnt[24];
	const char *argv[9];

	if (c->state != C_READY || b->claim_inflight || b->per_phase != 3 ||
	    (long long)b->out.n >= b->max_inflight)
		return;
	snprintf(idle, sizeof(idle), "%lld", b->claim_idle_ms);
	snprintf(cnt, sizeof(cnt), "%lld", b->persist_count);
	argv[0] = "XAUTOCLAIM";
	argv[1] = b->feedkey;
	argv[2] = b->group;
	argv[3] = b->consumer;
	argv[4] = idle;
	argv[5] = b->claim_cursor;
	argv[6] = "COUNT";
	argv[7] = cnt;
	if (cmd_sendv(c, on_claim, NULL, 8, argv) == 0)
		b->claim_inflight = 1;
}

static void
on_claim(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply, *ents;
	struct rconn *c;
	struct rbp *b;
	size_t j;
	int live;

	(void)priv;
	c = got_reply(ac, &live);
	b = c->b;
	if (!live)
		return;
	b->claim_inflight = 0;
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		b->host->log(b->ctx, PARLEY_LOG_WARN, "XAUTOCLAIM: %s", r->str);
		snprintf(b->claim_cursor, sizeof(b->claim_cursor), "0-0");
		return;
	}
	if (!reply_is(r, REDIS_REPLY_ARRAY) || r->elements < 2)
		return;
	ents = r->element[1];
	if (reply_is(ents, REDIS_REPLY_ARRAY) && ents->elements > 0) {
		b->host->log(b->ctx, PARLEY_LOG_INFO, "persist: reclaimed %zu "
		    "entries left pending by a stopped consumer",
		    ents->elements);
		b->host->counter_add(b->ctx, "parley_redis_reclaimed_total",
		    NULL, (double)ents->elements);
		for (j = 0; j < ents->elements; j++)
			per_feed(b, ents->element[j], "reclaimed");
	}
	if (r->elements >= 3 && reply_is(r->element[2], REDIS_REPLY_ARRAY) &&
	    r->element[2]->elements > 0) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "persist: %zu pending "
		    "entries were trimmed before anyone stored them (raise "
		    "[redis] feed_maxlen / max_age)", r->element[2]->elements);
		b->host->counter_add(b->ctx, "parley_redis_persist_lost_total",
		    NULL, (double)r->element[2]->elements);
	}
	reply_copy(r->element[0], b->claim_cursor, sizeof(b->claim_cursor));
	if (b->claim_cursor[0] == '\0')
		snprintf(b->claim_cursor, sizeof(b->claim_cursor), "0-0");
	acks_flush(b);
	/* more to scan: go on now rather than at the next tick */
	if (strcmp(b->claim_cursor, "0-0") != 0)
		claim_send(b);
}

static void
claim_tick(void *arg)
{
	claim_send(arg);
}

/* ------------------------------------------------------------ read_range */

static void
on_range(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rread *rr = priv;
	redisReply *r = reply, *info, *ents, *first = NULL;
	struct rbp *b = rr->b;
	struct parley_range res;
	struct parley_msg *msgs = NULL;
	struct entry *ev = NULL, fe;
	uint64_t lastgen = 0;
	size_t i;
	int live;

	(void)got_reply(ac, &live);
	memset(&res, 0, sizeof(res));
	if (r == NULL || !reply_is(r, REDIS_REPLY_ARRAY) || r->elements != 2) {
		if (r != NULL && r->type == REDIS_REPLY_ERROR)
			b->host->log(b->ctx, PARLEY_LOG_WARN, "room %s: range "
			    "read: %s", rr->room, r->str);
		rr->cb(rr->arg, -1, NULL);
		free(rr);
		return;
	}
	info = r->element[0];
	ents = r->element[1];
	if (reply_is(ents, REDIS_REPLY_ERROR)) {
		b->host->log(b->ctx, PARLEY_LOG_WARN, "room %s: XRANGE: %s",
		    rr->room, ents->str);
		rr->cb(rr->arg, -1, NULL);
		free(rr);
		return;
	}
	if (info->type == REDIS_REPLY_ERROR) {
		/* no such stream: nothing retained, nothing provable */
		res.complete = 0;
		rr->cb(rr->arg, 0, &res);
		free(rr);
		return;
	}
	if (reply_is(info, REDIS_REPLY_ARRAY)) {
		for (i = 0; i + 1 < info->elements; i += 2) {
			if (reply_streq(info->element[i],
			    "last-generated-id") &&
			    reply_is(info->element[i + 1], REDIS_REPLY_STRING))
				(void)id_parse(info->element[i + 1]->str,
				    info->element[i + 1]->len, &lastgen);
			else if (reply_streq(info->element[i], "first-entry") &&
			    reply_is(info->element[i + 1], REDIS_REPLY_ARRAY))
				first = info->element[i + 1];
		}
	}
	res.last_position = lastgen;
	if (first == NULL) {
		/* an empty stream: everything up to lastgen was trimmed */
		res.complete = rr->after >= lastgen;
	} else if (entry_decode(first, &fe) == 0) {
		res.first_position = fe.m.position;
		/* entries between fe.prev and first never existed */
		res.complete = fe.prev <= rr->after;
	}
	if (reply_is(ents, REDIS_REPLY_ARRAY) && ents->elements > 0) {
		msgs = calloc(ents->elements, sizeof(*msgs));
		ev = calloc(ents->elements, sizeof(*ev));
		if (msgs == NULL || ev == NULL) {
			free(msgs);
			free(ev);
			rr->cb(rr->arg, -1, NULL);
			free(rr);
			return;
		}
		for (i = 0; i < ents->elements; i++) {
			if (entry_decode(ents->element[i], &ev[res.n]) == -1)
				continue;
			snprintf(ev[res.n].room, sizeof(ev[res.n].room), "%s",
			    rr->room);
			msgs[res.n] = ev[res.n].m;
			msgs[res.n].room = ev[res.n].room;
			msgs[res.n].id = ev[res.n].id;
			msgs[res.n].sender = ev[res.n].sender;
			if (ev[res.n].m.content_type != NULL)
				msgs[res.n].content_type = ev[res.n].ctype;
			if (ev[res.n].m.ref_id != NULL)
				msgs[res.n].ref_id = ev[res.n].ref;
			if (ev[res.n].m.media_id != NULL)
				msgs[res.n].media_id = ev[res.n].media;
			res.n++;
		}
	}
	res.msgs = msgs;
	rr->cb(rr->arg, 0, &res);
	free(msgs);
	free(ev);
	free(rr);
}

static void
rb_read_range(void *state, const char *room, uint64_t after, size_t limit,
    parley_range_cb cb, void *arg)
{
	struct rbp *b = state;
	struct rconn *c = &b->c[C_CMD];
	struct rread *rr;
	char key[PARLEY_ROOM_MAX + 300], start[64], cnt[24];
	const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
	const char *info[3], *range[6];

	if (c->state != C_READY || (rr = calloc(1, sizeof(*rr))) == NULL) {
		cb(arg, -1, NULL);
		return;
	}
	rr->b = b;
	rr->cb = cb;
	rr->arg = arg;
	rr->after = after;
	snprintf(rr->room, sizeof(rr->room), "%s", room);
	snprintf(key, sizeof(key), "%sroom:%s", b->prefix, room);
	if (after == 0)
		snprintf(start, sizeof(start), "-");
	else {
		start[0] = '(';
		id_format(after, start + 1, sizeof(start) - 1);
	}
	snprintf(cnt, sizeof(cnt), "%zu", limit > 0 ? limit : 1);
	info[0] = "XINFO";
	info[1] = "STREAM";
	info[2] = key;
	range[0] = "XRANGE";
	range[1] = key;
	range[2] = start;
	range[3] = "+";
	range[4] = "COUNT";
	range[5] = cnt;
	/* four commands back to back: nothing can slip in between */
	if (cmd_sendv(c, on_ignore, NULL, 1, multi) == -1 ||
	    cmd_sendv(c, on_ignore, NULL, 3, info) == -1 ||
	    cmd_sendv(c, on_ignore, NULL, 6, range) == -1 ||
	    cmd_sendv(c, on_range, rr, 1, exec) == -1) {
		/* the context failed mid-way: it is torn down */
		free(rr);
		conn_fail(c, "cannot queue a range read");
		cb(arg, -1, NULL);
	}
}

/* ------------------------------------------------------------ init/fini */

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return (ch - '0');
	if (ch >= 'a' && ch <= 'f')
		return (ch - 'a' + 10);
	if (ch >= 'A' && ch <= 'F')
		return (ch - 'A' + 10);
	return (-1);
}

/* strndup with %XX decoding.  Returns NULL on bad escapes or no memory. */
static char *
pct_decode(const char *s, size_t n)
{
	char *d, *o;
	size_t i;
	int hi, lo;

	if ((d = malloc(n + 1)) == NULL)
		return (NULL);
	for (i = 0, o = d; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n) {
				free(d);
				return (NULL);
			}
			if ((hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0) {
				free(d);
				return (NULL);
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else
			*o++ = s[i];
	}
	*o = '\0';
	return (d);
}

/*
 * Parse [redis] url:
 *	redis://[[user]:password@]host[:port][/db]
 *	unix://[[user]:password@]/path/to/socket[?db=N]
 * Returns 0, or -1 after logging what is wrong.
 */
static int
url_parse(struct rbp *b, const char *url)
{
	const char *p, *at, *end, *slash, *colon, *q;
	char *e;
	long v;
	int unixsock;

	if (strncmp(url, "redis://", 8) == 0) {
		unixsock = 0;
		p = url + 8;
	} else if (strncmp(url, "unix://", 7) == 0) {
		unixsock = 1;
		p = url + 7;
	} else if (strncmp(url, "rediss://", 9) == 0) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = %s: TLS "
		    "(rediss://) needs hiredis >= 1.0 with SSL; this build has "
		    "hiredis %d.%d: use a TLS tunnel (stunnel) or a unix "
		    "socket", url, HIREDIS_MAJOR, HIREDIS_MINOR);
		return (-1);
	} else {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = %s: "
		    "expected redis://[user:password@]host:port[/db] or "
		    "unix:///path/to/socket[?db=N]", url);
		return (-1);
	}
	/* credentials: up to the last '@' before the path */
	end = unixsock ? p + strcspn(p, "?") : p + strcspn(p, "/?");
	at = NULL;
	for (q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (unixsock) {
		/* in unix://u:p@/path the '@' comes before the '/' */
		at = NULL;
		for (q = p; *q != '\0' && *q != '/'; q++)
			if (*q == '@')
				at = q;
	}
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL) {
			/* redis://password@host, as redis-cli accepts */
			b->password = pct_decode(p, (size_t)(at - p));
		} else {
			if (colon > p)
				b->user = pct_decode(p, (size_t)(colon - p));
			b->password = pct_decode(colon + 1,
			    (size_t)(at - colon - 1));
		}
		if (b->password == NULL) {
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url: "
			    "bad %%-escape in the credentials");
			return (-1);
		}
		p = at + 1;
	}
	if (unixsock) {
		q = p + strcspn(p, "?");
		if (*p != '/' || q == p + 1) {
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = "
			    "%s: expected an absolute socket path after "
			    "unix://", url);
			return (-1);
		}
		if ((b->sockpath = strndup(p, (size_t)(q - p))) == NULL)
			return (-1);
		if (*q == '?') {
			if (strncmp(q, "?db=", 4) != 0) {
				b->host->log(b->ctx, PARLEY_LOG_ERROR,
				    "[redis] url = %s: the only parameter is "
				    "?db=N", url);
				return (-1);
			}
			errno = 0;
			v = strtol(q + 4, &e, 10);
			if (errno != 0 || *e != '\0' || e == q + 4 || v < 0 ||
			    v > 1000000) {
				b->host->log(b->ctx, PARLEY_LOG_ERROR,
				    "[redis] url = %s: bad database number",
				    url);
				return (-1);
			}
			b->db = v;
		}
		snprintf(b->where, sizeof(b->where), "redis %s", b->sockpath);
		return (0);
	}
	/* host[:port] or [v6]:port */
	if (*p == '[') {
		q = strchr(p, ']');
		if (q == NULL) {
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = "
			    "%s: unterminated [IPv6 address]", url);
			return (-1);
		}
		b->hostname = strndup(p + 1, (size_t)(q - p - 1));
		p = q + 1;
	} else {
		q = p + strcspn(p, ":/?");
		b->hostname = strndup(p, (size_t)(q - p));
		p = q;
	}
	if (b->hostname == NULL || b->hostname[0] == '\0') {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = %s: no "
		    "host", url);
		return (-1);
	}
	b->port = 6379;
	if (*p == ':') {
		errno = 0;
		v = strtol(p + 1, &e, 10);
		if (errno != 0 || e == p + 1 || v < 1 || v > 65535 ||
		    (*e != '\0' && *e != '/')) {
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = "
			    "%s: bad port", url);
			return (-1);
		}
		b->port = (int)v;
		p = e;
	}
	slash = p;
	if (*slash == '/' && slash[1] != '\0') {
		errno = 0;
		v = strtol(slash + 1, &e, 10);
		if (errno != 0 || *e != '\0' || e == slash + 1 || v < 0 ||
		    v > 1000000) {
			b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = "
			    "%s: the path must be a database number", url);
			return (-1);
		}
		b->db = v;
	} else if (*slash != '\0' && strcmp(slash, "/") != 0) {
		b->host->log(b->ctx, PARLEY_LOG_ERROR, "[redis] url = %s: "
		    "unexpected \"%s\"", url, slash);
		return (-1);
	}
	snprintf(b->where, sizeof(b->where), "redis %s%s%s:%d",
	    strchr(b->hostname, ':') ? "[" : "", b->hostname,
	    strchr(b->hostname, ':') ? "]" : "", b->port);
	return (0);
}

/*
 * Read and check the [redis] section into b (host and ctx set): what init
 * and check (parleyd -t) share, so -t checks every key init reads.  Sets
 * the url's parts, credentials, numbers, from_oldest, prefix, feedkey and
 * group (the configured name: init adds the instance).  Connects to
 * nothing.  Returns 0, or -1 after logging; rb_config_free() frees what
 * it set either way.
 */
static int
rb_config(struct rbp *b)
{
	const struct parley_host *host = b->host;
	struct parley_ctx *ctx = b->ctx;
	const char *url, *s, *from;
	long long v;
	size_t n;

	url = host->config_get(ctx, "url", "redis://127.0.0.1:6379/0");
	if (url_parse(b, url) == -1)
		return (-1);
	if ((s = host->config_get(ctx, "user", NULL)) != NULL) {
		free(b->user);
		if ((b->user = strdup(s)) == NULL)
			goto nomem;
	}
	if ((s = host->config_get(ctx, "password", NULL)) != NULL) {
		free(b->password);
		if ((b->password = strdup(s)) == NULL)
			goto nomem;
	}
	if (b->user != NULL && b->password == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "[redis] user is set but no "
		    "password (in url or password)");
		return (-1);
	}
	if (host->config_int(ctx, "maxlen", 100000, 0, 1LL << 40,
	    &b->maxlen) == -1 ||
	    host->config_int(ctx, "feed_maxlen", 1000000, 0, 1LL << 40,
	    &b->feed_maxlen) == -1 ||
	    host->config_int(ctx, "max_age", 0, 0, 10LL * 365 * 86400,
	    &v) == -1 ||
	    host->config_int(ctx, "block_ms", 2000, 10, 60000,
	    &b->block_ms) == -1 ||
	    host->config_int(ctx, "connect_timeout_ms", 2000, 10, 600000,
	    &b->connect_timeout_ms) == -1 ||
	    host->config_int(ctx, "command_timeout_ms", 3000, 10, 600000,
	    &b->command_timeout_ms) == -1 ||
	    host->config_int(ctx, "reconnect_min_ms", 100, 1, 600000,
	    &b->backoff_min_ms) == -1 ||
	    host->config_int(ctx, "reconnect_max_ms", 5000, 1, 3600000,
	    &b->backoff_max_ms) == -1 ||
	    host->config_int(ctx, "read_count", 512, 1, 1000000,
	    &b->read_count) == -1 ||
	    host->config_int(ctx, "persist_count", 512, 1, 1000000,
	    &b->persist_count) == -1 ||
	    host->config_int(ctx, "persist_max_inflight", 20000, 1, 100000000,
	    &b->max_inflight) == -1 ||
	    host->config_int(ctx, "claim_idle_ms", 30000, 100, 86400000,
	    &b->claim_idle_ms) == -1 ||
	    host->config_int(ctx, "claim_interval_ms", 5000, 10, 3600000,
	    &b->claim_interval_ms) == -1 ||
	    host->config_int(ctx, "wait_replicas", 0, 0, 100,
	    &b->wait_replicas) == -1 ||
	    host->config_int(ctx, "wait_timeout_ms", 1000, 1, 600000,
	    &b->wait_timeout_ms) == -1)
		return (-1);
	b->max_age_ms = v * 1000;
	if (b->backoff_max_ms < b->backoff_min_ms)
		b->backoff_max_ms = b->backoff_min_ms;
	from = host->config_get(ctx, "persist_from", "oldest");
	if (strcmp(from, "oldest") == 0)
		b->from_oldest = 1;
	else if (strcmp(from, "newest") != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "[redis] persist_from = %s: "
		    "expected oldest or newest", from);
		return (-1);
	}
	s = host->config_get(ctx, "key_prefix", "parley:");
	if ((n = strlen(s)) > RB_PREFIX_MAX) {
		host->log(ctx, PARLEY_LOG_ERROR, "[redis] key_prefix: at most "
		    "%d bytes", RB_PREFIX_MAX);
		return (-1);
	}
	if ((b->prefix = strdup(s)) == NULL ||
	    (b->feedkey = malloc(n + 5)) == NULL)
		goto nomem;
	snprintf(b->feedkey, n + 5, "%sfeed", s);
	s = host->config_get(ctx, "group", "parley-persist");
	if (s[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "[redis] group is empty");
		return (-1);
	}
	if ((b->group = strdup(s)) == NULL)
		goto nomem;
	return (0);
nomem:
	host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
	return (-1);
}

/* Free what rb_config() set. */
static void
rb_config_free(struct rbp *b)
{
	free(b->hostname);
	free(b->sockpath);
	free(b->user);
	free(b->password);
	free(b->prefix);
	free(b->feedkey);
	free(b->group);
	b->hostname = b->sockpath = b->user = b->password = NULL;
	b->prefix = b->feedkey = b->group = NULL;
}

static void rb_fini(void *state);

/* Best effort at exit: write what hiredis still buffers (XACKs). */
static void
conn_flush(struct rconn *c, int ms)
{
	struct pollfd pfd;
	int64_t deadline;
	int done = 0;

	if (c->ac == NULL || c->state < C_SETUP)
		return;
	deadline = c->b->host->now_ms() + ms;
	while (!done && c->ac != NULL && c->b->host->now_ms() < deadline) {
		if (c->ac->c.obuf == NULL || sdslen(c->ac->c.obuf) == 0)
			break;
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (redisBufferWrite(&c->ac->c, &done) == REDIS_ERR)
			break;
	}
}

static int
rb_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct rbp *b;
	const char *names[C_N] = { "command", "fan-out", "persist" };
	char *g;
	size_t n;
	int i;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	b->host = host;
	b->ctx = ctx;
	b->ready = -1;
	if (rb_config(b) == -1)
		goto fail;

	b->shared = host->storage_shared(ctx) == 1;
	if (!b->shared) {
		n = strlen(b->group) + strlen(host->instance_id(ctx)) + 2;
		if ((g = malloc(n)) == NULL)
			goto nomem;
		snprintf(g, n, "%s-%s", b->group, host->instance_id(ctx));
		free(b->group);
		b->group = g;
	}
	if ((b->consumer = strdup(host->instance_id(ctx))) == NULL)
		goto nomem;
	snprintf(b->claim_cursor, sizeof(b->claim_cursor), "0-0");

	if ((b->buckets = calloc(RB_MINBUCKETS, sizeof(*b->buckets))) == NULL)
		goto nomem;
	b->nbuckets = RB_MINBUCKETS;
	for (i = 0; i < C_N; i++) {
		b->c[i].b = b;
		b->c[i].role = i;
		b->c[i].name = names[i];
		b->c[i].fd = -1;
		b->c[i].state = C_DOWN;
	}
	if ((b->health = host->timer_add(ctx, RB_HEALTH_MS, 1, health_tick,
	    b)) == NULL ||
	    (b->claim_timer = host->timer_add(ctx,
	    (unsigned)b->claim_interval_ms, 1, claim_tick, b)) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "cannot add timers");
		goto fail;
	}
	host->log(ctx, PARLEY_LOG_INFO, "%s db %lld, streams %sroom:*, feed %s,"
	    " persist group %s (%s storage), consumer %s", b->where, b->db,
	    b->prefix, b->feedkey, b->group, b->shared ? "shared" : "local",
	    b->consumer);
	ready_update(b);
	for (i = 0; i < C_N; i++)
		conn_start(&b->c[i]);
	*state = b;
	return (0);
nomem:
	host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
fail:
	rb_fini(b);
	return (-1);
}

static void
rb_fini(void *state)
{
	struct rbp *b = state;
	struct wroom *r, *next;
	redisAsyncContext *ac;
	size_t i;
	int k;

	if (b == NULL)
		return;
	b->stopping = 1;
	/* the last acknowledgements: a no-op if they are lost, but cheaper */
	acks_flush(b);
	conn_flush(&b->c[C_CMD], 500);
	if (b->health != NULL)
		b->host->timer_del(b->health);
	if (b->claim_timer != NULL)
		b->host->timer_del(b->claim_timer);
	if (b->fan_timer != NULL)
		b->host->timer_del(b->fan_timer);
	for (k = 0; k < C_N; k++) {
		if (b->c[k].retry != NULL)
			b->host->timer_del(b->c[k].retry);
		b->c[k].retry = NULL;
		if ((ac = b->c[k].ac) != NULL) {
			b->c[k].ac = NULL;
			/* unsettled publishes fail: their callbacks get NULL */
			redisAsyncFree(ac);
		}
		ev_cleanup(&b->c[k]);
	}
	if (b->buckets != NULL) {
		for (i = 0; i < b->nbuckets; i++)
			for (r = b->buckets[i]; r != NULL; r = next) {
				next = r->next;
				free(r->key);
				free(r);
			}
	}
	free(b->buckets);
	free(b->out.v);
	free(b->acks);
	rb_config_free(b);
	free(b->consumer);
	free(b->sha);
	free(b);
}

/* parleyd -t: read and check the [redis] section, connect to nothing. */
static int
rb_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct rbp *b;
	int rv;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	b->host = host;
	b->ctx = ctx;
	rv = rb_config(b);
	rb_config_free(b);
	free(b);
	return (rv);
}

static const struct parley_backplane_ops rb_ops = {
	.size = sizeof(struct parley_backplane_ops),
	.flags = PARLEY_BP_DURABLE | PARLEY_BP_SHARED | PARLEY_BP_PERSIST_FEED,
	.publish = rb_publish,
	.watch_room = rb_watch_room,
	.unwatch_room = rb_unwatch_room,
	.read_range = rb_read_range,
	.persist_ack = rb_persist_ack,
};

static const struct parley_plugin rb_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_BACKPLANE,
	.name = "redis",
	.version = "1.0",
	.description = "Redis Streams backplane (shared, durable, "
	    "persist feed)",
	.init = rb_init,
	.fini = rb_fini,
	.check = rb_check,
	.backplane = &rb_ops,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&rb_plugin);
}
