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
	char *plugin_dir;
	int log_level;		/* enum parley_log_level */
	char *origins;		/* comma-separated allow-list, "" = all */
	char *web_root;		/* static files for "/", "" = none */
	int workers;		/* worker threads */
	int64_t max_frame;	/* STOMP frame / WebSocket message bytes */
	int64_t max_headers;
	int64_t max_header;	/* one header line, bytes */
	int64_t max_outbound;	/* per-connection queued output bytes */
	int64_t max_http_body;	/* REST request body bytes */
	int heartbeat_ms;	/* what we offer/want: 0 = none */
	int heartbeat_tolerance_pct; /* grace on the peer's interval */
	int connect_timeout_ms;	/* CONNECT must arrive within */
	int max_subscriptions;	/* per connection */
	int resume_max;		/* max messages one resume replays */
	int history_max;	/* max `history: n` and REST limit */
	int drain_timeout_ms;	/* SIGTERM: time to flush and close */

	/* [backplane] [storage] [media] */
	char *backplane;
	char *storage;
	char *media;
	/* [auth] */
	char *auth_plugins;	/* comma-separated chain */
	int auth_allow_open;	/* open plugin allowed (dev setups) */

	/* [batch] write-behind */
	int batch_size;
	int batch_interval_ms;
	int batch_max_pending;	/* unpersisted messages kept in memory */
};

/*
 * Load and validate.  file NULL: the embedded defaults (etc/parley.ini as
 * compiled in).  On error, print one line per problem to stderr naming file,
 * section, key, value and what is allowed, and return NULL.  Unknown keys
 * and sections (outside plugin sections) are warned about, not fatal.
 * known_sections is a NULL-terminated list of extra section names that are
 * not warned about (plugin sections); may be NULL.
 */
struct config *config_load(const char *file, const char *const *known_sections);
void config_free(struct config *c);

/* Raw access for plugin sections: value of section:key or def. */
const char *config_raw(const struct config *c, const char *section,
    const char *key, const char *def);
/* All keys of a section, without the "section:" prefix.  *n set.  The
 * returned array is owned by the config. */
const char *const *config_section_keys(struct config *c, const char *section,
    size_t *n);
/* Resolve path against c->dir unless absolute; caller frees. */
char *config_resolve(const struct config *c, const char *path);

/*
 * Parse helpers shared with plugins' host functions.  Return 0 or -1; on -1
 * they print "FILE: [section] key = 'value': why" to stderr.
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

/* The compiled-in default config text (etc/parley.ini). */
extern const char config_default_ini[];

#endif
