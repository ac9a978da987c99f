/*
 * config.h - the core configuration: one table of keys, loaded from an INI
 * file with iniparser, validated before anything listens.
 */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct _dictionary_;

/* Values of the core keys, after validation.  Strings are owned by the
 * config and live until config_free. */
struct config {
	char *file;		/* path of the file as given (or "(defaults)") */
	char *dir;		/* directory relative paths resolve against */
	struct _dictionary_ *ini; /* iniparser dictionary, NULL for defaults */

	/* [server] */
	char *listen;		/* host:port of the HTTP listener */
	char *stomp_listen;	/* host:port or "" = off */
	char *plugin_dir;	/* absolute (resolved at load) */
	int log_level;		/* enum parley_log_level */
	char *origins;		/* comma-separated allow-list, "" = all */
	char *web_root;		/* static files for "/", "" = none; absolute */
	int workers;		/* worker threads */
	int64_t max_frame;	/* STOMP frame / WebSocket message bytes */
	int64_t max_headers;
	int64_t max_header;	/* one header line, bytes */
	int64_t max_outbound;	/* per-connection queued output bytes */
	int64_t max_http_body;	/* REST request body bytes */
	int heartbeat_ms;	/* what we offer/want: 0 = none */
	int heartbeat_tolerance_pct; /* grace on the peer's interval */
	int connect_timeout_ms;	/* CONNECT must arrive within */
	int http_timeout_ms;	/* HTTP: silence in a request or between */
	int tcp_keepalive_ms;	/* silence before keepalive probes, 0 off */
	int max_subscriptions;	/* per connection */
	int resume_max;		/* max messages one resume replays */
	int history_max;	/* max `history: n` and REST limit */
	int drain_timeout_ms;	/* SIGTERM: time to flush and close */
	char *instance_id;	/* "" = hostname-pid */
	int presence_max;	/* join/leave only up to this many subs */
	int gather_min;		/* shared-copy fan-out from this many subs */

	/* [tls] */
	char *tls_listen;	/* "" = off */
	char *tls_stomp_listen;	/* "" = off */
	char *tls_cert, *tls_key;
	int tls_min_version;	/* 0 = 1.2, 1 = 1.3 */

	/* [limits] */
	int msg_rate, msg_burst;	/* frames/s per connection, 0 = off */
	int64_t byte_rate, byte_burst;	/* bytes/s per connection, 0 = off */
	int throttle_max_ms;
	int ip_max_connections;
	int ip_connect_rate, ip_connect_burst;
	int log_lines_per_minute;	/* about one client address */
	int ipv6_prefix;		/* per-IP limits count IPv6 per block */
	char *trusted_proxies;	/* "addr[/bits], ..." ("" = none) */

	/* [permissions]; room rules live in [rooms] (free-form keys) */
	char *perm_default;
	char *perm_admin_role;
	char *perm_moderator_role;

	/* [backplane] [storage] [media] */
	char *backplane;
	char *storage;
	char *media;
	int64_t media_max_size;		/* [media] max_size */
	char *media_allowed_types;	/* [media] allowed_types */
	/* [auth] */
	char *auth_plugins;	/* comma-separated chain */
	int auth_allow_open;	/* open plugin allowed (dev setups) */

	/* [batch] write-behind */
	int batch_size;
	int batch_interval_ms;
	int batch_max_pending;	/* unpersisted messages kept in memory */
};

/*
 * Load and validate.  file NULL: every key at its default (the key table in
 * config.c; etc/parley.ini spells the same values), dir = the current
 * directory.  Relative [server] plugin_dir and web_root are resolved against
 * dir here, so they are absolute in the struct (config_resolve on them is a
 * no-op).  On error, print one line per problem to stderr naming file,
 * section, key, value and what is allowed, and return NULL.  Unknown keys
 * in core sections and unknown sections are warned about, not fatal.
 * Sections named after a plugin the config selects are known; so are those
 * in known_sections, a NULL-terminated list of extra section names (plugin
 * sections); may be NULL.
 */
struct config *config_load(const char *file, const char *const *known_sections);
void config_free(struct config *c);

/* Raw access for plugin sections: value of section:key or def. */
const char *config_raw(const struct config *c, const char *section,
    const char *key, const char *def);
/* All keys of a section, without the "section:" prefix, in file order.  *n
 * set; the array is also NULL-terminated.  The returned array is owned by
 * the config (cached per section; call from one thread only). */
const char *const *config_section_keys(struct config *c, const char *section,
    size_t *n);
/* Resolve path against c->dir unless absolute; caller frees. */
char *config_resolve(const struct config *c, const char *path);

/*
 * Parse helpers shared with plugins' host functions.  Return 0 or -1; on -1
 * they print "parleyd: FILE: [section] key = 'value': why (allowed: ...)"
 * to stderr.  c may be NULL (FILE is then "(config)").  Booleans accept
 * true/false/yes/no/on/off/1/0 in any case.
 */
int config_parse_int(const struct config *c, const char *section,
    const char *key, const char *val, long long min, long long max,
    long long *out);
int config_parse_bool(const struct config *c, const char *section,
    const char *key, const char *val, int *out);
/* Sizes accept suffixes k, m, g (powers of 1024). */
int config_parse_size(const struct config *c, const char *section,
    const char *key, const char *val, long long min, long long max,
    long long *out);

/*
 * Introspection of the key table, for tests and documentation checks.
 * Fills *ki for key number i (from 0) and returns 1; returns 0 past the last
 * key.  The strings are static.
 */
struct config_key_info {
	const char *section;
	const char *key;
	const char *type;	/* "int", "size", "bool", "host:port", ... */
	const char *def;	/* default as written in the file */
	const char *what;	/* one-line meaning */
	int build_default;	/* default chosen at build time (install dirs) */
	char allowed[128];	/* "1..64", "1k..64m", "error, warn, info, debug" */
};
int config_key_info(size_t i, struct config_key_info *ki);

#endif
