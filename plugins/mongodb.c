/*
 * mongodb.c - the "mongodb" storage plugin: rooms and chat history in
 * MongoDB (libmongoc), one store shared by every instance
 * (PARLEY_ST_SHARED).
 *
 * [mongodb] keys:
 *	uri		mongodb://[user:password@]host[:port][,...][/db][?opts]
 *			(default mongodb://127.0.0.1:27017).  Timeouts the
 *			URI does not set default to serverSelectionTimeoutMS
 *			5000, connectTimeoutMS 5000 and socketTimeoutMS 30000.
 *	database	database (default: the URI's, else parley)
 *	write_concern	majority, or the number of members that must
 *			acknowledge (default 1; 0 = unacknowledged, which
 *			can lose history and is logged as such)
 *	wtimeout_ms	how long a write waits for its write concern (default
 *			10000, 0 = forever)
 *	pool_size	connections (clients) at most, one per concurrent
 *			worker call (default 4)
 *
 * Collections (every _id is an ObjectId; names and ids are plain fields):
 *	rooms		{name, creator, created_ms, topic}
 *	messages	{room, position, id, sender, ts_ms, content_type, body,
 *			 edited_ms, deleted, media_id}; body is BSON binary,
 *			so any bytes (NULs too) round-trip
 * Indexes: messages (room, position) unique and (room, id) unique, rooms
 * (name) unique, created at start-up when missing.
 *
 * Threads: every storage op is a "worker" op and may run on several worker
 * threads at once; each takes a client from a mongoc_client_pool.  Writes
 * (store, room_create, room_delete) hold the instance's write lock: a store
 * first asks which (room, position) and (room, id) already exist and inserts
 * only the others, so redelivery is a no-op even on a server that does not
 * enforce unique indexes.  Between instances that check-then-insert can
 * race; a real MongoDB's unique indexes then refuse the duplicate, the batch
 * fails and its retry finds the message stored.
 *
 * Atomicity: a batch is one ordered bulk write, not a transaction (those
 * need a replica set).  A batch that fails part way may leave its first
 * messages written; the host retries it, and the retry skips what is
 * there, so the end state is the same as one clean write.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mongoc/mongoc.h>

#include <parley/plugin.h>

#include "conflicts.h"

#define MG_DUPKEY 11000		/* server error: duplicate key */

struct mg {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	mongoc_uri_t *uri;
	mongoc_client_pool_t *pool;
	char *dbname;
	char where[256];	/* host list and database, for messages */
	long long pool_size;	/* configuration */
	const char *wcname;	/* write_concern (owned by the host) */
	pthread_mutex_t wlock;	/* one writer at a time (see above) */
};

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
mgerr(char *err, size_t errlen, const char *what, const bson_error_t *e)
{
	seterr(err, errlen, "%s: %s", what, e->message);
	return (-1);
}

/* A client and the two collections, for one call. */
struct mgc {
	struct mg *s;
	mongoc_client_t *client;
	mongoc_collection_t *rooms;
	mongoc_collection_t *msgs;
};

/* Take a client (waits while pool_size are busy). */
static void
mgc_get(struct mg *s, struct mgc *c)
{
	c->s = s;
	c->client = mongoc_client_pool_pop(s->pool);
	c->rooms = mongoc_client_get_collection(c->client, s->dbname, "rooms");
	c->msgs = mongoc_client_get_collection(c->client, s->dbname,
	    "messages");
}

static void
mgc_put(struct mgc *c)
{
	mongoc_collection_destroy(c->rooms);
	mongoc_collection_destroy(c->msgs);
	mongoc_client_pool_push(c->s->pool, c->client);
}

/* ---------------------------------------------------------------- */
/* documents                                                           */

static int
str_ok(const char *v)
{
	return (v == NULL || bson_utf8_validate(v, strlen(v), false));
}

/* Append v, or nothing when v is NULL. */
static void
append_opt_str(bson_t *d, const char *key, const char *v)
{
	if (v != NULL)
		BSON_APPEND_UTF8(d, key, v);
}

static void
append_body(bson_t *d, const char *key, const char *body, size_t len)
{
	bson_append_binary(d, key, -1, BSON_SUBTYPE_BINARY,
	    (const uint8_t *)(len > 0 ? body : ""), (uint32_t)len);
}

/* The message document for chat message m (a new ObjectId). */
static void
msg_doc(bson_t *d, const struct parley_msg *m)
{
	bson_oid_t oid;

	bson_init(d);
	bson_oid_init(&oid, NULL);
	BSON_APPEND_OID(d, "_id", &oid);
	BSON_APPEND_UTF8(d, "room", m->room);
	BSON_APPEND_INT64(d, "position", (int64_t)m->position);
	BSON_APPEND_UTF8(d, "id", m->id);
	BSON_APPEND_UTF8(d, "sender", m->sender != NULL ? m->sender : "");
	BSON_APPEND_INT64(d, "ts_ms", m->timestamp_ms);
	append_opt_str(d, "content_type", m->content_type);
	append_body(d, "body", m->deleted ? NULL : m->body, m->deleted ? 0 :
	    m->body_len);
	BSON_APPEND_INT64(d, "edited_ms", m->edited_ms);
	BSON_APPEND_BOOL(d, "deleted", m->deleted != 0);
	if (!m->deleted)
		append_opt_str(d, "media_id", m->media_id);
}

/* String field key of doc, or NULL when absent or not a string. */
static const char *
get_str(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
		return (bson_iter_utf8(&it, NULL));
	return (NULL);
}

static int64_t
get_int(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (bson_iter_init_find(&it, doc, key) && (BSON_ITER_HOLDS_INT64(&it)
	    || BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_DOUBLE(&it) ||
	    BSON_ITER_HOLDS_BOOL(&it)))
		return (bson_iter_as_int64(&it));
	return (0);
}

/* Body bytes (binary, or a string written by someone else). */
static const char *
get_body(const bson_t *doc, size_t *len)
{
	bson_iter_t it;
	const uint8_t *data;
	bson_subtype_t sub;
	uint32_t n;

	*len = 0;
	if (!bson_iter_init_find(&it, doc, "body"))
		return ("");
	if (BSON_ITER_HOLDS_BINARY(&it)) {
		bson_iter_binary(&it, &sub, &n, &data);
		*len = n;
		return (n > 0 ? (const char *)data : "");
	}
	if (BSON_ITER_HOLDS_UTF8(&it)) {
		const char *v = bson_iter_utf8(&it, &n);

		*len = n;
		return (v);
	}
	return ("");
}

/* Add message document doc of room to out.  Returns 0 or -1. */
static int
add_msg(const bson_t *doc, const char *room,
    const struct parley_list_api *api, struct parley_msg_list *out,
    char *err, size_t errlen)
{
	struct parley_msg m;

	memset(&m, 0, sizeof(m));
	m.room = room;
	m.position = (uint64_t)get_int(doc, "position");
	m.id = get_str(doc, "id");
	m.sender = get_str(doc, "sender");
	m.timestamp_ms = get_int(doc, "ts_ms");
	m.event = PARLEY_EV_MESSAGE;
	m.content_type = get_str(doc, "content_type");
	m.body = get_body(doc, &m.body_len);
	m.edited_ms = get_int(doc, "edited_ms");
	m.deleted = get_int(doc, "deleted") != 0;
	m.media_id = get_str(doc, "media_id");
	if (m.deleted) {
		m.body = "";
		m.body_len = 0;
		m.media_id = NULL;
	}
	if (m.id == NULL || m.sender == NULL) {
		seterr(err, errlen, "message without id or sender in "
		    "room %s", room);
		return (-1);
	}
	if (api->msg_add(out, &m) != 0) {
		seterr(err, errlen, "out of memory");
		return (-1);
	}
	return (0);
}

/* ---------------------------------------------------------------- */
/* store                                                               */

/* A room a batch writes chat into. */
struct rgrp {
	const char *name;
	const struct parley_msg *first;	/* its first chat message */
	uint64_t *pos;			/* taken positions (sorted) */
	size_t npos;
	char **ids;			/* taken ids (sorted) */
	size_t nids;
	size_t cap;
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

static int
pos_taken(const struct rgrp *g, uint64_t p)
{
	return (g->npos > 0 && bsearch(&p, g->pos, g->npos, sizeof(*g->pos),
	    cmp_u64) != NULL);
}

static int
id_taken(const struct rgrp *g, const char *id)
{
	return (g->nids > 0 && bsearch(&id, g->ids, g->nids, sizeof(*g->ids),
	    cmp_str) != NULL);
}

/* Mark (p, id) taken, keeping both arrays sorted.  0 or -1 (memory). */
static int
take(struct rgrp *g, uint64_t p, const char *id)
{
	size_t i;
	char *dup;

	if (g->npos == g->cap || g->nids == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		uint64_t *np = realloc(g->pos, cap * sizeof(*np));
		char **ni;

		if (np == NULL)
			return (-1);
		g->pos = np;
		if ((ni = realloc(g->ids, cap * sizeof(*ni))) == NULL)
			return (-1);
		g->ids = ni;
		g->cap = cap;
	}
	if (!pos_taken(g, p)) {
		for (i = g->npos; i > 0 && g->pos[i - 1] > p; i--)
			g->pos[i] = g->pos[i - 1];
		g->pos[i] = p;
		g->npos++;
	}
	if (id != NULL && !id_taken(g, id)) {
		if ((dup = strdup(id)) == NULL)
			return (-1);
		for (i = g->nids; i > 0 && strcmp(g->ids[i - 1], id) > 0; i--)
			g->ids[i] = g->ids[i - 1];
		g->ids[i] = dup;
		g->nids++;
	}
	return (0);
}

static void
rgrp_free(struct rgrp *g)
{
	size_t i;

	for (i = 0; i < g->nids; i++)
		free(g->ids[i]);
	free(g->ids);
	free(g->pos);
}

/*
 * What of room g's chat messages in msgs is stored already?  Marks their
 * positions and ids taken.  Returns 0, or -1 with err set.
 */
static int
load_taken(struct mgc *c, struct rgrp *g, const struct parley_msg *msgs,
    const unsigned char *skip, size_t n, char *err, size_t errlen)
{
	bson_t filter, or, a, b, in, pin, iin, opts, proj;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t e;
	char key[16];
	size_t i, k = 0;
	int rc = 0;

	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "room", g->name);
	BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &or);
	BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &a);
	BSON_APPEND_DOCUMENT_BEGIN(&a, "position", &pin);
	BSON_APPEND_ARRAY_BEGIN(&pin, "$in", &in);
	for (i = 0; i < n; i++) {
		if (skip[i] || msgs[i].event != PARLEY_EV_MESSAGE ||
		    strcmp(msgs[i].room, g->name) != 0)
			continue;
		snprintf(key, sizeof(key), "%zu", k++);
		BSON_APPEND_INT64(&in, key, (int64_t)msgs[i].position);
	}
	bson_append_array_end(&pin, &in);
	bson_append_document_end(&a, &pin);
	bson_append_document_end(&or, &a);
	BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &b);
	BSON_APPEND_DOCUMENT_BEGIN(&b, "id", &iin);
	BSON_APPEND_ARRAY_BEGIN(&iin, "$in", &in);
	for (i = 0, k = 0; i < n; i++) {
		if (skip[i] || msgs[i].event != PARLEY_EV_MESSAGE ||
		    strcmp(msgs[i].room, g->name) != 0)
			continue;
		snprintf(key, sizeof(key), "%zu", k++);
		BSON_APPEND_UTF8(&in, key, msgs[i].id);
	}
	bson_append_array_end(&iin, &in);
	bson_append_document_end(&b, &iin);
	bson_append_document_end(&or, &b);
	bson_append_array_end(&filter, &or);

	bson_init(&opts);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
	BSON_APPEND_INT32(&proj, "position", 1);
	BSON_APPEND_INT32(&proj, "id", 1);
	bson_append_document_end(&opts, &proj);

	cur = mongoc_collection_find_with_opts(c->msgs, &filter, &opts, NULL);
	while (rc == 0 && mongoc_cursor_next(cur, &doc))
		if (take(g, (uint64_t)get_int(doc, "position"),
		    get_str(doc, "id")) == -1) {
			seterr(err, errlen, "out of memory");
			rc = -1;
		}
	if (rc == 0 && mongoc_cursor_error(cur, &e))
		rc = mgerr(err, errlen, "find stored messages", &e);
	mongoc_cursor_destroy(cur);
	bson_destroy(&opts);
	bson_destroy(&filter);
	return (rc);
}

/* Create room g if it does not exist (creator: its first message). */
static int
room_auto(struct mgc *c, const struct rgrp *g, char *err, size_t errlen)
{
	bson_t filter, doc;
	const bson_t *found;
	mongoc_cursor_t *cur;
	bson_error_t e;
	bson_oid_t oid;
	int rc = 0, exists;

	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "name", g->name);
	cur = mongoc_collection_find_with_opts(c->rooms, &filter, NULL, NULL);
	exists = mongoc_cursor_next(cur, &found);
	if (mongoc_cursor_error(cur, &e))
		rc = mgerr(err, errlen, "find room", &e);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	if (rc == -1 || exists)
		return (rc);
	bson_init(&doc);
	bson_oid_init(&oid, NULL);
	BSON_APPEND_OID(&doc, "_id", &oid);
	BSON_APPEND_UTF8(&doc, "name", g->name);
	BSON_APPEND_UTF8(&doc, "creator", g->first->sender != NULL ?
	    g->first->sender : "");
	BSON_APPEND_INT64(&doc, "created_ms", g->first->timestamp_ms);
	if (!mongoc_collection_insert_one(c->rooms, &doc, NULL, NULL, &e) &&
	    !(e.domain == MONGOC_ERROR_SERVER && e.code == MG_DUPKEY))
		rc = mgerr(err, errlen, "create room", &e);
	bson_destroy(&doc);
	return (rc);
}

/* Queue an EDIT or DELETE of m on bulk. */
static int
bulk_update(mongoc_bulk_operation_t *bulk, const struct parley_msg *m,
    char *err, size_t errlen)
{
	bson_t sel, upd, set, unset, lte;
	bson_error_t e;
	int rc = 0;

	bson_init(&sel);
	BSON_APPEND_UTF8(&sel, "room", m->room);
	BSON_APPEND_UTF8(&sel, "id", m->ref_id);
	/* a moderator's (PARLEY_MSG_MODERATED) applies whoever sent it */
	if (!(m->flags & PARLEY_MSG_MODERATED))
		BSON_APPEND_UTF8(&sel, "sender", m->sender != NULL ?
		    m->sender : "");
	bson_init(&upd);
	if (m->event == PARLEY_EV_EDIT) {
		/* a live message, and never undo a later edit */
		BSON_APPEND_BOOL(&sel, "deleted", false);
		BSON_APPEND_DOCUMENT_BEGIN(&sel, "edited_ms", &lte);
		BSON_APPEND_INT64(&lte, "$lte", m->timestamp_ms);
		bson_append_document_end(&sel, &lte);
		BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
		append_body(&set, "body", m->body, m->body_len);
		BSON_APPEND_INT64(&set, "edited_ms", m->timestamp_ms);
		bson_append_document_end(&upd, &set);
	} else {
		BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
		BSON_APPEND_BOOL(&set, "deleted", true);
		append_body(&set, "body", NULL, 0);
		bson_append_document_end(&upd, &set);
		BSON_APPEND_DOCUMENT_BEGIN(&upd, "$unset", &unset);
		BSON_APPEND_UTF8(&unset, "media_id", "");
		bson_append_document_end(&upd, &unset);
	}
	if (!mongoc_bulk_operation_update_one_with_opts(bulk, &sel, &upd, NULL,
	    &e))
		rc = mgerr(err, errlen, "queue update", &e);
	bson_destroy(&upd);
	bson_destroy(&sel);
	return (rc);
}

/*
 * Can m be stored at all?  The server refuses strings that are not UTF-8,
 * which would fail the batch forever, so such a message is skipped (and
 * logged), as the store() contract asks.  Returns NULL or what is wrong.
 */
static const char *
unstorable(const struct parley_msg *m)
{
	if (!str_ok(m->room) || strlen(m->room) > PARLEY_ROOM_MAX)
		return ("room name");
	if (!str_ok(m->id) || strlen(m->id) > PARLEY_ID_MAX)
		return ("id");
	if (!str_ok(m->sender))
		return ("sender");
	if (m->event == PARLEY_EV_MESSAGE && (!str_ok(m->content_type) ||
	    !str_ok(m->media_id)))
		return ("content type or media id");
	if (m->event != PARLEY_EV_MESSAGE && !str_ok(m->ref_id))
		return ("ref_id");
	if (m->body_len > 15 * 1024 * 1024)
		return ("body (over 15 MiB)");
	return (NULL);
}

/*
 * The id of the message that holds msgs[i]'s position: an earlier message
 * of the batch, or the stored one ("?" if neither is found).
 */
static void
holder_id(struct mgc *c, const struct parley_msg *msgs,
    const unsigned char *skip, size_t i, char *buf, size_t len)
{
	bson_t filter, opts, proj;
	const bson_t *doc;
	mongoc_cursor_t *cur;
	const char *id;
	size_t j;

	snprintf(buf, len, "?");
	for (j = 0; j < i; j++)
		if (!skip[j] && msgs[j].event == PARLEY_EV_MESSAGE &&
		    msgs[j].position == msgs[i].position &&
		    strcmp(msgs[j].room, msgs[i].room) == 0) {
			snprintf(buf, len, "%s", msgs[j].id);
			return;
		}
	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "room", msgs[i].room);
	BSON_APPEND_INT64(&filter, "position", (int64_t)msgs[i].position);
	bson_init(&opts);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
	BSON_APPEND_INT32(&proj, "id", 1);
	bson_append_document_end(&opts, &proj);
	cur = mongoc_collection_find_with_opts(c->msgs, &filter, &opts, NULL);
	if (mongoc_cursor_next(cur, &doc) && (id = get_str(doc, "id")) != NULL)
		snprintf(buf, len, "%s", id);
	mongoc_cursor_destroy(cur);
	bson_destroy(&opts);
	bson_destroy(&filter);
}

static int
mg_store(void *state, const struct parley_msg *msgs, size_t n, char *err,
    size_t errlen)
{
	struct mg *s = state;
	struct mgc c;
	struct rgrp *g = NULL;
	unsigned char *skip = NULL;
	mongoc_bulk_operation_t *bulk = NULL;
	bson_t opts, reply, doc;
	bson_error_t e;
	struct conflicts cf;
	char held[PARLEY_ID_MAX + 1];
	const char *why;
	size_t i, k, ng = 0, nops = 0;
	int rc = -1;

	/* Refuse a malformed batch before touching the database. */
	for (i = 0; i < n; i++) {
		if (msgs[i].room == NULL || msgs[i].id == NULL ||
		    (msgs[i].body == NULL && msgs[i].body_len > 0)) {
			seterr(err, errlen, "message %zu: missing room, id or "
			    "body", i);
			return (-1);
		}
		if (msgs[i].position == 0 || msgs[i].position > INT64_MAX) {
			seterr(err, errlen, "message %zu (%s): position %llu "
			    "out of range", i, msgs[i].id,
			    (unsigned long long)msgs[i].position);
			return (-1);
		}
	}
	if (n == 0)
		return (0);
	cf.n = 0;
	if ((skip = calloc(n, 1)) == NULL || (g = calloc(n,
	    sizeof(*g))) == NULL) {
		free(skip);
		seterr(err, errlen, "out of memory");
		return (-1);
	}
	for (i = 0; i < n; i++) {
		if ((msgs[i].event != PARLEY_EV_MESSAGE &&
		    msgs[i].event != PARLEY_EV_EDIT &&
		    msgs[i].event != PARLEY_EV_DELETE) ||
		    (msgs[i].event != PARLEY_EV_MESSAGE &&
		    msgs[i].ref_id == NULL)) {
			skip[i] = 1;
			continue;
		}
		if ((why = unstorable(&msgs[i])) != NULL) {
			s->host->log(s->ctx, PARLEY_LOG_WARN, "room %.*s: "
			    "message %.*s not stored: its %s is not valid "
			    "UTF-8 or too long", 64, msgs[i].room, 64,
			    msgs[i].id, why);
			skip[i] = 1;
			continue;
		}
		if (msgs[i].event != PARLEY_EV_MESSAGE)
			continue;
		for (k = 0; k < ng; k++)
			if (strcmp(g[k].name, msgs[i].room) == 0)
				break;
		if (k == ng) {
			g[k].name = msgs[i].room;
			g[k].first = &msgs[i];
			ng++;
		}
	}

	pthread_mutex_lock(&s->wlock);
	mgc_get(s, &c);
	for (k = 0; k < ng; k++)
		if (room_auto(&c, &g[k], err, errlen) == -1 ||
		    load_taken(&c, &g[k], msgs, skip, n, err, errlen) == -1)
			goto out;
	bson_init(&opts);
	BSON_APPEND_BOOL(&opts, "ordered", true);
	bulk = mongoc_collection_create_bulk_operation_with_opts(c.msgs, &opts);
	bson_destroy(&opts);
	for (i = 0; i < n; i++) {
		if (skip[i])
			continue;
		if (msgs[i].event != PARLEY_EV_MESSAGE) {
			if (bulk_update(bulk, &msgs[i], err, errlen) == -1)
				goto out;
			nops++;
			continue;
		}
		for (k = 0; k < ng; k++)
			if (strcmp(g[k].name, msgs[i].room) == 0)
				break;
		/* stored already, or twice in this batch */
		if (id_taken(&g[k], msgs[i].id))
			continue;
		/* another message holds its position: a conflict
		 * (conflicts.h) */
		if (pos_taken(&g[k], msgs[i].position)) {
			if (cf.n == 0)
				holder_id(&c, msgs, skip, i, held,
				    sizeof(held));
			conflicts_add(&cf, &msgs[i], held);
			continue;
		}
		if (take(&g[k], msgs[i].position, msgs[i].id) == -1) {
			seterr(err, errlen, "out of memory");
			goto out;
		}
		msg_doc(&doc, &msgs[i]);
		if (!mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL,
		    &e)) {
			bson_destroy(&doc);
			mgerr(err, errlen, "queue insert", &e);
			goto out;
		}
		bson_destroy(&doc);
		nops++;
	}
	if (nops > 0) {
		if (!mongoc_bulk_operation_execute(bulk, &reply, &e)) {
			mgerr(err, errlen, "bulk write", &e);
			bson_destroy(&reply);
			goto out;
		}
		bson_destroy(&reply);
	}
	rc = 0;
out:
	if (bulk != NULL)
		mongoc_bulk_operation_destroy(bulk);
	mgc_put(&c);
	pthread_mutex_unlock(&s->wlock);
	if (rc == 0)
		conflicts_report(s->host, s->ctx, &cf);
	for (k = 0; k < ng; k++)
		rgrp_free(&g[k]);
	free(g);
	free(skip);
	return (rc);
}

/* ---------------------------------------------------------------- */
/* reads                                                               */

/*
 * Run a find on messages and add the documents to out (in reverse with
 * reverse).  Everything is read before the first add, so an error never
 * leaves out half filled.  Returns the number added, or -1.
 */
static int
find_msgs(struct mg *s, const char *room, const bson_t *filter,
    const bson_t *opts, int reverse, const struct parley_list_api *api,
    struct parley_msg_list *out, char *err, size_t errlen)
{
	struct mgc c;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_t **docs = NULL, **nd;
	bson_error_t e;
	size_t n = 0, cap = 0, i;
	int rc = 0;

	mgc_get(s, &c);
	cur = mongoc_collection_find_with_opts(c.msgs, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nd = realloc(docs, cap * sizeof(*nd))) == NULL) {
				seterr(err, errlen, "out of memory");
				rc = -1;
				break;
			}
			docs = nd;
		}
		if ((docs[n] = bson_copy(doc)) == NULL) {
			seterr(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		n++;
	}
	if (rc == 0 && mongoc_cursor_error(cur, &e))
		rc = mgerr(err, errlen, "find messages", &e);
	mongoc_cursor_destroy(cur);
	mgc_put(&c);
	for (i = 0; rc == 0 && i < n; i++)
		if (add_msg(docs[reverse ? n - 1 - i : i], room, api, out, err,
		    errlen) == -1)
			rc = -1;
	for (i = 0; i < n; i++)
		bson_destroy(docs[i]);
	free(docs);
	return (rc < 0 ? -1 : (int)(n > INT32_MAX ? INT32_MAX : n));
}

static int
mg_fetch(void *state, const char *room, int dir, uint64_t cursor,
    size_t limit, const struct parley_list_api *api,
    struct parley_msg_list *out, char *err, size_t errlen)
{
	bson_t filter, opts, cmp, sort;
	int rc, newest;

	if (dir != PARLEY_PAGE_AFTER && dir != PARLEY_PAGE_BEFORE) {
		seterr(err, errlen, "bad paging direction %d", dir);
		return (-1);
	}
	if (room == NULL) {
		seterr(err, errlen, "fetch without a room");
		return (-1);
	}
	if (limit == 0 || (dir == PARLEY_PAGE_AFTER && cursor >= INT64_MAX))
		return (0);
	if (limit > INT64_MAX)
		limit = INT64_MAX;
	newest = dir == PARLEY_PAGE_BEFORE && (cursor == 0 ||
	    cursor > INT64_MAX);
	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "room", room);
	/* AFTER 0 is every message: no condition (positions start at 1) */
	if (!newest && !(dir == PARLEY_PAGE_AFTER && cursor == 0)) {
		BSON_APPEND_DOCUMENT_BEGIN(&filter, "position", &cmp);
		BSON_APPEND_INT64(&cmp, dir == PARLEY_PAGE_AFTER ? "$gt" :
		    "$lt", (int64_t)cursor);
		bson_append_document_end(&filter, &cmp);
	}
	bson_init(&opts);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
	BSON_APPEND_INT32(&sort, "position", dir == PARLEY_PAGE_AFTER ? 1 : -1);
	bson_append_document_end(&opts, &sort);
	BSON_APPEND_INT64(&opts, "limit", (int64_t)limit);
	rc = find_msgs(state, room, &filter, &opts, dir == PARLEY_PAGE_BEFORE,
	    api, out, err, errlen);
	bson_destroy(&opts);
	bson_destroy(&filter);
	return (rc < 0 ? -1 : 0);
}

static int
mg_get_msg(void *state, const char *room, const char *id,
    const struct parley_list_api *api, struct parley_msg_list *out,
    char *err, size_t errlen)
{
	bson_t filter, opts;
	int rc;

	if (room == NULL || id == NULL) {
		seterr(err, errlen, "get_msg without a room or id");
		return (-1);
	}
	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "room", room);
	BSON_APPEND_UTF8(&filter, "id", id);
	bson_init(&opts);
	BSON_APPEND_INT64(&opts, "limit", 1);
	rc = find_msgs(state, room, &filter, &opts, 0, api, out, err, errlen);
	bson_destroy(&opts);
	bson_destroy(&filter);
	return (rc < 0 ? -1 : rc > 0);
}

/* ---------------------------------------------------------------- */
/* rooms                                                               */

static int
mg_room_create(void *state, const struct parley_room_info *r, char *err,
    size_t errlen)
{
	struct mg *s = state;
	struct mgc c;
	bson_t filter, doc;
	const bson_t *found;
	mongoc_cursor_t *cur;
	bson_error_t e;
	bson_oid_t oid;
	int rc = 1;

	if (r == NULL || r->name == NULL) {
		seterr(err, errlen, "room without a name");
		return (-1);
	}
	if (!str_ok(r->name) || !str_ok(r->creator) || !str_ok(r->topic)) {
		seterr(err, errlen, "room name, creator or topic is not valid "
		    "UTF-8");
		return (-1);
	}
	pthread_mutex_lock(&s->wlock);
	mgc_get(s, &c);
	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "name", r->name);
	cur = mongoc_collection_find_with_opts(c.rooms, &filter, NULL, NULL);
	if (mongoc_cursor_next(cur, &found))
		rc = 0;
	else if (mongoc_cursor_error(cur, &e))
		rc = mgerr(err, errlen, "find room", &e);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	if (rc == 1) {
		bson_init(&doc);
		bson_oid_init(&oid, NULL);
		BSON_APPEND_OID(&doc, "_id", &oid);
		BSON_APPEND_UTF8(&doc, "name", r->name);
		append_opt_str(&doc, "creator", r->creator);
		BSON_APPEND_INT64(&doc, "created_ms", r->created_ms);
		append_opt_str(&doc, "topic", r->topic);
		if (!mongoc_collection_insert_one(c.rooms, &doc, NULL, NULL,
		    &e))
			rc = e.domain == MONGOC_ERROR_SERVER &&
			    e.code == MG_DUPKEY ? 0 :
			    mgerr(err, errlen, "create room", &e);
		bson_destroy(&doc);
	}
	mgc_put(&c);
	pthread_mutex_unlock(&s->wlock);
	return (rc);
}

/* Fill ri's last_position and message_count from messages. */
static int
room_stats(struct mgc *c, const char *name, struct parley_room_info *ri,
    char *err, size_t errlen)
{
	bson_t filter, opts, sort, proj;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t e;
	int64_t n;
	int rc = 0;

	bson_init(&filter);
	BSON_APPEND_UTF8(&filter, "room", name);
	n = mongoc_collection_count_documents(c->msgs, &filter, NULL, NULL,
	    NULL, &e);
	if (n < 0) {
		bson_destroy(&filter);
		return (mgerr(err, errlen, "count messages", &e));
	}
	ri->message_count = (uint64_t)n;
	ri->last_position = 0;
	if (n > 0) {
		bson_init(&opts);
		BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
		BSON_APPEND_INT32(&sort, "position", -1);
		bson_append_document_end(&opts, &sort);
		BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
		BSON_APPEND_INT32(&proj, "position", 1);
		bson_append_document_end(&opts, &proj);
		BSON_APPEND_INT64(&opts, "limit", 1);
		cur = mongoc_collection_find_with_opts(c->msgs, &filter, &opts,
		    NULL);
		if (mongoc_cursor_next(cur, &doc))
			ri->last_position = (uint64_t)get_int(doc, "position");
		else if (mongoc_cursor_error(cur, &e))
			rc = mgerr(err, errlen, "newest message", &e);
		mongoc_cursor_destroy(cur);
		bson_destroy(&opts);
	}
	bson_destroy(&filter);
	return (rc);
}

/* Rooms matching name (all when NULL) into out, by name.  Count or -1. */
static int
find_rooms(struct mg *s, const char *name, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	struct parley_room_info ri;
	struct mgc c;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_t filter, opts, sort, **docs = NULL, **nd;
	bson_error_t e;
	size_t n = 0, cap = 0, i;
	int rc = 0;

	bson_init(&filter);
	if (name != NULL)
		BSON_APPEND_UTF8(&filter, "name", name);
	bson_init(&opts);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
	BSON_APPEND_INT32(&sort, "name", 1);
	bson_append_document_end(&opts, &sort);
	mgc_get(s, &c);
	cur = mongoc_collection_find_with_opts(c.rooms, &filter, &opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		/* one per name, even if a race left two */
		if (n > 0 && get_str(doc, "name") != NULL &&
		    get_str(docs[n - 1], "name") != NULL &&
		    strcmp(get_str(doc, "name"), get_str(docs[n - 1],
		    "name")) == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nd = realloc(docs, cap * sizeof(*nd))) == NULL) {
				rc = -1;
				break;
			}
			docs = nd;
		}
		if ((docs[n] = bson_copy(doc)) == NULL) {
			rc = -1;
			break;
		}
		n++;
	}
	if (rc == -1)
		seterr(err, errlen, "out of memory");
	else if (mongoc_cursor_error(cur, &e))
		rc = mgerr(err, errlen, "find rooms", &e);
	mongoc_cursor_destroy(cur);
	for (i = 0; rc == 0 && i < n; i++) {
		memset(&ri, 0, sizeof(ri));
		if ((ri.name = get_str(docs[i], "name")) == NULL)
			continue;
		ri.creator = get_str(docs[i], "creator");
		ri.created_ms = get_int(docs[i], "created_ms");
		ri.topic = get_str(docs[i], "topic");
		if (room_stats(&c, ri.name, &ri, err, errlen) == -1)
			rc = -1;
		else if (api->room_add(out, &ri) != 0) {
			seterr(err, errlen, "out of memory");
			rc = -1;
		}
	}
	mgc_put(&c);
	for (i = 0; i < n; i++)
		bson_destroy(docs[i]);
	free(docs);
	bson_destroy(&opts);
	bson_destroy(&filter);
	return (rc < 0 ? -1 : (int)(n > INT32_MAX ? INT32_MAX : n));
}

static int
mg_room_list(void *state, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	return (find_rooms(state, NULL, api, out, err, errlen) < 0 ? -1 : 0);
}

static int
mg_room_get(void *state, const char *name, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	int n;

	if (name == NULL) {
		seterr(err, errlen, "room_get without a name");
		return (-1);
	}
	n = find_rooms(state, name, api, out, err, errlen);
	return (n < 0 ? -1 : n > 0);
}

/* delete_many; *deleted gets the count.  Returns 0 or -1. */
static int
delete_where(mongoc_collection_t *coll, const char *key, const char *v,
    int64_t *deleted, char *err, size_t errlen)
{
	bson_t sel, reply;
	bson_error_t e;
	int rc = 0;

	bson_init(&sel);
	BSON_APPEND_UTF8(&sel, key, v);
	if (!mongoc_collection_delete_many(coll, &sel, NULL, &reply, &e))
		rc = mgerr(err, errlen, "delete", &e);
	else
		*deleted += get_int(&reply, "deletedCount");
	bson_destroy(&reply);
	bson_destroy(&sel);
	return (rc);
}

static int
mg_room_delete(void *state, const char *name, char *err, size_t errlen)
{
	struct mg *s = state;
	struct mgc c;
	int64_t deleted = 0;
	int rc;

	if (name == NULL) {
		seterr(err, errlen, "room_delete without a name");
		return (-1);
	}
	pthread_mutex_lock(&s->wlock);
	mgc_get(s, &c);
	/* messages first: a failure half way leaves the room listed */
	rc = delete_where(c.msgs, "room", name, &deleted, err, errlen);
	if (rc == 0)
		rc = delete_where(c.rooms, "name", name, &deleted, err,
		    errlen);
	mgc_put(&c);
	pthread_mutex_unlock(&s->wlock);
	return (rc < 0 ? -1 : deleted > 0);
}

/* ping on client; 0 or -1 with err set. */
static int
ping_client(mongoc_client_t *client, char *err, size_t errlen)
{
	bson_t cmd, reply;
	bson_error_t e;
	int rc = 0;

	bson_init(&cmd);
	BSON_APPEND_INT32(&cmd, "ping", 1);
	if (!mongoc_client_command_simple(client, "admin", &cmd, NULL, &reply,
	    &e))
		rc = mgerr(err, errlen, "ping", &e);
	bson_destroy(&reply);
	bson_destroy(&cmd);
	return (rc);
}

static int
mg_ping(void *state, char *err, size_t errlen)
{
	struct mg *s = state;
	mongoc_client_t *client;
	int rc;

	client = mongoc_client_pool_pop(s->pool);
	rc = ping_client(client, err, errlen);
	mongoc_client_pool_push(s->pool, client);
	return (rc);
}

/* ---------------------------------------------------------------- */
/* life cycle                                                          */

/* Append {key: {f1: 1[, f2: 1]}, name, unique: true} to the indexes array. */
static void
index_spec(bson_t *arr, const char *akey, const char *name, const char *f1,
    const char *f2)
{
	bson_t spec, key;

	BSON_APPEND_DOCUMENT_BEGIN(arr, akey, &spec);
	BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &key);
	BSON_APPEND_INT32(&key, f1, 1);
	if (f2 != NULL)
		BSON_APPEND_INT32(&key, f2, 1);
	bson_append_document_end(&spec, &key);
	BSON_APPEND_UTF8(&spec, "name", name);
	BSON_APPEND_BOOL(&spec, "unique", true);
	bson_append_document_end(arr, &spec);
}

/* Create the indexes (a no-op when they exist).  0, or -1 after logging. */
static int
mg_indexes(struct mg *s, mongoc_client_t *client)
{
	mongoc_database_t *db;
	bson_t cmd, arr, reply;
	bson_error_t e;
	int rc = 0, i;

	db = mongoc_client_get_database(client, s->dbname);
	for (i = 0; i < 2 && rc == 0; i++) {
		bson_init(&cmd);
		BSON_APPEND_UTF8(&cmd, "createIndexes", i == 0 ? "messages" :
		    "rooms");
		BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
		if (i == 0) {
			index_spec(&arr, "0", "room_position", "room",
			    "position");
			index_spec(&arr, "1", "room_id", "room", "id");
		} else
			index_spec(&arr, "0", "name", "name", NULL);
		bson_append_array_end(&cmd, &arr);
		if (!mongoc_database_write_command_with_opts(db, &cmd, NULL,
		    &reply, &e)) {
			s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: cannot "
			    "create the indexes of %s: %s", s->where, i == 0 ?
			    "messages" : "rooms", e.message);
			rc = -1;
		}
		bson_destroy(&reply);
		bson_destroy(&cmd);
	}
	mongoc_database_destroy(db);
	return (rc);
}

/*
 * libmongoc is initialised once per process, and cleaned up when this
 * plugin is unloaded (mongoc_init after mongoc_cleanup does nothing, so
 * not per instance).
 */
static pthread_once_t mg_once = PTHREAD_ONCE_INIT;
static int mg_inited;

/*
 * libmongoc's log goes to the host's log of the newest instance; its
 * info, debug and trace messages (every failed server check while the
 * server is down) are dropped.
 */
static pthread_mutex_t mg_log_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct parley_host *mg_log_host;
static struct parley_ctx *mg_log_ctx;

static void
mg_log(mongoc_log_level_t level, const char *domain, const char *message,
    void *arg)
{
	int l;

	(void)arg;
	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
		l = PARLEY_LOG_ERROR;
		break;
	case MONGOC_LOG_LEVEL_WARNING:
		l = PARLEY_LOG_WARN;
		break;
	default:
		return;
	}
	pthread_mutex_lock(&mg_log_lock);
	if (mg_log_host != NULL)
		mg_log_host->log(mg_log_ctx, l, "libmongoc %s: %s", domain,
		    message);
	pthread_mutex_unlock(&mg_log_lock);
}

static void
mg_log_to(const struct parley_host *host, struct parley_ctx *ctx)
{
	pthread_mutex_lock(&mg_log_lock);
	mg_log_host = host;
	mg_log_ctx = ctx;
	pthread_mutex_unlock(&mg_log_lock);
}

/* ctx goes away: libmongoc's log no longer goes to it. */
static void
mg_log_drop(struct parley_ctx *ctx)
{
	pthread_mutex_lock(&mg_log_lock);
	if (mg_log_ctx == ctx)
		mg_log_host = NULL;
	pthread_mutex_unlock(&mg_log_lock);
}

static void
mg_library_init(void)
{
	mongoc_log_set_handler(mg_log, NULL);
	mongoc_init();
	mg_inited = 1;
}

__attribute__((destructor)) static void
mg_library_fini(void)
{
	if (mg_inited)
		mongoc_cleanup();
}

/* Free what mg_config allocated. */
static void
mg_config_free(struct mg *s)
{
	if (s->uri != NULL)
		mongoc_uri_destroy(s->uri);
	s->uri = NULL;
	free(s->dbname);
	s->dbname = NULL;
}

static void
mg_fini(void *state)
{
	struct mg *s = state;

	if (s == NULL)
		return;
	mg_log_drop(s->ctx);
	if (s->pool != NULL)
		mongoc_client_pool_destroy(s->pool);
	mg_config_free(s);
	pthread_mutex_destroy(&s->wlock);
	free(s);
}

/* Set a timeout option the URI does not set itself. */
static void
uri_default(mongoc_uri_t *uri, const char *key, int32_t ms)
{
	if (!mongoc_uri_has_option(uri, key))
		mongoc_uri_set_option_as_int32(uri, key, ms);
}

/* Parse write_concern into wc.  0, or -1 after logging. */
static int
parse_wc(const struct parley_host *host, struct parley_ctx *ctx,
    const char *v, long long wtimeout, mongoc_write_concern_t *wc)
{
	char *end;
	long w;

	if (strcasecmp(v, "majority") == 0)
		mongoc_write_concern_set_wmajority(wc, (int32_t)wtimeout);
	else {
		errno = 0;
		w = strtol(v, &end, 10);
		if (v[0] == '\0' || *end != '\0' || errno != 0 || w < 0 ||
		    w > 50) {
			host->log(ctx, PARLEY_LOG_ERROR, "write_concern = %s: "
			    "expected majority or a number of members "
			    "(0..50)", v);
			return (-1);
		}
		mongoc_write_concern_set_w(wc, (int32_t)w);
		if (w > 0)
			mongoc_write_concern_set_wtimeout_int64(wc, wtimeout);
	}
	return (0);
}

/*
 * Read and check every key of the section (init and check): s->uri with
 * the write concern, timeouts and pool size set, s->dbname, s->where,
 * s->pool_size and s->wcname.  Returns 0, or -1 after logging; either way
 * what it allocated is s's (mg_config_free).
 */
static int
mg_config(const struct parley_host *host, struct parley_ctx *ctx,
    struct mg *s)
{
	mongoc_write_concern_t *wc;
	const mongoc_host_list_t *hl;
	const char *uristr, *db;
	bson_error_t e;
	long long pool, wtimeout;
	size_t off;

	if (host->config_int(ctx, "pool_size", 4, 1, 1000, &pool) == -1 ||
	    host->config_int(ctx, "wtimeout_ms", 10000, 0, 3600 * 1000,
	    &wtimeout) == -1)
		return (-1);
	s->pool_size = pool;
	uristr = host->config_get(ctx, "uri", "mongodb://127.0.0.1:27017");
	s->wcname = host->config_get(ctx, "write_concern", "1");
	if ((s->uri = mongoc_uri_new_with_error(uristr, &e)) == NULL) {
		/* the URI may hold a password: do not log it */
		host->log(ctx, PARLEY_LOG_ERROR, "uri: not a MongoDB URI: %s",
		    e.message);
		return (-1);
	}
	db = host->config_get(ctx, "database", NULL);
	if (db == NULL || db[0] == '\0')
		db = mongoc_uri_get_database(s->uri);
	if (db == NULL || db[0] == '\0')
		db = "parley";
	if ((s->dbname = strdup(db)) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	off = 0;
	for (hl = mongoc_uri_get_hosts(s->uri); hl != NULL &&
	    off < sizeof(s->where); hl = hl->next)
		off += (size_t)snprintf(s->where + off, sizeof(s->where) - off,
		    "%s%s", off ? "," : "", hl->host_and_port);
	if (off < sizeof(s->where))
		snprintf(s->where + off, sizeof(s->where) - off, "/%s",
		    s->dbname);

	wc = mongoc_write_concern_new();
	if (parse_wc(host, ctx, s->wcname, wtimeout, wc) == -1) {
		mongoc_write_concern_destroy(wc);
		return (-1);
	}
	if (mongoc_write_concern_get_w(wc) == MONGOC_WRITE_CONCERN_W_UNACKNOWLEDGED)
		host->log(ctx, PARLEY_LOG_WARN, "write_concern = 0: writes are "
		    "not acknowledged, so history lost by the server goes "
		    "unnoticed");
	mongoc_uri_set_write_concern(s->uri, wc);
	mongoc_write_concern_destroy(wc);
	uri_default(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
	uri_default(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, 5000);
	uri_default(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, 30000);
	mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_MAXPOOLSIZE,
	    (int32_t)pool);
	return (0);
}

/*
 * parleyd -t: the configuration only.  No client pool: creating one
 * resolves a mongodb+srv:// URI's hosts in DNS.
 */
static int
mg_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct mg s;
	int ret;

	pthread_once(&mg_once, mg_library_init);
	mg_log_to(host, ctx);
	memset(&s, 0, sizeof(s));
	s.host = host;
	s.ctx = ctx;
	ret = mg_config(host, ctx, &s);
	mg_config_free(&s);
	mg_log_drop(ctx);
	return (ret);
}

static int
mg_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct mg *s;
	mongoc_client_t *client;
	char err[512] = "";
	bson_error_t e;

	pthread_once(&mg_once, mg_library_init);
	mg_log_to(host, ctx);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	s->host = host;
	s->ctx = ctx;
	if ((errno = pthread_mutex_init(&s->wlock, NULL)) != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "mutex: %s", strerror(errno));
		free(s);
		return (-1);
	}
	if (mg_config(host, ctx, s) == -1)
		goto fail;

	if ((s->pool = mongoc_client_pool_new_with_error(s->uri, &e)) ==
	    NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", s->where, e.message);
		goto fail;
	}
	mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_pool_set_appname(s->pool, "parley");

	/* Reach the server and set up the indexes before we say yes. */
	client = mongoc_client_pool_pop(s->pool);
	if (ping_client(client, err, sizeof(err)) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", s->where, err);
		mongoc_client_pool_push(s->pool, client);
		goto fail;
	}
	if (mg_indexes(s, client) == -1) {
		mongoc_client_pool_push(s->pool, client);
		goto fail;
	}
	mongoc_client_pool_push(s->pool, client);
	host->log(ctx, PARLEY_LOG_INFO, "%s: connected (libmongoc %s, write "
	    "concern %s, pool of %lld)", s->where, mongoc_get_version(),
	    s->wcname, s->pool_size);
	*state = s;
	return (0);
fail:
	mg_fini(s);
	return (-1);
}

static const struct parley_storage_ops mg_ops = {
	.size = sizeof(struct parley_storage_ops),
	.flags = PARLEY_ST_SHARED,
	.store = mg_store,
	.fetch = mg_fetch,
	.get_msg = mg_get_msg,
	.room_create = mg_room_create,
	.room_list = mg_room_list,
	.room_get = mg_room_get,
	.room_delete = mg_room_delete,
	.ping = mg_ping,
};

static const struct parley_plugin mg_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_STORAGE,
	.name = "mongodb",
	.version = "1.0",
	.description = "rooms and history in MongoDB, shared by all instances",
	.init = mg_init,
	.fini = mg_fini,
	.storage = &mg_ops,
	.check = mg_check,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&mg_plugin);
}
