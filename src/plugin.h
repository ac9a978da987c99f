/*
 * plugin.h - the plugin loader and the host side of the plugin ABI.
 */
#ifndef PARLEY_PLUGIN_HOST_H
#define PARLEY_PLUGIN_HOST_H

#include <stddef.h>
#include <parley/plugin.h>

struct config;
struct event_base;

/* One loaded plugin instance; also what plugins know as struct parley_ctx. */
struct parley_ctx {
	const struct parley_plugin *p;
	void *dl;
	void *state;
	char name[64];		/* plugin name = INI section */
	int kind;
	int ready;		/* backend reachable (set_ready) */
	char why[256];		/* reason when not ready */
	int probe_failed;	/* storage ping failed (readiness probe) */
	char probe_why[256];
	struct parley_ctx *next;	/* all instances */
};

struct plugins {
	struct parley_ctx *backplane;
	struct parley_ctx *storage;
	struct parley_ctx *media;
	struct parley_ctx *auth[8];
	int nauth;
};

extern struct plugins plugins;

/* Names of the INI sections plugins may read (for config warnings).  The
 * array is NULL-terminated and static. */
const char *const *plugin_known_sections(void);

/*
 * Load and init the plugins the config names.  Before the loop runs.
 * On failure log why (naming the file, the symbol or the ABI version) and
 * return -1.
 */
int	plugins_load(struct config *c, struct event_base *base,
	    void (*deliver)(const struct parley_msg *),
	    void (*persist)(const struct parley_msg *, uint64_t));
/* Ping storage every few seconds on a worker (for /readyz). */
void	plugins_probe_start(void);
/* SIGHUP: run every plugin's reload() on a worker. */
void	plugins_reload(void);
void	plugins_unload(void);
/* parleyd -t: check that every plugin the config names exists and is a
 * plugin of this ABI and kind (no init).  0, or -1 after logging why. */
int	plugins_check(struct config *c);

/* 1 if every plugin is ready; otherwise 0 and why gets "name: reason; ...". */
int	plugins_ready(char *why, size_t len);

/*
 * Run the auth chain (worker thread: plugins may block).  Each plugin
 * allows, denies or defers; if all defer, deny.  Returns PARLEY_AUTH_ALLOW
 * with id filled, or PARLEY_AUTH_DENY with why set (for the log).
 */
int	plugins_authenticate(const struct parley_credentials *cred,
	    struct parley_identity *id, char *why, size_t whylen);
/* The same; *by (if not NULL) is the plugin that allowed. */
int	plugins_authenticate_by(const struct parley_credentials *cred,
	    struct parley_identity *id, char *why, size_t whylen,
	    struct parley_ctx **by);
/* ctx's still_valid() (an auth plugin's, see plugin.h), or NULL. */
typedef int (*still_valid_fn)(void *state, const char *login);
still_valid_fn plugin_still_valid(const struct parley_ctx *ctx);

/* The host table (for tests and the loader). */
const struct parley_host *plugin_host(void);

#endif
