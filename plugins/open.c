/*
 * open.c - the "open" auth plugin: anyone is whoever they say they are.
 *
 * A client that presents a well-formed login is allowed under that login,
 * with no password check, no roles and no grants.  A client without a login
 * is deferred to the next plugin of the chain (and denied if none allows).
 * For development only: init says so loudly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>

struct open_state {
	const struct parley_host *host;
	struct parley_ctx *ctx;
};

/*
 * 1..PARLEY_LOGIN_MAX printable ASCII bytes, no space; like the core, no
 * ':' (it separates fields in the users file) and no '\\'.
 */
static int
login_ok(const char *s, size_t *lenp)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= PARLEY_LOGIN_MAX)
			return (0);
		if ((unsigned char)s[n] <= 0x20 ||
		    (unsigned char)s[n] >= 0x7f || s[n] == ':' || s[n] == '\\')
			return (0);
	}
	*lenp = n;
	return (n > 0);
}

static int
open_authenticate(void *state, const struct parley_credentials *c,
    struct parley_identity *id, char *why, size_t whylen)
{
	size_t len;

	(void)state;
	if (c == NULL || c->login == NULL || c->login[0] == '\0')
		return (PARLEY_AUTH_DEFER);
	if (!login_ok(c->login, &len)) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "login is not 1..%d printable "
			    "ASCII characters without space, ':' or '\\'",
			    PARLEY_LOGIN_MAX);
		return (PARLEY_AUTH_DENY);
	}
	memcpy(id->login, c->login, len + 1);
	id->roles[0] = '\0';
	id->grants[0] = '\0';
	return (PARLEY_AUTH_ALLOW);
}

static int
open_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct open_state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	st->host = host;
	st->ctx = ctx;
	host->log(ctx, PARLEY_LOG_WARN, "auth plugin 'open' accepts any login "
	    "without a password: for development only");
	*state = st;
	return (0);
}

static void
open_fini(void *state)
{
	free(state);
}

static const struct parley_auth_ops open_ops = {
	.size = sizeof(struct parley_auth_ops),
	.authenticate = open_authenticate,
};

static const struct parley_plugin open_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_AUTH,
	.name = "open",
	.version = "1.0",
	.description = "accepts any login without a password (development only)",
	.init = open_init,
	.fini = open_fini,
	.auth = &open_ops,
};

__attribute__((visibility("default"))) const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&open_plugin);
}
