/*
 * media.h - media upload and download under /api/v1/media.
 */
#ifndef PARLEY_MEDIA_H
#define PARLEY_MEDIA_H

struct conn;
struct http_req;
struct config;

void	media_config(struct config *c);
/* Handle a request whose path starts with /api/v1/media. */
void	media_handle(struct conn *c, struct http_req *r);

#endif
