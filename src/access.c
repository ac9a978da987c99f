/*
 * access.c - permissions and rate limits (see access.h).
 *
 * Permissions of a user in a room: the first [rooms] rule whose pattern
 * matches the room decides (who:perms pairs, first matching who wins), or
 * [permissions] default when none matches; grants from the auth plugin
 * ("room:perm+perm,room2:perm", '*' = any room, trailing '*' = prefix) add
 * to that; the moderator role adds moderate; the admin role has all.
 */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "access.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

struct who {
	char *who;		/* login, "@role" or "*" */
	unsigned perms;
};

struct rule {
	char *pattern;		/* lowercase; trailing '*' = prefix */
	struct who *whos;
	size_t nwho;
};

static struct config *cfg;
static unsigned perm_default;
static struct rule *rules;
static size_t nrules;

/* [limits] trusted_proxies: address blocks, IPv4 ones as v4-mapped v6 */
struct netblock {
	unsigned char addr[16];
	int bits;		/* prefix length over the 128 bits */
};
static struct netblock *proxies;
static size_t nproxies;

const char *
perm_name(unsigned perm)
{
	switch (perm) {
	case PERM_READ: return "read";
	case PERM_WRITE: return "write";
	case PERM_MODERATE: return "moderate";
	case PERM_ADMIN: return "admin";
	default: return "?";
	}
}

/* "read+write" / "read,write" (sep given) -> bits; -1 on an unknown name */
static int
parse_perms(const char *s, size_t len, unsigned *out)
{
	unsigned p = 0;
	size_t i = 0;

	while (i < len) {
		size_t j = i, n;

		while (j < len && s[j] != '+' && s[j] != ',')
			j++;
		n = j - i;
		while (n > 0 && isspace((unsigned char)s[i])) {
			i++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)s[i + n - 1]))
			n--;
		if (n == 4 && strncmp(s + i, "read", 4) == 0)
			p |= PERM_READ;
		else if (n == 5 && strncmp(s + i, "write", 5) == 0)
			p |= PERM_WRITE;
		else if (n == 8 && strncmp(s + i, "moderate", 8) == 0)
			p |= PERM_MODERATE;
		else if (n == 5 && strncmp(s + i, "admin", 5) == 0)
			p |= PERM_ADMIN;
		else if (n != 0)
			return -1;
		i = j + 1;
	}
	if (p & PERM_ADMIN)
		p |= PERM_READ | PERM_WRITE | PERM_MODERATE;
	*out = p;
	return 0;
}

static int
bad(const char *section, const char *key, const char *val, const char *why)
{
	fprintf(stderr, "parleyd: %s: [%s] %s = '%s': %s\n", cfg->file,
	    section, key, val, why);
	return -1;
}

static int
parse_rule(const char *key, const char *val, struct rule *r)
{
	const char *p = val;

	r->pattern = strdup(key);
	while (*p != '\0') {
		const char *e = strchr(p, ','), *colon;
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct who *w;
		char *who;

		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		if (n == 0) {
			p = e ? e + 1 : p + n;
			continue;
		}
		colon = memchr(p, ':', n);
		if (colon == NULL || colon == p)
			return bad("rooms", key, val, "expected who:perms pairs "
			    "(who = login, @role or *; perms = read+write+"
			    "moderate+admin)");
		w = realloc(r->whos, (r->nwho + 1) * sizeof(*w));
		if (w == NULL)
			return -1;
		r->whos = w;
		who = strndup(p, (size_t)(colon - p));
		while (who[0] != '\0' && isspace((unsigned char)
		    who[strlen(who) - 1]))
			who[strlen(who) - 1] = '\0';
		w[r->nwho].who = who;
		if (parse_perms(colon + 1, n - (size_t)(colon - p) - 1,
		    &w[r->nwho].perms) == -1) {
			free(who);
			return bad("rooms", key, val, "unknown permission "
			    "(allowed: read, write, moderate, admin)");
		}
		r->nwho++;
		p = e ? e + 1 : p + n;
	}
	return 0;
}

/* Text address to 16 bytes (IPv4 as ::ffff:a.b.c.d); 4 or 6, 0 if none. */
static int
addr_parse(const char *s, unsigned char out[16])
{
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		return 4;
	}
	if (inet_pton(AF_INET6, s, out) == 1)
		return 6;
	return 0;
}

static int
block_has(const struct netblock *b, const unsigned char a[16])
{
	int full = b->bits / 8, rest = b->bits % 8;

	if (memcmp(a, b->addr, (size_t)full) != 0)
		return 0;
	return rest == 0 ||
	    ((a[full] ^ b->addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* "addr[/bits], addr[/bits] ..." (commas or spaces) */
static int
parse_proxies(const char *list)
{
	const char *p = list;
	char tok[64], *slash, *end;
	size_t n;
	long bits;
	int fam;

	while (*p != '\0') {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (n >= sizeof(tok))
			return bad("limits", "trusted_proxies", list,
			    "an entry is too long for an address");
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n;
		if ((slash = strchr(tok, '/')) != NULL)
			*slash++ = '\0';
		struct netblock *nb = realloc(proxies,
		    (nproxies + 1) * sizeof(*nb));
		if (nb == NULL)
			return -1;
		proxies = nb;
		nb = &proxies[nproxies];
		if ((fam = addr_parse(tok, nb->addr)) == 0)
			return bad("limits", "trusted_proxies", list,
			    "not an IP address or address/prefix (for "
			    "example 127.0.0.1, 10.0.0.0/8, ::1)");
		nb->bits = 128;
		if (slash != NULL) {
			bits = strtol(slash, &end, 10);
			if (*slash == '\0' || *end != '\0' || bits < 0 ||
			    bits > (fam == 4 ? 32 : 128))
				return bad("limits", "trusted_proxies", list,
				    "prefix length out of range (IPv4 0..32, "
				    "IPv6 0..128)");
			nb->bits = (int)bits + (fam == 4 ? 96 : 0);
		}
		nproxies++;
	}
	return 0;
}

int
access_trusted_proxy(const char *ip)
{
	unsigned char a[16];
	size_t i;

	if (nproxies == 0 || addr_parse(ip, a) == 0)
		return 0;
	for (i = 0; i < nproxies; i++)
		if (block_has(&proxies[i], a))
			return 1;
	return 0;
}

void
access_client_ip(const char *peer, const char *xff, char *out,
    size_t outlen)
{
	char hop[64];
	const char *end, *start, *s;
	size_t n;
	unsigned char a[16];

	snprintf(out, outlen, "%s", peer);
	if (xff == NULL || !access_trusted_proxy(peer))
		return;
	/* from the right: every trusted hop passes the question on; what is
	 * not an address ends the walk at the last one that was */
	for (end = xff + strlen(xff); end > xff;
	    end = start > xff ? start - 1 : xff) {
		start = end;
		while (start > xff && start[-1] != ',')
			start--;
		s = start;
		n = (size_t)(end - start);
		while (n > 0 && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if (n == 0 || n >= sizeof(hop))
			return;
		memcpy(hop, s, n);
		hop[n] = '\0';
		if (addr_parse(hop, a) == 0)
			return;
		snprintf(out, outlen, "%s", hop);
		if (!access_trusted_proxy(hop))
			return;
	}
}

int
access_init(struct config *c)
{
	const char *const *keys;
	size_t n, i;

	cfg = c;
	if (parse_proxies(c->trusted_proxies) == -1)
		return -1;
	if (parse_perms(c->perm_default, strlen(c->perm_default),
	    &perm_default) == -1)
		return bad("permissions", "default", c->perm_default,
		    "unknown permission (allowed: read, write, moderate, "
		    "admin, comma-separated)");
	keys = config_section_keys(c, "rooms", &n);
	if (keys == NULL || n == 0)
		return 0;
	if ((rules = calloc(n, sizeof(*rules))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		const char *v = config_raw(c, "rooms", keys[i], "");

		if (parse_rule(keys[i], v, &rules[nrules]) == -1)
			return -1;
		nrules++;
	}
	return 0;
}

void
access_fini(void)
{
	size_t i, j;

	for (i = 0; i < nrules; i++) {
		for (j = 0; j < rules[i].nwho; j++)
			free(rules[i].whos[j].who);
		free(rules[i].whos);
		free(rules[i].pattern);
	}
	free(rules);
	rules = NULL;
	nrules = 0;
	free(proxies);
	proxies = NULL;
	nproxies = 0;
}

/* Case-insensitive match of room against pattern (trailing '*' = prefix,
 * "*" alone = any). */
static int
room_match(const char *pattern, size_t plen, const char *room)
{
	if (plen > 0 && pattern[plen - 1] == '*')
		return strncasecmp(pattern, room, plen - 1) == 0;
	return strlen(room) == plen && strncasecmp(pattern, room, plen) == 0;
}

/* Is role in the comma-separated list roles? */
static int
has_role(const char *roles, const char *role, size_t rlen)
{
	const char *p = roles;

	if (roles == NULL || rlen == 0)
		return 0;
	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		while (n > 0 && *p == ' ') {
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == rlen && strncmp(p, role, n) == 0)
			return 1;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

unsigned
access_perms(const char *login, const char *roles, const char *grants,
    const char *room)
{
	unsigned p = perm_default;
	size_t i, j;
	const char *g;

	if (has_role(roles, cfg->perm_admin_role,
	    strlen(cfg->perm_admin_role)))
		return PERM_READ | PERM_WRITE | PERM_MODERATE | PERM_ADMIN;
	for (i = 0; i < nrules; i++) {
		if (!room_match(rules[i].pattern, strlen(rules[i].pattern),
		    room))
			continue;
		p = 0;
		for (j = 0; j < rules[i].nwho; j++) {
			const char *w = rules[i].whos[j].who;

			if (strcmp(w, "*") == 0 || strcmp(w, login) == 0 ||
			    (w[0] == '@' && has_role(roles, w + 1,
			    strlen(w + 1)))) {
				p = rules[i].whos[j].perms;
				break;
			}
		}
		break;
	}
	/* grants: room:perm+perm,room2:perm */
	for (g = grants; g != NULL && *g != '\0';) {
		const char *e = strchr(g, ','), *colon;
		size_t n = e ? (size_t)(e - g) : strlen(g);
		unsigned gp;

		while (n > 0 && *g == ' ') {
			g++;
			n--;
		}
		colon = memchr(g, ':', n);
		if (colon != NULL && room_match(g, (size_t)(colon - g), room) &&
		    parse_perms(colon + 1, n - (size_t)(colon - g) - 1,
		    &gp) == 0)
			p |= gp;
		if (e == NULL)
			break;
		g = e + 1;
	}
	if (p & PERM_ADMIN)
		p |= PERM_READ | PERM_WRITE | PERM_MODERATE;
	if ((p & PERM_READ) && has_role(roles, cfg->perm_moderator_role,
	    strlen(cfg->perm_moderator_role)))
		p |= PERM_MODERATE;
	return p;
}

/* ------------------------------------------------------------ limits */

int
bucket_take(struct bucket *b, double rate, double burst, double n,
    int64_t now)
{
	if (rate <= 0)
		return 0;
	if (b->last_ms == 0) {
		b->tokens = burst;
		b->last_ms = now;
	}
	b->tokens += (double)(now - b->last_ms) * rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_ms = now;
	b->tokens -= n;
	if (b->tokens >= 0)
		return 0;
	return (int)(-b->tokens * 1000.0 / rate) + 1;
}

struct ipent {
	char ip[64];
	int open;
	struct bucket connects;
	int64_t last_log;
	/* lines about this address ([limits] log_lines_per_minute) */
	struct bucket lines;
	uint64_t held;		/* lines left out since held_since */
	int64_t held_since;
	int64_t summed;		/* when the last summary was written */
	char first[200];	/* the first line left out */
	struct ipent *dead;	/* next idle entry found by a walk */
};

static struct strmap ips;
static size_t nips;		/* entries in ips */

/* Forgotten after a minute with nothing open, left out or to refill. */
static int
ip_idle(const struct ipent *e, int64_t now)
{
	return e->open == 0 && e->held == 0 &&
	    now - e->connects.last_ms > 60000 && now - e->lines.last_ms > 60000;
}

#define IP_KEY_MAX	64

/*
 * The key an address is counted under: IPv4, and IPv4-mapped IPv6 (what a
 * dual-stack listener sees of an IPv4 client), as the IPv4 address; IPv6
 * by its first [limits] ipv6_prefix bits ("2001:db8:1:2::/64"), since one
 * host is usually given a /64 and may use any address in it.  Returns ip
 * itself or key.
 */
static const char *
ip_key(const char *ip, char *key, size_t len)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	unsigned char a[16];
	char txt[INET6_ADDRSTRLEN];
	int bits = cfg->ipv6_prefix, i;

	if (addr_parse(ip, a) != 6)
		return ip;
	if (memcmp(a, mapped, sizeof(mapped)) == 0) {
		if (inet_ntop(AF_INET, a + 12, key, (socklen_t)len) == NULL)
			return ip;
		return key;
	}
	if (bits >= 128)
		return ip;
	for (i = 0; i < 16; i++, bits -= 8)
		if (bits < 8)
			a[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
	if (inet_ntop(AF_INET6, a, txt, sizeof(txt)) == NULL)
		return ip;
	snprintf(key, len, "%s/%d", txt, cfg->ipv6_prefix);
	return key;
}

/* The entry of ip, made when there is none; NULL when out of memory. */
static struct ipent *
ip_get(const char *ip)
{
	struct ipent *e;

	if ((e = strmap_get(&ips, ip)) != NULL)
		return e;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	if (strmap_put(&ips, e->ip, e) == -1) {
		free(e);
		return NULL;
	}
	metrics_gauge_set("parley_client_addresses", NULL, (double)++nips);
	return e;
}

int
access_ip_admit(const char *ip)
{
	struct ipent *e;
	int64_t now = mono_ms();
	const char *why = NULL;
	char key[IP_KEY_MAX];

	if (cfg->ip_max_connections == 0 && cfg->ip_connect_rate == 0)
		return 0;
	ip = ip_key(ip, key, sizeof(key));
	if ((e = ip_get(ip)) == NULL)
		return 0;
	if (cfg->ip_max_connections > 0 && e->open >= cfg->ip_max_connections)
		why = "too many open connections from this address";
	else if (bucket_take(&e->connects, cfg->ip_connect_rate,
	    cfg->ip_connect_burst, 1, now) > 0)
		why = "too many new connections per second from this address";
	if (why != NULL) {
		metrics_counter_add("parley_limit_hits_total",
		    e->open >= cfg->ip_max_connections && cfg->ip_max_connections
		    ? "limit=\"ip_connections\"" : "limit=\"ip_connect_rate\"",
		    1);
		if (now - e->last_log >= 10000 || e->last_log == 0) {
			e->last_log = now;
			log_warn("%s: refusing connection: %s (see [limits])",
			    ip, why);
		}
		return -1;
	}
	e->open++;
	return 0;
}

void
access_ip_release(const char *ip)
{
	struct ipent *e;
	char key[IP_KEY_MAX];

	ip = ip_key(ip, key, sizeof(key));
	if ((e = strmap_get(&ips, ip)) != NULL && e->open > 0)
		e->open--;
}

/* ------------------------------------------------------------ client lines */

/*
 * What one client address makes the server log (bad frames, failed logins,
 * refusals, closes) is limited to [limits] log_lines_per_minute a minute,
 * as many at once: a client that sends garbage as fast as it may connect
 * cannot flood the log.  The rest are counted: the first one left out
 * says so, and a minute later one line gives the count and the first line
 * left out.  Only the loop thread uses the table; a line from elsewhere is
 * written as it is.
 */
#define SUM_AFTER_MS	60000	/* a summary covers this long */
#define SUM_TICK_MS	5000	/* how often summaries are looked for */

static struct event *sum_ev;
static pthread_t loop_thread;
static int started;

struct sumwalk {
	int64_t now;
	int force;		/* every summary now (at exit) */
	struct ipent *dead;	/* idle entries, freed after the walk */
};

static void
summary(struct ipent *e, int64_t now)
{
	log_warn("%s: %" PRIu64 " more line%s about this address in the last "
	    "%" PRId64 " s not logged ([limits] log_lines_per_minute = %d); "
	    "the first: %s", e->ip, e->held, e->held == 1 ? "" : "s",
	    (now - e->held_since + 999) / 1000, cfg->log_lines_per_minute,
	    e->first);
	e->held = 0;
	e->summed = now;
}

static void
sum_one(const char *key, void *value, void *arg)
{
	struct ipent *e = value;
	struct sumwalk *w = arg;

	(void)key;
	if (e->held > 0 && (w->force || w->now - e->held_since >= SUM_AFTER_MS))
		summary(e, w->now);
	else if (ip_idle(e, w->now)) {
		e->dead = w->dead;
		w->dead = e;
	}
}

static void
sum_walk(int force)
{
	struct sumwalk w;
	struct ipent *e;

	w.now = mono_ms();
	w.force = force;
	w.dead = NULL;
	strmap_foreach(&ips, sum_one, &w);
	/* every idle entry, however many addresses came and went */
	while ((e = w.dead) != NULL) {
		w.dead = e->dead;
		strmap_del(&ips, e->ip);
		free(e);
		nips--;
	}
	metrics_gauge_set("parley_client_addresses", NULL, (double)nips);
}

static void
sum_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sum_walk(0);
}

int
access_start(struct event_base *base)
{
	struct timeval tv = { SUM_TICK_MS / 1000, 0 };

	loop_thread = pthread_self();
	if ((sum_ev = event_new(base, -1, EV_PERSIST, sum_cb, NULL)) == NULL ||
	    event_add(sum_ev, &tv) == -1)
		return -1;
	started = 1;
	return 0;
}

void
access_stop(void)
{
	if (!started)
		return;
	started = 0;
	sum_walk(1);		/* the counts still due go out too */
	event_free(sum_ev);
	sum_ev = NULL;
}

void
access_log_client(int level, const char *ip, const char *fmt, ...)
{
	struct ipent *e;
	va_list ap;
	int64_t now;
	double per_min;
	char key[IP_KEY_MAX];

	if (level > log_level)
		return;
	va_start(ap, fmt);
	if (!started || cfg->log_lines_per_minute == 0 || ip == NULL ||
	    ip[0] == '\0' || !pthread_equal(pthread_self(), loop_thread) ||
	    (e = ip_get(ip_key(ip, key, sizeof(key)))) == NULL) {
		log_vmsg(level, NULL, fmt, ap);
		va_end(ap);
		return;
	}
	now = mono_ms();
	per_min = cfg->log_lines_per_minute;
	if (bucket_take(&e->lines, per_min / 60.0, per_min, 1, now) == 0) {
		log_vmsg(level, NULL, fmt, ap);
		va_end(ap);
		return;
	}
	e->lines.tokens += 1;	/* not logged: no debt either */
	metrics_counter_add("parley_log_lines_held_total", NULL, 1);
	if (e->held++ == 0) {
		e->held_since = now;
		(void)vsnprintf(e->first, sizeof(e->first), fmt, ap);
		/* once per flood, not once per minute of it */
		if (e->summed == 0 ||
		    now - e->summed > SUM_AFTER_MS + SUM_TICK_MS)
			log_warn("%s: over [limits] log_lines_per_minute (%d): "
			    "further lines about this address are counted, and "
			    "summed up once a minute", e->ip,
			    cfg->log_lines_per_minute);
	}
	va_end(ap);
}
