/*
 * util.c - see util.h.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#include <parley/plugin.h>
#include "util.h"

uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

void
strmap_init(struct strmap *m)
{
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

void
strmap_free(struct strmap *m)
{
	struct strmap_entry *e, *next;
	size_t i;

	for (i = 0; i < m->nbuckets; i++)
		for (e = m->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(m->buckets);
	strmap_init(m);
}

static struct strmap_entry **
strmap_find(const struct strmap *m, const char *key, uint32_t h)
{
	struct strmap_entry **ep;

	if (m->nbuckets == 0)
		return NULL;
	for (ep = &m->buckets[h & (m->nbuckets - 1)]; *ep != NULL;
	    ep = &(*ep)->next)
		if ((*ep)->hash == h && strcmp((*ep)->key, key) == 0)
			return ep;
	return NULL;
}

void *
strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry **ep;

	ep = strmap_find(m, key, hash_str(key));
	return ep != NULL ? (*ep)->value : NULL;
}

static int
strmap_grow(struct strmap *m)
{
	struct strmap_entry **nb, *e, *next;
	size_t n, i;

	n = m->nbuckets ? m->nbuckets * 2 : 16;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return -1;
	for (i = 0; i < m->nbuckets; i++)
		for (e = m->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	free(m->buckets);
	m->buckets = nb;
	m->nbuckets = n;
	return 0;
}

int
strmap_put(struct strmap *m, const char *key, void *value)
{
	struct strmap_entry **ep, *e;
	uint32_t h = hash_str(key);

	if ((ep = strmap_find(m, key, h)) != NULL) {
		(*ep)->key = key;
		(*ep)->value = value;
		return 0;
	}
	if (m->count >= m->nbuckets && strmap_grow(m) == -1)
		return -1;
	if ((e = malloc(sizeof(*e))) == NULL)
		return -1;
	e->key = key;
	e->value = value;
	e->hash = h;
	e->next = m->buckets[h & (m->nbuckets - 1)];
	m->buckets[h & (m->nbuckets - 1)] = e;
	m->count++;
	return 0;
}

void *
strmap_del(struct strmap *m, const char *key)
{
	struct strmap_entry **ep, *e;
	void *v;

	if ((ep = strmap_find(m, key, hash_str(key))) == NULL)
		return NULL;
	e = *ep;
	*ep = e->next;
	v = e->value;
	free(e);
	m->count--;
	return v;
}

void
strmap_foreach(const struct strmap *m,
    void (*fn)(const char *key, void *value, void *arg), void *arg)
{
	struct strmap_entry *e;
	size_t i;

	for (i = 0; i < m->nbuckets; i++)
		for (e = m->buckets[i]; e != NULL; e = e->next)
			fn(e->key, e->value, arg);
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mono_ms(void)
{
	struct timespec ts;

	/* the coarse clock (a few ms of resolution) is enough for rate
	 * limits, heart-beats and deadlines, and costs 3 ns instead of 20:
	 * it is read several times per frame */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * What each byte may be part of, for the checks below: one table lookup a
 * byte instead of a chain of comparisons (they run on every message).
 */
#define CC_ROOM	0x01	/* a-z A-Z 0-9 . _ - */
#define CC_ID	0x02	/* a-z A-Z 0-9 _ - */
#define CC_LOGIN 0x04	/* printable ASCII but space, ':' and '\\' */
#define CC_HDR	0x08	/* anything but controls, DEL and '\\' */
#define CC_CHARS(c) \
	((((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
	((c) >= '0' && (c) <= '9') || (c) == '_' || (c) == '-' ? \
	CC_ROOM | CC_ID : (c) == '.' ? CC_ROOM : 0) | \
	((c) > ' ' && (c) < 0x7f && (c) != ':' && (c) != '\\' ? CC_LOGIN : 0) | \
	((c) >= 0x20 && (c) != 0x7f && (c) != '\\' ? CC_HDR : 0))
#define CC4(c) CC_CHARS(c), CC_CHARS((c) + 1), CC_CHARS((c) + 2), \
	CC_CHARS((c) + 3)
#define CC16(c) CC4(c), CC4((c) + 4), CC4((c) + 8), CC4((c) + 12)
#define CC64(c) CC16(c), CC16((c) + 16), CC16((c) + 32), CC16((c) + 48)
static const unsigned char char_class[256] = {
	CC64(0), CC64(64), CC64(128), CC64(192)
};

/* The length of s's first run of bytes of class cls. */
static size_t
class_span(const char *s, unsigned char cls)
{
	const unsigned char *p = (const unsigned char *)s;

	while (char_class[*p] & cls)
		p++;
	return (size_t)(p - (const unsigned char *)s);
}

int
room_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > PARLEY_ROOM_MAX || name[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!(char_class[(unsigned char)name[i]] & CC_ROOM))
			return 0;
	return 1;
}

int
login_valid(const char *login)
{
	size_t n = class_span(login, CC_LOGIN);

	return login[n] == '\0' && n > 0 && n <= PARLEY_LOGIN_MAX;
}

int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n, k;
		uint64_t w, w2;

		if (c < 0x80) {
			/* ASCII, the common case: sixteen bytes a step, then
			 * eight */
			for (i++; i + 16 <= len; i += 16) {
				memcpy(&w, s + i, 8);
				memcpy(&w2, s + i + 8, 8);
				if ((w | w2) & 0x8080808080808080ULL)
					break;
			}
			for (; i + 8 <= len; i += 8) {
				memcpy(&w, s + i, 8);
				if (w & 0x8080808080808080ULL)
					break;
			}
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return 0;
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

size_t
fmt_u64(char *dst, uint64_t v)
{
	/* two digits a step, straight into dst from its last digit:
	 * positions and timestamps have 13-18 */
	static const char pairs[201] =
	    "00010203040506070809101112131415161718192021222324252627282930"
	    "31323334353637383940414243444546474849505152535455565758596061"
	    "62636465666768697071727374757677787980818283848586878889909192"
	    "93949596979899";
	static const uint64_t pow10[20] = {
	    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
	    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
	    100000000000ULL, 1000000000000ULL, 10000000000000ULL,
	    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
	    100000000000000000ULL, 1000000000000000000ULL,
	    10000000000000000000ULL
	};
	/* digits: log10 from the bit length (1233/4096 ~ log10(2)), then
	 * one comparison */
	unsigned bits = 64 - (unsigned)__builtin_clzll(v | 1);
	size_t n = (bits * 1233) >> 12, i;
	uint32_t w;

	n += n < 20 && v >= pow10[n];
	if (n == 0)
		n = 1;
	i = n;
	while (v > UINT32_MAX) {
		unsigned r = (unsigned)(v % 100);

		v /= 100;
		i -= 2;
		memcpy(dst + i, pairs + 2 * r, 2);
	}
	/* the rest in 32 bits: cheaper divisions */
	for (w = (uint32_t)v; w >= 100; w /= 100) {
		i -= 2;
		memcpy(dst + i, pairs + 2 * (w % 100), 2);
	}
	if (w >= 10)
		memcpy(dst, pairs + 2 * w, 2);
	else
		dst[0] = (char)('0' + w);
	return n;
}

int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int
header_value_safe(const char *s, size_t max)
{
	size_t n = class_span(s, CC_HDR);

	return s[n] == '\0' && n <= max;
}

int
id_valid(const char *s)
{
	size_t n = class_span(s, CC_ID);

	return s[n] == '\0' && n > 0 && n <= PARLEY_ID_MAX;
}
