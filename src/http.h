/*
 * http.h - HTTP/1.1 on the main port: request parsing (libhttp-parser),
 * routing to WebSocket, REST, health, metrics and static files, responses.
 */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stddef.h>

struct conn;
struct config;
struct media_upload;

#define HTTP_MAX_HEADERS 64

struct http_header {
	char *name;		/* lowercased */
	char *value;
};

struct http_req {
	const char *method;
	int http_major, http_minor;
	char *url;		/* as sent */
	char *path;		/* decoded path, no query */
	char *query;		/* raw query string or NULL */
	struct http_header headers[HTTP_MAX_HEADERS];
	int nheaders;
	char *body;		/* NUL-terminated copy, may be NULL */
	size_t body_len;
	int keep_alive;
	/* POST /api/v1/media: the body streams here (media.c), not to body */
	struct media_upload *upload;
};

struct http_conn;

void	http_config(struct config *c);
struct http_conn *http_conn_new(struct conn *c);
void	http_conn_free(struct http_conn *h);
/* Parse what is in the connection's input buffer. */
void	http_input(struct conn *c);
/*
 * The connection sent nothing for [server] http_timeout_ms: within a
 * request 408 and close, between requests close; while the answer is
 * being made or sent (the client waits for us) reading goes on.  Returns
 * 0, or -1 when the connection should go at once.  (An answer the client
 * stops reading for as long ends the connection: conn.c.)
 */
int	http_timeout(struct conn *c);

/* Header value (name lowercase) or NULL. */
const char *http_header(const struct http_req *r, const char *name);
/* Decoded value of a query parameter into out; 1 found, 0 not. */
int	http_query(const struct http_req *r, const char *name, char *out,
	    size_t outlen);

/*
 * Answer the current request.  A handler that cannot answer at once calls
 * http_defer() and later http_respond() (the connection is kept alive by a
 * reference until then).  extra is NULL or extra header lines, each ending
 * in "\r\n".
 */
void	http_defer(struct conn *c);
void	http_respond(struct conn *c, int status, const char *ctype,
	    const char *extra, const void *body, size_t len);
/*
 * Like http_respond with the body read from fd (len bytes from offset 0,
 * sent with sendfile; fd is closed when sent).  A HEAD request gets the
 * headers only.
 */
void	http_respond_file(struct conn *c, int status, const char *ctype,
	    const char *extra, int fd, int64_t len);
/* JSON error body {"error": code-ish, "message": msg}. */
void	http_error(struct conn *c, int status, const char *msg);
const char *http_status_text(int status);

#endif
