/*
 * proto.c - the wire formats: WebSocket frames (RFC 6455, both sides) and
 * STOMP 1.2 frames.  No I/O here except ws_send appending to an io.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "bench.h"

/* ------------------------------------------------------------ WebSocket */

static void
unmask(char *p, size_t len, const unsigned char key[4])
{
	uint32_t k, w;
	size_t i = 0;

	memcpy(&k, key, 4);
	for (; i + 4 <= len; i += 4) {
		memcpy(&w, p + i, 4);
		w ^= k;
		memcpy(p + i, &w, 4);
	}
	for (; i < len; i++)
		p[i] ^= (char)key[i & 3];
}

ssize_t
ws_parse(char *buf, size_t len, size_t max, struct wsframe *f)
{
	const unsigned char *b = (const unsigned char *)buf;
	size_t off = 2, plen;
	int masked, i;

	if (len < 2)
		return 0;
	f->fin = b[0] >> 7;
	f->opcode = b[0] & 0x0f;
	masked = b[1] >> 7;
	plen = b[1] & 0x7f;
	if (plen == 126) {
		if (len < 4)
			return 0;
		plen = ((size_t)b[2] << 8) | b[3];
		off = 4;
	} else if (plen == 127) {
		if (len < 10)
			return 0;
		plen = 0;
		for (i = 0; i < 8; i++)
			plen = (plen << 8) | b[2 + i];
		off = 10;
	}
	if (plen > max)
		return -1;
	if (masked) {
		if (len < off + 4)
			return 0;
		off += 4;
	}
	if (len - off < plen)
		return 0;
	if (masked)
		unmask(buf + off, plen, b + off - 4);
	f->payload = buf + off;
	f->len = plen;
	return (ssize_t)(off + plen);
}

size_t
ws_header(unsigned char *h, int opcode, size_t len, int masked,
    uint32_t *maskkey)
{
	size_t n;
	int i;

	h[0] = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		h[1] = (unsigned char)len;
		n = 2;
	} else if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		n = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)len >>
			    (56 - 8 * i));
		n = 10;
	}
	if (masked) {
		static uint64_t x = 0x9e3779b97f4a7c15ull;
		uint32_t k;

		/* xorshift: masks need not be secret here, only present */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (uint32_t)x;
		h[1] |= 0x80;
		memcpy(h + n, &k, 4);
		*maskkey = k;
		n += 4;
	}
	return n;
}

int
ws_send(struct io *io, int opcode, const char *data, size_t len, int masked)
{
	unsigned char h[14];
	uint32_t key = 0;
	size_t hl;
	char *p;

	if (io->closed)
		return -1;
	hl = ws_header(h, opcode, len, masked, &key);
	if ((p = io_reserve(io, hl + len)) == NULL)
		return -1;
	memcpy(p, h, hl);
	memcpy(p + hl, data, len);
	if (masked)
		unmask(p + hl, len, h + hl - 4);
	io_commit(io, hl + len);
	return 0;
}

void
ws_accept(const char *key, size_t keylen, char *out)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char buf[128 + sizeof(guid)];

	if (keylen > 128)
		keylen = 128;
	memcpy(buf, key, keylen);
	memcpy(buf + keylen, guid, sizeof(guid) - 1);
	EVP_Digest(buf, keylen + sizeof(guid) - 1, md, &mdlen, EVP_sha1(),
	    NULL);
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* ------------------------------------------------------------ STOMP */

/*
 * Newlines, 16 bytes a step: the generator parses every MESSAGE it is sent
 * (millions a second), and a memchr(3) call per header line was a third of
 * its time.  nl_scan yields the offsets of the '\n's of buf[pos..len) in
 * order; where SSE2 is missing it falls back to memchr.
 */
struct nl_scan {
	const char *buf;
	size_t len;
	size_t base;		/* offset of the block bits describe (without
				 * SSE2: where the next memchr starts) */
	uint32_t bits;		/* its '\n's not yet handed out */
};

#ifdef __SSE2__
/* The '\n's of the 16 bytes at off as bits (fewer at the end of buf). */
static inline uint32_t
nl_block(const struct nl_scan *s, size_t off)
{
	size_t n = s->len - off;
	__m128i v;

	if (n >= 16)
		v = _mm_loadu_si128((const __m128i *)(const void *)(s->buf +
		    off));
	else {
		char tail[16] = { 0 };

		memcpy(tail, s->buf + off, n);
		v = _mm_loadu_si128((const __m128i *)(const void *)tail);
	}
	return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v,
	    _mm_set1_epi8('\n')));
}
#endif

static void
nl_start(struct nl_scan *s, const char *buf, size_t len, size_t pos)
{
	s->buf = buf;
	s->len = len;
	s->base = pos;
	s->bits = 0;
#ifdef __SSE2__
	if (pos < len)
		s->bits = nl_block(s, pos);
#endif
}

/* Offset of the next '\n', or len when there is none. */
static inline size_t
nl_next(struct nl_scan *s)
{
#ifdef __SSE2__
	while (s->bits == 0) {
		s->base += 16;
		if (s->base >= s->len)
			return s->len;
		s->bits = nl_block(s, s->base);
	}
	{
		size_t k = s->base + (size_t)__builtin_ctz(s->bits);

		s->bits &= s->bits - 1;
		return k;
	}
#else
	const char *nl;

	if (s->base >= s->len ||
	    (nl = memchr(s->buf + s->base, '\n', s->len - s->base)) == NULL)
		return s->len;
	s->base = (size_t)(nl - s->buf) + 1;
	return (size_t)(nl - s->buf);
#endif
}

ssize_t
stomp_parse(const char *buf, size_t len, size_t max, struct sframe *f)
{
	size_t i = 0, start, cl = 0, nl;
	const char *z;
	int has_cl = 0, eols = 0;
	struct nl_scan s;

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
	nl_start(&s, buf, len, i);
	if ((nl = nl_next(&s)) == len)
		goto more;
	f->cmd = buf + i;
	f->cmdlen = nl - i;
	if (f->cmdlen > 0 && f->cmd[f->cmdlen - 1] == '\r')
		f->cmdlen--;
	i = nl + 1;
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
		if ((nl = nl_next(&s)) == len)
			goto more;
		if (!has_cl && buf[i] == 'c' && nl - i > 15 &&
		    memcmp(buf + i, "content-length:", 15) == 0) {
			const char *d = buf + i + 15, *e = buf + nl;

			has_cl = 1;
			for (; d < e && *d >= '0' && *d <= '9'; d++)
				cl = cl * 10 + (size_t)(*d - '0');
		}
		i = nl + 1;
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

int
stomp_hdr(const struct sframe *f, const char *name, char *out, size_t outlen)
{
	const char *p = f->hdr, *end = f->hdr + f->hdrlen, *nl;
	size_t nlen = strlen(name), vlen;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((size_t)(nl - p) > nlen && memcmp(p, name, nlen) == 0 &&
		    p[nlen] == ':') {
			const char *v = p + nlen + 1;

			vlen = (size_t)(nl - v);
			if (vlen > 0 && v[vlen - 1] == '\r')
				vlen--;
			if (outlen > 0) {
				if (vlen >= outlen)
					vlen = outlen - 1;
				memcpy(out, v, vlen);
				out[vlen] = '\0';
			}
			return 0;
		}
		p = nl + 1;
	}
	return -1;
}

int
stomp_is(const struct sframe *f, const char *cmd)
{
	size_t n = strlen(cmd);

	return f->cmd != NULL && f->cmdlen == n && memcmp(f->cmd, cmd, n) == 0;
}

/* ------------------------------------------------------------ bodies */

/* The value of the 8 ASCII digits at p into *v; 0 when one is not a digit. */
static inline int
digits8(const char *p, uint64_t *v)
{
	uint64_t w;

	memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);	/* p[0] in the low byte */
#endif
	/* each byte 0x30..0x39: its high nibble 3, also after adding 6 */
	if ((w & 0xf0f0f0f0f0f0f0f0ull) != 0x3030303030303030ull ||
	    ((w + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) !=
	    0x3030303030303030ull)
		return 0;
	w -= 0x3030303030303030ull;
	w = (w * 10 + (w >> 8)) & 0x00ff00ff00ff00ffull;	/* 2 digits */
	w = (w * 100 + (w >> 16)) & 0x0000ffff0000ffffull;	/* 4 */
	*v = (w * 10000 + (w >> 32)) & 0xffffffffull;		/* 8 */
	return 1;
}

/* A decimal number ended by ':' (eight digits a step); NULL when it is not
 * there.  Like x = x * 10 + d, more than 20 digits wrap. */
static inline const char *
pb_num(const char *p, const char *end, uint64_t *v)
{
	const char *s = p;
	uint64_t x = 0, d;

	while (end - p >= 8 && digits8(p, &d)) {
		x = x * 100000000u + d;
		p += 8;
	}
	while (p < end && (unsigned)(*p - '0') < 10)
		x = x * 10 + (uint64_t)(*p++ - '0');
	if (p == s || p >= end || *p != ':')
		return NULL;
	*v = x;
	return p + 1;
}

int
pb_parse(const char *b, size_t len, struct pbody *pb)
{
	const char *end = b + len, *p = b + 2;

	if (len < 2 || b[0] != 'P' || b[1] != 'B' ||
	    (p = pb_num(p, end, &pb->room)) == NULL ||
	    (p = pb_num(p, end, &pb->pub)) == NULL ||
	    (p = pb_num(p, end, &pb->seq)) == NULL ||
	    (p = pb_num(p, end, &pb->t)) == NULL)
		return -1;
	return 0;
}
