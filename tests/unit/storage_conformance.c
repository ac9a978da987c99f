/*
 * storage_conformance.c - the conformance suite every storage plugin must
 * pass.  Prints TAP.
 *
 *	storage_conformance PLUGIN.so [key=value ...]
 *
 * The key=value arguments are the plugin's INI section (e.g. path=/tmp/x.db
 * for sqlite).  Every room the suite touches is named with a per-run prefix,
 * so a shared database (mysql, mongodb) may hold other data, and the suite
 * deletes its rooms at the end.  The plugin is initialised twice on the same
 * configuration (the restart test), so the store must persist.
 *
 * Storage ops are "worker" ops: the suite calls them directly from its main
 * thread (the loop is idle meanwhile), from its own threads for the
 * concurrency tests, and once through the host's submit().
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testhost.h"

#define ERRLEN 512

static const struct parley_plugin *plugin;
static const struct parley_storage_ops *S;
static const struct parley_list_api *api;
static struct testhost *th;
static void *st;
static char prefix[64];
static int64_t T0;
static uint64_t P0;

/* ---------------------------------------------------------------- */
/* TAP                                                                 */

static int ntests, nfailed;

static int ok(int, const char *, ...) __attribute__((format(printf, 2, 3)));
static int oke(int, const char *, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void diag(const char *, ...) __attribute__((format(printf, 1, 2)));

static int
vok(int cond, const char *fmt, va_list ap)
{
	printf("%sok %d - ", cond ? "" : "not ", ++ntests);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		nfailed++;
	return (cond);
}

static int
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vok(cond, fmt, ap);
	va_end(ap);
	return (cond);
}

/* ok(), and on failure the plugin's error message err. */
static int
oke(int cond, const char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vok(cond, fmt, ap);
	va_end(ap);
	if (!cond && err != NULL && err[0] != '\0')
		diag("error: %s", err);
	return (cond);
}

static void
diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void
bail(const char *why)
{
	printf("Bail out! %s\n", why);
	exit(1);
}

/* ---------------------------------------------------------------- */
/* helpers                                                             */

/* Fill buf with prefix + name. */
static const char *
room(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s%s", prefix, name);
	return (buf);
}

/* Messages whose strings live next to them. */
struct batch {
	struct parley_msg *m;
	char (*id)[96];
	char (*body)[160];
	size_t n;
};

static struct batch *
batch_new(size_t n)
{
	struct batch *b;

	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->m = calloc(n, sizeof(*b->m))) == NULL ||
	    (b->id = calloc(n, sizeof(*b->id))) == NULL ||
	    (b->body = calloc(n, sizeof(*b->body))) == NULL)
		bail("out of memory");
	b->n = n;
	return (b);
}

static void
batch_free(struct batch *b)
{
	free(b->m);
	free(b->id);
	free(b->body);
	free(b);
}

/* A plain chat message i of room: id "<tag>-<i>", body "<tag> #<i> ...". */
static void
batch_set(struct batch *b, size_t i, const char *rm, const char *tag,
    uint64_t pos, const char *sender)
{
	struct parley_msg *m = &b->m[i];

	memset(m, 0, sizeof(*m));
	snprintf(b->id[i], sizeof(b->id[i]), "%s-%zu", tag, i);
	snprintf(b->body[i], sizeof(b->body[i]), "%s #%zu: the quick brown "
	    "fox", tag, i);
	m->room = rm;
	m->position = pos;
	m->id = b->id[i];
	m->sender = sender;
	m->timestamp_ms = T0 + (int64_t)i;
	m->event = PARLEY_EV_MESSAGE;
	m->content_type = "text/plain";
	m->body = b->body[i];
	m->body_len = strlen(b->body[i]);
}

static int
store(const struct parley_msg *m, size_t n)
{
	char err[ERRLEN] = "";
	int rc;

	if ((rc = S->store(st, m, n, err, sizeof(err))) != 0)
		diag("store: %d: %s", rc, err);
	return (rc);
}

/* Store b in chunks of chunk messages.  Returns 0 or -1. */
static int
store_chunked(const struct batch *b, size_t chunk)
{
	size_t i, k;

	for (i = 0; i < b->n; i += chunk) {
		k = b->n - i < chunk ? b->n - i : chunk;
		if (store(&b->m[i], k) != 0)
			return (-1);
	}
	return (0);
}

/* fetch into a new list (the caller frees); *rc gets fetch's result. */
static struct parley_msg_list *
fetch(const char *rm, int dir, uint64_t cursor, size_t limit, int *rc)
{
	struct parley_msg_list *l;
	char err[ERRLEN] = "";

	if ((l = testhost_msg_list_new()) == NULL)
		bail("out of memory");
	*rc = S->fetch(st, rm, dir, cursor, limit, api, l, err, sizeof(err));
	if (*rc != 0)
		diag("fetch %s: %d: %s", rm, *rc, err);
	return (l);
}

/* Number of messages fetch returns for room (AFTER 0, paged by 500). */
static long
count(const char *rm)
{
	struct parley_msg_list *l;
	uint64_t cursor = 0;
	long n = 0;
	size_t k;
	int rc;

	for (;;) {
		l = fetch(rm, PARLEY_PAGE_AFTER, cursor, 500, &rc);
		if (rc != 0) {
			testhost_msg_list_free(l);
			return (-1);
		}
		k = testhost_msg_list_len(l);
		n += (long)k;
		if (k > 0)
			cursor = testhost_msg_list_at(l, k - 1)->position;
		testhost_msg_list_free(l);
		if (k < 500)
			return (n);
	}
}

/* get_msg into a new list. */
static struct parley_msg_list *
get_msg(const char *rm, const char *id, int *rc)
{
	struct parley_msg_list *l;
	char err[ERRLEN] = "";

	if ((l = testhost_msg_list_new()) == NULL)
		bail("out of memory");
	*rc = S->get_msg(st, rm, id, api, l, err, sizeof(err));
	if (*rc < 0)
		diag("get_msg %s/%s: %s", rm, id, err);
	return (l);
}

/* room_get into *out (a new list the caller frees); returns room_get. */
static int
room_get(const char *name, struct parley_room_list **out)
{
	char err[ERRLEN] = "";
	int rc;

	if ((*out = testhost_room_list_new()) == NULL)
		bail("out of memory");
	rc = S->room_get(st, name, api, *out, err, sizeof(err));
	if (rc < 0)
		diag("room_get %s: %s", name, err);
	return (rc);
}

/* How many times room_list lists name; -1 on error. */
static int
listed(const char *name)
{
	struct parley_room_list *l;
	char err[ERRLEN] = "";
	size_t i;
	int n = 0;

	if ((l = testhost_room_list_new()) == NULL)
		bail("out of memory");
	if (S->room_list(st, api, l, err, sizeof(err)) != 0) {
		diag("room_list: %s", err);
		n = -1;
	} else {
		for (i = 0; i < testhost_room_list_len(l); i++)
			if (strcmp(testhost_room_list_at(l, i)->name,
			    name) == 0)
				n++;
	}
	testhost_room_list_free(l);
	return (n);
}

static int
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

/* Same stored message?  Says the first difference. */
static int
msg_eq(const struct parley_msg *got, const struct parley_msg *want)
{
	const char *what = NULL;

	if (got == NULL)
		what = "missing";
	else if (!streq(got->room, want->room))
		what = "room";
	else if (got->position != want->position)
		what = "position";
	else if (!streq(got->id, want->id))
		what = "id";
	else if (!streq(got->sender, want->sender))
		what = "sender";
	else if (got->timestamp_ms != want->timestamp_ms)
		what = "timestamp_ms";
	else if (got->event != PARLEY_EV_MESSAGE)
		what = "event";
	else if (!streq(got->content_type, want->content_type))
		what = "content_type";
	else if (got->body_len != want->body_len || (got->body_len > 0 &&
	    memcmp(got->body, want->body, got->body_len) != 0))
		what = "body";
	else if (!streq(got->media_id, want->media_id))
		what = "media_id";
	else if (got->edited_ms != want->edited_ms)
		what = "edited_ms";
	else if (got->deleted != want->deleted)
		what = "deleted";
	if (what == NULL)
		return (1);
	diag("message %s (position %" PRIu64 "): %s differs", want->id,
	    want->position, what);
	if (got != NULL && strcmp(what, "position") == 0)
		diag("  got position %" PRIu64, got->position);
	return (0);
}

/* ---------------------------------------------------------------- */
/* the tests                                                           */

static void
test_basics(void)
{
	char err[ERRLEN] = "";

	ok(plugin->kind == PARLEY_PLUGIN_STORAGE, "%s is a storage plugin",
	    plugin->name);
	ok(S->size >= sizeof(struct parley_storage_ops) - sizeof(S->spare),
	    "ops size %zu", S->size);
	ok(S->store != NULL && S->fetch != NULL && S->get_msg != NULL &&
	    S->room_create != NULL && S->room_list != NULL &&
	    S->room_get != NULL && S->room_delete != NULL && S->ping != NULL,
	    "every storage op is implemented");
	diag("flags: %s", S->flags & PARLEY_ST_SHARED ? "shared" : "local");
	oke(S->ping(st, err, sizeof(err)) == 0, err, "ping");
}

static void
test_rooms(void)
{
	struct parley_room_info ri;
	struct parley_room_list *l;
	const struct parley_room_info *r;
	char err[ERRLEN] = "", name[256], name2[256];

	memset(&ri, 0, sizeof(ri));
	ri.name = room(name, sizeof(name), "rooms-a");
	ri.creator = "alice";
	ri.created_ms = T0 - 1000;
	ri.topic = "Topic with 'quotes', \"doubles\" and \xf0\x9f\x8e\x89";
	oke(S->room_create(st, &ri, err, sizeof(err)) == 1, err,
	    "room_create a new room returns 1");
	ri.creator = "mallory";
	ri.topic = "overwritten?";
	oke(S->room_create(st, &ri, err, sizeof(err)) == 0, err,
	    "room_create an existing room returns 0");

	ok(room_get(name, &l) == 1 && testhost_room_list_len(l) == 1,
	    "room_get finds it");
	r = testhost_room_list_at(l, 0);
	ok(r != NULL && streq(r->name, name) && streq(r->creator, "alice") &&
	    r->created_ms == T0 - 1000 && streq(r->topic, "Topic with "
	    "'quotes', \"doubles\" and \xf0\x9f\x8e\x89"),
	    "room_get returns what the first create stored");
	ok(r != NULL && r->last_position == 0 && r->message_count == 0,
	    "an empty room has last_position 0 and message_count 0");
	testhost_room_list_free(l);

	ok(room_get(room(name2, sizeof(name2), "rooms-none"), &l) == 0 &&
	    testhost_room_list_len(l) == 0, "room_get of a missing room "
	    "returns 0 and adds nothing");
	testhost_room_list_free(l);

	memset(&ri, 0, sizeof(ri));
	ri.name = room(name2, sizeof(name2), "rooms-b");
	ri.creator = "bob";
	ri.created_ms = T0;
	oke(S->room_create(st, &ri, err, sizeof(err)) == 1, err,
	    "room_create without a topic");
	ok(room_get(name2, &l) == 1 && testhost_room_list_len(l) == 1 &&
	    (testhost_room_list_at(l, 0)->topic == NULL ||
	    testhost_room_list_at(l, 0)->topic[0] == '\0'),
	    "a room without a topic has none");
	testhost_room_list_free(l);
	ok(listed(name) == 1 && listed(name2) == 1,
	    "room_list lists each room once");
}

/*
 * One batch interleaving many rooms (more than a plugin might remember per
 * transaction): every room is created, with the sender and time of its
 * first message in the batch, and holds exactly its own messages.
 */
static void
test_many_rooms(void)
{
	enum { NROOMS = 300, PER = 3 };
	static char names[NROOMS][128];
	static char senders[NROOMS][32];
	struct parley_room_list *rl;
	const struct parley_room_info *r;
	struct batch *b;
	size_t i, k, bad_room = 0, bad_creator = 0, bad_count = 0;

	b = batch_new(NROOMS * PER);
	for (i = 0; i < NROOMS; i++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "many-%zu", i);
		room(names[i], sizeof(names[i]), tag);
		snprintf(senders[i], sizeof(senders[i]), "first%zu", i);
	}
	/* round k puts one message in every room: room i's first message
	 * (round 0) comes from first<i>, the later ones from "later" */
	for (k = 0; k < PER; k++)
		for (i = 0; i < NROOMS; i++)
			batch_set(b, k * NROOMS + i, names[i], "mr",
			    P0 + k + 1, k == 0 ? senders[i] : "later");
	ok(store(b->m, b->n) == 0, "one batch of %d messages over %d rooms",
	    NROOMS * PER, NROOMS);
	for (i = 0; i < NROOMS; i++) {
		if (room_get(names[i], &rl) != 1 ||
		    testhost_room_list_len(rl) != 1) {
			bad_room++;
			testhost_room_list_free(rl);
			continue;
		}
		r = testhost_room_list_at(rl, 0);
		if (!streq(r->creator, senders[i]) || r->created_ms != T0 +
		    (int64_t)i)
			bad_creator++;
		if (r->message_count != PER || r->last_position != P0 + PER)
			bad_count++;
		testhost_room_list_free(rl);
	}
	ok(bad_room == 0, "every room exists (%zu missing)", bad_room);
	ok(bad_creator == 0, "each with its first message's sender and time "
	    "(%zu wrong)", bad_creator);
	ok(bad_count == 0, "and exactly its own %d messages (%zu wrong)", PER,
	    bad_count);
	batch_free(b);
}

static void
test_paging(void)
{
	struct parley_msg_list *l;
	struct parley_room_list *rl;
	const struct parley_room_info *r;
	const struct parley_msg *m;
	struct batch *b, *more;
	char name[256], none[256];
	size_t i, k, got, pages, bad;
	uint64_t cursor, *seen;
	int rc, broke;

	room(name, sizeof(name), "paging");
	b = batch_new(1000);
	for (i = 0; i < b->n; i++)
		batch_set(b, i, name, "pg", P0 + i * 7, i % 3 ? "alice" : "bob");
	ok(store_chunked(b, 100) == 0, "store 1000 messages in batches of "
	    "100");

	/* forward */
	cursor = 0;
	got = pages = bad = 0;
	broke = 0;
	for (;;) {
		l = fetch(name, PARLEY_PAGE_AFTER, cursor, 37, &rc);
		k = testhost_msg_list_len(l);
		if (rc != 0 || k > 37 || (k < 37 && got + k != 1000)) {
			broke = 1;
			testhost_msg_list_free(l);
			break;
		}
		for (i = 0; i < k; i++) {
			if (got + i >= 1000 ||
			    !msg_eq(testhost_msg_list_at(l, i), &b->m[got + i]))
				bad++;
		}
		got += k;
		pages++;
		if (k > 0)
			cursor = testhost_msg_list_at(l, k - 1)->position;
		testhost_msg_list_free(l);
		if (k < 37 || bad > 0)
			break;
	}
	ok(!broke && got == 1000 && bad == 0 && pages == 28,
	    "AFTER pages of 37 return all 1000 in order (got %zu in %zu pages, "
	    "%zu wrong)", got, pages, bad);
	l = fetch(name, PARLEY_PAGE_AFTER, b->m[999].position, 37, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 0,
	    "AFTER the newest position returns nothing");
	testhost_msg_list_free(l);

	/* backward: pages come newest first, each ascending */
	cursor = 0;
	got = pages = bad = 0;
	broke = 0;
	for (;;) {
		l = fetch(name, PARLEY_PAGE_BEFORE, cursor, 37, &rc);
		k = testhost_msg_list_len(l);
		if (rc != 0 || k > 37 || (k < 37 && got + k != 1000)) {
			broke = 1;
			testhost_msg_list_free(l);
			break;
		}
		for (i = 0; i < k; i++) {
			if (got + k > 1000 || !msg_eq(testhost_msg_list_at(l,
			    i), &b->m[1000 - got - k + i]))
				bad++;
		}
		got += k;
		pages++;
		if (k > 0)
			cursor = testhost_msg_list_at(l, 0)->position;
		testhost_msg_list_free(l);
		if (k < 37 || bad > 0)
			break;
	}
	ok(!broke && got == 1000 && bad == 0 && pages == 28,
	    "BEFORE pages of 37 from the newest return all 1000, each page "
	    "ascending (got %zu in %zu pages, %zu wrong)", got, pages, bad);
	l = fetch(name, PARLEY_PAGE_BEFORE, b->m[0].position, 37, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 0,
	    "BEFORE the oldest position returns nothing");
	testhost_msg_list_free(l);

	/* cursors between positions and exact ones */
	l = fetch(name, PARLEY_PAGE_AFTER, b->m[500].position + 3, 2, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 2 &&
	    msg_eq(testhost_msg_list_at(l, 0), &b->m[501]) &&
	    msg_eq(testhost_msg_list_at(l, 1), &b->m[502]),
	    "AFTER a cursor between positions");
	testhost_msg_list_free(l);
	l = fetch(name, PARLEY_PAGE_BEFORE, b->m[500].position, 3, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 3 &&
	    msg_eq(testhost_msg_list_at(l, 0), &b->m[497]) &&
	    msg_eq(testhost_msg_list_at(l, 2), &b->m[499]),
	    "BEFORE an exact position excludes it");
	testhost_msg_list_free(l);
	l = fetch(name, PARLEY_PAGE_BEFORE, b->m[500].position + 1, 1, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 1 &&
	    msg_eq(testhost_msg_list_at(l, 0), &b->m[500]),
	    "BEFORE position + 1 includes it");
	testhost_msg_list_free(l);
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 1000000, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 1000,
	    "a huge limit returns everything (%zu)", testhost_msg_list_len(l));
	testhost_msg_list_free(l);

	l = fetch(room(none, sizeof(none), "paging-none"), PARLEY_PAGE_BEFORE,
	    0, 10, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 0,
	    "fetch of a room without history returns 0 and nothing");
	testhost_msg_list_free(l);

	ok(room_get(name, &rl) == 1 && testhost_room_list_len(rl) == 1,
	    "storing into a room that was never created creates it");
	r = testhost_room_list_at(rl, 0);
	ok(r != NULL && streq(r->creator, "bob") && r->created_ms == T0,
	    "its creator and created_ms come from its first message");
	ok(r != NULL && r->last_position == b->m[999].position &&
	    r->message_count == 1000, "room_get: last_position %" PRIu64
	    ", message_count %" PRIu64, r != NULL ? r->last_position : 0,
	    r != NULL ? r->message_count : 0);
	testhost_room_list_free(rl);

	/* cursors stay stable while new messages arrive */
	more = batch_new(10);
	for (i = 0; i < more->n; i++)
		batch_set(more, i, name, "pg-more", P0 + 7000 + i, "carol");
	if ((seen = calloc(1010, sizeof(*seen))) == NULL)
		bail("out of memory");
	cursor = 0;
	got = bad = 0;
	for (pages = 0; got < 1010 && pages < 100; pages++) {
		l = fetch(name, PARLEY_PAGE_AFTER, cursor, 37, &rc);
		k = testhost_msg_list_len(l);
		for (i = 0; i < k; i++) {
			m = testhost_msg_list_at(l, i);
			if (got < 1010 && (got == 0 ||
			    m->position > seen[got - 1]))
				seen[got++] = m->position;
			else
				bad++;
		}
		if (k > 0)
			cursor = testhost_msg_list_at(l, k - 1)->position;
		testhost_msg_list_free(l);
		if (pages == 3 && store(more->m, more->n) != 0)
			bad++;
		if (rc != 0 || k == 0)
			break;
	}
	ok(got == 1010 && bad == 0 && seen[1009] == more->m[9].position,
	    "paging while messages are appended sees each once, then the new "
	    "ones (%zu seen, %zu wrong)", got, bad);
	free(seen);
	batch_free(more);
	batch_free(b);
}

static void
test_idempotent(void)
{
	struct parley_room_list *rl;
	struct parley_msg_list *l;
	struct batch *b;
	char name[256];
	size_t i;
	long n;
	int rc, same;

	room(name, sizeof(name), "idem");
	b = batch_new(75);
	for (i = 0; i < b->n; i++)
		batch_set(b, i, name, "idem", P0 + i, "alice");
	ok(store(b->m, 50) == 0, "store a batch of 50");
	ok(store(b->m, 50) == 0, "store the same batch again succeeds");
	n = count(name);
	ok(n == 50, "no duplicates after redelivery (%ld)", n);
	rc = store(&b->m[25], 50);
	n = count(name);
	ok(rc == 0 && n == 75, "a batch half old, half new adds only the new "
	    "(%ld)", n);
	for (i = 0; i < 10; i++)
		ok(store(&b->m[i * 7], 1) == 0, "redeliver message %zu alone",
		    i * 7);

	/* the same message at a new position (a producer retry) */
	b->m[3].position = P0 + 1000;
	ok(store(&b->m[3], 1) == 0,
	    "storing a known id at another position succeeds");
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 1000, &rc);
	same = 0;
	for (i = 0; i < testhost_msg_list_len(l); i++)
		if (streq(testhost_msg_list_at(l, i)->id, b->id[3]))
			same++;
	ok(rc == 0 && testhost_msg_list_len(l) == 75 && same == 1,
	    "... and keeps the id once in the room (%zu messages, %d copies)",
	    testhost_msg_list_len(l), same);
	testhost_msg_list_free(l);
	ok(room_get(name, &rl) == 1 &&
	    testhost_room_list_at(rl, 0)->message_count == 75,
	    "message_count agrees");
	testhost_room_list_free(rl);
	batch_free(b);
}

#define CONFLICTS "parley_storage_position_conflicts_total"

/*
 * A different message at a position its room already holds: the
 * backplane's positions went back (a Kafka topic recreated, a backplane
 * switched over the same database).  Refusing the batch would stop all
 * storage, so it succeeds; the stored message stays, the newcomer is not
 * stored, and the plugin says so: one ERROR line per batch naming the
 * room, the position and both ids, and the counter
 * parley_storage_position_conflicts_total.  Redeliveries (the same id at
 * the same or another position) are not conflicts.
 */
static void
test_position_conflict(void)
{
	struct parley_msg_list *l;
	struct batch *b;
	char name[256], line[2048];
	unsigned errs;
	size_t i;
	int rc;

	ok(testhost_metric(th, CONFLICTS, NULL) == 0, "redeliveries so far "
	    "(same id, same or another position) counted no conflict");
	room(name, sizeof(name), "conflict");
	b = batch_new(5);
	for (i = 0; i < b->n; i++)
		batch_set(b, i, name, "conflict", P0 + i, "alice");
	ok(store(b->m, 2) == 0, "store 2 messages");
	/* 2 and 3 land on the positions of 0 and 1; 4 is new; 1 again */
	b->m[2].position = P0;
	b->m[3].position = P0 + 1;
	b->m[4].position = P0 + 10;
	errs = testhost_log_count(th, PARLEY_LOG_ERROR);
	ok(store(&b->m[1], 4) == 0, "a batch with 2 messages on taken "
	    "positions, a redelivery and a new one succeeds");
	ok(testhost_metric(th, CONFLICTS, NULL) == 2, "2 counted in "
	    CONFLICTS " (%g)", testhost_metric(th, CONFLICTS, NULL));
	ok(testhost_log_count(th, PARLEY_LOG_ERROR) == errs + 1,
	    "one ERROR line for the batch (%u)",
	    testhost_log_count(th, PARLEY_LOG_ERROR) - errs);
	line[0] = '\0';
	(void)testhost_last_log(th, line, sizeof(line));
	ok(strstr(line, name) != NULL && strstr(line, b->id[0]) != NULL &&
	    strstr(line, b->id[2]) != NULL, "it names the room and the ids "
	    "of the stored message and the refused one: %s", line);
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 10, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 3 &&
	    streq(testhost_msg_list_at(l, 0)->id, b->id[0]) &&
	    streq(testhost_msg_list_at(l, 1)->id, b->id[1]) &&
	    streq(testhost_msg_list_at(l, 2)->id, b->id[4]),
	    "the room holds the first two and the new one (%zu messages)",
	    testhost_msg_list_len(l));
	testhost_msg_list_free(l);
	errs = testhost_log_count(th, PARLEY_LOG_ERROR);
	ok(store(b->m, 2) == 0 && testhost_metric(th, CONFLICTS, NULL) == 2 &&
	    testhost_log_count(th, PARLEY_LOG_ERROR) == errs,
	    "redelivering the stored ones is still no conflict");
	batch_free(b);
}

static void
test_binary(void)
{
	static const char emoji[] = "h\xc3\xa9llo \xf0\x9f\x91\x8b\xf0\x9f"
	    "\x8f\xbd \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5 \xf0\x9d\x84\x9e end";
	struct parley_msg m[3], want;
	struct parley_msg_list *l;
	char name[256], other[256], *big;
	size_t i, bigsz = 64 * 1024;
	int rc, zeros = 0;

	room(name, sizeof(name), "bin");
	if ((big = malloc(bigsz)) == NULL)
		bail("out of memory");
	for (i = 0; i < bigsz; i++) {
		big[i] = (char)(i % 7 == 0 ? 0 : (i * 31) % 251);
		zeros += big[i] == 0;
	}
	big[bigsz - 1] = '\0';
	memset(m, 0, sizeof(m));
	m[0].room = name;
	m[0].position = P0 + 1;
	m[0].id = "bin-emoji";
	m[0].sender = "\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9-\xf0\x9f\x91\xa4";
	m[0].timestamp_ms = T0;
	m[0].content_type = "text/plain; charset=utf-8";
	m[0].body = emoji;
	m[0].body_len = sizeof(emoji) - 1;
	m[1] = m[0];
	m[1].position = P0 + 2;
	m[1].id = "bin-64k";
	m[1].sender = "bob";
	m[1].content_type = "application/octet-stream";
	m[1].body = big;
	m[1].body_len = bigsz;
	m[1].media_id = "media-123";
	m[2] = m[0];
	m[2].position = P0 + 3;
	m[2].id = "bin-empty";
	m[2].sender = "carol";
	m[2].content_type = NULL;
	m[2].body = NULL;
	m[2].body_len = 0;
	ok(store(m, 3) == 0, "store emoji, a 64 KiB body with %d NULs, and an "
	    "empty body", zeros);
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 10, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 3, "fetch returns the 3");
	ok(msg_eq(testhost_msg_list_at(l, 0), &m[0]),
	    "4-byte UTF-8 in body and sender round-trips exactly");
	ok(msg_eq(testhost_msg_list_at(l, 1), &m[1]),
	    "the 64 KiB body with NULs round-trips exactly (memcmp)");
	want = m[2];
	want.body = "";
	ok(msg_eq(testhost_msg_list_at(l, 2), &want),
	    "an empty body and absent content_type/media_id round-trip");
	testhost_msg_list_free(l);

	l = get_msg(name, "bin-64k", &rc);
	ok(rc == 1 && testhost_msg_list_len(l) == 1 &&
	    msg_eq(testhost_msg_list_at(l, 0), &m[1]),
	    "get_msg finds a message by id");
	testhost_msg_list_free(l);
	l = get_msg(name, "bin-nope", &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 0,
	    "get_msg of an unknown id returns 0");
	testhost_msg_list_free(l);
	l = get_msg(room(other, sizeof(other), "bin-other"), "bin-64k", &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 0,
	    "get_msg does not look in other rooms");
	testhost_msg_list_free(l);
	free(big);
}

/* Room names full of SQL, LIKE, JSON and shell metacharacters. */
static const char *const weird[] = {
	"quote'single", "quote\"double", "back\\slash", "back\\\\double",
	"per%cent", "%", "under_score", "_", "semi;colon", "dash--dash",
	"{\"$gt\":\"\"}", "{\"$ne\":null}", "'; DROP TABLE messages; --",
	"\" OR \"1\"=\"1", "' OR '1'='1", "$where", "a.b.c", "/room/slash",
	"tab\there", "star*", "q?", "[x]", "(x)", "null", "NULL",
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e-\xf0\x9f\x8e\x89", "x%", "x_",
	"xy", "X%",
};
#define NWEIRD (sizeof(weird) / sizeof(weird[0]))

static void
test_weird_names(void)
{
	struct parley_msg m;
	struct parley_msg_list *l;
	struct parley_room_list *rl;
	char names[NWEIRD][256], ids[NWEIRD][64], longname[PARLEY_ROOM_MAX + 1];
	const char *wid = "id'\"; --%_\\{\"$gt\":\"\"}";
	size_t i, good_fetch = 0, good_get = 0, good_list = 0;
	int rc;

	for (i = 0; i < NWEIRD; i++) {
		room(names[i], sizeof(names[i]), weird[i]);
		snprintf(ids[i], sizeof(ids[i]), "w-%zu", i);
		memset(&m, 0, sizeof(m));
		m.room = names[i];
		m.position = P0 + i + 1;
		m.id = ids[i];
		m.sender = weird[i];
		m.timestamp_ms = T0;
		m.body = weird[i];
		m.body_len = strlen(weird[i]);
		if (store(&m, 1) != 0)
			diag("store into room '%s' failed", weird[i]);
	}
	for (i = 0; i < NWEIRD; i++) {
		l = fetch(names[i], PARLEY_PAGE_AFTER, 0, 10, &rc);
		if (rc == 0 && testhost_msg_list_len(l) == 1 &&
		    streq(testhost_msg_list_at(l, 0)->id, ids[i]) &&
		    streq(testhost_msg_list_at(l, 0)->room, names[i]) &&
		    streq(testhost_msg_list_at(l, 0)->body, weird[i]))
			good_fetch++;
		else
			diag("room '%s': fetch got %zu messages", weird[i],
			    testhost_msg_list_len(l));
		testhost_msg_list_free(l);
		if (room_get(names[i], &rl) == 1 &&
		    testhost_room_list_len(rl) == 1 &&
		    streq(testhost_room_list_at(rl, 0)->name, names[i]) &&
		    testhost_room_list_at(rl, 0)->message_count == 1)
			good_get++;
		else
			diag("room '%s': room_get failed", weird[i]);
		testhost_room_list_free(rl);
		if (listed(names[i]) == 1)
			good_list++;
		else
			diag("room '%s': not listed once", weird[i]);
	}
	ok(good_fetch == NWEIRD, "%zu/%zu rooms with metacharacters keep "
	    "exactly their own message", good_fetch, NWEIRD);
	ok(good_get == NWEIRD, "%zu/%zu of them found by room_get with "
	    "message_count 1", good_get, NWEIRD);
	ok(good_list == NWEIRD, "%zu/%zu of them listed once by room_list",
	    good_list, NWEIRD);

	/* an id with metacharacters, and a room name of maximum length */
	memset(longname, 'L', PARLEY_ROOM_MAX);
	memcpy(longname, prefix, strlen(prefix));
	longname[PARLEY_ROOM_MAX] = '\0';
	memset(&m, 0, sizeof(m));
	m.room = longname;
	m.position = P0;
	m.id = wid;
	m.sender = "alice";
	m.timestamp_ms = T0;
	m.body = "long";
	m.body_len = 4;
	ok(store(&m, 1) == 0, "store into a room of %d bytes with id %s",
	    PARLEY_ROOM_MAX, wid);
	l = get_msg(longname, wid, &rc);
	ok(rc == 1 && testhost_msg_list_len(l) == 1 &&
	    msg_eq(testhost_msg_list_at(l, 0), &m),
	    "get_msg finds it by that id");
	testhost_msg_list_free(l);
	l = get_msg(longname, "id'\"; --%", &rc);
	ok(rc == 0, "an id prefix does not match");
	testhost_msg_list_free(l);
}

/* Set msg as an EDIT or DELETE of ref by sender. */
static void
act(struct parley_msg *m, const char *rm, int event, uint64_t pos,
    const char *id, const char *sender, int64_t ts, const char *ref,
    const char *body)
{
	memset(m, 0, sizeof(*m));
	m->room = rm;
	m->position = pos;
	m->id = id;
	m->sender = sender;
	m->timestamp_ms = ts;
	m->event = event;
	m->ref_id = ref;
	m->content_type = body != NULL ? "text/plain" : NULL;
	m->body = body;
	m->body_len = body != NULL ? strlen(body) : 0;
}

static void
test_edit_delete(void)
{
	struct parley_msg m[3], e[8], w1, w2;
	struct parley_msg_list *l;
	char name[256];
	int rc;

	room(name, sizeof(name), "edit");
	memset(m, 0, sizeof(m));
	m[0].room = m[1].room = m[2].room = name;
	m[0].position = 10;
	m[1].position = 20;
	m[2].position = 30;
	m[0].id = "e-1";
	m[1].id = "e-2";
	m[2].id = "e-3";
	m[0].sender = m[1].sender = "alice";
	m[2].sender = "bob";
	m[0].timestamp_ms = m[1].timestamp_ms = m[2].timestamp_ms = T0;
	m[0].body = "original 1";
	m[1].body = "original 2";
	m[2].body = "bob's";
	m[0].body_len = m[1].body_len = 10;
	m[2].body_len = 5;
	m[1].media_id = "media-e2";
	ok(store(m, 3) == 0, "store three messages");

	act(&e[0], name, PARLEY_EV_EDIT, 40, "e-4", "alice", T0 + 100, "e-1",
	    "edited 1");
	act(&e[1], name, PARLEY_EV_EDIT, 50, "e-5", "bob", T0 + 110, "e-2",
	    "bob was here");
	act(&e[2], name, PARLEY_EV_DELETE, 60, "e-6", "bob", T0 + 120, "e-1",
	    NULL);
	act(&e[3], name, PARLEY_EV_DELETE, 70, "e-7", "alice", T0 + 130, "e-2",
	    NULL);
	act(&e[4], name, PARLEY_EV_EDIT, 75, "e-7b", "alice", T0 + 135,
	    "e-nope", "edits nothing");
	ok(store(e, 5) == 0, "store edits and deletes by the author and by "
	    "someone else, and an edit of an unknown id");

	w1 = m[0];
	w1.body = "edited 1";
	w1.body_len = 8;
	w1.edited_ms = T0 + 100;
	w2 = m[1];
	w2.body = "";
	w2.body_len = 0;
	w2.deleted = 1;
	w2.media_id = NULL;
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 100, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 3,
	    "fetch returns the 3 chat messages, not the edits and deletes "
	    "(%zu)", testhost_msg_list_len(l));
	ok(msg_eq(testhost_msg_list_at(l, 0), &w1),
	    "the author's edit applies (body, edited_ms) and someone else's "
	    "delete does not");
	ok(msg_eq(testhost_msg_list_at(l, 1), &w2),
	    "the author's delete leaves a tombstone (deleted, no body, no "
	    "media) and someone else's edit does not apply");
	ok(msg_eq(testhost_msg_list_at(l, 2), &m[2]),
	    "other messages are untouched");
	testhost_msg_list_free(l);

	act(&e[5], name, PARLEY_EV_EDIT, 80, "e-8", "alice", T0 + 140, "e-2",
	    "back from the dead");
	act(&e[6], name, PARLEY_EV_EDIT, 90, "e-9", "alice", T0 + 200, "e-1",
	    "edited twice");
	ok(store(&e[5], 2) == 0, "edit a deleted message, edit again");
	ok(store(e, 5) == 0, "redeliver the first edits and deletes");
	w1.body = "edited twice";
	w1.body_len = 12;
	w1.edited_ms = T0 + 200;
	l = get_msg(name, "e-1", &rc);
	ok(rc == 1 && msg_eq(testhost_msg_list_at(l, 0), &w1),
	    "the newest edit wins over a redelivered older one");
	testhost_msg_list_free(l);
	l = get_msg(name, "e-2", &rc);
	ok(rc == 1 && msg_eq(testhost_msg_list_at(l, 0), &w2),
	    "an edit does not bring a deleted message back");
	testhost_msg_list_free(l);
	l = get_msg(name, "e-4", &rc);
	ok(rc == 0, "an edit is not a message of its own");
	testhost_msg_list_free(l);
}

static void
test_events(void)
{
	struct parley_msg m[5];
	struct parley_msg_list *l;
	struct parley_room_list *rl;
	char name[256], name2[256];
	int i, rc;

	room(name, sizeof(name), "events");
	room(name2, sizeof(name2), "events-presence-only");
	memset(m, 0, sizeof(m));
	for (i = 0; i < 5; i++) {
		m[i].room = name;
		m[i].position = P0 + i + 1;
		m[i].sender = "alice";
		m[i].timestamp_ms = T0;
		m[i].body = "";
	}
	m[0].id = "ev-join";
	m[0].event = PARLEY_EV_JOIN;
	m[1].id = "ev-typing";
	m[1].event = PARLEY_EV_TYPING;
	m[2].id = "ev-chat";
	m[2].body = "hi";
	m[2].body_len = 2;
	m[3].id = "ev-leave";
	m[3].event = PARLEY_EV_LEAVE;
	m[4].id = "ev-join2";
	m[4].event = PARLEY_EV_JOIN;
	m[4].room = name2;
	ok(store(m, 5) == 0, "store join, typing, chat, leave");
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 10, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 1 &&
	    msg_eq(testhost_msg_list_at(l, 0), &m[2]),
	    "only the chat message is stored");
	testhost_msg_list_free(l);
	l = get_msg(name, "ev-join", &rc);
	ok(rc == 0, "a join cannot be fetched by id");
	testhost_msg_list_free(l);
	ok(room_get(name2, &rl) == 0, "presence alone does not create a room");
	testhost_room_list_free(rl);
}

static void
test_atomic(void)
{
	struct parley_msg m[3];
	char name[256], err[ERRLEN] = "";
	int i;

	room(name, sizeof(name), "atomic");
	memset(m, 0, sizeof(m));
	for (i = 0; i < 3; i++) {
		m[i].room = name;
		m[i].position = P0 + i + 1;
		m[i].sender = "alice";
		m[i].timestamp_ms = T0;
		m[i].body = "x";
		m[i].body_len = 1;
	}
	m[0].id = "at-1";
	m[1].id = "at-2";
	m[2].id = "at-3";
	m[2].position = 0;	/* never assigned: the batch is refused */
	ok(S->store(st, m, 3, err, sizeof(err)) == -1 && err[0] != '\0',
	    "a batch with an unpositioned message fails with a reason (%s)",
	    err);
	ok(count(name) == 0, "... and stores nothing of it");
	m[2].position = P0 + 3;
	ok(store(m, 3) == 0 && count(name) == 3,
	    "the corrected batch stores afterwards");
	ok(store(m, 0) == 0, "an empty batch is fine");
}

/* concurrency */

#define NTHREADS 4
#define PER_THREAD 250
#define CHUNK 10

struct worker {
	pthread_t tid;
	int t;
	const char *room;
	struct batch *b;
	int failures;
	int created;
};

static void *
writer(void *arg)
{
	struct worker *w = arg;
	char err[ERRLEN];
	size_t i;

	for (i = 0; i < PER_THREAD; i += CHUNK) {
		err[0] = '\0';
		if (S->store(st, &w->b->m[i], CHUNK, err, sizeof(err)) != 0) {
			fprintf(stderr, "# writer %d: %s\n", w->t, err);
			w->failures++;
		}
	}
	return (NULL);
}

static volatile int writers_done;

static void *
reader(void *arg)
{
	struct worker *w = arg;
	struct parley_msg_list *l;
	struct parley_room_list *rl;
	char err[ERRLEN];
	int n = 0;

	if ((l = testhost_msg_list_new()) == NULL ||
	    (rl = testhost_room_list_new()) == NULL)
		bail("out of memory");
	while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) || n < 5) {
		testhost_msg_list_clear(l);
		testhost_room_list_clear(rl);
		if (S->fetch(st, w->room, PARLEY_PAGE_BEFORE, 0, 50, api, l,
		    err, sizeof(err)) != 0 ||
		    S->room_get(st, w->room, api, rl, err, sizeof(err)) < 0 ||
		    S->ping(st, err, sizeof(err)) != 0) {
			fprintf(stderr, "# reader: %s\n", err);
			w->failures++;
		}
		n++;
	}
	testhost_msg_list_free(l);
	testhost_room_list_free(rl);
	return (NULL);
}

static void *
creator(void *arg)
{
	struct worker *w = arg;
	struct parley_room_info ri;
	char err[ERRLEN] = "", who[16];

	snprintf(who, sizeof(who), "creator-%d", w->t);
	memset(&ri, 0, sizeof(ri));
	ri.name = w->room;
	ri.creator = who;
	ri.created_ms = T0;
	if ((w->created = S->room_create(st, &ri, err, sizeof(err))) < 0) {
		fprintf(stderr, "# creator %d: %s\n", w->t, err);
		w->failures++;
	}
	return (NULL);
}

static void
test_concurrent(void)
{
	struct worker w[NTHREADS], r;
	struct parley_msg_list *l;
	char name[256], name2[256], tag[16];
	size_t i, n, bad = 0;
	int t, rc, failures = 0, created = 0;

	room(name, sizeof(name), "concurrent");
	for (t = 0; t < NTHREADS; t++) {
		w[t].t = t;
		w[t].room = name;
		w[t].failures = 0;
		w[t].b = batch_new(PER_THREAD);
		snprintf(tag, sizeof(tag), "c%d", t);
		for (i = 0; i < PER_THREAD; i++)
			batch_set(w[t].b, i, name, tag,
			    P0 + i * NTHREADS + (size_t)t, tag);
	}
	memset(&r, 0, sizeof(r));
	r.room = name;
	writers_done = 0;
	if (pthread_create(&r.tid, NULL, reader, &r) != 0)
		bail("pthread_create");
	for (t = 0; t < NTHREADS; t++)
		if (pthread_create(&w[t].tid, NULL, writer, &w[t]) != 0)
			bail("pthread_create");
	for (t = 0; t < NTHREADS; t++) {
		pthread_join(w[t].tid, NULL);
		failures += w[t].failures;
	}
	__atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
	pthread_join(r.tid, NULL);
	ok(failures == 0, "%d threads store %d messages each in batches of %d "
	    "into one room at once", NTHREADS, PER_THREAD, CHUNK);
	ok(r.failures == 0, "a reader running meanwhile sees no errors");

	l = fetch(name, PARLEY_PAGE_AFTER, 0, 5000, &rc);
	n = testhost_msg_list_len(l);
	for (i = 0; i < n && i < NTHREADS * PER_THREAD; i++)
		if (!msg_eq(testhost_msg_list_at(l, i),
		    &w[i % NTHREADS].b->m[i / NTHREADS]) && ++bad > 3)
			break;
	ok(rc == 0 && n == NTHREADS * PER_THREAD && bad == 0,
	    "all %d are there once, in position order (%zu)",
	    NTHREADS * PER_THREAD, n);
	testhost_msg_list_free(l);
	for (t = 0; t < NTHREADS; t++)
		batch_free(w[t].b);

	/* racing creates of one room: exactly one wins */
	room(name2, sizeof(name2), "concurrent-create");
	for (t = 0; t < NTHREADS; t++) {
		w[t].t = t;
		w[t].room = name2;
		w[t].failures = 0;
		w[t].created = 0;
		if (pthread_create(&w[t].tid, NULL, creator, &w[t]) != 0)
			bail("pthread_create");
	}
	failures = 0;
	for (t = 0; t < NTHREADS; t++) {
		pthread_join(w[t].tid, NULL);
		failures += w[t].failures;
		created += w[t].created == 1;
	}
	ok(failures == 0 && created == 1, "%d threads create one room at once: "
	    "one gets 1, the others 0 (%d got 1)", NTHREADS, created);
}

/* through the host: submit() on a worker thread, done() on the loop */

struct job {
	struct parley_msg m;
	struct parley_msg_list *l;
	char room[256];
	int stored, fetched, done;
	char err[ERRLEN];
};

static void
job_work(void *arg)
{
	struct job *j = arg;

	j->stored = S->store(st, &j->m, 1, j->err, sizeof(j->err));
	j->fetched = S->fetch(st, j->room, PARLEY_PAGE_BEFORE, 0, 10, api,
	    j->l, j->err, sizeof(j->err));
}

static void
job_done(void *arg)
{
	((struct job *)arg)->done = 1;
}

static int
job_finished(void *arg)
{
	return (((struct job *)arg)->done);
}

static void
test_submit(void)
{
	const struct parley_host *host = testhost_api();
	struct job j;

	memset(&j, 0, sizeof(j));
	room(j.room, sizeof(j.room), "submit");
	if ((j.l = testhost_msg_list_new()) == NULL)
		bail("out of memory");
	j.m.room = j.room;
	j.m.position = P0;
	j.m.id = "sub-1";
	j.m.sender = "alice";
	j.m.timestamp_ms = T0;
	j.m.body = "via a host worker";
	j.m.body_len = strlen(j.m.body);
	ok(host->submit(testhost_ctx(th), job_work, job_done, &j) == 0,
	    "submit store+fetch to a host worker");
	ok(testhost_run(th, job_finished, &j, 10000) == 0, "done() ran on the "
	    "loop");
	oke(j.stored == 0 && j.fetched == 0 && testhost_msg_list_len(j.l) == 1
	    && msg_eq(testhost_msg_list_at(j.l, 0), &j.m), j.err,
	    "ops work from a host worker thread");
	testhost_msg_list_free(j.l);
}

static void
test_delete(void)
{
	struct parley_msg_list *l;
	struct parley_room_list *rl;
	char name[256], err[ERRLEN] = "";
	int rc;

	room(name, sizeof(name), "paging");
	ok(listed(name) == 1, "room_list lists a room with history");
	oke(S->room_delete(st, name, err, sizeof(err)) == 1, err,
	    "room_delete returns 1");
	oke(S->room_delete(st, name, err, sizeof(err)) == 0, err,
	    "room_delete again returns 0");
	l = fetch(name, PARLEY_PAGE_AFTER, 0, 10, &rc);
	ok(rc == 0 && testhost_msg_list_len(l) == 0,
	    "its history is gone");
	testhost_msg_list_free(l);
	l = get_msg(name, "pg-5", &rc);
	ok(rc == 0, "get_msg finds none of its messages");
	testhost_msg_list_free(l);
	ok(room_get(name, &rl) == 0, "room_get does not find it");
	testhost_room_list_free(rl);
	ok(listed(name) == 0, "room_list does not list it");
	oke(S->room_delete(st, room(name, sizeof(name), "never-was"), err,
	    sizeof(err)) == 0, err, "room_delete of an unknown room returns 0");
	ok(count(room(name, sizeof(name), "idem")) == 75,
	    "other rooms keep their history");
}

/* Counts that must survive a restart. */
struct snapshot {
	long idem, concurrent, edit;
	int listed;
};

static void
snap(struct snapshot *s)
{
	char name[256];

	s->idem = count(room(name, sizeof(name), "idem"));
	s->concurrent = count(room(name, sizeof(name), "concurrent"));
	s->edit = count(room(name, sizeof(name), "edit"));
	s->listed = listed(room(name, sizeof(name), "rooms-a"));
}

static void
test_restart(void)
{
	struct snapshot a, b;
	struct parley_msg_list *l;
	char name[256], err[ERRLEN] = "";
	int rc;

	snap(&a);
	plugin->fini(st);
	st = NULL;
	if (!ok(testhost_init(th, plugin, &st) == 0, "fini, then init again on "
	    "the same configuration"))
		bail("cannot re-initialise the plugin");
	oke(S->ping(st, err, sizeof(err)) == 0, err, "ping after the restart");
	snap(&b);
	ok(a.idem == b.idem && a.concurrent == b.concurrent &&
	    a.edit == b.edit && a.listed == 1 && b.listed == 1,
	    "history and rooms are still there (%ld/%ld, %ld/%ld, %ld/%ld)",
	    a.idem, b.idem, a.concurrent, b.concurrent, a.edit, b.edit);
	l = get_msg(room(name, sizeof(name), "bin"), "bin-64k", &rc);
	ok(rc == 1 && testhost_msg_list_at(l, 0)->body_len == 64 * 1024,
	    "the 64 KiB body too");
	testhost_msg_list_free(l);
}

/* Delete every room of this run. */
static void
cleanup(void)
{
	struct parley_room_list *l;
	char err[ERRLEN] = "";
	size_t i, n = 0, fails = 0, left = 0;

	if ((l = testhost_room_list_new()) == NULL)
		bail("out of memory");
	if (S->room_list(st, api, l, err, sizeof(err)) != 0)
		fails++;
	for (i = 0; i < testhost_room_list_len(l); i++) {
		const char *name = testhost_room_list_at(l, i)->name;

		if (strncmp(name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		if (S->room_delete(st, name, err, sizeof(err)) != 1)
			fails++;
	}
	testhost_room_list_clear(l);
	if (S->room_list(st, api, l, err, sizeof(err)) != 0)
		fails++;
	for (i = 0; i < testhost_room_list_len(l); i++)
		if (strncmp(testhost_room_list_at(l, i)->name, prefix,
		    strlen(prefix)) == 0)
			left++;
	ok(fails == 0 && left == 0 && n > NWEIRD, "delete the %zu rooms of "
	    "this run (%zu left)", n, left);
	testhost_room_list_free(l);
}

int
main(int argc, char **argv)
{
	void *dl;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PLUGIN.so [key=value ...]\n",
		    argv[0]);
		return (2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((th = testhost_new((const char *const *)&argv[2])) == NULL)
		bail("cannot create the test host");
	if ((plugin = testhost_load(argv[1], &dl)) == NULL)
		bail("cannot load the plugin");
	if (plugin->kind != PARLEY_PLUGIN_STORAGE)
		bail("not a storage plugin");
	S = plugin->storage;
	api = testhost_list_api();
	T0 = testhost_api()->now_ms();
	P0 = (uint64_t)T0 << 16;
	snprintf(prefix, sizeof(prefix), "sc-%ld-%" PRId64 "-", (long)getpid(),
	    T0);
	diag("storage plugin %s %s, room prefix %s", plugin->name,
	    plugin->version != NULL ? plugin->version : "?", prefix);
	if (testhost_init(th, plugin, &st) != 0)
		bail("plugin init failed");

	test_basics();
	test_rooms();
	test_paging();
	test_many_rooms();
	test_idempotent();
	test_position_conflict();
	test_binary();
	test_weird_names();
	test_edit_delete();
	test_events();
	test_atomic();
	test_concurrent();
	test_submit();
	test_delete();
	test_restart();
	cleanup();

	plugin->fini(st);
	testhost_free(th);
	testhost_unload(dl);
	printf("1..%d\n", ntests);
	if (nfailed > 0)
		diag("%d of %d tests failed", nfailed, ntests);
	return (nfailed > 0);
}
