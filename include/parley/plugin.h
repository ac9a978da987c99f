/*
 * parley/plugin.h - the Parley plugin ABI.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * parley_plugin_entry(), returning a pointer to a constant
 * struct parley_plugin.  The host dlopen()s it with RTLD_NOW|RTLD_LOCAL,
 * checks abi_version and kind, and dlclose()s it on mismatch.
 *
 * The host hands every plugin instance a struct parley_host (a table of host
 * functions) and an opaque struct parley_ctx naming the instance.  Plugins
 * never see libevent or any core structure; they include only this header.
 *
 * Threads: unless a function says otherwise, the host calls plugin functions
 * on the event-loop thread and they must not block.  Functions documented as
 * "worker" are called on a host-owned worker thread and may block; the host
 * may call them from several worker threads at once, so a plugin that holds
 * one connection must lock it itself.
 *
 * Growth: every struct that crosses the boundary ends in spare fields the
 * host sets to zero, and carries its own size where the host or the plugin
 * allocates it, so new members can be added without breaking old plugins.
 * Any incompatible change bumps PARLEY_ABI_VERSION.
 */
#ifndef PARLEY_PLUGIN_H
#define PARLEY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARLEY_ABI_VERSION 1
#define PARLEY_PLUGIN_ENTRY "parley_plugin_entry"

enum parley_plugin_kind {
	PARLEY_PLUGIN_BACKPLANE = 1,
	PARLEY_PLUGIN_STORAGE = 2,
	PARLEY_PLUGIN_MEDIA = 3,
	PARLEY_PLUGIN_AUTH = 4
};

enum parley_log_level {
	PARLEY_LOG_ERROR = 0,
	PARLEY_LOG_WARN = 1,
	PARLEY_LOG_INFO = 2,
	PARLEY_LOG_DEBUG = 3
};

/* What a room message is.  Plain chat is PARLEY_EV_MESSAGE. */
enum parley_event {
	PARLEY_EV_MESSAGE = 0,
	PARLEY_EV_JOIN = 1,	/* presence, never stored */
	PARLEY_EV_LEAVE = 2,	/* presence, never stored */
	PARLEY_EV_TYPING = 3,	/* never stored */
	PARLEY_EV_EDIT = 4,	/* stored: replaces ref_id's body */
	PARLEY_EV_DELETE = 5	/* stored: tombstones ref_id */
};

/* Maximum lengths (bytes, without the NUL) of the string fields below. */
#define PARLEY_ROOM_MAX 128
#define PARLEY_ID_MAX 64
#define PARLEY_LOGIN_MAX 128

/*
 * One room message as it crosses the ABI.  Strings are NUL-terminated; body
 * is body_len bytes and may contain NULs.  Who owns the memory is said at
 * each function that takes or gives one; a plugin that keeps a message past
 * the call copies it.
 */
struct parley_msg {
	const char *room;	/* room name, without "/room/" */
	uint64_t position;	/* room position; 0 = not yet assigned */
	const char *id;		/* message id, unique per server cluster */
	const char *sender;	/* authenticated login */
	int64_t timestamp_ms;	/* ms since the Unix epoch */
	int event;		/* enum parley_event */
	const char *content_type; /* may be NULL */
	const char *body;
	size_t body_len;
	const char *ref_id;	/* EDIT/DELETE: the message acted on */
	int64_t edited_ms;	/* storage: time of last edit, 0 = never */
	int deleted;		/* storage: 1 = tombstone */
	const char *media_id;	/* media referred to, or NULL */
	unsigned flags;		/* PARLEY_MSG_* */
	void *spare[4];
};

/*
 * EDIT/DELETE by a moderator: the host checked the permission, so storage
 * applies it whoever sent the target (otherwise only the target's sender
 * may edit or delete it).
 */
#define PARLEY_MSG_MODERATED 0x01

/* Opaque handles. */
struct parley_ctx;		/* one loaded plugin instance */
struct parley_timer;
struct parley_watch;

typedef void (*parley_timer_cb)(void *arg);
typedef void (*parley_watch_cb)(int fd, int what, void *arg);
/* Runs on a worker thread; may block. */
typedef void (*parley_work_fn)(void *arg);
/* Runs on the loop thread after the work function returned. */
typedef void (*parley_done_fn)(void *arg);

#define PARLEY_WATCH_READ 0x02
#define PARLEY_WATCH_WRITE 0x04

/*
 * Host functions.  Every function takes the ctx the host passed to init().
 * Functions marked "any thread" may be called from worker threads; all others
 * only on the loop thread.
 */
struct parley_host {
	unsigned abi_version;	/* PARLEY_ABI_VERSION of the host */
	size_t size;		/* sizeof(struct parley_host) of the host */

	/* any thread.  One line, no trailing newline needed. */
	void (*log)(struct parley_ctx *ctx, int level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

	/*
	 * Keys of the plugin's own INI section (named after the plugin).
	 * config_get returns def when the key is absent; the string lives as
	 * long as the plugin instance.  config_path resolves a relative path
	 * against the config file's directory and returns a string the caller
	 * frees with free().  config_int/config_bool return -1 and log a
	 * message naming file, section and key when the value is malformed or
	 * outside [min, max].  config_keys lists the section's keys (for
	 * pass-through settings such as kafka.*); the array and strings live as
	 * long as the plugin instance.
	 */
	const char *(*config_get)(struct parley_ctx *ctx, const char *key,
	    const char *def);
	char *(*config_path)(struct parley_ctx *ctx, const char *key,
	    const char *def);
	int (*config_int)(struct parley_ctx *ctx, const char *key, long long def,
	    long long min, long long max, long long *out);
	int (*config_bool)(struct parley_ctx *ctx, const char *key, int def,
	    int *out);
	const char *const *(*config_keys)(struct parley_ctx *ctx, size_t *n);

	/*
	 * Timers and fd watches on the core loop.  Callbacks run on the loop.
	 * A one-shot timer (repeat 0) is freed by the host when it fires,
	 * before its callback runs: never timer_del it after that.
	 */
	struct parley_timer *(*timer_add)(struct parley_ctx *ctx, unsigned ms,
	    int repeat, parley_timer_cb cb, void *arg);
	void (*timer_del)(struct parley_timer *t);
	struct parley_watch *(*watch_add)(struct parley_ctx *ctx, int fd,
	    int what, parley_watch_cb cb, void *arg);
	void (*watch_del)(struct parley_watch *w);

	/*
	 * Run work(arg) on a host worker thread, then done(arg) on the loop.
	 * Returns 0, or -1 when the host is shutting down (neither runs).
	 */
	int (*submit)(struct parley_ctx *ctx, parley_work_fn work,
	    parley_done_fn done, void *arg);

	/*
	 * Metrics (any thread).  name is a Prometheus metric name; the host
	 * prefixes nothing.  labels is NULL or a preformatted label set such as
	 * "room=\"a\"" (the caller escapes).
	 */
	void (*counter_add)(struct parley_ctx *ctx, const char *name,
	    const char *labels, double v);
	void (*gauge_set)(struct parley_ctx *ctx, const char *name,
	    const char *labels, double v);

	/*
	 * Readiness (loop thread).  A plugin whose backend is unreachable says
	 * so; /readyz lists the reason until the plugin sets ready again.
	 */
	void (*set_ready)(struct parley_ctx *ctx, int ready, const char *why);

	/*
	 * Backplane plugins hand every room message they receive (their own
	 * publishes included) to the host with deliver() (loop thread).  msg
	 * is borrowed for the call.  Deliver each room's messages in position
	 * order: the host drops any message whose position is not above the
	 * last one it delivered for that room, so redelivery (at-least-once)
	 * is harmless, but a message delivered out of order is lost to live
	 * subscribers (they still get it from storage on resume).  Duplicates
	 * under a new position (Kafka producer retries) are the plugin's to
	 * drop, by message id.  The host queues the message and fans it out
	 * to local subscribers at the end of the loop turn, together with the
	 * room's other messages of that turn: delivering a batch of messages
	 * in one callback (one read of the backplane's socket) is cheaper
	 * than spreading them over several turns.
	 */
	void (*deliver)(struct parley_ctx *ctx, const struct parley_msg *msg);

	/* Milliseconds since the Unix epoch (any thread). */
	int64_t (*now_ms)(void);

	/*
	 * Backplanes with PARLEY_BP_PERSIST_FEED: hand the host a message this
	 * instance must write to storage (loop thread; msg borrowed).  The
	 * host batches it and, once committed, calls ops->persist_ack with
	 * the same token.  Messages fed again after a crash or reclaim are
	 * fine: storage is idempotent on (room, position).
	 */
	void (*persist)(struct parley_ctx *ctx, const struct parley_msg *msg,
	    uint64_t token);

	/*
	 * 1 when the configured storage is shared by all instances
	 * (PARLEY_ST_SHARED: exactly one instance persists each message), 0
	 * when it is local to this instance (this instance persists every
	 * message into its own store).  A backplane picks its consumer group
	 * from this.  Valid from the backplane's init on.
	 */
	int (*storage_shared)(struct parley_ctx *ctx);

	/* A name for this instance, unique among running instances
	 * (hostname-pid unless [server] instance_id is set). */
	const char *(*instance_id)(struct parley_ctx *ctx);

	void *spare[13];
};

/* ---------------------------------------------------------------- */
/* backplane                                                           */

/*
 * Called once when a publish is settled.  status 0: the message is stored by
 * the backplane with *position assigned; -1: it is not (why says why).  If
 * the backplane declares PARLEY_BP_DURABLE, status 0 means a crash now loses
 * nothing.
 */
typedef void (*parley_publish_cb)(void *arg, int status, uint64_t position,
    const char *why);

/*
 * Result of a backplane or storage range read: msgs[0..n) in position order.
 * complete = 1 when the reader can prove nothing exists after `after` that it
 * did not return (up to its newest message when it returned fewer than
 * limit).  first_position is the oldest position the reader still holds
 * (0 = unknown); the host uses it to decide where storage must fill in.
 * The reader owns msgs; the callee of the callback must copy what it keeps.
 */
struct parley_range {
	const struct parley_msg *msgs;
	size_t n;
	int complete;
	uint64_t first_position;
	uint64_t last_position;	/* newest position the room has, 0 = none */
	void *spare[4];
};
typedef void (*parley_range_cb)(void *arg, int status,
    const struct parley_range *r);

#define PARLEY_BP_DURABLE 0x01	/* publish success means durable */
#define PARLEY_BP_SHARED 0x02	/* several instances can share it */
/*
 * The backplane decides which instance persists which message: it calls
 * host->persist() for each message this instance must store, and gets
 * persist_ack() after the commit.  Without this flag the host persists
 * every message deliver() hands it.
 */
#define PARLEY_BP_PERSIST_FEED 0x04

struct parley_backplane_ops {
	size_t size;
	unsigned flags;		/* PARLEY_BP_* */
	/*
	 * Publish msg (borrowed for the call; copy what you keep).  The
	 * backplane assigns the position and later deliver()s the message to
	 * every instance, this one included.  cb is called exactly once, on
	 * the loop, possibly before publish returns.  A backplane that
	 * deliver()s a message on this instance and then calls its cb in the
	 * same turn (local does) saves the host a lookup per message.
	 */
	void (*publish)(void *state, const struct parley_msg *msg,
	    parley_publish_cb cb, void *arg);
	/* This instance has (no longer has) local subscribers of room. */
	void (*watch_room)(void *state, const char *room);
	void (*unwatch_room)(void *state, const char *room);
	/*
	 * Read up to limit messages of room with position > after from the
	 * backplane's own retention.  NULL when the backplane keeps nothing.
	 */
	void (*read_range)(void *state, const char *room, uint64_t after,
	    size_t limit, parley_range_cb cb, void *arg);
	/*
	 * PARLEY_BP_PERSIST_FEED: messages fed with these tokens are
	 * committed to storage (loop thread).
	 */
	void (*persist_ack)(void *state, const uint64_t *tokens, size_t n);
	void *spare[7];
};

/* ---------------------------------------------------------------- */
/* storage: every function is "worker" (may block)                    */

struct parley_room_info {
	const char *name;
	const char *creator;
	int64_t created_ms;
	const char *topic;
	uint64_t last_position;	/* newest stored chat message */
	uint64_t message_count;	/* stored chat messages, tombstones too */
	void *spare[4];
};

/*
 * A list the storage plugin fills; strings and bodies it stores must be
 * allocated with the functions passed alongside (add copies them).
 */
struct parley_msg_list;
struct parley_room_list;

struct parley_list_api {
	int (*msg_add)(struct parley_msg_list *l, const struct parley_msg *m);
	int (*room_add)(struct parley_room_list *l,
	    const struct parley_room_info *r);
	void *spare[4];
};

#define PARLEY_ST_SHARED 0x01	/* one store serves every instance */

/* Paging direction for fetch. */
enum parley_page {
	PARLEY_PAGE_AFTER = 0,	/* position > cursor, ascending */
	PARLEY_PAGE_BEFORE = 1	/* position < cursor, newest first then
				 * returned ascending; cursor 0 = newest */
};

struct parley_storage_ops {
	size_t size;
	unsigned flags;		/* PARLEY_ST_* */
	/*
	 * Store msgs[0..n) (chat, edits, deletes) in one transaction.
	 * Idempotent on (room, position) and on (room, id): storing a message
	 * again is a no-op.  Returns 0, or -1 with nothing stored.  EDIT and
	 * DELETE messages update the message ref_id names when its sender
	 * matches; they keep no row of their own.  A DELETE leaves a
	 * tombstone (deleted = 1, empty body, no media_id).  Messages a
	 * plugin cannot apply (EDIT without ref_id, unknown event, JOIN,
	 * LEAVE, TYPING) are skipped, not errors, so one bad message never
	 * blocks the batches after it.
	 */
	int (*store)(void *state, const struct parley_msg *msgs, size_t n,
	    char *err, size_t errlen);
	/*
	 * Fetch up to limit stored messages of room (chat only, with edits
	 * applied and deletes as tombstones) in direction dir from cursor,
	 * always added to out in ascending position.  Returns 0 or -1.
	 * (api->msg_add and room_add return 0, or -1 out of memory.)
	 */
	int (*fetch)(void *state, const char *room, int dir, uint64_t cursor,
	    size_t limit, const struct parley_list_api *api,
	    struct parley_msg_list *out, char *err, size_t errlen);
	/* Fetch one message by id; 1 found, 0 not found, -1 error. */
	int (*get_msg)(void *state, const char *room, const char *id,
	    const struct parley_list_api *api, struct parley_msg_list *out,
	    char *err, size_t errlen);
	/* Rooms: create returns 1 created, 0 existed, -1 error. */
	int (*room_create)(void *state, const struct parley_room_info *r,
	    char *err, size_t errlen);
	int (*room_list)(void *state, const struct parley_list_api *api,
	    struct parley_room_list *out, char *err, size_t errlen);
	/* 1 found (added to out), 0 not found, -1 error. */
	int (*room_get)(void *state, const char *name,
	    const struct parley_list_api *api, struct parley_room_list *out,
	    char *err, size_t errlen);
	/* Delete a room and its history: 1 deleted, 0 not found, -1 error. */
	int (*room_delete)(void *state, const char *name, char *err,
	    size_t errlen);
	/* Cheap liveness check for /readyz: 0 reachable, -1 not. */
	int (*ping)(void *state, char *err, size_t errlen);
	void *spare[8];
};

/* ---------------------------------------------------------------- */
/* auth                                                                */

enum parley_auth_result {
	PARLEY_AUTH_DEFER = 0,
	PARLEY_AUTH_ALLOW = 1,
	PARLEY_AUTH_DENY = 2
};

/* What a client presented.  Any field may be NULL. */
struct parley_credentials {
	const char *login;	/* STOMP login */
	const char *passcode;	/* STOMP passcode */
	const char *bearer;	/* Authorization: Bearer or access_token */
	/* the client's IP address, text, no port; behind a proxy listed in
	 * [limits] trusted_proxies the one its X-Forwarded-For names */
	const char *remote_addr;
	void *spare[4];
};

/* Filled by an auth plugin that allows: login (required) and roles.  The
 * host zeroes it before the call. */
struct parley_identity {
	char login[PARLEY_LOGIN_MAX + 1];
	char roles[256];	/* comma-separated, may be empty */
	char grants[512];	/* room grants, plugin-defined syntax */
	/*
	 * 0, or when the credentials stop being valid (ms since the Unix
	 * epoch, host->now_ms's clock): a STOMP session they opened ends
	 * then with ERROR "credentials expired".  (Takes the place of one
	 * of the spare pointers: plugins built before it leave it 0.)
	 */
	int64_t expires_ms;
	void *spare[3];
};

struct parley_auth_ops {
	size_t size;
	/*
	 * worker: decide on credentials.  On ALLOW fill id->login.  On DENY
	 * write a reason for the log to why (never shown to the client beyond
	 * "authentication failed").
	 */
	int (*authenticate)(void *state, const struct parley_credentials *c,
	    struct parley_identity *id, char *why, size_t whylen);
	/*
	 * worker, optional (NULL): after a successful reload, asked for each
	 * login with an open STOMP session this plugin allowed.  1: it may
	 * stay; 0: the login was removed or locked, and the host ends its
	 * sessions with ERROR "credentials revoked".  (Takes the place of a
	 * spare pointer: the host reads it only when size covers it.)
	 */
	int (*still_valid)(void *state, const char *login);
	void *spare[7];
};

/* ---------------------------------------------------------------- */
/* media: every function is "worker" (may block)                      */

/*
 * Ids are made by the host: 1..PARLEY_ID_MAX bytes of [A-Za-z0-9_-].  A
 * plugin still rejects anything else, so no path or key is ever built from
 * user input.
 */
#define PARLEY_MEDIA_META_MAX 16384	/* metadata document, bytes */

struct parley_media_ops {
	size_t size;
	/*
	 * Store a file from path (a spooled upload the host removes after
	 * the call) under id.  content_type is what the host decided the
	 * file is (sniffed for images).  0 stored, -1 error (nothing kept).
	 */
	int (*put_file)(void *state, const char *id, const char *path,
	    const char *content_type, char *err, size_t errlen);
	/*
	 * Open id for reading: either *fd (>= 0) to stream from, or a URL
	 * (short-lived) to redirect to in url.  1 found, 0 not, -1 error.
	 * A plugin that answers with a URL may return 1 without checking
	 * that the file exists (the host asks get_meta first).
	 */
	int (*open)(void *state, const char *id, int *fd, char *url,
	    size_t urllen, char *err, size_t errlen);
	/* Remove id and its metadata: 1 removed, 0 not found, -1 error. */
	int (*remove)(void *state, const char *id, char *err, size_t errlen);
	/*
	 * Metadata (optional, ABI 1 additions: NULL in older plugins).  The
	 * host keeps a small document (its own JSON, NUL-terminated, at most
	 * PARLEY_MEDIA_META_MAX bytes) with each file: content type, size,
	 * sha256, uploader, rooms it was shared in.  put_meta stores or
	 * replaces it (after put_file succeeded); get_meta copies it into buf:
	 * 1 found, 0 not found, -1 error (also when buflen is too small).
	 * Plugins without them: the host serves application/octet-stream as
	 * an attachment and lets any authenticated user fetch.
	 */
	int (*put_meta)(void *state, const char *id, const char *meta,
	    char *err, size_t errlen);
	int (*get_meta)(void *state, const char *id, char *buf,
	    size_t buflen, char *err, size_t errlen);
	/*
	 * Optional: like open, also telling the plugin the Content-Type and
	 * Content-Disposition the host wants the file served with, so that
	 * a plugin answering with a URL can sign them into it (S3's
	 * response-content-type and response-content-disposition).  NULL:
	 * the host calls open.
	 */
	int (*open_as)(void *state, const char *id, const char *content_type,
	    const char *disposition, int *fd, char *url, size_t urllen,
	    char *err, size_t errlen);
	void *spare[5];
};

/* ---------------------------------------------------------------- */
/* the plugin description                                             */

struct parley_plugin {
	unsigned abi_version;	/* PARLEY_ABI_VERSION */
	int kind;		/* enum parley_plugin_kind */
	const char *name;	/* also the INI section it reads */
	const char *version;
	const char *description;
	/*
	 * Create an instance.  Read config through host, keep host and ctx.
	 * Returns 0 with *state set, or -1 after logging why (start-up
	 * stops).  May block (called before the loop runs).
	 */
	int (*init)(const struct parley_host *host, struct parley_ctx *ctx,
	    void **state);
	/*
	 * Destroy the instance (loop stopped; may block).  A backplane calls
	 * the callbacks of publishes still unsettled with status -1.
	 */
	void (*fini)(void *state);
	/*
	 * Optional: re-read configuration or data files on SIGHUP without
	 * dropping connections ("worker": may block).  Return 0, or -1 after
	 * logging why (the old data stays in use).
	 */
	int (*reload)(void *state);
	/* Exactly one of these, matching kind. */
	const struct parley_backplane_ops *backplane;
	const struct parley_storage_ops *storage;
	const struct parley_media_ops *media;
	const struct parley_auth_ops *auth;
	/*
	 * Optional (added in place of a spare pointer: NULL in older
	 * plugins): check this instance's configuration for `parleyd -t`.
	 * Read and validate every key init reads, and read (never write)
	 * any file they name, with the same config_* functions and the same
	 * messages as init -- but connect to nothing, create nothing, and
	 * leave nothing running when it returns (no thread, no timer; a
	 * library handle made only to validate settings is destroyed before
	 * returning).  Return 0 if init would accept the configuration, -1
	 * after logging why.  May block briefly (called before any loop
	 * runs; the host calls nothing else of the instance, not fini).
	 * NULL: -t only checks that the plugin loads.  The simplest way to
	 * write it: one function that reads the section into a struct,
	 * called by both init and check.
	 */
	int (*check)(const struct parley_host *host, struct parley_ctx *ctx);
	void *spare[6];
};

typedef const struct parley_plugin *(*parley_plugin_entry_fn)(void);

/* Mark the entry point exported even under -fvisibility=hidden. */
#define PARLEY_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Each plugin defines this, and exports nothing else. */
PARLEY_PLUGIN_EXPORT const struct parley_plugin *parley_plugin_entry(void);

#ifdef __cplusplus
}
#endif
#endif /* PARLEY_PLUGIN_H */
