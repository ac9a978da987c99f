/*
 * plugin.c - load plugins with dlopen(RTLD_NOW|RTLD_LOCAL), check their ABI,
 * and give them the host function table.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "session.h"
#include "util.h"
#include "worker.h"

struct plugins plugins;

static struct parley_ctx *instances;
static struct config *cfg;
static struct event_base *base;
static void (*deliver_fn)(const struct parley_msg *);
static void (*persist_fn)(const struct parley_msg *, uint64_t);
static char instance_name[128];

static const char *const known_sections[] = {
	"local", "sqlite", "mysql", "mongodb", "redis", "kafka", "fs", "s3",
	"open", "users", "jwt", "rooms", NULL
};

const char *const *
plugin_known_sections(void)
{
	return known_sections;
}

static const char *const kind_names[] = {
	"?", "backplane", "storage", "media", "auth"
};

/* ------------------------------------------------------------ host table */

static void
h_log(struct parley_ctx *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, ctx->name, fmt, ap);
	va_end(ap);
}

static const char *
h_config_get(struct parley_ctx *ctx, const char *key, const char *def)
{
	return config_raw(cfg, ctx->name, key, def);
}

static char *
h_config_path(struct parley_ctx *ctx, const char *key, const char *def)
{
	const char *v = config_raw(cfg, ctx->name, key, def);

	return v != NULL ? config_resolve(cfg, v) : NULL;
}

static int
h_config_int(struct parley_ctx *ctx, const char *key, long long def,
    long long min, long long max, long long *out)
{
	const char *v = config_raw(cfg, ctx->name, key, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	return config_parse_int(cfg, ctx->name, key, v, min, max, out);
}

static int
h_config_bool(struct parley_ctx *ctx, const char *key, int def, int *out)
{
	const char *v = config_raw(cfg, ctx->name, key, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	return config_parse_bool(cfg, ctx->name, key, v, out);
}

static const char *const *
h_config_keys(struct parley_ctx *ctx, size_t *n)
{
	return config_section_keys(cfg, ctx->name, n);
}

struct parley_timer {
	struct event *ev;
	parley_timer_cb cb;
	void *arg;
	int repeat;
};

static void
timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct parley_timer *t = arg;

	(void)fd;
	(void)what;
	if (!t->repeat) {
		/* one-shot timers free themselves after firing */
		parley_timer_cb cb = t->cb;
		void *a = t->arg;

		event_free(t->ev);
		free(t);
		cb(a);
		return;
	}
	t->cb(t->arg);
}

static struct parley_timer *
h_timer_add(struct parley_ctx *ctx, unsigned ms, int repeat,
    parley_timer_cb cb, void *arg)
{
	struct parley_timer *t;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)ctx;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	t->repeat = repeat;
	t->ev = event_new(base, -1, repeat ? EV_PERSIST : 0, timer_fire, t);
	if (t->ev == NULL || event_add(t->ev, &tv) == -1) {
		if (t->ev != NULL)
			event_free(t->ev);
		free(t);
		return NULL;
	}
	return t;
}

/* Cancel a timer.  For a one-shot timer only valid before it fired. */
static void
h_timer_del(struct parley_timer *t)
{
	if (t == NULL)
		return;
	event_free(t->ev);
	free(t);
}

struct parley_watch {
	struct event *ev;
	parley_watch_cb cb;
	void *arg;
};

static void
watch_fire(evutil_socket_t fd, short what, void *arg)
{
	struct parley_watch *w = arg;
	int ev = 0;

	if (what & EV_READ)
		ev |= PARLEY_WATCH_READ;
	if (what & EV_WRITE)
		ev |= PARLEY_WATCH_WRITE;
	w->cb(fd, ev, w->arg);
}

static struct parley_watch *
h_watch_add(struct parley_ctx *ctx, int fd, int what, parley_watch_cb cb,
    void *arg)
{
	struct parley_watch *w;
	short ev = EV_PERSIST;

	(void)ctx;
	if (what & PARLEY_WATCH_READ)
		ev |= EV_READ;
	if (what & PARLEY_WATCH_WRITE)
		ev |= EV_WRITE;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	if ((w->ev = event_new(base, fd, ev, watch_fire, w)) == NULL ||
	    event_add(w->ev, NULL) == -1) {
		if (w->ev != NULL)
			event_free(w->ev);
		free(w);
		return NULL;
	}
	return w;
}

static void
h_watch_del(struct parley_watch *w)
{
	if (w == NULL)
		return;
	event_free(w->ev);
	free(w);
}

static int
h_submit(struct parley_ctx *ctx, parley_work_fn work, parley_done_fn done,
    void *arg)
{
	(void)ctx;
	return worker_submit(work, done, arg);
}

static void
h_counter_add(struct parley_ctx *ctx, const char *name, const char *labels,
    double v)
{
	(void)ctx;
	metrics_counter_add(name, labels, v);
}

static void
h_gauge_set(struct parley_ctx *ctx, const char *name, const char *labels,
    double v)
{
	(void)ctx;
	metrics_gauge_set(name, labels, v);
}

static void
h_set_ready(struct parley_ctx *ctx, int ready, const char *why)
{
	if (ready && !ctx->ready)
		log_msg(PARLEY_LOG_INFO, ctx->name, "backend ready");
	else if (!ready && (ctx->ready ||
	    strcmp(ctx->why, why ? why : "") != 0))
		log_msg(PARLEY_LOG_WARN, ctx->name, "backend not ready: %s",
		    why ? why : "unknown");
	ctx->ready = ready;
	snprintf(ctx->why, sizeof(ctx->why), "%s", ready ? "" :
	    (why ? why : "unknown"));
}

static void
h_deliver(struct parley_ctx *ctx, const struct parley_msg *msg)
{
	(void)ctx;
	if (deliver_fn != NULL)
		deliver_fn(msg);
}

static int64_t
h_now_ms(void)
{
	return now_ms();
}

static void
h_persist(struct parley_ctx *ctx, const struct parley_msg *msg,
    uint64_t token)
{
	(void)ctx;
	if (persist_fn != NULL)
		persist_fn(msg, token);
}

static int
h_storage_shared(struct parley_ctx *ctx)
{
	(void)ctx;
	return plugins.storage != NULL &&
	    (plugins.storage->p->storage->flags & PARLEY_ST_SHARED) != 0;
}

static const char *
h_instance_id(struct parley_ctx *ctx)
{
	(void)ctx;
	return instance_name;
}

static const struct parley_host host = {
	.abi_version = PARLEY_ABI_VERSION,
	.size = sizeof(struct parley_host),
	.log = h_log,
	.config_get = h_config_get,
	.config_path = h_config_path,
	.config_int = h_config_int,
	.config_bool = h_config_bool,
	.config_keys = h_config_keys,
	.timer_add = h_timer_add,
	.timer_del = h_timer_del,
	.watch_add = h_watch_add,
	.watch_del = h_watch_del,
	.submit = h_submit,
	.counter_add = h_counter_add,
	.gauge_set = h_gauge_set,
	.set_ready = h_set_ready,
	.deliver = h_deliver,
	.now_ms = h_now_ms,
	.persist = h_persist,
	.storage_shared = h_storage_shared,
	.instance_id = h_instance_id,
};

const struct parley_host *
plugin_host(void)
{
	return &host;
}

/* ------------------------------------------------------------ loader */

/*
 * dlopen plugin_dir/NAME.so and check it is a Parley plugin of this ABI and
 * kind.  section/key name the config line that chose it, for the message.
 * Returns the description with *dlp set, or NULL after logging why.
 */
static const struct parley_plugin *
plugin_resolve(const char *name, int kind, const char *section,
    const char *key, void **dlp)
{
	parley_plugin_entry_fn entry;
	const struct parley_plugin *p;
	char path[4096];
	void *dl;
	const void *ops;

	snprintf(path, sizeof(path), "%s/%s.so", cfg->plugin_dir, name);
	if (access(path, R_OK) == -1) {
		log_error("%s: [%s] %s = '%s': no such %s plugin '%s': %s: %s "
		    "(set [server] plugin_dir, or build it: see ./configure's "
		    "summary)", cfg->file, section, key, name, kind_names[kind],
		    name, path, strerror(errno));
		return NULL;
	}
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_error("%s: [%s] %s = '%s': cannot load %s plugin '%s': %s",
		    cfg->file, section, key, name, kind_names[kind], name,
		    dlerror());
		return NULL;
	}
	*(void **)&entry = dlsym(dl, PARLEY_PLUGIN_ENTRY);
	if (entry == NULL) {
		log_error("%s: no symbol %s: not a Parley plugin", path,
		    PARLEY_PLUGIN_ENTRY);
		dlclose(dl);
		return NULL;
	}
	p = entry();
	if (p == NULL || p->abi_version != PARLEY_ABI_VERSION) {
		log_error("%s: plugin ABI version %u, this server speaks %u: "
		    "rebuild the plugin against this server's headers", path,
		    p ? p->abi_version : 0, PARLEY_ABI_VERSION);
		dlclose(dl);
		return NULL;
	}
	switch (kind) {
	case PARLEY_PLUGIN_BACKPLANE: ops = p->backplane; break;
	case PARLEY_PLUGIN_STORAGE: ops = p->storage; break;
	case PARLEY_PLUGIN_MEDIA: ops = p->media; break;
	default: ops = p->auth; break;
	}
	if (p->kind != kind || ops == NULL || p->init == NULL) {
		log_error("%s: [%s] %s = '%s': plugin '%s' is a %s plugin, not "
		    "a %s plugin", cfg->file, section, key, name,
		    p->name ? p->name : "?",
		    p->kind >= 1 && p->kind <= 4 ? kind_names[p->kind] : "?",
		    kind_names[kind]);
		dlclose(dl);
		return NULL;
	}
	*dlp = dl;
	return p;
}

/* A new instance of p, named after the plugin (its INI section). */
static struct parley_ctx *
ctx_new(const struct parley_plugin *p, void *dl, int kind, const char *name)
{
	struct parley_ctx *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return NULL;
	ctx->p = p;
	ctx->dl = dl;
	ctx->kind = kind;
	ctx->ready = 1;
	snprintf(ctx->name, sizeof(ctx->name), "%s", name);
	return ctx;
}

static struct parley_ctx *
plugin_open(const char *name, int kind, const char *section, const char *key)
{
	struct parley_ctx *ctx;
	const struct parley_plugin *p;
	void *dl;

	if ((p = plugin_resolve(name, kind, section, key, &dl)) == NULL)
		return NULL;
	if ((ctx = ctx_new(p, dl, kind, name)) == NULL) {
		dlclose(dl);
		return NULL;
	}
	if (p->init(&host, ctx, &ctx->state) != 0) {
		log_error("%s: %s plugin '%s' failed to start (see above)",
		    cfg->file, kind_names[kind], name);
		dlclose(dl);
		free(ctx);
		return NULL;
	}
	ctx->next = instances;
	instances = ctx;
	log_info("loaded %s plugin %s %s", kind_names[kind], name,
	    p->version ? p->version : "");
	return ctx;
}

/* What host->instance_id answers: [server] instance_id, or hostname-pid. */
static void
set_instance_name(const struct config *c)
{
	char host[64];

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "parley");
	host[sizeof(host) - 1] = '\0';
	if (c->instance_id[0] != '\0')
		snprintf(instance_name, sizeof(instance_name), "%s",
		    c->instance_id);
	else
		snprintf(instance_name, sizeof(instance_name), "%s-%d", host,
		    (int)getpid());
}

int
plugins_load(struct config *c, struct event_base *b,
    void (*deliver)(const struct parley_msg *),
    void (*persist)(const struct parley_msg *, uint64_t))
{
	char *list, *tok, *save;

	cfg = c;
	base = b;
	deliver_fn = deliver;
	persist_fn = persist;
	set_instance_name(c);
	if ((plugins.storage = plugin_open(c->storage,
	    PARLEY_PLUGIN_STORAGE, "storage", "plugin")) == NULL)
		return -1;
	if ((plugins.backplane = plugin_open(c->backplane,
	    PARLEY_PLUGIN_BACKPLANE, "backplane", "plugin")) == NULL)
		return -1;
	if (c->media[0] != '\0' && (plugins.media = plugin_open(c->media,
	    PARLEY_PLUGIN_MEDIA, "media", "plugin")) == NULL)
		return -1;
	if ((list = strdup(c->auth_plugins)) == NULL)
		return -1;
	for (tok = strtok_r(list, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (plugins.nauth == (int)(sizeof(plugins.auth) /
		    sizeof(plugins.auth[0]))) {
			log_error("%s: [auth] plugins: at most %zu plugins",
			    c->file, sizeof(plugins.auth) /
			    sizeof(plugins.auth[0]));
			free(list);
			return -1;
		}
		if (strcmp(tok, "open") == 0 && !c->auth_allow_open) {
			log_error("%s: [auth] plugins: 'open' accepts anyone; "
			    "it loads only with [auth] allow_open = true "
			    "(development setups)", c->file);
			free(list);
			return -1;
		}
		if ((plugins.auth[plugins.nauth] = plugin_open(tok,
		    PARLEY_PLUGIN_AUTH, "auth", "plugins")) == NULL) {
			free(list);
			return -1;
		}
		plugins.nauth++;
	}
	free(list);
	if (plugins.nauth == 0) {
		log_error("%s: [auth] plugins is empty: nobody could log in",
		    c->file);
		return -1;
	}
	return 0;
}

static struct parley_timer *probe_timer;

void
plugins_unload(void)
{
	struct parley_ctx *ctx, *next;

	h_timer_del(probe_timer);
	probe_timer = NULL;
	for (ctx = instances; ctx != NULL; ctx = next) {
		next = ctx->next;
		if (ctx->p->fini != NULL)
			ctx->p->fini(ctx->state);
		/* keep the code mapped under sanitizers so leak reports can
		 * still name plugin frames */
#ifndef __SANITIZE_ADDRESS__
		dlclose(ctx->dl);
#endif
		free(ctx);
	}
	instances = NULL;
	memset(&plugins, 0, sizeof(plugins));
}

int
plugins_ready(char *why, size_t len)
{
	struct parley_ctx *ctx;
	size_t off = 0;
	int ok = 1;

	if (len > 0)
		why[0] = '\0';
	for (ctx = instances; ctx != NULL; ctx = ctx->next) {
		if (ctx->ready && !ctx->probe_failed)
			continue;
		ok = 0;
		if (off < len)
			off += snprintf(why + off, len - off, "%s%s: %s",
			    off ? "; " : "", ctx->name, !ctx->ready ? ctx->why :
			    ctx->probe_why);
	}
	return ok;
}

int
plugins_authenticate(const struct parley_credentials *cred,
    struct parley_identity *id, char *why, size_t whylen)
{
	return plugins_authenticate_by(cred, id, why, whylen, NULL);
}

still_valid_fn
plugin_still_valid(const struct parley_ctx *ctx)
{
	const struct parley_auth_ops *a;

	if (ctx->kind != PARLEY_PLUGIN_AUTH || (a = ctx->p->auth) == NULL ||
	    a->size < offsetof(struct parley_auth_ops, still_valid) +
	    sizeof(a->still_valid))
		return NULL;
	return a->still_valid;
}

int
plugins_authenticate_by(const struct parley_credentials *cred,
    struct parley_identity *id, char *why, size_t whylen,
    struct parley_ctx **by)
{
	int i, r;

	if (whylen > 0)
		why[0] = '\0';
	for (i = 0; i < plugins.nauth; i++) {
		struct parley_ctx *a = plugins.auth[i];

		memset(id, 0, sizeof(*id));
		r = a->p->auth->authenticate(a->state, cred, id, why, whylen);
		if (r == PARLEY_AUTH_ALLOW) {
			if (!login_valid(id->login)) {
				snprintf(why, whylen, "auth plugin '%s' "
				    "allowed an invalid login", a->name);
				return PARLEY_AUTH_DENY;
			}
			if (by != NULL)
				*by = a;
			return PARLEY_AUTH_ALLOW;
		}
		if (r == PARLEY_AUTH_DENY) {
			if (why[0] == '\0')
				snprintf(why, whylen, "denied by '%s'",
				    a->name);
			return PARLEY_AUTH_DENY;
		}
	}
	if (why[0] == '\0')
		snprintf(why, whylen, "no auth plugin accepted the "
		    "credentials");
	return PARLEY_AUTH_DENY;
}

struct reload_job {
	struct parley_ctx *ctx;
	int rv;
};

static void
reload_work(void *arg)
{
	struct reload_job *j = arg;

	j->rv = j->ctx->p->reload(j->ctx->state);
}

static void
reload_done(void *arg)
{
	struct reload_job *j = arg;

	log_msg(j->rv == 0 ? PARLEY_LOG_INFO : PARLEY_LOG_ERROR, j->ctx->name,
	    j->rv == 0 ? "reloaded" : "reload failed: keeping the old data");
	/* removed or locked logins lose their open sessions */
	if (j->rv == 0 && plugin_still_valid(j->ctx) != NULL)
		session_revalidate(j->ctx);
	free(j);
}

void
plugins_reload(void)
{
	struct parley_ctx *ctx;

	for (ctx = instances; ctx != NULL; ctx = ctx->next) {
		struct reload_job *j;

		if (ctx->p->reload == NULL)
			continue;
		if ((j = calloc(1, sizeof(*j))) == NULL)
			continue;
		j->ctx = ctx;
		if (worker_submit(reload_work, reload_done, j) == -1)
			free(j);
	}
}

/* ------------------------------------------------------------ probe */

#define PROBE_MS 3000

struct probe {
	int busy;
	int rv;
	char err[256];
};

static struct probe probe;

static void
probe_work(void *arg)
{
	struct parley_ctx *st = arg;

	probe.err[0] = '\0';
	probe.rv = st->p->storage->ping(st->state, probe.err,
	    sizeof(probe.err));
}

static void
probe_done(void *arg)
{
	struct parley_ctx *st = arg;

	probe.busy = 0;
	if (plugins.storage != st)
		return;
	if (probe.rv != 0 && !st->probe_failed)
		log_msg(PARLEY_LOG_WARN, st->name, "storage unreachable: %s",
		    probe.err[0] ? probe.err : "ping failed");
	else if (probe.rv == 0 && st->probe_failed)
		log_msg(PARLEY_LOG_INFO, st->name, "storage reachable again");
	st->probe_failed = probe.rv != 0;
	snprintf(st->probe_why, sizeof(st->probe_why), "%s", probe.rv == 0 ?
	    "" : probe.err[0] ? probe.err : "ping failed");
}

static void
probe_tick(void *arg)
{
	struct parley_ctx *st = plugins.storage;

	(void)arg;
	if (st == NULL || st->p->storage->ping == NULL || probe.busy)
		return;
	probe.busy = 1;
	if (worker_submit(probe_work, probe_done, st) == -1)
		probe.busy = 0;
}

void
plugins_probe_start(void)
{
	if (plugins.storage != NULL && plugins.storage->p->storage->ping != NULL)
		probe_timer = h_timer_add(plugins.storage, PROBE_MS, 1,
		    probe_tick, NULL);
}

/*
 * parleyd -t: load one plugin and let it check its section (its check
 * hook, if it has one) without starting it.  0 good, -1 after logging.
 */
static int
plugin_check_one(const char *name, int kind, const char *section,
    const char *key)
{
	const struct parley_plugin *p;
	struct parley_ctx *ctx;
	void *dl;
	int rv = 0;

	if ((p = plugin_resolve(name, kind, section, key, &dl)) == NULL)
		return -1;
	if (p->check != NULL) {
		if ((ctx = ctx_new(p, dl, kind, name)) == NULL)
			rv = -1;
		else if (p->check(&host, ctx) != 0) {
			log_error("%s: %s plugin '%s': its [%s] section is not "
			    "accepted (see above)", cfg->file,
			    kind_names[kind], name, name);
			rv = -1;
		}
		free(ctx);
	}
	/* as plugins_unload: under sanitizers the code stays mapped, so
	 * what a library keeps in its globals is not reported as leaked */
#ifndef __SANITIZE_ADDRESS__
	dlclose(dl);
#endif
	return rv;
}

int
plugins_check(struct config *c)
{
	char *list, *tok, *save;
	int ok = 1;

	cfg = c;
	set_instance_name(c);	/* check hooks see what init would */
	if (plugin_check_one(c->storage, PARLEY_PLUGIN_STORAGE, "storage",
	    "plugin") == -1)
		ok = 0;
	if (plugin_check_one(c->backplane, PARLEY_PLUGIN_BACKPLANE,
	    "backplane", "plugin") == -1)
		ok = 0;
	if (c->media[0] != '\0' && plugin_check_one(c->media,
	    PARLEY_PLUGIN_MEDIA, "media", "plugin") == -1)
		ok = 0;
	if ((list = strdup(c->auth_plugins)) == NULL)
		return -1;
	for (tok = strtok_r(list, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save))
		if (plugin_check_one(tok, PARLEY_PLUGIN_AUTH, "auth",
		    "plugins") == -1)
			ok = 0;
	free(list);
	return ok ? 0 : -1;
}
