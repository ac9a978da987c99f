/*
 * pathcheck.h - what a plugin's check hook (parleyd -t) can say about a
 * path it would create at start, without creating it.  Shared by the
 * plugins that create files or directories (sqlite, fs).
 */
#ifndef PARLEY_PLUGIN_PATHCHECK_H
#define PARLEY_PLUGIN_PATHCHECK_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Can path be created?  Its parent directory (".", "/" or what comes
 * before the last '/', trailing slashes ignored) must exist, be a
 * directory and be writable and searchable, as open(O_CREAT) and mkdir
 * (not mkdir -p) need.  Returns 0, or an errno value (ENOMEM, ENOTDIR,
 * or what stat or access said), with the parent's name in *parentp
 * (malloc'd, caller frees; NULL on ENOMEM).
 */
static inline int
pathcheck_parent(const char *path, char **parentp)
{
	struct stat st;
	char *dir, *slash;
	size_t n;

	*parentp = NULL;
	if ((dir = strdup(path)) == NULL)
		return ENOMEM;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		if ((dir = strdup(".")) == NULL)
			return ENOMEM;
	} else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	*parentp = dir;
	if (stat(dir, &st) == -1)
		return errno;
	if (!S_ISDIR(st.st_mode))
		return ENOTDIR;
	if (access(dir, W_OK | X_OK) == -1)
		return errno;
	return 0;
}

#endif /* PARLEY_PLUGIN_PATHCHECK_H */
