/*
 * media.h - media upload and download under /api/v1/media, and the check
 * that a message's media-id refers to media its sender may share.
 *
 *   POST   /api/v1/media[?name=FILE][&room=ROOM]   raw body or
 *          multipart/form-data with one file part -> 201 {id, url, size,
 *          content_type, sha256, name}
 *   GET    /api/v1/media/{id}      the file (fs) or 302 to a presigned URL
 *   HEAD   /api/v1/media/{id}
 *   DELETE /api/v1/media/{id}      the uploader or an admin
 *
 * Upload bodies never sit in memory whole: http.c hands each piece to
 * media_upload_data() as it is parsed; it goes to a spool file (written on
 * worker threads, reading from the client paused while the writer lags),
 * is hashed and sniffed on the way, and is given to the media plugin once
 * complete.  Everything blocking runs on workers.
 */
#ifndef PARLEY_MEDIA_H
#define PARLEY_MEDIA_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct http_req;
struct config;
struct media_upload;

/*
 * Read the [media] keys (max_size, allowed_types) with config_raw.  On a
 * bad value print "FILE: [media] key = 'value': why" and return -1 (the
 * caller stops start-up); 0 otherwise.
 */
int	media_config(struct config *c);

/* Handle a request whose path starts with /api/v1/media. */
void	media_handle(struct conn *c, struct http_req *r);

/*
 * Streaming uploads (http.c, loop thread).  media_upload_path: 1 when a
 * POST to path is an upload.  media_upload_begin is called when the
 * request's headers are parsed (content_length -1 = unknown); it returns
 * the upload that receives the body, or NULL (no media plugin, out of
 * memory: the body is then handled as any other).  media_upload_accepting
 * is 0 when the upload is already refused (too large...): no
 * "100 Continue".  media_upload_data takes each piece of the decoded body
 * (copied or moved, never kept by reference).  The request owns the
 * upload until media_handle takes it; media_upload_free drops it (the
 * connection went away, or the request was answered without it) and
 * removes whatever was spooled.
 */
int	media_upload_path(const char *path);
struct media_upload *media_upload_begin(struct conn *c, struct http_req *r,
	    int64_t content_length);
int	media_upload_accepting(const struct media_upload *u);
void	media_upload_data(struct media_upload *u, const char *data,
	    size_t len);
void	media_upload_free(struct media_upload *u);

/*
 * A message from login (with roles and grants) to room refers to media id
 * (STOMP media-id header).  Decide whether it may: the media exists, and
 * login uploaded it or may read a room it was already shared in.  done is
 * called exactly once on the loop, possibly before media_share returns:
 * status 0 allowed (room is recorded with the media, so people who may
 * read room may fetch it), -1 refused with why ("no such media", ...),
 * -2 media storage unavailable (why says what failed).  Loop thread.
 */
typedef void (*media_share_cb)(void *arg, int status, const char *why);
void	media_share(const char *id, const char *room, const char *login,
	    const char *roles, const char *grants, media_share_cb done,
	    void *arg);

/* 1 if id is a well-formed media id ([A-Za-z0-9_-], 1..64 bytes). */
int	media_id_valid(const char *id);

/*
 * Defined in rest.c (appended there for media.c): Authorization Basic or
 * Bearer of r.  Sets *login and *pass, or *bearer (malloc'ed, the caller
 * frees; NULL when absent).  Returns 0, or -1 when the header is
 * malformed.
 */
int	rest_credentials(struct http_req *r, char **login, char **pass,
	    char **bearer);

#endif
