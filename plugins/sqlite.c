/*
 * sqlite.c - the "sqlite" storage plugin: rooms and chat history in one
 * SQLite file (WAL mode), local to this instance.
 *
 * [sqlite] keys:
 *	path		database file (default parley.db, relative to the
 *			config file's directory); created on first open
 *	busy_timeout_ms	how long to wait for a lock held by another process
 *			(default 5000)
 *	synchronous	normal | full (default normal): with normal a power
 *			loss may lose the last transactions, never corrupt
 *	wal_autocheckpoint
 *			WAL pages (4 KiB) between checkpoints (default 10000,
 *			about 40 MiB; 0 = never).  A page rewritten by many
 *			batches is copied to the database once per checkpoint,
 *			so a longer interval writes less under load.
 *
 * Threads: every storage op is a "worker" op and may run on several worker
 * threads at once.  The plugin holds one connection and one mutex around it;
 * SQLite serialises writers anyway, and readers are short.
 *
 * Schema (version 2):
 *	rooms(name PRIMARY KEY, creator, created_ms, topic)
 *	messages(room, position, id, sender, ts_ms, content_type, body,
 *	    edited_ms, deleted, media_id, PRIMARY KEY(room, position)),
 *	    UNIQUE INDEX messages_id_room (id, room)
 *	schema_version(version)
 * Version 1 had the unique index on (room, id) (messages_room_id); the
 * same constraint with id first puts a batch's index entries next to each
 * other (ids are made in order), so a commit rewrites a few index pages
 * instead of one per room it touches.  A version 1 database is migrated
 * on open, in one transaction.
 * Only chat messages are rows; EDIT and DELETE events update the row they
 * name, presence and typing events are never stored.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include <parley/plugin.h>

#include "conflicts.h"
#include "pathcheck.h"

#define SQ_SCHEMA_VERSION 2
#define SQ_STR_(x) #x
#define SQ_STR(x) SQ_STR_(x)

/* Prepared statements, prepared once at init and reused. */
enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_ROOM_AUTO,
	ST_EDIT,
	ST_DELETE,
	ST_FETCH_AFTER,
	ST_FETCH_BEFORE,
	ST_FETCH_NEWEST,
	ST_GET_MSG,
	ST_ROOM_CREATE,
	ST_ROOM_LIST,
	ST_ROOM_GET,
	ST_ROOM_DEL_MSGS,
	ST_ROOM_DEL,
	ST_PING,
	ST_POS_CHECK,
	ST_COUNT
};

#define MSG_COLUMNS \
	"position, id, sender, ts_ms, content_type, body, edited_ms, " \
	"deleted, media_id"
#define ROOM_COLUMNS \
	"r.name, r.creator, r.created_ms, r.topic, " \
	"(SELECT MAX(position) FROM messages m WHERE m.room = r.name), " \
	"(SELECT COUNT(*) FROM messages m WHERE m.room = r.name)"

static const char *const sq_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT] = "INSERT OR IGNORE INTO messages (room, position, id, "
	    "sender, ts_ms, content_type, body, edited_ms, deleted, media_id) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[ST_ROOM_AUTO] = "INSERT OR IGNORE INTO rooms (name, creator, "
	    "created_ms, topic) VALUES (?1, ?2, ?3, NULL)",
	/*
	 * An edit applies to a live message of the same sender, and never
	 * undoes a later edit (a redelivered old edit is a no-op).
	 */
	[ST_EDIT] = "UPDATE messages SET body = ?4, edited_ms = ?5 "
	    "WHERE room = ?1 AND id = ?2 AND (sender = ?3 OR ?6 = 1) "
	    "AND deleted = 0 AND edited_ms <= ?5",
	[ST_DELETE] = "UPDATE messages SET deleted = 1, body = X'', "
	    "media_id = NULL WHERE room = ?1 AND id = ?2 AND "
	    "(sender = ?3 OR ?6 = 1)",
	[ST_FETCH_AFTER] = "SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE room = ?1 AND position > ?2 ORDER BY position ASC LIMIT ?3",
	[ST_FETCH_BEFORE] = "SELECT * FROM (SELECT " MSG_COLUMNS
	    " FROM messages WHERE room = ?1 AND position < ?2 "
	    "ORDER BY position DESC LIMIT ?3) ORDER BY position ASC",
	[ST_FETCH_NEWEST] = "SELECT * FROM (SELECT " MSG_COLUMNS
	    " FROM messages WHERE room = ?1 "
	    "ORDER BY position DESC LIMIT ?3) ORDER BY position ASC",
	[ST_GET_MSG] = "SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE room = ?1 AND id = ?2",
	[ST_ROOM_CREATE] = "INSERT OR IGNORE INTO rooms (name, creator, "
	    "created_ms, topic) VALUES (?1, ?2, ?3, ?4)",
	[ST_ROOM_LIST] = "SELECT " ROOM_COLUMNS " FROM rooms r ORDER BY r.name",
	[ST_ROOM_GET] = "SELECT " ROOM_COLUMNS " FROM rooms r "
	    "WHERE r.name = ?1",
	[ST_ROOM_DEL_MSGS] = "DELETE FROM messages WHERE room = ?1",
	[ST_ROOM_DEL] = "DELETE FROM rooms WHERE name = ?1",
	[ST_PING] = "SELECT 1",
	/* who holds a position, and is this id in the room at all */
	[ST_POS_CHECK] = "SELECT (SELECT id FROM messages WHERE room = ?1 AND "
	    "position = ?2), EXISTS (SELECT 1 FROM messages WHERE room = ?1 "
	    "AND id = ?3)",
};

static const char sq_schema[] =
	"CREATE TABLE IF NOT EXISTS rooms ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  creator TEXT,"
	"  created_ms INTEGER NOT NULL DEFAULT 0,"
	"  topic TEXT);"
	"CREATE TABLE IF NOT EXISTS messages ("
	"  room TEXT NOT NULL,"
	"  position INTEGER NOT NULL,"
	"  id TEXT NOT NULL,"
	"  sender TEXT NOT NULL,"
	"  ts_ms INTEGER NOT NULL,"
	"  content_type TEXT,"
	"  body BLOB NOT NULL,"
	"  edited_ms INTEGER NOT NULL DEFAULT 0,"
	"  deleted INTEGER NOT NULL DEFAULT 0,"
	"  media_id TEXT,"
	"  PRIMARY KEY (room, position));"
	"CREATE UNIQUE INDEX IF NOT EXISTS messages_id_room"
	"  ON messages (id, room);";

struct sq {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	pthread_mutex_t lock;	/* guards db and st[] */
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
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

/* Error of the last call on the connection (call with the lock held). */
static void
dberr(struct sq *s, char *err, size_t errlen, const char *what)
{
	seterr(err, errlen, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Returns the statement, reset and with no bindings. */
static sqlite3_stmt *
stmt(struct sq *s, int which)
{
	sqlite3_reset(s->st[which]);
	sqlite3_clear_bindings(s->st[which]);
	return (s->st[which]);
}

/* Run a statement that returns no rows.  Returns 0, or -1. */
static int
exec_stmt(struct sq *s, sqlite3_stmt *st, char *err, size_t errlen,
    const char *what)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		dberr(s, err, errlen, what);
		sqlite3_reset(st);
		return (-1);
	}
	sqlite3_reset(st);
	return (0);
}

static int
bind_str(sqlite3_stmt *st, int i, const char *v)
{
	return (v != NULL ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) :
	    sqlite3_bind_null(st, i));
}

static int
bind_blob(sqlite3_stmt *st, int i, const char *v, size_t len)
{
	/* A NULL pointer would bind SQL NULL: an empty body is X''. */
	return (sqlite3_bind_blob64(st, i, len > 0 ? v : "",
	    (sqlite3_uint64)len, SQLITE_STATIC));
}

static const char *
col_str(sqlite3_stmt *st, int i)
{
	return ((const char *)sqlite3_column_text(st, i));
}

/* ---------------------------------------------------------------- */
/* store                                                               */

/*
 * Rooms already added (INSERT OR IGNORE) in the current transaction: a
 * batch holds many messages of few rooms, and each skipped statement is a
 * B-tree lookup saved.  Open addressing over the batch's own strings; when
 * half full it stops remembering (the statement then just runs).
 */
#define ROOMSET 512

struct roomset {
	const char *v[ROOMSET];
	size_t n;
};

/* 1 if room was seen in this transaction; else remembers it and says 0. */
static int
roomset_seen(struct roomset *rs, const char *room)
{
	uint32_t h = 2166136261u;
	const unsigned char *p;
	size_t i;

	for (p = (const unsigned char *)room; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	for (i = h % ROOMSET; rs->v[i] != NULL; i = (i + 1) % ROOMSET)
		if (strcmp(rs->v[i], room) == 0)
			return (1);
	if (rs->n < ROOMSET / 2) {
		rs->v[i] = room;
		rs->n++;
	}
	return (0);
}

/*
 * An INSERT of m changed nothing: either m is stored already (by id, a
 * redelivery) or another message holds its position and m is not in the
 * room, which is a conflict (conflicts.h).  Returns 0, or -1 on a database
 * error.
 */
static int
check_position(struct sq *s, const struct parley_msg *m, struct conflicts *cf,
    char *err, size_t errlen)
{
	sqlite3_stmt *st = stmt(s, ST_POS_CHECK);
	const char *held;
	int rc = SQLITE_OK;

	rc |= bind_str(st, 1, m->room);
	rc |= sqlite3_bind_int64(st, 2, (sqlite3_int64)m->position);
	rc |= bind_str(st, 3, m->id);
	if (rc != SQLITE_OK) {
		dberr(s, err, errlen, "bind");
		return (-1);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (held = col_str(st, 0)) != NULL &&
	    sqlite3_column_int(st, 1) == 0)
		conflicts_add(cf, m, held);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		dberr(s, err, errlen, "look up position");
		sqlite3_reset(st);
		return (-1);
	}
	sqlite3_reset(st);
	return (0);
}

static int
store_one(struct sq *s, const struct parley_msg *m, struct roomset *rooms,
    struct conflicts *cf, char *err, size_t errlen)
{
	const char *sender = m->sender != NULL ? m->sender : "";
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	switch (m->event) {
	case PARLEY_EV_MESSAGE:
		st = stmt(s, ST_INSERT);
		rc |= bind_str(st, 1, m->room);
		rc |= sqlite3_bind_int64(st, 2, (sqlite3_int64)m->position);
		rc |= bind_str(st, 3, m->id);
		rc |= bind_str(st, 4, sender);
		rc |= sqlite3_bind_int64(st, 5, m->timestamp_ms);
		rc |= bind_str(st, 6, m->content_type);
		rc |= bind_blob(st, 7, m->deleted ? NULL : m->body,
		    m->deleted ? 0 : m->body_len);
		rc |= sqlite3_bind_int64(st, 8, m->edited_ms);
		rc |= sqlite3_bind_int(st, 9, m->deleted ? 1 : 0);
		rc |= bind_str(st, 10, m->deleted ? NULL : m->media_id);
		if (rc != SQLITE_OK || exec_stmt(s, st, err, errlen,
		    "insert message") == -1)
			break;
		if (sqlite3_changes(s->db) == 0)
			return (check_position(s, m, cf, err, errlen));
		if (roomset_seen(rooms, m->room))
			return (0);
		st = stmt(s, ST_ROOM_AUTO);
		rc |= bind_str(st, 1, m->room);
		rc |= bind_str(st, 2, sender);
		rc |= sqlite3_bind_int64(st, 3, m->timestamp_ms);
		if (rc != SQLITE_OK)
			break;
		return (exec_stmt(s, st, err, errlen, "insert room"));
	case PARLEY_EV_EDIT:
	case PARLEY_EV_DELETE:
		if (m->ref_id == NULL)
			return (0);	/* names nothing: nothing to do */
		if (m->event == PARLEY_EV_EDIT) {
			st = stmt(s, ST_EDIT);
			rc |= bind_blob(st, 4, m->body, m->body_len);
			rc |= sqlite3_bind_int64(st, 5, m->timestamp_ms);
		} else
			st = stmt(s, ST_DELETE);
		rc |= bind_str(st, 1, m->room);
		rc |= bind_str(st, 2, m->ref_id);
		rc |= bind_str(st, 3, sender);
		rc |= sqlite3_bind_int(st, 6, (m->flags &
		    PARLEY_MSG_MODERATED) ? 1 : 0);
		if (rc != SQLITE_OK)
			break;
		return (exec_stmt(s, st, err, errlen, m->event ==
		    PARLEY_EV_EDIT ? "edit message" : "delete message"));
	default:
		/* presence, typing and unknown events are not history */
		return (0);
	}
	if (rc != SQLITE_OK)
		dberr(s, err, errlen, "bind");
	return (-1);
}

static int
sq_store(void *state, const struct parley_msg *msgs, size_t n, char *err,
    size_t errlen)
{
	struct sq *s = state;
	struct roomset rooms;
	struct conflicts cf;
	size_t i;
	int ret = 0;

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

	pthread_mutex_lock(&s->lock);
	if (exec_stmt(s, stmt(s, ST_BEGIN), err, errlen, "begin") == -1) {
		pthread_mutex_unlock(&s->lock);
		return (-1);
	}
	memset(&rooms, 0, sizeof(rooms));
	cf.n = 0;
	for (i = 0; i < n && ret == 0; i++)
		ret = store_one(s, &msgs[i], &rooms, &cf, err, errlen);
	if (ret == 0)
		ret = exec_stmt(s, stmt(s, ST_COMMIT), err, errlen, "commit");
	if (ret == -1 && !sqlite3_get_autocommit(s->db))
		(void)exec_stmt(s, stmt(s, ST_ROLLBACK), NULL, 0, "rollback");
	pthread_mutex_unlock(&s->lock);
	if (ret == 0)
		conflicts_report(s->host, s->ctx, &cf);
	return (ret);
}

/* ---------------------------------------------------------------- */
/* reads                                                               */

/*
 * Add every row of st (MSG_COLUMNS) to out.  Returns the number of rows, or
 * -1.  Leaves st reset.
 */
static int
add_rows(struct sq *s, sqlite3_stmt *st, const char *room,
    const struct parley_list_api *api, struct parley_msg_list *out,
    char *err, size_t errlen)
{
	struct parley_msg m;
	int rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&m, 0, sizeof(m));
		m.room = room;
		m.position = (uint64_t)sqlite3_column_int64(st, 0);
		m.id = col_str(st, 1);
		m.sender = col_str(st, 2);
		m.timestamp_ms = sqlite3_column_int64(st, 3);
		m.event = PARLEY_EV_MESSAGE;
		m.content_type = col_str(st, 4);
		m.body = sqlite3_column_blob(st, 5);
		m.body_len = (size_t)sqlite3_column_bytes(st, 5);
		m.edited_ms = sqlite3_column_int64(st, 6);
		m.deleted = sqlite3_column_int(st, 7) != 0;
		m.media_id = col_str(st, 8);
		if (m.deleted || m.body == NULL) {
			m.body = "";
			m.body_len = 0;
		}
		if (m.id == NULL || m.sender == NULL) {
			seterr(err, errlen, "sqlite: out of memory");
			sqlite3_reset(st);
			return (-1);
		}
		if (api->msg_add(out, &m) != 0) {
			seterr(err, errlen, "out of memory");
			sqlite3_reset(st);
			return (-1);
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		dberr(s, err, errlen, "select");
		sqlite3_reset(st);
		return (-1);
	}
	sqlite3_reset(st);
	return (n);
}

static int
sq_fetch(void *state, const char *room, int dir, uint64_t cursor,
    size_t limit, const struct parley_list_api *api,
    struct parley_msg_list *out, char *err, size_t errlen)
{
	struct sq *s = state;
	sqlite3_stmt *st;
	int rc = SQLITE_OK, n;

	if (dir != PARLEY_PAGE_AFTER && dir != PARLEY_PAGE_BEFORE) {
		seterr(err, errlen, "bad paging direction %d", dir);
		return (-1);
	}
	if (limit == 0 || (dir == PARLEY_PAGE_AFTER && cursor >= INT64_MAX))
		return (0);
	if (limit > INT64_MAX)
		limit = INT64_MAX;

	pthread_mutex_lock(&s->lock);
	if (dir == PARLEY_PAGE_AFTER)
		st = stmt(s, ST_FETCH_AFTER);
	else if (cursor == 0 || cursor > INT64_MAX)
		st = stmt(s, ST_FETCH_NEWEST);
	else
		st = stmt(s, ST_FETCH_BEFORE);
	/* ST_FETCH_NEWEST does not use ?2; binding it is harmless. */
	rc |= bind_str(st, 1, room);
	rc |= sqlite3_bind_int64(st, 2, (sqlite3_int64)cursor);
	rc |= sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	if (rc != SQLITE_OK) {
		dberr(s, err, errlen, "bind");
		pthread_mutex_unlock(&s->lock);
		return (-1);
	}
	n = add_rows(s, st, room, api, out, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return (n < 0 ? -1 : 0);
}

static int
sq_get_msg(void *state, const char *room, const char *id,
    const struct parley_list_api *api, struct parley_msg_list *out,
    char *err, size_t errlen)
{
	struct sq *s = state;
	sqlite3_stmt *st;
	int rc = SQLITE_OK, n;

	pthread_mutex_lock(&s->lock);
	st = stmt(s, ST_GET_MSG);
	rc |= bind_str(st, 1, room);
	rc |= bind_str(st, 2, id);
	if (rc != SQLITE_OK) {
		dberr(s, err, errlen, "bind");
		pthread_mutex_unlock(&s->lock);
		return (-1);
	}
	n = add_rows(s, st, room, api, out, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return (n < 0 ? -1 : n > 0);
}

/* ---------------------------------------------------------------- */
/* rooms                                                               */

static int
sq_room_create(void *state, const struct parley_room_info *r, char *err,
    size_t errlen)
{
	struct sq *s = state;
	sqlite3_stmt *st;
	int rc = SQLITE_OK, ret;

	if (r == NULL || r->name == NULL) {
		seterr(err, errlen, "room without a name");
		return (-1);
	}
	pthread_mutex_lock(&s->lock);
	st = stmt(s, ST_ROOM_CREATE);
	rc |= bind_str(st, 1, r->name);
	rc |= bind_str(st, 2, r->creator);
	rc |= sqlite3_bind_int64(st, 3, r->created_ms);
	rc |= bind_str(st, 4, r->topic);
	if (rc != SQLITE_OK) {
		dberr(s, err, errlen, "bind");
		ret = -1;
	} else if (exec_stmt(s, st, err, errlen, "create room") == -1)
		ret = -1;
	else
		ret = sqlite3_changes(s->db) > 0;
	pthread_mutex_unlock(&s->lock);
	return (ret);
}

/* Add every row of st (ROOM_COLUMNS) to out; returns the count or -1. */
static int
add_rooms(struct sq *s, sqlite3_stmt *st, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	struct parley_room_info r;
	int rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		r.name = col_str(st, 0);
		r.creator = col_str(st, 1);
		r.created_ms = sqlite3_column_int64(st, 2);
		r.topic = col_str(st, 3);
		r.last_position = (uint64_t)sqlite3_column_int64(st, 4);
		r.message_count = (uint64_t)sqlite3_column_int64(st, 5);
		if (r.name == NULL || api->room_add(out, &r) != 0) {
			seterr(err, errlen, "out of memory");
			sqlite3_reset(st);
			return (-1);
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		dberr(s, err, errlen, "select rooms");
		sqlite3_reset(st);
		return (-1);
	}
	sqlite3_reset(st);
	return (n);
}

static int
sq_room_list(void *state, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	struct sq *s = state;
	int n;

	pthread_mutex_lock(&s->lock);
	n = add_rooms(s, stmt(s, ST_ROOM_LIST), api, out, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return (n < 0 ? -1 : 0);
}

static int
sq_room_get(void *state, const char *name, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	struct sq *s = state;
	sqlite3_stmt *st;
	int n;

	pthread_mutex_lock(&s->lock);
	st = stmt(s, ST_ROOM_GET);
	if (bind_str(st, 1, name) != SQLITE_OK) {
		dberr(s, err, errlen, "bind");
		n = -1;
	} else
		n = add_rooms(s, st, api, out, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return (n < 0 ? -1 : n > 0);
}

static int
sq_room_delete(void *state, const char *name, char *err, size_t errlen)
{
	struct sq *s = state;
	sqlite3_stmt *st;
	int ret = -1, changed = 0;

	pthread_mutex_lock(&s->lock);
	if (exec_stmt(s, stmt(s, ST_BEGIN), err, errlen, "begin") == -1)
		goto out;
	st = stmt(s, ST_ROOM_DEL_MSGS);
	if (bind_str(st, 1, name) != SQLITE_OK ||
	    exec_stmt(s, st, err, errlen, "delete messages") == -1)
		goto fail;
	changed += sqlite3_changes(s->db);
	st = stmt(s, ST_ROOM_DEL);
	if (bind_str(st, 1, name) != SQLITE_OK ||
	    exec_stmt(s, st, err, errlen, "delete room") == -1)
		goto fail;
	changed += sqlite3_changes(s->db);
	if (exec_stmt(s, stmt(s, ST_COMMIT), err, errlen, "commit") == -1)
		goto fail;
	ret = changed > 0;
	goto out;
fail:
	if (!sqlite3_get_autocommit(s->db))
		(void)exec_stmt(s, stmt(s, ST_ROLLBACK), NULL, 0, "rollback");
out:
	pthread_mutex_unlock(&s->lock);
	return (ret);
}

static int
sq_ping(void *state, char *err, size_t errlen)
{
	struct sq *s = state;
	sqlite3_stmt *st;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	st = stmt(s, ST_PING);
	if (sqlite3_step(st) != SQLITE_ROW) {
		dberr(s, err, errlen, "ping");
		ret = -1;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->lock);
	return (ret);
}

/* ---------------------------------------------------------------- */
/* life cycle                                                          */

/* Create or check the schema.  Returns 0, or -1 after logging. */
static int
sq_schema_init(struct sq *s, const char *path)
{
	sqlite3_stmt *st = NULL;
	char *msg = NULL;
	int rc, version = 0;

	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE;"
	    "CREATE TABLE IF NOT EXISTS schema_version ("
	    "  version INTEGER NOT NULL)", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(s->db, "SELECT MAX(version) FROM schema_version",
	    -1, &st, NULL) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		goto fail;
	if (version > SQ_SCHEMA_VERSION) {
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: schema version %d "
		    "is newer than this plugin's (%d): upgrade parley", path,
		    version, SQ_SCHEMA_VERSION);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return (-1);
	}
	if (version == 1)
		s->host->log(s->ctx, PARLEY_LOG_INFO, "%s: migrating the schema "
		    "from version 1 to 2 (messages indexed by id, room)", path);
	/* version 1: adds the (id, room) index, then drops (room, id) */
	if (sqlite3_exec(s->db, sq_schema, NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	if (version == 1 && sqlite3_exec(s->db, "DROP INDEX IF EXISTS "
	    "messages_room_id", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	if (version < SQ_SCHEMA_VERSION && sqlite3_exec(s->db, "INSERT INTO "
	    "schema_version (version) VALUES (" SQ_STR(SQ_SCHEMA_VERSION) ")",
	    NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	return (0);
fail:
	s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: cannot set up the schema: "
	    "%s", path, msg != NULL ? msg : sqlite3_errmsg(s->db));
	sqlite3_free(msg);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return (-1);
}

/*
 * Switch to WAL.  A file system without shared memory support keeps the
 * old journal mode: that still works, with readers and the writer
 * blocking each other, so say so and go on.  Returns 0, or -1 after
 * logging.
 */
static int
sq_wal(struct sq *s, const char *path)
{
	sqlite3_stmt *st;
	const char *mode;
	int ret = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: %s", path,
		    sqlite3_errmsg(s->db));
		return (-1);
	}
	if (sqlite3_step(st) != SQLITE_ROW)
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: journal_mode: %s",
		    path, sqlite3_errmsg(s->db));
	else {
		mode = (const char *)sqlite3_column_text(st, 0);
		if (mode == NULL || strcasecmp(mode, "wal") != 0)
			s->host->log(s->ctx, PARLEY_LOG_WARN, "%s: cannot use "
			    "WAL, journal mode is %s", path,
			    mode != NULL ? mode : "unknown");
		ret = 0;
	}
	sqlite3_finalize(st);
	return (ret);
}

static void
sq_fini(void *state)
{
	struct sq *s = state;
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "close: %s",
		    sqlite3_errmsg(s->db));
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* The [sqlite] section, as read by sq_config. */
struct sq_conf {
	long long busy;		/* busy_timeout_ms */
	long long ckpt;		/* wal_autocheckpoint */
	int full;		/* synchronous = full */
	char *path;		/* resolved; the caller frees it */
};

/*
 * Read and check every key of the section into c (init and check).
 * Returns 0, or -1 after logging (c->path is then NULL).
 */
static int
sq_config(const struct parley_host *host, struct parley_ctx *ctx,
    struct sq_conf *c)
{
	const char *sync;

	memset(c, 0, sizeof(*c));
	if (sqlite3_threadsafe() == 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "libsqlite3 was built without "
		    "thread support (SQLITE_THREADSAFE=0)");
		return (-1);
	}
	if (host->config_int(ctx, "busy_timeout_ms", 5000, 0, 3600 * 1000,
	    &c->busy) == -1)
		return (-1);
	if (host->config_int(ctx, "wal_autocheckpoint", 10000, 0, 10000000,
	    &c->ckpt) == -1)
		return (-1);
	sync = host->config_get(ctx, "synchronous", "normal");
	if (strcasecmp(sync, "normal") != 0 && strcasecmp(sync, "full") != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "synchronous = %s: expected "
		    "normal or full", sync);
		return (-1);
	}
	c->full = strcasecmp(sync, "full") == 0;
	if ((c->path = host->config_path(ctx, "path", "parley.db")) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "path: out of memory");
		return (-1);
	}
	return (0);
}

/*
 * parleyd -t: what sqlite3_open_v2 in init would trip over, found without
 * opening (so without creating) anything: the file's directory must exist
 * and be writable (the file, its journal and WAL are created there), an
 * existing file must be a readable and writable regular file that is
 * empty or starts with SQLite's header.  Returns 0, or -1 after logging.
 */
static int
sq_check_path(const struct parley_host *host, struct parley_ctx *ctx,
    const char *path)
{
	static const char magic[16] = "SQLite format 3";
	char *dir, head[sizeof(magic)];
	struct stat st;
	ssize_t n;
	int e, fd, ret = -1;

	if (path[0] == '\0')		/* a private temporary database */
		return (0);
	if ((e = pathcheck_parent(path, &dir)) == ENOMEM) {
		host->log(ctx, PARLEY_LOG_ERROR, "path: out of memory");
		return (-1);
	}
	if (e != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: unable to open database "
		    "file: directory %s: %s", path, dir, strerror(e));
		goto done;
	}
	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			ret = 0;	/* init creates it */
		else
			host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", path,
			    strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: unable to open database "
		    "file: not a regular file", path);
		goto done;
	}
	if (access(path, R_OK | W_OK) == -1 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: unable to open database "
		    "file: %s", path, strerror(errno));
		goto done;
	}
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n == -1)
		host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", path,
		    strerror(errno));
	else if (n != 0 && (n != (ssize_t)sizeof(head) ||
	    memcmp(head, magic, sizeof(magic)) != 0))
		host->log(ctx, PARLEY_LOG_ERROR, "%s: file is not a database",
		    path);
	else
		ret = 0;
done:
	free(dir);
	return (ret);
}

static int
sq_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct sq_conf c;
	int ret;

	if (sq_config(host, ctx, &c) == -1)
		return (-1);
	ret = sq_check_path(host, ctx, c.path);
	free(c.path);
	return (ret);
}

static int
sq_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct sq *s;
	struct sq_conf c;
	char *path, *msg = NULL, pragma[128];
	int i, flags;

	if (sq_config(host, ctx, &c) == -1)
		return (-1);
	path = c.path;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		free(path);
		return (-1);
	}
	s->host = host;
	s->ctx = ctx;
	if ((errno = pthread_mutex_init(&s->lock, NULL)) != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "mutex: %s", strerror(errno));
		free(s);
		free(path);
		return (-1);
	}

	/*
	 * SQLite's memory statistics take a global mutex around every
	 * allocation, about 6 per stored message; nothing here reads them.
	 * Only settable before the library is first used (later the call
	 * fails harmlessly with SQLITE_MISUSE).
	 */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	/* Our mutex serialises the connection: no need for SQLite's. */
	flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", path, s->db != NULL ?
		    sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, (int)c.busy);
	if (sq_wal(s, path) == -1)
		goto fail;
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous = %s; "
	    "PRAGMA wal_autocheckpoint = %lld",
	    c.full ? "FULL" : "NORMAL", c.ckpt);
	if (sqlite3_exec(s->db, pragma, NULL, NULL, &msg) != SQLITE_OK) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", path,
		    msg != NULL ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		goto fail;
	}
	if (sq_schema_init(s, path) == -1)
		goto fail;
	for (i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, sq_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
			host->log(ctx, PARLEY_LOG_ERROR, "%s: prepare %s: %s",
			    path, sq_sql[i], sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	host->log(ctx, PARLEY_LOG_INFO, "%s: open (SQLite %s, WAL, "
	    "synchronous=%s)", path, sqlite3_libversion(),
	    c.full ? "full" : "normal");
	free(path);
	*state = s;
	return (0);
fail:
	free(path);
	sq_fini(s);
	return (-1);
}

static const struct parley_storage_ops sq_ops = {
	.size = sizeof(struct parley_storage_ops),
	.flags = 0,
	.store = sq_store,
	.fetch = sq_fetch,
	.get_msg = sq_get_msg,
	.room_create = sq_room_create,
	.room_list = sq_room_list,
	.room_get = sq_room_get,
	.room_delete = sq_room_delete,
	.ping = sq_ping,
};

static const struct parley_plugin sq_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_STORAGE,
	.name = "sqlite",
	.version = "1.0",
	.description = "rooms and history in an embedded SQLite file",
	.init = sq_init,
	.fini = sq_fini,
	.storage = &sq_ops,
	.check = sq_check,
};

__attribute__((visibility("default"))) const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&sq_plugin);
}
