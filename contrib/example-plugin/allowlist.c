/*
 * allowlist.c - an example third-party auth plugin for Parley.
 *
 * Allows the logins listed in its own INI section and defers everybody
 * else to the next plugin of the [auth] chain (a chain where every plugin
 * defers denies):
 *
 *	[auth]
 *	plugins = allowlist
 *
 *	[allowlist]
 *	logins = alice, bob	; comma- or space-separated
 *
 * It checks no password: it shows the shape of a plugin (entry symbol, ABI
 * version, init/fini, a config check for parleyd -t, logging, metrics, a
 * worker op), it is not a way to secure a server.  Built out of tree
 * against the installed header only; see README.md.
 */
#define _POSIX_C_SOURCE 200809L	/* strndup */

#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>

struct allowlist {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	char **logins;		/* owned, nlogins strings */
	size_t nlogins;
};

/* The rules the host applies to a login: 1..PARLEY_LOGIN_MAX printable
 * ASCII bytes, no space, ':' or '\\'. */
static int
login_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > PARLEY_LOGIN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 ||
		    (unsigned char)s[i] >= 0x7f || s[i] == ':' || s[i] == '\\')
			return 0;
	return 1;
}

static void
allowlist_free(struct allowlist *a)
{
	size_t i;

	for (i = 0; i < a->nlogins; i++)
		free(a->logins[i]);
	free(a->logins);
	free(a);
}

/* Split "alice, bob carol" into a->logins; 0, or -1 after logging why. */
static int
parse_logins(struct allowlist *a, const char *v)
{
	const char *p = v;
	char **nv;
	size_t n;

	for (;;) {
		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		n = strcspn(p, ", \t");
		if (!login_ok(p, n)) {
			a->host->log(a->ctx, PARLEY_LOG_ERROR, "[allowlist] "
			    "logins: '%.*s' is not a login (1..%d printable "
			    "ASCII characters without space, ':' or '\\')",
			    (int)n, p, PARLEY_LOGIN_MAX);
			return -1;
		}
		if ((nv = realloc(a->logins, (a->nlogins + 1) *
		    sizeof(*nv))) == NULL)
			goto nomem;
		a->logins = nv;
		if ((a->logins[a->nlogins] = strndup(p, n)) == NULL)
			goto nomem;
		a->nlogins++;
		p += n;
	}
	return 0;
nomem:
	a->host->log(a->ctx, PARLEY_LOG_ERROR, "out of memory");
	return -1;
}

/*
 * Read and check [allowlist]: a new state, or NULL after logging why.
 * init and check both call it, so parleyd -t checks what a start would.
 */
static struct allowlist *
allowlist_read(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct allowlist *a;
	const char *v;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return NULL;
	}
	a->host = host;
	a->ctx = ctx;
	/* the string belongs to the host and lives as long as we do */
	v = host->config_get(ctx, "logins", NULL);
	if (v == NULL || v[strspn(v, ", \t")] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "[allowlist] logins is "
		    "missing or empty: list the logins to allow, e.g. "
		    "logins = alice, bob");
		allowlist_free(a);
		return NULL;
	}
	if (parse_logins(a, v) == -1) {
		allowlist_free(a);
		return NULL;
	}
	return a;
}

/*
 * Loop thread, before the server listens; may block.  Reads the config and
 * returns 0 with *state set, or -1 after logging why (parleyd exits 2).
 */
static int
allowlist_init(const struct parley_host *host, struct parley_ctx *ctx,
    void **state)
{
	struct allowlist *a;

	if ((a = allowlist_read(host, ctx)) == NULL)
		return -1;
	host->log(ctx, PARLEY_LOG_INFO, "%zu login%s allowed without a "
	    "password", a->nlogins, a->nlogins == 1 ? "" : "s");
	*state = a;
	return 0;
}

/*
 * parleyd -t: the same reading and checks as init, then nothing kept.
 * A plugin with a backend would stop here before connecting to it.
 */
static int
allowlist_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct allowlist *a;

	if ((a = allowlist_read(host, ctx)) == NULL)
		return -1;
	allowlist_free(a);
	return 0;
}

/* After the loop stopped; frees what init made. */
static void
allowlist_fini(void *state)
{
	allowlist_free(state);
}

/*
 * Worker thread, possibly several at once: the state is read-only after
 * init, so no lock is needed.  c and its strings are borrowed for the call.
 */
static int
allowlist_authenticate(void *state, const struct parley_credentials *c,
    struct parley_identity *id, char *why, size_t whylen)
{
	struct allowlist *a = state;
	size_t i, n;

	(void)why;
	(void)whylen;
	if (c->login == NULL)
		return PARLEY_AUTH_DEFER;
	n = strlen(c->login);
	for (i = 0; i < a->nlogins; i++) {
		if (strcmp(a->logins[i], c->login) != 0)
			continue;
		/* login_ok() held at init, so it fits id->login */
		memcpy(id->login, c->login, n + 1);
		id->roles[0] = '\0';
		id->grants[0] = '\0';
		a->host->counter_add(a->ctx, "parley_allowlist_total",
		    "result=\"allow\"", 1);
		return PARLEY_AUTH_ALLOW;
	}
	a->host->counter_add(a->ctx, "parley_allowlist_total",
	    "result=\"defer\"", 1);
	return PARLEY_AUTH_DEFER;
}

static const struct parley_auth_ops allowlist_ops = {
	.size = sizeof(struct parley_auth_ops),
	.authenticate = allowlist_authenticate,
};

static const struct parley_plugin allowlist_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_AUTH,
	.name = "allowlist",
	.version = "1.0",
	.description = "allows the logins listed in [allowlist] logins "
	    "(example plugin)",
	.init = allowlist_init,
	.fini = allowlist_fini,
	.reload = NULL,		/* the host re-reads no INI on SIGHUP */
	.auth = &allowlist_ops,
	.check = allowlist_check,	/* parleyd -t */
};

/* The one exported symbol. */
PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return &allowlist_plugin;
}
