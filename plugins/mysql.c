/*
 * mysql.c - the "mysql" storage plugin: rooms and chat history in MySQL or
 * MariaDB (through MariaDB Connector/C), one store shared by every instance
 * (PARLEY_ST_SHARED).
 *
 * [mysql] keys:
 *	host		server host (default 127.0.0.1); ignored with socket
 *	port		server TCP port (default 3306)
 *	socket		Unix socket path; when set, used instead of host/port
 *	user		login (default parley)
 *	password	password (default empty)
 *	database	database, which must exist (default parley)
 *	pool_size	connections, one per concurrent worker call (default 4)
 *	connect_timeout_ms  connect timeout (default 5000)
 *	io_timeout_ms	read/write timeout of one network operation
 *			(default 30000)
 *	create_schema	create and migrate the tables (default true); false:
 *			refuse to start when they are missing or out of date
 *
 * Threads: every storage op is a "worker" op and may run on several worker
 * threads at once.  Each call takes a connection of its own from a pool of
 * pool_size (waiting while all are busy) and returns it afterwards; a
 * connection and its prepared statements are used by one thread at a time.
 *
 * Failures: a call whose connection turns out dead ("server has gone away",
 * lost connection, server shutdown, killed connection) is retried once,
 * whole, on a fresh connection; a transaction that hit a deadlock or a lock
 * wait timeout is retried up to three times.  A store runs in one
 * transaction that is rolled back on any error, so a batch is never half
 * written, and it is idempotent, so retrying one that did commit is a no-op.
 * Only SQL without data (schema, transaction control) is sent as text;
 * every statement with data is a prepared statement.
 *
 * Schema (version 1), utf8mb4 throughout; names, ids and logins compare as
 * exact bytes (a binary NO PAD collation where the server has one):
 *	schema_version(version)
 *	rooms(name PRIMARY KEY, creator, created_ms, topic, message_count)
 *	messages(room, position, id, sender, ts_ms, content_type, body,
 *	    edited_ms, deleted, media_id, PRIMARY KEY (room, position),
 *	    UNIQUE (room, id))
 * rooms.message_count is kept in the same transaction as the inserts.
 * Only chat messages are rows; EDIT and DELETE events update the row they
 * name when its sender matches (or the event is PARLEY_MSG_MODERATED);
 * presence and typing events are never stored.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include <parley/plugin.h>

#include "conflicts.h"

#define MY_SCHEMA_VERSION 1
#define MY_LOST_RETRIES 1	/* fresh connections after a lost one */
#define MY_TXN_RETRIES 3	/* deadlock / lock wait timeout */
#define MY_MAXCOL 10
#define MY_MULTI 16		/* rows per multi-row INSERT */
#define MY_MSG_PARAMS 10	/* parameters per message row */
#define MY_STMT_BYTES (1024 * 1024) /* body bytes per multi-row INSERT */
#define MY_BODY_MAX (16 * 1024 * 1024 - 1) /* MEDIUMBLOB */

/* Prepared statements, prepared once per connection on first use. */
enum {
	ST_ROOM_LOCK,
	ST_ROOM_COUNT,
	ST_INSERT,
	ST_EDIT,
	ST_DELETE,
	ST_FETCH_AFTER,
	ST_FETCH_BEFORE,
	ST_FETCH_NEWEST,
	ST_GET_MSG,
	ST_ROOM_CREATE,
	ST_ROOM_LIST,
	ST_ROOM_GET,
	ST_ROOM_DEL,
	ST_ROOM_DEL_MSGS,
	ST_POS_CHECK,
	ST_COUNT
};

#define MSG_COLUMNS \
	"position, id, sender, ts_ms, content_type, body, edited_ms, " \
	"deleted, media_id"
#define INSERT_COLUMNS \
	"room, position, id, sender, ts_ms, content_type, body, edited_ms, " \
	"deleted, media_id"
#define ROW1 "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define ROOM_COLUMNS \
	"r.name, r.creator, r.created_ms, r.topic, " \
	"(SELECT MAX(m.position) FROM messages m WHERE m.room = r.name), " \
	"r.message_count"

static const char *const my_sql[ST_COUNT] = {
	/*
	 * Create the room of a chat message, or lock its row: every writer
	 * of a room takes the row first (rooms in name order), so writers
	 * of one room queue instead of deadlocking.
	 */
	[ST_ROOM_LOCK] = "INSERT INTO rooms (name, creator, created_ms) "
	    "VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE name = name",
	[ST_ROOM_COUNT] = "UPDATE rooms SET message_count = message_count + ? "
	    "WHERE name = ?",
	/*
	 * A duplicate (room, position) or (room, id) changes nothing and
	 * counts 0 rows.  Not INSERT IGNORE: that would also turn data errors
	 * (bad UTF-8, too long) into warnings and store mangled values.
	 */
	[ST_INSERT] = "INSERT INTO messages (" INSERT_COLUMNS ") VALUES "
	    ROW1 " ON DUPLICATE KEY UPDATE room = room",
	/*
	 * An edit applies to a live message of the same sender, and never
	 * undoes a later edit (a redelivered old edit is a no-op).
	 */
	[ST_EDIT] = "UPDATE messages SET body = ?, edited_ms = ? "
	    "WHERE room = ? AND id = ? AND (sender = ? OR ? = 1) "
	    "AND deleted = 0 AND edited_ms <= ?",
	/* a moderator's (PARLEY_MSG_MODERATED) applies whoever sent it */
	[ST_DELETE] = "UPDATE messages SET deleted = 1, body = '', "
	    "media_id = NULL WHERE room = ? AND id = ? AND "
	    "(sender = ? OR ? = 1)",
	[ST_FETCH_AFTER] = "SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE room = ? AND position > ? ORDER BY position ASC LIMIT ?",
	/* newest first; the rows are handed out in reverse */
	[ST_FETCH_BEFORE] = "SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE room = ? AND position < ? ORDER BY position DESC LIMIT ?",
	[ST_FETCH_NEWEST] = "SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE room = ? ORDER BY position DESC LIMIT ?",
	[ST_GET_MSG] = "SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE room = ? AND id = ?",
	[ST_ROOM_CREATE] = "INSERT INTO rooms (name, creator, created_ms, "
	    "topic) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE name = name",
	[ST_ROOM_LIST] = "SELECT " ROOM_COLUMNS " FROM rooms r "
	    "ORDER BY r.name",
	[ST_ROOM_GET] = "SELECT " ROOM_COLUMNS " FROM rooms r "
	    "WHERE r.name = ?",
	[ST_ROOM_DEL] = "DELETE FROM rooms WHERE name = ?",
	[ST_ROOM_DEL_MSGS] = "DELETE FROM messages WHERE room = ?",
	/* who holds a position, and is this id in the room at all */
	[ST_POS_CHECK] = "SELECT (SELECT id FROM messages WHERE room = ? AND "
	    "position = ?), EXISTS (SELECT 1 FROM messages WHERE room = ? AND "
	    "id = ?)",
};

/*
 * Schema migrations: migration[v] takes the schema from version v to v + 1.
 * %1$s is the collation for names and text (utf8mb4).  Each step ends by
 * recording its version, so a step that failed half way runs again (every
 * statement is IF NOT EXISTS).
 */
static const char *const my_migration_v1[] = {
	"CREATE TABLE IF NOT EXISTS rooms ("
	"  name VARCHAR(128) NOT NULL,"
	"  creator VARCHAR(128) NULL,"
	"  created_ms BIGINT NOT NULL DEFAULT 0,"
	"  topic TEXT NULL,"
	"  message_count BIGINT UNSIGNED NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (name)"
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=%1$s",
	"CREATE TABLE IF NOT EXISTS messages ("
	"  room VARCHAR(128) NOT NULL,"
	"  position BIGINT UNSIGNED NOT NULL,"
	"  id VARCHAR(64) NOT NULL,"
	"  sender VARCHAR(128) NOT NULL,"
	"  ts_ms BIGINT NOT NULL,"
	"  content_type TEXT NULL,"
	"  body MEDIUMBLOB NOT NULL,"
	"  edited_ms BIGINT NOT NULL DEFAULT 0,"
	"  deleted TINYINT NOT NULL DEFAULT 0,"
	"  media_id TEXT NULL,"
	"  PRIMARY KEY (room, position),"
	"  UNIQUE KEY messages_room_id (room, id)"
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=%1$s "
	"ROW_FORMAT=DYNAMIC",
	NULL
};

static const char *const *const my_migrations[MY_SCHEMA_VERSION] = {
	my_migration_v1,
};

/* One pooled connection; used by one thread at a time. */
struct myconn {
	MYSQL *db;		/* NULL: not connected */
	MYSQL_STMT *st[ST_COUNT]; /* NULL: not prepared yet */
	MYSQL_STMT *ins[MY_MULTI + 1]; /* ins[n]: ST_INSERT with n rows */
	unsigned lasterr;	/* server/client error number of the last
				 * failure, for the retry decision */
	int busy;
};

struct my {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	/* configuration (strings owned by the host) */
	const char *hostname, *user, *password, *database, *socket;
	unsigned port;
	unsigned connect_timeout_s, io_timeout_s;
	size_t pool_size;
	int create_schema;
	size_t max_body;	/* bodies above: skipped (max_allowed_packet) */
	int libref;		/* holds a reference on the client library */
	char where[256];	/* "user@host:port/db" for messages */

	pthread_mutex_t lock;	/* guards conns[].busy */
	pthread_cond_t freed;
	struct myconn *conns;
	size_t nconns;
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

/* The connection is unusable: close it (it reconnects on next use). */
static void
conn_close(struct myconn *c)
{
	int i;

	for (i = 0; i < ST_COUNT; i++) {
		if (c->st[i] != NULL)
			mysql_stmt_close(c->st[i]);
		c->st[i] = NULL;
	}
	for (i = 0; i <= MY_MULTI; i++) {
		if (c->ins[i] != NULL)
			mysql_stmt_close(c->ins[i]);
		c->ins[i] = NULL;
	}
	if (c->db != NULL)
		mysql_close(c->db);
	c->db = NULL;
}

/* Errors after which the connection is gone or useless. */
static int
err_lost(unsigned e)
{
	switch (e) {
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_SERVER_LOST_EXTENDED:
	case CR_COMMANDS_OUT_OF_SYNC:
	case ER_SERVER_SHUTDOWN:
	case ER_CONNECTION_KILLED:
	case ER_UNKNOWN_STMT_HANDLER:
	case ER_NEED_REPREPARE:
	case 4031:	/* MySQL 8: disconnected by the server (idle) */
		return (1);
	}
	return (0);
}

/* Errors after which the same transaction may well succeed. */
static int
err_txn(unsigned e)
{
	return (e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT);
}

/* Record the connection's error in err; returns -1. */
static int
dberr(struct myconn *c, char *err, size_t errlen, const char *what)
{
	c->lasterr = mysql_errno(c->db);
	seterr(err, errlen, "%s: %s (%u)", what, mysql_error(c->db),
	    c->lasterr);
	return (-1);
}

/* Record a statement's error in err; returns -1. */
static int
sterr(struct myconn *c, MYSQL_STMT *st, char *err, size_t errlen,
    const char *what)
{
	c->lasterr = mysql_stmt_errno(st);
	seterr(err, errlen, "%s: %s (%u)", what, mysql_stmt_error(st),
	    c->lasterr);
	return (-1);
}

/*
 * Connect c.  SET NAMES utf8mb4, strict mode (a value that does not fit is
 * an error, not silently cut) and READ COMMITTED (fewer gap locks between
 * concurrent writers) on every connection.  Returns 0, or -1 with err set.
 */
static int
conn_open(struct my *s, struct myconn *c, char *err, size_t errlen)
{
	unsigned int t;
	my_bool off = 0;

	if ((c->db = mysql_init(NULL)) == NULL) {
		seterr(err, errlen, "out of memory");
		return (-1);
	}
	t = s->connect_timeout_s;
	mysql_options(c->db, MYSQL_OPT_CONNECT_TIMEOUT, &t);
	t = s->io_timeout_s;
	mysql_options(c->db, MYSQL_OPT_READ_TIMEOUT, &t);
	mysql_options(c->db, MYSQL_OPT_WRITE_TIMEOUT, &t);
	mysql_options(c->db, MYSQL_OPT_RECONNECT, &off);
	mysql_options(c->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(c->db, MYSQL_INIT_COMMAND, "SET NAMES utf8mb4");
	mysql_options(c->db, MYSQL_INIT_COMMAND, "SET SESSION sql_mode = "
	    "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'");
	mysql_options(c->db, MYSQL_INIT_COMMAND, "SET SESSION TRANSACTION "
	    "ISOLATION LEVEL READ COMMITTED");
	if (mysql_real_connect(c->db, s->socket != NULL ? "localhost" :
	    s->hostname, s->user, s->password, s->database,
	    s->socket != NULL ? 0 : s->port, s->socket, 0) == NULL) {
		c->lasterr = mysql_errno(c->db);
		seterr(err, errlen, "connect %s: %s", s->where,
		    mysql_error(c->db));
		mysql_close(c->db);
		c->db = NULL;
		return (-1);
	}
	return (0);
}

/* Prepare sql on c into *slot unless done.  Returns it, or NULL. */
static MYSQL_STMT *
prepare(struct myconn *c, MYSQL_STMT **slot, const char *sql, char *err,
    size_t errlen)
{
	MYSQL_STMT *st;

	if ((st = *slot) != NULL)
		return (st);
	if ((st = mysql_stmt_init(c->db)) == NULL) {
		dberr(c, err, errlen, "statement");
		return (NULL);
	}
	if (mysql_stmt_prepare(st, sql, strlen(sql))) {
		sterr(c, st, err, errlen, "prepare");
		mysql_stmt_close(st);
		return (NULL);
	}
	*slot = st;
	return (st);
}

/* The prepared statement which on c, preparing it on first use. */
static MYSQL_STMT *
stmt(struct myconn *c, int which, char *err, size_t errlen)
{
	return (prepare(c, &c->st[which], my_sql[which], err, errlen));
}

/* ST_INSERT for n rows (1..MY_MULTI) on c, prepared on first use. */
static MYSQL_STMT *
insert_stmt(struct myconn *c, size_t n, char *err, size_t errlen)
{
	static const char head[] = "INSERT INTO messages (" INSERT_COLUMNS
	    ") VALUES ";
	static const char tail[] = " ON DUPLICATE KEY UPDATE room = room";
	char sql[sizeof(head) + MY_MULTI * (sizeof(ROW1) + 2) + sizeof(tail)];
	size_t i, off;

	if (n == 1)
		return (stmt(c, ST_INSERT, err, errlen));
	if (c->ins[n] != NULL)
		return (c->ins[n]);
	off = (size_t)snprintf(sql, sizeof(sql), "%s", head);
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "%s%s",
		    i ? ", " : "", ROW1);
	snprintf(sql + off, sizeof(sql) - off, "%s", tail);
	return (prepare(c, &c->ins[n], sql, err, errlen));
}

/* ---------------------------------------------------------------- */
/* parameters and results                                              */

static void
p_str(MYSQL_BIND *b, const char *v)
{
	memset(b, 0, sizeof(*b));
	if (v == NULL) {
		b->buffer_type = MYSQL_TYPE_NULL;
		return;
	}
	b->buffer_type = MYSQL_TYPE_STRING;
	b->buffer = (void *)(uintptr_t)v;
	b->buffer_length = strlen(v);
}

static void
p_blob(MYSQL_BIND *b, const char *v, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->buffer_type = MYSQL_TYPE_BLOB;
	/* an empty body is '', never NULL */
	b->buffer = (void *)(uintptr_t)(len > 0 ? v : "");
	b->buffer_length = len;
}

static void
p_i64(MYSQL_BIND *b, const int64_t *v)
{
	memset(b, 0, sizeof(*b));
	b->buffer_type = MYSQL_TYPE_LONGLONG;
	b->buffer = (void *)(uintptr_t)v;
}

static void
p_u64(MYSQL_BIND *b, const uint64_t *v)
{
	memset(b, 0, sizeof(*b));
	b->buffer_type = MYSQL_TYPE_LONGLONG;
	b->buffer = (void *)(uintptr_t)v;
	b->is_unsigned = 1;
}

/* Bind params, execute.  Returns 0, or -1 with err set. */
static int
execute(struct myconn *c, MYSQL_STMT *st, MYSQL_BIND *params, char *err,
    size_t errlen, const char *what)
{
	if (params != NULL && mysql_stmt_bind_param(st, params))
		return (sterr(c, st, err, errlen, what));
	if (mysql_stmt_execute(st))
		return (sterr(c, st, err, errlen, what));
	return (0);
}

/* Prepare-on-demand, bind, execute; *rows gets the affected rows. */
static int
run(struct myconn *c, int which, MYSQL_BIND *params, uint64_t *rows,
    char *err, size_t errlen, const char *what)
{
	MYSQL_STMT *st;

	if ((st = stmt(c, which, err, errlen)) == NULL ||
	    execute(c, st, params, err, errlen, what) == -1)
		return (-1);
	if (rows != NULL)
		*rows = (uint64_t)mysql_stmt_affected_rows(st);
	return (0);
}

/*
 * Execute a SELECT and buffer its whole result (rows can then be fetched in
 * any order).  Returns 0, or -1 with nothing left to free.
 */
static int
select_rows(struct myconn *c, MYSQL_STMT *st, MYSQL_BIND *params, char *err,
    size_t errlen, const char *what)
{
	if (execute(c, st, params, err, errlen, what) == -1)
		return (-1);
	if (mysql_stmt_store_result(st)) {
		sterr(c, st, err, errlen, what);
		mysql_stmt_free_result(st);
		return (-1);
	}
	return (0);
}

/*
 * A result row.  Integer columns land in i[], string and blob columns in
 * buf[] (grown to fit and NUL-terminated; NULL columns have isnull set).
 */
enum { RC_INT, RC_UINT, RC_STR };

struct rset {
	int ncol;
	int type[MY_MAXCOL];
	MYSQL_BIND b[MY_MAXCOL];
	unsigned long len[MY_MAXCOL];
	my_bool isnull[MY_MAXCOL];
	my_bool error[MY_MAXCOL];
	long long i[MY_MAXCOL];
	char *buf[MY_MAXCOL];
	size_t cap[MY_MAXCOL];
};

static void
rs_init(struct rset *r, const char *types)
{
	int k;

	memset(r, 0, sizeof(*r));
	for (k = 0; types[k] != '\0' && k < MY_MAXCOL; k++)
		r->type[k] = types[k] == 'i' ? RC_INT : types[k] == 'u' ?
		    RC_UINT : RC_STR;
	r->ncol = k;
}

static void
rs_free(struct rset *r)
{
	int k;

	for (k = 0; k < r->ncol; k++)
		free(r->buf[k]);
}

/* Bind the result buffers of r to st.  Returns 0 or -1. */
static int
rs_bind(struct myconn *c, MYSQL_STMT *st, struct rset *r, char *err,
    size_t errlen)
{
	int k;

	if (mysql_stmt_field_count(st) != (unsigned)r->ncol) {
		seterr(err, errlen, "result has %u columns, expected %d",
		    mysql_stmt_field_count(st), r->ncol);
		return (-1);
	}
	for (k = 0; k < r->ncol; k++) {
		MYSQL_BIND *b = &r->b[k];

		memset(b, 0, sizeof(*b));
		b->length = &r->len[k];
		b->is_null = &r->isnull[k];
		b->error = &r->error[k];
		if (r->type[k] != RC_STR) {
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = &r->i[k];
			b->is_unsigned = r->type[k] == RC_UINT;
			continue;
		}
		if (r->buf[k] == NULL) {
			if ((r->buf[k] = malloc(256)) == NULL) {
				seterr(err, errlen, "out of memory");
				return (-1);
			}
			r->cap[k] = 256;
		}
		b->buffer_type = MYSQL_TYPE_BLOB;
		b->buffer = r->buf[k];
		b->buffer_length = r->cap[k];
	}
	if (mysql_stmt_bind_result(st, r->b))
		return (sterr(c, st, err, errlen, "bind result"));
	return (0);
}

/* Next row into r: 1 a row, 0 no more, -1 error. */
static int
rs_fetch(struct myconn *c, MYSQL_STMT *st, struct rset *r, char *err,
    size_t errlen)
{
	int k, rc, rebind = 0;
	char *nb;

	rc = mysql_stmt_fetch(st);
	if (rc == MYSQL_NO_DATA)
		return (0);
	if (rc != 0 && rc != MYSQL_DATA_TRUNCATED)
		return (sterr(c, st, err, errlen, "fetch"));
	for (k = 0; k < r->ncol; k++) {
		if (r->type[k] != RC_STR || r->isnull[k])
			continue;
		if (r->len[k] >= r->cap[k]) {
			if ((nb = realloc(r->buf[k], r->len[k] + 1)) == NULL) {
				seterr(err, errlen, "out of memory");
				return (-1);
			}
			r->buf[k] = nb;
			r->cap[k] = r->len[k] + 1;
			r->b[k].buffer = nb;
			r->b[k].buffer_length = r->cap[k];
			if (mysql_stmt_fetch_column(st, &r->b[k], (unsigned)k,
			    0))
				return (sterr(c, st, err, errlen, "fetch"));
			rebind = 1;
		}
		r->buf[k][r->len[k]] = '\0';
	}
	if (rebind && mysql_stmt_bind_result(st, r->b))
		return (sterr(c, st, err, errlen, "bind result"));
	return (1);
}

static const char *
rs_str(const struct rset *r, int k)
{
	return (r->isnull[k] ? NULL : r->buf[k]);
}

/* ---------------------------------------------------------------- */
/* the pool and the retry loop                                         */

/* Take a free connection, waiting while all pool_size are busy. */
static struct myconn *
pool_get(struct my *s)
{
	struct myconn *c = NULL;
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		/* a connected one first, so idle ones stay closed */
		for (i = 0; i < s->nconns; i++)
			if (!s->conns[i].busy && s->conns[i].db != NULL) {
				c = &s->conns[i];
				break;
			}
		for (i = 0; c == NULL && i < s->nconns; i++)
			if (!s->conns[i].busy)
				c = &s->conns[i];
		if (c != NULL)
			break;
		pthread_cond_wait(&s->freed, &s->lock);
	}
	c->busy = 1;
	pthread_mutex_unlock(&s->lock);
	return (c);
}

static void
pool_put(struct my *s, struct myconn *c)
{
	pthread_mutex_lock(&s->lock);
	c->busy = 0;
	pthread_cond_signal(&s->freed);
	pthread_mutex_unlock(&s->lock);
}

typedef int (*my_op)(struct my *, struct myconn *, void *, char *, size_t);

/*
 * Run op on a pooled connection (connecting it if needed), retrying as the
 * comment at the top says.  op returns >= 0 on success, or -1 after
 * recording the error in c->lasterr and err (and rolling back).
 */
static int
with_conn(struct my *s, my_op op, void *arg, char *err, size_t errlen)
{
	struct myconn *c;
	int rc, lost = 0, txn = 0;

	c = pool_get(s);
	for (;;) {
		c->lasterr = 0;
		if (c->db == NULL && conn_open(s, c, err, errlen) == -1) {
			rc = -1;
			break;
		}
		if ((rc = op(s, c, arg, err, errlen)) >= 0)
			break;
		if (err_lost(c->lasterr)) {
			conn_close(c);
			if (lost++ < MY_LOST_RETRIES) {
				s->host->log(s->ctx, PARLEY_LOG_INFO, "%s: "
				    "retrying on a new connection", err);
				continue;
			}
		} else if (err_txn(c->lasterr) && txn++ < MY_TXN_RETRIES)
			continue;
		break;
	}
	pool_put(s, c);
	return (rc);
}

/* Plain SQL without data (transaction control).  Returns 0 or -1. */
static int
query(struct myconn *c, const char *sql, char *err, size_t errlen)
{
	if (mysql_real_query(c->db, sql, strlen(sql)))
		return (dberr(c, err, errlen, sql));
	return (0);
}

/* Roll back after a failure (c->lasterr keeps the failure's number). */
static void
rollback(struct myconn *c)
{
	if (c->db != NULL && !err_lost(c->lasterr))
		(void)mysql_rollback(c->db);
}

/* ---------------------------------------------------------------- */
/* store                                                               */

/* Is s[0..len) valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
static int
utf8_ok(const char *str, size_t len)
{
	const unsigned char *p = (const unsigned char *)str;
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			n = 1;
			cp = p[i] & 0x1f;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			n = 2;
			cp = p[i] & 0x0f;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			n = 3;
			cp = p[i] & 0x07;
		} else
			return (0);
		if (len - i <= n)
			return (0);
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return (0);
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		    || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return (0);
		i += n + 1;
	}
	return (1);
}

/* A string column value: absent, or valid UTF-8 of at most max bytes. */
static int
text_ok(const char *v, size_t max)
{
	size_t len;

	if (v == NULL)
		return (1);
	len = strlen(v);
	return (len <= max && utf8_ok(v, len));
}

/*
 * Can m be stored at all?  A value the schema cannot hold would fail its
 * batch forever, so such a message is skipped (and logged) instead, as the
 * store() contract asks.  Returns NULL, or what is wrong.
 */
static const char *
unstorable(const struct parley_msg *m, size_t max_body)
{
	if (!text_ok(m->room, PARLEY_ROOM_MAX))
		return ("room name");
	if (!text_ok(m->id, PARLEY_ID_MAX))
		return ("id");
	if (!text_ok(m->sender, PARLEY_LOGIN_MAX))
		return ("sender");
	if (m->event == PARLEY_EV_MESSAGE) {
		if (!text_ok(m->content_type, 65535))
			return ("content type");
		if (!text_ok(m->media_id, 65535))
			return ("media id");
		if (m->body_len > max_body)
			return ("body");
	} else if (m->event == PARLEY_EV_EDIT || m->event ==
	    PARLEY_EV_DELETE) {
		if (!text_ok(m->ref_id, PARLEY_ID_MAX))
			return ("ref_id");
		if (m->body_len > max_body)
			return ("body");
	}
	return (NULL);
}

/* The rooms a batch writes chat into, sorted by name (lock order). */
struct rgrp {
	const char *name;
	const struct parley_msg *first;	/* its first chat message */
	uint64_t inserted;
};

struct store_args {
	const struct parley_msg *msgs;
	size_t n;
	const unsigned char *skip;	/* [n] */
	struct rgrp *g;
	size_t ng;
	size_t *gi;			/* [n]: group of chat message i */
	struct conflicts cf;		/* of the current attempt */
};

static int
rgrp_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct rgrp *)a)->name,
	    ((const struct rgrp *)b)->name));
}

/* Values of one chat message row, bound by bind_row. */
struct rowvals {
	uint64_t pos;
	int64_t ts, edited, del;
};

static void
bind_row(MYSQL_BIND *p, const struct parley_msg *m, struct rowvals *v)
{
	v->pos = m->position;
	v->ts = m->timestamp_ms;
	v->edited = m->edited_ms;
	v->del = m->deleted ? 1 : 0;
	p_str(&p[0], m->room);
	p_u64(&p[1], &v->pos);
	p_str(&p[2], m->id);
	p_str(&p[3], m->sender != NULL ? m->sender : "");
	p_i64(&p[4], &v->ts);
	p_str(&p[5], m->content_type);
	p_blob(&p[6], m->deleted ? NULL : m->body, m->deleted ? 0 :
	    m->body_len);
	p_i64(&p[7], &v->edited);
	p_i64(&p[8], &v->del);
	p_str(&p[9], m->deleted ? NULL : m->media_id);
}

/*
 * A row of m was not inserted: either m is stored already (by id, a
 * redelivery) or another message holds its position and m is not in the
 * room, which is a conflict (conflicts.h).  Returns 0, or -1.
 */
static int
check_position(struct myconn *c, const struct parley_msg *m,
    struct conflicts *cf, char *err, size_t errlen)
{
	MYSQL_BIND p[4];
	MYSQL_STMT *st;
	struct rset r;
	uint64_t pos = m->position;
	int ret;

	p_str(&p[0], m->room);
	p_u64(&p[1], &pos);
	p_str(&p[2], m->room);
	p_str(&p[3], m->id);
	if ((st = stmt(c, ST_POS_CHECK, err, errlen)) == NULL ||
	    select_rows(c, st, p, err, errlen, "look up position") == -1)
		return (-1);
	rs_init(&r, "si");
	if ((ret = rs_bind(c, st, &r, err, errlen)) == 0 &&
	    (ret = rs_fetch(c, st, &r, err, errlen)) == 1) {
		if (rs_str(&r, 0) != NULL && r.i[1] == 0)
			conflicts_add(cf, m, rs_str(&r, 0));
		ret = 0;
	}
	rs_free(&r);
	mysql_stmt_free_result(st);
	return (ret < 0 ? -1 : 0);
}

/*
 * Insert the chat messages ms[0..n) of room g (1 <= n <= MY_MULTI) with
 * one statement; g->inserted counts the new rows (a duplicate counts 0),
 * and rows that were not inserted are checked for conflicts.
 */
static int
insert_rows(struct myconn *c, const struct parley_msg *const *ms, size_t n,
    struct rgrp *g, struct conflicts *cf, char *err, size_t errlen)
{
	MYSQL_BIND p[MY_MULTI * MY_MSG_PARAMS];
	struct rowvals v[MY_MULTI];
	MYSQL_STMT *st;
	uint64_t rows;
	size_t i;

	for (i = 0; i < n; i++)
		bind_row(&p[i * MY_MSG_PARAMS], ms[i], &v[i]);
	if ((st = insert_stmt(c, n, err, errlen)) == NULL ||
	    execute(c, st, p, err, errlen, "insert messages") == -1)
		return (-1);
	rows = (uint64_t)mysql_stmt_affected_rows(st);
	g->inserted += rows;
	for (i = 0; rows < n && i < n; i++)
		if (check_position(c, ms[i], cf, err, errlen) == -1)
			return (-1);
	return (0);
}

/*
 * Insert the chat messages msgs[from..to) (no edits or deletes among
 * them), room by room, up to MY_MULTI rows per statement.  Order within a
 * room is kept; rooms do not affect each other.
 */
static int
insert_run(struct myconn *c, struct store_args *a, size_t from, size_t to,
    char *err, size_t errlen)
{
	const struct parley_msg *ms[MY_MULTI];
	size_t i, k, n, bytes;

	for (k = 0; k < a->ng; k++) {
		n = bytes = 0;
		for (i = from; i < to; i++) {
			if (a->skip[i] || a->gi[i] != k)
				continue;
			/* keep a statement well below max_allowed_packet */
			if (n == MY_MULTI || (n > 0 && bytes +
			    a->msgs[i].body_len > MY_STMT_BYTES)) {
				if (insert_rows(c, ms, n, &a->g[k], &a->cf,
				    err, errlen) == -1)
					return (-1);
				n = bytes = 0;
			}
			ms[n++] = &a->msgs[i];
			bytes += a->msgs[i].body_len + 1024;
		}
		if (n > 0 && insert_rows(c, ms, n, &a->g[k], &a->cf, err,
		    errlen) == -1)
			return (-1);
	}
	return (0);
}

/* Apply an EDIT or DELETE. */
static int
update_one(struct myconn *c, const struct parley_msg *m, char *err,
    size_t errlen)
{
	const char *sender = m->sender != NULL ? m->sender : "";
	MYSQL_BIND p[7];
	int64_t ts = m->timestamp_ms, mod = (m->flags &
	    PARLEY_MSG_MODERATED) ? 1 : 0;

	if (m->ref_id == NULL)
		return (0);	/* names nothing: nothing to do */
	if (m->event == PARLEY_EV_EDIT) {
		p_blob(&p[0], m->body, m->body_len);
		p_i64(&p[1], &ts);
		p_str(&p[2], m->room);
		p_str(&p[3], m->ref_id);
		p_str(&p[4], sender);
		p_i64(&p[5], &mod);
		p_i64(&p[6], &ts);
		return (run(c, ST_EDIT, p, NULL, err, errlen, "edit message"));
	}
	p_str(&p[0], m->room);
	p_str(&p[1], m->ref_id);
	p_str(&p[2], sender);
	p_i64(&p[3], &mod);
	return (run(c, ST_DELETE, p, NULL, err, errlen, "delete message"));
}

static int
store_txn(struct my *s, struct myconn *c, void *arg, char *err,
    size_t errlen)
{
	struct store_args *a = arg;
	MYSQL_BIND p[3];
	size_t i, from;
	int64_t ts;
	const char *creator;

	(void)s;
	for (i = 0; i < a->ng; i++)
		a->g[i].inserted = 0;
	a->cf.n = 0;
	if (query(c, "START TRANSACTION", err, errlen) == -1)
		return (-1);
	/* create or lock the rooms, in name order */
	for (i = 0; i < a->ng; i++) {
		creator = a->g[i].first->sender != NULL ?
		    a->g[i].first->sender : "";
		ts = a->g[i].first->timestamp_ms;
		p_str(&p[0], a->g[i].name);
		p_str(&p[1], creator);
		p_i64(&p[2], &ts);
		if (run(c, ST_ROOM_LOCK, p, NULL, err, errlen, "room") == -1)
			goto fail;
	}
	/*
	 * Runs of chat messages are inserted together; an edit or delete
	 * is applied where it stands, after the messages before it.
	 */
	for (i = from = 0; i <= a->n; i++) {
		if (i < a->n && (a->skip[i] ||
		    a->msgs[i].event == PARLEY_EV_MESSAGE))
			continue;
		if (insert_run(c, a, from, i, err, errlen) == -1)
			goto fail;
		if (i < a->n && update_one(c, &a->msgs[i], err, errlen) == -1)
			goto fail;
		from = i + 1;
	}
	for (i = 0; i < a->ng; i++) {
		if (a->g[i].inserted == 0)
			continue;
		p_u64(&p[0], &a->g[i].inserted);
		p_str(&p[1], a->g[i].name);
		if (run(c, ST_ROOM_COUNT, p, NULL, err, errlen,
		    "count messages") == -1)
			goto fail;
	}
	if (mysql_commit(c->db)) {
		dberr(c, err, errlen, "commit");
		goto fail;
	}
	return (0);
fail:
	rollback(c);
	return (-1);
}

static int
my_store(void *state, const struct parley_msg *msgs, size_t n, char *err,
    size_t errlen)
{
	struct my *s = state;
	struct store_args a;
	const char *why;
	size_t i, k;
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

	memset(&a, 0, sizeof(a));
	a.msgs = msgs;
	a.n = n;
	if ((a.skip = calloc(n, 1)) == NULL ||
	    (a.g = calloc(n, sizeof(*a.g))) == NULL ||
	    (a.gi = calloc(n, sizeof(*a.gi))) == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (msgs[i].event != PARLEY_EV_MESSAGE &&
		    msgs[i].event != PARLEY_EV_EDIT &&
		    msgs[i].event != PARLEY_EV_DELETE) {
			((unsigned char *)a.skip)[i] = 1;
			continue;
		}
		if ((why = unstorable(&msgs[i], s->max_body)) != NULL) {
			s->host->log(s->ctx, PARLEY_LOG_WARN, "room %.*s: "
			    "message %.*s not stored: its %s is not valid "
			    "UTF-8 or too long for the database", 64,
			    msgs[i].room, 64, msgs[i].id, why);
			((unsigned char *)a.skip)[i] = 1;
			continue;
		}
		if (msgs[i].event != PARLEY_EV_MESSAGE)
			continue;
		for (k = 0; k < a.ng; k++)
			if (strcmp(a.g[k].name, msgs[i].room) == 0)
				break;
		if (k == a.ng) {
			a.g[k].name = msgs[i].room;
			a.g[k].first = &msgs[i];
			a.ng++;
		}
	}
	qsort(a.g, a.ng, sizeof(*a.g), rgrp_cmp);
	for (i = 0; i < n; i++) {
		if (a.skip[i] || msgs[i].event != PARLEY_EV_MESSAGE)
			continue;
		for (k = 0; k < a.ng; k++)
			if (strcmp(a.g[k].name, msgs[i].room) == 0)
				break;
		a.gi[i] = k;
	}
	rc = with_conn(s, store_txn, &a, err, errlen);
	if (rc >= 0)
		conflicts_report(s->host, s->ctx, &a.cf);
out:
	free((void *)(uintptr_t)a.skip);
	free(a.g);
	free(a.gi);
	return (rc < 0 ? -1 : 0);
}

/* ---------------------------------------------------------------- */
/* reads                                                               */

struct fetch_args {
	int which;
	const char *room;
	const char *id;		/* ST_GET_MSG */
	uint64_t cursor, limit;
	int reverse;		/* rows come newest first */
	const struct parley_list_api *api;
	struct parley_msg_list *out;
};

/* Add row r (MSG_COLUMNS) of room to out.  Returns 0 or -1. */
static int
add_msg(const struct rset *r, const char *room,
    const struct parley_list_api *api, struct parley_msg_list *out,
    char *err, size_t errlen)
{
	struct parley_msg m;

	memset(&m, 0, sizeof(m));
	m.room = room;
	m.position = (uint64_t)r->i[0];
	m.id = rs_str(r, 1);
	m.sender = rs_str(r, 2);
	m.timestamp_ms = r->i[3];
	m.event = PARLEY_EV_MESSAGE;
	m.content_type = rs_str(r, 4);
	m.body = rs_str(r, 5);
	m.body_len = r->isnull[5] ? 0 : r->len[5];
	m.edited_ms = r->i[6];
	m.deleted = r->i[7] != 0;
	m.media_id = rs_str(r, 8);
	if (m.deleted || m.body == NULL) {
		m.body = "";
		m.body_len = 0;
	}
	if (m.id == NULL || m.sender == NULL) {
		seterr(err, errlen, "message without id or sender");
		return (-1);
	}
	if (api->msg_add(out, &m) != 0) {
		seterr(err, errlen, "out of memory");
		return (-1);
	}
	return (0);
}

/*
 * Run a message SELECT and add its rows to out (in reverse with
 * a->reverse).  The whole result is read into client memory before the
 * first row is added, so a lost connection never leaves out half filled.
 * Returns the number of rows, or -1.
 */
static int
fetch_op(struct my *s, struct myconn *c, void *arg, char *err, size_t errlen)
{
	struct fetch_args *a = arg;
	MYSQL_STMT *st;
	MYSQL_BIND p[3];
	struct rset r;
	uint64_t nrows, k;
	int np = 0, rc, n = 0;

	(void)s;
	if ((st = stmt(c, a->which, err, errlen)) == NULL)
		return (-1);
	p_str(&p[np++], a->room);
	if (a->which == ST_GET_MSG)
		p_str(&p[np++], a->id);
	else {
		if (a->which != ST_FETCH_NEWEST)
			p_u64(&p[np++], &a->cursor);
		p_u64(&p[np++], &a->limit);
	}
	if (select_rows(c, st, p, err, errlen, "select messages") == -1)
		return (-1);
	rs_init(&r, "ussissiis");
	if (rs_bind(c, st, &r, err, errlen) == -1) {
		n = -1;
		goto out;
	}
	nrows = mysql_stmt_num_rows(st);
	for (k = 0; k < nrows; k++) {
		if (a->reverse)
			mysql_stmt_data_seek(st, nrows - 1 - k);
		if ((rc = rs_fetch(c, st, &r, err, errlen)) <= 0) {
			if (rc < 0)
				n = -1;
			break;
		}
		if (add_msg(&r, a->room, a->api, a->out, err, errlen) == -1) {
			n = -1;
			break;
		}
		n++;
	}
out:
	rs_free(&r);
	mysql_stmt_free_result(st);
	return (n);
}

static int
my_fetch(void *state, const char *room, int dir, uint64_t cursor,
    size_t limit, const struct parley_list_api *api,
    struct parley_msg_list *out, char *err, size_t errlen)
{
	struct fetch_args a;

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
	memset(&a, 0, sizeof(a));
	a.room = room;
	a.cursor = cursor;
	a.limit = limit > INT64_MAX ? INT64_MAX : limit;
	a.api = api;
	a.out = out;
	if (dir == PARLEY_PAGE_AFTER)
		a.which = ST_FETCH_AFTER;
	else {
		a.which = cursor == 0 || cursor > INT64_MAX ? ST_FETCH_NEWEST :
		    ST_FETCH_BEFORE;
		a.reverse = 1;
	}
	return (with_conn(state, fetch_op, &a, err, errlen) < 0 ? -1 : 0);
}

static int
my_get_msg(void *state, const char *room, const char *id,
    const struct parley_list_api *api, struct parley_msg_list *out,
    char *err, size_t errlen)
{
	struct fetch_args a;
	int n;

	if (room == NULL || id == NULL) {
		seterr(err, errlen, "get_msg without a room or id");
		return (-1);
	}
	memset(&a, 0, sizeof(a));
	a.which = ST_GET_MSG;
	a.room = room;
	a.id = id;
	a.api = api;
	a.out = out;
	n = with_conn(state, fetch_op, &a, err, errlen);
	return (n < 0 ? -1 : n > 0);
}

/* ---------------------------------------------------------------- */
/* rooms                                                               */

static int
room_create_op(struct my *s, struct myconn *c, void *arg, char *err,
    size_t errlen)
{
	const struct parley_room_info *ri = arg;
	MYSQL_BIND p[4];
	int64_t created = ri->created_ms;
	uint64_t rows;

	(void)s;
	p_str(&p[0], ri->name);
	p_str(&p[1], ri->creator);
	p_i64(&p[2], &created);
	p_str(&p[3], ri->topic);
	if (run(c, ST_ROOM_CREATE, p, &rows, err, errlen, "create room") == -1)
		return (-1);
	return (rows == 1);
}

static int
my_room_create(void *state, const struct parley_room_info *r, char *err,
    size_t errlen)
{
	if (r == NULL || r->name == NULL) {
		seterr(err, errlen, "room without a name");
		return (-1);
	}
	if (!text_ok(r->name, PARLEY_ROOM_MAX) ||
	    !text_ok(r->creator, PARLEY_LOGIN_MAX) ||
	    !text_ok(r->topic, 65535)) {
		seterr(err, errlen, "room name, creator or topic is not valid "
		    "UTF-8 or too long");
		return (-1);
	}
	return (with_conn(state, room_create_op, (void *)(uintptr_t)r, err,
	    errlen));
}

struct rooms_args {
	const char *name;	/* NULL: all */
	const struct parley_list_api *api;
	struct parley_room_list *out;
};

static int
rooms_op(struct my *s, struct myconn *c, void *arg, char *err, size_t errlen)
{
	struct rooms_args *a = arg;
	struct parley_room_info ri;
	MYSQL_STMT *st;
	MYSQL_BIND p[1];
	struct rset r;
	int rc, n = 0;

	(void)s;
	if ((st = stmt(c, a->name != NULL ? ST_ROOM_GET : ST_ROOM_LIST, err,
	    errlen)) == NULL)
		return (-1);
	p_str(&p[0], a->name);
	if (select_rows(c, st, a->name != NULL ? p : NULL, err, errlen,
	    "select rooms") == -1)
		return (-1);
	rs_init(&r, "ssisuu");
	if (rs_bind(c, st, &r, err, errlen) == -1) {
		n = -1;
		goto out;
	}
	while ((rc = rs_fetch(c, st, &r, err, errlen)) == 1) {
		memset(&ri, 0, sizeof(ri));
		ri.name = rs_str(&r, 0);
		ri.creator = rs_str(&r, 1);
		ri.created_ms = r.i[2];
		ri.topic = rs_str(&r, 3);
		ri.last_position = r.isnull[4] ? 0 : (uint64_t)r.i[4];
		ri.message_count = (uint64_t)r.i[5];
		if (ri.name == NULL || a->api->room_add(a->out, &ri) != 0) {
			seterr(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		n++;
	}
	if (rc < 0)
		n = -1;
out:
	rs_free(&r);
	mysql_stmt_free_result(st);
	return (n);
}

static int
my_room_list(void *state, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	struct rooms_args a = { NULL, api, out };

	return (with_conn(state, rooms_op, &a, err, errlen) < 0 ? -1 : 0);
}

static int
my_room_get(void *state, const char *name, const struct parley_list_api *api,
    struct parley_room_list *out, char *err, size_t errlen)
{
	struct rooms_args a = { name, api, out };
	int n;

	if (name == NULL) {
		seterr(err, errlen, "room_get without a name");
		return (-1);
	}
	n = with_conn(state, rooms_op, &a, err, errlen);
	return (n < 0 ? -1 : n > 0);
}

static int
room_delete_op(struct my *s, struct myconn *c, void *arg, char *err,
    size_t errlen)
{
	const char *name = arg;
	MYSQL_BIND p[1];
	uint64_t a = 0, b = 0;

	(void)s;
	p_str(&p[0], name);
	if (query(c, "START TRANSACTION", err, errlen) == -1)
		return (-1);
	/* the room row first: the same lock order as store */
	if (run(c, ST_ROOM_DEL, p, &a, err, errlen, "delete room") == -1 ||
	    run(c, ST_ROOM_DEL_MSGS, p, &b, err, errlen,
	    "delete messages") == -1)
		goto fail;
	if (mysql_commit(c->db)) {
		dberr(c, err, errlen, "commit");
		goto fail;
	}
	return (a + b > 0);
fail:
	rollback(c);
	return (-1);
}

static int
my_room_delete(void *state, const char *name, char *err, size_t errlen)
{
	if (name == NULL) {
		seterr(err, errlen, "room_delete without a name");
		return (-1);
	}
	return (with_conn(state, room_delete_op, (void *)(uintptr_t)name, err,
	    errlen));
}

static int
ping_op(struct my *s, struct myconn *c, void *arg, char *err, size_t errlen)
{
	(void)s;
	(void)arg;
	if (mysql_ping(c->db))
		return (dberr(c, err, errlen, "ping"));
	return (0);
}

static int
my_ping(void *state, char *err, size_t errlen)
{
	return (with_conn(state, ping_op, NULL, err, errlen) < 0 ? -1 : 0);
}

/* ---------------------------------------------------------------- */
/* schema                                                              */

/* Run sql (no data) and return the first column of its first row in buf
 * ("" for no row or NULL).  Returns 0 or -1. */
static int
query_value(struct myconn *c, const char *sql, char *buf, size_t len,
    char *err, size_t errlen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;

	if (query(c, sql, err, errlen) == -1)
		return (-1);
	if ((res = mysql_store_result(c->db)) == NULL) {
		if (mysql_errno(c->db) != 0)
			return (dberr(c, err, errlen, sql));
		buf[0] = '\0';
		return (0);
	}
	row = mysql_fetch_row(res);
	snprintf(buf, len, "%s", row != NULL && row[0] != NULL ? row[0] : "");
	mysql_free_result(res);
	return (0);
}

/*
 * The collation for names: binary (exact, case-sensitive) and NO PAD, so
 * "a" and "a " are different rooms.  MariaDB has utf8mb4_nopad_bin (10.2
 * on), MySQL utf8mb4_0900_bin (8.0.17 on); older servers only have the
 * PAD SPACE utf8mb4_bin.
 */
static int
pick_collation(struct my *s, struct myconn *c, char *buf, size_t len,
    char *err, size_t errlen)
{
	static const char *const pref[] = {
		"utf8mb4_nopad_bin", "utf8mb4_0900_bin", NULL
	};
	char sql[256], got[64];
	int i;

	for (i = 0; pref[i] != NULL; i++) {
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM "
		    "information_schema.COLLATIONS WHERE COLLATION_NAME = '%s'",
		    pref[i]);
		if (query_value(c, sql, got, sizeof(got), err, errlen) == -1)
			return (-1);
		if (strcmp(got, "1") == 0) {
			snprintf(buf, len, "%s", pref[i]);
			return (0);
		}
	}
	s->host->log(s->ctx, PARLEY_LOG_WARN, "%s: the server has no binary "
	    "NO PAD utf8mb4 collation: using utf8mb4_bin, under which names "
	    "that differ only in trailing spaces are the same", s->where);
	snprintf(buf, len, "utf8mb4_bin");
	return (0);
}

/* Create or migrate the schema on c.  Returns 0, or -1 after logging. */
static int
schema_init(struct my *s, struct myconn *c)
{
	char err[512] = "", buf[64], coll[64], sql[2048];
	const char *const *step;
	long version;
	int locked = 0, v, ret = -1;

	/* one instance at a time (the lock is per server, hence the name) */
	if (query_value(c, "SELECT GET_LOCK(CONCAT('parley_schema.', "
	    "DATABASE()), 60)", buf, sizeof(buf), err, sizeof(err)) == -1)
		goto out;
	if (strcmp(buf, "1") != 0) {
		seterr(err, sizeof(err), "timed out waiting for another "
		    "instance to set up the schema");
		goto out;
	}
	locked = 1;
	if (query_value(c, "SELECT COUNT(*) FROM information_schema.TABLES "
	    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = "
	    "'schema_version'", buf, sizeof(buf), err, sizeof(err)) == -1)
		goto out;
	if (strcmp(buf, "0") == 0) {
		if (!s->create_schema) {
			s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: database "
			    "has no Parley schema (no table schema_version) "
			    "and create_schema = false: create it (see "
			    "doc/storage.md) or set create_schema = true",
			    s->where);
			goto out_logged;
		}
		if (query(c, "CREATE TABLE IF NOT EXISTS schema_version ("
		    "version INT NOT NULL PRIMARY KEY) ENGINE=InnoDB", err,
		    sizeof(err)) == -1)
			goto out;
	}
	if (query_value(c, "SELECT COALESCE(MAX(version), 0) FROM "
	    "schema_version", buf, sizeof(buf), err, sizeof(err)) == -1)
		goto out;
	version = strtol(buf, NULL, 10);
	if (version > MY_SCHEMA_VERSION) {
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: schema version %ld "
		    "is newer than this plugin's (%d): upgrade parley",
		    s->where, version, MY_SCHEMA_VERSION);
		goto out_logged;
	}
	if (version < MY_SCHEMA_VERSION && !s->create_schema) {
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: schema version %ld "
		    "needs migrating to %d and create_schema = false: set "
		    "create_schema = true once, or migrate by hand (see "
		    "doc/storage.md)", s->where, version, MY_SCHEMA_VERSION);
		goto out_logged;
	}
	if (version < MY_SCHEMA_VERSION && pick_collation(s, c, coll,
	    sizeof(coll), err, sizeof(err)) == -1)
		goto out;
	for (v = (int)version; v < MY_SCHEMA_VERSION; v++) {
		for (step = my_migrations[v]; *step != NULL; step++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			snprintf(sql, sizeof(sql), *step, coll);
#pragma GCC diagnostic pop
			if (query(c, sql, err, sizeof(err)) == -1)
				goto out;
		}
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version "
		    "(version) VALUES (%d)", v + 1);
		if (query(c, sql, err, sizeof(err)) == -1)
			goto out;
		s->host->log(s->ctx, PARLEY_LOG_INFO, "%s: schema %s version "
		    "%d (collation %s)", s->where, v == 0 ? "created at" :
		    "migrated to", v + 1, coll);
	}
	ret = 0;
	goto unlock;
out:
	s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: cannot set up the schema: "
	    "%s", s->where, err);
out_logged:
	ret = -1;
unlock:
	if (locked)
		(void)query_value(c, "SELECT RELEASE_LOCK(CONCAT("
		    "'parley_schema.', DATABASE()))", buf, sizeof(buf), err,
		    sizeof(err));
	return (ret);
}

/* ---------------------------------------------------------------- */
/* life cycle                                                          */

/*
 * The client library is set up with the first instance and torn down with
 * the last (mysql_library_init is not thread-safe; instances are created
 * and destroyed on the loop thread, before and after worker calls).
 */
static pthread_mutex_t my_lib_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned my_instances;

static int
my_library_ref(void)
{
	int rc = 0;

	pthread_mutex_lock(&my_lib_lock);
	if (my_instances == 0)
		rc = mysql_library_init(0, NULL, NULL);
	if (rc == 0)
		my_instances++;
	pthread_mutex_unlock(&my_lib_lock);
	return (rc == 0 ? 0 : -1);
}

static void
my_library_unref(void)
{
	pthread_mutex_lock(&my_lib_lock);
	if (my_instances > 0 && --my_instances == 0)
		mysql_library_end();
	pthread_mutex_unlock(&my_lib_lock);
}

static void
my_fini(void *state)
{
	struct my *s = state;
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nconns; i++)
		conn_close(&s->conns[i]);
	free(s->conns);
	if (s->libref)
		my_library_unref();
	pthread_cond_destroy(&s->freed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Milliseconds key as whole seconds, rounded up (the client's unit). */
static int
config_secs(const struct parley_host *host, struct parley_ctx *ctx,
    const char *key, long long def, unsigned *out)
{
	long long ms;

	if (host->config_int(ctx, key, def, 1, 3600 * 1000, &ms) == -1)
		return (-1);
	*out = (unsigned)((ms + 999) / 1000);
	return (0);
}

/*
 * Read and check every key of the section into s's configuration fields
 * (init and check).  Allocates nothing.  Returns 0, or -1 after logging.
 */
static int
my_config(const struct parley_host *host, struct parley_ctx *ctx,
    struct my *s)
{
	long long port, pool;
	int create;

	if (host->config_int(ctx, "port", 3306, 1, 65535, &port) == -1 ||
	    host->config_int(ctx, "pool_size", 4, 1, 256, &pool) == -1 ||
	    config_secs(host, ctx, "connect_timeout_ms", 5000,
	    &s->connect_timeout_s) == -1 ||
	    config_secs(host, ctx, "io_timeout_ms", 30000,
	    &s->io_timeout_s) == -1 ||
	    host->config_bool(ctx, "create_schema", 1, &create) == -1)
		return (-1);
	s->port = (unsigned)port;
	s->pool_size = (size_t)pool;
	s->create_schema = create;
	s->hostname = host->config_get(ctx, "host", "127.0.0.1");
	s->user = host->config_get(ctx, "user", "parley");
	s->password = host->config_get(ctx, "password", "");
	s->database = host->config_get(ctx, "database", "parley");
	s->socket = host->config_get(ctx, "socket", NULL);
	if (s->socket != NULL && s->socket[0] == '\0')
		s->socket = NULL;
	if (s->hostname[0] == '\0' || s->database[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "host and database must not be "
		    "empty");
		return (-1);
	}
	if (s->socket != NULL)
		snprintf(s->where, sizeof(s->where), "%s@%s/%s", s->user,
		    s->socket, s->database);
	else
		snprintf(s->where, sizeof(s->where), "%s@%s:%u/%s", s->user,
		    s->hostname, s->port, s->database);
	return (0);
}

/* parleyd -t: the configuration only; no client library, no connection. */
static int
my_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct my s;

	memset(&s, 0, sizeof(s));
	s.host = host;
	s.ctx = ctx;
	return (my_config(host, ctx, &s));
}

static int
my_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct my *s;
	char err[512] = "", buf[64];
	int i;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	s->host = host;
	s->ctx = ctx;
	if (my_config(host, ctx, s) == -1) {
		free(s);
		return (-1);
	}
	if ((errno = pthread_mutex_init(&s->lock, NULL)) != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "mutex: %s", strerror(errno));
		free(s);
		return (-1);
	}
	if ((errno = pthread_cond_init(&s->freed, NULL)) != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "cond: %s", strerror(errno));
		pthread_mutex_destroy(&s->lock);
		free(s);
		return (-1);
	}
	if (my_library_ref() == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "cannot initialise the MariaDB "
		    "client library");
		goto fail;
	}
	s->libref = 1;
	if ((s->conns = calloc(s->pool_size, sizeof(*s->conns))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		goto fail;
	}
	s->nconns = s->pool_size;

	/* The first connection checks everything before we say yes. */
	if (conn_open(s, &s->conns[0], err, sizeof(err)) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s", err);
		goto fail;
	}
	if (schema_init(s, &s->conns[0]) == -1)
		goto fail;
	if (query_value(&s->conns[0], "SELECT @@max_allowed_packet", buf,
	    sizeof(buf), err, sizeof(err)) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "%s: %s", s->where, err);
		goto fail;
	}
	/* room for the other columns and the protocol */
	s->max_body = strtoull(buf, NULL, 10) > 128 * 1024 ?
	    (size_t)strtoull(buf, NULL, 10) - 64 * 1024 : 64 * 1024;
	if (s->max_body > MY_BODY_MAX)
		s->max_body = MY_BODY_MAX;
	for (i = 0; i < ST_COUNT; i++)
		if (stmt(&s->conns[0], i, err, sizeof(err)) == NULL) {
			host->log(ctx, PARLEY_LOG_ERROR, "%s: %s: %s", s->where,
			    err, my_sql[i]);
			goto fail;
		}
	host->log(ctx, PARLEY_LOG_INFO, "%s: connected (server %s, client %s, "
	    "pool of %zu, bodies up to %zu bytes)", s->where,
	    mysql_get_server_info(s->conns[0].db), mysql_get_client_info(),
	    s->nconns, s->max_body);
	*state = s;
	return (0);
fail:
	my_fini(s);
	return (-1);
}

static const struct parley_storage_ops my_ops = {
	.size = sizeof(struct parley_storage_ops),
	.flags = PARLEY_ST_SHARED,
	.store = my_store,
	.fetch = my_fetch,
	.get_msg = my_get_msg,
	.room_create = my_room_create,
	.room_list = my_room_list,
	.room_get = my_room_get,
	.room_delete = my_room_delete,
	.ping = my_ping,
};

static const struct parley_plugin my_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_STORAGE,
	.name = "mysql",
	.version = "1.0",
	.description = "rooms and history in MySQL or MariaDB, shared by all "
	    "instances",
	.init = my_init,
	.fini = my_fini,
	.storage = &my_ops,
	.check = my_check,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&my_plugin);
}
