/*
 * metrics.h - Prometheus text exposition.  Core counters are plain fields
 * bumped on the loop thread; plugin metrics go through a locked registry.
 */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stdint.h>

struct evbuffer;

struct core_stats {
	uint64_t connections_total;	/* accepted */
	int64_t connections_open;	/* open now, any transport */
	int64_t stomp_sessions;		/* CONNECTED sessions */
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t messages_published;
	uint64_t deliveries;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t http_requests;
	uint64_t slow_consumers;	/* disconnected for max_outbound */
	uint64_t err_protocol;		/* STOMP protocol errors */
	uint64_t err_ws;		/* WebSocket errors */
	uint64_t err_auth;		/* failed authentications */
	uint64_t err_heartbeat;		/* peers dropped for silence */
	uint64_t err_storage;		/* failed batch writes */
	uint64_t err_http;		/* 4xx/5xx answers */
	uint64_t err_accept;		/* accept(2) failures */
	uint64_t resumes;
	uint64_t resumes_unrecovered;
};

extern struct core_stats stats;

/* Any thread. */
void	metrics_counter_add(const char *name, const char *labels, double v);
void	metrics_gauge_set(const char *name, const char *labels, double v);

/* Loop thread: append the whole exposition to out.  extra_fn, if set, is
 * called to add gauges computed on demand (queue bytes, rooms...). */
void	metrics_render(struct evbuffer *out);
void	metrics_set_extra(void (*fn)(struct evbuffer *out));

#endif
