/*
 * worker.h - the host-owned worker threads.  Blocking work (storage, auth,
 * media) runs here; its completion runs back on the loop thread.
 */
#ifndef PARLEY_WORKER_H
#define PARLEY_WORKER_H

struct event_base;

/* Start n threads; completions are signalled to base.  0 or -1. */
int	worker_start(struct event_base *base, int n);
/*
 * Queue work(arg) for a worker, then done(arg) on the loop.  done may be
 * NULL.  Returns 0, or -1 when stopping (nothing runs).  Any thread.
 */
int	worker_submit(void (*work)(void *), void (*done)(void *), void *arg);
/*
 * The same for work a client asked for (checking credentials, REST and
 * media requests): it waits behind the server's own jobs (storage
 * batches, resumes, plugin jobs), and at most n - 1 of the n threads run
 * such jobs at once, so a flood of logins with slow password hashes
 * cannot hold back storage commits, and with them every RECEIPT.
 */
int	worker_submit_client(void (*work)(void *), void (*done)(void *),
	    void *arg);
/* Jobs queued or running (for metrics). */
int	worker_backlog(void);
/* Finish queued jobs, run their completions, join the threads. */
void	worker_stop(void);

#endif
