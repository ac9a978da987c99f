/*
 * main.c - parleyd: options, start-up order, signals and draining.
 *
 * Start-up: config (exit 2 on any bad value, before anything listens),
 * worker threads, plugins, then listeners.  SIGTERM/SIGINT: stop accepting,
 * stop reading, flush storage, close clients with a close frame, exit 0.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "access.h"
#include "batcher.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "msg.h"
#include "plugin.h"
#include "rest.h"
#include "session.h"
#include "util.h"
#include "worker.h"

static struct event_base *base;
static struct config *cfg;
static int draining;
static int64_t drain_deadline;
static struct event *drain_timer;

static void
usage(FILE *f)
{
	fprintf(f, "usage: parleyd [-c FILE] [-t] [-v] [-h]\n"
	    "  -c FILE  configuration file (default: the embedded defaults,\n"
	    "           as documented in etc/parley.ini)\n"
	    "  -t       check the configuration and exit (0 good, 2 bad)\n"
	    "  -v       print the version and exit\n"
	    "  -h       this help\n");
}

static void
room_metric(const struct room *r, void *arg)
{
	struct evbuffer *out = arg;

	if (r->messages > 0 || r->nsubs > 0)
		evbuffer_add_printf(out, "parley_room_messages_total{room=\"%s\"} "
		    "%llu\n", r->name, (unsigned long long)r->messages);
}

static void
room_subs_metric(const struct room *r, void *arg)
{
	struct evbuffer *out = arg;

	if (r->nsubs > 0)
		evbuffer_add_printf(out, "parley_room_subscribers{room=\"%s\"} "
		    "%zu\n", r->name, r->nsubs);
}

static void
extra_metrics(struct evbuffer *out)
{
	size_t max, total = conn_outbound_total(&max);

	evbuffer_add_printf(out, "# HELP parley_outbound_bytes Output queued "
	    "to clients, not yet written.\n# TYPE parley_outbound_bytes "
	    "gauge\nparley_outbound_bytes %zu\n", total);
	evbuffer_add_printf(out, "# HELP parley_outbound_bytes_max The "
	    "largest queue of one connection.\n# TYPE "
	    "parley_outbound_bytes_max gauge\nparley_outbound_bytes_max %zu\n",
	    max);
	evbuffer_add_printf(out, "# HELP parley_room_messages_total Room "
	    "messages delivered through this instance, by room (names are "
	    "[A-Za-z0-9._-]).\n# TYPE parley_room_messages_total counter\n");
	broker_foreach_room(room_metric, out);
	evbuffer_add_printf(out, "# HELP parley_room_subscribers Local "
	    "subscriptions by room.\n# TYPE parley_room_subscribers gauge\n");
	broker_foreach_room(room_subs_metric, out);
	evbuffer_add_printf(out, "# HELP parley_rooms Rooms known to this "
	    "instance.\n# TYPE parley_rooms gauge\nparley_rooms %zu\n",
	    broker_room_count());
	evbuffer_add_printf(out, "# HELP parley_storage_backlog Messages "
	    "not yet written to storage.\n# TYPE parley_storage_backlog "
	    "gauge\nparley_storage_backlog %zu\n", batcher_backlog());
	evbuffer_add_printf(out, "# HELP parley_worker_backlog Jobs queued "
	    "or running on worker threads.\n# TYPE parley_worker_backlog "
	    "gauge\nparley_worker_backlog %d\n", worker_backlog());
}

static void
drain_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (conn_count() == 0 || mono_ms() >= drain_deadline) {
		if (conn_count() > 0)
			log_warn("drain timeout: %zu connections still open",
			    conn_count());
		event_base_loopexit(base, NULL);
	}
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	log_info("SIGHUP: reloading plugin data");
	plugins_reload();
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (draining) {
		log_warn("second signal: exiting now");
		event_base_loopexit(base, NULL);
		return;
	}
	draining = 1;
	log_info("%s: draining (stop accepting, flush storage, close "
	    "clients)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	conn_stop_listening();
	/* batcher_drain runs the loop: it cannot from inside a callback */
	event_base_loopbreak(base);
}

/*
 * Every connection is a descriptor: take the hard open-file limit as the
 * soft one (systemd's LimitNOFILE= or ulimit -Hn sets it), and say what it
 * is.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("cannot raise the open-file limit from %llu "
			    "to %llu: %s", (unsigned long long)was,
			    (unsigned long long)rl.rlim_max, strerror(errno));
			return;
		}
	}
	log_info("open-file limit %llu (connections need one each)",
	    (unsigned long long)rl.rlim_cur);
}

/*
 * glibc's malloc gives the top of the heap back to the kernel whenever a
 * free() leaves more than 128 KiB there, and its mmap threshold moves with
 * what was last freed.  Under load (a busy room frees and reallocates
 * output chains every turn) that is hundreds of brk(2) calls a second and
 * the page faults after each: 12-15% of the loop's CPU in the rooms
 * benchmark.  Memory goes back to the kernel in conn.c's once-a-second
 * trim pass instead (malloc_trim ignores these settings).  An operator's
 * own MALLOC_* environment or glibc.malloc tunables win.
 */
static void
tune_malloc(void)
{
	const char *t = getenv("GLIBC_TUNABLES");
	extern char **environ;
	char **e;

	if (t != NULL && strstr(t, "glibc.malloc.") != NULL)
		return;
	for (e = environ; *e != NULL; e++)
		if (strncmp(*e, "MALLOC_", 7) == 0)
			return;
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

int
main(int argc, char **argv)
{
	const char *file = NULL;
	int ch, test = 0, rc = 0;
	struct event *sigterm, *sigint, *sighup;

	while ((ch = getopt(argc, argv, "c:tvh")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			printf("parleyd %s (plugin ABI %d)\n", PACKAGE_VERSION,
			    PARLEY_ABI_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((cfg = config_load(file, plugin_known_sections())) == NULL)
		return 2;
	if (access_init(cfg) == -1 || media_config(cfg) == -1) {
		config_free(cfg);
		return 2;
	}
	if (test) {
		if (plugins_check(cfg) == -1) {
			config_free(cfg);
			return 2;
		}
		printf("parleyd: %s: configuration OK\n", cfg->file);
		config_free(cfg);
		return 0;
	}
	log_level = cfg->log_level;
	/* from here on a stderr nobody reads cannot stop the loop */
	if (log_async_start() == -1)
		log_warn("cannot start the log writer thread: logging "
		    "directly to stderr");
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	tune_malloc();
	/* no evthread locking: only the loop thread touches libevent (workers
	 * signal through an eventfd), and the locks cost ~12% of fan-out */
	if ((base = event_base_new()) == NULL) {
		log_error("cannot create the event loop");
		return 1;
	}
	msgid_init();
	session_config(cfg);
	http_config(cfg);
	rest_config(cfg);
	metrics_set_extra(extra_metrics);
	if (worker_start(base, cfg->workers) == -1 ||
	    conn_init(cfg, base) == -1 || broker_init(cfg) == -1 ||
	    batcher_init(cfg, base) == -1 || access_start(base) == -1) {
		log_error("start-up failed");
		return 1;
	}
	if (plugins_load(cfg, base, broker_deliver, broker_persist) == -1) {
		worker_stop();
		plugins_unload();
		config_free(cfg);
		return 2;
	}
	if ((cfg->tls_listen[0] != '\0' || cfg->tls_stomp_listen[0] != '\0') &&
	    (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0')) {
		log_error("%s: [tls] listen or stomp_listen is set: [tls] cert "
		    "and [tls] key are required", cfg->file);
		rc = 2;
		goto out;
	}
	if ((cfg->tls_listen[0] != '\0' || cfg->tls_stomp_listen[0] != '\0') &&
	    conn_tls_init() == -1) {
		rc = 2;
		goto out;
	}
	if ((cfg->tls_listen[0] != '\0' &&
	    conn_listen_tls(cfg->tls_listen, 0) == -1) ||
	    (cfg->tls_stomp_listen[0] != '\0' &&
	    conn_listen_tls(cfg->tls_stomp_listen, 1) == -1)) {
		rc = 1;
		goto out;
	}
	if (conn_listen_http(cfg->listen) == -1 ||
	    (cfg->stomp_listen[0] != '\0' &&
	    conn_listen_stomp(cfg->stomp_listen) == -1)) {
		rc = 1;
		goto out;
	}
	plugins_probe_start();
	/* a persist feed with a local store names its consumer group after
	 * the instance: hostname-pid changes on every restart */
	if ((plugins.backplane->p->backplane->flags & PARLEY_BP_PERSIST_FEED) &&
	    !(plugins.storage->p->storage->flags & PARLEY_ST_SHARED) &&
	    cfg->instance_id[0] == '\0')
		log_warn("%s: [server] instance_id is not set: the %s "
		    "backplane names this instance's persist group after "
		    "hostname-pid, which changes on every restart (a new group "
		    "replays the retained feed, the old one stays behind); set "
		    "a stable instance_id per instance", cfg->file,
		    cfg->backplane);
	sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigint = evsignal_new(base, SIGINT, on_signal, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	sighup = evsignal_new(base, SIGHUP, on_hup, NULL);
	event_add(sighup, NULL);
	log_info("parleyd %s ready: backplane %s, storage %s, media %s, "
	    "auth %s", PACKAGE_VERSION, cfg->backplane, cfg->storage,
	    cfg->media[0] ? cfg->media : "(none)", cfg->auth_plugins);
	event_base_dispatch(base);
	if (draining) {
		struct timeval tick = { 0, 50000 };

		/* flush storage (pending SEND receipts go out), then close */
		batcher_drain(cfg->drain_timeout_ms);
		conn_shutdown_all();
		drain_deadline = mono_ms() + cfg->drain_timeout_ms;
		drain_timer = event_new(base, -1, EV_PERSIST, drain_tick, NULL);
		event_add(drain_timer, &tick);
		event_base_dispatch(base);
	}
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	if (drain_timer != NULL)
		event_free(drain_timer);
out:
	conn_stop_listening();
	batcher_drain(draining ? 1000 : cfg->drain_timeout_ms);
	worker_stop();
	batcher_fini();
	plugins_unload();
	broker_fini();
	conn_fini();
	access_stop();
	log_info("parleyd stopped");
	event_base_free(base);
	access_fini();
	config_free(cfg);
	return rc;
}
