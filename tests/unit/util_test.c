/*
 * util_test.c - TAP unit tests for src/util.c: room and login name rules,
 * the UTF-8 validator (overlongs, surrogates, range, truncation), decimal
 * uint64 parsing and the string map.
 *
 * Prints TAP (plan at the end); exits 1 if any test failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>
#include "util.h"

static int ntest, nfail;

static int
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - ", cond ? "" : "not ", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* ------------------------------------------------------------ names */

static void
test_room_names(void)
{
	static const char *const good[] = {
		"lobby", "a", "Z", "0", "general-chat", "team_42", "v1.2",
		"a.", "-", "_", "A-Z_a-z.0-9", NULL
	};
	static const char *const bad[] = {
		"", ".hidden", ".", "..", "a b", "a/b", "a:b", "a\\b", "a\tb",
		"caf\xc3\xa9", "a*", "room?", "a#b", "a%20b", "\x7f", NULL
	};
	char name[PARLEY_ROOM_MAX + 2];
	size_t i;

	for (i = 0; good[i] != NULL; i++)
		ok(room_name_valid(good[i], strlen(good[i])),
		    "room name '%s' is valid", good[i]);
	for (i = 0; bad[i] != NULL; i++)
		ok(!room_name_valid(bad[i], strlen(bad[i])),
		    "room name '%s' is invalid", bad[i]);
	memset(name, 'r', sizeof(name));
	ok(room_name_valid(name, PARLEY_ROOM_MAX), "room name of %d bytes "
	    "is valid", PARLEY_ROOM_MAX);
	ok(!room_name_valid(name, PARLEY_ROOM_MAX + 1), "room name of %d "
	    "bytes is invalid", PARLEY_ROOM_MAX + 1);
	ok(room_name_valid("lobby/messages", 5), "only len bytes are looked "
	    "at ('lobby' of 'lobby/messages')");
	ok(!room_name_valid("lobby/messages", 6), "'lobby/' is invalid");
	ok(!room_name_valid("a\0b", 3), "an embedded NUL is invalid");
}

static void
test_logins(void)
{
	static const char *const good[] = {
		"alice", "a", "bob.smith", "user@example.com", "x-1_2",
		"!#$%&'()*+,-./;<=>?@[]^_`{|}~", NULL
	};
	static const char *const bad[] = {
		"", "a b", " alice", "alice ", "a:b", "a\\b", "a\tb", "a\nb",
		"\x7f", "caf\xc3\xa9", "\x01", NULL
	};
	char name[PARLEY_LOGIN_MAX + 2];
	size_t i;

	for (i = 0; good[i] != NULL; i++)
		ok(login_valid(good[i]), "login '%s' is valid", good[i]);
	for (i = 0; bad[i] != NULL; i++)
		ok(!login_valid(bad[i]), "login #%zu (bad) is invalid", i);
	memset(name, 'u', sizeof(name));
	name[PARLEY_LOGIN_MAX] = '\0';
	ok(login_valid(name), "login of %d bytes is valid", PARLEY_LOGIN_MAX);
	name[PARLEY_LOGIN_MAX] = 'u';
	name[PARLEY_LOGIN_MAX + 1] = '\0';
	ok(!login_valid(name), "login of %d bytes is invalid",
	    PARLEY_LOGIN_MAX + 1);
}

/* ------------------------------------------------------------ UTF-8 */

struct u8case {
	const char *name;
	const char *s;
	size_t len;		/* 0: strlen(s) */
	int valid;
};

static void
test_utf8(void)
{
	static const struct u8case cases[] = {
		{ "empty", "", 0, 1 },
		{ "ASCII", "hello, world", 0, 1 },
		{ "embedded NUL", "a\0b", 3, 1 },
		{ "all of ASCII's top (0x7f)", "\x7f", 0, 1 },
		{ "2-byte U+00E9", "caf\xc3\xa9", 0, 1 },
		{ "smallest 2-byte U+0080", "\xc2\x80", 0, 1 },
		{ "largest 2-byte U+07FF", "\xdf\xbf", 0, 1 },
		{ "smallest 3-byte U+0800", "\xe0\xa0\x80", 0, 1 },
		{ "3-byte U+20AC", "\xe2\x82\xac", 0, 1 },
		{ "U+D7FF (below the surrogates)", "\xed\x9f\xbf", 0, 1 },
		{ "U+E000 (above the surrogates)", "\xee\x80\x80", 0, 1 },
		{ "U+FFFD", "\xef\xbf\xbd", 0, 1 },
		{ "U+FFFF (a noncharacter, still UTF-8)", "\xef\xbf\xbf", 0, 1 },
		{ "smallest 4-byte U+10000", "\xf0\x90\x80\x80", 0, 1 },
		{ "4-byte U+1F600", "\xf0\x9f\x98\x80", 0, 1 },
		{ "largest U+10FFFF", "\xf4\x8f\xbf\xbf", 0, 1 },
		{ "mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 0, 1 },

		{ "lone continuation 0x80", "\x80", 0, 0 },
		{ "lone continuation 0xbf", "a\xbf", 0, 0 },
		{ "overlong NUL C0 80", "\xc0\x80", 0, 0 },
		{ "overlong '/' C0 AF", "\xc0\xaf", 0, 0 },
		{ "overlong C1 BF", "\xc1\xbf", 0, 0 },
		{ "overlong 3-byte E0 80 80", "\xe0\x80\x80", 0, 0 },
		{ "overlong 3-byte U+07FF E0 9F BF", "\xe0\x9f\xbf", 0, 0 },
		{ "overlong 4-byte F0 80 80 80", "\xf0\x80\x80\x80", 0, 0 },
		{ "overlong 4-byte U+FFFF F0 8F BF BF", "\xf0\x8f\xbf\xbf", 0,
		    0 },
		{ "high surrogate U+D800", "\xed\xa0\x80", 0, 0 },
		{ "low surrogate U+DFFF", "\xed\xbf\xbf", 0, 0 },
		{ "surrogate pair (CESU-8)", "\xed\xa0\xbd\xed\xb8\x80", 0, 0 },
		{ "above U+10FFFF F4 90 80 80", "\xf4\x90\x80\x80", 0, 0 },
		{ "F5 lead byte", "\xf5\x80\x80\x80", 0, 0 },
		{ "5-byte form F8", "\xf8\x88\x80\x80\x80", 0, 0 },
		{ "6-byte form FC", "\xfc\x84\x80\x80\x80\x80", 0, 0 },
		{ "FE", "\xfe", 0, 0 },
		{ "FF", "\xff", 0, 0 },
		{ "bad continuation C3 28", "\xc3\x28", 0, 0 },
		{ "bad second continuation E2 82 28", "\xe2\x82\x28", 0, 0 },
		{ "bad third continuation F0 9F 98 28", "\xf0\x9f\x98\x28", 0,
		    0 },
		{ "truncated 2-byte at end", "abc\xc3", 0, 0 },
		{ "truncated 3-byte at end (1 of 3)", "abc\xe2", 0, 0 },
		{ "truncated 3-byte at end (2 of 3)", "abc\xe2\x82", 0, 0 },
		{ "truncated 4-byte at end (3 of 4)", "\xf0\x9f\x98", 0, 0 },
		{ "truncated sequence followed by ASCII", "\xe2\x82z", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct u8case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->s);

		ok(utf8_valid((const unsigned char *)c->s, len) == c->valid,
		    "UTF-8 %s: %s", c->name, c->valid ? "valid" : "invalid");
	}
	/* the length bounds the check: a valid prefix of a longer string */
	ok(utf8_valid((const unsigned char *)"ab\xff", 2),
	    "only len bytes are checked");
	ok(!utf8_valid((const unsigned char *)"\xc3\xa9", 1),
	    "a 2-byte character cut by len is invalid");
	/* every 2-byte lead with every continuation, exhaustively */
	{
		int bad = 0;
		unsigned a, b;
		unsigned char s[2];

		for (a = 0; a < 256; a++)
			for (b = 0; b < 256; b++) {
				int want;

				s[0] = (unsigned char)a;
				s[1] = (unsigned char)b;
				if (a < 0x80)
					want = b < 0x80;
				else
					want = a >= 0xc2 && a <= 0xdf &&
					    b >= 0x80 && b <= 0xbf;
				if (utf8_valid(s, 2) != want)
					bad++;
			}
		ok(bad == 0, "all 65536 two-byte strings classified correctly "
		    "(%d wrong)", bad);
	}
	/* long ASCII runs (checked eight bytes at a time) with one bad
	 * byte, a good character or a cut one at every position and length */
	{
		int bad = 0;
		size_t len, at;
		unsigned char s[48];

		for (len = 1; len <= sizeof(s); len++)
			for (at = 0; at < len; at++) {
				memset(s, 'a', sizeof(s));
				s[at] = 0xff;
				if (utf8_valid(s, len))
					bad++;
				s[at] = 0x80;	/* a lone continuation */
				if (utf8_valid(s, len))
					bad++;
				if (at + 1 < len) {
					s[at] = 0xc3;
					s[at + 1] = 0xa9;
					if (!utf8_valid(s, len))
						bad++;
				} else {
					s[at] = 0xc3;	/* cut by len */
					if (utf8_valid(s, len))
						bad++;
				}
				memset(s, 'a', sizeof(s));
				if (!utf8_valid(s, len))
					bad++;
			}
		ok(bad == 0, "ASCII runs of 1-48 bytes with a bad byte, a "
		    "character or a cut one at every position (%d wrong)", bad);
	}
}

/* ------------------------------------------------------------ parse_u64 */

static void
test_parse_u64(void)
{
	static const struct {
		const char *s;
		int rv;
		uint64_t v;
	} cases[] = {
		{ "0", 0, 0 },
		{ "1", 0, 1 },
		{ "42", 0, 42 },
		{ "007", 0, 7 },
		{ "4294967296", 0, 4294967296ULL },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -1, 0 },
		{ "99999999999999999999999", -1, 0 },
		{ "", -1, 0 },
		{ "-1", -1, 0 },
		{ "+1", -1, 0 },
		{ " 1", -1, 0 },
		{ "1 ", -1, 0 },
		{ "1a", -1, 0 },
		{ "0x10", -1, 0 },
		{ "1.5", -1, 0 },
		{ "1e3", -1, 0 },
		{ "abc", -1, 0 },
	};
	size_t i;
	uint64_t v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 12345;
		if (cases[i].rv == 0)
			ok(parse_u64(cases[i].s, &v) == 0 && v == cases[i].v,
			    "parse_u64('%s') = %llu", cases[i].s,
			    (unsigned long long)cases[i].v);
		else
			ok(parse_u64(cases[i].s, &v) == -1 && v == 12345,
			    "parse_u64('%s') fails, output untouched",
			    cases[i].s);
	}
	ok(parse_u64(NULL, &v) == -1, "parse_u64(NULL) fails");
}

/* fmt_u64 against printf, and back through parse_u64 */
static void
test_fmt_u64(void)
{
	static const uint64_t vals[] = { 0, 1, 9, 10, 99, 100, 12345,
	    4294967295ULL, 4294967296ULL, 117670117298929664ULL,
	    10000000000000000000ULL, UINT64_MAX - 1, UINT64_MAX };
	char got[U64_DIGITS + 8], want[32];
	size_t i, n;
	uint64_t back;
	int bad = 0;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		memset(got, 'x', sizeof(got));
		n = fmt_u64(got, vals[i]);
		snprintf(want, sizeof(want), "%llu",
		    (unsigned long long)vals[i]);
		if (n != strlen(want) || memcmp(got, want, n) != 0 ||
		    got[n] != 'x')
			bad++;
		got[n] = '\0';
		if (parse_u64(got, &back) != 0 || back != vals[i])
			bad++;
	}
	ok(bad == 0, "fmt_u64 writes what printf's %%llu does, no more, "
	    "and parse_u64 reads it back (%zu values up to UINT64_MAX)",
	    sizeof(vals) / sizeof(vals[0]));

	/* every value below 100,000, and each power of ten and its
	 * neighbours: odd and even digit counts, both ends of each step */
	bad = 0;
	for (i = 0; i < 100000 + 3 * 20; i++) {
		uint64_t x = i, p10 = 1;
		size_t k;

		if (i >= 100000) {
			for (k = 0; k < (i - 100000) / 3; k++)
				p10 *= 10;
			x = p10 - 1 + (i - 100000) % 3;
		}
		n = fmt_u64(got, x);
		snprintf(want, sizeof(want), "%llu", (unsigned long long)x);
		if (n != strlen(want) || memcmp(got, want, n) != 0)
			bad++;
	}
	ok(bad == 0, "fmt_u64 matches printf for 0..99999 and around every "
	    "power of ten (%d wrong)", bad);
}

/* ------------------------------------------------------------ strmap */

struct item {
	char key[32];
	int n;
	int seen;
};

static void
count_cb(const char *key, void *value, void *arg)
{
	struct item *it = value;

	if (strcmp(key, it->key) == 0)
		it->seen++;
	(*(size_t *)arg)++;
}

static void
test_strmap(void)
{
	struct strmap m;
	enum { N = 20000 };
	struct item *items = calloc(N, sizeof(*items));
	struct item other;
	size_t i, count, wrong;

	strmap_init(&m);
	ok(m.count == 0 && strmap_get(&m, "x") == NULL,
	    "empty map: get finds nothing");
	ok(strmap_del(&m, "x") == NULL, "empty map: del returns NULL");
	count = 0;
	strmap_foreach(&m, count_cb, &count);
	ok(count == 0, "empty map: foreach calls nothing");

	for (i = 0; i < N; i++) {
		snprintf(items[i].key, sizeof(items[i].key), "room-%zu", i);
		items[i].n = (int)i;
		if (strmap_put(&m, items[i].key, &items[i]) != 0)
			break;
	}
	ok(i == N && m.count == N, "%d entries put (count %zu)", N, m.count);
	wrong = 0;
	for (i = 0; i < N; i++) {
		char k[32];
		struct item *it;

		/* a different buffer with the same text finds it */
		snprintf(k, sizeof(k), "room-%zu", i);
		it = strmap_get(&m, k);
		if (it != &items[i])
			wrong++;
	}
	ok(wrong == 0, "every entry found by an equal key (%zu wrong)", wrong);
	ok(strmap_get(&m, "room-") == NULL && strmap_get(&m, "room-20000") ==
	    NULL && strmap_get(&m, "") == NULL, "absent keys are not found");
	ok((m.nbuckets & (m.nbuckets - 1)) == 0 && m.nbuckets >= N,
	    "table grew to a power of two >= count (%zu buckets)",
	    m.nbuckets);

	count = 0;
	strmap_foreach(&m, count_cb, &count);
	wrong = 0;
	for (i = 0; i < N; i++)
		if (items[i].seen != 1)
			wrong++;
	ok(count == N && wrong == 0, "foreach visits every entry once");

	snprintf(other.key, sizeof(other.key), "room-7");
	ok(strmap_put(&m, other.key, &other) == 0 && m.count == N &&
	    strmap_get(&m, "room-7") == &other,
	    "put on an existing key replaces the value, count unchanged");

	wrong = 0;
	for (i = 0; i < N; i += 2) {
		void *v = strmap_del(&m, items[i].key);

		if (v != (i == 7 ? (void *)&other : (void *)&items[i]))
			wrong++;
	}
	ok(wrong == 0 && m.count == N / 2, "deleting every other entry "
	    "returns its value (count %zu)", m.count);
	wrong = 0;
	for (i = 0; i < N; i++) {
		void *v = strmap_get(&m, items[i].key);

		if (i % 2 == 0 ? v != NULL : v != (i == 7 ? (void *)&other :
		    (void *)&items[i]))
			wrong++;
	}
	ok(wrong == 0, "deleted keys are gone, the others remain");
	ok(strmap_del(&m, "room-0") == NULL, "deleting twice returns NULL");
	ok(strmap_put(&m, items[0].key, &items[0]) == 0 &&
	    strmap_get(&m, "room-0") == &items[0] && m.count == N / 2 + 1,
	    "a deleted key can be put again");

	strmap_free(&m);
	ok(m.count == 0 && m.nbuckets == 0 && strmap_get(&m, "room-1") ==
	    NULL, "after free the map is empty and usable");
	ok(strmap_put(&m, "k", &other) == 0 && strmap_get(&m, "k") ==
	    &other, "a freed map can be used again");
	strmap_free(&m);
	free(items);

	ok(hash_str("") == 2166136261u, "hash of \"\" is the FNV-1a basis");
	ok(hash_str("a") != hash_str("b") && hash_str("ab") != hash_str("ba"),
	    "hash depends on bytes and their order");
}

static void
test_time(void)
{
	int64_t a = now_ms(), m1 = mono_ms(), m2;

	ok(a > 1600000000000LL && a < 4102444800000LL,
	    "now_ms is milliseconds since the epoch (%lld)", (long long)a);
	m2 = mono_ms();
	ok(m2 >= m1, "mono_ms does not go backwards");
}

/*
 * Every byte against the rules as written in doc/protocol.md, checked one
 * comparison at a time (util.c looks them up in a table).
 */
static void
test_char_classes(void)
{
	char s[4];
	int c, bad_room = 0, bad_login = 0, bad_hdr = 0, bad_id = 0;

	for (c = 1; c < 256; c++) {
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');
		int room = alnum || c == '.' || c == '_' || c == '-';
		int id = alnum || c == '_' || c == '-';
		int login = c > ' ' && c < 0x7f && c != ':' && c != '\\';
		int hdr = c >= 0x20 && c != 0x7f && c != '\\';

		/* in the middle of a valid name, and at its end */
		s[0] = 'a';
		s[1] = (char)c;
		s[2] = 'b';
		s[3] = '\0';
		if (room_name_valid(s, 3) != room ||
		    room_name_valid(s, 2) != room)
			bad_room++;
		if (login_valid(s) != login)
			bad_login++;
		if (header_value_safe(s, 10) != hdr)
			bad_hdr++;
		if (id_valid(s) != id)
			bad_id++;
	}
	ok(bad_room == 0, "room names: each of the 255 bytes allowed or not "
	    "as the rules say (%d wrong)", bad_room);
	ok(bad_login == 0, "logins: each byte as the rules say (%d wrong)",
	    bad_login);
	ok(bad_hdr == 0, "header values: each byte as the rules say "
	    "(%d wrong)", bad_hdr);
	ok(bad_id == 0, "ids: each byte as the rules say (%d wrong)", bad_id);
	ok(header_value_safe("0123456789", 10) &&
	    !header_value_safe("0123456789a", 10) &&
	    header_value_safe("", 0), "header values: length limit");
	ok(id_valid("a-_Z9") && !id_valid("") && !id_valid("a.b"),
	    "ids: empty and '.' are invalid");
}

int
main(void)
{
	test_room_names();
	test_logins();
	test_char_classes();
	test_utf8();
	test_parse_u64();
	test_fmt_u64();
	test_strmap();
	test_time();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
