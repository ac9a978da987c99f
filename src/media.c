/*
 * media.c - media upload and download (see media.h).
 *
 * Upload, one request:
 *   headers parsed (http.c calls media_upload_begin): credentials, claimed
 *	type or multipart boundary, ?name= and ?room= are read; a declared
 *	Content-Length over [media] max_size is refused at once; the auth
 *	chain starts on a worker.
 *   body pieces (media_upload_data): multipart is unwrapped on the fly;
 *	file bytes collect in `pending` and go to a spool file in chunks, one
 *	write job at a time (so hashing is in order); reading from the client
 *	stops while more than SPOOL_HIGH bytes wait for the writer.
 *   request complete (media_handle): once auth and the writer are done,
 *	the type is decided (image magic sniffed; a claimed image type that
 *	does not sniff becomes application/octet-stream), checked against
 *	[media] allowed_types, and a worker hands the spool to the plugin
 *	(put_file, then put_meta with the metadata JSON) and removes it.
 * Any failure is answered only after the spool is gone, so "413" means
 * nothing of the upload is left anywhere.
 *
 * Download: auth, metadata, permission (the uploader, an admin, or anyone
 * who may read a room the media was shared in), then the plugin's fd
 * (streamed with sendfile) or presigned URL (302), on a worker.
 *
 * Metadata (the plugin stores it, the host defines it):
 *   {"v":1, "id", "content_type", "size", "sha256", "uploader",
 *    "created" (ms), "name", "rooms": [...]}
 *
 * Ownership: a struct media_upload is refcounted: one reference for the
 * HTTP request (then for the handler that answers it), one per job in
 * flight.  Loop thread, except the *_work functions.
 */
#define _GNU_SOURCE		/* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "access.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "plugin.h"
#include "util.h"
#include "worker.h"

#define SPOOL_CHUNK	(256 * 1024)	/* hand the writer this much at once */
#define SPOOL_HIGH	(1024 * 1024)	/* stop reading above this backlog */
#define MP_HEADERS_MAX	8192		/* one part's header block */
#define MP_OVERHEAD	(64 * 1024)	/* multipart framing over max_size */
#define ROOMS_MAX	64		/* rooms recorded per media */
#define CACHE_MAX	4096		/* media metadata kept in memory */
#define NAME_MAX_LEN	255

#define DEFAULT_MAX_SIZE	"10m"
#define DEFAULT_TYPES	"image/*, video/*, audio/*, text/plain, " \
	"application/pdf, application/zip, application/octet-stream"

static struct config *cfg;
static int64_t max_size = 10 * 1024 * 1024;
static char **allowed;		/* lowercase patterns: a/b, a/any, any */
static size_t nallowed;
static const char *spool_dir = "/tmp";
static int config_bad;		/* media_config failed: refuse uploads */
static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------ config */

static int
type_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	    strchr("!#$&^_.+-", ch) != NULL;
}

/* "type/subtype", lowercase, token characters; 1 if so. */
static int
type_valid(const char *t, int wildcards)
{
	const char *slash = strchr(t, '/');
	const char *p;

	if (slash == NULL || slash == t || slash[1] == '\0')
		return 0;
	if (wildcards && strcmp(t, "*/*") == 0)
		return 1;
	for (p = t; p < slash; p++)
		if (!type_char((unsigned char)*p))
			return 0;
	if (wildcards && strcmp(slash + 1, "*") == 0)
		return 1;
	for (p = slash + 1; *p != '\0'; p++)
		if (!type_char((unsigned char)*p) || *p == '/')
			return 0;
	return 1;
}

static void
free_allowed(void)
{
	size_t i;

	for (i = 0; i < nallowed; i++)
		free(allowed[i]);
	free(allowed);
	allowed = NULL;
	nallowed = 0;
}

static int
parse_allowed(const struct config *c, const char *val)
{
	const char *p = val;

	free_allowed();
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		char item[128], **na;
		size_t i, j = 0;

		for (i = 0; i < n; i++) {
			int ch = (unsigned char)p[i];

			if (ch == ' ' || ch == '\t')
				continue;
			if (j + 1 < sizeof(item))
				item[j++] = (char)(ch >= 'A' && ch <= 'Z' ?
				    ch + 32 : ch);
		}
		item[j] = '\0';
		if (j > 0) {
			if (!type_valid(item, 1)) {
				fprintf(stderr, "parleyd: %s: [media] "
				    "allowed_types = '%s': '%s' is not a media "
				    "type (allowed: type/subtype, type/*, */*, "
				    "comma-separated)\n", c && c->file ?
				    c->file : "(config)", val, item);
				free_allowed();
				return -1;
			}
			if ((na = realloc(allowed, (nallowed + 1) *
			    sizeof(*na))) == NULL)
				return -1;
			allowed = na;
			if ((allowed[nallowed] = strdup(item)) == NULL)
				return -1;
			nallowed++;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (nallowed == 0) {
		fprintf(stderr, "parleyd: %s: [media] allowed_types = '%s': "
		    "empty (allowed: type/subtype, type/*, */*, "
		    "comma-separated)\n", c && c->file ? c->file : "(config)",
		    val);
		return -1;
	}
	return 0;
}

int
media_config(struct config *c)
{
	long long v;
	const char *t;

	cfg = c;
	config_bad = 0;
	if ((t = getenv("TMPDIR")) != NULL && t[0] == '/')
		spool_dir = t;
	if (config_parse_size(c, "media", "max_size", config_raw(c, "media",
	    "max_size", DEFAULT_MAX_SIZE), 1, 64LL << 30, &v) == -1 ||
	    parse_allowed(c, config_raw(c, "media", "allowed_types",
	    DEFAULT_TYPES)) == -1) {
		config_bad = 1;
		return -1;
	}
	max_size = v;
	return 0;
}

static int
type_allowed(const char *t)
{
	size_t i, n;

	for (i = 0; i < nallowed; i++) {
		const char *a = allowed[i];

		if (strcmp(a, "*/*") == 0 || strcmp(a, t) == 0)
			return 1;
		n = strlen(a);
		if (n >= 2 && strcmp(a + n - 2, "/*") == 0 &&
		    strncmp(a, t, n - 1) == 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ helpers */

int
media_id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return 0;
	for (i = 0; id[i] != '\0'; i++) {
		char ch = id[i];

		if (i >= PARLEY_ID_MAX ||
		    !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return 0;
	}
	return i > 0;
}

/* 22 characters of base64url from 128 random bits.  0 or -1. */
static int
new_id(char *out, size_t len)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char r[16];
	size_t i, bit;

	if (len < 23 || getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	for (i = 0, bit = 0; i < 22; i++, bit += 6) {
		size_t byte = bit / 8, off = bit % 8;
		unsigned v = (unsigned)r[byte] << 8;

		if (byte + 1 < sizeof(r))
			v |= r[byte + 1];
		out[i] = b64[(v >> (10 - off)) & 0x3f];
	}
	out[22] = '\0';
	return 0;
}

/* The safe image types, by their magic numbers; NULL if none. */
static const char *
sniff(const unsigned char *b, size_t n)
{
	if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return "image/jpeg";
	if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 ||
	    memcmp(b, "GIF89a", 6) == 0))
		return "image/gif";
	if (n >= 12 && memcmp(b, "RIFF", 4) == 0 &&
	    memcmp(b + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

static int
safe_image(const char *t)
{
	return strcmp(t, "image/png") == 0 || strcmp(t, "image/jpeg") == 0 ||
	    strcmp(t, "image/gif") == 0 || strcmp(t, "image/webp") == 0;
}

/* A Content-Type value to a bare lowercase type, or "" if malformed. */
static void
norm_type(const char *v, char *out, size_t len)
{
	size_t i = 0;

	out[0] = '\0';
	if (v == NULL)
		return;
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v != '\0' && *v != ';' && *v != ' ' && *v != '\t'; v++) {
		if (i + 1 >= len)
			return;
		out[i++] = (char)(*v >= 'A' && *v <= 'Z' ? *v + 32 : *v);
	}
	out[i] = '\0';
	if (!type_valid(out, 0))
		out[0] = '\0';
}

/*
 * A file name a client gave (multipart filename, ?name=) made safe to
 * keep and echo: the last path component, valid UTF-8, no control
 * characters, at most NAME_MAX_LEN bytes.
 */
static void
clean_name(const char *in, size_t n, char *out, size_t len)
{
	const char *p = in, *e = in + n;
	size_t i, o = 0;

	for (i = 0; i < n; i++)
		if (in[i] == '/' || in[i] == '\\')
			p = in + i + 1;
	for (; p < e && o + 1 < len && o < NAME_MAX_LEN; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 || ch == 0x7f)
			continue;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	/* cut back to valid UTF-8 (a truncated sequence, or garbage) */
	while (o > 0 && !utf8_valid((unsigned char *)out, o))
		out[--o] = '\0';
	if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		out[0] = '\0';
}

/*
 * Content-Disposition value for a file name (may be empty).  simple: an
 * ASCII filename only (for values signed into URLs, which some S3
 * implementations encode differently from RFC 3986 when they contain
 * !'()*), so those characters become '_' as well.
 */
static void
disposition(int inl, const char *name, int simple, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char ascii[NAME_MAX_LEN + 1], pct[NAME_MAX_LEN * 3 + 1];
	size_t i, a = 0, q = 0;
	int plain = 1;

	for (i = 0; name[i] != '\0' && a < NAME_MAX_LEN; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch >= 0x80)
			plain = 0;
		ascii[a++] = (ch < 0x20 || ch >= 0x7f || ch == '"' ||
		    ch == '\\' || ch == ';' || ch == '%' || (simple &&
		    strchr("!'()*", ch) != NULL)) ? '_' : (char)ch;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL)
			pct[q++] = (char)ch;
		else {
			pct[q++] = '%';
			pct[q++] = hex[ch >> 4];
			pct[q++] = hex[ch & 15];
		}
	}
	ascii[a] = '\0';
	pct[q] = '\0';
	if (a == 0)
		snprintf(out, len, "%s", inl ? "inline" : "attachment");
	else if (plain || simple)
		snprintf(out, len, "%s; filename=\"%s\"", inl ? "inline" :
		    "attachment", ascii);
	else if ((size_t)snprintf(out, len, "%s; filename=\"%s\"; "
	    "filename*=UTF-8''%s", inl ? "inline" : "attachment", ascii,
	    pct) >= len)
		/* too long for out: the ASCII form alone */
		snprintf(out, len, "%s; filename=\"%.200s\"", inl ? "inline" :
		    "attachment", ascii);
}

static int
has_get_meta(void)
{
	const struct parley_media_ops *o = plugins.media->p->media;

	return o->size >= offsetof(struct parley_media_ops, get_meta) +
	    sizeof(o->get_meta) && o->get_meta != NULL && o->put_meta != NULL;
}

/* Parsed metadata.  Strings point into root. */
struct minfo {
	json_t *root;
	const char *content_type;
	const char *sha256;
	const char *uploader;
	const char *name;
	json_int_t size;
	json_t *rooms;		/* array of strings, may be NULL */
};

static int
minfo_parse(const char *s, struct minfo *mi)
{
	json_error_t e;

	memset(mi, 0, sizeof(*mi));
	if ((mi->root = json_loads(s, 0, &e)) == NULL)
		return -1;
	if (json_unpack(mi->root, "{s:s, s:I, s?s, s?s, s?s, s?o}",
	    "content_type", &mi->content_type, "size", &mi->size, "sha256",
	    &mi->sha256, "uploader", &mi->uploader, "name", &mi->name,
	    "rooms", &mi->rooms) != 0) {
		json_decref(mi->root);
		mi->root = NULL;
		return -1;
	}
	if (mi->rooms != NULL && !json_is_array(mi->rooms))
		mi->rooms = NULL;
	if (!type_valid(mi->content_type, 0))
		mi->content_type = "application/octet-stream";
	return 0;
}

static void
minfo_free(struct minfo *mi)
{
	json_decref(mi->root);
	mi->root = NULL;
}

static int
in_rooms(json_t *rooms, const char *room)
{
	size_t i;
	json_t *v;

	json_array_foreach(rooms, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), room) == 0)
			return 1;
	return 0;
}

/*
 * May login read media with this metadata?  The uploader and admins may;
 * others need read permission in a room it was shared in.
 */
static int
may_read(const struct minfo *mi, const char *login, const char *roles,
    const char *grants)
{
	size_t i;
	json_t *v;

	if (mi->uploader != NULL && strcmp(mi->uploader, login) == 0)
		return 1;
	if (access_perms(login, roles, grants, "") & PERM_ADMIN)
		return 1;
	if (mi->rooms == NULL)
		return 0;
	json_array_foreach(mi->rooms, i, v)
		if (json_is_string(v) && (access_perms(login, roles, grants,
		    json_string_value(v)) & PERM_READ))
			return 1;
	return 0;
}

/* ------------------------------------------------------------ cache */

/*
 * Metadata of recently uploaded or looked-up media (loop thread): media_share
 * answers from it without a round trip to the plugin in the common case (a
 * client uploads, then sends the message).
 */
struct mentry {
	char id[PARLEY_ID_MAX + 1];
	char uploader[PARLEY_LOGIN_MAX + 1];
	char *rooms[ROOMS_MAX];
	size_t nrooms;
	TAILQ_ENTRY(mentry) entry;
};
TAILQ_HEAD(mentry_q, mentry);
static struct mentry_q lru = TAILQ_HEAD_INITIALIZER(lru);
static struct strmap cache;
static int cache_ready;
static size_t ncache;

static void
mentry_free(struct mentry *e)
{
	size_t i;

	for (i = 0; i < e->nrooms; i++)
		free(e->rooms[i]);
	free(e);
}

static void
cache_del(const char *id)
{
	struct mentry *e;

	if (!cache_ready || (e = strmap_del(&cache, id)) == NULL)
		return;
	TAILQ_REMOVE(&lru, e, entry);
	ncache--;
	mentry_free(e);
}

static struct mentry *
cache_get(const char *id)
{
	struct mentry *e;

	if (!cache_ready || (e = strmap_get(&cache, id)) == NULL)
		return NULL;
	TAILQ_REMOVE(&lru, e, entry);
	TAILQ_INSERT_HEAD(&lru, e, entry);
	return e;
}

/* Remember id's uploader and rooms (replacing what was known). */
static void
cache_put(const char *id, const char *uploader, json_t *rooms)
{
	struct mentry *e;
	size_t i;
	json_t *v;

	if (!cache_ready) {
		strmap_init(&cache);
		cache_ready = 1;
	}
	cache_del(id);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	snprintf(e->id, sizeof(e->id), "%s", id);
	snprintf(e->uploader, sizeof(e->uploader), "%s",
	    uploader ? uploader : "");
	if (rooms != NULL)
		json_array_foreach(rooms, i, v) {
			if (e->nrooms == ROOMS_MAX || !json_is_string(v))
				break;
			if ((e->rooms[e->nrooms] =
			    strdup(json_string_value(v))) != NULL)
				e->nrooms++;
		}
	if (strmap_put(&cache, e->id, e) == -1) {
		mentry_free(e);
		return;
	}
	TAILQ_INSERT_HEAD(&lru, e, entry);
	if (++ncache > CACHE_MAX) {
		e = TAILQ_LAST(&lru, mentry_q);
		cache_del(e->id);
	}
}

/* ------------------------------------------------------------ uploads */

enum mp_state { MP_PREAMBLE, MP_DELIM, MP_HEADERS, MP_DATA, MP_END };

#define AUTH_PENDING	(-1)
#define AUTH_SKIPPED	(-2)	/* refused before asking */

struct media_upload {
	int refcnt;
	struct conn *c;		/* NULL once the request is gone */
	int attached;		/* still owned by the HTTP request */
	int handled;		/* media_handle took it; answer when done */
	int answered;
	int storing;		/* the store job runs */
	char peer[112];			/* conn's peer, for logs */
	char ip[48];			/* conn's client address */
	/* what the client said */
	char *login, *pass, *bearer;
	char room[PARLEY_ROOM_MAX + 1];
	char name[NAME_MAX_LEN + 1];
	char claimed[128];
	/* auth: the worker fills auth_result, id, why, perms; auth_done
	 * (loop) copies the result to auth */
	int auth;
	int auth_result;
	struct parley_identity id;
	char why[256];
	unsigned perms;
	/* spool: touched by one job at a time (busy) */
	int fd;
	char path[PATH_MAX];
	int busy;		/* a spool job is running */
	int werr;		/* errno of a failed spool write */
	EVP_MD_CTX *sha;
	struct evbuffer *pending;	/* file bytes the writer has not got */
	unsigned char head[16];
	size_t headlen;
	int64_t size;		/* file bytes accepted */
	int64_t limit;		/* raw body bytes allowed */
	int paused;
	/* the first problem: HTTP status and message */
	int status;
	char err[256];
	/* multipart/form-data */
	int multipart;
	char delim[80];		/* "\r\n--" boundary */
	size_t dlen;
	enum mp_state mp;
	struct evbuffer *mpbuf;
	int in_file, have_file;
	int64_t body;		/* raw body bytes seen */
	/* the stored file */
	char mid[PARLEY_ID_MAX + 1];
	char ct[128];
	char sha_hex[65];
	char *meta;
	char store_err[256];
	int store_status;
};

static void check_done(struct media_upload *u);
static void kick(struct media_upload *u);

int
media_upload_path(const char *path)
{
	return strcmp(path, "/api/v1/media") == 0 ||
	    strcmp(path, "/api/v1/media/") == 0;
}

static void
upload_ref(struct media_upload *u)
{
	u->refcnt++;
}

static void
spool_cleanup_work(void *arg)
{
	struct media_upload *u = arg;

	if (u->fd != -1)
		close(u->fd);
	u->fd = -1;
	if (u->path[0] != '\0')
		unlink(u->path);
	u->path[0] = '\0';
}

static void
upload_destroy(struct media_upload *u)
{
	if (u->fd != -1 || u->path[0] != '\0')
		spool_cleanup_work(u);	/* rare: dropped mid-job paths */
	if (u->sha != NULL)
		EVP_MD_CTX_free(u->sha);
	if (u->pending != NULL)
		evbuffer_free(u->pending);
	if (u->mpbuf != NULL)
		evbuffer_free(u->mpbuf);
	free(u->login);
	free(u->pass);
	free(u->bearer);
	free(u->meta);
	free(u);
}

static void
upload_unref(struct media_upload *u)
{
	if (--u->refcnt > 0)
		return;
	upload_destroy(u);
}

static void
resume_reading(struct media_upload *u)
{
	struct conn *c = u->c;

	if (!u->paused)
		return;
	u->paused = 0;
	if (c != NULL && !c->closed && !c->closing && !c->reading_paused &&
	    c->bev != NULL)
		bufferevent_enable(c->bev, EV_READ);
}

static void
fail(struct media_upload *u, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first problem; the rest of the body is read and dropped. */
static void
fail(struct media_upload *u, int status, const char *fmt, ...)
{
	va_list ap;

	if (u->status != 0)
		return;
	u->status = status;
	va_start(ap, fmt);
	vsnprintf(u->err, sizeof(u->err), fmt, ap);
	va_end(ap);
	if (u->pending != NULL)
		evbuffer_drain(u->pending, evbuffer_get_length(u->pending));
	if (u->mpbuf != NULL)
		evbuffer_drain(u->mpbuf, evbuffer_get_length(u->mpbuf));
	resume_reading(u);
	if (status != 401)
		log_client(u->ip, "%s: media upload refused (%d): %s",
		    u->peer, status, u->err);
}

/* --- spool writer: one job at a time, in order */

struct wjob {
	struct media_upload *u;
	struct evbuffer *buf;
	int err;
};

static void
write_work(void *arg)
{
	struct wjob *w = arg;
	struct media_upload *u = w->u;
	struct evbuffer_iovec v[16];
	int n, i;

	if (u->fd == -1) {
		snprintf(u->path, sizeof(u->path), "%s/parley-upload-XXXXXX",
		    spool_dir);
		if ((u->fd = mkostemp(u->path, O_CLOEXEC)) == -1) {
			w->err = errno;
			u->path[0] = '\0';
			return;
		}
	}
	while (evbuffer_get_length(w->buf) > 0) {
		size_t done = 0;

		n = evbuffer_peek(w->buf, -1, NULL, v, 16);
		if (n > 16)
			n = 16;
		for (i = 0; i < n; i++) {
			const char *p = v[i].iov_base;
			size_t left = v[i].iov_len;

			EVP_DigestUpdate(u->sha, p, left);
			while (left > 0) {
				ssize_t k = write(u->fd, p, left);

				if (k == -1) {
					if (errno == EINTR)
						continue;
					w->err = errno;
					return;
				}
				p += k;
				left -= (size_t)k;
			}
			done += v[i].iov_len;
		}
		evbuffer_drain(w->buf, done);
	}
}

static void
write_done(void *arg)
{
	struct wjob *w = arg;
	struct media_upload *u = w->u;

	u->busy = 0;
	if (w->err != 0) {
		log_error("media: cannot write the upload spool in %s: %s",
		    spool_dir, strerror(w->err));
		fail(u, 507, "cannot store the upload: %s", strerror(w->err));
	}
	evbuffer_free(w->buf);
	free(w);
	kick(u);		/* what came in meanwhile */
	if (u->paused && evbuffer_get_length(u->pending) < SPOOL_HIGH / 2)
		resume_reading(u);
	check_done(u);
	upload_unref(u);
}

static void
spool_drop_done(void *arg)
{
	struct media_upload *u = arg;

	u->busy = 0;
	check_done(u);
	upload_unref(u);
}

/* Run a spool job (write, or drop) on a worker; inline when stopping. */
static void
spool_job(struct media_upload *u, void (*work)(void *),
    void (*done)(void *), void *arg)
{
	u->busy = 1;
	upload_ref(u);
	if (worker_submit_client(work, done, arg) == -1) {
		work(arg);
		done(arg);
	}
}

/* Hand pending bytes to the writer when there are enough (or at the end). */
static void
kick(struct media_upload *u)
{
	struct wjob *w;
	size_t n = evbuffer_get_length(u->pending);

	if (u->busy || u->status != 0 || n == 0 ||
	    (n < SPOOL_CHUNK && !u->handled))
		return;
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->buf = evbuffer_new()) == NULL) {
		free(w);
		fail(u, 500, "out of memory");
		return;
	}
	w->u = u;
	evbuffer_add_buffer(w->buf, u->pending);
	spool_job(u, write_work, write_done, w);
}

/* Accept n file bytes (from p, or moved out of src). */
static void
emit(struct media_upload *u, const char *p, struct evbuffer *src, size_t n)
{
	if (u->status != 0 || n == 0) {
		if (src != NULL)
			evbuffer_drain(src, n);
		return;
	}
	if (u->size + (int64_t)n > max_size) {
		fail(u, 413, "upload larger than %lld bytes ([media] "
		    "max_size)", (long long)max_size);
		metrics_counter_add("parley_media_rejected_total",
		    "reason=\"too_large\"", 1);
		if (src != NULL)
			evbuffer_drain(src, n);
		return;
	}
	if (u->headlen < sizeof(u->head)) {
		size_t k = sizeof(u->head) - u->headlen;

		if (k > n)
			k = n;
		if (src != NULL)
			evbuffer_copyout(src, u->head + u->headlen, k);
		else
			memcpy(u->head + u->headlen, p, k);
		u->headlen += k;
	}
	if (src != NULL)
		evbuffer_remove_buffer(src, u->pending, n);
	else
		evbuffer_add(u->pending, p, n);
	u->size += (int64_t)n;
	kick(u);
	if (!u->paused && u->c != NULL && !u->c->closed &&
	    evbuffer_get_length(u->pending) >= SPOOL_HIGH) {
		/* the disk lags the network: let TCP push back */
		u->paused = 1;
		bufferevent_disable(u->c->bev, EV_READ);
	}
}

/* --- multipart/form-data, unwrapped as it streams */

/* Value of parameter name in a header value (quoted or token). */
static int
header_param(const char *v, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = v;

	while ((p = strchr(p, ';')) != NULL) {
		size_t o = 0;

		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, name, nl) != 0 || p[nl] != '=')
			continue;
		p += nl + 1;
		if (*p == '"') {
			/* no backslash escapes: browsers send Windows paths
			 * as they are (and a quote as %22) */
			for (p++; *p != '\0' && *p != '"'; p++)
				if (o + 1 < len)
					out[o++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' &&
			    *p != '\t'; p++)
				if (o + 1 < len)
					out[o++] = *p;
		}
		out[o] = '\0';
		return 1;
	}
	return 0;
}

/* A part's header block (h, n bytes): is it the file? */
static void
mp_part(struct media_upload *u, const char *h, size_t n)
{
	char line[MP_HEADERS_MAX + 1], fname[1024], ct[128];
	const char *p = h, *e = h + n;
	int has_name = 0;

	ct[0] = '\0';
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(e - p);

		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		memcpy(line, p, ll);
		line[ll] = '\0';
		if (strncasecmp(line, "content-disposition:", 20) == 0) {
			char *v = line + 20;

			/* "; filename=" needs a ';' before the value */
			if (header_param(v, "filename", fname, sizeof(fname)))
				has_name = 1;
		} else if (strncasecmp(line, "content-type:", 13) == 0)
			norm_type(line + 13, ct, sizeof(ct));
		p = nl ? nl + 1 : e;
	}
	u->in_file = 0;
	if (!has_name)
		return;		/* a plain form field: ignored */
	if (u->have_file) {
		fail(u, 400, "multipart/form-data with more than one file "
		    "part: upload one file per request");
		return;
	}
	u->have_file = 1;
	u->in_file = 1;
	if (u->name[0] == '\0')
		clean_name(fname, strlen(fname), u->name, sizeof(u->name));
	snprintf(u->claimed, sizeof(u->claimed), "%s",
	    ct[0] ? ct : "application/octet-stream");
}

/* Bytes [0, n) of mpbuf are part content (or preamble): keep or drop. */
static void
mp_content(struct media_upload *u, size_t n)
{
	if (u->mp == MP_DATA && u->in_file)
		emit(u, NULL, u->mpbuf, n);
	else
		evbuffer_drain(u->mpbuf, n);
}

static void
mp_feed(struct media_upload *u, const char *data, size_t len)
{
	struct evbuffer_ptr at;
	size_t avail;
	char two[2];

	if (u->mp == MP_END)
		return;		/* the epilogue */
	evbuffer_add(u->mpbuf, data, len);
	while (u->status == 0) {
		avail = evbuffer_get_length(u->mpbuf);
		switch (u->mp) {
		case MP_PREAMBLE:
		case MP_DATA:
			at = evbuffer_search(u->mpbuf, u->delim, u->dlen, NULL);
			if (at.pos >= 0) {
				mp_content(u, (size_t)at.pos);
				evbuffer_drain(u->mpbuf, u->dlen);
				u->mp = MP_DELIM;
				u->in_file = 0;
				break;
			}
			/* keep what could be the start of a delimiter */
			if (avail > u->dlen - 1)
				mp_content(u, avail - (u->dlen - 1));
			return;
		case MP_DELIM:
			if (avail < 2)
				return;
			evbuffer_copyout(u->mpbuf, two, 2);
			if (two[0] == '-' && two[1] == '-') {
				u->mp = MP_END;
				evbuffer_drain(u->mpbuf, avail);
				return;
			}
			if (two[0] == ' ' || two[0] == '\t') {
				evbuffer_drain(u->mpbuf, 1);	/* padding */
				break;
			}
			if (two[0] != '\r' || two[1] != '\n') {
				fail(u, 400, "malformed multipart/form-data "
				    "body (bad boundary line)");
				return;
			}
			evbuffer_drain(u->mpbuf, 2);
			u->mp = MP_HEADERS;
			break;
		case MP_HEADERS:
			if (avail >= 2) {
				evbuffer_copyout(u->mpbuf, two, 2);
				if (two[0] == '\r' && two[1] == '\n') {
					/* a part without headers */
					evbuffer_drain(u->mpbuf, 2);
					mp_part(u, "", 0);
					u->mp = MP_DATA;
					break;
				}
			}
			at = evbuffer_search(u->mpbuf, "\r\n\r\n", 4, NULL);
			if (at.pos < 0) {
				if (avail > MP_HEADERS_MAX)
					fail(u, 400, "multipart part headers "
					    "longer than %d bytes",
					    MP_HEADERS_MAX);
				return;
			}
			if (at.pos > MP_HEADERS_MAX) {
				fail(u, 400, "multipart part headers longer "
				    "than %d bytes", MP_HEADERS_MAX);
				return;
			}
			{
				char *h = (char *)evbuffer_pullup(u->mpbuf,
				    at.pos + 4);

				mp_part(u, h, (size_t)at.pos + 2);
			}
			evbuffer_drain(u->mpbuf, (size_t)at.pos + 4);
			u->mp = MP_DATA;
			break;
		case MP_END:
			evbuffer_drain(u->mpbuf, avail);
			return;
		}
	}
}

/* --- auth, on a worker while the body streams in */

static void
auth_work(void *arg)
{
	struct media_upload *u = arg;
	struct parley_credentials cred;

	memset(&cred, 0, sizeof(cred));
	cred.login = u->login;
	cred.passcode = u->pass;
	cred.bearer = u->bearer;
	cred.remote_addr = u->ip;
	u->auth_result = plugins_authenticate(&cred, &u->id, u->why,
	    sizeof(u->why));
	if (u->auth_result == PARLEY_AUTH_ALLOW && u->room[0] != '\0')
		u->perms = access_perms(u->id.login, u->id.roles,
		    u->id.grants, u->room);
}

static void
auth_done(void *arg)
{
	struct media_upload *u = arg;

	u->auth = u->auth_result;
	if (u->auth != PARLEY_AUTH_ALLOW) {
		u->auth = PARLEY_AUTH_DENY;
		log_client(u->ip, "%s: media upload: authentication failed: %s",
		    u->peer, u->why);
		fail(u, 401, "authentication required");
	} else if (u->room[0] != '\0' && !(u->perms & PERM_WRITE)) {
		metrics_counter_add("parley_denied_total", NULL, 1);
		fail(u, 403, "permission denied: write on room %s", u->room);
	}
	check_done(u);
	upload_unref(u);
}

struct media_upload *
media_upload_begin(struct conn *c, struct http_req *r, int64_t clen)
{
	struct media_upload *u;
	const char *ct;
	char b[128], room[PARLEY_ROOM_MAX + 2];

	if (plugins.media == NULL)
		return NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->refcnt = 1;
	u->c = c;
	u->attached = 1;
	u->fd = -1;
	u->auth = AUTH_SKIPPED;
	snprintf(u->peer, sizeof(u->peer), "%s", c->peer);
	snprintf(u->ip, sizeof(u->ip), "%s", c->ip);
	if ((u->pending = evbuffer_new()) == NULL ||
	    (u->sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
		upload_destroy(u);
		return NULL;
	}
	u->limit = max_size;
	ct = http_header(r, "content-type");
	if (config_bad) {
		fail(u, 500, "media is misconfigured (see the server log)");
		return u;
	}
	if (ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0) {
		u->multipart = 1;
		u->limit = max_size + MP_OVERHEAD;
		if (!header_param(ct, "boundary", b, sizeof(b)) ||
		    b[0] == '\0' || strlen(b) > 70) {
			fail(u, 400, "multipart/form-data needs a boundary "
			    "parameter of 1 to 70 characters");
			return u;
		}
		u->dlen = (size_t)snprintf(u->delim, sizeof(u->delim),
		    "\r\n--%s", b);
		if ((u->mpbuf = evbuffer_new()) == NULL) {
			fail(u, 500, "out of memory");
			return u;
		}
		/* the first delimiter has no CRLF before it: pretend one */
		evbuffer_add(u->mpbuf, "\r\n", 2);
		u->mp = MP_PREAMBLE;
	} else {
		norm_type(ct, u->claimed, sizeof(u->claimed));
		if (u->claimed[0] == '\0')
			snprintf(u->claimed, sizeof(u->claimed),
			    "application/octet-stream");
	}
	if (http_query(r, "name", b, sizeof(b)))
		clean_name(b, strlen(b), u->name, sizeof(u->name));
	if (http_query(r, "room", room, sizeof(room))) {
		if (!room_name_valid(room, strlen(room))) {
			fail(u, 400, "invalid room name");
			return u;
		}
		snprintf(u->room, sizeof(u->room), "%s", room);
	}
	if (rest_credentials(r, &u->login, &u->pass, &u->bearer) == -1) {
		fail(u, 400, "malformed Authorization header");
		return u;
	}
	if (clen > u->limit) {
		fail(u, 413, "upload of %lld bytes is larger than %lld bytes "
		    "([media] max_size)", (long long)clen,
		    (long long)max_size);
		metrics_counter_add("parley_media_rejected_total",
		    "reason=\"too_large\"", 1);
		return u;
	}
	u->auth = AUTH_PENDING;
	upload_ref(u);
	if (worker_submit_client(auth_work, auth_done, u) == -1) {
		upload_unref(u);
		u->auth = AUTH_SKIPPED;
		fail(u, 503, "server shutting down");
	}
	return u;
}

int
media_upload_accepting(const struct media_upload *u)
{
	return u->status == 0;
}

void
media_upload_data(struct media_upload *u, const char *data, size_t len)
{
	u->body += (int64_t)len;
	if (u->status != 0)
		return;
	if (u->body > u->limit) {
		fail(u, 413, "upload larger than %lld bytes ([media] "
		    "max_size)", (long long)max_size);
		metrics_counter_add("parley_media_rejected_total",
		    "reason=\"too_large\"", 1);
		return;
	}
	if (u->multipart)
		mp_feed(u, data, len);
	else
		emit(u, data, NULL, len);
}

void
media_upload_free(struct media_upload *u)
{
	u->attached = 0;
	if (!u->handled) {
		/* answered without us, or the connection is gone */
		if (u->status == 0)
			u->status = -1;
		evbuffer_drain(u->pending, evbuffer_get_length(u->pending));
		resume_reading(u);
		u->c = NULL;
		check_done(u);
	}
	upload_unref(u);
}

/* --- the end of an upload */

static void
answer_upload(struct media_upload *u, int status, const char *ctype,
    const char *extra, const char *body)
{
	struct conn *c = u->c;

	u->answered = 1;
	resume_reading(u);
	u->c = NULL;
	http_respond(c, status, ctype, extra, body, strlen(body));
	upload_unref(u);	/* the handler's reference */
}

static void
answer_upload_error(struct media_upload *u, int status, const char *msg)
{
	json_t *j = json_pack("{s:i, s:s}", "status", status, "error", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	answer_upload(u, status, "application/json", status == 401 ?
	    "WWW-Authenticate: Basic realm=\"parley\"\r\n" : NULL,
	    s ? s : "{}");
	free(s);
	json_decref(j);
}

static void
store_work(void *arg)
{
	struct media_upload *u = arg;
	const struct parley_media_ops *ops = plugins.media->p->media;
	void *st = plugins.media->state;
	char e2[256];

	u->store_status = 0;
	if (ops->put_file(st, u->mid, u->path, u->ct, u->store_err,
	    sizeof(u->store_err)) != 0)
		u->store_status = -1;
	else if (has_get_meta() && ops->put_meta(st, u->mid, u->meta,
	    u->store_err, sizeof(u->store_err)) != 0) {
		u->store_status = -1;
		e2[0] = '\0';
		ops->remove(st, u->mid, e2, sizeof(e2));
	}
	spool_cleanup_work(u);
}

static void
store_done(void *arg)
{
	struct media_upload *u = arg;
	json_t *o;
	char *s, url[128];

	u->busy = 0;
	u->storing = 0;
	if (u->store_status != 0) {
		log_error("media: storing %s (%lld bytes) with the %s plugin "
		    "failed: %s", u->mid, (long long)u->size,
		    plugins.media->name, u->store_err);
		metrics_counter_add("parley_media_rejected_total",
		    "reason=\"storage\"", 1);
		answer_upload_error(u, 503, "media storage unavailable");
		upload_unref(u);
		return;
	}
	log_info("%s: %s uploaded media %s (%lld bytes, %s%s%s)", u->peer,
	    u->id.login, u->mid, (long long)u->size, u->ct,
	    u->room[0] ? ", room " : "", u->room);
	metrics_counter_add("parley_media_uploads_total", NULL, 1);
	metrics_counter_add("parley_media_upload_bytes_total", NULL,
	    (double)u->size);
	{
		json_t *rooms = json_array();

		if (u->room[0] != '\0')
			json_array_append_new(rooms, json_string(u->room));
		cache_put(u->mid, u->id.login, rooms);
		json_decref(rooms);
	}
	snprintf(url, sizeof(url), "/api/v1/media/%s", u->mid);
	o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", u->mid, "url",
	    url, "size", (json_int_t)u->size, "content_type", u->ct,
	    "sha256", u->sha_hex, "name", u->name);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (s == NULL)
		answer_upload_error(u, 500, "cannot encode JSON");
	else {
		char loc[160];

		snprintf(loc, sizeof(loc), "Location: %s\r\n", url);
		answer_upload(u, 201, "application/json", loc, s);
	}
	free(s);
	json_decref(o);
	upload_unref(u);
}

/* Everything the upload waited for is here: decide and store. */
static void
start_store(struct media_upload *u)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, i;
	const char *sn;
	json_t *m;

	EVP_DigestFinal_ex(u->sha, md, &mdlen);
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(u->sha_hex + 2 * i, 3, "%02x", md[i]);
	/* images: believe the bytes, never the claim */
	if ((sn = sniff(u->head, u->headlen)) != NULL)
		snprintf(u->ct, sizeof(u->ct), "%s", sn);
	else if (strncmp(u->claimed, "image/", 6) == 0)
		snprintf(u->ct, sizeof(u->ct), "application/octet-stream");
	else
		snprintf(u->ct, sizeof(u->ct), "%s", u->claimed);
	if (!type_allowed(u->ct)) {
		char msg[256];

		snprintf(msg, sizeof(msg), "content type %s is not allowed "
		    "here ([media] allowed_types)", u->ct);
		log_client(u->ip, "%s: media upload refused (415): %s", u->peer,
		    msg);
		metrics_counter_add("parley_media_rejected_total",
		    "reason=\"type\"", 1);
		/* the spool goes first: nothing of it stays */
		u->status = 415;
		snprintf(u->err, sizeof(u->err), "%s", msg);
		check_done(u);
		return;
	}
	if (new_id(u->mid, sizeof(u->mid)) == -1) {
		fail(u, 500, "no randomness for a media id");
		check_done(u);
		return;
	}
	m = json_pack("{s:i, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:[]}", "v", 1,
	    "id", u->mid, "content_type", u->ct, "size", (json_int_t)u->size,
	    "sha256", u->sha_hex, "uploader", u->id.login, "created",
	    (json_int_t)now_ms(), "name", u->name, "rooms");
	if (m != NULL && u->room[0] != '\0')
		json_array_append_new(json_object_get(m, "rooms"),
		    json_string(u->room));
	u->meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	if (u->meta == NULL) {
		fail(u, 500, "out of memory");
		check_done(u);
		return;
	}
	u->storing = 1;
	spool_job(u, store_work, store_done, u);
}

/*
 * Called whenever something the upload waits for finishes: answer when
 * the request is complete, auth has answered and the spool is quiet.
 */
static void
check_done(struct media_upload *u)
{
	if (!u->handled && !u->attached) {
		/* abandoned (the connection went away): just clean up */
		if (!u->busy && (u->fd != -1 || u->path[0] != '\0'))
			spool_job(u, spool_cleanup_work, spool_drop_done, u);
		return;
	}
	if (!u->handled || u->answered || u->storing || u->busy ||
	    u->auth == AUTH_PENDING)
		return;
	if (u->status != 0 || u->auth == PARLEY_AUTH_DENY) {
		/* drop the spool first: an error leaves nothing behind */
		if (u->fd != -1 || u->path[0] != '\0') {
			spool_job(u, spool_cleanup_work, spool_drop_done, u);
			return;
		}
		if (u->auth == PARLEY_AUTH_DENY)
			answer_upload_error(u, 401, "authentication required");
		else
			answer_upload_error(u, u->status > 0 ? u->status : 500,
			    u->err);
		return;
	}
	if (evbuffer_get_length(u->pending) > 0) {
		kick(u);
		return;
	}
	start_store(u);
}

static void
handle_upload(struct conn *c, struct http_req *r)
{
	struct media_upload *u = r->upload;

	r->upload = NULL;	/* ours now: the request's reference too */
	u->attached = 0;
	u->handled = 1;
	http_defer(c);
	if (u->status == 0 && u->multipart) {
		if (u->mp != MP_END)
			fail(u, 400, "malformed multipart/form-data body "
			    "(it ends without its closing boundary)");
		else if (!u->have_file)
			fail(u, 400, "multipart/form-data without a file "
			    "part (a part with a filename)");
	}
	if (u->status == 0 && u->size == 0)
		fail(u, 400, "empty upload");
	check_done(u);
}

/* ------------------------------------------------------------ fetch */

enum fop { F_GET, F_HEAD, F_DELETE };

struct fjob {
	struct conn *c;
	enum fop op;
	char mid[PARLEY_ID_MAX + 1];
	char *login, *pass, *bearer;
	char peer[112];			/* conn's peer, for logs */
	char ip[48];			/* conn's client address */
	char inm[160];		/* If-None-Match */
	int auth;
	struct parley_identity id;
	char why[256];
	/* results */
	int status;
	char err[256];
	char ct[128];
	char disp[1024];
	char udisp[512];	/* disp for signing into a URL */
	char etag[80];
	int fd;
	int64_t len;
	char url[4096];
};

static void
fjob_free(struct fjob *j)
{
	if (j->fd != -1)
		close(j->fd);
	free(j->login);
	free(j->pass);
	free(j->bearer);
	free(j);
}

static void
fetch_work(void *arg)
{
	struct fjob *j = arg;
	const struct parley_media_ops *ops = plugins.media->p->media;
	void *st = plugins.media->state;
	struct parley_credentials cred;
	struct minfo mi;
	char *buf = NULL;
	int r, inl = 0;
	struct stat sb;

	memset(&cred, 0, sizeof(cred));
	cred.login = j->login;
	cred.passcode = j->pass;
	cred.bearer = j->bearer;
	cred.remote_addr = j->ip;
	j->auth = plugins_authenticate(&cred, &j->id, j->why, sizeof(j->why));
	if (j->auth != PARLEY_AUTH_ALLOW)
		return;
	memset(&mi, 0, sizeof(mi));
	snprintf(j->ct, sizeof(j->ct), "application/octet-stream");
	if (has_get_meta()) {
		if ((buf = malloc(PARLEY_MEDIA_META_MAX + 1)) == NULL) {
			j->status = 500;
			snprintf(j->err, sizeof(j->err), "out of memory");
			return;
		}
		r = ops->get_meta(st, j->mid, buf, PARLEY_MEDIA_META_MAX + 1,
		    j->err, sizeof(j->err));
		if (r != 1 || minfo_parse(buf, &mi) == -1) {
			if (r == 1)
				snprintf(j->err, sizeof(j->err), "metadata "
				    "of %s is not valid JSON", j->mid);
			j->status = r == 0 ? 404 : 503;
			free(buf);
			return;
		}
		free(buf);
		if (j->op == F_DELETE ? !((mi.uploader != NULL &&
		    strcmp(mi.uploader, j->id.login) == 0) ||
		    (access_perms(j->id.login, j->id.roles, j->id.grants,
		    "") & PERM_ADMIN)) : !may_read(&mi, j->id.login,
		    j->id.roles, j->id.grants)) {
			j->status = 403;
			snprintf(j->err, sizeof(j->err), j->op == F_DELETE ?
			    "only the uploader or an admin may delete media" :
			    "permission denied: read on the rooms this media "
			    "was shared in");
			minfo_free(&mi);
			return;
		}
		snprintf(j->ct, sizeof(j->ct), "%s", mi.content_type);
		inl = safe_image(j->ct);
		disposition(inl, mi.name ? mi.name : "", 0, j->disp,
		    sizeof(j->disp));
		disposition(inl, mi.name ? mi.name : "", 1, j->udisp,
		    sizeof(j->udisp));
		if (mi.sha256 != NULL)
			snprintf(j->etag, sizeof(j->etag), "\"%.64s\"",
			    mi.sha256);
		minfo_free(&mi);
	} else {
		disposition(0, "", 0, j->disp, sizeof(j->disp));
		disposition(0, "", 1, j->udisp, sizeof(j->udisp));
	}
	if (j->op == F_DELETE) {
		r = ops->remove(st, j->mid, j->err, sizeof(j->err));
		j->status = r == 1 ? 204 : r == 0 ? 404 : 503;
		return;
	}
	if (j->etag[0] != '\0' && j->inm[0] != '\0' &&
	    (strstr(j->inm, j->etag) != NULL || strcmp(j->inm, "*") == 0)) {
		j->status = 304;
		return;
	}
	j->url[0] = '\0';
	if (ops->size >= offsetof(struct parley_media_ops, open_as) +
	    sizeof(ops->open_as) && ops->open_as != NULL)
		r = ops->open_as(st, j->mid, j->ct, j->udisp, &j->fd, j->url,
		    sizeof(j->url), j->err, sizeof(j->err));
	else
		r = ops->open(st, j->mid, &j->fd, j->url, sizeof(j->url),
		    j->err, sizeof(j->err));
	if (r != 1) {
		j->status = r == 0 ? 404 : 503;
		return;
	}
	if (j->fd >= 0) {
		if (fstat(j->fd, &sb) == -1) {
			snprintf(j->err, sizeof(j->err), "fstat: %s",
			    strerror(errno));
			j->status = 503;
			return;
		}
		j->len = (int64_t)sb.st_size;
		j->status = 200;
	} else if (j->url[0] != '\0')
		j->status = 302;
	else {
		snprintf(j->err, sizeof(j->err), "plugin gave neither a file "
		    "nor a URL");
		j->status = 503;
	}
}

static void
fetch_done(void *arg)
{
	struct fjob *j = arg;
	char extra[4096 + 512];

	if (j->c->closed) {
		http_respond(j->c, 0, NULL, NULL, NULL, 0);	/* unref */
		fjob_free(j);
		return;
	}
	if (j->auth != PARLEY_AUTH_ALLOW) {
		static const char b[] = "{\"status\":401,\"error\":"
		    "\"authentication required\"}";

		log_client(j->ip, "%s: media: authentication failed: %s",
		    j->peer, j->why);
		http_respond(j->c, 401, "application/json",
		    "WWW-Authenticate: Basic realm=\"parley\"\r\n", b,
		    sizeof(b) - 1);
		fjob_free(j);
		return;
	}
	switch (j->status) {
	case 200:
		snprintf(extra, sizeof(extra), "X-Content-Type-Options: "
		    "nosniff\r\nContent-Disposition: %s\r\n"
		    "Content-Security-Policy: default-src 'none'; sandbox\r\n"
		    "Cache-Control: private, max-age=31536000, immutable\r\n"
		    "%s%s%s", j->disp, j->etag[0] ? "ETag: " : "", j->etag,
		    j->etag[0] ? "\r\n" : "");
		metrics_counter_add("parley_media_downloads_total", NULL, 1);
		http_respond_file(j->c, 200, j->ct, extra, j->fd, j->len);
		j->fd = -1;	/* http_respond_file closes it */
		break;
	case 302:
		snprintf(extra, sizeof(extra), "Location: %s\r\n"
		    "Cache-Control: private, no-store\r\n"
		    "X-Content-Type-Options: nosniff\r\n", j->url);
		metrics_counter_add("parley_media_downloads_total", NULL, 1);
		http_respond(j->c, 302, NULL, extra, NULL, 0);
		break;
	case 304:
		snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: "
		    "private, max-age=31536000, immutable\r\n", j->etag);
		http_respond(j->c, 304, NULL, extra, NULL, 0);
		break;
	case 204:
		log_info("%s: %s deleted media %s", j->peer, j->id.login,
		    j->mid);
		cache_del(j->mid);
		http_respond(j->c, 204, NULL, NULL, NULL, 0);
		break;
	case 404:
		http_error(j->c, 404, "no such media");
		break;
	case 403:
		metrics_counter_add("parley_denied_total", NULL, 1);
		http_error(j->c, 403, j->err);
		break;
	default:
		log_warn("media: %s %s: %s", j->op == F_DELETE ? "delete" :
		    "fetch", j->mid, j->err);
		http_error(j->c, j->status == 500 ? 500 : 503,
		    "media storage unavailable");
		break;
	}
	fjob_free(j);
}

static void
handle_fetch(struct conn *c, struct http_req *r, const char *mid)
{
	struct fjob *j;
	const char *inm;

	if (!media_id_valid(mid)) {
		http_error(c, 400, "invalid media id: 1 to 64 of A-Z a-z 0-9 "
		    "_ -");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		http_error(c, 500, "out of memory");
		return;
	}
	j->c = c;
	j->fd = -1;
	j->op = strcmp(r->method, "DELETE") == 0 ? F_DELETE :
	    strcmp(r->method, "HEAD") == 0 ? F_HEAD : F_GET;
	snprintf(j->mid, sizeof(j->mid), "%s", mid);
	snprintf(j->peer, sizeof(j->peer), "%s", c->peer);
	snprintf(j->ip, sizeof(j->ip), "%s", c->ip);
	if ((inm = http_header(r, "if-none-match")) != NULL)
		snprintf(j->inm, sizeof(j->inm), "%s", inm);
	if (rest_credentials(r, &j->login, &j->pass, &j->bearer) == -1) {
		fjob_free(j);
		http_error(c, 400, "malformed Authorization header");
		return;
	}
	http_defer(c);
	if (worker_submit_client(fetch_work, fetch_done, j) == -1) {
		j->auth = PARLEY_AUTH_DENY;
		snprintf(j->why, sizeof(j->why), "server shutting down");
		fetch_done(j);
	}
}

/* ------------------------------------------------------------ routing */

void
media_handle(struct conn *c, struct http_req *r)
{
	const char *p = r->path + 13;	/* past /api/v1/media */
	const char *m = r->method;

	if (plugins.media == NULL) {
		http_error(c, 404, "media is not enabled on this server "
		    "([media] plugin is empty)");
		return;
	}
	if (*p == '\0' || strcmp(p, "/") == 0) {
		if (strcmp(m, "POST") != 0) {
			static const char b[] = "{\"status\":405,\"error\":"
			    "\"POST a file here; GET /api/v1/media/{id}\"}";

			http_respond(c, 405, "application/json",
			    "Allow: POST\r\n", b, sizeof(b) - 1);
			return;
		}
		if (r->upload == NULL) {
			/* http.c could not stream it to us */
			http_error(c, 503, "cannot accept the upload now");
			return;
		}
		handle_upload(c, r);
		return;
	}
	p++;			/* past '/' */
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 &&
	    strcmp(m, "DELETE") != 0) {
		static const char b[] = "{\"status\":405,\"error\":"
		    "\"method not allowed\"}";

		http_respond(c, 405, "application/json",
		    "Allow: GET, HEAD, DELETE\r\n", b, sizeof(b) - 1);
		return;
	}
	handle_fetch(c, r, p);
}

/* ------------------------------------------------------------ sharing */

struct sjob {
	char mid[PARLEY_ID_MAX + 1];
	char room[PARLEY_ROOM_MAX + 1];
	char login[PARLEY_LOGIN_MAX + 1];
	char roles[256];
	char grants[512];
	media_share_cb done;	/* NULL: only record the room */
	void *arg;
	int status;
	char why[256];
	char uploader[PARLEY_LOGIN_MAX + 1];
	json_t *rooms;		/* as stored after the job */
};

/*
 * Worker: look the media up; if check, decide whether login may share it;
 * then record room in its metadata.  Under meta_lock: read-modify-write
 * of the metadata document (one instance; concurrent shares of the same
 * media in different rooms from two instances may lose a room).
 */
static void
share_work(void *arg)
{
	struct sjob *j = arg;
	const struct parley_media_ops *ops = plugins.media->p->media;
	void *st = plugins.media->state;
	struct minfo mi;
	char *buf, *s, url[4096];
	int r, fd = -1;

	if (!has_get_meta()) {
		/* no metadata: existence is all we can check */
		r = ops->open(st, j->mid, &fd, url, sizeof(url), j->why,
		    sizeof(j->why));
		if (fd != -1)
			close(fd);
		j->status = r == 1 ? 0 : r == 0 ? -1 : -2;
		if (r == 0)
			snprintf(j->why, sizeof(j->why), "no such media");
		return;
	}
	if ((buf = malloc(PARLEY_MEDIA_META_MAX + 1)) == NULL) {
		j->status = -2;
		snprintf(j->why, sizeof(j->why), "out of memory");
		return;
	}
	pthread_mutex_lock(&meta_lock);
	r = ops->get_meta(st, j->mid, buf, PARLEY_MEDIA_META_MAX + 1, j->why,
	    sizeof(j->why));
	if (r != 1 || minfo_parse(buf, &mi) == -1) {
		pthread_mutex_unlock(&meta_lock);
		free(buf);
		j->status = r == 0 ? -1 : -2;
		if (r == 0)
			snprintf(j->why, sizeof(j->why), "no such media");
		else if (r == 1)
			snprintf(j->why, sizeof(j->why), "metadata of %s is "
			    "not valid JSON", j->mid);
		return;
	}
	free(buf);
	snprintf(j->uploader, sizeof(j->uploader), "%s",
	    mi.uploader ? mi.uploader : "");
	if (j->done != NULL && !may_read(&mi, j->login, j->roles, j->grants)) {
		j->status = -1;
		snprintf(j->why, sizeof(j->why), "media %s was not shared in "
		    "a room you may read", j->mid);
	} else if (mi.rooms == NULL || !in_rooms(mi.rooms, j->room)) {
		if (mi.rooms == NULL) {
			mi.rooms = json_array();
			json_object_set_new(mi.root, "rooms", mi.rooms);
		}
		if (json_array_size(mi.rooms) >= ROOMS_MAX) {
			j->status = -1;
			snprintf(j->why, sizeof(j->why), "media shared in too "
			    "many rooms (%d): upload it again", ROOMS_MAX);
		} else {
			json_array_append_new(mi.rooms, json_string(j->room));
			s = json_dumps(mi.root, JSON_COMPACT);
			if (s == NULL || ops->put_meta(st, j->mid, s, j->why,
			    sizeof(j->why)) != 0) {
				j->status = -2;
				if (s == NULL)
					snprintf(j->why, sizeof(j->why),
					    "out of memory");
			}
			free(s);
		}
	}
	pthread_mutex_unlock(&meta_lock);
	if (mi.rooms != NULL)
		j->rooms = json_incref(mi.rooms);
	minfo_free(&mi);
}

static void
share_done(void *arg)
{
	struct sjob *j = arg;

	if (j->status == 0 && j->rooms != NULL)
		cache_put(j->mid, j->uploader, j->rooms);
	else if (j->status == -1 && strcmp(j->why, "no such media") == 0)
		cache_del(j->mid);
	if (j->status == -2)
		log_warn("media: checking media %s for room %s: %s", j->mid,
		    j->room, j->why);
	if (j->done != NULL)
		j->done(j->arg, j->status, j->status == -2 ?
		    "media storage unavailable" : j->why);
	json_decref(j->rooms);
	free(j);
}

void
media_share(const char *id, const char *room, const char *login,
    const char *roles, const char *grants, media_share_cb done, void *arg)
{
	struct mentry *e;
	struct sjob *j;
	size_t i;
	int known = 0, ok = 0;

	if (plugins.media == NULL) {
		done(arg, -1, "media is not enabled on this server");
		return;
	}
	if (!media_id_valid(id)) {
		done(arg, -1, "invalid media-id");
		return;
	}
	if ((e = cache_get(id)) != NULL) {
		ok = strcmp(e->uploader, login) == 0 ||
		    (access_perms(login, roles, grants, "") & PERM_ADMIN);
		for (i = 0; i < e->nrooms; i++) {
			if (strcmp(e->rooms[i], room) == 0)
				known = 1;
			if (!ok && (access_perms(login, roles, grants,
			    e->rooms[i]) & PERM_READ))
				ok = 1;
		}
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		done(arg, -2, "out of memory");
		return;
	}
	snprintf(j->mid, sizeof(j->mid), "%s", id);
	snprintf(j->room, sizeof(j->room), "%s", room);
	snprintf(j->login, sizeof(j->login), "%s", login);
	snprintf(j->roles, sizeof(j->roles), "%s", roles ? roles : "");
	snprintf(j->grants, sizeof(j->grants), "%s", grants ? grants : "");
	if (e != NULL && ok) {
		/* decided from memory; record the room in the background */
		if (!known && e->nrooms < ROOMS_MAX &&
		    (e->rooms[e->nrooms] = strdup(room)) != NULL) {
			e->nrooms++;
			if (worker_submit_client(share_work, share_done, j) == -1)
				free(j);
		} else
			free(j);
		done(arg, 0, NULL);
		return;
	}
	j->done = done;
	j->arg = arg;
	if (worker_submit_client(share_work, share_done, j) == -1) {
		free(j);
		done(arg, -2, "server shutting down");
	}
}
