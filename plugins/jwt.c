/*
 * jwt.c - the "jwt" auth plugin: signed JSON Web Tokens (RFC 7519, compact
 * JWS of RFC 7515) verified with libjwt.
 *
 * [jwt] keys:
 *	secret		HMAC secret (HS256/384/512), at least 32 bytes
 *	secret_file	file holding the secret instead (one trailing newline
 *			is dropped); re-read on SIGHUP
 *	public_key	PEM file with a "PUBLIC KEY" (SubjectPublicKeyInfo):
 *			RSA (RS256/384/512, >= 2048 bits) or EC P-256/384/521
 *			(ES256/384/512); re-read on SIGHUP
 *	algorithms	comma-separated allow-list; default: every algorithm
 *			the configured keys can verify.  "none" never.
 *	issuer		when set, the iss claim must equal it
 *	audience	when set, the aud claim (a string or an array) must
 *			contain it
 *	leeway		clock skew allowed on exp, nbf, iat (s, default 30)
 *	require_exp	tokens without exp are refused (default true)
 *	roles_claim	claim with the roles (default "roles")
 *	grants_claim	claim with the room grants (default "rooms")
 *
 * Where the token comes from: credentials->bearer (Authorization: Bearer,
 * or access_token on the WebSocket URL), else the STOMP passcode when it
 * has the shape of a JWT (three base64url parts, the first starting with
 * "eyJ").  No token -> DEFER.  A token that fails any check -> DENY with
 * the reason for the log (never the token).
 *
 * Checks, in order: size (<= 8192 bytes), three base64url parts, the
 * header a JSON object whose alg is in the allow-list (alg "none" and
 * unknown algorithms never pass; a crit header is refused), the signature
 * verified with the key of that algorithm's family only -- an HS* token is
 * checked against the secret, never against the public key, which defeats
 * algorithm confusion --, then exp (now < exp + leeway), nbf (nbf <= now +
 * leeway), iat (not after now + leeway), iss, aud, and sub.
 *
 * Claims: sub is the login (1..128 printable ASCII, no space, ':' or '\');
 * when the client also sent a STOMP login it must equal sub.  roles_claim
 * is an array of strings or a string of names separated by commas or
 * spaces.  grants_claim is an object {"room": ["read", "write"], "ops-*":
 * "write", "*": "read"} (perms an array or a '+'-separated string) or a
 * string in the users-file syntax "room:read+write,ops-*:write,*:read".
 * A claim name not found as is, and containing dots, is looked up as a
 * path ("realm_access.roles").
 *
 * Threads: authenticate runs on worker threads; reload swaps the keys
 * (struct jwt_keys, owned by the state) under a rwlock.  The JSON of the
 * header and payload is parsed here (strictly: duplicate names are
 * refused) so the checks never depend on how libjwt reads numbers.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jwt.h>

#include <parley/plugin.h>

#define JWT_TOKEN_MAX	8192	/* bytes of a compact token */
#define JWT_KEYFILE_MAX	65536	/* bytes of a secret or PEM file */
#define JWT_SECRET_MIN	32	/* RFC 7518 3.2: key >= hash size */
#define JWT_RSA_MIN	2048	/* bits */
#define JSON_DEPTH_MAX	16
#define ROLES_MAX	255	/* sizeof(parley_identity.roles) - 1 */
#define GRANTS_MAX	511	/* sizeof(parley_identity.grants) - 1 */

enum key_type { KEY_NONE, KEY_HMAC, KEY_RSA, KEY_P256, KEY_P384, KEY_P521 };

static const struct alg_info {
	const char *name;
	jwt_alg_t alg;
	int key;		/* enum key_type that verifies it */
	size_t min_secret;	/* HMAC: bytes */
} alg_table[] = {
	{ "HS256", JWT_ALG_HS256, KEY_HMAC, 32 },
	{ "HS384", JWT_ALG_HS384, KEY_HMAC, 48 },
	{ "HS512", JWT_ALG_HS512, KEY_HMAC, 64 },
	{ "RS256", JWT_ALG_RS256, KEY_RSA, 0 },
	{ "RS384", JWT_ALG_RS384, KEY_RSA, 0 },
	{ "RS512", JWT_ALG_RS512, KEY_RSA, 0 },
	{ "ES256", JWT_ALG_ES256, KEY_P256, 0 },
	{ "ES384", JWT_ALG_ES384, KEY_P384, 0 },
	{ "ES512", JWT_ALG_ES512, KEY_P521, 0 },
	{ NULL, JWT_ALG_NONE, KEY_NONE, 0 }
};

/* The key material; replaced as a whole by reload. */
struct jwt_keys {
	unsigned char *secret;	/* NULL when none */
	size_t secret_len;
	char *pem;		/* the PUBLIC KEY block only, or NULL */
	size_t pem_len;
	int pem_type;		/* KEY_RSA, KEY_P256, ... */
	unsigned algs;		/* bit i: alg_table[i] allowed */
};

struct jwt_state {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	const char *secret;	/* inline [jwt] secret, or NULL */
	char *secret_file;	/* resolved path, or NULL */
	char *public_key;	/* resolved path, or NULL */
	const char *algorithms;	/* [jwt] algorithms as configured, or NULL */
	const char *issuer;
	const char *audience;
	long long leeway;
	int require_exp;
	const char *roles_claim;
	const char *grants_claim;
	pthread_rwlock_t lock;
	struct jwt_keys *keys;	/* under lock */
};

/* ------------------------------------------------------------ helpers */

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

static int
b64url_char(int c)
{
	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_');
}

/*
 * Shaped like a compact JWS: "eyJ" (base64url of '{"') then three parts
 * separated by dots, no white space.  The users plugin uses the same rule
 * and defers on such passcodes; whether the parts are valid base64url is
 * checked later, so a malformed token gets a precise reason.
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

static int
b64_value(int c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	if (c == (url ? '-' : '+'))
		return (62);
	if (c == (url ? '_' : '/'))
		return (63);
	return (-1);
}

/*
 * Decode len base64 characters (base64url without padding when url, else
 * standard base64 with optional '=' padding; white space skipped when not
 * url) into out (room for len * 3 / 4 + 1 bytes).  Returns the decoded
 * length, or -1 on a bad character or length.
 */
static long
b64_decode(const char *s, size_t len, int url, unsigned char *out)
{
	uint32_t acc = 0;
	size_t i;
	long n = 0;
	int bits = 0, pad = 0, chars = 0;

	for (i = 0; i < len; i++) {
		int v;

		if (!url && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' ||
		    s[i] == '\t'))
			continue;
		if (!url && s[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64_value((unsigned char)s[i], url)) < 0)
			return (-1);
		chars++;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (chars % 4 == 1 || pad > 2)
		return (-1);
	out[n] = '\0';
	return (n);
}

static void
why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ JSON */

/*
 * A small strict JSON reader (RFC 8259) for the header and payload: the
 * whole text becomes an array of nodes; strings are decoded into one
 * buffer as long as the text, so they never move.  Names within an object
 * must be unique; \u0000 is refused (strings stay C strings).
 */
enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jnode {
	int type;
	int child;		/* first element or member, -1 */
	int next;		/* next sibling, -1 */
	const char *name;	/* member name when the parent is an object */
	const char *str;	/* J_STR */
	double num;		/* J_NUM */
};

struct jdoc {
	struct jnode *n;
	int nn, cap;
	char *sbuf;
	size_t sused;
	const char *p, *end;
	const char *err;
};

static void
jws(struct jdoc *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' ||
	    *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static int
jnew(struct jdoc *d, int type)
{
	if (d->nn == d->cap) {
		int cap = d->cap ? d->cap * 2 : 32;
		struct jnode *nn;

		if ((nn = realloc(d->n, (size_t)cap * sizeof(*nn))) == NULL) {
			d->err = "out of memory";
			return (-1);
		}
		d->n = nn;
		d->cap = cap;
	}
	memset(&d->n[d->nn], 0, sizeof(d->n[d->nn]));
	d->n[d->nn].type = type;
	d->n[d->nn].child = -1;
	d->n[d->nn].next = -1;
	return (d->nn++);
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		int c = (unsigned char)p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return (-1);
	}
	*out = v;
	return (0);
}

/* Parse a string at d->p (on the quote); returns it decoded, or NULL. */
static const char *
jstring(struct jdoc *d)
{
	char *start = d->sbuf + d->sused, *o = start;

	d->p++;
	for (;;) {
		unsigned c, c2;

		if (d->p >= d->end) {
			d->err = "unterminated string";
			return (NULL);
		}
		c = (unsigned char)*d->p++;
		if (c == '"')
			break;
		if (c < 0x20) {
			d->err = "control character in a string";
			return (NULL);
		}
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		if (d->p >= d->end) {
			d->err = "unterminated string";
			return (NULL);
		}
		switch (*d->p++) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (d->end - d->p < 4 || hex4(d->p, &c) == -1)
				goto badesc;
			d->p += 4;
			if (c >= 0xdc00 && c <= 0xdfff)
				goto badesc;
			if (c >= 0xd800 && c <= 0xdbff) {
				if (d->end - d->p < 6 || d->p[0] != '\\' ||
				    d->p[1] != 'u' || hex4(d->p + 2, &c2) == -1 ||
				    c2 < 0xdc00 || c2 > 0xdfff)
					goto badesc;
				d->p += 6;
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (c2 - 0xdc00);
			}
			if (c == 0) {
				d->err = "\\u0000 in a string";
				return (NULL);
			}
			if (c < 0x80)
				*o++ = (char)c;
			else if (c < 0x800) {
				*o++ = (char)(0xc0 | (c >> 6));
				*o++ = (char)(0x80 | (c & 0x3f));
			} else if (c < 0x10000) {
				*o++ = (char)(0xe0 | (c >> 12));
				*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
				*o++ = (char)(0x80 | (c & 0x3f));
			} else {
				*o++ = (char)(0xf0 | (c >> 18));
				*o++ = (char)(0x80 | ((c >> 12) & 0x3f));
				*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
				*o++ = (char)(0x80 | (c & 0x3f));
			}
			break;
		default:
			goto badesc;
		}
	}
	*o++ = '\0';
	d->sused += (size_t)(o - start);
	return (start);
badesc:
	d->err = "bad escape in a string";
	return (NULL);
}

static int
jnumber(struct jdoc *d, double *out)
{
	const char *s = d->p;
	char buf[64];
	size_t n;

	if (d->p < d->end && *d->p == '-')
		d->p++;
	if (d->p < d->end && *d->p == '0')
		d->p++;
	else if (d->p < d->end && *d->p >= '1' && *d->p <= '9')
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	else
		goto bad;
	if (d->p < d->end && *d->p == '.') {
		d->p++;
		if (d->p >= d->end || *d->p < '0' || *d->p > '9')
			goto bad;
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	}
	if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
		d->p++;
		if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
			d->p++;
		if (d->p >= d->end || *d->p < '0' || *d->p > '9')
			goto bad;
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	}
	n = (size_t)(d->p - s);
	if (n >= sizeof(buf))
		goto bad;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, NULL);
	if (!isfinite(*out))
		goto bad;
	return (0);
bad:
	d->err = "bad number";
	return (-1);
}

static int jvalue(struct jdoc *, int);

/* Parse the elements of an array or the members of an object. */
static int
jcontainer(struct jdoc *d, int idx, int depth)
{
	int obj = d->n[idx].type == J_OBJ, last = -1, first = 1;
	char close = obj ? '}' : ']';

	d->p++;
	for (;;) {
		const char *name = NULL;
		int v, k;

		jws(d);
		if (d->p < d->end && *d->p == close && first) {
			d->p++;
			return (idx);
		}
		if (obj) {
			if (d->p >= d->end || *d->p != '"') {
				d->err = "expected a member name";
				return (-1);
			}
			if ((name = jstring(d)) == NULL)
				return (-1);
			for (k = d->n[idx].child; k != -1; k = d->n[k].next)
				if (strcmp(d->n[k].name, name) == 0) {
					d->err = "duplicate member name";
					return (-1);
				}
			jws(d);
			if (d->p >= d->end || *d->p != ':') {
				d->err = "expected ':'";
				return (-1);
			}
			d->p++;
		}
		if ((v = jvalue(d, depth + 1)) == -1)
			return (-1);
		d->n[v].name = name;
		if (last == -1)
			d->n[idx].child = v;
		else
			d->n[last].next = v;
		last = v;
		first = 0;
		jws(d);
		if (d->p < d->end && *d->p == ',') {
			d->p++;
			continue;
		}
		if (d->p < d->end && *d->p == close) {
			d->p++;
			return (idx);
		}
		d->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
		return (-1);
	}
}

static int
jvalue(struct jdoc *d, int depth)
{
	int idx;

	if (depth > JSON_DEPTH_MAX) {
		d->err = "nested too deeply";
		return (-1);
	}
	jws(d);
	if (d->p >= d->end) {
		d->err = "unexpected end";
		return (-1);
	}
	switch (*d->p) {
	case '{':
	case '[':
		if ((idx = jnew(d, *d->p == '{' ? J_OBJ : J_ARR)) == -1)
			return (-1);
		return (jcontainer(d, idx, depth));
	case '"': {
		const char *s;

		if ((s = jstring(d)) == NULL || (idx = jnew(d, J_STR)) == -1)
			return (-1);
		d->n[idx].str = s;
		return (idx);
	}
	case 't':
	case 'f':
	case 'n': {
		static const char *const lit[] = { "null", "false", "true" };
		int i;

		for (i = 0; i < 3; i++) {
			size_t l = strlen(lit[i]);

			if ((size_t)(d->end - d->p) >= l &&
			    memcmp(d->p, lit[i], l) == 0) {
				d->p += l;
				return (jnew(d, i == 0 ? J_NULL : i == 1 ?
				    J_FALSE : J_TRUE));
			}
		}
		d->err = "bad literal";
		return (-1);
	}
	default: {
		double v;

		if (jnumber(d, &v) == -1 || (idx = jnew(d, J_NUM)) == -1)
			return (-1);
		d->n[idx].num = v;
		return (idx);
	}
	}
}

/* Parse text[0..len) into d; 0, or -1 with d->err.  Free with jfree. */
static int
jparse(struct jdoc *d, const char *text, size_t len)
{
	memset(d, 0, sizeof(*d));
	if ((d->sbuf = malloc(len + 1)) == NULL) {
		d->err = "out of memory";
		return (-1);
	}
	d->p = text;
	d->end = text + len;
	if (jvalue(d, 0) == -1)
		return (-1);
	jws(d);
	if (d->p != d->end) {
		d->err = "trailing characters";
		return (-1);
	}
	if (d->n[0].type != J_OBJ) {
		d->err = "not a JSON object";
		return (-1);
	}
	return (0);
}

static void
jfree(struct jdoc *d)
{
	free(d->n);
	free(d->sbuf);
	memset(d, 0, sizeof(*d));
}

static int
jmember(const struct jdoc *d, int obj, const char *name, size_t len)
{
	int k;

	if (obj < 0 || d->n[obj].type != J_OBJ)
		return (-1);
	for (k = d->n[obj].child; k != -1; k = d->n[k].next)
		if (strlen(d->n[k].name) == len &&
		    memcmp(d->n[k].name, name, len) == 0)
			return (k);
	return (-1);
}

/* A claim of the payload: by its name, else by a dotted path. */
static int
jclaim(const struct jdoc *d, const char *name)
{
	const char *p = name, *dot;
	int cur = 0, k;

	if ((k = jmember(d, 0, name, strlen(name))) != -1)
		return (k);
	while ((dot = strchr(p, '.')) != NULL) {
		if ((cur = jmember(d, cur, p, (size_t)(dot - p))) == -1)
			return (-1);
		p = dot + 1;
	}
	return (p == name ? -1 : jmember(d, cur, p, strlen(p)));
}

/* ------------------------------------------------------------ grants */

static int
perm_ok(const char *s, size_t len)
{
	static const char *const perms[] = { "read", "write", "moderate",
	    "admin", NULL };
	int k;

	for (k = 0; perms[k] != NULL; k++)
		if (len == strlen(perms[k]) && strncmp(s, perms[k], len) == 0)
			return (1);
	return (0);
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

/* '+'-separated perms; 1 when well formed. */
static int
perms_ok(const char *s, size_t len)
{
	size_t i = 0, j;

	if (len == 0)
		return (0);
	while (i <= len) {
		for (j = i; j < len && s[j] != '+'; j++)
			;
		if (!perm_ok(s + i, j - i))
			return (0);
		i = j + 1;
	}
	return (1);
}

/*
 * A grants string "room:perm+perm,room2:perm" (the users file syntax):
 * NULL when well formed, else what is wrong.
 */
static const char *
grants_check(const char *s)
{
	const char *g = s, *e, *colon, *p;

	if (*s == '\0')
		return (NULL);
	if (strlen(s) > GRANTS_MAX)
		return ("longer than 511 bytes");
	for (;;) {
		if ((e = strchr(g, ',')) == NULL)
			e = g + strlen(g);
		if ((colon = memchr(g, ':', (size_t)(e - g))) == NULL)
			return ("a grant is room:perm[+perm...]");
		if (!room_ok(g, (size_t)(colon - g)))
			return ("bad room name");
		if (!perms_ok(colon + 1, (size_t)(e - colon - 1)))
			return ("bad permission (read, write, moderate, "
			    "admin)");
		for (p = s; p < g; p = strchr(p, ',') + 1)
			if ((size_t)(strchr(p, ':') - p) ==
			    (size_t)(colon - g) &&
			    strncmp(p, g, (size_t)(colon - g)) == 0)
				return ("a room is granted twice");
		if (*e == '\0')
			return (NULL);
		g = e + 1;
	}
}

/* Append s[0..len) to buf (size cap) at *off; -1 when it does not fit. */
static int
append(char *buf, size_t cap, size_t *off, const char *s, size_t len)
{
	if (*off + len >= cap)
		return (-1);
	memcpy(buf + *off, s, len);
	*off += len;
	buf[*off] = '\0';
	return (0);
}

/* The roles claim into out (comma-separated); NULL or what is wrong. */
static const char *
roles_from(const struct jdoc *d, int k, char *out, size_t cap)
{
	size_t off = 0;
	int e;

	out[0] = '\0';
	if (k == -1 || d->n[k].type == J_NULL)
		return (NULL);
	if (d->n[k].type == J_STR) {
		const char *p = d->n[k].str;

		while (*p != '\0') {
			size_t n = strcspn(p, ", ");

			if (n > 0) {
				size_t i;

				for (i = 0; i < n; i++)
					if ((unsigned char)p[i] < 0x21 ||
					    (unsigned char)p[i] > 0x7e)
						return ("a role is printable "
						    "ASCII");
				if ((off > 0 && append(out, cap, &off, ",",
				    1) == -1) || append(out, cap, &off, p,
				    n) == -1)
					return ("longer than 255 bytes");
			}
			p += n;
			if (*p != '\0')
				p++;
		}
		return (NULL);
	}
	if (d->n[k].type != J_ARR)
		return ("not an array of strings or a string");
	for (e = d->n[k].child; e != -1; e = d->n[e].next) {
		const char *r = d->n[e].str;
		size_t i;

		if (d->n[e].type != J_STR || r[0] == '\0')
			return ("not an array of strings");
		for (i = 0; r[i] != '\0'; i++)
			if ((unsigned char)r[i] < 0x21 ||
			    (unsigned char)r[i] > 0x7e || r[i] == ',')
				return ("a role is printable ASCII without "
				    "space or ','");
		if ((off > 0 && append(out, cap, &off, ",", 1) == -1) ||
		    append(out, cap, &off, r, i) == -1)
			return ("longer than 255 bytes");
	}
	return (NULL);
}

/* The grants claim into out (users-file syntax); NULL or what is wrong. */
static const char *
grants_from(const struct jdoc *d, int k, char *out, size_t cap)
{
	size_t off = 0;
	int m;

	out[0] = '\0';
	if (k == -1 || d->n[k].type == J_NULL)
		return (NULL);
	if (d->n[k].type == J_STR) {
		const char *why;

		if ((why = grants_check(d->n[k].str)) != NULL)
			return (why);
		snprintf(out, cap, "%s", d->n[k].str);
		return (NULL);
	}
	if (d->n[k].type != J_OBJ)
		return ("not an object or a string");
	for (m = d->n[k].child; m != -1; m = d->n[m].next) {
		const char *room = d->n[m].name;
		size_t start = off;
		int e, nperm = 0;

		if (!room_ok(room, strlen(room)))
			return ("bad room name");
		if ((off > 0 && append(out, cap, &off, ",", 1) == -1) ||
		    append(out, cap, &off, room, strlen(room)) == -1 ||
		    append(out, cap, &off, ":", 1) == -1)
			return ("longer than 511 bytes");
		if (d->n[m].type == J_STR) {
			const char *s = d->n[m].str;

			if (!perms_ok(s, strlen(s)))
				return ("bad permission (read, write, "
				    "moderate, admin)");
			if (append(out, cap, &off, s, strlen(s)) == -1)
				return ("longer than 511 bytes");
			continue;
		}
		if (d->n[m].type != J_ARR)
			return ("a room's permissions are an array or a "
			    "string");
		for (e = d->n[m].child; e != -1; e = d->n[e].next) {
			const char *s = d->n[e].str;

			if (d->n[e].type != J_STR || !perm_ok(s, strlen(s)))
				return ("bad permission (read, write, "
				    "moderate, admin)");
			if ((nperm++ > 0 && append(out, cap, &off, "+",
			    1) == -1) || append(out, cap, &off, s,
			    strlen(s)) == -1)
				return ("longer than 511 bytes");
		}
		if (nperm == 0) {
			/* no permission: no grant at all */
			off = start;
			out[off] = '\0';
		}
	}
	return (NULL);
}

/* ------------------------------------------------------------ keys */

/*
 * DER: read one TLV at *p (< end).  Returns the tag and sets *val, *len
 * and advances *p past it; -1 when malformed.
 */
static int
der_next(const unsigned char **p, const unsigned char *end,
    const unsigned char **val, size_t *len)
{
	int tag;
	size_t l;

	if (end - *p < 2)
		return (-1);
	tag = *(*p)++;
	l = *(*p)++;
	if (l & 0x80) {
		int nb = (int)(l & 0x7f);

		if (nb == 0 || nb > 3 || end - *p < nb)
			return (-1);
		for (l = 0; nb > 0; nb--)
			l = (l << 8) | *(*p)++;
	}
	if ((size_t)(end - *p) < l)
		return (-1);
	*val = *p;
	*len = l;
	*p += l;
	return (tag);
}

/*
 * The type of a DER SubjectPublicKeyInfo (KEY_RSA with *bits, KEY_P256,
 * ...), or KEY_NONE when it is none of those.
 */
static int
spki_type(const unsigned char *der, size_t len, int *bits)
{
	static const unsigned char rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7,
	    0x0d, 0x01, 0x01, 0x01 };
	static const unsigned char ec[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d,
	    0x02, 0x01 };
	static const unsigned char p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d,
	    0x03, 0x01, 0x07 };
	static const unsigned char p384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };
	static const unsigned char p521[] = { 0x2b, 0x81, 0x04, 0x00, 0x23 };
	const unsigned char *p = der, *end = der + len, *seq, *alg, *oid, *bs;
	const unsigned char *q, *qend, *n;
	size_t seql, algl, oidl, bsl, nl;

	*bits = 0;
	if (der_next(&p, end, &seq, &seql) != 0x30)
		return (KEY_NONE);
	p = seq;
	end = seq + seql;
	if (der_next(&p, end, &alg, &algl) != 0x30 ||
	    der_next(&p, end, &bs, &bsl) != 0x03 || bsl < 1 || bs[0] != 0)
		return (KEY_NONE);
	q = alg;
	qend = alg + algl;
	if (der_next(&q, qend, &oid, &oidl) != 0x06)
		return (KEY_NONE);
	if (oidl == sizeof(rsa) && memcmp(oid, rsa, oidl) == 0) {
		/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, ... } */
		q = bs + 1;
		qend = bs + bsl;
		if (der_next(&q, qend, &seq, &seql) != 0x30)
			return (KEY_NONE);
		q = seq;
		if (der_next(&q, seq + seql, &n, &nl) != 0x02 || nl == 0)
			return (KEY_NONE);
		while (nl > 0 && n[0] == 0) {
			n++;
			nl--;
		}
		if (nl > 0) {
			int top = 8;

			while (top > 0 && !(n[0] & (1 << (top - 1))))
				top--;
			*bits = (int)((nl - 1) * 8) + top;
		}
		return (KEY_RSA);
	}
	if (oidl != sizeof(ec) || memcmp(oid, ec, oidl) != 0 ||
	    der_next(&q, qend, &oid, &oidl) != 0x06)
		return (KEY_NONE);
	if (oidl == sizeof(p256) && memcmp(oid, p256, oidl) == 0)
		return (KEY_P256);
	if (oidl == sizeof(p384) && memcmp(oid, p384, oidl) == 0)
		return (KEY_P384);
	if (oidl == sizeof(p521) && memcmp(oid, p521, oidl) == 0)
		return (KEY_P521);
	return (KEY_NONE);
}

/* Read a whole small file; NULL after logging why.  Caller frees. */
static char *
slurp(struct jwt_state *st, const char *key, const char *path, size_t *lenp)
{
	FILE *fp;
	struct stat sb;
	char *buf;
	size_t n;

	if ((fp = fopen(path, "r")) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s = '%s': %s", key,
		    path, strerror(errno));
		return (NULL);
	}
	if (fstat(fileno(fp), &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > JWT_KEYFILE_MAX) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s = '%s': not a "
		    "regular file of at most %d bytes", key, path,
		    JWT_KEYFILE_MAX);
		fclose(fp);
		return (NULL);
	}
	if (strcmp(key, "secret_file") == 0 && (sb.st_mode & S_IROTH))
		st->host->log(st->ctx, PARLEY_LOG_WARN, "%s = '%s': readable "
		    "by everyone; a secret deserves mode 0640 or 0600", key,
		    path);
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "out of memory");
		fclose(fp);
		return (NULL);
	}
	n = fread(buf, 1, (size_t)sb.st_size, fp);
	if (ferror(fp)) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s = '%s': read "
		    "error", key, path);
		free(buf);
		fclose(fp);
		return (NULL);
	}
	fclose(fp);
	buf[n] = '\0';
	*lenp = n;
	return (buf);
}

static void
keys_free(struct jwt_keys *k)
{
	if (k == NULL)
		return;
	if (k->secret != NULL)
		explicit_bzero(k->secret, k->secret_len);
	free(k->secret);
	free(k->pem);
	free(k);
}

/* Load the PEM public key into k; -1 after logging why. */
static int
load_pem(struct jwt_state *st, struct jwt_keys *k)
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	static const char end[] = "-----END PUBLIC KEY-----";
	const char *path = st->public_key, *b, *e;
	unsigned char *der;
	char *text;
	size_t len;
	long dl;
	int bits;

	if ((text = slurp(st, "public_key", path, &len)) == NULL)
		return (-1);
	if (strlen(text) != len || (b = strstr(text, begin)) == NULL ||
	    (e = strstr(b, end)) == NULL) {
		const char *hint = "expected a -----BEGIN PUBLIC KEY----- "
		    "block";

		if (strstr(text, "PRIVATE KEY-----") != NULL)
			hint = "this is a private key; give the public one "
			    "(openssl pkey -in KEY -pubout)";
		else if (strstr(text, "BEGIN RSA PUBLIC KEY") != NULL)
			hint = "PKCS#1 RSA key; convert it with openssl rsa "
			    "-RSAPublicKey_in -in KEY -pubout";
		else if (strstr(text, "BEGIN CERTIFICATE") != NULL)
			hint = "a certificate; extract its key with openssl "
			    "x509 -in CERT -pubkey -noout";
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "public_key = '%s': "
		    "%s", path, hint);
		free(text);
		return (-1);
	}
	b += sizeof(begin) - 1;
	if ((der = malloc((size_t)(e - b) + 1)) == NULL) {
		free(text);
		return (-1);
	}
	dl = b64_decode(b, (size_t)(e - b), 0, der);
	k->pem_type = dl > 0 ? spki_type(der, (size_t)dl, &bits) : KEY_NONE;
	free(der);
	if (k->pem_type == KEY_NONE) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "public_key = '%s': "
		    "not an RSA or EC P-256/P-384/P-521 public key", path);
		free(text);
		return (-1);
	}
	if (k->pem_type == KEY_RSA && bits < JWT_RSA_MIN) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "public_key = '%s': "
		    "RSA key of %d bits; at least %d", path, bits,
		    JWT_RSA_MIN);
		free(text);
		return (-1);
	}
	/* hand libjwt exactly the block we looked at */
	b -= sizeof(begin) - 1;
	e += sizeof(end) - 1;
	k->pem_len = (size_t)(e - b) + 1;
	if ((k->pem = malloc(k->pem_len + 1)) == NULL) {
		free(text);
		return (-1);
	}
	memcpy(k->pem, b, k->pem_len - 1);
	k->pem[k->pem_len - 1] = '\n';
	k->pem[k->pem_len] = '\0';
	free(text);
	return (0);
}

/*
 * Load the keys and work out the allowed algorithms.  Returns a new
 * jwt_keys, or NULL after logging why.
 */
static struct jwt_keys *
keys_load(struct jwt_state *st)
{
	struct jwt_keys *k;
	size_t i;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "out of memory");
		return (NULL);
	}
	if (st->secret != NULL) {
		k->secret_len = strlen(st->secret);
		k->secret = (unsigned char *)strdup(st->secret);
	} else if (st->secret_file != NULL) {
		char *s;
		size_t len;

		if ((s = slurp(st, "secret_file", st->secret_file, &len)) ==
		    NULL)
			goto fail;
		if (len > 0 && s[len - 1] == '\n')
			len--;
		if (len > 0 && s[len - 1] == '\r')
			len--;
		k->secret = (unsigned char *)s;
		k->secret_len = len;
	}
	if ((st->secret != NULL || st->secret_file != NULL) &&
	    k->secret == NULL) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "out of memory");
		goto fail;
	}
	if (k->secret != NULL && k->secret_len < JWT_SECRET_MIN) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "%s: %zu bytes; an "
		    "HMAC secret needs at least %d (e.g. openssl rand -hex "
		    "32)", st->secret ? "secret" : "secret_file",
		    k->secret_len, JWT_SECRET_MIN);
		goto fail;
	}
	if (st->public_key != NULL && load_pem(st, k) == -1)
		goto fail;

	if (st->algorithms == NULL) {
		for (i = 0; alg_table[i].name != NULL; i++)
			if ((alg_table[i].key == KEY_HMAC && k->secret != NULL &&
			    k->secret_len >= alg_table[i].min_secret) ||
			    (alg_table[i].key != KEY_HMAC &&
			    alg_table[i].key == k->pem_type))
				k->algs |= 1u << i;
		return (k);
	}
	{
		const char *p = st->algorithms;

		while (*p != '\0') {
			size_t n;

			while (*p == ' ' || *p == ',')
				p++;
			n = strcspn(p, ", ");
			if (n == 0)
				break;
			for (i = 0; alg_table[i].name != NULL; i++)
				if (strlen(alg_table[i].name) == n &&
				    strncasecmp(alg_table[i].name, p, n) == 0)
					break;
			if (alg_table[i].name == NULL) {
				st->host->log(st->ctx, PARLEY_LOG_ERROR,
				    "algorithms = '%s': '%.*s' is not "
				    "accepted (allowed: HS256, HS384, HS512, "
				    "RS256, RS384, RS512, ES256, ES384, ES512)",
				    st->algorithms, (int)n, p);
				goto fail;
			}
			if (alg_table[i].key == KEY_HMAC ? (k->secret == NULL ||
			    k->secret_len < alg_table[i].min_secret) :
			    alg_table[i].key != k->pem_type) {
				st->host->log(st->ctx, PARLEY_LOG_ERROR,
				    "algorithms = '%s': %s needs %s",
				    st->algorithms, alg_table[i].name,
				    alg_table[i].key == KEY_HMAC ?
				    "a secret of at least as many bytes as "
				    "its hash" : alg_table[i].key == KEY_RSA ?
				    "public_key with an RSA key" :
				    "public_key with an EC key on its curve");
				goto fail;
			}
			k->algs |= 1u << i;
			p += n;
		}
	}
	if (k->algs == 0) {
		st->host->log(st->ctx, PARLEY_LOG_ERROR, "algorithms is empty: "
		    "no token could pass");
		goto fail;
	}
	return (k);
fail:
	keys_free(k);
	return (NULL);
}

/* ------------------------------------------------------------ auth */

static int
num_claim(const struct jdoc *d, const char *name, int *present,
    double *v)
{
	int k = jmember(d, 0, name, strlen(name));

	*present = k != -1;
	if (k == -1)
		return (0);
	if (d->n[k].type != J_NUM)
		return (-1);
	*v = d->n[k].num;
	return (0);
}

static int
check_token(struct jwt_state *st, const char *tok, const char *login,
    struct parley_identity *id, char *why, size_t whylen)
{
	const char *dot1, *dot2, *part[3];
	size_t plen[3], tl = strlen(tok);
	unsigned char *hdr = NULL, *pay = NULL;
	long hl, pl;
	struct jdoc hd, pd;
	const struct alg_info *ai;
	const unsigned char *key;
	struct jwt_keys *keys;
	jwt_t *j = NULL;
	double now, exp, nbf, iat;
	int k, i, rc, has_exp, has_nbf, has_iat, r = PARLEY_AUTH_DENY;
	const char *alg, *sub, *bad;
	char roles[ROLES_MAX + 1], grants[GRANTS_MAX + 1];
	size_t keylen;

	memset(&hd, 0, sizeof(hd));
	memset(&pd, 0, sizeof(pd));
	if (tl > JWT_TOKEN_MAX) {
		why_set(why, whylen, "token longer than %d bytes",
		    JWT_TOKEN_MAX);
		return (PARLEY_AUTH_DENY);
	}
	if ((dot1 = strchr(tok, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    strchr(dot2 + 1, '.') != NULL) {
		why_set(why, whylen, "not a compact JWS (three parts "
		    "separated by '.')");
		return (PARLEY_AUTH_DENY);
	}
	part[0] = tok;
	plen[0] = (size_t)(dot1 - tok);
	part[1] = dot1 + 1;
	plen[1] = (size_t)(dot2 - dot1 - 1);
	part[2] = dot2 + 1;
	plen[2] = tl - (size_t)(part[2] - tok);
	for (i = 0; i < 3; i++) {
		size_t c;

		for (c = 0; c < plen[i]; c++)
			if (!b64url_char((unsigned char)part[i][c]))
				break;
		if (c < plen[i] || plen[i] % 4 == 1 || (i < 2 &&
		    plen[i] == 0)) {
			why_set(why, whylen, "malformed base64url in the "
			    "token's %s", i == 0 ? "header" : i == 1 ?
			    "payload" : "signature");
			return (PARLEY_AUTH_DENY);
		}
	}
	if ((hdr = malloc(plen[0])) == NULL || (pay = malloc(plen[1])) ==
	    NULL) {
		why_set(why, whylen, "out of memory");
		goto out;
	}
	hl = b64_decode(part[0], plen[0], 1, hdr);
	pl = b64_decode(part[1], plen[1], 1, pay);
	if (hl <= 0 || pl <= 0) {
		why_set(why, whylen, "malformed base64url in the token's %s",
		    hl <= 0 ? "header" : "payload");
		goto out;
	}
	if (jparse(&hd, (const char *)hdr, (size_t)hl) == -1) {
		why_set(why, whylen, "token header: %s", hd.err);
		goto out;
	}
	if ((k = jmember(&hd, 0, "alg", 3)) == -1 || hd.n[k].type != J_STR) {
		why_set(why, whylen, "token header has no alg");
		goto out;
	}
	alg = hd.n[k].str;
	if (strcasecmp(alg, "none") == 0) {
		why_set(why, whylen, "unsigned token (alg none) refused");
		goto out;
	}
	for (ai = alg_table; ai->name != NULL; ai++)
		if (strcmp(ai->name, alg) == 0)
			break;
	if (jmember(&hd, 0, "crit", 4) != -1) {
		why_set(why, whylen, "token header has crit extensions");
		goto out;
	}
	if (jparse(&pd, (const char *)pay, (size_t)pl) == -1) {
		why_set(why, whylen, "token payload: %s", pd.err);
		goto out;
	}

	/* signature, with the key of the header's algorithm family only */
	pthread_rwlock_rdlock(&st->lock);
	keys = st->keys;
	if (ai->name == NULL || !(keys->algs & (1u << (ai - alg_table)))) {
		char shown[20];
		size_t n;

		pthread_rwlock_unlock(&st->lock);
		/* attacker-chosen text: printable ASCII only into the log */
		for (n = 0; n < 16 && alg[n] != '\0'; n++)
			shown[n] = (unsigned char)alg[n] >= 0x20 &&
			    (unsigned char)alg[n] < 0x7f ? alg[n] : '?';
		snprintf(shown + n, sizeof(shown) - n, "%s",
		    alg[n] != '\0' ? "..." : "");
		why_set(why, whylen, "token algorithm %s not allowed", shown);
		goto out;
	}
	if (ai->key == KEY_HMAC) {
		key = keys->secret;
		keylen = keys->secret_len;
	} else {
		key = (const unsigned char *)keys->pem;
		keylen = keys->pem_len;
	}
	rc = key == NULL ? EINVAL : jwt_decode(&j, tok, key, (int)keylen);
	pthread_rwlock_unlock(&st->lock);
	if (rc != 0 || j == NULL) {
		why_set(why, whylen, "bad %s signature", ai->name);
		goto out;
	}
	if (jwt_get_alg(j) != ai->alg) {
		why_set(why, whylen, "libjwt read another algorithm than %s",
		    ai->name);
		goto out;
	}

	/* subject first, so the reasons below can name it */
	if ((k = jmember(&pd, 0, "sub", 3)) == -1 || pd.n[k].type != J_STR ||
	    !login_ok(pd.n[k].str)) {
		why_set(why, whylen, "sub claim missing or not a login (1..128 "
		    "printable ASCII, no space, ':' or '\\')");
		goto out;
	}
	sub = pd.n[k].str;

	/* time */
	now = (double)st->host->now_ms() / 1000.0;
	if (num_claim(&pd, "exp", &has_exp, &exp) == -1 ||
	    num_claim(&pd, "nbf", &has_nbf, &nbf) == -1 ||
	    num_claim(&pd, "iat", &has_iat, &iat) == -1) {
		why_set(why, whylen, "token for '%s': exp, nbf or iat is not "
		    "a number", sub);
		goto out;
	}
	if (!has_exp && st->require_exp) {
		why_set(why, whylen, "token for '%s' has no exp claim", sub);
		goto out;
	}
	if (has_exp && now >= exp + (double)st->leeway) {
		why_set(why, whylen, "token for '%s' expired %.0f s ago", sub,
		    now - exp);
		goto out;
	}
	if (has_nbf && nbf > now + (double)st->leeway) {
		why_set(why, whylen, "token for '%s' not valid for another "
		    "%.0f s (nbf)", sub, nbf - now);
		goto out;
	}
	if (has_iat && iat > now + (double)st->leeway) {
		why_set(why, whylen, "token for '%s' issued %.0f s in the "
		    "future (iat)", sub, iat - now);
		goto out;
	}

	/* issuer and audience */
	if (st->issuer != NULL) {
		k = jmember(&pd, 0, "iss", 3);
		if (k == -1 || pd.n[k].type != J_STR ||
		    strcmp(pd.n[k].str, st->issuer) != 0) {
			why_set(why, whylen, "token for '%s': %s issuer", sub,
			    k == -1 ? "no" : "wrong");
			goto out;
		}
	}
	if (st->audience != NULL) {
		int ok = 0, e;

		k = jmember(&pd, 0, "aud", 3);
		if (k != -1 && pd.n[k].type == J_STR)
			ok = strcmp(pd.n[k].str, st->audience) == 0;
		else if (k != -1 && pd.n[k].type == J_ARR)
			for (e = pd.n[k].child; e != -1 && !ok;
			    e = pd.n[e].next)
				ok = pd.n[e].type == J_STR &&
				    strcmp(pd.n[e].str, st->audience) == 0;
		if (!ok) {
			why_set(why, whylen, "token for '%s': %s audience",
			    sub, k == -1 ? "no" : "wrong");
			goto out;
		}
	}

	if (login != NULL && login[0] != '\0' && strcmp(login, sub) != 0) {
		why_set(why, whylen, "STOMP login differs from the token's "
		    "sub '%s'", sub);
		goto out;
	}
	if ((bad = roles_from(&pd, jclaim(&pd, st->roles_claim), roles,
	    sizeof(roles))) != NULL) {
		why_set(why, whylen, "token for '%s': claim %s: %s", sub,
		    st->roles_claim, bad);
		goto out;
	}
	if ((bad = grants_from(&pd, jclaim(&pd, st->grants_claim), grants,
	    sizeof(grants))) != NULL) {
		why_set(why, whylen, "token for '%s': claim %s: %s", sub,
		    st->grants_claim, bad);
		goto out;
	}
	snprintf(id->login, sizeof(id->login), "%s", sub);
	snprintf(id->roles, sizeof(id->roles), "%s", roles);
	snprintf(id->grants, sizeof(id->grants), "%s", grants);
	/* a session lives as long as the token would be accepted (an exp
	 * past year 292,000,000 is no expiry, not an overflow) */
	if (has_exp && (exp + (double)st->leeway) * 1000.0 < 9e18)
		id->expires_ms = (int64_t)((exp + (double)st->leeway) * 1000.0);
	r = PARLEY_AUTH_ALLOW;
out:
	if (j != NULL)
		jwt_free(j);
	jfree(&hd);
	jfree(&pd);
	free(hdr);
	free(pay);
	return (r);
}

static int
jwt_authenticate(void *state, const struct parley_credentials *c,
    struct parley_identity *id, char *why, size_t whylen)
{
	struct jwt_state *st = state;
	const char *tok = NULL;

	if (c == NULL)
		return (PARLEY_AUTH_DEFER);
	if (c->bearer != NULL && c->bearer[0] != '\0')
		tok = c->bearer;
	else if (c->passcode != NULL && looks_like_jwt(c->passcode))
		tok = c->passcode;
	if (tok == NULL)
		return (PARLEY_AUTH_DEFER);
	return (check_token(st, tok, c->login, id, why, whylen));
}

/* ------------------------------------------------------------ life */

static void
state_free(struct jwt_state *st)
{
	if (st == NULL)
		return;
	keys_free(st->keys);
	free(st->secret_file);
	free(st->public_key);
	free(st);
}

/* A non-empty string key, or NULL when absent or empty. */
static const char *
str_key(struct jwt_state *st, const char *key)
{
	const char *v = st->host->config_get(st->ctx, key, NULL);

	return (v != NULL && v[0] != '\0' ? v : NULL);
}

/*
 * Read [jwt] into st and load the keys it names into st->keys.  Shared by
 * init and check, so that -t reads every key init reads.  0, or -1 after
 * logging why (the caller frees st either way).
 */
static int
jwt_config(struct jwt_state *st)
{
	const struct parley_host *host = st->host;
	struct parley_ctx *ctx = st->ctx;

	st->secret = str_key(st, "secret");
	if (str_key(st, "secret_file") != NULL &&
	    (st->secret_file = host->config_path(ctx, "secret_file",
	    NULL)) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	if (str_key(st, "public_key") != NULL &&
	    (st->public_key = host->config_path(ctx, "public_key",
	    NULL)) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	st->algorithms = str_key(st, "algorithms");
	st->issuer = str_key(st, "issuer");
	st->audience = str_key(st, "audience");
	st->roles_claim = host->config_get(ctx, "roles_claim", "roles");
	st->grants_claim = host->config_get(ctx, "grants_claim", "rooms");
	if (host->config_int(ctx, "leeway", 30, 0, 86400, &st->leeway) == -1 ||
	    host->config_bool(ctx, "require_exp", 1, &st->require_exp) == -1)
		return (-1);
	if (st->secret != NULL && st->secret_file != NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "secret and secret_file are "
		    "both set: keep one");
		return (-1);
	}
	if (st->secret == NULL && st->secret_file == NULL &&
	    st->public_key == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "no key: set secret or "
		    "secret_file (HS256) or public_key (RS256/ES256)");
		return (-1);
	}
	if (st->roles_claim[0] == '\0' || st->grants_claim[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "roles_claim and grants_claim "
		    "need a claim name");
		return (-1);
	}
	if ((st->keys = keys_load(st)) == NULL)
		return (-1);
	if (st->issuer == NULL || st->audience == NULL)
		host->log(ctx, PARLEY_LOG_WARN, "%s not set: tokens minted for "
		    "other services with the same key are accepted",
		    st->issuer == NULL && st->audience == NULL ?
		    "issuer and audience" : st->issuer == NULL ? "issuer" :
		    "audience");
	return (0);
}

static int
jwt_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct jwt_state *st;
	size_t i;
	char list[128];

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	st->host = host;
	st->ctx = ctx;
	if (jwt_config(st) == -1)
		goto fail;
	if (pthread_rwlock_init(&st->lock, NULL) != 0) {
		host->log(ctx, PARLEY_LOG_ERROR, "pthread_rwlock_init failed");
		goto fail;
	}
	list[0] = '\0';
	for (i = 0; alg_table[i].name != NULL; i++)
		if (st->keys->algs & (1u << i))
			snprintf(list + strlen(list), sizeof(list) -
			    strlen(list), "%s%s", list[0] ? "," : "",
			    alg_table[i].name);
	host->log(ctx, PARLEY_LOG_INFO, "accepting %s tokens%s%s%s%s", list,
	    st->issuer ? " from " : "", st->issuer ? st->issuer : "",
	    st->audience ? " for " : "", st->audience ? st->audience : "");
	*state = st;
	return (0);
fail:
	state_free(st);
	return (-1);
}

/* parleyd -t: read the section and the key files as init does. */
static int
jwt_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct jwt_state *st;
	int rv;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return (-1);
	}
	st->host = host;
	st->ctx = ctx;
	rv = jwt_config(st);
	state_free(st);
	return (rv);
}

static int
jwt_reload(void *state)
{
	struct jwt_state *st = state;
	struct jwt_keys *k, *old;

	if ((k = keys_load(st)) == NULL)
		return (-1);
	pthread_rwlock_wrlock(&st->lock);
	old = st->keys;
	st->keys = k;
	pthread_rwlock_unlock(&st->lock);
	keys_free(old);
	return (0);
}

static void
jwt_fini(void *state)
{
	struct jwt_state *st = state;

	if (st == NULL)
		return;
	pthread_rwlock_destroy(&st->lock);
	state_free(st);
}

static const struct parley_auth_ops jwt_ops = {
	.size = sizeof(struct parley_auth_ops),
	.authenticate = jwt_authenticate,
};

static const struct parley_plugin jwt_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_AUTH,
	.name = "jwt",
	.version = "1.0",
	.description = "JSON Web Tokens (HS256/RS256/ES256) via libjwt",
	.init = jwt_init,
	.fini = jwt_fini,
	.reload = jwt_reload,
	.auth = &jwt_ops,
	.check = jwt_check,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return (&jwt_plugin);
}
