/*
 * fs.c - media plugin "fs": uploaded files under a directory.
 *
 * [fs] keys:
 *	dir	directory for the files (default media, relative to the
 *		config file's directory); created if missing
 *
 * Layout: DIR/ID is the file, DIR/ID.meta the host's metadata document
 * (JSON).  Ids are made by the host (random, [A-Za-z0-9_-]); the plugin
 * still checks every id against that alphabet, so no path is ever built
 * from user input ("../x", "a/b", "" and over-long ids are rejected).
 *
 * Writes are crash-safe: a file goes to DIR/.ID.tmp, is fsync()ed and
 * renamed into place, then the directory is fsync()ed.  When the spooled
 * upload is on the same filesystem it is hard-linked instead of copied.
 *
 * Threads: every op is a "worker" op; they touch distinct paths (ids are
 * unique), so no lock is needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <parley/plugin.h>

#include "pathcheck.h"

struct fs {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	char *dir;
};

static int
id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return 0;
	for (i = 0; id[i] != '\0'; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
		if (i >= PARLEY_ID_MAX)
			return 0;
	}
	return i > 0;
}

/*
 * Read [fs] into *dirp (the resolved dir, caller frees).  Shared by init
 * and check, so that -t reads every key init reads.  0 or -1 after logging.
 */
static int
fs_config(const struct parley_host *host, struct parley_ctx *ctx, char **dirp)
{
	char *dir;

	if ((dir = host->config_path(ctx, "dir", "media")) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return -1;
	}
	if (dir[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '': expected a "
		    "directory");
		free(dir);
		return -1;
	}
	*dirp = dir;
	return 0;
}

/* dir exists: is it a directory we can write in?  0 or -1 after logging. */
static int
fs_dir_usable(const struct parley_host *host, struct parley_ctx *ctx,
    const char *dir)
{
	struct stat sb;

	if (stat(dir, &sb) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '%s': %s", dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '%s': not a "
		    "directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '%s': not "
		    "writable: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int
fs_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct fs *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	f->host = host;
	f->ctx = ctx;
	if (fs_config(host, ctx, &f->dir) == -1) {
		free(f);
		return -1;
	}
	if (mkdir(f->dir, 0750) == -1 && errno != EEXIST) {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '%s': cannot "
		    "create: %s", f->dir, strerror(errno));
		free(f->dir);
		free(f);
		return -1;
	}
	if (fs_dir_usable(host, ctx, f->dir) == -1) {
		free(f->dir);
		free(f);
		return -1;
	}
	host->log(ctx, PARLEY_LOG_INFO, "media files in %s", f->dir);
	*state = f;
	return 0;
}

/*
 * parleyd -t: what init would say, creating nothing.  An existing dir
 * must be a writable directory; a missing one needs a parent directory
 * init's mkdir (not mkdir -p) can create it in.
 */
static int
fs_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct stat sb;
	char *dir, *parent;
	int err, rv = 0;

	if (fs_config(host, ctx, &dir) == -1)
		return -1;
	if (stat(dir, &sb) == 0) {
		rv = fs_dir_usable(host, ctx, dir);
		free(dir);
		return rv;
	}
	if (errno != ENOENT) {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '%s': cannot "
		    "create: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	if ((err = pathcheck_parent(dir, &parent)) == ENOMEM) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		free(dir);
		return -1;
	}
	if (err != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "dir = '%s': cannot "
		    "create: %s", dir, strerror(err));
		rv = -1;
	} else
		host->log(ctx, PARLEY_LOG_INFO, "dir = '%s': missing; "
		    "parleyd will create it", dir);
	free(parent);
	free(dir);
	return rv;
}

static void
fs_fini(void *state)
{
	struct fs *f = state;

	free(f->dir);
	free(f);
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (write_all(out, buf, (size_t)n) == -1)
			return -1;
	}
	return 0;
}

/* fsync the directory so a rename survives a crash; errors are logged. */
static void
sync_dir(struct fs *f)
{
	int fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1 || fsync(fd) == -1)
		f->host->log(f->ctx, PARLEY_LOG_WARN, "fsync %s: %s", f->dir,
		    strerror(errno));
	if (fd != -1)
		close(fd);
}

/* Make tmp a durable copy (or hard link) of src.  0 or -1 with err. */
static int
make_tmp(const char *src, const char *tmp, char *err, size_t errlen)
{
	int in, out;

	unlink(tmp);
	if (link(src, tmp) == 0) {
		/* same filesystem: no copy, only make it durable */
		if ((out = open(tmp, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fsync(out) == -1) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			if (out != -1)
				close(out);
			unlink(tmp);
			return -1;
		}
		close(out);
		return 0;
	}
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", src, strerror(errno));
		return -1;
	}
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0640)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(in);
		return -1;
	}
	if (copy_fd(in, out) == -1 || fsync(out) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(in);
		close(out);
		unlink(tmp);
		return -1;
	}
	close(in);
	if (close(out) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
fs_put_file(void *state, const char *id, const char *path,
    const char *content_type, char *err, size_t errlen)
{
	struct fs *f = state;
	char tmp[4096], dst[4096];

	(void)content_type;	/* the host keeps it in the metadata */
	if (!id_valid(id)) {
		snprintf(err, errlen, "invalid media id");
		return -1;
	}
	snprintf(dst, sizeof(dst), "%s/%s", f->dir, id);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", f->dir, id);
	if (make_tmp(path, tmp, err, errlen) == -1)
		return -1;
	if (rename(tmp, dst) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		unlink(tmp);
		return -1;
	}
	sync_dir(f);
	return 0;
}

static int
fs_put_meta(void *state, const char *id, const char *meta, char *err,
    size_t errlen)
{
	struct fs *f = state;
	char tmp[4096], dst[4096];
	int fd;

	if (!id_valid(id)) {
		snprintf(err, errlen, "invalid media id");
		return -1;
	}
	if (strlen(meta) > PARLEY_MEDIA_META_MAX) {
		snprintf(err, errlen, "metadata too large");
		return -1;
	}
	snprintf(dst, sizeof(dst), "%s/%s.meta", f->dir, id);
	snprintf(tmp, sizeof(tmp), "%s/.%s.meta.tmp", f->dir, id);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0640)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, meta, strlen(meta)) == -1 || fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, dst) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		unlink(tmp);
		return -1;
	}
	sync_dir(f);
	return 0;
}

static int
fs_get_meta(void *state, const char *id, char *buf, size_t buflen, char *err,
    size_t errlen)
{
	struct fs *f = state;
	char path[4096];
	size_t got = 0;
	ssize_t n;
	int fd;

	if (!id_valid(id) || buflen == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%s.meta", f->dir, id);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, buf + got, buflen - got)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		got += (size_t)n;
		if (got == buflen) {
			snprintf(err, errlen, "%s: larger than %zu bytes",
			    path, buflen - 1);
			close(fd);
			return -1;
		}
	}
	close(fd);
	buf[got] = '\0';
	return 1;
}

static int
fs_open(void *state, const char *id, int *fd, char *url, size_t urllen,
    char *err, size_t errlen)
{
	struct fs *f = state;
	char path[4096];
	struct stat st;

	(void)url;
	(void)urllen;
	*fd = -1;
	if (!id_valid(id))
		return 0;
	snprintf(path, sizeof(path), "%s/%s", f->dir, id);
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(*fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(*fd);
		*fd = -1;
		return -1;
	}
	return 1;
}

static int
fs_remove(void *state, const char *id, char *err, size_t errlen)
{
	struct fs *f = state;
	char path[4096];
	int found = 1;

	if (!id_valid(id))
		return 0;
	snprintf(path, sizeof(path), "%s/%s", f->dir, id);
	if (unlink(path) == -1) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		found = 0;
	}
	snprintf(path, sizeof(path), "%s/%s.meta", f->dir, id);
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return found;
}

static const struct parley_media_ops fs_ops = {
	.size = sizeof(struct parley_media_ops),
	.put_file = fs_put_file,
	.open = fs_open,
	.remove = fs_remove,
	.put_meta = fs_put_meta,
	.get_meta = fs_get_meta,
};

static const struct parley_plugin fs_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_MEDIA,
	.name = "fs",
	.version = "1.1",
	.description = "media files in a local directory",
	.init = fs_init,
	.fini = fs_fini,
	.media = &fs_ops,
	.check = fs_check,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return &fs_plugin;
}
