/*
 * config_test.c - TAP test of src/config.c.
 *
 * Usage: config_test [path/to/etc/parley.ini]
 * Without an argument the file is found as $PARLEY_SRCDIR/etc/parley.ini.
 * doc/configuration.md is looked up next to etc/ (../doc/).
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int ntests;
static int nfailed;
static char tmpdir[512];
static char err[16384];		/* stderr of the last captured call */

static int
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	ntests++;
	if (!cond)
		nfailed++;
	printf("%sok %d - ", cond ? "" : "not ", ntests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return (cond);
}

static void
diag(const char *what, const char *text)
{
	const char *p = text, *e;

	printf("# %s:\n", what);
	while (p != NULL && *p != '\0') {
		e = strchr(p, '\n');
		if (e == NULL)
			e = p + strlen(p);
		printf("#   %.*s\n", (int)(e - p), p);
		p = *e != '\0' ? e + 1 : e;
	}
}

/* config_load with stderr captured into err[]. */
static struct config *
load(const char *file, const char *const *known)
{
	struct config *c;
	FILE *tf;
	size_t n;
	int saved;

	fflush(stderr);
	if ((tf = tmpfile()) == NULL || (saved = dup(2)) == -1) {
		perror("tmpfile/dup");
		exit(99);
	}
	dup2(fileno(tf), 2);
	c = config_load(file, known);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tf);
	n = fread(err, 1, sizeof(err) - 1, tf);
	err[n] = '\0';
	fclose(tf);
	return (c);
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return (n);
}

/* Write text to tmpdir/name; returns the path (static buffer rotation). */
static const char *
write_file(const char *name, const char *text)
{
	static char paths[4][PATH_MAX];
	static int next;
	char *p = paths[next++ % 4];
	FILE *f;

	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	if ((f = fopen(p, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) != 0) {
		perror(p);
		exit(99);
	}
	return (p);
}

static char *
read_text(const char *path)
{
	FILE *f;
	char *buf;
	long len;

	if ((f = fopen(path, "r")) == NULL)
		return (NULL);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	if ((buf = malloc(len + 1)) == NULL ||
	    fread(buf, 1, len, f) != (size_t)len) {
		perror(path);
		exit(99);
	}
	buf[len] = '\0';
	fclose(f);
	return (buf);
}

/* Path value relative to c->dir (for comparing configs in other dirs). */
static const char *
rel(const struct config *c, const char *path)
{
	size_t n = strlen(c->dir);

	if (strncmp(path, c->dir, n) == 0 && path[n] == '/')
		return (path + n + 1);
	if (strcmp(path, c->dir) == 0)
		return (".");
	return (path);
}

#define SAME_INT(f) do {						\
	if (a->f != b->f) {						\
		printf("# %s: %lld != %lld\n", #f, (long long)a->f,	\
		    (long long)b->f);					\
		same = 0;						\
	}								\
} while (0)
#define SAME_STR(f) do {						\
	if (strcmp(a->f, b->f) != 0) {					\
		printf("# %s: '%s' != '%s'\n", #f, a->f, b->f);		\
		same = 0;						\
	}								\
} while (0)
#define SAME_PATH(f) do {						\
	if (strcmp(a->f, b->f) != 0 &&					\
	    strcmp(rel(a, a->f), rel(b, b->f)) != 0) {			\
		printf("# %s: '%s' != '%s'\n", #f, a->f, b->f);		\
		same = 0;						\
	}								\
} while (0)

static int
same_values(const struct config *a, const struct config *b)
{
	int same = 1;

	SAME_STR(listen);
	SAME_STR(stomp_listen);
	SAME_PATH(plugin_dir);
	SAME_INT(log_level);
	SAME_STR(origins);
	SAME_PATH(web_root);
	SAME_INT(workers);
	SAME_INT(max_frame);
	SAME_INT(max_headers);
	SAME_INT(max_header);
	SAME_INT(max_outbound);
	SAME_INT(max_http_body);
	SAME_INT(heartbeat_ms);
	SAME_INT(heartbeat_tolerance_pct);
	SAME_INT(connect_timeout_ms);
	SAME_INT(max_subscriptions);
	SAME_INT(resume_max);
	SAME_INT(history_max);
	SAME_INT(drain_timeout_ms);
	SAME_STR(instance_id);
	SAME_INT(presence_max);
	SAME_INT(msg_rate);
	SAME_INT(msg_burst);
	SAME_INT(byte_rate);
	SAME_INT(byte_burst);
	SAME_INT(throttle_max_ms);
	SAME_INT(ip_max_connections);
	SAME_INT(ip_connect_rate);
	SAME_INT(ip_connect_burst);
	SAME_STR(perm_default);
	SAME_STR(perm_admin_role);
	SAME_STR(perm_moderator_role);
	SAME_STR(backplane);
	SAME_STR(storage);
	SAME_STR(media);
	SAME_STR(auth_plugins);
	SAME_INT(auth_allow_open);
	SAME_INT(batch_size);
	SAME_INT(batch_interval_ms);
	SAME_INT(batch_max_pending);
	return (same);
}

static void
test_defaults(void)
{
	struct config *c;
	char cwd[PATH_MAX], want[PATH_MAX + 16];

	c = load(NULL, NULL);
	if (!ok(c != NULL && err[0] == '\0', "defaults load quietly")) {
		diag("stderr", err);
		exit(1);
	}
	getcwd(cwd, sizeof(cwd));
	ok(strcmp(c->dir, cwd) == 0 && c->ini == NULL &&
	    strcmp(c->file, "(defaults)") == 0,
	    "defaults: dir is the current directory, no ini");
	ok(strcmp(c->listen, "0.0.0.0:8080") == 0 &&
	    strcmp(c->stomp_listen, "0.0.0.0:61613") == 0 &&
	    strcmp(c->origins, "") == 0 && c->log_level == 2,
	    "defaults: listeners, origins, log_level info");
	ok(c->workers == 4 && c->max_frame == 65536 && c->max_headers == 64 &&
	    c->max_header == 8192 && c->max_outbound == 4 * 1024 * 1024 &&
	    c->max_http_body == 1024 * 1024,
	    "defaults: workers and size limits");
	ok(c->heartbeat_ms == 10000 && c->heartbeat_tolerance_pct == 50 &&
	    c->connect_timeout_ms == 10000 && c->max_subscriptions == 256 &&
	    c->resume_max == 1000 && c->history_max == 500 &&
	    c->drain_timeout_ms == 5000, "defaults: timers and counts");
	ok(strcmp(c->backplane, "local") == 0 &&
	    strcmp(c->storage, "sqlite") == 0 && strcmp(c->media, "fs") == 0 &&
	    strcmp(c->auth_plugins, "open") == 0 && c->auth_allow_open == 1,
	    "defaults: plugins local, sqlite, fs, open (allowed)");
	ok(c->batch_size == 256 && c->batch_interval_ms == 0 &&
	    c->batch_max_pending == 100000, "defaults: batch");
#ifdef PARLEY_PLUGIN_DIR
	snprintf(want, sizeof(want), "%s", PARLEY_PLUGIN_DIR);
#else
	snprintf(want, sizeof(want), "%s/plugins", cwd);
#endif
	ok(strcmp(c->plugin_dir, want) == 0, "defaults: plugin_dir %s",
	    c->plugin_dir);
	ok(config_raw(c, "sqlite", "path", "x") != NULL &&
	    strcmp(config_raw(c, "sqlite", "path", "x"), "x") == 0,
	    "defaults: config_raw returns def");
	config_free(c);
}

/* Does text have a line "key = def" (active) in [section]? */
static int
ini_has(const char *text, const char *section, const char *key,
    const char *def, int commented)
{
	char sec[64] = "", line[1024], *p, *e, *v;
	const char *t = text;
	size_t n;

	while (*t != '\0') {
		n = strcspn(t, "\n");
		snprintf(line, sizeof(line), "%.*s", (int)n, t);
		t += n + (t[n] == '\n');
		if (line[0] == '[') {
			snprintf(sec, sizeof(sec), "%.*s",
			    (int)strcspn(line + 1, "]"), line + 1);
			continue;
		}
		p = line;
		if (commented) {
			if (*p != ';')
				continue;
			p++;
		}
		if (strcmp(sec, section) != 0 || (e = strchr(p, '=')) == NULL)
			continue;
		v = e + 1;
		while (e > p && e[-1] == ' ')
			e--;
		*e = '\0';
		if (strcmp(p, key) != 0)
			continue;
		while (*v == ' ')
			v++;
		if (commented)
			return (1);
		return (strcmp(v, def) == 0);
	}
	return (0);
}

static void
test_shipped(const char *ini)
{
	struct config *c, *d;
	struct config_key_info ki;
	char docpath[PATH_MAX + 32], row[512], *text, *doc, *slash;
	const char *def;
	const char *const *keys;
	size_t i, n;
	int missing = 0, undocumented = 0;

	c = load(ini, NULL);
	if (!ok(c != NULL && err[0] == '\0', "%s loads without warnings",
	    ini)) {
		diag("stderr", err);
		exit(1);
	}
	d = load(NULL, NULL);
	ok(same_values(c, d), "%s yields the same values as the defaults",
	    ini);
	ok(config_raw(c, "sqlite", "path", NULL) != NULL &&
	    strcmp(config_raw(c, "SQLite", "Path", NULL), "parley.db") == 0,
	    "config_raw [sqlite] path = parley.db (any case)");
	keys = config_section_keys(c, "fs", &n);
	ok(n == 1 && strcmp(keys[0], "dir") == 0 && keys[1] == NULL &&
	    config_section_keys(c, "fs", &n) == keys,
	    "config_section_keys [fs] = dir, cached");
	keys = config_section_keys(c, "redis", &n);
	ok(n == 0 && keys != NULL && keys[0] == NULL,
	    "config_section_keys of a commented-out section is empty");
	config_free(d);
	config_free(c);

	/* Every key of the table is spelled out in the shipped file. */
	if ((text = read_text(ini)) == NULL) {
		ok(0, "read %s: %s", ini, strerror(errno));
		return;
	}
	for (i = 0; config_key_info(i, &ki); i++) {
		if (!ini_has(text, ki.section, ki.key, ki.def,
		    ki.build_default)) {
			printf("# %s: [%s] %s = %s missing or different\n",
			    ini, ki.section, ki.key, ki.def);
			missing++;
		}
	}
	ok(i > 20 && missing == 0, "%s lists all %zu core keys with their "
	    "defaults", ini, i);
	free(text);

	/* ... and has a row in doc/configuration.md. */
	snprintf(docpath, sizeof(docpath), "%s", ini);
	if ((slash = strrchr(docpath, '/')) != NULL)
		*slash = '\0';
	else
		snprintf(docpath, sizeof(docpath), ".");
	if ((slash = strrchr(docpath, '/')) != NULL)
		slash[1] = '\0';
	else if (strcmp(docpath, "etc") == 0)
		docpath[0] = '\0';
	else
		strcat(docpath, "/../");
	strcat(docpath, "doc/configuration.md");
	if ((doc = read_text(docpath)) == NULL) {
		ok(0, "read %s: %s", docpath, strerror(errno));
		return;
	}
	for (i = 0; config_key_info(i, &ki); i++) {
		const char *line;

		snprintf(row, sizeof(row), "\n| %s | `%s` | %s | ", ki.section,
		    ki.key, ki.type);
		def = ki.def;
		if ((line = strstr(doc, row)) == NULL) {
			printf("# %s: no row starting '%s'\n", docpath,
			    row + 1);
			undocumented++;
			continue;
		}
		line++;
		n = strcspn(line, "\n");
		if (!ki.build_default) {
			if (*def == '\0')
				snprintf(row, sizeof(row), "| (empty) |");
			else
				snprintf(row, sizeof(row), "| `%s` |", def);
			if (strstr(line, row) == NULL ||
			    strstr(line, row) > line + n) {
				printf("# %s: [%s] %s: default should read "
				    "'%s'\n", docpath, ki.section, ki.key, row);
				undocumented++;
			}
		}
		snprintf(row, sizeof(row), "| %s |", ki.allowed);
		if (strstr(line, row) == NULL || strstr(line, row) > line + n) {
			printf("# %s: [%s] %s: limits should read '%s'\n",
			    docpath, ki.section, ki.key, row);
			undocumented++;
		}
	}
	ok(undocumented == 0, "%s documents every key's type, default, "
	    "limits", docpath);
	free(doc);
}

struct bad {
	const char *ini;	/* file body */
	const char *line;	/* expected start after "parleyd: FILE: " */
	const char *what;
};

static const struct bad bads[] = {
	{ "[server]\nworkers = 0\n", "[server] workers = '0': out of range "
	    "(allowed: 1..64)", "int out of range" },
	{ "[server]\nworkers = four\n", "[server] workers = 'four': not an "
	    "integer (allowed: 1..64)", "int not a number" },
	{ "[server]\nworkers = 4x\n", "[server] workers = '4x': not an "
	    "integer", "int with trailing junk" },
	{ "[server]\nmax_frame = 10x\n", "[server] max_frame = '10x': not a "
	    "size (allowed: 1k..64m", "size bad suffix" },
	{ "[server]\nmax_frame = 128m\n", "[server] max_frame = '128m': out "
	    "of range (allowed: 1k..64m", "size out of range" },
	{ "[server]\nmax_outbound = 99999999999999999g\n", "[server] "
	    "max_outbound = '99999999999999999g': out of range",
	    "size overflow" },
	{ "[server]\nmax_frame =\n", "[server] max_frame = '': not a size",
	    "size empty" },
	{ "[auth]\nallow_open = maybe\n", "[auth] allow_open = 'maybe': not a "
	    "boolean (allowed: true, false, yes, no, on, off, 1, 0)", "bool" },
	{ "[server]\nlog_level = loud\n", "[server] log_level = 'loud': "
	    "unknown value (allowed: error, warn, info, debug)", "enum" },
	{ "[server]\nheartbeat_ms = -1\n", "[server] heartbeat_ms = '-1': out "
	    "of range (allowed: 0..3600000 milliseconds)", "duration" },
	{ "[batch]\ninterval_ms = 60001\n", "[batch] interval_ms = '60001': out "
	    "of range (allowed: 0..60000 milliseconds)", "batch duration" },
	{ "[server]\nlisten = 0.0.0.0\n", "[server] listen = '0.0.0.0': "
	    "missing :port (allowed: host:port", "host:port without port" },
	{ "[server]\nlisten = ::1:8080\n", "[server] listen = '::1:8080': "
	    "IPv6 addresses need brackets", "IPv6 without brackets" },
	{ "[server]\nlisten = localhost:70000\n", "[server] listen = "
	    "'localhost:70000': port out of range", "port out of range" },
	{ "[server]\nlisten = localhost:0\n", "[server] listen = "
	    "'localhost:0': port out of range", "port 0" },
	{ "[server]\nlisten =\n", "[server] listen = '': missing :port",
	    "listen may not be empty" },
	{ "[server]\nstomp_listen = [::1]8080\n", "[server] stomp_listen = "
	    "'[::1]8080': missing :port (allowed: host:port with port "
	    "1..65535, IPv6 as [::1]:port, or empty = off)", "stomp_listen" },
	{ "[storage]\nplugin = My-SQL\n", "[storage] plugin = 'My-SQL': "
	    "invalid plugin name (allowed: one name of [a-z0-9_]+)",
	    "plugin name" },
	{ "[backplane]\nplugin =\n", "[backplane] plugin = '': empty plugin "
	    "name", "empty plugin name" },
	{ "[auth]\nplugins = users,,jwt\n", "[auth] plugins = 'users,,jwt': "
	    "empty plugin name", "plugin chain with empty member" },
	{ "[auth]\nplugins = jwt, jwt\n", "[auth] plugins = 'jwt, jwt': "
	    "plugin listed twice", "plugin chain with duplicate" },
	{ "[auth]\nplugins = users, ../x\n", "[auth] plugins = 'users, ../x':"
	    " invalid plugin name", "plugin chain with bad name" },
	{ "[auth]\nplugins = open\nallow_open = false\n", "[auth] plugins = "
	    "'open': the open plugin", "open while allow_open = false" },
	{ "[server]\nplugin_dir =\n", "[server] plugin_dir = '': empty",
	    "empty plugin_dir" },
};

static void
test_bad_values(void)
{
	struct config *c;
	const char *path;
	char want[1024];
	size_t i;

	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		path = write_file("bad.ini", bads[i].ini);
		c = load(path, NULL);
		snprintf(want, sizeof(want), "parleyd: %s: %s", path,
		    bads[i].line);
		if (!ok(c == NULL && strncmp(err, want, strlen(want)) == 0 &&
		    count_lines(err) == 1, "bad value rejected: %s",
		    bads[i].what)) {
			printf("# want: %s\n", want);
			diag("got", err);
		}
		config_free(c);
	}

	/* All problems are reported, not just the first. */
	path = write_file("bad.ini", "[server]\nworkers = 0\nmax_frame = 1t\n"
	    "[batch]\nsize = 0\n[auth]\nallow_open = nah\n");
	c = load(path, NULL);
	if (!ok(c == NULL && count_lines(err) == 4 &&
	    strstr(err, "[server] workers = '0'") != NULL &&
	    strstr(err, "[server] max_frame = '1t'") != NULL &&
	    strstr(err, "[batch] size = '0'") != NULL &&
	    strstr(err, "[auth] allow_open = 'nah'") != NULL,
	    "four bad values: four lines, NULL"))
		diag("got", err);
	config_free(c);

	/* Missing file, directory, syntax error. */
	snprintf(want, sizeof(want), "%s/nonexistent.ini", tmpdir);
	c = load(want, NULL);
	ok(c == NULL && count_lines(err) == 1 && strstr(err, want) != NULL &&
	    strstr(err, strerror(ENOENT)) != NULL,
	    "missing file: one line naming it and the errno text");
	c = load(tmpdir, NULL);
	ok(c == NULL && count_lines(err) == 1 && strstr(err, tmpdir) != NULL &&
	    strstr(err, strerror(EISDIR)) != NULL,
	    "directory as config: one line naming it");
	path = write_file("syntax.ini", "[server]\nthis is not ini\n");
	c = load(path, NULL);
	snprintf(want, sizeof(want), "parleyd: %s:2: syntax error: "
	    "'this is not ini'", path);
	if (!ok(c == NULL && strncmp(err, want, strlen(want)) == 0 &&
	    count_lines(err) == 1, "syntax error: one line with file:line"))
		diag("got", err);
	{
		char longini[2048];

		snprintf(longini, sizeof(longini), "[server]\norigins = %01500d\n",
		    0);
		path = write_file("long.ini", longini);
	}
	c = load(path, NULL);
	snprintf(want, sizeof(want), "parleyd: %s:2: line too long", path);
	if (!ok(c == NULL && strncmp(err, want, strlen(want)) == 0 &&
	    count_lines(err) == 1, "line too long: one line with file:line"))
		diag("got", err);
}

static void
test_good_values(void)
{
	struct config *c;
	const char *path;
	long long v;
	int b;

	path = write_file("good.ini",
	    "[server]\n"
	    "listen = [::1]:8080\n"
	    "stomp_listen =\n"
	    "log_level = DEBUG\n"
	    "max_frame = 1k\n"
	    "max_header = 70000\n"
	    "max_outbound = 1G\n"
	    "max_http_body = 2M\n"
	    "heartbeat_ms = 0\n"
	    "origins = https://a.example, https://b.example ; comment\n"
	    "[auth]\n"
	    "plugins = users , jwt\n"
	    "allow_open = off\n"
	    "[batch]\n"
	    "size = 100000\n");
	c = load(path, NULL);
	if (!ok(c != NULL && err[0] == '\0', "good values load quietly")) {
		diag("stderr", err);
		return;
	}
	ok(strcmp(c->listen, "[::1]:8080") == 0 && c->stomp_listen[0] == '\0',
	    "IPv6 listen, empty stomp_listen = off");
	ok(c->log_level == 3, "log_level is case-insensitive");
	ok(c->max_frame == 1024 && c->max_header == 70000 &&
	    c->max_outbound == 1073741824LL && c->max_http_body == 2097152,
	    "size suffixes k, M, G and plain bytes");
	ok(c->heartbeat_ms == 0 && c->batch_size == 100000,
	    "range ends accepted");
	ok(strcmp(c->origins, "https://a.example, https://b.example") == 0,
	    "inline comment stripped from origins");
	ok(strcmp(c->auth_plugins, "users,jwt") == 0 && c->auth_allow_open == 0,
	    "auth chain normalized, allow_open = off");
	config_free(c);

	{
		static const char *const good[] = { "localhost:1",
		    "[::]:65535", "[fe80::1%eth0]:8080", "chat.example.com:443",
		    "10.0.0.1:08080", NULL };
		static const char *const bad[] = { "[]:80", "[::1:80",
		    "[zz::1]:80", ":80", "host:", "host:+80", "a b:80",
		    "host:80x", NULL };
		char text[256];
		int i, fine = 1;

		for (i = 0; good[i] != NULL; i++) {
			snprintf(text, sizeof(text), "[server]\nlisten = %s\n",
			    good[i]);
			c = load(write_file("hp.ini", text), NULL);
			if (c == NULL) {
				printf("# rejected %s\n", good[i]);
				diag("got", err);
				fine = 0;
			}
			config_free(c);
		}
		for (i = 0; bad[i] != NULL; i++) {
			snprintf(text, sizeof(text), "[server]\nlisten = %s\n",
			    bad[i]);
			c = load(write_file("hp.ini", text), NULL);
			if (c != NULL || count_lines(err) != 1 ||
			    strstr(err, "[server] listen = '") == NULL) {
				printf("# accepted %s\n", bad[i]);
				fine = 0;
			}
			config_free(c);
		}
		ok(fine, "host:port forms accepted and rejected");
	}

	ok(config_parse_size(NULL, "s", "k", "3g", 0, 1LL << 40, &v) == 0 &&
	    v == 3LL << 30, "config_parse_size 3g");
	ok(config_parse_int(NULL, "s", "k", "-5", -10, 10, &v) == 0 && v == -5,
	    "config_parse_int -5");
	ok(config_parse_bool(NULL, "s", "k", "yes", &b) == 0 && b == 1 &&
	    config_parse_bool(NULL, "s", "k", "No", &b) == 0 && b == 0 &&
	    config_parse_bool(NULL, "s", "k", "ON", &b) == 0 && b == 1 &&
	    config_parse_bool(NULL, "s", "k", "0", &b) == 0 && b == 0 &&
	    config_parse_bool(NULL, "s", "k", "1", &b) == 0 && b == 1 &&
	    config_parse_bool(NULL, "s", "k", "false", &b) == 0 && b == 0,
	    "booleans: yes/no/on/off/1/0/true/false, any case");
}

static void
test_unknown(void)
{
	static const char *const known[] = { "mysql", NULL };
	struct config *c;
	const char *path;
	char want[1024];

	path = write_file("unknown.ini",
	    "[server]\nlisten = 127.0.0.1:9000\nlisen = 1.2.3.4:5\n"
	    "[bogus]\nx = 1\n");
	c = load(path, NULL);
	snprintf(want, sizeof(want),
	    "parleyd: %s: warning: unknown key [server] lisen\n"
	    "parleyd: %s: warning: unknown section [bogus]\n", path, path);
	if (!ok(c != NULL && strcmp(err, want) == 0 &&
	    strcmp(c->listen, "127.0.0.1:9000") == 0,
	    "unknown key and section: warnings, still loads"))
		diag("got", err);
	config_free(c);

	path = write_file("plugins.ini",
	    "[backplane]\nplugin = redis\n[redis]\nurl = redis://h:1\n"
	    "[auth]\nplugins = users,jwt\n[users]\nfile = u\n[jwt]\n"
	    "secret = s\n[mysql]\nhost = h\n[kafka]\nbrokers = b:1\n");
	c = load(path, known);
	snprintf(want, sizeof(want),
	    "parleyd: %s: warning: unknown section [kafka]\n", path);
	if (!ok(c != NULL && strcmp(err, want) == 0,
	    "selected plugins' and known sections accepted, others warned"))
		diag("got", err);
	ok(c != NULL && strcmp(config_raw(c, "redis", "url", ""),
	    "redis://h:1") == 0, "config_raw reads a plugin section");
	config_free(c);

	path = write_file("top.ini", "x = 1\n[server]\n");
	c = load(path, NULL);
	if (!ok(c != NULL && count_lines(err) == 1 &&
	    strstr(err, "warning") != NULL, "key outside a section warned"))
		diag("got", err);
	config_free(c);
}

static void
test_paths(void)
{
	struct config *c;
	const char *path;
	char want[PATH_MAX + 64], sub[PATH_MAX + 8], cwd[PATH_MAX];
	char *r;

	path = write_file("paths.ini",
	    "[server]\nplugin_dir = ./lib/plugins\nweb_root = ../www\n");
	c = load(path, NULL);
	if (!ok(c != NULL && err[0] == '\0', "paths config loads")) {
		diag("stderr", err);
		return;
	}
	ok(strcmp(c->dir, tmpdir) == 0, "dir is the config file's directory");
	snprintf(want, sizeof(want), "%s/lib/plugins", tmpdir);
	ok(strcmp(c->plugin_dir, want) == 0, "relative plugin_dir resolved: %s",
	    c->plugin_dir);
	snprintf(want, sizeof(want), "%s/../www", tmpdir);
	ok(strcmp(c->web_root, want) == 0, "relative web_root resolved: %s",
	    c->web_root);
	r = config_resolve(c, "parley.db");
	snprintf(want, sizeof(want), "%s/parley.db", tmpdir);
	ok(r != NULL && strcmp(r, want) == 0, "config_resolve relative");
	free(r);
	r = config_resolve(c, "/var/lib/parley.db");
	ok(r != NULL && strcmp(r, "/var/lib/parley.db") == 0,
	    "config_resolve keeps absolute paths");
	free(r);
	r = config_resolve(c, "");
	ok(r != NULL && r[0] == '\0', "config_resolve keeps empty empty");
	free(r);
	config_free(c);

	path = write_file("abs.ini", "[server]\nplugin_dir = /opt/p\n"
	    "web_root =\n");
	c = load(path, NULL);
	ok(c != NULL && strcmp(c->plugin_dir, "/opt/p") == 0 &&
	    c->web_root[0] == '\0', "absolute plugin_dir kept, empty web_root");
	config_free(c);

	/* A config named by a relative path: dir is still absolute. */
	snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
	mkdir(sub, 0700);
	write_file("sub/rel.ini", "[server]\nplugin_dir = p\n");
	getcwd(cwd, sizeof(cwd));
	if (chdir(tmpdir) == -1) {
		perror(tmpdir);
		exit(99);
	}
	c = load("sub/rel.ini", NULL);
	snprintf(want, sizeof(want), "%s/p", sub);
	ok(c != NULL && strcmp(c->dir, sub) == 0 &&
	    strcmp(c->plugin_dir, want) == 0,
	    "relative config path: dir and plugin_dir absolute");
	config_free(c);
	c = load("rel2.ini", NULL);
	ok(c == NULL && strstr(err, "rel2.ini") != NULL,
	    "missing relative config named");
	chdir(cwd);
}

int
main(int argc, char **argv)
{
	char ini[PATH_MAX];
	const char *srcdir;

	if (argc > 1)
		snprintf(ini, sizeof(ini), "%s", argv[1]);
	else if ((srcdir = getenv("PARLEY_SRCDIR")) != NULL)
		snprintf(ini, sizeof(ini), "%s/etc/parley.ini", srcdir);
	else
		snprintf(ini, sizeof(ini), "etc/parley.ini");
	snprintf(tmpdir, sizeof(tmpdir), "%s/parley-config-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return (99);
	}

	test_defaults();
	test_shipped(ini);
	test_bad_values();
	test_good_values();
	test_unknown();
	test_paths();

	printf("1..%d\n", ntests);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	return (nfailed != 0);
}
