/*
 * metrics.c - see metrics.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include <event2/buffer.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

struct core_stats stats;

struct metric {
	char *key;		/* name{labels} */
	char *name;
	int gauge;
	double v;
	struct metric *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct strmap reg;
static struct metric *list;
static void (*extra)(struct evbuffer *);

static void
metric_update(const char *name, const char *labels, double v, int gauge)
{
	struct metric *m;
	char key[512];

	snprintf(key, sizeof(key), "%s%s%s%s", name, labels ? "{" : "",
	    labels ? labels : "", labels ? "}" : "");
	pthread_mutex_lock(&lock);
	if ((m = strmap_get(&reg, key)) == NULL) {
		if ((m = calloc(1, sizeof(*m))) == NULL ||
		    (m->key = strdup(key)) == NULL ||
		    (m->name = strdup(name)) == NULL ||
		    strmap_put(&reg, m->key, m) == -1) {
			pthread_mutex_unlock(&lock);
			if (m != NULL) {
				free(m->key);
				free(m->name);
				free(m);
			}
			return;
		}
		m->gauge = gauge;
		m->next = list;
		list = m;
	}
	if (gauge)
		m->v = v;
	else
		m->v += v;
	pthread_mutex_unlock(&lock);
}

void
metrics_counter_add(const char *name, const char *labels, double v)
{
	metric_update(name, labels, v, 0);
}

void
metrics_gauge_set(const char *name, const char *labels, double v)
{
	metric_update(name, labels, v, 1);
}

void
metrics_set_extra(void (*fn)(struct evbuffer *out))
{
	extra = fn;
}

#define C(name, help, field) \
	evbuffer_add_printf(out, "# HELP " name " " help "\n# TYPE " name \
	    " counter\n" name " %" PRIu64 "\n", stats.field)
#define G(name, help, field) \
	evbuffer_add_printf(out, "# HELP " name " " help "\n# TYPE " name \
	    " gauge\n" name " %" PRId64 "\n", stats.field)

void
metrics_render(struct evbuffer *out)
{
	struct metric *m;

	C("parley_connections_total", "Connections accepted.",
	    connections_total);
	G("parley_connections", "Open connections (HTTP, WebSocket, STOMP).",
	    connections_open);
	G("parley_stomp_sessions", "Connected STOMP sessions.", stomp_sessions);
	C("parley_frames_in_total", "STOMP frames received.", frames_in);
	C("parley_frames_out_total", "STOMP frames sent.", frames_out);
	C("parley_messages_published_total", "Room messages accepted.",
	    messages_published);
	C("parley_deliveries_total", "MESSAGE frames queued to subscribers.",
	    deliveries);
	C("parley_bytes_in_total", "Bytes read from clients.", bytes_in);
	C("parley_bytes_out_total", "Bytes queued to clients.", bytes_out);
	C("parley_http_requests_total", "HTTP requests.", http_requests);
	C("parley_resumes_total", "Subscriptions that resumed.", resumes);
	C("parley_resumes_unrecovered_total",
	    "Resumes that could not prove completeness.", resumes_unrecovered);
	evbuffer_add_printf(out, "# HELP parley_errors_total Errors by kind.\n"
	    "# TYPE parley_errors_total counter\n");
	evbuffer_add_printf(out, "parley_errors_total{kind=\"protocol\"} %" PRIu64
	    "\nparley_errors_total{kind=\"websocket\"} %" PRIu64
	    "\nparley_errors_total{kind=\"auth\"} %" PRIu64
	    "\nparley_errors_total{kind=\"heartbeat\"} %" PRIu64
	    "\nparley_errors_total{kind=\"slow_consumer\"} %" PRIu64
	    "\nparley_errors_total{kind=\"storage\"} %" PRIu64
	    "\nparley_errors_total{kind=\"http\"} %" PRIu64
	    "\nparley_errors_total{kind=\"accept\"} %" PRIu64 "\n",
	    stats.err_protocol, stats.err_ws, stats.err_auth,
	    stats.err_heartbeat, stats.slow_consumers, stats.err_storage,
	    stats.err_http, stats.err_accept);
	evbuffer_add_printf(out, "# HELP parley_log_lines_dropped_total Log "
	    "lines dropped because stderr was not read fast enough.\n"
	    "# TYPE parley_log_lines_dropped_total counter\n"
	    "parley_log_lines_dropped_total %" PRIu64 "\n", log_dropped());
	if (extra != NULL)
		extra(out);
	pthread_mutex_lock(&lock);
	/* one TYPE line per name, its samples together (few names: n^2) */
	for (m = list; m != NULL; m = m->next) {
		struct metric *o;
		int seen = 0;

		for (o = list; o != m; o = o->next)
			if (strcmp(o->name, m->name) == 0)
				seen = 1;
		if (seen)
			continue;
		evbuffer_add_printf(out, "# TYPE %s %s\n", m->name,
		    m->gauge ? "gauge" : "counter");
		for (o = m; o != NULL; o = o->next)
			if (strcmp(o->name, m->name) == 0)
				evbuffer_add_printf(out, "%s %.17g\n", o->key,
				    o->v);
	}
	pthread_mutex_unlock(&lock);
}
