/*
 * worker.c - a fixed pool of threads fed from two queues: the server's own
 * jobs first, then client jobs (worker_submit_client), of which at most
 * n - 1 run at once.  Finished jobs go on a third queue; an eventfd wakes
 * the loop, which runs their done() callbacks in completion order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "log.h"
#include "worker.h"

struct job {
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	STAILQ_ENTRY(job) entry;
};
STAILQ_HEAD(jobq, job);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct jobq todo = STAILQ_HEAD_INITIALIZER(todo);
static struct jobq ctodo = STAILQ_HEAD_INITIALIZER(ctodo);	/* client */
static int crunning;		/* client jobs running */
static struct jobq finished = STAILQ_HEAD_INITIALIZER(finished);
static pthread_t *threads;
static int nthreads;
static int stopping;
static int backlog;
static int efd = -1;
static struct event *ev_done;

static void
run_finished(void)
{
	struct jobq q = STAILQ_HEAD_INITIALIZER(q);
	struct job *j;

	pthread_mutex_lock(&lock);
	STAILQ_CONCAT(&q, &finished);
	pthread_mutex_unlock(&lock);
	while ((j = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, entry);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	(void)what;
	(void)arg;
	while (read(fd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	run_finished();
}

/* A client job may start (lock held). */
static int
client_ready(void)
{
	int cap = nthreads > 1 ? nthreads - 1 : 1;

	return !STAILQ_EMPTY(&ctodo) && crunning < cap;
}

static void *
worker_main(void *arg)
{
	struct job *j;
	uint64_t one = 1;
	int client;

	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (STAILQ_EMPTY(&todo) && !client_ready() && !stopping)
			pthread_cond_wait(&cond, &lock);
		if ((j = STAILQ_FIRST(&todo)) != NULL) {
			STAILQ_REMOVE_HEAD(&todo, entry);
			client = 0;
		} else if ((j = STAILQ_FIRST(&ctodo)) != NULL) {
			/* here client_ready(), or stopping: drain, no cap */
			STAILQ_REMOVE_HEAD(&ctodo, entry);
			client = 1;
			crunning++;
		} else
			break;		/* stopping and drained */
		pthread_mutex_unlock(&lock);
		j->work(j->arg);
		pthread_mutex_lock(&lock);
		if (client) {
			crunning--;
			pthread_cond_signal(&cond);	/* a slot is free */
		}
		backlog--;
		STAILQ_INSERT_TAIL(&finished, j, entry);
		if (write(efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
			log_error("worker: eventfd write: %s", strerror(errno));
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int
worker_start(struct event_base *base, int n)
{
	int i;

	if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_error("worker: eventfd: %s", strerror(errno));
		return -1;
	}
	ev_done = event_new(base, efd, EV_READ | EV_PERSIST, on_done, NULL);
	if (ev_done == NULL || event_add(ev_done, NULL) == -1)
		return -1;
	if ((threads = calloc(n, sizeof(*threads))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (pthread_create(&threads[i], NULL, worker_main, NULL) != 0) {
			log_error("worker: cannot start thread %d", i);
			return -1;
		}
		nthreads++;
	}
	return 0;
}

static int
submit(struct jobq *q, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	struct job *j;

	if ((j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&lock);
	if (stopping || nthreads == 0) {
		pthread_mutex_unlock(&lock);
		free(j);
		return -1;
	}
	STAILQ_INSERT_TAIL(q, j, entry);
	backlog++;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	return 0;
}

int
worker_submit(void (*work)(void *), void (*done)(void *), void *arg)
{
	return submit(&todo, work, done, arg);
}

int
worker_submit_client(void (*work)(void *), void (*done)(void *), void *arg)
{
	return submit(&ctodo, work, done, arg);
}

int
worker_backlog(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = backlog;
	pthread_mutex_unlock(&lock);
	return n;
}

void
worker_stop(void)
{
	int i;

	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	run_finished();
	nthreads = 0;
	free(threads);
	threads = NULL;
	if (ev_done != NULL)
		event_free(ev_done);
	ev_done = NULL;
	if (efd != -1)
		close(efd);
	efd = -1;
}
