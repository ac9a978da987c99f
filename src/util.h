/*
 * util.h - small shared helpers: a string-keyed hash table, time, names.
 */
#ifndef PARLEY_UTIL_H
#define PARLEY_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Chained hash table from NUL-terminated string keys to pointers.  The table
 * does not own keys or values: the caller keeps the key alive as long as the
 * entry exists (usually the key is a field of the value).
 */
struct strmap_entry {
	const char *key;
	void *value;
	uint32_t hash;
	struct strmap_entry *next;
};

struct strmap {
	struct strmap_entry **buckets;
	size_t nbuckets;
	size_t count;
};

void	 strmap_init(struct strmap *m);
void	 strmap_free(struct strmap *m);	/* entries only, not keys/values */
void	*strmap_get(const struct strmap *m, const char *key);
/* Returns 0, or -1 on allocation failure.  Replaces an existing value. */
int	 strmap_put(struct strmap *m, const char *key, void *value);
/* Returns the removed value or NULL. */
void	*strmap_del(struct strmap *m, const char *key);
/* Calls fn for each entry; fn must not modify the map. */
void	 strmap_foreach(const struct strmap *m,
	    void (*fn)(const char *key, void *value, void *arg), void *arg);

uint32_t hash_str(const char *s);

/* Milliseconds since the Unix epoch / monotonic milliseconds (coarse:
 * resolution of a few ms, for timeouts and rates, not for measuring). */
int64_t	 now_ms(void);
int64_t	 mono_ms(void);

/*
 * Room names: 1..PARLEY_ROOM_MAX bytes of [A-Za-z0-9._-], not starting
 * with '.'.  Returns 1 if valid.
 */
int	 room_name_valid(const char *name, size_t len);
/* Logins: 1..PARLEY_LOGIN_MAX printable ASCII bytes, no space, ':' or '\\'. */
int	 login_valid(const char *login);

/* A header value safe to copy into a frame: printable ASCII and UTF-8, no
 * control bytes (CR, LF, NUL...), at most max bytes.  1 if so. */
int	 header_value_safe(const char *s, size_t max);
/* Message and media ids: 1..PARLEY_ID_MAX of [A-Za-z0-9_-].  1 if valid. */
int	 id_valid(const char *s);

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)?  1 if so. */
int	 utf8_valid(const unsigned char *s, size_t len);

/* Parse a decimal uint64; returns 0 and sets *out, or -1. */
int	 parse_u64(const char *s, uint64_t *out);
/* v in decimal at dst (room for U64_DIGITS, no NUL); returns the digits
 * written.  For per-message fields, where snprintf costs 10x more. */
#define U64_DIGITS 20
size_t	 fmt_u64(char *dst, uint64_t v);

#endif
