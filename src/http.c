/*
 * http.c - HTTP/1.1 requests on the main port, parsed by libhttp-parser.
 * One request is handled at a time per connection (the parser pauses after
 * each); pipelined requests wait in the input buffer.
 */
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <http_parser.h>
#include <jansson.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "http.h"
#include "access.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "plugin.h"
#include "batcher.h"
#include "rest.h"
#include "session.h"
#include "ws.h"

struct http_conn {
	http_parser parser;
	struct conn *c;
	struct http_req req;
	struct evbuffer *field;	/* header name being read */
	struct evbuffer *value;	/* header value being read */
	struct evbuffer *url;
	struct evbuffer *body;
	int in_value;
	int complete;		/* a whole request is parsed */
	int pending;		/* its answer is not written yet */
	int too_large;
	int too_many_headers;
	int begun;		/* a request's first byte came */
};

static struct config *cfg;
static http_parser_settings settings;

void
http_config(struct config *c)
{
	cfg = c;
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void
req_reset(struct http_conn *h)
{
	int i;

	for (i = 0; i < h->req.nheaders; i++) {
		free(h->req.headers[i].name);
		free(h->req.headers[i].value);
	}
	free(h->req.url);
	free(h->req.path);
	free(h->req.query);
	free(h->req.body);
	if (h->req.upload != NULL)
		media_upload_free(h->req.upload);
	memset(&h->req, 0, sizeof(h->req));
	evbuffer_drain(h->field, evbuffer_get_length(h->field));
	evbuffer_drain(h->value, evbuffer_get_length(h->value));
	evbuffer_drain(h->url, evbuffer_get_length(h->url));
	evbuffer_drain(h->body, evbuffer_get_length(h->body));
	h->in_value = 0;
	h->complete = 0;
	h->too_large = 0;
	h->too_many_headers = 0;
	h->begun = 0;
}

static char *
buf_str(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void
header_done(struct http_conn *h)
{
	char *name, *p;

	if (evbuffer_get_length(h->field) == 0)
		return;
	if (h->req.nheaders == HTTP_MAX_HEADERS) {
		h->too_many_headers = 1;
		evbuffer_drain(h->field, evbuffer_get_length(h->field));
		evbuffer_drain(h->value, evbuffer_get_length(h->value));
		return;
	}
	name = buf_str(h->field);
	for (p = name; p != NULL && *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	h->req.headers[h->req.nheaders].name = name;
	h->req.headers[h->req.nheaders].value = buf_str(h->value);
	h->req.nheaders++;
}

static int
on_message_begin(http_parser *p)
{
	struct http_conn *h = p->data;

	req_reset(h);
	h->begun = 1;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *h = p->data;

	if (evbuffer_get_length(h->url) + len > 8192)
		return -1;
	evbuffer_add(h->url, at, len);
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *h = p->data;

	if (h->in_value) {
		header_done(h);
		h->in_value = 0;
	}
	evbuffer_add(h->field, at, len);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *h = p->data;

	h->in_value = 1;
	if (evbuffer_get_length(h->value) + len > (size_t)cfg->max_header)
		return -1;
	evbuffer_add(h->value, at, len);
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode n bytes of s (plus as space if form); NULL if bad. */
static char *
pct_decode(const char *s, size_t n, int form)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			int a, b;

			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			a = hexval((unsigned char)s[i + 1]);
			b = hexval((unsigned char)s[i + 2]);
			if (a < 0 || b < 0 || (a == 0 && b == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(a * 16 + b);
			i += 2;
		} else if (form && s[i] == '+')
			*o++ = ' ';
		else
			*o++ = s[i];
	}
	*o = '\0';
	return out;
}

static int
on_headers_complete(http_parser *p)
{
	struct http_conn *h = p->data;
	struct http_parser_url u;
	char *url;

	if (h->in_value)
		header_done(h);
	h->in_value = 0;
	h->req.method = http_method_str(p->method);
	h->req.http_major = p->http_major;
	h->req.http_minor = p->http_minor;
	h->req.keep_alive = http_should_keep_alive(p);
	url = h->req.url = buf_str(h->url);
	http_parser_url_init(&u);
	if (url == NULL || http_parser_parse_url(url, strlen(url),
	    p->method == HTTP_CONNECT, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		h->req.path = NULL;
	} else {
		h->req.path = pct_decode(url + u.field_data[UF_PATH].off,
		    u.field_data[UF_PATH].len, 0);
		if (u.field_set & (1 << UF_QUERY))
			h->req.query = strndup(url +
			    u.field_data[UF_QUERY].off,
			    u.field_data[UF_QUERY].len);
	}
	/* media uploads stream to a spool file, never into memory */
	if (p->method == HTTP_POST && h->req.path != NULL &&
	    media_upload_path(h->req.path) &&
	    (h->req.upload = media_upload_begin(h->c, &h->req,
	    p->content_length == ULLONG_MAX ? -1 :
	    (int64_t)p->content_length)) != NULL) {
		const char *ex = http_header(&h->req, "expect");

		if (ex != NULL && strcasecmp(ex, "100-continue") == 0) {
			if (media_upload_accepting(h->req.upload))
				evbuffer_add(conn_output(h->c),
				    "HTTP/1.1 100 Continue\r\n\r\n", 25);
			else {
				/* refused before the body was sent: answer
				 * now (the client waits) and close after */
				h->req.keep_alive = 0;
				h->complete = 1;
				http_parser_pause(p, 1);
			}
		}
		return 0;
	}
	if (p->content_length != ULLONG_MAX && p->content_length > 0 &&
	    (int64_t)p->content_length > cfg->max_http_body)
		h->too_large = 1;
	/* an upgrade request has no body for us: stop here */
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *h = p->data;

	if (h->req.upload != NULL) {
		media_upload_data(h->req.upload, at, len);
		return 0;
	}
	if (h->too_large)
		return 0;
	if ((int64_t)(evbuffer_get_length(h->body) + len) > cfg->max_http_body) {
		h->too_large = 1;
		return 0;
	}
	evbuffer_add(h->body, at, len);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct http_conn *h = p->data;

	h->req.body_len = evbuffer_get_length(h->body);
	h->req.body = buf_str(h->body);
	h->complete = 1;
	http_parser_pause(p, 1);	/* one request at a time */
	return 0;
}

struct http_conn *
http_conn_new(struct conn *c)
{
	struct http_conn *h;

	if (settings.on_url == NULL) {
		settings.on_message_begin = on_message_begin;
		settings.on_url = on_url;
		settings.on_header_field = on_header_field;
		settings.on_header_value = on_header_value;
		settings.on_headers_complete = on_headers_complete;
		settings.on_body = on_body;
		settings.on_message_complete = on_message_complete;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	http_parser_init(&h->parser, HTTP_REQUEST);
	h->parser.data = h;
	h->field = evbuffer_new();
	h->value = evbuffer_new();
	h->url = evbuffer_new();
	h->body = evbuffer_new();
	h->c = c;
	return h;
}

void
http_conn_free(struct http_conn *h)
{
	req_reset(h);
	evbuffer_free(h->field);
	evbuffer_free(h->value);
	evbuffer_free(h->url);
	evbuffer_free(h->body);
	free(h);
}

const char *
http_header(const struct http_req *r, const char *name)
{
	int i;

	for (i = 0; i < r->nheaders; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

int
http_query(const struct http_req *r, const char *name, char *out,
    size_t outlen)
{
	const char *p = r->query;
	size_t nl = strlen(name);

	while (p != NULL && *p != '\0') {
		const char *e = strchr(p, '&');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			char *v = pct_decode(p + nl + 1, n - nl - 1, 1);

			if (v == NULL)
				return 0;
			snprintf(out, outlen, "%s", v);
			free(v);
			return 1;
		} else if (n == nl && strncmp(p, name, nl) == 0) {
			if (outlen > 0)
				out[0] = '\0';
			return 1;
		}
		p = e ? e + 1 : NULL;
	}
	return 0;
}

/* ------------------------------------------------------------ responses */

static void
respond_raw(struct conn *c, int status, const char *ctype, const char *extra,
    const void *body, size_t len, int keep_alive)
{
	struct evbuffer *out;

	if (c->closed || c->bev == NULL)
		return;
	out = conn_output(c);
	if (status >= 400)
		stats.err_http++;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: parley/%s\r\n"
	    "Content-Length: %zu\r\n%s%s%s%s%s\r\n", status,
	    http_status_text(status), PACKAGE_VERSION, len,
	    ctype ? "Content-Type: " : "", ctype ? ctype : "",
	    ctype ? "\r\n" : "", keep_alive ? "" : "Connection: close\r\n",
	    extra ? extra : "");
	if (len > 0)
		evbuffer_add(out, body, len);
}

/* The current request is answered: close, or get ready for the next. */
static void
http_finish(struct conn *c, int was_pending)
{
	struct http_conn *h = c->http;

	if (h == NULL || c->closed)
		return;
	if (!h->req.keep_alive) {
		conn_close(c, 1000, "HTTP request done");
		return;
	}
	req_reset(h);
	http_parser_pause(&h->parser, 0);
	/* a deferred answer: resume parsing pipelined requests */
	if (was_pending &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

void
http_respond(struct conn *c, int status, const char *ctype,
    const char *extra, const void *body, size_t len)
{
	struct http_conn *h = c->http;
	int was_pending;

	if (h == NULL || c->closed) {
		/* the connection went away while a deferred answer was
		 * being made: drop the reference http_defer took */
		conn_unref(c);
		return;
	}
	respond_raw(c, status, ctype, extra, body, len, h->req.keep_alive);
	was_pending = h->pending;
	h->pending = 0;
	http_finish(c, was_pending);
	if (was_pending)
		conn_unref(c);
}

void
http_respond_file(struct conn *c, int status, const char *ctype,
    const char *extra, int fd, int64_t len)
{
	struct http_conn *h = c->http;
	struct evbuffer *out;
	int was_pending;

	if (h == NULL || c->closed || c->bev == NULL) {
		close(fd);
		conn_unref(c);		/* as http_respond */
		return;
	}
	out = conn_output(c);
	if (status >= 400)
		stats.err_http++;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: parley/%s\r\n"
	    "Content-Length: %lld\r\n%s%s%s%s%s\r\n", status,
	    http_status_text(status), PACKAGE_VERSION, (long long)len,
	    ctype ? "Content-Type: " : "", ctype ? ctype : "",
	    ctype ? "\r\n" : "", h->req.keep_alive ? "" :
	    "Connection: close\r\n", extra ? extra : "");
	if (strcmp(h->req.method, "HEAD") == 0 || len == 0)
		close(fd);
	else if (evbuffer_add_file(out, fd, 0, len) == -1) {
		/* the headers are out: the peer sees a short body */
		close(fd);
		h->req.keep_alive = 0;
	}
	was_pending = h->pending;
	h->pending = 0;
	http_finish(c, was_pending);
	if (was_pending)
		conn_unref(c);
}

void
http_defer(struct conn *c)
{
	c->http->pending = 1;
	conn_ref(c);
}

/* A JSON error answer with extra header lines ("Name: value\r\n"...). */
static void
http_error_hdr(struct conn *c, int status, const char *msg, const char *extra)
{
	json_t *j = json_pack("{s:i, s:s}", "status", status, "error", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	http_respond(c, status, "application/json", extra, s ? s : "{}",
	    s ? strlen(s) : 2);
	free(s);
	json_decref(j);
}

void
http_error(struct conn *c, int status, const char *msg)
{
	http_error_hdr(c, status, msg, NULL);
}

/* ------------------------------------------------------------ routes */

static void
serve_upgrade(struct conn *c, struct http_req *r)
{
	struct ws_request wr;
	struct ws_answer ans;
	struct evbuffer *out = conn_output(c);
	char bearer[8192];
	const char *auth;
	const char *protos = NULL;
	char *joined = NULL;
	int i;
	size_t jl = 0;

	/* several Sec-WebSocket-Protocol lines are one list */
	for (i = 0; i < r->nheaders; i++) {
		if (strcmp(r->headers[i].name, "sec-websocket-protocol") != 0)
			continue;
		size_t vl = strlen(r->headers[i].value);
		char *n = realloc(joined, jl + vl + 2);

		if (n == NULL)
			break;
		joined = n;
		if (jl > 0)
			joined[jl++] = ',';
		memcpy(joined + jl, r->headers[i].value, vl + 1);
		jl += vl;
	}
	protos = joined;
	memset(&wr, 0, sizeof(wr));
	wr.method = r->method;
	wr.http_major = r->http_major;
	wr.http_minor = r->http_minor;
	wr.upgrade = http_header(r, "upgrade");
	wr.connection = http_header(r, "connection");
	wr.key = http_header(r, "sec-websocket-key");
	wr.version = http_header(r, "sec-websocket-version");
	wr.protocols = protos;
	wr.origin = http_header(r, "origin");
	if (ws_check_upgrade(&wr, cfg->origins, &ans) == -1) {
		stats.err_ws++;
		log_client(c->ip, "%s: WebSocket upgrade refused (%d): %s",
		    c->peer, ans.status, ans.error);
		r->keep_alive = 0;
		/* 426 names what to upgrade to (RFC 7231 6.5.15) and the
		 * WebSocket version we speak (RFC 6455 4.4) */
		http_error_hdr(c, ans.status, ans.error, ans.status == 426 ?
		    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" :
		    NULL);
		free(joined);
		return;
	}
	free(joined);
	/* behind a trusted proxy the per-IP limits apply to its client */
	if (conn_admit_client(c, http_header(r, "x-forwarded-for")) == -1) {
		r->keep_alive = 0;
		http_error(c, 429, "too many connections from this address");
		return;
	}
	bearer[0] = '\0';
	auth = http_header(r, "authorization");
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0)
		snprintf(bearer, sizeof(bearer), "%s", auth + 7);
	else
		http_query(r, "access_token", bearer, sizeof(bearer));
	evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
	    ans.accept, ans.protocol);
	http_conn_free(c->http);
	c->http = NULL;
	if (conn_upgrade_ws(c, bearer[0] ? bearer : NULL) == -1)
		conn_close(c, 1011, "out of memory");
}

static void
serve_readyz(struct conn *c)
{
	char why[1024];
	int ok = plugins_ready(why, sizeof(why));
	json_t *j;
	char *s;

	j = json_pack("{s:s, s:I}", "status", ok ? "ready" : "not ready",
	    "storage_backlog", (json_int_t)batcher_backlog());
	if (!ok)
		json_object_set_new(j, "reason", json_string(why));
	s = json_dumps(j, JSON_COMPACT);
	http_respond(c, ok ? 200 : 503, "application/json", NULL, s, strlen(s));
	free(s);
	json_decref(j);
}

static void
serve_metrics(struct conn *c)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	metrics_render(b);
	n = evbuffer_get_length(b);
	s = (char *)evbuffer_pullup(b, -1);
	http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
	    s, n);
	evbuffer_free(b);
}

static const char *
mime_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot == NULL)
		return "application/octet-stream";
	if (strcmp(dot, ".html") == 0)
		return "text/html; charset=utf-8";
	if (strcmp(dot, ".js") == 0 || strcmp(dot, ".mjs") == 0)
		return "text/javascript; charset=utf-8";
	if (strcmp(dot, ".css") == 0)
		return "text/css; charset=utf-8";
	if (strcmp(dot, ".svg") == 0)
		return "image/svg+xml";
	if (strcmp(dot, ".png") == 0)
		return "image/png";
	if (strcmp(dot, ".json") == 0)
		return "application/json";
	if (strcmp(dot, ".txt") == 0)
		return "text/plain; charset=utf-8";
	return "application/octet-stream";
}

static void
serve_static(struct conn *c, struct http_req *r)
{
	char path[4096];
	const char *p = r->path;
	struct stat st;
	int fd;
	struct evbuffer *out;

	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
		http_error(c, 405, "method not allowed");
		return;
	}
	if (cfg->web_root[0] == '\0' || strstr(p, "..") != NULL ||
	    strchr(p, '\\') != NULL) {
		http_error(c, 404, "not found");
		return;
	}
	if (strcmp(p, "/") == 0)
		p = "/index.html";
	snprintf(path, sizeof(path), "%s%s", cfg->web_root, p);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		if (fd != -1)
			close(fd);
		http_error(c, 404, "not found");
		return;
	}
	out = conn_output(c);
	evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nServer: parley/%s\r\n"
	    "Content-Type: %s\r\nContent-Length: %lld\r\n"
	    "X-Content-Type-Options: nosniff\r\n%s\r\n", PACKAGE_VERSION,
	    mime_type(path), (long long)st.st_size,
	    r->keep_alive ? "" : "Connection: close\r\n");
	if (strcmp(r->method, "HEAD") == 0 || st.st_size == 0)
		close(fd);
	else
		evbuffer_add_file(out, fd, 0, st.st_size);
	http_finish(c, 0);
}

static void
route(struct conn *c, struct http_req *r)
{
	const char *p = r->path;

	stats.http_requests++;
	if (p == NULL) {
		r->keep_alive = 0;
		http_error(c, 400, "malformed request target");
		return;
	}
	if (c->http->too_many_headers) {
		r->keep_alive = 0;
		http_error(c, 431, "too many header fields");
		return;
	}
	if (c->http->too_large) {
		r->keep_alive = 0;
		http_error(c, 413, "request body too large");
		return;
	}
	if (strcmp(p, "/ws") == 0) {
		serve_upgrade(c, r);
		return;
	}
	if (c->http->parser.upgrade) {
		r->keep_alive = 0;
		http_error(c, 404, "no WebSocket endpoint here; use /ws");
		return;
	}
	if (strcmp(p, "/healthz") == 0) {
		http_respond(c, 200, "application/json", NULL,
		    "{\"status\":\"ok\"}", 15);
		return;
	}
	if (strcmp(p, "/readyz") == 0) {
		serve_readyz(c);
		return;
	}
	if (strcmp(p, "/metrics") == 0) {
		serve_metrics(c);
		return;
	}
	if (strncmp(p, "/api/", 5) == 0) {
		rest_handle(c, r);
		return;
	}
	serve_static(c, r);
}

int
http_timeout(struct conn *c)
{
	struct http_conn *h = c->http;

	if (h == NULL || c->closed || c->closing || c->bev == NULL)
		return -1;
	if (h->pending ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		/* our answer is late or still going out, not the client's
		 * fault: keep reading (the write timeout watches a client
		 * that stops reading the answer) */
		bufferevent_enable(c->bev, EV_READ);
		return 0;
	}
	if (!h->begun && evbuffer_get_length(bufferevent_get_input(c->bev))
	    == 0) {
		log_debug("%s: idle HTTP connection closed after %d ms",
		    c->peer, cfg->http_timeout_ms);
		metrics_counter_add("parley_connections_timed_out_total",
		    "reason=\"http_idle\"", 1);
		conn_close(c, 1000, "idle");
		return 0;
	}
	log_client(c->ip, "%s: HTTP request not complete after %d ms of "
	    "silence: 408", c->peer, cfg->http_timeout_ms);
	metrics_counter_add("parley_connections_timed_out_total",
	    "reason=\"http_request\"", 1);
	h->req.keep_alive = 0;
	http_error(c, 408, "request timeout: nothing came for "
	    "[server] http_timeout_ms");
	return 0;
}

void
http_input(struct conn *c)
{
	struct evbuffer *in;

	while (c->http != NULL && !c->closed && !c->closing &&
	    !c->http->pending) {
		struct http_conn *h = c->http;
		size_t len, n;
		char *data;
		enum http_errno err;

		in = bufferevent_get_input(c->bev);
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		data = (char *)evbuffer_pullup(in, -1);
		n = http_parser_execute(&h->parser, &settings, data, len);
		err = HTTP_PARSER_ERRNO(&h->parser);
		evbuffer_drain(in, n);
		if (err != HPE_OK && err != HPE_PAUSED) {
			h->req.keep_alive = 0;
			log_client(c->ip, "%s: bad HTTP request: %s", c->peer,
			    http_errno_description(err));
			http_error(c, err == HPE_CB_header_value ? 431 : 400,
			    http_errno_description(err));
			return;
		}
		if (!h->complete)
			return;		/* need more bytes */
		h->complete = 0;
		route(c, &h->req);
		if (c->kind == CONN_WS) {
			/* bytes after the upgrade are WebSocket frames */
			if (evbuffer_get_length(in) > 0 && c->ws != NULL)
				ws_input(c);
			return;
		}
	}
}
