/*
 * testhost.h - a small, real implementation of struct parley_host for plugin
 * unit tests (and a reference for the core).
 *
 * One testhost is one plugin instance's world: a libevent event_base, a
 * pool of worker threads behind submit(), an in-memory configuration section
 * given as "key=value" strings, and recorders for what the plugin hands
 * back (delivered messages, log lines, metrics, readiness).  Logs go to
 * stderr prefixed with "# " so they read as TAP diagnostics.
 *
 * Threads: everything here runs on the thread that created the testhost
 * (the "loop thread"), except what struct parley_host marks "any thread".
 */
#ifndef TESTHOST_H
#define TESTHOST_H

#include <stddef.h>

#include <parley/plugin.h>

struct event_base;
struct testhost;

/*
 * Create a host.  kv is a NULL-terminated array of "key=value" strings (the
 * plugin's INI section), or NULL; it is copied.  A relative config_path()
 * value is returned as is, i.e. relative to the current directory.
 * Returns NULL on failure (after printing why).
 */
struct testhost		*testhost_new(const char *const *kv);
/*
 * Stop the workers (queued work still runs), run the remaining done
 * callbacks, free timers and watches the plugin left behind (saying so),
 * and free everything.  Call after the plugin's fini().
 */
void			 testhost_free(struct testhost *th);

/* The host function table (one for all testhosts). */
const struct parley_host *testhost_api(void);
struct parley_ctx	*testhost_ctx(struct testhost *th);
struct event_base	*testhost_base(struct testhost *th);

/*
 * dlopen(RTLD_NOW|RTLD_LOCAL) so_path, look up parley_plugin_entry and check
 * the ABI version, the kind and that exactly the matching ops table is set.
 * Returns the plugin with *dl set to the handle (close it with
 * testhost_unload()), or NULL after printing why (nothing stays open).
 */
const struct parley_plugin *testhost_load(const char *so_path, void **dl);
void			 testhost_unload(void *dl);

/*
 * plugin->init() with this host and its ctx; names the ctx after the plugin
 * (the name prefixes log lines).  Returns what init returned.
 */
int			 testhost_init(struct testhost *th,
			    const struct parley_plugin *p, void **state);

/*
 * Run the loop until done(arg) returns non-zero (checked before every turn)
 * or timeout_ms passed.  Returns 0, or -1 on timeout.
 */
int			 testhost_run(struct testhost *th, int (*done)(void *),
			    void *arg, unsigned timeout_ms);
/* Run one loop turn without blocking. */
void			 testhost_turn(struct testhost *th);
/* Work submitted whose done callback has not run yet. */
size_t			 testhost_pending(struct testhost *th);

/*
 * Recorders.  Every message the plugin deliver()s is deep-copied onto the
 * list testhost_delivered() returns (the host owns it; clear it at will);
 * on_deliver, if set, is called afterwards with the borrowed message.
 */
struct parley_msg_list	*testhost_delivered(struct testhost *th);
void			 testhost_on_deliver(struct testhost *th,
			    void (*fn)(const struct parley_msg *, void *),
			    void *arg);
/* Log lines seen at level (any level if level < 0). */
unsigned		 testhost_log_count(struct testhost *th, int level);
/* Copies the newest log line into buf; returns its level or -1 if none. */
int			 testhost_last_log(struct testhost *th, char *buf,
			    size_t len);
/* How many times the plugin called timer_add(); how many are still alive. */
unsigned long		 testhost_timers_added(struct testhost *th);
size_t			 testhost_timers_live(struct testhost *th);
/* Last set_ready(): returns ready (1 initially); *why may be NULL. */
int			 testhost_ready(struct testhost *th, const char **why);
/* Current value of a counter or gauge; 0 if never set.  labels may be NULL. */
double			 testhost_metric(struct testhost *th, const char *name,
			    const char *labels);

/*
 * The storage list API: concrete lists whose add functions deep-copy, and
 * accessors.  A list is filled by one thread at a time.
 */
const struct parley_list_api *testhost_list_api(void);

struct parley_msg_list	*testhost_msg_list_new(void);	/* NULL: no memory */
void			 testhost_msg_list_free(struct parley_msg_list *l);
void			 testhost_msg_list_clear(struct parley_msg_list *l);
size_t			 testhost_msg_list_len(const struct parley_msg_list *l);
/* Borrowed; valid until the list is cleared or freed.  Bodies are also
 * NUL-terminated (body_len excludes it); absent strings stay NULL. */
const struct parley_msg	*testhost_msg_list_at(const struct parley_msg_list *l,
			    size_t i);

struct parley_room_list	*testhost_room_list_new(void);
void			 testhost_room_list_free(struct parley_room_list *l);
void			 testhost_room_list_clear(struct parley_room_list *l);
size_t			 testhost_room_list_len(const struct parley_room_list *l);
const struct parley_room_info *testhost_room_list_at(
			    const struct parley_room_list *l, size_t i);

#endif /* TESTHOST_H */
