/*
 * testhost.c - struct parley_host on a libevent event_base, for plugin unit
 * tests.  See testhost.h.
 *
 * submit(): NWORKERS threads take jobs from a FIFO and run work(); finished
 * jobs go onto a done FIFO and a byte is written to a pipe (only when that
 * FIFO was empty, so the pipe never fills); the loop's read event on the
 * pipe drains it and runs the done() callbacks in finishing order.
 *
 * Timers: a one-shot timer is gone once it fired (the core frees it before
 * calling back), so timer_del() on it from its own callback aborts here,
 * and any later use is caught by ASan.  A repeating timer may be deleted
 * from its own callback.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* pipe2 */
#endif

#include <sys/queue.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "testhost.h"

#define NWORKERS 4

struct parley_ctx {
	struct testhost *th;
	char name[64];
};

struct parley_timer {
	TAILQ_ENTRY(parley_timer) link;
	struct testhost *th;
	struct event *ev;
	parley_timer_cb cb;
	void *arg;
	int repeat;
	int firing;		/* inside cb */
	int dead;		/* repeating, timer_del() called inside cb */
};

struct parley_watch {
	TAILQ_ENTRY(parley_watch) link;
	struct testhost *th;
	struct event *ev;
	parley_watch_cb cb;
	void *arg;
};

struct job {
	STAILQ_ENTRY(job) link;
	parley_work_fn work;
	parley_done_fn done;
	void *arg;
};
STAILQ_HEAD(jobq, job);

struct metric {
	struct metric *next;
	char *name;
	char *labels;		/* or NULL */
	double value;
};

struct testhost {
	struct parley_ctx ctx;
	struct event_base *base;

	/* config: keys[i] = values[i]; keys is NULL-terminated */
	char **keys;
	char **values;
	size_t nkeys;

	TAILQ_HEAD(, parley_timer) timers;
	TAILQ_HEAD(, parley_watch) watches;
	unsigned long timers_added;

	/* worker pool */
	pthread_t workers[NWORKERS];
	size_t nworkers;
	pthread_mutex_t qlock;	/* guards todo, done, stopping */
	pthread_cond_t qcond;
	struct jobq todo;
	struct jobq done;
	int stopping;
	size_t pending;		/* loop thread only */
	int pipefd[2];
	struct event *pipe_ev;

	/* recorders */
	struct parley_msg_list *delivered;
	void (*on_deliver)(const struct parley_msg *, void *);
	void *on_deliver_arg;
	pthread_mutex_t rlock;	/* guards the log and metric recorders */
	unsigned logs[PARLEY_LOG_DEBUG + 1];
	char last_log[1024];
	int last_level;
	struct metric *metrics;
	int ready;
	char *why;
};

/* ---------------------------------------------------------------- */
/* lists                                                               */

struct msg_item {
	struct parley_msg m;	/* points into buf */
	char *buf;
};

struct parley_msg_list {
	struct msg_item *v;
	size_t n, cap;
};

struct room_item {
	struct parley_room_info r;	/* points into buf */
	char *buf;
};

struct parley_room_list {
	struct room_item *v;
	size_t n, cap;
};

static size_t
str_size(const char *s)
{
	return (s != NULL ? strlen(s) + 1 : 0);
}

/* Copy s (NULL stays NULL) to *p and advance it. */
static const char *
str_copy(char **p, const char *s)
{
	char *d = *p;
	size_t n;

	if (s == NULL)
		return (NULL);
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*p += n;
	return (d);
}

/* Grow v (of elements of size sz) to hold one more.  Returns 0 or -1. */
static int
grow(void **v, size_t *cap, size_t n, size_t sz)
{
	void *nv;
	size_t ncap;

	if (n < *cap)
		return (0);
	ncap = *cap != 0 ? *cap * 2 : 16;
	if ((nv = reallocarray(*v, ncap, sz)) == NULL)
		return (-1);
	*v = nv;
	*cap = ncap;
	return (0);
}

static int
th_msg_add(struct parley_msg_list *l, const struct parley_msg *m)
{
	struct msg_item *it;
	size_t len;
	char *d;

	if (m->body == NULL && m->body_len > 0)
		return (-1);
	if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) == -1)
		return (-1);
	len = str_size(m->room) + str_size(m->id) + str_size(m->sender) +
	    str_size(m->content_type) + str_size(m->ref_id) +
	    str_size(m->media_id) + m->body_len + 1;
	it = &l->v[l->n];
	if ((it->buf = d = malloc(len)) == NULL)
		return (-1);
	it->m = *m;
	memset(it->m.spare, 0, sizeof(it->m.spare));
	it->m.room = str_copy(&d, m->room);
	it->m.id = str_copy(&d, m->id);
	it->m.sender = str_copy(&d, m->sender);
	it->m.content_type = str_copy(&d, m->content_type);
	it->m.ref_id = str_copy(&d, m->ref_id);
	it->m.media_id = str_copy(&d, m->media_id);
	if (m->body_len > 0)
		memcpy(d, m->body, m->body_len);
	d[m->body_len] = '\0';
	it->m.body = d;
	l->n++;
	return (0);
}

static int
th_room_add(struct parley_room_list *l, const struct parley_room_info *r)
{
	struct room_item *it;
	char *d;

	if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) == -1)
		return (-1);
	it = &l->v[l->n];
	if ((it->buf = d = malloc(str_size(r->name) + str_size(r->creator) +
	    str_size(r->topic) + 1)) == NULL)
		return (-1);
	it->r = *r;
	memset(it->r.spare, 0, sizeof(it->r.spare));
	it->r.name = str_copy(&d, r->name);
	it->r.creator = str_copy(&d, r->creator);
	it->r.topic = str_copy(&d, r->topic);
	l->n++;
	return (0);
}

static const struct parley_list_api th_list_api = {
	.msg_add = th_msg_add,
	.room_add = th_room_add,
};

const struct parley_list_api *
testhost_list_api(void)
{
	return (&th_list_api);
}

struct parley_msg_list *
testhost_msg_list_new(void)
{
	return (calloc(1, sizeof(struct parley_msg_list)));
}

void
testhost_msg_list_clear(struct parley_msg_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].buf);
	l->n = 0;
}

void
testhost_msg_list_free(struct parley_msg_list *l)
{
	if (l == NULL)
		return;
	testhost_msg_list_clear(l);
	free(l->v);
	free(l);
}

size_t
testhost_msg_list_len(const struct parley_msg_list *l)
{
	return (l->n);
}

const struct parley_msg *
testhost_msg_list_at(const struct parley_msg_list *l, size_t i)
{
	return (i < l->n ? &l->v[i].m : NULL);
}

struct parley_room_list *
testhost_room_list_new(void)
{
	return (calloc(1, sizeof(struct parley_room_list)));
}

void
testhost_room_list_clear(struct parley_room_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].buf);
	l->n = 0;
}

void
testhost_room_list_free(struct parley_room_list *l)
{
	if (l == NULL)
		return;
	testhost_room_list_clear(l);
	free(l->v);
	free(l);
}

size_t
testhost_room_list_len(const struct parley_room_list *l)
{
	return (l->n);
}

const struct parley_room_info *
testhost_room_list_at(const struct parley_room_list *l, size_t i)
{
	return (i < l->n ? &l->v[i].r : NULL);
}

/* ---------------------------------------------------------------- */
/* log and config                                                      */

static const char *const level_names[] = { "error", "warn", "info",
    "debug" };

static void
th_vlog(struct parley_ctx *ctx, int level, const char *fmt, va_list ap)
{
	struct testhost *th = ctx->th;
	char line[1024];
	size_t i;

	if (level < PARLEY_LOG_ERROR)
		level = PARLEY_LOG_ERROR;
	if (level > PARLEY_LOG_DEBUG)
		level = PARLEY_LOG_DEBUG;
	vsnprintf(line, sizeof(line), fmt, ap);
	for (i = 0; line[i] != '\0'; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	/* one call per line: lines from several threads do not mix */
	fprintf(stderr, "# [%s] %s: %s\n", level_names[level], ctx->name,
	    line);
	pthread_mutex_lock(&th->rlock);
	th->logs[level]++;
	th->last_level = level;
	memcpy(th->last_log, line, sizeof(line));
	pthread_mutex_unlock(&th->rlock);
}

static void th_log(struct parley_ctx *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
th_log(struct parley_ctx *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	th_vlog(ctx, level, fmt, ap);
	va_end(ap);
}

static const char *
th_config_get(struct parley_ctx *ctx, const char *key, const char *def)
{
	struct testhost *th = ctx->th;
	size_t i;

	for (i = 0; i < th->nkeys; i++)
		if (strcmp(th->keys[i], key) == 0)
			return (th->values[i]);
	return (def);
}

static char *
th_config_path(struct parley_ctx *ctx, const char *key, const char *def)
{
	const char *v;

	if ((v = th_config_get(ctx, key, def)) == NULL)
		return (NULL);
	return (strdup(v));
}

static int
th_config_int(struct parley_ctx *ctx, const char *key, long long def,
    long long min, long long max, long long *out)
{
	const char *v;
	char *end;
	long long n;

	if ((v = th_config_get(ctx, key, NULL)) == NULL) {
		*out = def;
		return (0);
	}
	errno = 0;
	n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
		th_log(ctx, PARLEY_LOG_ERROR, "testhost: [%s] %s = %s: expected "
		    "an integer in [%lld, %lld]", ctx->name, key, v, min, max);
		return (-1);
	}
	*out = n;
	return (0);
}

static int
th_config_bool(struct parley_ctx *ctx, const char *key, int def, int *out)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };
	const char *v;
	size_t i;

	if ((v = th_config_get(ctx, key, NULL)) == NULL) {
		*out = def;
		return (0);
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return (0);
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return (0);
		}
	}
	th_log(ctx, PARLEY_LOG_ERROR, "testhost: [%s] %s = %s: expected "
	    "yes or no", ctx->name, key, v);
	return (-1);
}

static const char *const *
th_config_keys(struct parley_ctx *ctx, size_t *n)
{
	*n = ctx->th->nkeys;
	return ((const char *const *)ctx->th->keys);
}

/* ---------------------------------------------------------------- */
/* timers and watches                                                  */

static void
timer_free(struct parley_timer *t)
{
	TAILQ_REMOVE(&t->th->timers, t, link);
	event_free(t->ev);
	free(t);
}

static void
timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct parley_timer *t = arg;

	(void)fd;
	(void)what;
	t->firing = 1;
	t->cb(t->arg);
	t->firing = 0;
	if (!t->repeat || t->dead)
		timer_free(t);
}

static struct parley_timer *
th_timer_add(struct parley_ctx *ctx, unsigned ms, int repeat,
    parley_timer_cb cb, void *arg)
{
	struct testhost *th = ctx->th;
	struct parley_timer *t;
	struct timeval tv;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (NULL);
	t->th = th;
	t->cb = cb;
	t->arg = arg;
	t->repeat = repeat;
	t->ev = event_new(th->base, -1, repeat ? EV_PERSIST : 0, timer_fire,
	    t);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (t->ev == NULL || event_add(t->ev, &tv) == -1) {
		if (t->ev != NULL)
			event_free(t->ev);
		free(t);
		return (NULL);
	}
	TAILQ_INSERT_TAIL(&th->timers, t, link);
	th->timers_added++;
	return (t);
}

static void
th_timer_del(struct parley_timer *t)
{
	if (t == NULL)
		return;
	if (t->firing && !t->repeat) {
		fprintf(stderr, "# testhost: %s: timer_del() on a one-shot "
		    "timer that already fired\n", t->th->ctx.name);
		abort();
	}
	if (t->firing) {
		event_del(t->ev);
		t->dead = 1;
	} else
		timer_free(t);
}

static void
watch_fire(evutil_socket_t fd, short what, void *arg)
{
	struct parley_watch *w = arg;
	int pw = 0;

	if (what & EV_READ)
		pw |= PARLEY_WATCH_READ;
	if (what & EV_WRITE)
		pw |= PARLEY_WATCH_WRITE;
	w->cb(fd, pw, w->arg);
}

static struct parley_watch *
th_watch_add(struct parley_ctx *ctx, int fd, int what, parley_watch_cb cb,
    void *arg)
{
	struct testhost *th = ctx->th;
	struct parley_watch *w;
	short ev = EV_PERSIST;

	if (what & PARLEY_WATCH_READ)
		ev |= EV_READ;
	if (what & PARLEY_WATCH_WRITE)
		ev |= EV_WRITE;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return (NULL);
	w->th = th;
	w->cb = cb;
	w->arg = arg;
	if ((w->ev = event_new(th->base, fd, ev, watch_fire, w)) == NULL ||
	    event_add(w->ev, NULL) == -1) {
		if (w->ev != NULL)
			event_free(w->ev);
		free(w);
		return (NULL);
	}
	TAILQ_INSERT_TAIL(&th->watches, w, link);
	return (w);
}

/* Safe inside the watch's own callback (libevent allows event_free there). */
static void
th_watch_del(struct parley_watch *w)
{
	if (w == NULL)
		return;
	TAILQ_REMOVE(&w->th->watches, w, link);
	event_free(w->ev);
	free(w);
}

/* ---------------------------------------------------------------- */
/* worker pool                                                         */

static void *
worker_main(void *arg)
{
	struct testhost *th = arg;
	struct job *j;
	char c = 1;
	int wake;

	pthread_mutex_lock(&th->qlock);
	for (;;) {
		while (STAILQ_EMPTY(&th->todo) && !th->stopping)
			pthread_cond_wait(&th->qcond, &th->qlock);
		if ((j = STAILQ_FIRST(&th->todo)) == NULL)
			break;		/* stopping and nothing left */
		STAILQ_REMOVE_HEAD(&th->todo, link);
		pthread_mutex_unlock(&th->qlock);

		j->work(j->arg);

		pthread_mutex_lock(&th->qlock);
		wake = STAILQ_EMPTY(&th->done);
		STAILQ_INSERT_TAIL(&th->done, j, link);
		if (wake) {
			while (write(th->pipefd[1], &c, 1) == -1 &&
			    errno == EINTR)
				;
		}
	}
	pthread_mutex_unlock(&th->qlock);
	return (NULL);
}

/* Run every finished job's done() on this (the loop) thread. */
static void
run_done(struct testhost *th)
{
	struct jobq q;
	struct job *j;

	pthread_mutex_lock(&th->qlock);
	STAILQ_INIT(&q);
	STAILQ_CONCAT(&q, &th->done);
	pthread_mutex_unlock(&th->qlock);
	while ((j = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, link);
		th->pending--;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
pipe_readable(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	(void)what;
	/* Drain first: a job finishing after this writes a new byte. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	run_done(arg);
}

static int
th_submit(struct parley_ctx *ctx, parley_work_fn work, parley_done_fn done,
    void *arg)
{
	struct testhost *th = ctx->th;
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (-1);
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&th->qlock);
	if (th->stopping) {
		pthread_mutex_unlock(&th->qlock);
		free(j);
		return (-1);
	}
	STAILQ_INSERT_TAIL(&th->todo, j, link);
	th->pending++;
	pthread_cond_signal(&th->qcond);
	pthread_mutex_unlock(&th->qlock);
	return (0);
}

/* ---------------------------------------------------------------- */
/* metrics, readiness, delivery, time                                  */

static int
labels_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

/* Called with rlock held.  Returns NULL on allocation failure. */
static struct metric *
metric_get(struct testhost *th, const char *name, const char *labels,
    int create)
{
	struct metric *m;

	for (m = th->metrics; m != NULL; m = m->next)
		if (strcmp(m->name, name) == 0 && labels_eq(m->labels, labels))
			return (m);
	if (!create || (m = calloc(1, sizeof(*m))) == NULL)
		return (NULL);
	if ((m->name = strdup(name)) == NULL ||
	    (labels != NULL && (m->labels = strdup(labels)) == NULL)) {
		free(m->name);
		free(m);
		return (NULL);
	}
	m->next = th->metrics;
	th->metrics = m;
	return (m);
}

static void
th_counter_add(struct parley_ctx *ctx, const char *name, const char *labels,
    double v)
{
	struct testhost *th = ctx->th;
	struct metric *m;

	pthread_mutex_lock(&th->rlock);
	if ((m = metric_get(th, name, labels, 1)) != NULL)
		m->value += v;
	pthread_mutex_unlock(&th->rlock);
}

static void
th_gauge_set(struct parley_ctx *ctx, const char *name, const char *labels,
    double v)
{
	struct testhost *th = ctx->th;
	struct metric *m;

	pthread_mutex_lock(&th->rlock);
	if ((m = metric_get(th, name, labels, 1)) != NULL)
		m->value = v;
	pthread_mutex_unlock(&th->rlock);
}

static void
th_set_ready(struct parley_ctx *ctx, int ready, const char *why)
{
	struct testhost *th = ctx->th;

	th->ready = ready;
	free(th->why);
	th->why = why != NULL ? strdup(why) : NULL;
}

static void
th_deliver(struct parley_ctx *ctx, const struct parley_msg *msg)
{
	struct testhost *th = ctx->th;

	if (th_msg_add(th->delivered, msg) == -1)
		th_log(ctx, PARLEY_LOG_ERROR, "testhost: deliver: out of "
		    "memory");
	if (th->on_deliver != NULL)
		th->on_deliver(msg, th->on_deliver_arg);
}

static int64_t
th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static const struct parley_host th_api = {
	.abi_version = PARLEY_ABI_VERSION,
	.size = sizeof(struct parley_host),
	.log = th_log,
	.config_get = th_config_get,
	.config_path = th_config_path,
	.config_int = th_config_int,
	.config_bool = th_config_bool,
	.config_keys = th_config_keys,
	.timer_add = th_timer_add,
	.timer_del = th_timer_del,
	.watch_add = th_watch_add,
	.watch_del = th_watch_del,
	.submit = th_submit,
	.counter_add = th_counter_add,
	.gauge_set = th_gauge_set,
	.set_ready = th_set_ready,
	.deliver = th_deliver,
	.now_ms = th_now_ms,
};

const struct parley_host *
testhost_api(void)
{
	return (&th_api);
}

/* ---------------------------------------------------------------- */
/* life cycle                                                          */

struct testhost *
testhost_new(const char *const *kv)
{
	struct testhost *th;
	const char *eq;
	size_t i, n = 0;
	int err;

	if ((th = calloc(1, sizeof(*th))) == NULL)
		goto nomem;
	th->ctx.th = th;
	strcpy(th->ctx.name, "plugin");
	th->ready = 1;
	th->last_level = -1;
	th->pipefd[0] = th->pipefd[1] = -1;
	TAILQ_INIT(&th->timers);
	TAILQ_INIT(&th->watches);
	STAILQ_INIT(&th->todo);
	STAILQ_INIT(&th->done);
	pthread_mutex_init(&th->qlock, NULL);
	pthread_mutex_init(&th->rlock, NULL);
	pthread_cond_init(&th->qcond, NULL);

	while (kv != NULL && kv[n] != NULL)
		n++;
	if ((th->keys = calloc(n + 1, sizeof(*th->keys))) == NULL ||
	    (th->values = calloc(n + 1, sizeof(*th->values))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		if ((eq = strchr(kv[i], '=')) == NULL) {
			fprintf(stderr, "# testhost: '%s': expected key=value\n",
			    kv[i]);
			goto fail;
		}
		if ((th->keys[i] = strndup(kv[i], eq - kv[i])) == NULL ||
		    (th->values[i] = strdup(eq + 1)) == NULL)
			goto nomem;
		th->nkeys++;
	}

	if ((th->delivered = testhost_msg_list_new()) == NULL ||
	    (th->base = event_base_new()) == NULL)
		goto nomem;
	if (pipe2(th->pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
		fprintf(stderr, "# testhost: pipe: %s\n", strerror(errno));
		goto fail;
	}
	if ((th->pipe_ev = event_new(th->base, th->pipefd[0],
	    EV_READ | EV_PERSIST, pipe_readable, th)) == NULL ||
	    event_add(th->pipe_ev, NULL) == -1)
		goto nomem;
	for (i = 0; i < NWORKERS; i++) {
		if ((err = pthread_create(&th->workers[i], NULL, worker_main,
		    th)) != 0) {
			fprintf(stderr, "# testhost: pthread_create: %s\n",
			    strerror(err));
			goto fail;
		}
		th->nworkers++;
	}
	return (th);
nomem:
	fprintf(stderr, "# testhost: out of memory\n");
fail:
	testhost_free(th);
	return (NULL);
}

void
testhost_free(struct testhost *th)
{
	struct parley_timer *t;
	struct parley_watch *w;
	struct metric *m;
	size_t i;

	if (th == NULL)
		return;
	pthread_mutex_lock(&th->qlock);
	th->stopping = 1;
	pthread_cond_broadcast(&th->qcond);
	pthread_mutex_unlock(&th->qlock);
	for (i = 0; i < th->nworkers; i++)
		pthread_join(th->workers[i], NULL);
	run_done(th);

	while ((t = TAILQ_FIRST(&th->timers)) != NULL) {
		fprintf(stderr, "# testhost: %s left a timer behind\n",
		    th->ctx.name);
		timer_free(t);
	}
	while ((w = TAILQ_FIRST(&th->watches)) != NULL) {
		fprintf(stderr, "# testhost: %s left an fd watch behind\n",
		    th->ctx.name);
		th_watch_del(w);
	}
	if (th->pipe_ev != NULL)
		event_free(th->pipe_ev);
	for (i = 0; i < 2; i++)
		if (th->pipefd[i] != -1)
			close(th->pipefd[i]);
	if (th->base != NULL)
		event_base_free(th->base);

	while ((m = th->metrics) != NULL) {
		th->metrics = m->next;
		free(m->name);
		free(m->labels);
		free(m);
	}
	for (i = 0; i < th->nkeys; i++) {
		free(th->keys[i]);
		free(th->values[i]);
	}
	free(th->keys);
	free(th->values);
	testhost_msg_list_free(th->delivered);
	free(th->why);
	pthread_cond_destroy(&th->qcond);
	pthread_mutex_destroy(&th->qlock);
	pthread_mutex_destroy(&th->rlock);
	free(th);
}

struct parley_ctx *
testhost_ctx(struct testhost *th)
{
	return (&th->ctx);
}

struct event_base *
testhost_base(struct testhost *th)
{
	return (th->base);
}

const struct parley_plugin *
testhost_load(const char *so_path, void **dl)
{
	const struct parley_plugin *p;
	parley_plugin_entry_fn entry;
	void *h;
	int nops;

	*dl = NULL;
	if ((h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "# testhost: %s\n", dlerror());
		return (NULL);
	}
	*(void **)&entry = dlsym(h, PARLEY_PLUGIN_ENTRY);
	if (entry == NULL) {
		fprintf(stderr, "# testhost: %s: no %s symbol\n", so_path,
		    PARLEY_PLUGIN_ENTRY);
		goto fail;
	}
	if ((p = entry()) == NULL) {
		fprintf(stderr, "# testhost: %s: %s returned NULL\n", so_path,
		    PARLEY_PLUGIN_ENTRY);
		goto fail;
	}
	if (p->abi_version != PARLEY_ABI_VERSION) {
		fprintf(stderr, "# testhost: %s: plugin ABI version %u, host "
		    "%d\n", so_path, p->abi_version, PARLEY_ABI_VERSION);
		goto fail;
	}
	nops = (p->backplane != NULL) + (p->storage != NULL) +
	    (p->media != NULL) + (p->auth != NULL);
	if (p->name == NULL || p->init == NULL || nops != 1 ||
	    (p->kind == PARLEY_PLUGIN_BACKPLANE && p->backplane == NULL) ||
	    (p->kind == PARLEY_PLUGIN_STORAGE && p->storage == NULL) ||
	    (p->kind == PARLEY_PLUGIN_MEDIA && p->media == NULL) ||
	    (p->kind == PARLEY_PLUGIN_AUTH && p->auth == NULL) ||
	    p->kind < PARLEY_PLUGIN_BACKPLANE || p->kind > PARLEY_PLUGIN_AUTH) {
		fprintf(stderr, "# testhost: %s: malformed plugin description "
		    "(kind %d)\n", so_path, p->kind);
		goto fail;
	}
	*dl = h;
	return (p);
fail:
	dlclose(h);
	return (NULL);
}

void
testhost_unload(void *dl)
{
	if (dl != NULL)
		dlclose(dl);
}

int
testhost_init(struct testhost *th, const struct parley_plugin *p,
    void **state)
{
	snprintf(th->ctx.name, sizeof(th->ctx.name), "%s", p->name);
	return (p->init(&th_api, &th->ctx, state));
}

/* ---------------------------------------------------------------- */
/* driving the loop and reading the recorders                          */

static void
run_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

int
testhost_run(struct testhost *th, int (*done)(void *), void *arg,
    unsigned timeout_ms)
{
	struct event *ev;
	struct timeval tv;
	int expired = 0;

	if ((ev = evtimer_new(th->base, run_timeout, &expired)) == NULL)
		return (-1);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(ev, &tv);
	while (!done(arg) && !expired)
		event_base_loop(th->base, EVLOOP_ONCE);
	event_free(ev);
	return (done(arg) ? 0 : -1);
}

void
testhost_turn(struct testhost *th)
{
	event_base_loop(th->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

size_t
testhost_pending(struct testhost *th)
{
	return (th->pending);
}

struct parley_msg_list *
testhost_delivered(struct testhost *th)
{
	return (th->delivered);
}

void
testhost_on_deliver(struct testhost *th,
    void (*fn)(const struct parley_msg *, void *), void *arg)
{
	th->on_deliver = fn;
	th->on_deliver_arg = arg;
}

unsigned
testhost_log_count(struct testhost *th, int level)
{
	unsigned n = 0;
	int i;

	pthread_mutex_lock(&th->rlock);
	for (i = PARLEY_LOG_ERROR; i <= PARLEY_LOG_DEBUG; i++)
		if (level < 0 || level == i)
			n += th->logs[i];
	pthread_mutex_unlock(&th->rlock);
	return (n);
}

int
testhost_last_log(struct testhost *th, char *buf, size_t len)
{
	int level;

	pthread_mutex_lock(&th->rlock);
	level = th->last_level;
	if (level >= 0 && len > 0)
		snprintf(buf, len, "%s", th->last_log);
	pthread_mutex_unlock(&th->rlock);
	return (level);
}

unsigned long
testhost_timers_added(struct testhost *th)
{
	return (th->timers_added);
}

size_t
testhost_timers_live(struct testhost *th)
{
	struct parley_timer *t;
	size_t n = 0;

	TAILQ_FOREACH(t, &th->timers, link)
		if (!t->dead)
			n++;
	return (n);
}

int
testhost_ready(struct testhost *th, const char **why)
{
	if (why != NULL)
		*why = th->why;
	return (th->ready);
}

double
testhost_metric(struct testhost *th, const char *name, const char *labels)
{
	struct metric *m;
	double v;

	pthread_mutex_lock(&th->rlock);
	m = metric_get(th, name, labels, 0);
	v = m != NULL ? m->value : 0;
	pthread_mutex_unlock(&th->rlock);
	return (v);
}
