/*
 * rest.h - the JSON REST API under /api/v1.
 */
#ifndef PARLEY_REST_H
#define PARLEY_REST_H

struct conn;
struct http_req;
struct config;

void	rest_config(struct config *c);
void	rest_handle(struct conn *c, struct http_req *r);

#endif
