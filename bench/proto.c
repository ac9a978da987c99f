/*
 * proto.c - the wire formats: WebSocket frames (RFC 6455, both sides) and
 * STOMP 1.2 frames.  No I/O here except ws_send appending to an io.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

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

ssize_t
stomp_parse(const char *buf, size_t len, size_t max, struct sframe *f)
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
