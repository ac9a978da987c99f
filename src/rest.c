/*
 * rest.c - REST API (JSON via jansson).  Every call authenticates with
 * Authorization: Basic or Bearer through the auth chain; the chain and the
 * storage call run together on a worker, the answer is written on the loop.
 *
 *   GET    /api/v1/rooms
 *   POST   /api/v1/rooms                      {"name", "topic"?}
 *   GET    /api/v1/rooms/{room}
 *   DELETE /api/v1/rooms/{room}               creator or role admin
 *   GET    /api/v1/rooms/{room}/messages      ?before=|after=&limit=
 *   POST   /api/v1/rooms/{room}/messages      {"body", "content_type"?}
 *   PATCH  /api/v1/rooms/{room}/messages/{id} {"body"}  own, or moderate
 *   DELETE /api/v1/rooms/{room}/messages/{id}            own, or moderate
 *
 * Permissions (access.h) are checked on every call: read for GETs, write
 * to post or create, moderate (or being the creator) to delete a room.
 *
 * Positions are 64-bit: JSON carries them as decimal strings.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "access.h"
#include "batcher.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "msg.h"
#include "plugin.h"
#include "rest.h"
#include "util.h"
#include "worker.h"

enum op {
	OP_ROOMS_LIST, OP_ROOM_CREATE, OP_ROOM_GET, OP_ROOM_DELETE,
	OP_MSGS_GET, OP_MSG_POST, OP_MSG_EDIT, OP_MSG_DELETE
};

struct job {
	struct conn *c;
	enum op op;
	char room[PARLEY_ROOM_MAX + 1];
	char *topic;
	char *body;
	size_t body_len;
	char *content_type;
	int dir;
	uint64_t cursor;
	size_t limit;
	/* auth */
	char *login, *pass, *bearer;
	int auth;
	char why[256];
	struct parley_identity id;
	unsigned perms;		/* in room */
	char msg_id[PARLEY_ID_MAX + 1];	/* PATCH/DELETE target */
	char target_sender[PARLEY_LOGIN_MAX + 1];
	int target_found;
	/* results */
	int status;
	char err[256];
	struct parley_msg_list msgs;
	struct parley_room_list rooms;
	struct pmsg **snap;
	size_t nsnap;
	struct broker_pub pub;	/* a POST/PATCH/DELETE until posted() */
};

static struct config *cfg;

void
rest_config(struct config *c)
{
	cfg = c;
}

static void
job_free(struct job *j)
{
	size_t i;

	msg_list_clear(&j->msgs);
	room_list_clear(&j->rooms);
	for (i = 0; i < j->nsnap; i++)
		pmsg_unref(j->snap[i]);
	free(j->snap);
	free(j->topic);
	free(j->body);
	free(j->content_type);
	free(j->login);
	free(j->pass);
	free(j->bearer);
	free(j);
}

static void
respond_json(struct conn *c, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s == NULL) {
		http_error(c, 500, "cannot encode JSON");
		json_decref(j);
		return;
	}
	http_respond(c, status, "application/json", NULL, s, strlen(s));
	free(s);
	json_decref(j);
}

static json_t *
msg_json(const struct parley_msg *m)
{
	char pos[32];
	json_t *o;
	const char *ev = event_name(m->event);

	snprintf(pos, sizeof(pos), "%" PRIu64, m->position);
	o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", m->id, "room",
	    m->room, "position", pos, "sender", m->sender, "timestamp",
	    (json_int_t)m->timestamp_ms);
	if (ev != NULL)
		json_object_set_new(o, "event", json_string(ev));
	if (m->ref_id != NULL)
		json_object_set_new(o, "ref_id", json_string(m->ref_id));
	if (m->content_type != NULL)
		json_object_set_new(o, "content_type",
		    json_string(m->content_type));
	json_object_set_new(o, "body", json_stringn(m->body, m->body_len));
	if (m->edited_ms != 0)
		json_object_set_new(o, "edited", json_integer(m->edited_ms));
	if (m->deleted)
		json_object_set_new(o, "deleted", json_true());
	if (m->media_id != NULL)
		json_object_set_new(o, "media_id", json_string(m->media_id));
	return o;
}

static json_t *
room_json(const struct parley_room_info *r)
{
	char pos[32];
	json_t *o;

	snprintf(pos, sizeof(pos), "%" PRIu64, r->last_position);
	o = json_pack("{s:s, s:s, s:I, s:s, s:I}", "name", r->name,
	    "creator", r->creator ? r->creator : "", "created",
	    (json_int_t)r->created_ms, "last_position", pos, "message_count",
	    (json_int_t)r->message_count);
	json_object_set_new(o, "topic", r->topic ? json_string(r->topic) :
	    json_null());
	return o;
}

/* ------------------------------------------------------------ worker */

static void
job_work(void *arg)
{
	struct job *j = arg;
	struct parley_ctx *st = plugins.storage;
	const struct parley_storage_ops *ops = st->p->storage;
	struct parley_credentials cred;
	struct parley_room_info ri;

	memset(&cred, 0, sizeof(cred));
	cred.login = j->login;
	cred.passcode = j->pass;
	cred.bearer = j->bearer;
	j->auth = plugins_authenticate(&cred, &j->id, j->why,
	    sizeof(j->why));
	if (j->auth != PARLEY_AUTH_ALLOW)
		return;
	if (j->room[0] != '\0')
		j->perms = access_perms(j->id.login, j->id.roles, j->id.grants,
		    j->room);
	switch (j->op) {
	case OP_ROOMS_LIST:
		j->status = ops->room_list(st->state, &msg_list_api,
		    &j->rooms, j->err, sizeof(j->err));
		break;
	case OP_ROOM_CREATE:
		if (!(j->perms & PERM_WRITE)) {
			j->status = -2;		/* answered 403 on the loop */
			break;
		}
		memset(&ri, 0, sizeof(ri));
		ri.name = j->room;
		ri.creator = j->id.login;
		ri.created_ms = now_ms();
		ri.topic = j->topic;
		j->status = ops->room_create(st->state, &ri, j->err,
		    sizeof(j->err));
		if (j->status >= 0)
			ops->room_get(st->state, j->room, &msg_list_api,
			    &j->rooms, j->err, sizeof(j->err));
		break;
	case OP_ROOM_GET:
		j->status = ops->room_get(st->state, j->room, &msg_list_api,
		    &j->rooms, j->err, sizeof(j->err));
		break;
	case OP_ROOM_DELETE:
		j->status = ops->room_get(st->state, j->room, &msg_list_api,
		    &j->rooms, j->err, sizeof(j->err));
		if (j->status == 1) {
			const char *creator = j->rooms.v[0].creator;

			if (!(j->perms & PERM_MODERATE) && (creator == NULL ||
			    strcmp(creator, j->id.login) != 0)) {
				j->status = -2;	/* forbidden */
				break;
			}
			j->status = ops->room_delete(st->state, j->room,
			    j->err, sizeof(j->err));
		}
		break;
	case OP_MSGS_GET:
		j->status = ops->fetch(st->state, j->room, j->dir, j->cursor,
		    j->limit + 1, &msg_list_api, &j->msgs, j->err,
		    sizeof(j->err));
		break;
	case OP_MSG_POST:
		break;
	case OP_MSG_EDIT:
	case OP_MSG_DELETE: {
		size_t i;

		/* the target: not yet stored, or in storage */
		for (i = 0; i < j->nsnap; i++)
			if (strcmp(j->snap[i]->m.id, j->msg_id) == 0) {
				j->target_found = 1;
				snprintf(j->target_sender,
				    sizeof(j->target_sender), "%s",
				    j->snap[i]->m.sender);
			}
		if (j->target_found)
			break;
		j->status = ops->get_msg(st->state, j->room, j->msg_id,
		    &msg_list_api, &j->msgs, j->err, sizeof(j->err));
		if (j->status == 1 && j->msgs.n > 0) {
			j->target_found = !j->msgs.v[0]->m.deleted;
			snprintf(j->target_sender, sizeof(j->target_sender),
			    "%s", j->msgs.v[0]->m.sender);
		}
		if (j->status == 1)
			j->status = 0;
		break;
	}
	}
}

/* 0, or answers 403 naming the room and the missing permission. */
static int
need(struct job *j, unsigned perm)
{
	char msg[256];

	if ((j->perms & perm) == perm)
		return 0;
	snprintf(msg, sizeof(msg), "permission denied: %s on room %s",
	    perm_name(perm), j->room);
	metrics_counter_add("parley_denied_total", NULL, 1);
	http_error(j->c, 403, msg);
	return -1;
}

static void
posted(void *arg, int status, uint64_t position, const char *why)
{
	struct job *j = arg;
	char pos[32];

	if (status != 0)
		http_error(j->c, 503, why ? why : "message not stored");
	else {
		json_t *o;

		snprintf(pos, sizeof(pos), "%" PRIu64, position);
		o = json_pack("{s:s, s:s, s:s}", "id", j->why, "room", j->room,
		    "position", pos);
		if (j->op != OP_MSG_POST) {
			json_object_set_new(o, "ref_id",
			    json_string(j->msg_id));
			json_object_set_new(o, "event", json_string(j->op ==
			    OP_MSG_EDIT ? "edit" : "delete"));
		}
		respond_json(j->c, j->op == OP_MSG_POST ? 201 : 200, o);
	}
	job_free(j);
}

static void
answer_messages(struct job *j)
{
	struct pmsg **all;
	size_t n = 0, i, first, last;
	json_t *arr, *o;
	int more = 0;
	char cur[32];

	all = malloc((j->msgs.n + j->nsnap + 1) * sizeof(*all));
	if (all == NULL) {
		http_error(j->c, 500, "out of memory");
		return;
	}
	for (i = 0; i < j->msgs.n; i++)
		all[n++] = j->msgs.v[i];
	for (i = 0; i < j->nsnap; i++) {
		uint64_t p = j->snap[i]->m.position;

		if (j->snap[i]->m.event != PARLEY_EV_MESSAGE)
			continue;
		if (j->dir == PARLEY_PAGE_AFTER ? p > j->cursor :
		    (j->cursor == 0 || p < j->cursor))
			all[n++] = j->snap[i];
	}
	n = pmsg_sort_unique(all, n);
	first = 0;
	last = n;
	if (n > j->limit) {
		more = 1;
		if (j->dir == PARLEY_PAGE_AFTER)
			last = j->limit;
		else
			first = n - j->limit;
	}
	arr = json_array();
	for (i = first; i < last; i++)
		json_array_append_new(arr, msg_json(&all[i]->m));
	o = json_pack("{s:s, s:o, s:b}", "room", j->room, "messages", arr,
	    "has_more", more);
	if (last > first) {
		snprintf(cur, sizeof(cur), "%" PRIu64, all[first]->m.position);
		json_object_set_new(o, "first_position", json_string(cur));
		snprintf(cur, sizeof(cur), "%" PRIu64,
		    all[last - 1]->m.position);
		json_object_set_new(o, "last_position", json_string(cur));
	}
	free(all);
	respond_json(j->c, 200, o);
}

static void
job_done(void *arg)
{
	struct job *j = arg;
	struct parley_msg m;
	const char *why = NULL;
	json_t *arr;
	size_t i;

	if (j->c->closed) {
		http_respond(j->c, 0, NULL, NULL, NULL, 0);	/* unref */
		job_free(j);
		return;
	}
	if (j->auth != PARLEY_AUTH_ALLOW) {
		log_client(j->c->ip, "%s: REST authentication failed: %s",
		    j->c->peer, j->why);
		http_respond(j->c, 401, "application/json",
		    "WWW-Authenticate: Basic realm=\"parley\"\r\n",
		    "{\"status\":401,\"error\":\"authentication required\"}",
		    48);
		job_free(j);
		return;
	}
	if (j->status == -1) {
		log_warn("REST: storage: %s", j->err);
		http_error(j->c, 503, "storage unavailable");
		job_free(j);
		return;
	}
	switch (j->op) {
	case OP_ROOMS_LIST:
		arr = json_array();
		for (i = 0; i < j->rooms.n; i++)
			if (access_perms(j->id.login, j->id.roles,
			    j->id.grants, j->rooms.v[i].name) & PERM_READ)
				json_array_append_new(arr,
				    room_json(&j->rooms.v[i]));
		respond_json(j->c, 200, json_pack("{s:o}", "rooms", arr));
		break;
	case OP_ROOM_CREATE:
		if (j->status == -2) {
			need(j, PERM_WRITE);
			break;
		}
		if (j->rooms.n == 0)
			http_error(j->c, 500, "room vanished");
		else
			respond_json(j->c, j->status == 1 ? 201 : 409,
			    room_json(&j->rooms.v[0]));
		break;
	case OP_ROOM_GET:
		if (need(j, PERM_READ) == -1)
			break;
		if (j->status == 0 || j->rooms.n == 0) {
			struct room *r = broker_room(j->room);

			if (r == NULL || r->messages == 0) {
				http_error(j->c, 404, "no such room");
				break;
			}
		}
		if (j->rooms.n > 0)
			respond_json(j->c, 200, room_json(&j->rooms.v[0]));
		else
			respond_json(j->c, 200, json_pack("{s:s}", "name",
			    j->room));
		break;
	case OP_ROOM_DELETE:
		if (j->status == -2)
			http_error(j->c, 403, "only the room's creator or a "
			    "user with moderate permission may delete it");
		else if (j->status == 0)
			http_error(j->c, 404, "no such room");
		else {
			struct room *r = broker_room(j->room);

			/* else GET still finds it by its live message count */
			if (r != NULL)
				r->messages = 0;
			http_respond(j->c, 204, NULL, NULL, NULL, 0);
		}
		break;
	case OP_MSGS_GET:
		if (need(j, PERM_READ) == -1)
			break;
		answer_messages(j);
		break;
	case OP_MSG_EDIT:
	case OP_MSG_DELETE:
		if (!j->target_found) {
			http_error(j->c, 404, "no such message");
			break;
		}
		if (need(j, strcmp(j->target_sender, j->id.login) == 0 ?
		    PERM_WRITE : PERM_MODERATE) == -1)
			break;
		memset(&m, 0, sizeof(m));
		msgid_next(j->why, sizeof(j->why));
		m.room = j->room;
		m.id = j->why;
		m.sender = j->id.login;
		m.timestamp_ms = now_ms();
		m.event = j->op == OP_MSG_EDIT ? PARLEY_EV_EDIT :
		    PARLEY_EV_DELETE;
		m.ref_id = j->msg_id;
		m.body = j->op == OP_MSG_EDIT ? j->body : "";
		m.body_len = j->op == OP_MSG_EDIT ? j->body_len : 0;
		if (strcmp(j->target_sender, j->id.login) != 0)
			m.flags = PARLEY_MSG_MODERATED;
		if (broker_publish(&m, &j->pub, posted, j, &why) == -1) {
			http_error(j->c, 503, why);
			break;
		}
		return;
	case OP_MSG_POST:
		if (need(j, PERM_WRITE) == -1)
			break;
		memset(&m, 0, sizeof(m));
		msgid_next(j->why, sizeof(j->why));	/* reuse as id */
		m.room = j->room;
		m.id = j->why;
		m.sender = j->id.login;
		m.timestamp_ms = now_ms();
		m.event = PARLEY_EV_MESSAGE;
		m.content_type = j->content_type;
		m.body = j->body;
		m.body_len = j->body_len;
		if (broker_publish(&m, &j->pub, posted, j, &why) == -1) {
			http_error(j->c, 503, why);
			break;
		}
		return;		/* posted() answers and frees */
	}
	job_free(j);
}

/* ------------------------------------------------------------ routing */

static int
credentials(struct http_req *r, struct job *j)
{
	const char *a = http_header(r, "authorization");
	unsigned char dec[512];
	char *colon;
	int n;

	if (a == NULL)
		return 0;
	if (strncasecmp(a, "Bearer ", 7) == 0) {
		j->bearer = strdup(a + 7);
		return 0;
	}
	if (strncasecmp(a, "Basic ", 6) != 0)
		return -1;
	a += 6;
	if (strlen(a) > 680 || strlen(a) % 4 != 0)
		return -1;
	n = EVP_DecodeBlock(dec, (const unsigned char *)a, (int)strlen(a));
	if (n < 0)
		return -1;
	while (n > 0 && dec[n - 1] == '\0')	/* base64 padding */
		n--;
	dec[n] = '\0';
	if ((colon = strchr((char *)dec, ':')) == NULL)
		return -1;
	*colon = '\0';
	j->login = strdup((char *)dec);
	j->pass = strdup(colon + 1);
	return 0;
}

void
rest_handle(struct conn *c, struct http_req *r)
{
	const char *p = r->path;
	const char *m = r->method;
	struct job *j;
	char buf[64];
	const char *rest;
	size_t rl;

	if (strncmp(p, "/api/v1/media", 13) == 0 &&
	    (p[13] == '\0' || p[13] == '/')) {
		media_handle(c, r);
		return;
	}
	if (strncmp(p, "/api/v1/rooms", 13) != 0 ||
	    (p[13] != '\0' && p[13] != '/')) {
		http_error(c, 404, "no such endpoint");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		http_error(c, 500, "out of memory");
		return;
	}
	j->c = c;
	if (credentials(r, j) == -1) {
		job_free(j);
		http_error(c, 400, "malformed Authorization header");
		return;
	}
	rest = p + 13;
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		if (strcmp(m, "GET") == 0)
			j->op = OP_ROOMS_LIST;
		else if (strcmp(m, "POST") == 0) {
			json_error_t e;
			json_t *o = r->body ? json_loadb(r->body, r->body_len,
			    0, &e) : NULL;
			const char *name = NULL, *topic = NULL;

			if (o == NULL || json_unpack(o, "{s:s, s?s}", "name",
			    &name, "topic", &topic) != 0) {
				json_decref(o);
				job_free(j);
				http_error(c, 400, "expected a JSON object "
				    "with a string \"name\" (and optional "
				    "\"topic\")");
				return;
			}
			if (!room_name_valid(name, strlen(name))) {
				json_decref(o);
				job_free(j);
				http_error(c, 400, "invalid room name: 1-128 "
				    "of A-Z a-z 0-9 . _ -, not starting with "
				    "'.'");
				return;
			}
			snprintf(j->room, sizeof(j->room), "%s", name);
			j->topic = topic ? strdup(topic) : NULL;
			json_decref(o);
			j->op = OP_ROOM_CREATE;
		} else
			goto bad_method;
		goto submit;
	}
	rest++;		/* past '/' */
	rl = strcspn(rest, "/");
	if (!room_name_valid(rest, rl)) {
		job_free(j);
		http_error(c, 400, "invalid room name");
		return;
	}
	memcpy(j->room, rest, rl);
	j->room[rl] = '\0';
	rest += rl;
	if (*rest == '\0') {
		if (strcmp(m, "GET") == 0)
			j->op = OP_ROOM_GET;
		else if (strcmp(m, "DELETE") == 0)
			j->op = OP_ROOM_DELETE;
		else
			goto bad_method;
		goto submit;
	}
	if (strncmp(rest, "/messages/", 10) == 0 && rest[10] != '\0') {
		const char *id = rest + 10;

		if (strlen(id) > PARLEY_ID_MAX || strchr(id, '/') != NULL) {
			job_free(j);
			http_error(c, 404, "no such message");
			return;
		}
		snprintf(j->msg_id, sizeof(j->msg_id), "%s", id);
		if (strcmp(m, "DELETE") == 0)
			j->op = OP_MSG_DELETE;
		else if (strcmp(m, "PATCH") == 0) {
			json_error_t e;
			json_t *o = r->body ? json_loadb(r->body, r->body_len,
			    0, &e) : NULL;
			const char *body = NULL;
			size_t bl = 0;

			if (o == NULL || json_unpack(o, "{s:s%}", "body",
			    &body, &bl) != 0) {
				json_decref(o);
				job_free(j);
				http_error(c, 400, "expected a JSON object "
				    "with a string \"body\"");
				return;
			}
			j->body = malloc(bl + 1);
			if (j->body != NULL) {
				memcpy(j->body, body, bl);
				j->body[bl] = '\0';
			}
			j->body_len = bl;
			json_decref(o);
			j->op = OP_MSG_EDIT;
		} else
			goto bad_method;
		batcher_snapshot(j->room, 0, &j->snap, &j->nsnap);
		goto submit;
	}
	if (strcmp(rest, "/messages") != 0) {
		job_free(j);
		http_error(c, 404, "no such endpoint");
		return;
	}
	if (strcmp(m, "GET") == 0) {
		uint64_t lim = 50;
		int hb, ha;

		j->op = OP_MSGS_GET;
		hb = http_query(r, "before", buf, sizeof(buf));
		if (hb && parse_u64(buf, &j->cursor) == -1)
			goto bad_cursor;
		ha = http_query(r, "after", buf, sizeof(buf));
		if (ha && parse_u64(buf, &j->cursor) == -1)
			goto bad_cursor;
		if (ha && hb) {
			job_free(j);
			http_error(c, 400, "use before or after, not both");
			return;
		}
		j->dir = ha ? PARLEY_PAGE_AFTER : PARLEY_PAGE_BEFORE;
		if (http_query(r, "limit", buf, sizeof(buf)) &&
		    (parse_u64(buf, &lim) == -1 || lim == 0 ||
		    lim > (uint64_t)cfg->history_max)) {
			char e[96];

			job_free(j);
			snprintf(e, sizeof(e), "limit is 1 to %d",
			    cfg->history_max);
			http_error(c, 400, e);
			return;
		}
		j->limit = (size_t)lim;
		batcher_snapshot(j->room, 0, &j->snap, &j->nsnap);
	} else if (strcmp(m, "POST") == 0) {
		json_error_t e;
		json_t *o = r->body ? json_loadb(r->body, r->body_len, 0, &e) :
		    NULL;
		const char *body = NULL, *ct = NULL;
		size_t bl = 0;

		if (o == NULL || json_unpack(o, "{s:s%, s?s}", "body", &body,
		    &bl, "content_type", &ct) != 0) {
			json_decref(o);
			job_free(j);
			http_error(c, 400, "expected a JSON object with a "
			    "string \"body\"");
			return;
		}
		j->body = malloc(bl + 1);
		if (j->body != NULL) {
			memcpy(j->body, body, bl);
			j->body[bl] = '\0';
		}
		if (ct != NULL && !header_value_safe(ct, 256)) {
			json_decref(o);
			job_free(j);
			http_error(c, 400, "invalid content_type: at most 256 "
			    "bytes, no control characters or backslashes");
			return;
		}
		j->body_len = bl;
		j->content_type = ct ? strdup(ct) : NULL;
		json_decref(o);
		j->op = OP_MSG_POST;
	} else
		goto bad_method;
submit:
	http_defer(c);
	if (worker_submit_client(job_work, job_done, j) == -1) {
		j->auth = PARLEY_AUTH_DENY;
		job_done(j);
	}
	return;
bad_cursor:
	job_free(j);
	http_error(c, 400, "before/after take a room position (decimal)");
	return;
bad_method:
	job_free(j);
	http_error(c, 405, "method not allowed");
}

/* ------------------------------------------------------------ shared */

/* See media.h: the Authorization parsing above, for media.c. */
int
rest_credentials(struct http_req *r, char **login, char **pass,
    char **bearer)
{
	struct job j;

	memset(&j, 0, sizeof(j));
	*login = *pass = *bearer = NULL;
	if (credentials(r, &j) == -1)
		return -1;
	*login = j.login;
	*pass = j.pass;
	*bearer = j.bearer;
	return 0;
}
