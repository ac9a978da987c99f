/*
 * users.c - the "users" auth plugin: logins and password hashes from a file,
 * in the shape operators know from htpasswd and shadow files.
 *
 * [users] keys:
 *	file	the users file (relative to the config file's directory);
 *		required.  Re-read on SIGHUP.
 *
 * The file: one user per line, "#" comments and blank lines ignored,
 * leading and trailing white space (and a CR before the newline) ignored:
 *
 *	login:hash[:roles[:grants]]
 *
 *	login	1..128 printable ASCII characters without space, ':' or '\'
 *	hash	crypt(3) form: $y$ (yescrypt), $2b$ (bcrypt), $6$
 *		(sha512crypt), or another method libcrypt supports (legacy
 *		ones such as $1$ are accepted with a warning).  "*" or a
 *		hash prefixed with "!" locks the account.
 *	roles	comma-separated role names (no space, ':' or ','), may be
 *		empty
 *	grants	room grants, the rest of the line:
 *		    grants = grant *("," grant)
 *		    grant  = room ":" perm *("+" perm)
 *		    room   = "*" | a room name ([A-Za-z0-9._-], 1..128, not
 *		             starting with '.') | a prefix of one and "*"
 *		    perm   = read | write | moderate | admin
 *		e.g. "lobby:read+write,ops:admin,*:read"; a room at most once.
 *
 * A malformed file is reported as FILE:LINE: why for every bad line; init
 * then fails (the server does not start) and reload keeps the old table.
 *
 * Answers: no login -> DEFER (a token may follow in the chain); a login
 * with the right password -> ALLOW with the roles and grants of its line;
 * an unknown login, a wrong password or a locked account -> DENY.  So that
 * "users, jwt" lets token clients send their login too, the plugin defers
 * instead when the password is empty and a bearer token came with the
 * request, and when the passcode is shaped like a JWT ("eyJ...", three
 * dot-separated parts) and the login is unknown or the password does not
 * match.
 *
 * Threads: authenticate runs on worker threads (hashing with crypt_rn,
 * the reentrant crypt of libxcrypt, is slow on purpose).  reload swaps the
 * whole table under a rwlock; authenticate holds the read lock only to
 * copy one entry, never while hashing.  Passwords are never logged.
 * Ownership: the state owns the current table; a table owns its text, and
 * every string of its users points into that text.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <crypt.h>

#include <parley/plugin.h>

#define USERS_FILE_MAX	(64L * 1024 * 1024)	/* bytes */
#define USERS_PASS_MAX	1024			/* bytes of a password */
#define USERS_HASH_MAX	255
#define USERS_ROLES_MAX	255	/* sizeof(parley_identity.roles) - 1 */
#define USERS_GRANTS_MAX 511	/* sizeof(parley_identity.grants) - 1 */
#define USERS_ERRORS_MAX 20	/* bad lines reported per load */

struct user {
	const char *login;	/* all four point into users_table.text */
	const char *hash;
	const char *roles;
	const char *grants;
	int line;
};

/* One loaded file; immutable once published. */
struct users_table {
	struct user *v;		/* sorted by login */
	size_t n;
	char *text;		/* the file, cut into fields in place */
	size_t len;		/* bytes of text */
};

struct users_state {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	char *path;		/* resolved [users] file */
	pthread_rwlock_t lock;
	struct users_table *tab;	/* under lock */
};

/*
 * 1..PARLEY_LOGIN_MAX printable ASCII bytes, no space, ':' or '\\' (the
 * core's rule).
 */
static int
login_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= PARLEY_LOGIN_MAX)
			return (0);
		if ((unsigned char)s[n] <= 0x20 ||
		    (unsigned char)s[n] >= 0x7f || s[n] == ':' || s[n] == '\\')
			return (0);
	}
	return (n > 0);
}

/*
 * Shaped like a compact JWS: three parts separated by dots, the first one
 * starting as the base64url of a JSON object ("eyJ" encodes '{"'), no
 * white space.  The jwt plugin uses the same rule (and says what is wrong
 * with a malformed one).
 */
static int
looks_like_jwt(const char *s)
{
	int dots = 0;

	if (strncmp(s, "eyJ", 3) != 0)
		return (0);
	for (; *s != '\0'; s++) {
		if (*s == '.')
			dots++;
		else if ((unsigned char)*s <= 0x20)
			return (0);
	}
	return (dots == 2);
}

/*
 * Compare two NUL-terminated strings in time that depends only on their
 * lengths.
 */
static int
ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, n;
	unsigned char d;

	n = la > lb ? la : lb;
	d = (unsigned char)(la != lb);
	for (i = 0; i < n; i++)
		d |= (unsigned char)((i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0));
	return (d == 0);
}

/* ------------------------------------------------------------ syntax */

/* The perms of a grant, '+'-separated.  Returns NULL or what is wrong. */
static const char *
perms_check(const char *s, size_t len)
{
	static const char *const perms[] = { "read", "write", "moderate",
	    "admin", NULL };
	size_t i = 0, j, k;

	if (len == 0)
		return ("no permission after the room");
	while (i <= len) {
		for (j = i; j < len && s[j] != '+'; j++)
			;
		for (k = 0; perms[k] != NULL; k++)
			if (j - i == strlen(perms[k]) &&
			    strncmp(s + i, perms[k], j - i) == 0)
				break;
		if (perms[k] == NULL)
			return ("unknown permission (read, write, moderate, "
			    "admin)");
		i = j + 1;
	}
	return (NULL);
}

/*
 * A grant's room: a room name (1..PARLEY_ROOM_MAX of [A-Za-z0-9._-], not
 * starting with '.'), or a prefix of one followed by '*' ("ops-*"), or "*"
 * alone (any room).  The core matches them without regard to case.
 */
static int
room_ok(const char *s, size_t len)
{
	size_t i;

	if (len > 0 && s[len - 1] == '*')
		len--;
	else if (len == 0)
		return (0);
	if (len > PARLEY_ROOM_MAX || (len > 0 && s[0] == '.'))
		return (0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return (0);
	}
	return (1);
}

/*
 * Check a grants string ("room:perm+perm,room2:perm").  Returns NULL when
 * it is well formed, else what is wrong (a static string).
 */
static const char *
grants_check(const char *s)
{
	const char *g = s, *e, *colon, *p;

	if (*s == '\0')
		return (NULL);
	if (strlen(s) > USERS_GRANTS_MAX)
		return ("grants longer than 511 bytes");
	for (;;) {
		const char *why;

		e = strchr(g, ',');
		if (e == NULL)
			e = g + strlen(g);
		colon = memchr(g, ':', (size_t)(e - g));
		if (colon == NULL)
			return ("a grant is room:perm[+perm...]");
		if (!room_ok(g, (size_t)(colon - g)))
			return ("a grant's room is a name of 1..128 "
			    "[A-Za-z0-9._-] not starting with '.', a prefix "
			    "and '*', or '*'");
		if ((why = perms_check(colon + 1,
		    (size_t)(e - colon - 1))) != NULL)
			return (why);
		/* a room at most once */
		for (p = s; p < g;) {
			const char *pc = strchr(p, ':');

			if ((size_t)(pc - p) == (size_t)(colon - g) &&
			    strncmp(p, g, (size_t)(colon - g)) == 0)
				return ("a room is granted twice");
			p = strchr(p, ',') + 1;
		}
		if (*e == '\0')
			break;
		g = e + 1;
	}
	return (NULL);
}

static const char *
roles_check(const char *s)
{
	const char *p;

	if (strlen(s) > USERS_ROLES_MAX)
		return ("roles longer than 255 bytes");
	if (*s == '\0')
		return (NULL);
	if (*s == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,") != NULL)
		return ("empty role name");
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return ("a role name is printable ASCII without "
			    "space");
	return (NULL);
}

/*
 * A stored hash: "*", "!..." (locked), or a complete crypt(3) hash that
 * libcrypt knows.  Returns NULL or what is wrong; *legacy set for weak
 * methods.
 */
static const char *
hash_check(const char *h, int *legacy)
{
	const char *p;
	int dollars = 0;

	*legacy = 0;
	if (strcmp(h, "*") == 0 || h[0] == '!')
		return (NULL);
	if (strlen(h) > USERS_HASH_MAX)
		return ("hash longer than 255 bytes");
	if (h[0] != '$')
		return ("not a crypt(3) hash ($y$, $2b$, $6$, ...); make one "
		    "with mkpasswd -m yescrypt");
	for (p = h; *p != '\0'; p++) {
		if (*p == '$')
			dollars++;
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' &&
		    *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		    *p == '/' || *p == '=' || *p == ','))
			return ("a crypt(3) hash has only [A-Za-z0-9./$=,]");
	}
	if (dollars < 3 || p[-1] == '$')
		return ("incomplete crypt(3) hash (only a salt?)");
	switch (crypt_checksalt(h)) {
	case CRYPT_SALT_OK:
		return (NULL);
	case CRYPT_SALT_METHOD_LEGACY:
		*legacy = 1;
		return (NULL);
	default:
		return ("hash method not supported by libcrypt");
	}
}

/* ------------------------------------------------------------ loading */

static void
table_free(struct users_table *t)
{
	if (t == NULL)
		return;
	free(t->v);
	if (t->text != NULL)
		explicit_bzero(t->text, t->len);
	free(t->text);
	free(t);
}

static int
user_cmp(const void *a, const void *b)
{
	const struct user *x = a, *y = b;
	int r = strcmp(x->login, y->login);

	return (r != 0 ? r : x->line - y->line);
}

/* Read the whole file; NULL after logging why.  Caller frees. */
static char *
read_file(struct users_state *st, size_t *lenp)
{
	FILE *fp;
	struct stat sb;
	char *buf;
	size_t n;

	if ((fp = fopen(st->path, "r")) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "file: %s: %s",
		    st->path, strerror(errno));
		return (NULL);
	}
	if (fstat(fileno(fp), &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > USERS_FILE_MAX) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "file: %s: not a "
		    "regular file of at most %ld bytes", st->path,
		    USERS_FILE_MAX);
		fclose(fp);
		return (NULL);
	}
	if (sb.st_mode & S_IROTH)
		st->host->log(st->ctx, PARLEY_LOG_WARN, "%s: readable by "
		    "everyone; password hashes deserve mode 0640 or 0600",
		    st->path);
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "out of memory");
		fclose(fp);
		return (NULL);
	}
	n = fread(buf, 1, (size_t)sb.st_size, fp);
	if (ferror(fp)) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s: read error",
		    st->path);
		free(buf);
		fclose(fp);
		return (NULL);
	}
	fclose(fp);
	buf[n] = '\0';
	*lenp = n;
	return (buf);
}

static int
is_space(int c)
{
	return (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f');
}

/*
 * Parse one line (trimmed, NUL-terminated, cut in place) into u.  Returns
 * NULL or what is wrong.
 */
static const char *
parse_line(char *s, struct user *u, int *legacy)
{
	char *f[4];
	const char *why;
	int i;

	memset(f, 0, sizeof(f));
	f[0] = s;
	/* login, hash and roles end at ':'; grants are the rest */
	for (i = 1; i < 4; i++) {
		char *c = strchr(f[i - 1], ':');

		if (c == NULL)
			break;
		*c = '\0';
		f[i] = c + 1;
	}
	if (f[1] == NULL)
		return ("expected login:hash[:roles[:grants]]");
	if (!login_ok(f[0]))
		return ("the login is 1..128 printable ASCII characters "
		    "without space, ':' or '\\'");
	if ((why = hash_check(f[1], legacy)) != NULL)
		return (why);
	if (f[2] != NULL && (why = roles_check(f[2])) != NULL)
		return (why);
	if (f[3] != NULL && (why = grants_check(f[3])) != NULL)
		return (why);
	u->login = f[0];
	u->hash = f[1];
	u->roles = f[2] != NULL ? f[2] : "";
	u->grants = f[3] != NULL ? f[3] : "";
	return (NULL);
}

/* Load st->path into a new table; NULL after logging FILE:LINE: why. */
static struct users_table *
table_load(struct users_state *st)
{
	struct users_table *t;
	size_t len, cap = 0, i;
	char *p, *end;
	int line = 0, errors = 0;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "out of memory");
		return (NULL);
	}
	if ((t->text = read_file(st, &len)) == NULL) {
		free(t);
		return (NULL);
	}
	t->len = len;
	for (p = t->text; p < t->text + len; p = end + 1) {
		char *s, *e;
		const char *why;
		struct user u;
		int legacy = 0;

		line++;
		if ((end = memchr(p, '\n', (size_t)(t->text + len - p))) ==
		    NULL)
			end = t->text + len;
		if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
			why = "NUL byte in line";
			goto bad;
		}
		*end = '\0';
		for (s = p; is_space((unsigned char)*s); s++)
			;
		for (e = s + strlen(s); e > s &&
		    is_space((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		memset(&u, 0, sizeof(u));
		if ((why = parse_line(s, &u, &legacy)) != NULL)
			goto bad;
		if (legacy)
			st->host->log(st->ctx, PARLEY_LOG_WARN, "%s:%d: weak "
			    "legacy hash method for '%s'; re-hash with "
			    "mkpasswd -m yescrypt", st->path, line, u.login);
		u.line = line;
		if (t->n == cap) {
			struct user *nv;

			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(t->v, cap * sizeof(*nv))) == NULL) {
				st->host->log(st->ctx, PARLEY_LOG_ERROR,
				    "out of memory");
				table_free(t);
				return (NULL);
			}
			t->v = nv;
		}
		t->v[t->n++] = u;
		continue;
bad:
		if (++errors <= USERS_ERRORS_MAX)
			st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s:%d: %s",
			    st->path, line, why);
	}
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), user_cmp);
	for (i = 1; i < t->n; i++) {
		if (strcmp(t->v[i - 1].login, t->v[i].login) != 0)
			continue;
		if (++errors <= USERS_ERRORS_MAX)
			st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s:%d: "
			    "duplicate login '%s' (first on line %d)",
			    st->path, t->v[i].line, t->v[i].login,
			    t->v[i - 1].line);
	}
	if (errors > 0) {
		if (errors > USERS_ERRORS_MAX)
			st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s: %d more "
			    "errors", st->path, errors - USERS_ERRORS_MAX);
		table_free(t);
		return (NULL);
	}
	if (t->n == 0)
		st->host->log(st->ctx, PARLEY_LOG_WARN, "%s: no users: nobody "
		    "can log in through this plugin", st->path);
	return (t);
}

/* ------------------------------------------------------------ auth */

/* What authenticate needs of one entry, copied out of the lock. */
struct user_copy {
	int found;
	char hash[USERS_HASH_MAX + 1];
	char dummy[USERS_HASH_MAX + 1];	/* for unknown logins */
	char roles[USERS_ROLES_MAX + 1];
	char grants[USERS_GRANTS_MAX + 1];
};

static void
lookup(struct users_state *st, const char *login, struct user_copy *uc)
{
	struct users_table *t;
	struct user *u;

	memset(uc, 0, sizeof(*uc));
	pthread_rwlock_rdlock(&st->lock);
	t = st->tab;
	u = NULL;
	if (t->n > 0) {
		size_t lo = 0, hi = t->n;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int r = strcmp(login, t->v[mid].login);

			if (r == 0) {
				u = &t->v[mid];
				break;
			}
			if (r < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
		/* an unknown login costs what a known one does */
		snprintf(uc->dummy, sizeof(uc->dummy), "%s", t->v[0].hash);
	}
	if (u != NULL) {
		uc->found = 1;
		snprintf(uc->hash, sizeof(uc->hash), "%s", u->hash);
		snprintf(uc->roles, sizeof(uc->roles), "%s", u->roles);
		snprintf(uc->grants, sizeof(uc->grants), "%s", u->grants);
	}
	pthread_rwlock_unlock(&st->lock);
}

/* 1 when pass matches hash, 0 when not, -1 out of memory. */
static int
verify(const char *pass, const char *hash)
{
	struct crypt_data *cd;
	const char *r;
	int ok;

	if (hash[0] != '$')
		return (0);	/* locked */
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return (-1);
	/*
	 * crypt_rn is libxcrypt's crypt_r with the size of the data given
	 * and NULL on failure.  Not crypt_r itself: ASan intercepts crypt_r
	 * and, libcrypt being dlopen()ed with this plugin after its start,
	 * calls a NULL "real" crypt_r.
	 */
	r = crypt_rn(pass, hash, cd, (int)sizeof(*cd));
	ok = r != NULL && ct_streq(r, hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return (ok);
}

static void
set_why(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
}

static int
users_authenticate(void *state, const struct parley_credentials *c,
    struct parley_identity *id, char *why, size_t whylen)
{
	struct users_state *st = state;
	struct user_copy *uc;
	const char *pass;
	int jwtlike, ok;

	if (c == NULL || c->login == NULL || c->login[0] == '\0')
		return (PARLEY_AUTH_DEFER);
	pass = c->passcode != NULL ? c->passcode : "";
	/* a login next to a bearer token and no password: the token speaks */
	if (pass[0] == '\0' && c->bearer != NULL && c->bearer[0] != '\0')
		return (PARLEY_AUTH_DEFER);
	jwtlike = looks_like_jwt(pass);
	if (!login_ok(c->login)) {
		set_why(why, whylen, "login is not 1..128 printable "
		    "ASCII characters without space, ':' or '\\'");
		return (PARLEY_AUTH_DENY);
	}
	if (strlen(pass) > USERS_PASS_MAX) {
		/* a long token is not a password: no hashing of 8 KiB */
		if (jwtlike)
			return (PARLEY_AUTH_DEFER);
		set_why(why, whylen, "password longer than 1024 bytes");
		return (PARLEY_AUTH_DENY);
	}
	if ((uc = malloc(sizeof(*uc))) == NULL) {
		set_why(why, whylen, "out of memory");
		return (PARLEY_AUTH_DENY);
	}
	lookup(st, c->login, uc);
	if (!uc->found) {
		if (jwtlike) {
			free(uc);
			return (PARLEY_AUTH_DEFER);
		}
		if (uc->dummy[0] != '\0')
			(void)verify(pass, uc->dummy);
		free(uc);
		set_why(why, whylen, "unknown user");
		return (PARLEY_AUTH_DENY);
	}
	if (uc->hash[0] != '$') {
		free(uc);
		if (jwtlike)
			return (PARLEY_AUTH_DEFER);
		set_why(why, whylen, "account locked in the users file");
		return (PARLEY_AUTH_DENY);
	}
	ok = verify(pass, uc->hash);
	if (ok != 1) {
		free(uc);
		if (ok == 0 && jwtlike)
			return (PARLEY_AUTH_DEFER);
		set_why(why, whylen, ok == 0 ? "wrong password" :
		    "out of memory");
		return (PARLEY_AUTH_DENY);
	}
	snprintf(id->login, sizeof(id->login), "%s", c->login);
	snprintf(id->roles, sizeof(id->roles), "%s", uc->roles);
	snprintf(id->grants, sizeof(id->grants), "%s", uc->grants);
	explicit_bzero(uc, sizeof(*uc));
	free(uc);
	return (PARLEY_AUTH_ALLOW);
}

/* ------------------------------------------------------------ life */

/*
 * Read [users] into st: the path of the file and its table, loaded.  Shared
 * by init and check, so that -t reads every key init reads.  0, or -1 after
 * logging why with nothing left allocated in st.
 */
static int
users_config(struct users_state *st)
{
	st->path = st->host->config_path(st->ctx, "file", NULL);
	if (st->path == NULL || st->path[0] == '\0') {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "file is required: "
		    "the file of login:hash[:roles[:grants]] lines");
		free(st->path);
		st->path = NULL;
		return (-1);
	}
	if ((st->tab = table_load(st)) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "file: %s: not "
		    "loaded; fix the lines above", st->path);
		free(st->path);
		st->path = NULL;
		return (-1);
	}
	return (0);
}

static int
users_init(const struct parley_host *host, struct parley_ctx *ctx,
    void **state)
{
	struct users_state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	st->host = host;
	st->ctx = ctx;
	if (users_config(st) == -1) {
		free(st);
		return (-1);
	}
	if (pthread_rwlock_init(&st->lock, NULL) != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "pthread_rwlock_init failed");
		table_free(st->tab);
		free(st->path);
		free(st);
		return (-1);
	}
	host->log(ctx, PARLEY_LOG_INFO, "%zu users from %s", st->tab->n,
	    st->path);
	*state = st;
	return (0);
}

/* parleyd -t: load the file as init does, then drop it. */
static int
users_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct users_state st;

	memset(&st, 0, sizeof(st));
	st.host = host;
	st.ctx = ctx;
	if (users_config(&st) == -1)
		return (-1);
	table_free(st.tab);
	free(st.path);
	return (0);
}

static int
users_reload(void *state)
{
	struct users_state *st = state;
	struct users_table *t, *old;

	if ((t = table_load(st)) == NULL)
		return (-1);
	pthread_rwlock_wrlock(&st->lock);
	old = st->tab;
	st->tab = t;
	pthread_rwlock_unlock(&st->lock);
	table_free(old);
	st->host->log(st->ctx, PARLEY_LOG_INFO, "%zu users from %s", t->n,
	    st->path);
	return (0);
}

static void
users_fini(void *state)
{
	struct users_state *st = state;

	if (st == NULL)
		return;
	pthread_rwlock_destroy(&st->lock);
	table_free(st->tab);
	free(st->path);
	free(st);
}

/* After a reload: is login still in the file, and not locked? */
static int
users_still_valid(void *state, const char *login)
{
	struct user_copy *uc;
	int ok;

	if ((uc = malloc(sizeof(*uc))) == NULL)
		return (1);	/* keep the session; the next reload asks again */
	lookup(state, login, uc);
	ok = uc->found && uc->hash[0] == '$';
	explicit_bzero(uc, sizeof(*uc));
	free(uc);
	return (ok);
}

static const struct parley_auth_ops users_ops = {
	.size = sizeof(struct parley_auth_ops),
	.authenticate = users_authenticate,
	.still_valid = users_still_valid,
};

static const struct parley_plugin users_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_AUTH,
	.name = "users",
	.version = "1.0",
	.description = "logins and crypt(3) password hashes from a file",
	.init = users_init,
	.fini = users_fini,
	.reload = users_reload,
	.auth = &users_ops,
	.check = users_check,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&users_plugin);
}
