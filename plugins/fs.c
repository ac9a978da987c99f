/*
 * fs.c - media plugin "fs": uploaded files under a directory.
 *
 * Ids are made by the host (random, [A-Za-z0-9_-]); the plugin still checks
 * every id against that alphabet, so no path is ever built from user input.
 * Files are written to a temporary name and renamed into place.
 *
 * [fs] dir = media      ; relative to the config file's directory
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <parley/plugin.h>

struct fs {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	char *dir;
};

static int
id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return i > 0 && i <= PARLEY_ID_MAX;
}

static int
fs_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct fs *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	f->host = host;
	f->ctx = ctx;
	if ((f->dir = host->config_path(ctx, "dir", "media")) == NULL) {
		free(f);
		return -1;
	}
	if (mkdir(f->dir, 0750) == -1 && errno != EEXIST) {
		host->log(ctx, PARLEY_LOG_ERROR, "[fs] dir = '%s': cannot "
		    "create: %s", f->dir, strerror(errno));
		free(f->dir);
		free(f);
		return -1;
	}
	if (access(f->dir, W_OK | X_OK) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "[fs] dir = '%s': not "
		    "writable: %s", f->dir, strerror(errno));
		free(f->dir);
		free(f);
		return -1;
	}
	host->log(ctx, PARLEY_LOG_INFO, "media files in %s", f->dir);
	*state = f;
	return 0;
}

static void
fs_fini(void *state)
{
	struct fs *f = state;

	free(f->dir);
	free(f);
}

static int
copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) != 0) {
		char *p = buf;

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0) {
			ssize_t w = write(out, p, (size_t)n);

			if (w == -1) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			p += w;
			n -= w;
		}
	}
	return 0;
}

static int
fs_put_file(void *state, const char *id, const char *path,
    const char *content_type, char *err, size_t errlen)
{
	struct fs *f = state;
	char tmp[4096], dst[4096];
	int in, out;

	(void)content_type;
	if (!id_valid(id)) {
		snprintf(err, errlen, "invalid media id");
		return -1;
	}
	snprintf(dst, sizeof(dst), "%s/%s", f->dir, id);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", f->dir, id);
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
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
	if (close(out) == -1 || rename(tmp, dst) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
fs_open(void *state, const char *id, int *fd, char *url, size_t urllen,
    char *err, size_t errlen)
{
	struct fs *f = state;
	char path[4096];

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
	return 1;
}

static int
fs_remove(void *state, const char *id, char *err, size_t errlen)
{
	struct fs *f = state;
	char path[4096];

	if (!id_valid(id))
		return 0;
	snprintf(path, sizeof(path), "%s/%s", f->dir, id);
	if (unlink(path) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

static const struct parley_media_ops fs_ops = {
	.size = sizeof(struct parley_media_ops),
	.put_file = fs_put_file,
	.open = fs_open,
	.remove = fs_remove,
};

static const struct parley_plugin fs_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_MEDIA,
	.name = "fs",
	.version = "1.0",
	.description = "media files in a local directory",
	.init = fs_init,
	.fini = fs_fini,
	.media = &fs_ops,
};

__attribute__((visibility("default"))) const struct parley_plugin *
parley_plugin_entry(void)
{
	return &fs_plugin;
}
