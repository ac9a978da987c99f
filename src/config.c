/*
 * config.c - the core configuration.
 *
 * Every core key is one row of keytab[] below: its section, name, type,
 * default, limits and place in struct config.  Loading, validation,
 * defaults, the error messages and config_key_info() (what tests and the
 * operator documentation are checked against) all come from that table, so
 * adding a key is adding a row (and a field in struct config).
 *
 * Self-contained: libc and iniparser only.  Everything is reported on
 * stderr, since the logger is configured from what this file returns.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <iniparser/iniparser.h>

#include "config.h"

#define PROGNAME	"parleyd"

enum key_type {
	KT_STRING,	/* any text */
	KT_PATH,	/* text; resolved against the config directory */
	KT_INT,		/* decimal integer in [min, max] */
	KT_SIZE,	/* bytes, suffix k, m, g = powers of 1024 */
	KT_MS,		/* duration in milliseconds, integer in [min, max] */
	KT_BOOL,	/* true/false/yes/no/on/off/1/0 */
	KT_ENUM,	/* one of names[]; stored as its index */
	KT_HOSTPORT,	/* host:port or [v6]:port */
	KT_NAME,	/* one plugin name, [a-z0-9_]+ */
	KT_NAMES	/* comma-separated plugin names, stored without spaces */
};

#define KF_EMPTY	0x01	/* "" is allowed (KT_HOSTPORT: off) */
#define KF_BUILD	0x02	/* the default is set at build time */

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	const char *def;	/* default, as it would be written in the file */
	long long min, max;	/* KT_INT, KT_SIZE, KT_MS */
	const char *const *names; /* KT_ENUM: allowed values, index = value */
	int flags;		/* KF_* */
	size_t off;		/* offset in struct config */
	size_t size;		/* size of that member */
	const char *what;	/* one line for operators */
};

#define F(m)	offsetof(struct config, m), sizeof(((struct config *)0)->m)

#define K	1024LL
#define M	(1024LL * 1024)
#define G	(1024LL * 1024 * 1024)

#ifdef PARLEY_PLUGIN_DIR
#define DEF_PLUGIN_DIR	PARLEY_PLUGIN_DIR
#else
#define DEF_PLUGIN_DIR	"plugins"
#endif
#ifdef PARLEY_WEB_ROOT
#define DEF_WEB_ROOT	PARLEY_WEB_ROOT
#else
#define DEF_WEB_ROOT	""
#endif

/* Index = enum parley_log_level (include/parley/plugin.h). */
static const char *const log_levels[] = {
	"error", "warn", "info", "debug", NULL
};

static const char *const tls_versions[] = { "1.2", "1.3", NULL };

static const struct key keytab[] = {
	{ "server", "listen", KT_HOSTPORT, "0.0.0.0:8080", 0, 0, NULL, 0,
	    F(listen), "HTTP listener: WebSocket at /ws, REST, metrics, web client" },
	{ "server", "stomp_listen", KT_HOSTPORT, "0.0.0.0:61613", 0, 0, NULL,
	    KF_EMPTY, F(stomp_listen), "plain STOMP over TCP; empty = off" },
	{ "server", "plugin_dir", KT_PATH, DEF_PLUGIN_DIR, 0, 0, NULL,
	    KF_BUILD, F(plugin_dir), "directory the plugin .so files are loaded from" },
	{ "server", "log_level", KT_ENUM, "info", 0, 0, log_levels, 0,
	    F(log_level), "least severe message logged" },
	{ "server", "origins", KT_STRING, "", 0, 0, NULL, KF_EMPTY,
	    F(origins), "comma-separated allowed WebSocket Origin values; empty = all" },
	{ "server", "web_root", KT_PATH, DEF_WEB_ROOT, 0, 0, NULL,
	    KF_EMPTY | KF_BUILD, F(web_root), "static files served at /; empty = none" },
	{ "server", "workers", KT_INT, "4", 1, 64, NULL, 0,
	    F(workers), "worker threads for blocking plugin work" },
	{ "server", "max_frame", KT_SIZE, "64k", 1 * K, 64 * M, NULL, 0,
	    F(max_frame), "largest STOMP frame or WebSocket message" },
	{ "server", "max_headers", KT_INT, "64", 1, 1024, NULL, 0,
	    F(max_headers), "most headers in one STOMP frame or HTTP request" },
	{ "server", "max_header", KT_SIZE, "8k", 256, 1 * M, NULL, 0,
	    F(max_header), "longest single header line" },
	{ "server", "max_outbound", KT_SIZE, "4m", 64 * K, 1 * G, NULL, 0,
	    F(max_outbound), "output queued for one connection before it is dropped as too slow" },
	{ "server", "max_http_body", KT_SIZE, "1m", 1 * K, 1 * G, NULL, 0,
	    F(max_http_body), "largest REST request body" },
	{ "server", "heartbeat_ms", KT_MS, "10000", 0, 3600000, NULL, 0,
	    F(heartbeat_ms), "STOMP heart-beat offered and wanted; 0 = none" },
	{ "server", "heartbeat_tolerance_pct", KT_INT, "50", 0, 1000, NULL, 0,
	    F(heartbeat_tolerance_pct), "grace on the peer's heart-beat interval, percent" },
	{ "server", "connect_timeout_ms", KT_MS, "10000", 100, 600000, NULL, 0,
	    F(connect_timeout_ms), "time a new connection has to send CONNECT" },
	{ "server", "http_timeout_ms", KT_MS, "75000", 1000, 3600000, NULL, 0,
	    F(http_timeout_ms), "an HTTP connection silent this long is closed (408 within a request)" },
	{ "server", "tcp_keepalive_ms", KT_MS, "60000", 0, 7200000, NULL, 0,
	    F(tcp_keepalive_ms), "TCP keepalive probes after this much silence; a peer that answers none is dropped (0 = off)" },
	{ "server", "max_subscriptions", KT_INT, "256", 1, 100000, NULL, 0,
	    F(max_subscriptions), "subscriptions per connection" },
	{ "server", "resume_max", KT_INT, "1000", 1, 100000, NULL, 0,
	    F(resume_max), "most messages one resume (since:) replays" },
	{ "server", "history_max", KT_INT, "500", 1, 100000, NULL, 0,
	    F(history_max), "largest history: n on SUBSCRIBE and REST limit" },
	{ "server", "presence_max", KT_INT, "1000", 0, 10000000, NULL, 0,
	    F(presence_max), "no join/leave events in rooms with more local subscribers (0 = always)" },
	{ "server", "gather_min", KT_INT, "1200", 0, 10000000, NULL, 0,
	    F(gather_min), "rooms with this many local subscribers send messages from one shared copy (0 = never)" },
	{ "server", "instance_id", KT_STRING, "", 0, 0, NULL, KF_EMPTY,
	    F(instance_id), "name of this instance among several (\"\" = hostname-pid)" },
	{ "server", "drain_timeout_ms", KT_MS, "5000", 0, 600000, NULL, 0,
	    F(drain_timeout_ms), "on SIGTERM, time to flush storage and close clients" },
	{ "backplane", "plugin", KT_NAME, "local", 0, 0, NULL, 0,
	    F(backplane), "backplane plugin: local, redis, kafka" },
	{ "storage", "plugin", KT_NAME, "sqlite", 0, 0, NULL, 0,
	    F(storage), "storage plugin: sqlite, mysql, mongodb" },
	{ "media", "plugin", KT_NAME, "fs", 0, 0, NULL, 0,
	    F(media), "media plugin: fs, s3" },
	{ "media", "max_size", KT_SIZE, "10m", 1, 64 * G, NULL, 0,
	    F(media_max_size), "largest upload (POST /api/v1/media)" },
	{ "media", "allowed_types", KT_STRING,
	    "image/*, video/*, audio/*, text/plain, application/pdf, application/zip, application/octet-stream",
	    0, 0, NULL, KF_EMPTY,
	    F(media_allowed_types), "content types an upload may have (type/* wildcards)" },
	{ "auth", "plugins", KT_NAMES, "open", 0, 0, NULL, 0,
	    F(auth_plugins), "auth chain, asked in order: users, jwt, open" },
	{ "auth", "allow_open", KT_BOOL, "true", 0, 0, NULL, 0,
	    F(auth_allow_open), "permit the open plugin (development only)" },
	{ "tls", "listen", KT_HOSTPORT, "", 0, 0, NULL, KF_EMPTY,
	    F(tls_listen), "HTTPS and wss:// listener with native TLS (\"\" = off)" },
	{ "tls", "stomp_listen", KT_HOSTPORT, "", 0, 0, NULL, KF_EMPTY,
	    F(tls_stomp_listen), "STOMP over TLS listener (\"\" = off)" },
	{ "tls", "cert", KT_PATH, "", 0, 0, NULL, KF_EMPTY,
	    F(tls_cert), "PEM certificate chain for the TLS listeners" },
	{ "tls", "key", KT_PATH, "", 0, 0, NULL, KF_EMPTY,
	    F(tls_key), "PEM private key for the TLS listeners" },
	{ "tls", "min_version", KT_ENUM, "1.2", 0, 0, tls_versions, 0,
	    F(tls_min_version), "oldest TLS version accepted" },
	{ "limits", "msg_rate", KT_INT, "50", 0, 1000000, NULL, 0,
	    F(msg_rate), "frames per second one connection may send (0 = no limit)" },
	{ "limits", "msg_burst", KT_INT, "100", 1, 1000000, NULL, 0,
	    F(msg_burst), "frames one connection may send at once above msg_rate" },
	{ "limits", "byte_rate", KT_SIZE, "1m", 0, 1 * G, NULL, 0,
	    F(byte_rate), "bytes per second one connection may send (0 = no limit)" },
	{ "limits", "byte_burst", KT_SIZE, "4m", 1 * K, 1 * G, NULL, 0,
	    F(byte_burst), "bytes one connection may send at once above byte_rate" },
	{ "limits", "throttle_max_ms", KT_MS, "5000", 100, 600000, NULL, 0,
	    F(throttle_max_ms), "a connection held back this long without pause is disconnected" },
	{ "limits", "ip_max_connections", KT_INT, "1000", 0, 10000000, NULL, 0,
	    F(ip_max_connections), "open connections per client IP (0 = no limit)" },
	{ "limits", "ip_connect_rate", KT_INT, "100", 0, 1000000, NULL, 0,
	    F(ip_connect_rate), "new connections per second per client IP (0 = no limit)" },
	{ "limits", "ip_connect_burst", KT_INT, "200", 1, 1000000, NULL, 0,
	    F(ip_connect_burst), "new connections at once per client IP above ip_connect_rate" },
	{ "limits", "ipv6_prefix", KT_INT, "64", 32, 128, NULL, 0,
	    F(ipv6_prefix), "IPv6 clients are counted per block of this many leading bits" },
	{ "limits", "log_lines_per_minute", KT_INT, "60", 0, 1000000, NULL, 0,
	    F(log_lines_per_minute), "log lines a minute about one client address, the rest summed up (0 = no limit)" },
	{ "limits", "trusted_proxies", KT_STRING, "", 0, 0, NULL, KF_EMPTY,
	    F(trusted_proxies), "addresses or CIDR blocks of reverse proxies whose X-Forwarded-For names the client" },
	{ "permissions", "default", KT_STRING, "read,write", 0, 0, NULL, KF_EMPTY,
	    F(perm_default), "what every authenticated user may do in rooms without a [rooms] rule" },
	{ "permissions", "admin_role", KT_STRING, "admin", 0, 0, NULL, KF_EMPTY,
	    F(perm_admin_role), "role with every permission in every room" },
	{ "permissions", "moderator_role", KT_STRING, "moderator", 0, 0, NULL, KF_EMPTY,
	    F(perm_moderator_role), "role that may moderate every room it can read" },
	{ "batch", "size", KT_INT, "256", 1, 100000, NULL, 0,
	    F(batch_size), "write-behind: flush after this many messages" },
	{ "batch", "interval_ms", KT_MS, "0", 0, 60000, NULL, 0,
	    F(batch_interval_ms), "write-behind: longest a message waits for others to join its batch (0: written as soon as storage is free)" },
	{ "batch", "max_pending", KT_INT, "100000", 1, 100000000, NULL, 0,
	    F(batch_max_pending), "unpersisted messages kept in memory at most" },
};
#define NKEYS	(sizeof(keytab) / sizeof(keytab[0]))

static const char *const core_sections[] = {
	"server", "backplane", "storage", "media", "auth", "batch", "limits",
	"permissions", "tls", NULL
};

/* Cached config_section_keys() answer for one section. */
struct seckeys {
	struct seckeys *next;
	char *section;
	char **keys;		/* NULL-terminated */
	size_t n;
};

/* struct config is the first member, so the two pointers are the same. */
struct config_priv {
	struct config pub;
	struct seckeys *seckeys;
};

static const char *const no_keys[] = { NULL };

static const char *
cfile(const struct config *c)
{
	return (c != NULL && c->file != NULL ? c->file : "(config)");
}

static void
oom(void)
{
	fprintf(stderr, PROGNAME ": out of memory\n");
}

/*
 * The one place a bad value is reported:
 * parleyd: FILE: [section] key = 'VALUE': WHY (allowed: ...)
 */
static void
report(const struct config *c, const char *section, const char *key,
    const char *val, const char *why, const char *fmt, ...)
{
	char allowed[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(allowed, sizeof(allowed), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROGNAME ": %s: [%s] %s = '%s': %s (allowed: %s)\n",
	    cfile(c), section, key, val, why, allowed);
}

/* Human form of a byte count: 65536 -> "64k". */
static void
fmt_size(long long v, char *buf, size_t len)
{
	if (v != 0 && v % G == 0)
		snprintf(buf, len, "%lldg", v / G);
	else if (v != 0 && v % M == 0)
		snprintf(buf, len, "%lldm", v / M);
	else if (v != 0 && v % K == 0)
		snprintf(buf, len, "%lldk", v / K);
	else
		snprintf(buf, len, "%lld", v);
}

/* Strict decimal: optional sign, digits, nothing else.  0 or -1. */
static int
scan_ll(const char *val, long long *out, const char **end)
{
	const char *p = val;
	char *ep;

	if (*p == '+' || *p == '-')
		p++;
	if (!isdigit((unsigned char)*p))
		return (-1);
	errno = 0;
	*out = strtoll(val, &ep, 10);
	if (errno == ERANGE)
		return (-2);
	*end = ep;
	return (0);
}

static int
parse_int_unit(const struct config *c, const char *section, const char *key,
    const char *val, long long min, long long max, const char *unit,
    long long *out)
{
	const char *end;
	long long v;
	int r;

	if (val == NULL)
		val = "";
	r = scan_ll(val, &v, &end);
	if (r == -1 || (r == 0 && *end != '\0')) {
		report(c, section, key, val, "not an integer", "%lld..%lld%s",
		    min, max, unit);
		return (-1);
	}
	if (r == -2 || v < min || v > max) {
		report(c, section, key, val, "out of range", "%lld..%lld%s",
		    min, max, unit);
		return (-1);
	}
	*out = v;
	return (0);
}

int
config_parse_int(const struct config *c, const char *section,
    const char *key, const char *val, long long min, long long max,
    long long *out)
{
	return (parse_int_unit(c, section, key, val, min, max, "", out));
}

int
config_parse_bool(const struct config *c, const char *section,
    const char *key, const char *val, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1", NULL };
	static const char *const no[] = { "false", "no", "off", "0", NULL };
	size_t i;

	if (val == NULL)
		val = "";
	for (i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(val, yes[i]) == 0) {
			*out = 1;
			return (0);
		}
		if (strcasecmp(val, no[i]) == 0) {
			*out = 0;
			return (0);
		}
	}
	report(c, section, key, val, "not a boolean",
	    "true, false, yes, no, on, off, 1, 0");
	return (-1);
}

int
config_parse_size(const struct config *c, const char *section,
    const char *key, const char *val, long long min, long long max,
    long long *out)
{
	char smin[32], smax[32];
	const char *end;
	long long v, mult = 1;
	int r;

	if (val == NULL)
		val = "";
	fmt_size(min, smin, sizeof(smin));
	fmt_size(max, smax, sizeof(smax));
	r = scan_ll(val, &v, &end);
	if (r == 0) {
		switch (*end) {
		case '\0':
			break;
		case 'k': case 'K':
			mult = K;
			end++;
			break;
		case 'm': case 'M':
			mult = M;
			end++;
			break;
		case 'g': case 'G':
			mult = G;
			end++;
			break;
		default:
			r = -1;
			break;
		}
		if (*end != '\0')
			r = -1;
	}
	if (r == -1) {
		report(c, section, key, val, "not a size",
		    "%s..%s bytes, suffix k, m, g = KiB, MiB, GiB", smin, smax);
		return (-1);
	}
	if (r == 0 && (v > LLONG_MAX / mult || v < LLONG_MIN / mult))
		r = -2;
	if (r == -2 || v * mult < min || v * mult > max) {
		report(c, section, key, val, "out of range",
		    "%s..%s bytes, suffix k, m, g = KiB, MiB, GiB", smin, smax);
		return (-1);
	}
	*out = v * mult;
	return (0);
}

/* NULL if val is a valid host:port, else why not. */
static const char *
check_hostport(const char *val)
{
	const char *colon, *p;
	long long port;
	const char *end;
	int zone;

	if (*val == '[') {
		p = strchr(val, ']');
		if (p == NULL)
			return ("unclosed [");
		if (p == val + 1)
			return ("empty address");
		/* Hex digits, ':' and '.', then maybe %zone (fe80::1%eth0). */
		zone = 0;
		for (colon = val + 1; colon < p; colon++) {
			if (*colon == '%' && !zone)
				zone = 1;
			else if (zone ? !isalnum((unsigned char)*colon) &&
			    *colon != '-' && *colon != '_' && *colon != '.' :
			    !isxdigit((unsigned char)*colon) && *colon != ':' &&
			    *colon != '.')
				return ("bad IPv6 address");
		}
		if (p[1] != ':')
			return ("missing :port");
		colon = p + 1;
	} else {
		colon = strchr(val, ':');
		if (colon == NULL)
			return ("missing :port");
		if (strchr(colon + 1, ':') != NULL)
			return ("IPv6 addresses need brackets");
		if (colon == val)
			return ("missing host");
		for (p = val; p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' &&
			    *p != '-' && *p != '_')
				return ("bad host name");
	}
	if (scan_ll(colon + 1, &port, &end) != 0 || *end != '\0' ||
	    colon[1] == '+' || colon[1] == '-')
		return ("port is not a number");
	if (port < 1 || port > 65535)
		return ("port out of range");
	return (NULL);
}

static int
valid_name(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '_')
			return (0);
	return (1);
}

/*
 * "users, jwt" -> "users,jwt" in a new string, or NULL with *why set.
 * *why is NULL and NULL returned when out of memory.
 */
static char *
normalize_names(const char *val, const char **why)
{
	const char *p, *e, *q;
	char *out, *o, *prev;
	size_t len;

	*why = NULL;
	if ((out = malloc(strlen(val) + 1)) == NULL)
		return (NULL);
	o = out;
	p = val;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		q = e;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		len = q - p;
		if (len == 0) {
			*why = "empty plugin name";
			goto bad;
		}
		if (!valid_name(p, len)) {
			*why = "invalid plugin name";
			goto bad;
		}
		/* Same name twice in the chain? */
		for (prev = out; prev < o; ) {
			size_t pl = strcspn(prev, ",");

			if (pl == len && strncmp(prev, p, len) == 0) {
				*why = "plugin listed twice";
				goto bad;
			}
			prev += pl + 1;
		}
		if (o != out)
			*o++ = ',';
		memcpy(o, p, len);
		o += len;
		*o = '\0';
		if (*e == '\0')
			break;
		p = e + 1;
	}
	return (out);
bad:
	free(out);
	return (NULL);
}

static int
has_name(const char *list, const char *name)
{
	size_t n = strlen(name), l;

	while (list != NULL && *list != '\0') {
		l = strcspn(list, ",");
		if (l == n && strncmp(list, name, n) == 0)
			return (1);
		list += l;
		if (*list == ',')
			list++;
	}
	return (0);
}

static char *
join_path(const char *dir, const char *path)
{
	size_t dl = strlen(dir), pl = strlen(path);
	char *out;

	while (pl >= 2 && path[0] == '.' && path[1] == '/') {
		path += 2;
		pl -= 2;
		while (*path == '/') {
			path++;
			pl--;
		}
	}
	if (pl == 0 || strcmp(path, ".") == 0)
		return (strdup(dir));
	if ((out = malloc(dl + 1 + pl + 1)) == NULL)
		return (NULL);
	memcpy(out, dir, dl);
	if (dl == 0 || dir[dl - 1] != '/')
		out[dl++] = '/';
	memcpy(out + dl, path, pl + 1);
	return (out);
}

char *
config_resolve(const struct config *c, const char *path)
{
	if (path == NULL)
		return (NULL);
	if (*path == '\0' || *path == '/' || c == NULL || c->dir == NULL)
		return (strdup(path));
	return (join_path(c->dir, path));
}

/* Absolute directory of file (without resolving symlinks); reported. */
static char *
file_dir(const char *file)
{
	char cwd[PATH_MAX], *dir, *slash, *out;

	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, PROGNAME ": cannot get current directory: %s\n",
		    strerror(errno));
		return (NULL);
	}
	if (file == NULL || (slash = strrchr(file, '/')) == NULL)
		out = strdup(cwd);
	else if (slash == file)
		out = strdup("/");
	else if ((dir = strndup(file, slash - file)) == NULL)
		out = NULL;
	else if (*dir == '/')
		out = dir;
	else {
		out = join_path(cwd, dir);
		free(dir);
	}
	if (out == NULL)
		oom();
	return (out);
}

/* Store one validated value; 0 or -1 (with the problem reported). */
static int
load_key(struct config *c, const struct key *k, const char *val)
{
	char *p = (char *)c + k->off;
	const char *why;
	long long v = 0;
	char *s = NULL;
	int b = 0, r = 0;
	size_t i;

	switch (k->type) {
	case KT_STRING:
		s = strdup(val);
		break;
	case KT_PATH:
		if (*val == '\0' && !(k->flags & KF_EMPTY)) {
			report(c, k->section, k->name, val, "empty",
			    "a directory, relative to %s", c->dir);
			return (-1);
		}
		s = config_resolve(c, val);
		break;
	case KT_INT:
		r = config_parse_int(c, k->section, k->name, val, k->min,
		    k->max, &v);
		break;
	case KT_MS:
		r = parse_int_unit(c, k->section, k->name, val, k->min,
		    k->max, " milliseconds", &v);
		break;
	case KT_SIZE:
		r = config_parse_size(c, k->section, k->name, val, k->min,
		    k->max, &v);
		break;
	case KT_BOOL:
		r = config_parse_bool(c, k->section, k->name, val, &b);
		v = b;
		break;
	case KT_ENUM:
		for (i = 0; k->names[i] != NULL; i++)
			if (strcasecmp(val, k->names[i]) == 0)
				break;
		if (k->names[i] == NULL) {
			char allowed[256] = "";

			for (i = 0; k->names[i] != NULL; i++) {
				if (i > 0)
					strncat(allowed, ", ", sizeof(allowed) -
					    strlen(allowed) - 1);
				strncat(allowed, k->names[i], sizeof(allowed) -
				    strlen(allowed) - 1);
			}
			report(c, k->section, k->name, val, "unknown value",
			    "%s", allowed);
			return (-1);
		}
		v = (long long)i;
		break;
	case KT_HOSTPORT:
		if (*val == '\0' && (k->flags & KF_EMPTY)) {
			s = strdup(val);
			break;
		}
		if ((why = check_hostport(val)) != NULL) {
			report(c, k->section, k->name, val, why,
			    "host:port with port 1..65535, IPv6 as "
			    "[::1]:port%s",
			    (k->flags & KF_EMPTY) ? ", or empty = off" : "");
			return (-1);
		}
		s = strdup(val);
		break;
	case KT_NAME:
		if (!valid_name(val, strlen(val))) {
			report(c, k->section, k->name, val,
			    *val == '\0' ? "empty plugin name" :
			    "invalid plugin name", "one name of [a-z0-9_]+");
			return (-1);
		}
		s = strdup(val);
		break;
	case KT_NAMES:
		s = normalize_names(val, &why);
		if (s == NULL && why != NULL) {
			report(c, k->section, k->name, val, why,
			    "comma-separated names of [a-z0-9_]+, each once");
			return (-1);
		}
		break;
	}
	if (r != 0)
		return (-1);

	switch (k->type) {
	case KT_STRING:
	case KT_PATH:
	case KT_HOSTPORT:
	case KT_NAME:
	case KT_NAMES:
		if (s == NULL) {
			oom();
			return (-1);
		}
		free(*(char **)(void *)p);
		*(char **)(void *)p = s;
		break;
	default:
		if (k->size == sizeof(int))
			*(int *)(void *)p = (int)v;
		else if (k->size == sizeof(int64_t))
			*(int64_t *)(void *)p = (int64_t)v;
		else
			abort();	/* table and struct disagree */
		break;
	}
	return (0);
}

/* Cross-key rules.  0 or -1 (reported). */
static int
check_rules(struct config *c)
{
	if (!c->auth_allow_open && has_name(c->auth_plugins, "open")) {
		report(c, "auth", "plugins", c->auth_plugins,
		    "the open plugin lets anyone in as anyone and "
		    "[auth] allow_open is false",
		    "users, jwt; or set allow_open = true for development");
		return (-1);
	}
	return (0);
}

static int
in_list(const char *const *list, const char *s)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcasecmp(*list, s) == 0)
			return (1);
	return (0);
}

/* Is section the name of a plugin this config selects? */
static int
selected_plugin(const struct config *c, const char *section)
{
	return ((c->backplane != NULL && strcmp(c->backplane, section) == 0) ||
	    (c->storage != NULL && strcmp(c->storage, section) == 0) ||
	    (c->media != NULL && strcmp(c->media, section) == 0) ||
	    has_name(c->auth_plugins, section));
}

static int
core_key(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keytab[i].section, section) == 0 &&
		    strcmp(keytab[i].name, name) == 0)
			return (1);
	return (0);
}

/* Warn about sections and keys nobody reads. */
static void
warn_unknown(const struct config *c, const char *const *known_sections)
{
	const dictionary *d = c->ini;
	const char *key, *colon;
	char sec[256];
	ssize_t i;

	for (i = 0; i < d->size; i++) {
		if ((key = d->key[i]) == NULL)
			continue;
		colon = strchr(key, ':');
		if (colon == NULL) {
			/* A section header. */
			if (in_list(core_sections, key) ||
			    in_list(known_sections, key) ||
			    selected_plugin(c, key))
				continue;
			fprintf(stderr, PROGNAME ": %s: warning: unknown "
			    "section [%s]\n", cfile(c), key);
			continue;
		}
		snprintf(sec, sizeof(sec), "%.*s", (int)(colon - key), key);
		if (sec[0] == '\0') {
			fprintf(stderr, PROGNAME ": %s: warning: key %s outside "
			    "any section\n", cfile(c), colon + 1);
			continue;
		}
		if (in_list(core_sections, sec) && !core_key(sec, colon + 1))
			fprintf(stderr, PROGNAME ": %s: warning: unknown key "
			    "[%s] %s\n", cfile(c), sec, colon + 1);
	}
}

/*
 * iniparser's own complaints, reworded into our one-line form.  The formats
 * matched are iniparser 4.1's; anything else is passed on as it comes.
 */
static int ini_reported;

static int
ini_error(const char *fmt, ...)
{
	const char *file, *text;
	char buf[1024], *p;
	va_list ap;
	size_t n;
	int line;

	ini_reported = 1;
	va_start(ap, fmt);
	if (strcmp(fmt, "iniparser: syntax error in %s (%d):\n-> %s\n") ==
	    0) {
		file = va_arg(ap, const char *);
		line = va_arg(ap, int);
		text = va_arg(ap, const char *);
		va_end(ap);
		return (fprintf(stderr, PROGNAME ": %s:%d: syntax error: '%s' "
		    "(allowed: [section], key = value, ; comment)\n", file,
		    line, text));
	}
	if (strcmp(fmt, "iniparser: input line too long in %s (%d)\n") ==
	    0) {
		file = va_arg(ap, const char *);
		line = va_arg(ap, int);
		va_end(ap);
		return (fprintf(stderr, PROGNAME ": %s:%d: line too long "
		    "(allowed: up to 1022 characters)\n", file, line));
	}
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	while ((p = strchr(buf, '\n')) != NULL && p[1] != '\0')
		*p = ' ';
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return (fprintf(stderr, PROGNAME ": %s\n", buf));
}

/* Open and parse file into c->ini; 0 or -1 (reported). */
static int
read_ini(struct config *c, const char *file)
{
	struct stat st;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		fprintf(stderr, PROGNAME ": %s: cannot open: %s\n", file,
		    strerror(errno));
		return (-1);
	}
	if (fstat(fileno(f), &st) == -1 || S_ISDIR(st.st_mode)) {
		fprintf(stderr, PROGNAME ": %s: cannot read: %s\n", file,
		    strerror(S_ISDIR(st.st_mode) ? EISDIR : errno));
		fclose(f);
		return (-1);
	}
	fclose(f);

	ini_reported = 0;
	iniparser_set_error_callback(ini_error);
	c->ini = iniparser_load(file);
	iniparser_set_error_callback(NULL);
	if (c->ini == NULL) {
		if (!ini_reported)
			fprintf(stderr, PROGNAME ": %s: cannot load\n", file);
		return (-1);
	}
	return (0);
}

static const char *
ini_get(const struct config *c, const char *section, const char *key)
{
	char buf[512], *p;

	if (c->ini == NULL)
		return (NULL);
	if ((size_t)snprintf(buf, sizeof(buf), "%s:%s", section, key) >=
	    sizeof(buf))
		return (NULL);
	for (p = buf; *p != '\0'; p++)
		*p = tolower((unsigned char)*p);
	return (iniparser_getstring(c->ini, buf, NULL));
}

struct config *
config_load(const char *file, const char *const *known_sections)
{
	struct config_priv *cp;
	struct config *c;
	const char *val;
	size_t i;
	int bad = 0;

	if ((cp = calloc(1, sizeof(*cp))) == NULL) {
		oom();
		return (NULL);
	}
	c = &cp->pub;
	if ((c->file = strdup(file != NULL ? file : "(defaults)")) == NULL) {
		oom();
		config_free(c);
		return (NULL);
	}
	if ((c->dir = file_dir(file)) == NULL) {
		config_free(c);
		return (NULL);
	}
	if (file != NULL && read_ini(c, file) == -1) {
		config_free(c);
		return (NULL);
	}

	for (i = 0; i < NKEYS; i++) {
		val = ini_get(c, keytab[i].section, keytab[i].name);
		if (val == NULL)
			val = keytab[i].def;
		if (load_key(c, &keytab[i], val) == -1)
			bad++;
	}
	if (bad == 0 && check_rules(c) == -1)
		bad++;
	if (c->ini != NULL)
		warn_unknown(c, known_sections);
	if (bad != 0) {
		config_free(c);
		return (NULL);
	}
	return (c);
}

void
config_free(struct config *c)
{
	struct config_priv *cp = (struct config_priv *)c;
	struct seckeys *sk;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < NKEYS; i++) {
		switch (keytab[i].type) {
		case KT_STRING:
		case KT_PATH:
		case KT_HOSTPORT:
		case KT_NAME:
		case KT_NAMES:
			free(*(char **)(void *)((char *)c + keytab[i].off));
			break;
		default:
			break;
		}
	}
	while ((sk = cp->seckeys) != NULL) {
		cp->seckeys = sk->next;
		for (i = 0; i < sk->n; i++)
			free(sk->keys[i]);
		free(sk->keys);
		free(sk->section);
		free(sk);
	}
	if (c->ini != NULL)
		iniparser_freedict(c->ini);
	free(c->file);
	free(c->dir);
	free(cp);
}

const char *
config_raw(const struct config *c, const char *section, const char *key,
    const char *def)
{
	const char *v;

	if (c == NULL || section == NULL || key == NULL)
		return (def);
	v = ini_get(c, section, key);
	return (v != NULL ? v : def);
}

const char *const *
config_section_keys(struct config *c, const char *section, size_t *n)
{
	struct config_priv *cp = (struct config_priv *)c;
	const dictionary *d;
	struct seckeys *sk;
	char lsec[256], *p;
	size_t len, cap = 0, i;
	ssize_t j;

	*n = 0;
	if (c == NULL || c->ini == NULL || section == NULL)
		return (no_keys);
	if (snprintf(lsec, sizeof(lsec), "%s", section) >= (int)sizeof(lsec))
		return (no_keys);
	for (p = lsec; *p != '\0'; p++)
		*p = tolower((unsigned char)*p);
	for (sk = cp->seckeys; sk != NULL; sk = sk->next) {
		if (strcmp(sk->section, lsec) == 0) {
			*n = sk->n;
			return ((const char *const *)sk->keys);
		}
	}

	if ((sk = calloc(1, sizeof(*sk))) == NULL ||
	    (sk->section = strdup(lsec)) == NULL)
		goto fail;
	d = c->ini;
	len = strlen(lsec);
	for (j = 0; j < d->size; j++) {
		const char *key = d->key[j];
		char **nk;

		if (key == NULL || strncmp(key, lsec, len) != 0 ||
		    key[len] != ':')
			continue;
		if (sk->n + 1 >= cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nk = realloc(sk->keys, cap * sizeof(*nk))) == NULL)
				goto fail;
			sk->keys = nk;
		}
		if ((sk->keys[sk->n] = strdup(key + len + 1)) == NULL)
			goto fail;
		sk->n++;
	}
	if (sk->keys == NULL && (sk->keys = calloc(1, sizeof(char *))) == NULL)
		goto fail;
	sk->keys[sk->n] = NULL;
	sk->next = cp->seckeys;
	cp->seckeys = sk;
	*n = sk->n;
	return ((const char *const *)sk->keys);
fail:
	oom();
	if (sk != NULL) {
		for (i = 0; i < sk->n; i++)
			free(sk->keys[i]);
		free(sk->keys);
		free(sk->section);
		free(sk);
	}
	return (no_keys);
}

static const char *const type_names[] = {
	[KT_STRING] = "string",
	[KT_PATH] = "path",
	[KT_INT] = "int",
	[KT_SIZE] = "size",
	[KT_MS] = "duration (ms)",
	[KT_BOOL] = "bool",
	[KT_ENUM] = "enum",
	[KT_HOSTPORT] = "host:port",
	[KT_NAME] = "plugin name",
	[KT_NAMES] = "plugin list",
};

int
config_key_info(size_t i, struct config_key_info *ki)
{
	const struct key *k;
	char a[32], b[32];
	size_t j, len;

	if (i >= NKEYS)
		return (0);
	k = &keytab[i];
	memset(ki, 0, sizeof(*ki));
	ki->section = k->section;
	ki->key = k->name;
	ki->type = type_names[k->type];
	ki->def = k->def;
	ki->what = k->what;
	ki->build_default = (k->flags & KF_BUILD) != 0;
	switch (k->type) {
	case KT_INT:
	case KT_MS:
		snprintf(ki->allowed, sizeof(ki->allowed), "%lld..%lld",
		    k->min, k->max);
		break;
	case KT_SIZE:
		fmt_size(k->min, a, sizeof(a));
		fmt_size(k->max, b, sizeof(b));
		snprintf(ki->allowed, sizeof(ki->allowed), "%s..%s", a, b);
		break;
	case KT_BOOL:
		snprintf(ki->allowed, sizeof(ki->allowed),
		    "true/false/yes/no/on/off/1/0");
		break;
	case KT_ENUM:
		for (j = 0; k->names[j] != NULL; j++) {
			len = strlen(ki->allowed);
			snprintf(ki->allowed + len, sizeof(ki->allowed) - len,
			    "%s%s", j > 0 ? ", " : "", k->names[j]);
		}
		break;
	case KT_HOSTPORT:
		snprintf(ki->allowed, sizeof(ki->allowed), "port 1..65535%s",
		    (k->flags & KF_EMPTY) ? "; empty = off" : "");
		break;
	case KT_NAME:
		snprintf(ki->allowed, sizeof(ki->allowed), "[a-z0-9_]+");
		break;
	case KT_NAMES:
		snprintf(ki->allowed, sizeof(ki->allowed),
		    "[a-z0-9_]+, comma-separated");
		break;
	case KT_STRING:
		snprintf(ki->allowed, sizeof(ki->allowed), "any");
		break;
	case KT_PATH:
		snprintf(ki->allowed, sizeof(ki->allowed), "%s",
		    (k->flags & KF_EMPTY) ? "a path; empty = none" :
		    "a path, not empty");
		break;
	}
	return (1);
}
