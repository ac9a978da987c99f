/*
 * session.c - a STOMP 1.0-1.2 session on any transport.
 *
 * States: CONNECT (waiting for CONNECT/STOMP) -> AUTH (credentials on a
 * worker; frames that arrive meanwhile are kept) -> CONNECTED -> CLOSING.
 * Any protocol error sends one ERROR frame naming the problem (with
 * receipt-id when the bad frame asked for a receipt) and closes.
 *
 * Sessions are refcounted: pending publishes and the auth job hold
 * references, so a session whose connection went away is freed only when
 * the last callback for it has run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "access.h"
#include "batcher.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "msg.h"
#include "plugin.h"
#include "session.h"
#include "stomp.h"
#include "util.h"
#include "worker.h"

#define MAX_QUEUED_FRAMES 64	/* frames kept while authenticating */
#define MAX_TX_FRAMES 1024	/* frames in one transaction */
#define MAX_TX 16		/* open transactions per session */
#define MAX_UNACKED 4096	/* tracked unacknowledged messages per sub */

enum sstate { S_CONNECT, S_AUTH, S_CONNECTED, S_CLOSING };

/* A deep copy of a frame (queued during auth or in a transaction). */
struct fcopy {
	struct stomp_frame f;
	STAILQ_ENTRY(fcopy) entry;
};
STAILQ_HEAD(fcopyq, fcopy);

struct tx {
	char *id;
	struct fcopyq frames;
	size_t n;
	LIST_ENTRY(tx) entry;
};

/* Per-subscription session data (sub->ext). */
struct subx {
	char *head;		/* "MESSAGE\nsubscription:ID\n" escaped */
	size_t head_len;
	char **unacked;		/* ring of message ids (client ack modes) */
	size_t ua_first, ua_n;
};

struct session {
	int refcnt;
	LIST_ENTRY(session) all;	/* every session with a transport */
	struct parley_ctx *auth_by;	/* the auth plugin that allowed */
	struct conn *conn;		/* NULL once the transport is gone */
	enum sstate state;
	int version;			/* 10, 11, 12 */
	struct stomp_parser *parser;
	char login[PARLEY_LOGIN_MAX + 1];
	char roles[256];		/* from the auth plugin */
	char grants[512];
	char *bearer;
	struct bucket msg_bucket;	/* [limits] msg_rate */
	struct bucket byte_bucket;	/* [limits] byte_rate */
	int64_t throttled_since;	/* held back since (mono ms), 0 = not */
	int64_t last_limit_log;
	struct subq subs;
	int nsubs;
	LIST_HEAD(, tx) txs;
	int ntx;
	struct fcopyq queued;		/* during AUTH */
	int nqueued;
	int hb_send_ms;			/* we send at least this often */
	int hb_recv_ms;			/* we expect at least this often */
	int64_t last_in, last_out;	/* mono ms */
	struct event *timer;		/* heart-beats and connect timeout */
	struct event *expiry;		/* the credentials' end, if any */
	int64_t connect_deadline;
	int pending;			/* publishes not settled */
	char *disconnect_receipt;	/* answer when pending reaches 0 */
	int disconnecting;
	struct stomp_buf out;		/* reusable frame builder */
	struct barrier *commit;		/* COMMIT running: its receipt */
	struct evbuffer *backlog;	/* input held back by rate limits */
	int pause_ms;			/* set by on_frame: hold back input */
	uint64_t resume_seq;
};

static struct config *cfg;
static struct stomp_limits limits;
static LIST_HEAD(, session) sessions = LIST_HEAD_INITIALIZER(sessions);

static void session_unref(struct session *s);
static int on_frame(void *arg, struct stomp_frame *f);
static void on_heartbeat(void *arg);
static void handle_frame(struct session *s, struct stomp_frame *f);

void
session_config(struct config *c)
{
	cfg = c;
	limits.max_frame = (size_t)c->max_frame;
	limits.max_headers = (size_t)c->max_headers;
	limits.max_header = (size_t)c->max_header;
}

static void
session_ref(struct session *s)
{
	s->refcnt++;
}

/* ------------------------------------------------------------ output */

static int
send_buf(struct session *s)
{
	if (s->conn == NULL || s->state == S_CLOSING)
		return -1;
	s->last_out = mono_ms();
	return conn_send(s->conn, s->out.data, s->out.len);
}

static void
frame_begin(struct session *s, const char *cmd)
{
	s->out.len = 0;
	stomp_buf_add(&s->out, cmd, strlen(cmd));
	stomp_buf_add(&s->out, "\n", 1);
}

static void
frame_header(struct session *s, const char *name, const char *value)
{
	stomp_buf_header(&s->out, name, value, s->version);
}

static void
frame_end(struct session *s, const char *body, size_t len)
{
	stomp_buf_add(&s->out, "\n", 1);
	if (len > 0)
		stomp_buf_add(&s->out, body, len);
	stomp_buf_add(&s->out, "", 1);		/* the NUL */
}

/*
 * RECEIPT for the client's receipt (escaped), with one more header of the
 * server's own or none: extra_name and extra_value are ours ("position",
 * digits; "recovered", true or false) and have nothing to escape, so they
 * are added as they are.  One per SEND with a receipt: the generic
 * writer's scans of literal names and digits were most of its cost.
 */
static void
send_receipt(struct session *s, const char *receipt, const char *extra_name,
    const char *extra_value)
{
	static const char head[] = "RECEIPT\nreceipt-id:";

	s->out.len = 0;
	stomp_buf_add(&s->out, head, sizeof(head) - 1);
	stomp_buf_add_escaped(&s->out, receipt, s->version);
	if (extra_name != NULL) {
		stomp_buf_add(&s->out, "\n", 1);
		stomp_buf_add(&s->out, extra_name, strlen(extra_name));
		stomp_buf_add(&s->out, ":", 1);
		stomp_buf_add(&s->out, extra_value, strlen(extra_value));
	}
	stomp_buf_add(&s->out, "\n\n", 3);	/* and the NUL */
	send_buf(s);
}

/* No more MESSAGE frames: the fan-out's direct path stops too. */
static void
set_closing(struct session *s)
{
	struct sub *sub;

	s->state = S_CLOSING;
	TAILQ_FOREACH(sub, &s->subs, session_entry)
		broker_sub_direct(sub, NULL, NULL, 0);
}

/*
 * Send ERROR (message names the problem; detail goes in the body) and
 * close, as the spec requires.
 */
static void
send_error(struct session *s, const char *receipt, const char *message,
    const char *detail)
{
	char clen[32];
	size_t dl = detail ? strlen(detail) : 0;

	if (s->conn == NULL || s->state == S_CLOSING)
		return;
	stats.err_protocol++;
	log_client(s->conn->ip, "%s: STOMP error: %s%s%s", s->conn->peer,
	    message, detail ? ": " : "", detail ? detail : "");
	frame_begin(s, "ERROR");
	frame_header(s, "message", message);
	if (receipt != NULL)
		frame_header(s, "receipt-id", receipt);
	frame_header(s, "content-type", "text/plain");
	snprintf(clen, sizeof(clen), "%zu", dl);
	frame_header(s, "content-length", clen);
	frame_end(s, detail, dl);
	send_buf(s);
	set_closing(s);
	conn_close(s->conn, 1008, message);
}

/* ------------------------------------------------------------ lifetime */

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	int64_t now = mono_ms();

	(void)fd;
	(void)what;
	if (s->conn == NULL || s->state == S_CLOSING)
		return;
	if (s->state != S_CONNECTED) {
		if (now >= s->connect_deadline) {
			send_error(s, NULL, "no CONNECT frame in time",
			    "send CONNECT or STOMP first");
		}
		return;
	}
	if (s->hb_recv_ms > 0 && now - s->last_in > (int64_t)s->hb_recv_ms *
	    (100 + cfg->heartbeat_tolerance_pct) / 100) {
		stats.err_heartbeat++;
		log_client(s->conn->ip, "%s: no heart-beat from %s for %" PRId64
		    " ms (negotiated %d ms): closing", s->conn->peer, s->login,
		    now - s->last_in, s->hb_recv_ms);
		set_closing(s);
		conn_close(s->conn, 1001, "heart-beat timeout");
		return;
	}
	/* "at least every hb_send_ms": with ticks of half the smaller
	 * interval, waiting for the full interval would often mean 1.5x */
	if (s->conn->wrote) {
		s->conn->wrote = 0;
		s->last_out = now;
	}
	if (s->hb_send_ms > 0 && now - s->last_out >= s->hb_send_ms * 3 / 4) {
		s->last_out = now;
		conn_send(s->conn, "\n", 1);
		s->conn->wrote = 0;	/* counted already */
	}
}

static void
arm_timer(struct session *s, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_del(s->timer);
	event_add(s->timer, &tv);
}

struct session *
session_new(struct conn *c, const char *bearer)
{
	struct session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->refcnt = 1;
	s->conn = c;
	s->version = 12;
	s->state = S_CONNECT;
	TAILQ_INIT(&s->subs);
	LIST_INIT(&s->txs);
	STAILQ_INIT(&s->queued);
	stomp_buf_init(&s->out);
	s->backlog = evbuffer_new();
	s->last_in = s->last_out = mono_ms();
	s->connect_deadline = s->last_in + cfg->connect_timeout_ms;
	if ((bearer != NULL && (s->bearer = strdup(bearer)) == NULL) ||
	    (s->parser = stomp_parser_new(&limits, 12, on_frame, on_heartbeat,
	    s)) == NULL ||
	    (s->timer = event_new(conn_base(), -1, EV_PERSIST, timer_cb, s))
	    == NULL) {
		if (s->parser)
			stomp_parser_free(s->parser);
		free(s->bearer);
		free(s);
		return NULL;
	}
	arm_timer(s, cfg->connect_timeout_ms);
	LIST_INSERT_HEAD(&sessions, s, all);
	return s;
}

static void
fcopy_free(struct fcopy *fc)
{
	size_t i;

	for (i = 0; i < fc->f.nheaders; i++) {
		free(fc->f.headers[i].name);
		free(fc->f.headers[i].value);
	}
	free(fc->f.headers);
	free(fc->f.body);
	free(fc);
}

static struct fcopy *
fcopy_new(const struct stomp_frame *f)
{
	struct fcopy *fc;
	size_t i;

	if ((fc = calloc(1, sizeof(*fc))) == NULL)
		return NULL;
	fc->f.cmd = f->cmd;
	fc->f.command = stomp_command_name(f->cmd);
	fc->f.headers = calloc(f->nheaders + 1, sizeof(*fc->f.headers));
	fc->f.body = malloc(f->body_len + 1);
	if (fc->f.headers == NULL || fc->f.body == NULL)
		goto fail;
	for (i = 0; i < f->nheaders; i++) {
		fc->f.headers[i].name = strdup(f->headers[i].name);
		fc->f.headers[i].value = strdup(f->headers[i].value);
		fc->f.nheaders++;
		if (fc->f.headers[i].name == NULL ||
		    fc->f.headers[i].value == NULL)
			goto fail;
	}
	memcpy(fc->f.body, f->body, f->body_len);
	fc->f.body[f->body_len] = '\0';
	fc->f.body_len = f->body_len;
	stomp_frame_index(&fc->f);
	return fc;
fail:
	fcopy_free(fc);
	return NULL;
}

static void
subx_free(struct subx *x)
{
	size_t i;

	if (x == NULL)
		return;
	for (i = 0; i < x->ua_n; i++)
		free(x->unacked[(x->ua_first + i) % MAX_UNACKED]);
	free(x->unacked);
	free(x->head);
	free(x);
}

static void
tx_free(struct tx *t)
{
	struct fcopy *fc;

	while ((fc = STAILQ_FIRST(&t->frames)) != NULL) {
		STAILQ_REMOVE_HEAD(&t->frames, entry);
		fcopy_free(fc);
	}
	free(t->id);
	free(t);
}

static void publish_event(struct session *s, const char *room, int event);
static void do_publish(struct session *s, const char *room, int event,
    const struct stomp_frame *f, const char *receipt, unsigned flags);

static void
drop_sub(struct session *s, struct sub *sub, int announce)
{
	char room[PARLEY_ROOM_MAX + 1];

	snprintf(room, sizeof(room), "%s", sub->room->name);
	/* announced iff the join was: counted with this sub still in */
	if (cfg->presence_max > 0 &&
	    sub->room->nsubs > (size_t)cfg->presence_max)
		announce = 0;
	TAILQ_REMOVE(&s->subs, sub, session_entry);
	s->nsubs--;
	subx_free(sub->ext);
	broker_unsubscribe(sub);
	if (announce && s->login[0] != '\0')
		do_publish(s, room, PARLEY_EV_LEAVE, NULL, NULL, 0);
}

void
session_closed(struct session *s)
{
	struct sub *sub;
	struct tx *t;
	struct fcopy *fc;

	if (s->login[0] != '\0')
		stats.stomp_sessions--;
	/* leave events still go out: the session is gone, the user left */
	while ((sub = TAILQ_FIRST(&s->subs)) != NULL)
		drop_sub(s, sub, s->login[0] != '\0');
	while ((t = LIST_FIRST(&s->txs)) != NULL) {
		LIST_REMOVE(t, entry);
		tx_free(t);
	}
	while ((fc = STAILQ_FIRST(&s->queued)) != NULL) {
		STAILQ_REMOVE_HEAD(&s->queued, entry);
		fcopy_free(fc);
	}
	s->conn = NULL;
	LIST_REMOVE(s, all);
	set_closing(s);
	event_free(s->timer);
	s->timer = NULL;
	if (s->expiry != NULL)
		event_free(s->expiry);
	s->expiry = NULL;
	session_unref(s);
}

static void
session_unref(struct session *s)
{
	if (--s->refcnt > 0)
		return;
	stomp_parser_free(s->parser);
	stomp_buf_free(&s->out);
	if (s->backlog != NULL)
		evbuffer_free(s->backlog);
	free(s->bearer);
	free(s->disconnect_receipt);
	free(s);
}

void
session_shutdown(struct session *s)
{
	if (s->conn == NULL || s->state == S_CLOSING)
		return;
	if (conn_outbound(s->conn) > (size_t)cfg->max_outbound) {
		/* slow consumer: its ERROR goes after what is queued */
		char why[128];

		snprintf(why, sizeof(why), "%lld bytes queued",
		    (long long)cfg->max_outbound);
		frame_begin(s, "ERROR");
		frame_header(s, "message", "slow consumer: outbound queue "
		    "over its limit");
		frame_end(s, why, strlen(why));
		/* past conn_send's limit check: one last frame */
		conn_send_final(s->conn, s->out.data, s->out.len);
		set_closing(s);
		return;
	}
	frame_begin(s, "ERROR");
	frame_header(s, "message", "server shutting down");
	frame_end(s, NULL, 0);
	send_buf(s);
	set_closing(s);
	conn_close(s->conn, 1001, "server shutting down");
}

/* ------------------------------------------------------------ input */

/*
 * Token buckets on what the client sends, taken per frame.  A frame over the
 * rate is handled, then the parser pauses: the rest of the input waits in
 * the backlog and the connection is not read until the debt is paid.  A
 * client that would be held back for longer than throttle_max_ms without a
 * break gets an ERROR and is closed.  Returns 0, or the pause in ms, or -1
 * after the ERROR.
 */
static int
rate_take(struct session *s, size_t bytes)
{
	int64_t now = mono_ms();
	int w1, w2, wait;

	w1 = bucket_take(&s->msg_bucket, cfg->msg_rate, cfg->msg_burst, 1,
	    now);
	w2 = bucket_take(&s->byte_bucket, (double)cfg->byte_rate,
	    (double)cfg->byte_burst, (double)bytes, now);
	wait = w1 > w2 ? w1 : w2;
	if (wait == 0) {
		s->throttled_since = 0;
		return 0;
	}
	metrics_counter_add("parley_limit_hits_total", w1 >= w2 ?
	    "limit=\"msg_rate\"" : "limit=\"byte_rate\"", 1);
	if (s->throttled_since == 0)
		s->throttled_since = now;
	if (now - s->last_limit_log >= 10000) {
		s->last_limit_log = now;
		log_client_warn(s->conn->ip, "%s: %s over [limits] %s: holding "
		    "back %d ms", s->conn->peer, s->login, w1 >= w2 ?
		    "msg_rate" : "byte_rate", wait);
	}
	if (now + wait - s->throttled_since > cfg->throttle_max_ms) {
		send_error(s, NULL, "rate limit exceeded", "see [limits] "
		    "msg_rate and byte_rate");
		return -1;
	}
	return wait;
}

/* Parse data; keep what a pause left over in the backlog.  0 or -1. */
static int
parse_input(struct session *s, const char *data, size_t len, int from_backlog)
{
	int rv;
	size_t used;

	s->pause_ms = 0;
	rv = stomp_parse(s->parser, data, len);
	used = stomp_parser_consumed(s->parser);
	if (rv == STOMP_PAUSED) {
		if (from_backlog)
			evbuffer_drain(s->backlog, used);
		else
			evbuffer_add(s->backlog, data + used, len - used);
		if (s->conn != NULL && s->state != S_CLOSING)
			conn_pause(s->conn, s->pause_ms);
		return 0;
	}
	if (from_backlog)
		evbuffer_drain(s->backlog, len);
	if (rv != 0 && rv != STOMP_E_CALLBACK && s->state != S_CLOSING) {
		char detail[128];

		snprintf(detail, sizeof(detail), "limits: frame %zu bytes, "
		    "%zu headers, header line %zu bytes", limits.max_frame,
		    limits.max_headers, limits.max_header);
		send_error(s, NULL, stomp_strerror(rv), detail);
		return -1;
	}
	return 0;
}

void
session_input(struct session *s, const char *data, size_t len)
{
	if (s->conn == NULL || s->state == S_CLOSING)
		return;
	s->last_in = mono_ms();
	session_ref(s);
	if (evbuffer_get_length(s->backlog) > 0) {
		/* held-back input goes first */
		evbuffer_add(s->backlog, data, len);
		session_unpaused(s);
	} else
		parse_input(s, data, len, 0);
	session_unref(s);
}

void
session_unpaused(struct session *s)
{
	size_t n;

	if (s->conn == NULL || s->state == S_CLOSING ||
	    (n = evbuffer_get_length(s->backlog)) == 0)
		return;
	session_ref(s);
	parse_input(s, (const char *)evbuffer_pullup(s->backlog, -1), n, 1);
	session_unref(s);
}

static void
on_heartbeat(void *arg)
{
	(void)arg;		/* last_in is updated per read */
}

static int
on_frame(void *arg, struct stomp_frame *f)
{
	struct session *s = arg;
	struct fcopy *fc;

	if (s->conn == NULL || s->state == S_CLOSING)
		return 1;
	stats.frames_in++;
	if (f->cmd == STOMP_CMD_UNKNOWN) {
		/* a command word, parsed for the sake of its receipt */
		send_error(s, stomp_hget(f, STOMP_H_RECEIPT),
		    stomp_strerror(STOMP_E_COMMAND), f->command);
		return 1;
	}
	if (s->state == S_AUTH) {
		if (s->nqueued == MAX_QUEUED_FRAMES ||
		    (fc = fcopy_new(f)) == NULL) {
			send_error(s, NULL, "too many frames before CONNECTED",
			    "wait for CONNECTED");
			return 1;
		}
		STAILQ_INSERT_TAIL(&s->queued, fc, entry);
		s->nqueued++;
		return 0;
	}
	if (s->state == S_CONNECTED) {
		int wait = rate_take(s, f->body_len + 64);

		if (wait == -1)
			return 1;
		handle_frame(s, f);
		if (s->state == S_CLOSING)
			return 1;
		if (wait > 0) {
			s->pause_ms = wait;
			return STOMP_CB_PAUSE;
		}
		return 0;
	}
	handle_frame(s, f);
	return s->state == S_CLOSING ? 1 : 0;
}

/* ------------------------------------------------------------ CONNECT */

struct auth_job {
	struct session *s;
	struct parley_ctx *by;		/* the plugin that allowed */
	struct parley_credentials cred;
	char *login, *passcode, *bearer;
	char addr[64];
	struct parley_identity id;
	int result;
	char why[256];
	char *receipt;
};

static void
auth_work(void *arg)
{
	struct auth_job *j = arg;

	j->result = plugins_authenticate_by(&j->cred, &j->id, j->why,
	    sizeof(j->why), &j->by);
}

static void
auth_job_free(struct auth_job *j)
{
	free(j->login);
	free(j->passcode);
	free(j->bearer);
	free(j->receipt);
	free(j);
}

/* The credentials that opened the session are no longer valid. */
static void
expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->conn == NULL || s->state != S_CONNECTED)
		return;
	stats.err_auth++;
	log_client(s->conn->ip, "%s: credentials of %s expired: closing",
	    s->conn->peer, s->login);
	send_error(s, NULL, "credentials expired",
	    "connect again with new credentials");
}

/* End the session when its credentials expire (expires_ms, wall clock);
 * -1 when out of memory. */
static int
arm_expiry(struct session *s, int64_t expires_ms)
{
	int64_t left = expires_ms - now_ms();
	struct timeval tv;

	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	if (s->expiry == NULL &&
	    (s->expiry = evtimer_new(conn_base(), expiry_cb, s)) == NULL)
		return -1;
	return evtimer_add(s->expiry, &tv);
}

static void
auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;
	struct fcopy *fc;
	char hb[64];

	if (s->conn == NULL || s->state == S_CLOSING)
		goto out;
	if (j->result != PARLEY_AUTH_ALLOW) {
		stats.err_auth++;
		log_client(s->conn->ip, "%s: authentication failed for '%s': %s",
		    s->conn->peer, j->login ? j->login : "", j->why);
		send_error(s, j->receipt, "authentication failed", NULL);
		goto out;
	}
	if (j->id.expires_ms > 0 && arm_expiry(s, j->id.expires_ms) == -1) {
		send_error(s, j->receipt, "out of memory", NULL);
		goto out;
	}
	s->auth_by = j->by;
	snprintf(s->login, sizeof(s->login), "%s", j->id.login);
	snprintf(s->roles, sizeof(s->roles), "%s", j->id.roles);
	snprintf(s->grants, sizeof(s->grants), "%s", j->id.grants);
	s->state = S_CONNECTED;
	stats.stomp_sessions++;
	stomp_parser_set_version(s->parser, s->version);
	frame_begin(s, "CONNECTED");
	/* CONNECTED is never escaped */
	stomp_buf_header(&s->out, "version", s->version == 12 ? "1.2" :
	    s->version == 11 ? "1.1" : "1.0", 10);
	snprintf(hb, sizeof(hb), "%d,%d", s->hb_send_ms, s->hb_recv_ms);
	if (s->version >= 11)
		stomp_buf_header(&s->out, "heart-beat", hb, 10);
	stomp_buf_header(&s->out, "server", "parley/" PACKAGE_VERSION, 10);
	stomp_buf_header(&s->out, "user-name", s->login, 10);
	frame_end(s, NULL, 0);
	send_buf(s);
	if (j->receipt != NULL)
		send_receipt(s, j->receipt, NULL, NULL);
	log_debug("%s: %s connected (STOMP %d.%d)", s->conn->peer, s->login,
	    s->version / 10, s->version % 10);
	if (s->hb_send_ms > 0 || s->hb_recv_ms > 0) {
		int tick = s->hb_send_ms;

		if (s->hb_recv_ms > 0 && (tick == 0 || s->hb_recv_ms < tick))
			tick = s->hb_recv_ms;
		tick /= 2;
		arm_timer(s, tick < 50 ? 50 : tick);
	} else
		event_del(s->timer);
	/* frames that came in while we were checking */
	while ((fc = STAILQ_FIRST(&s->queued)) != NULL) {
		STAILQ_REMOVE_HEAD(&s->queued, entry);
		s->nqueued--;
		if (s->state == S_CONNECTED)
			handle_frame(s, &fc->f);
		fcopy_free(fc);
	}
out:
	session_unref(s);
	auth_job_free(j);
}

static int
negotiate_version(const char *accept)
{
	int best = -1;
	const char *p = accept;

	if (accept == NULL)
		return 10;
	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		while (n > 0 && *p == ' ') {
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == 3 && strncmp(p, "1.2", 3) == 0 && best < 12)
			best = 12;
		else if (n == 3 && strncmp(p, "1.1", 3) == 0 && best < 11)
			best = 11;
		else if (n == 3 && strncmp(p, "1.0", 3) == 0 && best < 10)
			best = 10;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return best;
}

static void
handle_connect(struct session *s, struct stomp_frame *f)
{
	const char *hb = stomp_header_get(f, "heart-beat");
	const char *receipt = stomp_hget(f, STOMP_H_RECEIPT);
	struct auth_job *j;
	int cx = 0, cy = 0;

	s->version = negotiate_version(stomp_header_get(f, "accept-version"));
	if (s->version == -1) {
		/* ERROR must tell which versions we speak */
		s->version = 12;
		frame_begin(s, "ERROR");
		stomp_buf_header(&s->out, "version", "1.0,1.1,1.2", 10);
		stomp_buf_header(&s->out, "message",
		    "unsupported STOMP version", 10);
		stomp_buf_header(&s->out, "content-type", "text/plain", 10);
		frame_end(s, "Supported protocol versions are 1.0 1.1 1.2",
		    43);
		send_buf(s);
		stats.err_protocol++;
		set_closing(s);
		conn_close(s->conn, 1002, "unsupported STOMP version");
		return;
	}
	if (hb != NULL && s->version >= 11) {
		if (sscanf(hb, "%d,%d", &cx, &cy) != 2 || cx < 0 || cy < 0) {
			send_error(s, receipt, "malformed heart-beat header",
			    "expected heart-beat:cx,cy with two non-negative "
			    "integers");
			return;
		}
	}
	/* we send every max(ours, what the client wants), if both want */
	s->hb_send_ms = (cy > 0 && cfg->heartbeat_ms > 0) ?
	    (cy > cfg->heartbeat_ms ? cy : cfg->heartbeat_ms) : 0;
	s->hb_recv_ms = (cx > 0 && cfg->heartbeat_ms > 0) ?
	    (cx > cfg->heartbeat_ms ? cx : cfg->heartbeat_ms) : 0;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	j->s = s;
	session_ref(s);
	if (stomp_header_get(f, "login"))
		j->login = strdup(stomp_header_get(f, "login"));
	if (stomp_header_get(f, "passcode"))
		j->passcode = strdup(stomp_header_get(f, "passcode"));
	if (s->bearer)
		j->bearer = strdup(s->bearer);
	if (receipt)
		j->receipt = strdup(receipt);
	snprintf(j->addr, sizeof(j->addr), "%s", s->conn->ip);
	j->cred.login = j->login;
	j->cred.passcode = j->passcode;
	j->cred.bearer = j->bearer;
	j->cred.remote_addr = j->addr;
	s->state = S_AUTH;
	if (worker_submit_client(auth_work, auth_done, j) == -1) {
		session_unref(s);
		auth_job_free(j);
		send_error(s, NULL, "server shutting down", NULL);
	}
}

/* ------------------------------------------------------------ access */

/* 0 if s may do need in room; otherwise ERROR naming room and permission. */
static int
check_perm(struct session *s, const char *room, unsigned need,
    const char *receipt)
{
	unsigned have = access_perms(s->login, s->roles, s->grants, room);
	char msg[256];

	if ((have & need) == need)
		return 0;
	snprintf(msg, sizeof(msg), "permission denied: %s on room %s",
	    perm_name(need & ~have & PERM_MODERATE ? PERM_MODERATE :
	    need & ~have & PERM_WRITE ? PERM_WRITE :
	    need & ~have & PERM_READ ? PERM_READ : PERM_ADMIN), room);
	metrics_counter_add("parley_denied_total", NULL, 1);
	send_error(s, receipt, msg, NULL);
	return -1;
}

/* ------------------------------------------------------------ SEND */

/*
 * A COMMIT's receipt waits for the publishes its frames started: each
 * holds the barrier, the last one to settle sends the receipt.
 */
struct barrier {
	char *receipt;
	int remaining;
};

struct pubctx {
	struct broker_pub pub;
	struct session *s;
	char *receipt;		/* NULL, or in the same allocation */
	struct barrier *barrier;
};

static void
barrier_release(struct session *s, struct barrier *b)
{
	if (b == NULL || --b->remaining > 0)
		return;
	if (s->conn != NULL && s->state == S_CONNECTED && b->receipt != NULL)
		send_receipt(s, b->receipt, NULL, NULL);
	free(b->receipt);
	free(b);
}

static void
check_disconnect(struct session *s)
{
	if (!s->disconnecting || s->pending > 0 || s->conn == NULL ||
	    s->state == S_CLOSING)
		return;
	if (s->disconnect_receipt != NULL)
		send_receipt(s, s->disconnect_receipt, NULL, NULL);
	set_closing(s);
	conn_close(s->conn, 1000, "DISCONNECT");
}

static void
published(void *arg, int status, uint64_t position, const char *why)
{
	struct pubctx *pc = arg;
	struct session *s = pc->s;
	char pos[32];

	s->pending--;
	if (s->conn != NULL && s->state != S_CLOSING) {
		if (status != 0)
			send_error(s, pc->receipt, "message not accepted",
			    why);
		else if (pc->receipt != NULL) {
			pos[fmt_u64(pos, position)] = '\0';
			send_receipt(s, pc->receipt, "position", pos);
		}
		check_disconnect(s);
	}
	barrier_release(s, pc->barrier);
	free(pc);
	session_unref(s);
}

/* Parse "/room/<name>" into room; 0 or -1. */
static int
room_of(const char *dest, char *room, size_t len)
{
	size_t n;

	if (dest == NULL || strncmp(dest, "/room/", 6) != 0)
		return -1;
	n = strlen(dest + 6);
	if (!room_name_valid(dest + 6, n) || n >= len)
		return -1;
	memcpy(room, dest + 6, n + 1);
	return 0;
}

static void
do_publish(struct session *s, const char *room, int event,
    const struct stomp_frame *f, const char *receipt, unsigned flags)
{
	struct parley_msg m;
	struct pubctx *pc;
	char id[PARLEY_ID_MAX + 1];
	const char *why = NULL;
	size_t rlen = receipt != NULL ? strlen(receipt) + 1 : 0;

	memset(&m, 0, sizeof(m));
	msgid_next(id, sizeof(id));
	m.room = room;
	m.id = id;
	m.sender = s->login;
	m.timestamp_ms = now_ms();
	m.event = event;
	if (f != NULL) {
		m.content_type = stomp_hget(f, STOMP_H_CONTENT_TYPE);
		m.body = f->body;
		m.body_len = f->body_len;
		m.ref_id = stomp_hget(f, STOMP_H_REF_ID);
		m.media_id = stomp_hget(f, STOMP_H_MEDIA_ID);
	} else
		m.body = "";
	m.flags = flags;
	if ((pc = malloc(sizeof(*pc) + rlen)) == NULL) {
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	pc->receipt = NULL;
	if (receipt != NULL)
		pc->receipt = memcpy(pc + 1, receipt, rlen);
	pc->s = s;
	if ((pc->barrier = s->commit) != NULL)
		pc->barrier->remaining++;
	session_ref(s);
	s->pending++;
	if (broker_publish(&m, &pc->pub, published, pc, &why) == -1) {
		s->pending--;
		barrier_release(s, pc->barrier);
		send_error(s, receipt, "message not accepted", why);
		free(pc);
		session_unref(s);
	}
}

static void
publish_event(struct session *s, const char *room, int event)
{
	struct room *r;

	if (s->login[0] == '\0')
		return;
	/* presence in a big room is N joins to N people: past the cap, the
	 * room gets no join/leave events (typing still works) */
	if (event == PARLEY_EV_JOIN &&
	    cfg->presence_max > 0 && (r = broker_room(room)) != NULL &&
	    r->nsubs > (size_t)cfg->presence_max)
		return;
	do_publish(s, room, event, NULL, NULL, 0);
}

/*
 * EDIT/DELETE: moderators may change any message; others only their own,
 * which means looking the target up (uncommitted messages first, then
 * storage on a worker) before anything is broadcast.
 */
struct edit_job {
	struct session *s;
	struct fcopy *fc;
	char room[PARLEY_ROOM_MAX + 1];
	char id[PARLEY_ID_MAX + 1];
	int event;
	int found;		/* 1 found, 0 not, -1 storage error */
	char sender[PARLEY_LOGIN_MAX + 1];
	char err[256];
};

static void
edit_lookup_work(void *arg)
{
	struct edit_job *j = arg;
	struct parley_ctx *st = plugins.storage;
	struct parley_msg_list l = { NULL, 0, 0 };

	j->found = st->p->storage->get_msg(st->state, j->room, j->id,
	    &msg_list_api, &l, j->err, sizeof(j->err));
	if (j->found == 1 && l.n > 0)
		snprintf(j->sender, sizeof(j->sender), "%s", l.v[0]->m.sender);
	else if (j->found == 1)
		j->found = 0;
	msg_list_clear(&l);
}

static void
edit_decide(struct edit_job *j)
{
	struct session *s = j->s;
	const char *receipt = stomp_hget(&j->fc->f, STOMP_H_RECEIPT);

	if (s->conn == NULL || s->state != S_CONNECTED)
		return;
	if (j->found == -1)
		send_error(s, receipt, "cannot check the message: storage "
		    "unavailable", j->err);
	else if (j->found == 0)
		send_error(s, receipt, "no such message", j->id);
	else if (strcmp(j->sender, s->login) != 0)
		check_perm(s, j->room, PERM_MODERATE, receipt);
	else
		do_publish(s, j->room, j->event, &j->fc->f, receipt, 0);
}

static void
edit_lookup_done(void *arg)
{
	struct edit_job *j = arg;

	edit_decide(j);
	session_unref(j->s);
	fcopy_free(j->fc);
	free(j);
}

static void
edit_or_delete(struct session *s, const char *room, int event,
    struct stomp_frame *f, const char *receipt)
{
	unsigned have = access_perms(s->login, s->roles, s->grants, room);
	const char *ref = stomp_hget(f, STOMP_H_REF_ID);
	struct edit_job *j;
	struct pmsg **snap;
	size_t n, i;

	if (have & PERM_MODERATE) {
		do_publish(s, room, event, f, receipt, PARLEY_MSG_MODERATED);
		return;
	}
	if (check_perm(s, room, PERM_WRITE, receipt) == -1)
		return;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->fc = fcopy_new(f)) == NULL) {
		free(j);
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	j->s = s;
	session_ref(s);
	j->event = event;
	snprintf(j->room, sizeof(j->room), "%s", room);
	snprintf(j->id, sizeof(j->id), "%s", ref);
	/* not yet in storage? */
	batcher_snapshot(room, 0, &snap, &n);
	for (i = 0; i < n; i++) {
		if (j->found == 0 && strcmp(snap[i]->m.id, ref) == 0) {
			j->found = 1;
			snprintf(j->sender, sizeof(j->sender), "%s",
			    snap[i]->m.sender);
		}
		pmsg_unref(snap[i]);
	}
	free(snap);
	if (j->found == 1 || worker_submit(edit_lookup_work,
	    edit_lookup_done, j) == -1)
		edit_lookup_done(j);
}

/*
 * SEND with media-id: the media must exist and be the sender's to share
 * (media.c decides: from memory for media just uploaded here, else on a
 * worker); then it is published as usual.
 */
struct media_job {
	struct session *s;
	struct fcopy *fc;
	char room[PARLEY_ROOM_MAX + 1];
};

static void
media_checked(void *arg, int status, const char *why)
{
	struct media_job *j = arg;
	struct session *s = j->s;
	const char *receipt = stomp_hget(&j->fc->f, STOMP_H_RECEIPT);

	if (s->conn != NULL && s->state == S_CONNECTED) {
		if (status == 0)
			do_publish(s, j->room, PARLEY_EV_MESSAGE, &j->fc->f,
			    receipt, 0);
		else
			send_error(s, receipt, status == -1 ?
			    "media-id refused" : "media storage unavailable",
			    why);
	}
	session_unref(s);
	fcopy_free(j->fc);
	free(j);
}

static void
media_check(struct session *s, const char *room, struct stomp_frame *f,
    const char *receipt)
{
	struct media_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->fc = fcopy_new(f)) == NULL) {
		free(j);
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	j->s = s;
	session_ref(s);
	snprintf(j->room, sizeof(j->room), "%s", room);
	media_share(stomp_hget(f, STOMP_H_MEDIA_ID), room, s->login, s->roles,
	    s->grants, media_checked, j);
}

static void
handle_send(struct session *s, struct stomp_frame *f, const char *receipt)
{
	const char *dest = stomp_hget(f, STOMP_H_DESTINATION);
	const char *ev = stomp_hget(f, STOMP_H_EVENT);
	char room[PARLEY_ROOM_MAX + 1];
	int event = PARLEY_EV_MESSAGE;

	if (dest == NULL) {
		send_error(s, receipt, "SEND without destination header",
		    NULL);
		return;
	}
	if (room_of(dest, room, sizeof(room)) == -1) {
		send_error(s, receipt, "invalid destination",
		    "destinations are /room/NAME, NAME being 1-128 of "
		    "A-Z a-z 0-9 . _ - and not starting with '.'");
		return;
	}
	{
		const char *ct = stomp_hget(f, STOMP_H_CONTENT_TYPE);
		const char *ref = stomp_hget(f, STOMP_H_REF_ID);
		const char *media = stomp_hget(f, STOMP_H_MEDIA_ID);

		if (ct != NULL && !header_value_safe(ct, 256)) {
			send_error(s, receipt, "invalid content-type header",
			    "at most 256 bytes, no control characters or "
			    "backslashes");
			return;
		}
		if (ref != NULL && !header_value_safe(ref, PARLEY_ID_MAX)) {
			send_error(s, receipt, "invalid ref-id header",
			    "a message id");
			return;
		}
		if (media != NULL && !id_valid(media)) {
			send_error(s, receipt, "invalid media-id header",
			    "1-64 of A-Z a-z 0-9 _ -");
			return;
		}
	}
	if (ev != NULL) {
		event = event_from_name(ev);
		if (event != PARLEY_EV_TYPING && event != PARLEY_EV_EDIT &&
		    event != PARLEY_EV_DELETE) {
			send_error(s, receipt, "invalid event header",
			    "a client may send event:typing, event:edit or "
			    "event:delete");
			return;
		}
		if ((event == PARLEY_EV_EDIT || event == PARLEY_EV_DELETE) &&
		    stomp_hget(f, STOMP_H_REF_ID) == NULL) {
			send_error(s, receipt, "edit/delete without ref-id",
			    "name the message to change in ref-id");
			return;
		}
	}
	if (event == PARLEY_EV_EDIT || event == PARLEY_EV_DELETE) {
		edit_or_delete(s, room, event, f, receipt);
		return;
	}
	if (check_perm(s, room, PERM_WRITE, receipt) == -1)
		return;
	if (event == PARLEY_EV_MESSAGE &&
	    stomp_hget(f, STOMP_H_MEDIA_ID) != NULL) {
		media_check(s, room, f, receipt);
		return;
	}
	do_publish(s, room, event, f, receipt, 0);
}

/* ------------------------------------------------------------ SUBSCRIBE */

static struct sub *
find_sub(struct session *s, const char *id)
{
	struct sub *sub;

	TAILQ_FOREACH(sub, &s->subs, session_entry)
		if (strcmp(sub->id, id) == 0)
			return sub;
	return NULL;
}

static void
handle_subscribe(struct session *s, struct stomp_frame *f,
    const char *receipt)
{
	const char *dest = stomp_hget(f, STOMP_H_DESTINATION);
	const char *id = stomp_hget(f, STOMP_H_ID);
	const char *ack = stomp_hget(f, STOMP_H_ACK);
	const char *since = stomp_hget(f, STOMP_H_SINCE);
	const char *history = stomp_hget(f, STOMP_H_HISTORY);
	char room[PARLEY_ROOM_MAX + 1];
	enum ack_mode mode = ACK_AUTO;
	enum resume_kind rk = RESUME_NONE;
	uint64_t since_pos = 0, hist = 0;
	struct sub *sub;
	struct subx *x;

	if (dest == NULL) {
		send_error(s, receipt, "SUBSCRIBE without destination header",
		    NULL);
		return;
	}
	if (id == NULL) {
		if (s->version >= 11) {
			send_error(s, receipt, "SUBSCRIBE without id header",
			    "STOMP 1.1 and 1.2 require an id");
			return;
		}
		id = dest;	/* 1.0: the destination names it */
	}
	if (room_of(dest, room, sizeof(room)) == -1) {
		send_error(s, receipt, "invalid destination",
		    "destinations are /room/NAME, NAME being 1-128 of "
		    "A-Z a-z 0-9 . _ - and not starting with '.'");
		return;
	}
	if (ack == NULL || strcmp(ack, "auto") == 0)
		mode = ACK_AUTO;
	else if (strcmp(ack, "client") == 0)
		mode = ACK_CLIENT;
	else if (strcmp(ack, "client-individual") == 0)
		mode = ACK_CLIENT_INDIVIDUAL;
	else {
		send_error(s, receipt, "invalid ack header",
		    "ack is auto, client or client-individual");
		return;
	}
	if (since != NULL && history != NULL) {
		send_error(s, receipt, "since and history are exclusive",
		    NULL);
		return;
	}
	if (since != NULL) {
		if (parse_u64(since, &since_pos) == -1) {
			send_error(s, receipt, "invalid since header",
			    "since is a room position (decimal)");
			return;
		}
		rk = RESUME_SINCE;
	} else if (history != NULL) {
		if (parse_u64(history, &hist) == -1 ||
		    hist > (uint64_t)cfg->history_max) {
			char d[96];

			snprintf(d, sizeof(d), "history is a count from 0 to "
			    "%d", cfg->history_max);
			send_error(s, receipt, "invalid history header", d);
			return;
		}
		if (hist > 0)
			rk = RESUME_HISTORY;
	}
	if (find_sub(s, id) != NULL) {
		send_error(s, receipt, "duplicate subscription id", id);
		return;
	}
	if (check_perm(s, room, PERM_READ, receipt) == -1)
		return;
	if (s->nsubs >= cfg->max_subscriptions) {
		send_error(s, receipt, "too many subscriptions",
		    "see [server] max_subscriptions");
		return;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	{
		struct stomp_buf b;

		stomp_buf_init(&b);
		stomp_buf_add(&b, "MESSAGE\n", 8);
		stomp_buf_header(&b, "subscription", id, s->version);
		x->head = b.data;
		x->head_len = b.len;
	}
	if (mode != ACK_AUTO &&
	    (x->unacked = calloc(MAX_UNACKED, sizeof(char *))) == NULL) {
		subx_free(x);
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	sub = broker_subscribe(s, id, room, mode, rk, since_pos, (int)hist,
	    rk != RESUME_NONE ? receipt : NULL);
	if (sub == NULL) {
		subx_free(x);
		send_error(s, receipt, "out of memory", NULL);
		return;
	}
	sub->ext = x;
	if (mode == ACK_AUTO)
		broker_sub_direct(sub, s->conn, x->head, x->head_len);
	TAILQ_INSERT_TAIL(&s->subs, sub, session_entry);
	s->nsubs++;
	if (rk == RESUME_NONE && receipt != NULL)
		send_receipt(s, receipt, NULL, NULL);
	publish_event(s, room, PARLEY_EV_JOIN);
}

static void
handle_unsubscribe(struct session *s, struct stomp_frame *f,
    const char *receipt)
{
	const char *id = stomp_hget(f, STOMP_H_ID);
	struct sub *sub;

	if (id == NULL && s->version == 10)
		id = stomp_hget(f, STOMP_H_DESTINATION);
	if (id == NULL) {
		send_error(s, receipt, "UNSUBSCRIBE without id header", NULL);
		return;
	}
	if ((sub = find_sub(s, id)) == NULL) {
		send_error(s, receipt, "no such subscription", id);
		return;
	}
	drop_sub(s, sub, 1);
	if (receipt != NULL)
		send_receipt(s, receipt, NULL, NULL);
}

/* ------------------------------------------------------------ ACK/NACK */

static int
ack_id(struct session *s, const char *id, int cumulative)
{
	struct sub *sub;

	TAILQ_FOREACH(sub, &s->subs, session_entry) {
		struct subx *x = sub->ext;
		size_t i;

		if (x == NULL || x->unacked == NULL)
			continue;
		for (i = 0; i < x->ua_n; i++) {
			size_t k = (x->ua_first + i) % MAX_UNACKED;

			if (strcmp(x->unacked[k], id) != 0)
				continue;
			if (cumulative && sub->ack == ACK_CLIENT) {
				/* client mode acks everything up to id */
				size_t j;

				for (j = 0; j <= i; j++) {
					size_t kk = (x->ua_first + j) %
					    MAX_UNACKED;

					free(x->unacked[kk]);
					x->unacked[kk] = NULL;
				}
				x->ua_first = (x->ua_first + i + 1) %
				    MAX_UNACKED;
				x->ua_n -= i + 1;
			} else {
				/* remove one: shift the later ones down */
				size_t j;

				free(x->unacked[k]);
				for (j = i; j + 1 < x->ua_n; j++)
					x->unacked[(x->ua_first + j) %
					    MAX_UNACKED] = x->unacked[
					    (x->ua_first + j + 1) %
					    MAX_UNACKED];
				x->ua_n--;
			}
			return 0;
		}
	}
	return -1;
}

static void
handle_ack(struct session *s, struct stomp_frame *f, const char *receipt)
{
	const char *id = stomp_header_get(f, s->version == 12 ? "id" :
	    "message-id");

	if (id == NULL) {
		send_error(s, receipt, f->cmd == STOMP_CMD_ACK ?
		    "ACK without id header" : "NACK without id header", NULL);
		return;
	}
	/* NACK: chat rooms are topics; nothing is redelivered */
	if (ack_id(s, id, 1) == -1) {
		send_error(s, receipt, "unknown or already acknowledged "
		    "message", id);
		return;
	}
	if (receipt != NULL)
		send_receipt(s, receipt, NULL, NULL);
}

/* ------------------------------------------------------------ transactions */

static struct tx *
find_tx(struct session *s, const char *id)
{
	struct tx *t;

	LIST_FOREACH(t, &s->txs, entry)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

static void
handle_tx(struct session *s, struct stomp_frame *f, const char *receipt)
{
	const char *id = stomp_hget(f, STOMP_H_TRANSACTION);
	struct tx *t;
	struct fcopy *fc;

	if (id == NULL) {
		send_error(s, receipt, "transaction header missing", NULL);
		return;
	}
	t = find_tx(s, id);
	if (f->cmd == STOMP_CMD_BEGIN) {
		if (t != NULL) {
			send_error(s, receipt, "transaction already begun",
			    id);
			return;
		}
		if (s->ntx >= MAX_TX || (t = calloc(1, sizeof(*t))) == NULL ||
		    (t->id = strdup(id)) == NULL) {
			free(t);
			send_error(s, receipt, "too many open transactions",
			    NULL);
			return;
		}
		STAILQ_INIT(&t->frames);
		LIST_INSERT_HEAD(&s->txs, t, entry);
		s->ntx++;
	} else {
		if (t == NULL) {
			send_error(s, receipt, "no such transaction", id);
			return;
		}
		LIST_REMOVE(t, entry);
		s->ntx--;
		if (f->cmd == STOMP_CMD_COMMIT) {
			struct barrier *b = calloc(1, sizeof(*b));

			/* run the frames in order, as if sent now; the
			 * receipt waits until their messages are durable */
			if (b != NULL) {
				b->remaining = 1;	/* held while running */
				if (receipt != NULL)
					b->receipt = strdup(receipt);
				receipt = NULL;
			}
			s->commit = b;
			while ((fc = STAILQ_FIRST(&t->frames)) != NULL &&
			    s->state == S_CONNECTED) {
				STAILQ_REMOVE_HEAD(&t->frames, entry);
				handle_frame(s, &fc->f);
				fcopy_free(fc);
			}
			s->commit = NULL;
			barrier_release(s, b);
		}
		tx_free(t);
	}
	if (receipt != NULL && s->state == S_CONNECTED)
		send_receipt(s, receipt, NULL, NULL);
}

/* ------------------------------------------------------------ dispatch */

static void
handle_frame(struct session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_hget(f, STOMP_H_RECEIPT);
	const char *txid;
	struct tx *t;
	struct fcopy *fc;

	if (s->state == S_CONNECT) {
		if (f->cmd == STOMP_CMD_CONNECT || f->cmd == STOMP_CMD_STOMP)
			handle_connect(s, f);
		else
			send_error(s, receipt, "expected CONNECT or STOMP",
			    stomp_command_name(f->cmd));
		return;
	}
	if (s->disconnecting) {
		send_error(s, receipt, "frame after DISCONNECT", NULL);
		return;
	}
	/* frames inside a transaction wait for COMMIT */
	if ((f->cmd == STOMP_CMD_SEND || f->cmd == STOMP_CMD_ACK ||
	    f->cmd == STOMP_CMD_NACK) &&
	    (txid = stomp_hget(f, STOMP_H_TRANSACTION)) != NULL) {
		if ((t = find_tx(s, txid)) == NULL) {
			send_error(s, receipt, "no such transaction", txid);
			return;
		}
		if (t->n >= MAX_TX_FRAMES || (fc = fcopy_new(f)) == NULL) {
			send_error(s, receipt, "transaction too large", txid);
			return;
		}
		/* strip the transaction header so COMMIT runs it plainly,
		 * and the receipt header: it is answered here, once */
		for (size_t i = 0; i < fc->f.nheaders; i++)
			if (strcmp(fc->f.headers[i].name, "transaction") == 0 ||
			    strcmp(fc->f.headers[i].name, "receipt") == 0)
				fc->f.headers[i].name[0] = '\0';
		stomp_frame_index(&fc->f);
		STAILQ_INSERT_TAIL(&t->frames, fc, entry);
		t->n++;
		if (receipt != NULL)
			send_receipt(s, receipt, NULL, NULL);
		return;
	}
	switch (f->cmd) {
	case STOMP_CMD_SEND:
		handle_send(s, f, receipt);
		break;
	case STOMP_CMD_SUBSCRIBE:
		handle_subscribe(s, f, receipt);
		break;
	case STOMP_CMD_UNSUBSCRIBE:
		handle_unsubscribe(s, f, receipt);
		break;
	case STOMP_CMD_ACK:
	case STOMP_CMD_NACK:
		handle_ack(s, f, receipt);
		break;
	case STOMP_CMD_BEGIN:
	case STOMP_CMD_COMMIT:
	case STOMP_CMD_ABORT:
		handle_tx(s, f, receipt);
		break;
	case STOMP_CMD_DISCONNECT:
		s->disconnecting = 1;
		if (receipt != NULL)
			s->disconnect_receipt = strdup(receipt);
		check_disconnect(s);
		break;
	case STOMP_CMD_CONNECT:
	case STOMP_CMD_STOMP:
		send_error(s, receipt, "already connected", NULL);
		break;
	default:
		send_error(s, receipt, "frame not allowed from a client",
		    stomp_command_name(f->cmd));
		break;
	}
}

/* ------------------------------------------------------------ revocation */

/*
 * After an auth plugin's reload: the distinct logins of the sessions it
 * allowed go to a worker, which asks the plugin about each; back on the
 * loop, the sessions of the logins it no longer knows (or has locked) end.
 */
struct reval {
	struct parley_ctx *ctx;
	struct strmap logins;		/* login -> reval_item */
	size_t n;
};

struct reval_item {
	int valid;
	char login[];
};

static void
reval_work_one(const char *key, void *value, void *arg)
{
	struct reval *rv = arg;
	struct reval_item *it = value;

	(void)key;
	it->valid = plugin_still_valid(rv->ctx)(rv->ctx->state, it->login);
}

static void
reval_work(void *arg)
{
	struct reval *rv = arg;

	strmap_foreach(&rv->logins, reval_work_one, rv);
}

static void
reval_free_one(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

static void
reval_done(void *arg)
{
	struct reval *rv = arg;
	struct session *s, *next;
	struct reval_item *it;
	size_t ended = 0;

	for (s = LIST_FIRST(&sessions); s != NULL; s = next) {
		next = LIST_NEXT(s, all);	/* send_error may end s */
		if (s->auth_by != rv->ctx || s->state != S_CONNECTED ||
		    s->conn == NULL ||
		    (it = strmap_get(&rv->logins, s->login)) == NULL ||
		    it->valid)
			continue;
		stats.err_auth++;
		log_info("%s: %s was removed or locked in [%s]: closing",
		    s->conn->peer, s->login, rv->ctx->name);
		send_error(s, NULL, "credentials revoked",
		    "the account was removed or locked");
		ended++;
	}
	if (ended > 0)
		log_warn("[%s] reload ended %zu session%s of removed or "
		    "locked logins", rv->ctx->name, ended,
		    ended == 1 ? "" : "s");
	strmap_foreach(&rv->logins, reval_free_one, NULL);
	strmap_free(&rv->logins);
	free(rv);
}

void
session_revalidate(struct parley_ctx *ctx)
{
	struct reval *rv;
	struct session *s;
	struct reval_item *it;
	size_t n;

	if ((rv = calloc(1, sizeof(*rv))) == NULL)
		return;
	rv->ctx = ctx;
	strmap_init(&rv->logins);
	LIST_FOREACH(s, &sessions, all) {
		if (s->auth_by != ctx || s->state != S_CONNECTED ||
		    strmap_get(&rv->logins, s->login) != NULL)
			continue;
		n = strlen(s->login) + 1;
		if ((it = calloc(1, sizeof(*it) + n)) == NULL)
			continue;
		it->valid = 1;
		memcpy(it->login, s->login, n);
		if (strmap_put(&rv->logins, it->login, it) == -1) {
			free(it);
			continue;
		}
		rv->n++;
	}
	if (rv->n == 0 || worker_submit(reval_work, reval_done, rv) == -1) {
		strmap_foreach(&rv->logins, reval_free_one, NULL);
		strmap_free(&rv->logins);
		free(rv);
	}
}

/* ------------------------------------------------------------ delivery */

void
session_deliver(struct sub *sub, struct pmsg *p)
{
	struct session *s = sub->session;
	struct subx *x = sub->ext;
	char head[512];
	size_t hl;

	if (p->m.position <= *sub_last_position(sub))
		return;		/* already sent (resume seam, duplicate) */
	*sub_last_position(sub) = p->m.position;
	if (s->conn == NULL || s->state != S_CONNECTED || x == NULL)
		return;
	if (x->unacked == NULL || x->head_len + strlen(p->m.id) + 8 >
	    sizeof(head)) {
		if (conn_send_msg(s->conn, x->head, x->head_len, p) == 0)
			stats.deliveries++;
		return;
	}
	/* client ack modes: add ack:<message-id> and remember it */
	memcpy(head, x->head, x->head_len);
	hl = x->head_len;
	hl += (size_t)snprintf(head + hl, sizeof(head) - hl, "%s:%s\n",
	    s->version == 12 ? "ack" : "x-ack", p->m.id);
	if (x->ua_n == MAX_UNACKED) {
		/* forget the oldest: it can no longer be acknowledged */
		free(x->unacked[x->ua_first]);
		x->ua_first = (x->ua_first + 1) % MAX_UNACKED;
		x->ua_n--;
	}
	x->unacked[(x->ua_first + x->ua_n) % MAX_UNACKED] = strdup(p->m.id);
	if (x->unacked[(x->ua_first + x->ua_n) % MAX_UNACKED] != NULL)
		x->ua_n++;
	if (conn_send_msg(s->conn, head, hl, p) == 0)
		stats.deliveries++;
}

void
session_resumed(struct sub *sub, uint64_t position, int recovered)
{
	struct session *s = sub->session;
	char pos[32], id[64], ts[32];

	if (s->conn == NULL || s->state != S_CONNECTED)
		return;
	snprintf(pos, sizeof(pos), "%" PRIu64, position);
	snprintf(id, sizeof(id), "resumed-%" PRIu64, ++s->resume_seq);
	snprintf(ts, sizeof(ts), "%" PRId64, now_ms());
	frame_begin(s, "MESSAGE");
	frame_header(s, "subscription", sub->id);
	frame_header(s, "message-id", id);
	frame_header(s, "destination", "/room/");
	s->out.len--;	/* append the room name to the destination */
	stomp_buf_add(&s->out, sub->room->name, strlen(sub->room->name));
	stomp_buf_add(&s->out, "\n", 1);
	frame_header(s, "event", "resumed");
	frame_header(s, "position", pos);
	frame_header(s, "recovered", recovered ? "true" : "false");
	frame_header(s, "timestamp", ts);
	frame_header(s, "content-length", "0");
	frame_end(s, NULL, 0);
	send_buf(s);
	if (sub->receipt != NULL) {
		send_receipt(s, sub->receipt, "recovered", recovered ?
		    "true" : "false");
		free(sub->receipt);
		sub->receipt = NULL;
	}
}
