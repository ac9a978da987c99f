/*
 * media.c - media REST endpoints (to be completed: issue 6).
 */
#include "conn.h"
#include "http.h"
#include "media.h"

static struct config *cfg;

void
media_config(struct config *c)
{
	cfg = c;
}

void
media_handle(struct conn *c, struct http_req *r)
{
	(void)r;
	(void)cfg;
	http_error(c, 501, "media upload is not implemented yet");
}
