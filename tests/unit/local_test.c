/*
 * local_test.c - TAP test of the "local" backplane through the testhost.
 *
 *	local_test path/to/local.so
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "testhost.h"

static const struct parley_plugin *plugin;
static const struct parley_backplane_ops *B;
static struct testhost *th;
static void *st;

static int ntests, nfailed;

static int ok(int, const char *, ...) __attribute__((format(printf, 2, 3)));
static void diag(const char *, ...) __attribute__((format(printf, 1, 2)));

static int
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++ntests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		nfailed++;
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
}

static void
bail(const char *why)
{
	printf("Bail out! %s\n", why);
	exit(1);
}

/* One publish and what its callback said. */
struct pub {
	int calls;
	int status;
	uint64_t position;
	const char *why;
	size_t delivered_before;	/* deliveries seen when cb ran */
	void (*then)(struct pub *);	/* run inside the callback */
};

static void
publish_cb(void *arg, int status, uint64_t position, const char *why)
{
	struct pub *p = arg;

	p->calls++;
	p->status = status;
	p->position = position;
	p->why = why;
	p->delivered_before = testhost_msg_list_len(testhost_delivered(th));
	if (p->then != NULL)
		p->then(p);
}

static void
publish(const char *room, const char *id, const char *body, size_t len,
    struct pub *p)
{
	struct parley_msg m;

	memset(&m, 0, sizeof(m));
	m.room = room;
	m.id = id;
	m.sender = "alice";
	m.timestamp_ms = testhost_api()->now_ms();
	m.content_type = "text/plain";
	m.body = body;
	m.body_len = len;
	B->publish(st, &m, publish_cb, p);
}

struct wait {
	struct pub *p;
	size_t n;
};

static int
all_called(void *arg)
{
	struct wait *w = arg;
	size_t i;

	for (i = 0; i < w->n; i++)
		if (w->p[i].calls == 0)
			return (0);
	return (1);
}

static int
wait_for(struct pub *p, size_t n)
{
	struct wait w = { p, n };

	return (testhost_run(th, all_called, &w, 5000));
}

static const struct parley_msg *
delivered(size_t i)
{
	return (testhost_msg_list_at(testhost_delivered(th), i));
}

static size_t
ndelivered(void)
{
	return (testhost_msg_list_len(testhost_delivered(th)));
}

static void
test_description(void)
{
	ok(plugin->kind == PARLEY_PLUGIN_BACKPLANE && B != NULL,
	    "%s is a backplane plugin", plugin->name);
	ok(B->size >= sizeof(*B) - sizeof(B->spare), "ops size %zu", B->size);
	ok(B->flags == 0, "flags 0: neither durable nor shared");
	ok(B->publish != NULL && B->watch_room != NULL &&
	    B->unwatch_room != NULL, "publish, watch_room, unwatch_room set");
	ok(B->read_range == NULL, "read_range is NULL: nothing is retained");
}

static void
test_one_turn(void)
{
	struct pub p[3];
	char ids[3][16], bodies[3][32];
	size_t lens[3], i, good;
	unsigned long timers;
	int64_t t0, t1;
	int increasing;

	memset(p, 0, sizeof(p));
	timers = testhost_timers_added(th);
	t0 = testhost_api()->now_ms();
	for (i = 0; i < 3; i++) {
		snprintf(ids[i], sizeof(ids[i]), "one-%zu", i);
		lens[i] = (size_t)snprintf(bodies[i], sizeof(bodies[i]),
		    "body %zu", i);
		bodies[i][4] = '\0';	/* a NUL inside the body */
		publish("a", ids[i], bodies[i], lens[i], &p[i]);
	}
	ok(p[0].calls + p[1].calls + p[2].calls == 0 && ndelivered() == 0,
	    "nothing is settled or delivered inside publish()");
	ok(testhost_timers_added(th) - timers == 1,
	    "3 publishes in one turn add one timer (%lu)",
	    testhost_timers_added(th) - timers);

	/* The caller's buffers may change once publish() returned. */
	for (i = 0; i < 3; i++) {
		memcpy(bodies[i], "XXXXXXXX", 8);
		ids[i][0] = 'X';
	}
	event_base_loop(testhost_base(th), EVLOOP_ONCE);
	t1 = testhost_api()->now_ms();
	ok(p[0].calls == 1 && p[1].calls == 1 && p[2].calls == 1 &&
	    ndelivered() == 3, "one loop turn settles and delivers all three");
	ok(p[0].status == 0 && p[1].status == 0 && p[2].status == 0 &&
	    p[0].why == NULL && p[1].why == NULL && p[2].why == NULL,
	    "status 0, no reason");
	increasing = p[0].position < p[1].position &&
	    p[1].position < p[2].position;
	ok(increasing, "positions strictly increase (%" PRIu64 ", %" PRIu64
	    ", %" PRIu64 ")", p[0].position, p[1].position, p[2].position);
	ok(p[0].position >= (uint64_t)(t0 - 1000) << 16 &&
	    (p[2].position >> 16) <= (uint64_t)t1,
	    "positions are now_ms << 16 based (%" PRIu64 " ms)",
	    p[0].position >> 16);

	good = 0;
	for (i = 0; i < 3 && i < ndelivered(); i++) {
		const struct parley_msg *m = delivered(i);
		char id[16];

		snprintf(id, sizeof(id), "one-%zu", i);
		if (strcmp(m->room, "a") == 0 && strcmp(m->id, id) == 0 &&
		    strcmp(m->sender, "alice") == 0 &&
		    m->position == p[i].position && m->body_len == lens[i] &&
		    memcmp(m->body, "body\0", 5) == 0 &&
		    m->body[5] == (char)('0' + i) &&
		    strcmp(m->content_type, "text/plain") == 0 &&
		    m->event == PARLEY_EV_MESSAGE && m->ref_id == NULL &&
		    m->media_id == NULL)
			good++;
	}
	ok(good == 3, "delivered in publish order, with their own copies of "
	    "id, body (NULs too) and fields, and the position the callback "
	    "got");
	ok(testhost_timers_live(th) == 0, "no timer left once settled");
	testhost_msg_list_clear(testhost_delivered(th));
}

static void
test_rooms_independent(void)
{
	struct pub busy[100], quiet[2], busy2;
	char ids[100][16];
	int64_t t0, t1;
	size_t i;
	int increasing = 1;

	memset(busy, 0, sizeof(busy));
	memset(quiet, 0, sizeof(quiet));
	memset(&busy2, 0, sizeof(busy2));
	t0 = testhost_api()->now_ms();
	for (i = 0; i < 100; i++) {
		snprintf(ids[i], sizeof(ids[i]), "busy-%zu", i);
		publish("busy", ids[i], "x", 1, &busy[i]);
	}
	publish("quiet", "quiet-0", "y", 1, &quiet[0]);
	t1 = testhost_api()->now_ms();
	ok(wait_for(busy, 100) == 0 && wait_for(quiet, 1) == 0,
	    "101 publishes to two rooms settle");
	for (i = 1; i < 100; i++)
		if (busy[i].position <= busy[i - 1].position)
			increasing = 0;
	ok(increasing, "room busy: 100 strictly increasing positions");
	ok((quiet[0].position & 0xffff) == 0 &&
	    (quiet[0].position >> 16) >= (uint64_t)t0 &&
	    (quiet[0].position >> 16) <= (uint64_t)t1,
	    "room quiet starts at now_ms << 16, whatever busy did (%" PRIu64
	    ")", quiet[0].position);
	publish("quiet", "quiet-1", "y", 1, &quiet[1]);
	publish("busy", "busy-100", "x", 1, &busy2);
	ok(wait_for(&quiet[1], 1) == 0 && wait_for(&busy2, 1) == 0 &&
	    quiet[1].position > quiet[0].position &&
	    busy2.position > busy[99].position,
	    "each room's next position follows its own last");
	ok(ndelivered() == 103, "every publish is delivered once (%zu)",
	    ndelivered());
	testhost_msg_list_clear(testhost_delivered(th));
}

/* Publish again from inside a publish callback. */
static struct pub inner;

static void
publish_inner(struct pub *outer)
{
	(void)outer;
	publish("a", "inner", "in", 2, &inner);
}

static void
test_reentrant(void)
{
	struct pub outer[2];
	unsigned long timers;

	memset(outer, 0, sizeof(outer));
	memset(&inner, 0, sizeof(inner));
	outer[0].then = publish_inner;
	timers = testhost_timers_added(th);
	publish("a", "outer-0", "o", 1, &outer[0]);
	publish("a", "outer-1", "o", 1, &outer[1]);
	event_base_loop(testhost_base(th), EVLOOP_ONCE);
	ok(outer[0].calls == 1 && outer[1].calls == 1 && inner.calls == 0,
	    "a publish made inside a callback is not settled in the same "
	    "pass");
	ok(wait_for(&inner, 1) == 0 && inner.status == 0 &&
	    inner.position > outer[1].position &&
	    testhost_timers_added(th) - timers == 2,
	    "it settles on a later turn, after the earlier publishes");
	ok(ndelivered() == 3 && strcmp(delivered(0)->id, "outer-0") == 0 &&
	    strcmp(delivered(1)->id, "outer-1") == 0 &&
	    strcmp(delivered(2)->id, "inner") == 0, "delivery order is "
	    "publish order");
	testhost_msg_list_clear(testhost_delivered(th));

	B->watch_room(st, "a");
	B->unwatch_room(st, "a");
	ok(1, "watch_room and unwatch_room are harmless");
}

static void
test_many_rooms(void)
{
	static struct pub p[5000], again;
	char room[32];
	size_t i, bad = 0;

	memset(p, 0, sizeof(p));
	memset(&again, 0, sizeof(again));
	for (i = 0; i < 5000; i++) {
		snprintf(room, sizeof(room), "room-%zu", i);
		publish(room, "m", "z", 1, &p[i]);
	}
	ok(wait_for(p, 5000) == 0, "5000 rooms in one turn settle");
	for (i = 0; i < 5000; i++)
		if (p[i].status != 0 || p[i].position == 0)
			bad++;
	ok(bad == 0 && ndelivered() == 5000, "all got a position and were "
	    "delivered (%zu bad, %zu delivered)", bad, ndelivered());
	publish("room-0", "m2", "z", 1, &again);
	ok(wait_for(&again, 1) == 0 && again.position > p[0].position,
	    "the first room still grows after the table changed");
	testhost_msg_list_clear(testhost_delivered(th));
}

static void
test_restart(void)
{
	struct pub before, after, pending[2];
	struct timespec ts = { 0, 3 * 1000 * 1000 };

	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	memset(pending, 0, sizeof(pending));
	publish("a", "before", "b", 1, &before);
	ok(wait_for(&before, 1) == 0, "publish before a restart");

	publish("a", "pending-0", "p", 1, &pending[0]);
	publish("a", "pending-1", "p", 1, &pending[1]);
	testhost_msg_list_clear(testhost_delivered(th));
	plugin->fini(st);
	st = NULL;
	ok(pending[0].calls == 1 && pending[1].calls == 1 &&
	    pending[0].status == -1 && pending[1].status == -1 &&
	    pending[0].why != NULL, "fini settles unsettled publishes as "
	    "failed (%s)", pending[0].why != NULL ? pending[0].why : "");
	ok(ndelivered() == 0 && testhost_timers_live(th) == 0,
	    "and delivers nothing, leaving no timer");

	nanosleep(&ts, NULL);
	if (testhost_init(th, plugin, &st) != 0)
		bail("re-init failed");
	publish("a", "after", "a", 1, &after);
	(void)wait_for(&after, 1);
	ok(after.calls == 1 && after.position > before.position,
	    "after a restart positions keep growing (%" PRIu64 " > %" PRIu64
	    ")", after.position, before.position);
	ok(pending[0].calls == 1 && pending[1].calls == 1,
	    "each callback ran exactly once");
}

/*
 * Fairness: one wakeup settles at most 512 messages, a room cut by that
 * cap goes behind the others, so a backlog in one room holds another
 * room's message back by one wakeup, not by all of it; each room keeps its
 * publish order.
 */
static void
test_fair(void)
{
	static struct pub big[600], small;
	static char ids[600][16];
	size_t i, pos_small = 0, first_pass, inorder = 1, last = 0, rest;
	const struct parley_msg *m;

	memset(big, 0, sizeof(big));
	memset(&small, 0, sizeof(small));
	for (i = 0; i < 600; i++) {
		snprintf(ids[i], sizeof(ids[i]), "big-%zu", i);
		publish("big", ids[i], "b", 1, &big[i]);
	}
	publish("small", "small-0", "s", 1, &small);
	event_base_loop(testhost_base(th), EVLOOP_ONCE);
	first_pass = ndelivered();
	ok(first_pass == 512, "one wakeup settles at most 512 messages (%zu)",
	    first_pass);
	rest = wait_for(&small, 1) == 0 ? ndelivered() : 0;
	for (i = 0; i < rest; i++)
		if (strcmp(delivered(i)->id, "small-0") == 0)
			pos_small = i + 1;
	ok(pos_small == 513, "behind 600 queued in another room, a room's "
	    "message comes first in the next wakeup, #513 (got #%zu)",
	    pos_small);
	rest = wait_for(big, 600) == 0 ? ndelivered() : 0;
	ok(rest == 601, "the rest follow on later turns (%zu in all)", rest);
	for (i = 0; i < ndelivered(); i++) {
		m = delivered(i);
		if (strcmp(m->room, "big") != 0)
			continue;
		if (strcmp(m->id, ids[last]) != 0)
			inorder = 0;
		last++;
	}
	ok(inorder && last == 600, "the busy room's 600 in publish order");
	testhost_msg_list_clear(testhost_delivered(th));
}

int
main(int argc, char **argv)
{
	void *dl;

	if (argc != 2) {
		fprintf(stderr, "usage: %s local.so\n", argv[0]);
		return (2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((th = testhost_new(NULL)) == NULL)
		bail("cannot create the test host");
	if ((plugin = testhost_load(argv[1], &dl)) == NULL)
		bail("cannot load the plugin");
	B = plugin->backplane;
	if (plugin->kind != PARLEY_PLUGIN_BACKPLANE || B == NULL)
		bail("not a backplane plugin");
	if (testhost_init(th, plugin, &st) != 0)
		bail("plugin init failed");
	diag("backplane plugin %s %s", plugin->name,
	    plugin->version != NULL ? plugin->version : "?");

	test_description();
	test_one_turn();
	test_rooms_independent();
	test_reentrant();
	test_fair();
	test_many_rooms();
	test_restart();

	plugin->fini(st);
	ok(testhost_timers_live(th) == 0 && testhost_log_count(th,
	    PARLEY_LOG_ERROR) == 0, "fini leaves no timer; no error logged");
	testhost_free(th);
	testhost_unload(dl);
	printf("1..%d\n", ntests);
	return (nfailed > 0);
}
