/*
 * access.h - who may do what: room permissions from [permissions], [rooms]
 * rules, roles and grants; and the rate limits of [limits].
 */
#ifndef PARLEY_ACCESS_H
#define PARLEY_ACCESS_H

#include <stdint.h>

struct config;

#define PERM_READ	0x01	/* subscribe, read history */
#define PERM_WRITE	0x02	/* send; edit and delete one's own */
#define PERM_MODERATE	0x04	/* edit/delete others', delete the room */
#define PERM_ADMIN	0x08	/* everything */

/* Parse [permissions] and [rooms]; on a bad rule print file/section/key and
 * return -1 (start-up stops, exit 2). */
int	 access_init(struct config *c);
void	 access_fini(void);

/* Effective permissions of an identity in room (admin implies all). */
unsigned access_perms(const char *login, const char *roles,
	    const char *grants, const char *room);
/* "read", "write", "moderate" or "admin" for one PERM_ bit. */
const char *perm_name(unsigned perm);

/* A token bucket. */
struct bucket {
	double tokens;
	int64_t last_ms;
};
/*
 * Take n tokens at rate/s with burst.  Returns 0 when within the limit,
 * otherwise the milliseconds until the bucket is back at zero (the tokens
 * are taken anyway: the debt is paid by waiting).  rate 0 = unlimited.
 */
int	 bucket_take(struct bucket *b, double rate, double burst, double n,
	    int64_t now_ms);

/* Per-IP admission on accept: 0 admit, -1 refuse (logged at most once per
 * IP per 10 s).  access_ip_release when the connection closes. */
int	 access_ip_admit(const char *ip);
void	 access_ip_release(const char *ip);

/* Is ip (text, v4 or v6) one of [limits] trusted_proxies? */
int	 access_trusted_proxy(const char *ip);
/*
 * The client behind a connection from peer: when peer is a trusted proxy,
 * the rightmost address in xff (X-Forwarded-For, may be NULL) that is not
 * a trusted proxy (the proxies append, so what is left of that is the
 * client's word, not a proxy's); otherwise peer.  Writes it to out.
 */
void	 access_client_ip(const char *peer, const char *xff, char *out,
	    size_t outlen);

/*
 * A log line about a client at address ip (its connection's ip): written
 * like log_msg while the address is within [limits] log_lines_per_minute;
 * past that counted, and summed up in one line a minute per address.
 * access_start begins the summaries (loop thread only); access_stop writes
 * the ones still due (at exit).
 */
struct event_base;
int	 access_start(struct event_base *base);
void	 access_stop(void);
void	 access_log_client(int level, const char *ip, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
#define log_client(ip, ...) access_log_client(PARLEY_LOG_INFO, ip, __VA_ARGS__)
#define log_client_warn(ip, ...) \
	access_log_client(PARLEY_LOG_WARN, ip, __VA_ARGS__)

#endif
