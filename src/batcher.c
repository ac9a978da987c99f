/*
 * batcher.c - write-behind persistence (see batcher.h).
 *
 * Messages wait in `queue` (delivery order).  A flush moves up to
 * batch_size of them to `inflight` and stores them on a worker thread; one
 * batch is in flight at a time, so rooms are written in order.  On failure
 * the batch goes back to the head of the queue and is retried with
 * exponential backoff; the storage plugin is reported not ready meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "batcher.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "plugin.h"
#include "util.h"
#include "worker.h"

struct waiter {
	char id[PARLEY_ID_MAX + 1];
	void (*cb)(void *, int);
	void *arg;
	struct waiter *next;	/* same id (rare) */
};

static struct config *cfg;
static struct event_base *base;
static struct pmsg **queue;	/* ring would be nicer; compacted on flush */
static size_t qhead, qlen, qcap;
static struct pmsg **inflight;
static size_t ninflight;
static struct parley_msg *inflight_msgs;
static int busy;		/* a batch is on a worker */
static int failed_status;
static char failed_err[256];
static struct event *timer;
static int timer_armed;
static int backoff_ms;
static struct strmap waiters;

static void flush_cb(evutil_socket_t fd, short what, void *arg);

int
batcher_init(struct config *c, struct event_base *b)
{
	cfg = c;
	base = b;
	strmap_init(&waiters);
	if ((timer = evtimer_new(base, flush_cb, NULL)) == NULL)
		return -1;
	qcap = 1024;
	if ((queue = calloc(qcap, sizeof(*queue))) == NULL)
		return -1;
	return 0;
}

static void
arm(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (timer_armed)
		return;
	timer_armed = 1;
	evtimer_add(timer, &tv);
}

size_t
batcher_backlog(void)
{
	return qlen + ninflight;
}

int
batcher_has_room(void)
{
	return (int64_t)batcher_backlog() < cfg->batch_max_pending;
}

static int
queue_push(struct pmsg *p)
{
	if (qhead + qlen == qcap) {
		if (qhead > 0) {
			memmove(queue, queue + qhead, qlen * sizeof(*queue));
			qhead = 0;
		} else {
			size_t cap = qcap * 2;
			struct pmsg **q = realloc(queue, cap * sizeof(*q));

			if (q == NULL)
				return -1;
			queue = q;
			qcap = cap;
		}
	}
	queue[qhead + qlen++] = p;
	return 0;
}

static void
store_work(void *arg)
{
	struct parley_ctx *st = plugins.storage;

	(void)arg;
	failed_err[0] = '\0';
	failed_status = st->p->storage->store(st->state, inflight_msgs,
	    ninflight, failed_err, sizeof(failed_err));
}

static void flush(void);

static void
fire_list(struct waiter *w, int status)
{
	struct waiter *next;

	for (; w != NULL; w = next) {
		next = w->next;
		w->cb(w->arg, status);
		free(w);
	}
}

/* The receipts waiting for p: attached to it, or (registered before p
 * was queued) in the map by id. */
static void
fire_waiters(struct pmsg *p, int status)
{
	struct waiter *w = p->waiters;

	p->waiters = NULL;
	fire_list(w, status);
	if (waiters.count > 0 && (w = strmap_del(&waiters, p->m.id)) != NULL)
		fire_list(w, status);
}

/* Tell a persist-feed backplane which messages are committed. */
static void
ack_tokens(void)
{
	struct parley_ctx *bp = plugins.backplane;
	uint64_t *tok;
	size_t i, n = 0;

	if (bp == NULL || bp->p->backplane->persist_ack == NULL)
		return;
	if ((tok = malloc((ninflight + 1) * sizeof(*tok))) == NULL)
		return;		/* unacked: redelivered, stored again: no-op */
	for (i = 0; i < ninflight; i++)
		if (inflight[i]->has_token)
			tok[n++] = inflight[i]->token;
	if (n > 0)
		bp->p->backplane->persist_ack(bp->state, tok, n);
	free(tok);
}

static void
store_done(void *arg)
{
	struct parley_ctx *st = plugins.storage;
	size_t i;

	(void)arg;
	busy = 0;
	if (failed_status != 0) {
		stats.err_storage++;
		/* put the batch back in front, in order */
		if (qhead >= ninflight) {
			qhead -= ninflight;
			memcpy(queue + qhead, inflight,
			    ninflight * sizeof(*queue));
			qlen += ninflight;
		} else {
			struct pmsg **q = malloc((qlen + ninflight + 1024) *
			    sizeof(*q));

			if (q == NULL) {
				log_error("batcher: out of memory requeueing");
				abort();
			}
			memcpy(q, inflight, ninflight * sizeof(*q));
			memcpy(q + ninflight, queue + qhead,
			    qlen * sizeof(*q));
			free(queue);
			queue = q;
			qhead = 0;
			qlen += ninflight;
			qcap = qlen + 1024;
		}
		ninflight = 0;
		backoff_ms = backoff_ms ? backoff_ms * 2 : 100;
		if (backoff_ms > 5000)
			backoff_ms = 5000;
		/* one warning per outage; retries are debug lines */
		if (backoff_ms == 100)
			log_warn("storage: writing a batch failed: %s (retrying "
			    "with backoff up to 5 s; %zu messages waiting)",
			    failed_err, qlen);
		else
			log_debug("storage: retry failed: %s (next in %d ms, "
			    "%zu waiting)", failed_err, backoff_ms, qlen);
		plugin_host()->set_ready(st, 0, failed_err[0] ? failed_err :
		    "write failed");
		arm(backoff_ms);
		return;
	}
	if (backoff_ms != 0) {
		backoff_ms = 0;
		log_info("storage: writing again (%zu messages waiting)",
		    qlen + ninflight);
		plugin_host()->set_ready(st, 1, NULL);
	}
	ack_tokens();
	for (i = 0; i < ninflight; i++) {
		fire_waiters(inflight[i], 0);
		pmsg_unref(inflight[i]);
	}
	ninflight = 0;
	if (qlen > 0)
		flush();
}

static void
flush(void)
{
	size_t n, i;

	if (busy || qlen == 0)
		return;
	n = qlen < (size_t)cfg->batch_size ? qlen : (size_t)cfg->batch_size;
	free(inflight);
	free(inflight_msgs);
	inflight = malloc(n * sizeof(*inflight));
	inflight_msgs = malloc(n * sizeof(*inflight_msgs));
	if (inflight == NULL || inflight_msgs == NULL) {
		arm(100);
		return;
	}
	for (i = 0; i < n; i++) {
		inflight[i] = queue[qhead + i];
		inflight_msgs[i] = inflight[i]->m;
	}
	qhead += n;
	qlen -= n;
	if (qlen == 0)
		qhead = 0;
	ninflight = n;
	busy = 1;
	if (worker_submit(store_work, store_done, NULL) == -1) {
		/* shutting down: run it here */
		store_work(NULL);
		store_done(NULL);
	}
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timer_armed = 0;
	flush();
	if (qlen > 0 && !busy)
		arm(cfg->batch_interval_ms);
}

int
batcher_add(struct pmsg *p)
{
	/* admission is checked at publish (batcher_has_room); a message
	 * that got here is delivered and must not be dropped */
	if (queue_push(pmsg_ref(p)) == -1) {
		pmsg_unref(p);
		return -1;
	}
	if (qlen >= (size_t)cfg->batch_size && backoff_ms == 0)
		flush();
	else if (backoff_ms == 0)
		arm(cfg->batch_interval_ms);
	return 0;
}

int
batcher_wait(const char *id, void (*cb)(void *, int), void *arg)
{
	struct waiter *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->cb = cb;
	w->arg = arg;
	/*
	 * The message was queued just now (a backplane that delivers before
	 * it settles the publish, as local does): the receipt goes with it,
	 * without a map entry (which cost 4-6% of the loop in `bench rooms`).
	 */
	if (qlen > 0 && strcmp(queue[qhead + qlen - 1]->m.id, id) == 0) {
		struct pmsg *p = queue[qhead + qlen - 1];

		w->next = p->waiters;
		p->waiters = w;
		return 0;
	}
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->next = strmap_get(&waiters, w->id);
	if (strmap_put(&waiters, w->id, w) == -1) {
		free(w);
		return -1;
	}
	return 0;
}

void
batcher_snapshot(const char *room, uint64_t after, struct pmsg ***out,
    size_t *n)
{
	struct pmsg **v;
	size_t i, k = 0;

	*out = NULL;
	*n = 0;
	if ((v = malloc((qlen + ninflight + 1) * sizeof(*v))) == NULL)
		return;
	for (i = 0; i < ninflight; i++)
		if (inflight[i]->m.position > after &&
		    strcmp(inflight[i]->m.room, room) == 0)
			v[k++] = pmsg_ref(inflight[i]);
	for (i = 0; i < qlen; i++)
		if (queue[qhead + i]->m.position > after &&
		    strcmp(queue[qhead + i]->m.room, room) == 0)
			v[k++] = pmsg_ref(queue[qhead + i]);
	qsort(v, k, sizeof(*v), pmsg_cmp_position);
	*out = v;
	*n = k;
}

int
batcher_drain(int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;

	backoff_ms = 0;
	while (batcher_backlog() > 0 && mono_ms() < deadline) {
		if (!busy)
			flush();
		event_base_loop(base, EVLOOP_ONCE);
	}
	if (batcher_backlog() > 0) {
		log_error("storage: %zu messages could not be written before "
		    "the drain timeout", batcher_backlog());
		return -1;
	}
	return 0;
}

static void
free_waiter(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	fire_list(value, -1);
}

void
batcher_fini(void)
{
	size_t i;

	strmap_foreach(&waiters, free_waiter, NULL);
	strmap_free(&waiters);
	for (i = 0; i < qlen; i++) {
		fire_waiters(queue[qhead + i], -1);
		pmsg_unref(queue[qhead + i]);
	}
	for (i = 0; i < ninflight; i++) {
		fire_waiters(inflight[i], -1);
		pmsg_unref(inflight[i]);
	}
	free(queue);
	free(inflight);
	free(inflight_msgs);
	queue = inflight = NULL;
	inflight_msgs = NULL;
	qlen = ninflight = 0;
	if (timer != NULL)
		event_free(timer);
	timer = NULL;
}
