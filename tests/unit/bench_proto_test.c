/*
 * bench_proto_test.c - TAP unit tests for the load generator's parsers
 * (bench/proto.c): stomp_parse, which finds newlines sixteen bytes a step,
 * against the line-by-line memchr parser it replaced (kept below as the
 * reference), on random streams parsed whole and cut at every length; and
 * pb_parse, which reads eight digits a step, against a digit-at-a-time
 * reference on random and malformed benchmark bodies.
 *
 * Prints TAP (plan at the end); exits 1 if any test failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int ntests, nfailed;

static void
ok(int cond, const char *name)
{
	ntests++;
	if (!cond)
		nfailed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntests, name);
}

/* proto.c's ws_send appends to an io (net.c); not used here */
char *
io_reserve(struct io *io, size_t n)
{
	(void)io;
	(void)n;
	return NULL;
}

void
io_commit(struct io *io, size_t n)
{
	(void)io;
	(void)n;
}

/* ------------------------------------------------------------ reference */

/* The parser before the sixteen-bytes-a-step scan, line by line. */
static ssize_t
ref_parse(const char *buf, size_t len, size_t max, struct sframe *f)
{
	size_t i = 0, start, cl = 0;
	const char *nl, *z;
	int has_cl = 0, eols = 0;

	while (i < len && (buf[i] == '\n' || buf[i] == '\r')) {
		if (buf[i] == '\r') {
			if (i + 1 >= len)
				break;
			if (buf[i + 1] != '\n')
				return -1;
			i++;
		}
		i++;
		eols++;
	}
	f->eols = eols;
	if (i == len || (buf[i] == '\r' && i + 1 == len)) {
		f->cmd = NULL;
		return (ssize_t)i;
	}
	start = i;
	if ((nl = memchr(buf + i, '\n', len - i)) == NULL)
		goto more;
	f->cmd = buf + i;
	f->cmdlen = (size_t)(nl - (buf + i));
	if (f->cmdlen > 0 && f->cmd[f->cmdlen - 1] == '\r')
		f->cmdlen--;
	i = (size_t)(nl - buf) + 1;
	f->hdr = buf + i;
	for (;;) {
		if (i >= len)
			goto more;
		if (buf[i] == '\n') {
			f->hdrlen = (size_t)(buf + i - f->hdr);
			i++;
			break;
		}
		if (buf[i] == '\r') {
			if (i + 1 >= len)
				goto more;
			f->hdrlen = (size_t)(buf + i - f->hdr);
			i += 2;
			break;
		}
		if ((nl = memchr(buf + i, '\n', len - i)) == NULL)
			goto more;
		if (!has_cl && buf[i] == 'c' && (size_t)(nl - (buf + i)) > 15 &&
		    memcmp(buf + i, "content-length:", 15) == 0) {
			const char *d = buf + i + 15;

			has_cl = 1;
			for (; d < nl && *d >= '0' && *d <= '9'; d++)
				cl = cl * 10 + (size_t)(*d - '0');
		}
		i = (size_t)(nl - buf) + 1;
	}
	f->body = buf + i;
	if (has_cl) {
		if (cl > max)
			return -1;
		if (len - i < cl + 1)
			goto more;
		if (buf[i + cl] != '\0')
			return -1;
		f->bodylen = cl;
		return (ssize_t)(i + cl + 1);
	}
	if ((z = memchr(buf + i, '\0', len - i)) == NULL)
		goto more;
	f->bodylen = (size_t)(z - (buf + i));
	return (ssize_t)(z + 1 - buf);
more:
	if (len - start > max)
		return -1;
	return 0;
}

/* The body parser before eight digits a step. */
static const char *
ref_num(const char *p, const char *end, uint64_t *v)
{
	const char *s = p;
	uint64_t x = 0;

	while (p < end && (unsigned)(*p - '0') < 10)
		x = x * 10 + (uint64_t)(*p++ - '0');
	if (p == s || p >= end || *p != ':')
		return NULL;
	*v = x;
	return p + 1;
}

static int
ref_pb(const char *b, size_t len, struct pbody *pb)
{
	const char *end = b + len, *p = b + 2;

	if (len < 2 || b[0] != 'P' || b[1] != 'B' ||
	    (p = ref_num(p, end, &pb->room)) == NULL ||
	    (p = ref_num(p, end, &pb->pub)) == NULL ||
	    (p = ref_num(p, end, &pb->seq)) == NULL ||
	    (p = ref_num(p, end, &pb->t)) == NULL)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ streams */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static unsigned
rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static size_t
put(char *b, size_t at, const char *s, size_t n)
{
	memcpy(b + at, s, n);
	return at + n;
}

/* A random stream of 1-3 frames: EOLs (some broken), commands, headers
 * of 0-70 bytes across the 16-byte blocks, content-lengths right, wrong,
 * repeated or missing, CRLFs, NULs and newlines in bodies. */
static size_t
gen_stream(char *b, size_t cap)
{
	static const char *cmds[] = { "MESSAGE", "RECEIPT", "CONNECTED",
	    "ERROR", "" };
	size_t n = 0;
	int frames = 1 + (int)rnd(3), k, h, j;

	for (k = 0; k < frames && n < cap - 2048; k++) {
		int eols = (int)rnd(4), crlf = rnd(4) == 0, body, cl;
		const char *c;
		char line[128];

		for (j = 0; j < eols; j++)
			n = rnd(5) == 0 ? put(b, n, "\r\n", 2) :
			    rnd(40) == 0 ? put(b, n, "\rx", 2) :
			    put(b, n, "\n", 1);
		c = cmds[rnd(5)];
		n = put(b, n, c, strlen(c));
		n = crlf ? put(b, n, "\r\n", 2) : put(b, n, "\n", 1);
		body = (int)rnd(60);
		/* -1: none; else the value to write (sometimes wrong) */
		cl = rnd(3) == 0 ? -1 : rnd(8) == 0 ? body + (int)rnd(5) - 2 :
		    body;
		h = (int)rnd(12);
		for (j = 0; j < h; j++) {
			int len = (int)rnd(70), m;

			if (cl >= 0 && rnd((unsigned)h + 1) == 0) {
				m = snprintf(line, sizeof(line),
				    "content-length:%d", cl);
				if (rnd(6) == 0)	/* junk after the digits */
					line[m++] = "x 9"[rnd(3)];
				if (rnd(3) != 0)
					cl = -1;	/* else once more */
			} else if (rnd(10) == 0) {
				m = snprintf(line, sizeof(line),
				    "content-length:%u", rnd(100000));
			} else {
				for (m = 0; m < len; m++)
					line[m] = "abcc:-/\\0123456789"[rnd(18)];
				if (rnd(30) == 0 && m > 0)
					line[rnd((unsigned)m)] = '\r';
			}
			n = put(b, n, line, (size_t)m);
			n = crlf ? put(b, n, "\r\n", 2) : put(b, n, "\n", 1);
		}
		if (cl >= 0) {
			n += (size_t)snprintf(b + n, cap - n,
			    "content-length:%d", cl);
			n = crlf ? put(b, n, "\r\n", 2) : put(b, n, "\n", 1);
		}
		n = crlf ? put(b, n, "\r\n", 2) : put(b, n, "\n", 1);
		for (j = 0; j < body; j++)
			b[n++] = rnd(20) == 0 ? '\0' : rnd(20) == 0 ? '\n' :
			    (char)('a' + rnd(26));
		b[n++] = '\0';
	}
	return n;
}

static int
same(ssize_t r1, const struct sframe *a, ssize_t r2, const struct sframe *b)
{
	if (r1 != r2)
		return 0;
	if (r1 <= 0)
		return 1;
	if (a->eols != b->eols || a->cmd != b->cmd)
		return 0;
	if (a->cmd == NULL)
		return 1;
	return a->cmdlen == b->cmdlen && a->hdr == b->hdr &&
	    a->hdrlen == b->hdrlen && a->body == b->body &&
	    a->bodylen == b->bodylen;
}

/* Parse a whole stream frame by frame with both; 1 when they agree. */
static int
agree(const char *b, size_t len, size_t max, int *frames, int *errors)
{
	size_t off = 0;

	while (off < len) {
		struct sframe f1, f2;
		ssize_t r1, r2;

		memset(&f1, 0xa5, sizeof(f1));
		memset(&f2, 0xa5, sizeof(f2));
		r1 = stomp_parse(b + off, len - off, max, &f1);
		r2 = ref_parse(b + off, len - off, max, &f2);
		if (!same(r1, &f1, r2, &f2)) {
			printf("# differ at offset %zu of %zu (max %zu): %zd "
			    "against %zd\n", off, len, max, r1, r2);
			return 0;
		}
		if (r1 <= 0) {
			if (r1 < 0)
				(*errors)++;
			return 1;
		}
		(*frames)++;
		off += (size_t)r1;
	}
	return 1;
}

/* ------------------------------------------------------------ tests */

static void
test_stomp_known(void)
{
	static const char m[] = "MESSAGE\nsubscription:0\nmessage-id:x-1\n"
	    "destination:/room/a\nposition:17\nsender:alice\n"
	    "timestamp:1700000000000\ncontent-length:5\n\nhe\0lo";
	char buf[256];
	struct sframe f;
	ssize_t r;
	size_t len = sizeof(m);	/* with the terminating NUL */

	memcpy(buf, m, len);
	r = stomp_parse(buf, len, 1024, &f);
	ok(r == (ssize_t)len && f.cmdlen == 7 &&
	    memcmp(f.cmd, "MESSAGE", 7) == 0 && f.bodylen == 5 &&
	    memcmp(f.body, "he\0lo", 5) == 0,
	    "a MESSAGE with a NUL inside its content-length body");
	ok(stomp_hdr(&f, "timestamp", buf + 200, 40) == 0 &&
	    strcmp(buf + 200, "1700000000000") == 0,
	    "its headers are where stomp_hdr finds them");
	ok(stomp_parse(buf, len - 1, 1024, &f) == 0,
	    "without its last byte it needs more");
	ok(stomp_parse(buf, len, 4, &f) == -1,
	    "a content-length over max is an error");
	ok(stomp_parse(buf, 60, 40, &f) == -1,
	    "so is an unfinished frame already longer than max");
	ok(stomp_parse("\r\n\n\r", 4, 1024, &f) == 3 && f.cmd == NULL &&
	    f.eols == 2, "heart-beat EOLs alone, a CR left for later");
	ok(stomp_parse("\rX", 2, 1024, &f) == -1, "a CR without LF is an error");
	memcpy(buf, "RECEIPT\r\nreceipt-id:p1\r\n\r\n\0", 27);
	ok(stomp_parse(buf, 27, 1024, &f) == 27 && f.cmdlen == 7 &&
	    f.bodylen == 0, "CRLF line ends");
}

static void
test_stomp_random(void)
{
	static char buf[65536];
	int i, bad = 0, cuts_bad = 0, frames = 0, errors = 0;
	size_t maxes[] = { 16, 200, 1 << 20, 1 << 20 };

	for (i = 0; i < 4000; i++) {
		size_t len = gen_stream(buf, sizeof(buf)), cut;
		size_t max = maxes[rnd(4)];

		if (!agree(buf, len, max, &frames, &errors))
			bad++;
		/* every prefix of the stream's first 300 bytes */
		for (cut = 0; cut < len && cut < 300; cut++) {
			struct sframe f1, f2;
			ssize_t r1 = stomp_parse(buf, cut, max, &f1);
			ssize_t r2 = ref_parse(buf, cut, max, &f2);

			if (!same(r1, &f1, r2, &f2)) {
				cuts_bad++;
				break;
			}
		}
	}
	printf("# %d frames and %d errors among 4,000 random streams\n",
	    frames, errors);
	ok(bad == 0, "4,000 random streams: the same frames and errors as "
	    "the line-by-line parser");
	ok(cuts_bad == 0, "and the same when cut at every length up to 300");
	ok(frames > 3000 && errors > 100,
	    "the streams hold both whole frames and malformed ones");
}

static void
test_pb(void)
{
	char b[256];
	struct pbody p1, p2;
	int i, bad = 0, good = 0;

	ok(pb_parse("PB3:0:12345:58000123456789:xxxx", 31, &p1) == 0 &&
	    p1.room == 3 && p1.pub == 0 && p1.seq == 12345 &&
	    p1.t == 58000123456789ull, "a body's four numbers");
	ok(pb_parse("PB18446744073709551615:1:2:3:", 30, &p1) == 0 &&
	    p1.room == UINT64_MAX, "the largest 64-bit number");
	ok(pb_parse("PB1:2:3:4", 9, &p1) == -1, "a number without its colon");
	ok(pb_parse("PB1:2::4:", 9, &p1) == -1, "an empty number");
	ok(pb_parse("PX1:2:3:4:", 10, &p1) == -1, "not a benchmark body");
	ok(pb_parse("PB12345678/:2:3:4:", 18, &p1) == -1 &&
	    pb_parse("PB1234x678:2:3:4:", 17, &p1) == -1,
	    "a non-digit right after eight digits, or inside them");
	for (i = 0; i < 200000; i++) {
		size_t n = 0, j;
		int r1, r2, f;

		n += (size_t)snprintf(b, sizeof(b), "%s", rnd(50) ? "PB" :
		    "Pb");
		for (f = 0; f < 4 + (int)rnd(2); f++) {
			int digits = (int)rnd(26);

			for (j = 0; j < (size_t)digits; j++)
				b[n++] = (char)('0' + rnd(10));
			if (rnd(100) == 0)	/* a byte near the digits */
				b[n++] = "/:;0\x80"[rnd(5)];
			if (rnd(60) != 0)
				b[n++] = ':';
		}
		while (rnd(3) != 0)
			b[n++] = 'x';
		n -= rnd(40) == 0 && n > 2 ? rnd(4) : 0;	/* cut short */
		memset(&p1, 0, sizeof(p1));
		memset(&p2, 0, sizeof(p2));
		r1 = pb_parse(b, n, &p1);
		r2 = ref_pb(b, n, &p2);
		if (r1 != r2 || (r1 == 0 && (p1.room != p2.room ||
		    p1.pub != p2.pub || p1.seq != p2.seq || p1.t != p2.t))) {
			if (bad++ == 0)
				printf("# differ: %.*s\n", (int)n, b);
		} else if (r1 == 0)
			good++;
	}
	ok(bad == 0, "200,000 random bodies (0-25 digits, wrapping past "
	    "2^64, stray bytes, cut short): as the digit-at-a-time parser");
	ok(good > 50000 && good < 190000, "both well-formed and malformed ones");
}

int
main(void)
{
	test_stomp_known();
	test_stomp_random();
	test_pb();
	printf("1..%d\n", ntests);
	return nfailed ? 1 : 0;
}
