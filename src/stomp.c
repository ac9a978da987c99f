/*
 * stomp.c - STOMP 1.0-1.2 frame parser and frame writer.  No I/O.
 *
 * The parser copies each frame, as it arrives, into one growable arena owned
 * by the parser:
 *
 *	COMMAND \0 name \0 value \0 name \0 value \0 ... body \0
 *
 * Header lines are unescaped in place as soon as their EOL arrives
 * (unescaping only shrinks), so a partial line simply waits at the end of
 * the arena for the rest of its bytes.  The header array handed to the
 * callback is built once per frame by walking the arena (names and values
 * cannot contain NUL: a NUL in the header section is an error).  Arena and
 * header array are reused across frames.
 *
 * Frame size, as checked against max_frame, is every byte of the frame on
 * the wire from the first byte of the command through the terminating NUL
 * (EOLs and CRs included, heart-beat EOLs around frames not).  Because the
 * arena never holds more than that, it never grows beyond max_frame bytes.
 *
 * Header line size, as checked against max_header, is the line without its
 * EOL (LF, or CR LF in 1.2).
 *
 * A zero field in struct stomp_limits means "no limit".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stomp.h"

/* Drop an arena bigger than this after its frame is delivered, so that one
 * large frame does not pin memory for an idle connection. */
#define STOMP_ARENA_KEEP	16384
#define STOMP_ARENA_MIN		256
#define STOMP_HDRS_KEEP		64

/* Longest command word ("UNSUBSCRIBE"). */
#define STOMP_CMD_MAX		11

enum stomp_state {
	ST_IDLE,		/* between frames: EOLs are heart-beats */
	ST_IDLE_CR,		/* between frames, after a CR */
	ST_COMMAND,		/* in the command line */
	ST_HEADER,		/* in a header line (or the blank line) */
	ST_BODY,		/* body ending at the first NUL */
	ST_BODY_LEN,		/* content-length body */
	ST_BODY_NUL		/* NUL after a content-length body */
};

struct stomp_parser {
	struct stomp_limits lim;	/* zero fields replaced by SIZE_MAX */
	int version;		/* 10, 11 or 12 */
	stomp_frame_cb on_frame;
	stomp_heartbeat_cb on_heartbeat;
	void *arg;
	size_t consumed;	/* bytes the last stomp_parse consumed */

	enum stomp_state state;
	int err;		/* sticky error, 0 while healthy */

	/* The current frame. */
	enum stomp_command cmd;
	int esc;		/* escape rules for this frame: 10, 11, 12 */
	size_t fsize;		/* wire bytes so far, NUL excluded */
	size_t nhdr;		/* complete header lines */
	size_t line;		/* arena offset of the current line */
	size_t body;		/* arena offset of the body */
	size_t need;		/* content-length bytes still to come */
	size_t clen;		/* first content-length, if has_clen */
	int has_clen;
	int noesc;		/* the head has no backslash: nothing to unescape */

	/* Arena, owned. */
	char *buf;
	size_t len;
	size_t cap;

	/* Header array for the callback, owned, hcap entries; while the
	 * lines come in, hoff[i] has the arena offsets of header i's name and
	 * value (the arena may move until the frame is whole). */
	struct stomp_header *hdrs;
	struct stomp_hoff {
		size_t name, value;
	} *hoff;
	size_t hcap;
	size_t known[STOMP_H_COUNT];	/* header index + 1, 0: none */
};

static const char *const hdr_names[STOMP_H_COUNT] = {
	[STOMP_H_ACK] = "ack",
	[STOMP_H_CONTENT_TYPE] = "content-type",
	[STOMP_H_DESTINATION] = "destination",
	[STOMP_H_EVENT] = "event",
	[STOMP_H_HISTORY] = "history",
	[STOMP_H_ID] = "id",
	[STOMP_H_MEDIA_ID] = "media-id",
	[STOMP_H_RECEIPT] = "receipt",
	[STOMP_H_REF_ID] = "ref-id",
	[STOMP_H_SINCE] = "since",
	[STOMP_H_TRANSACTION] = "transaction",
};

static const char *const stomp_names[] = {
	[STOMP_CMD_UNKNOWN] = NULL,
	[STOMP_CMD_CONNECT] = "CONNECT",
	[STOMP_CMD_STOMP] = "STOMP",
	[STOMP_CMD_CONNECTED] = "CONNECTED",
	[STOMP_CMD_SEND] = "SEND",
	[STOMP_CMD_SUBSCRIBE] = "SUBSCRIBE",
	[STOMP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[STOMP_CMD_ACK] = "ACK",
	[STOMP_CMD_NACK] = "NACK",
	[STOMP_CMD_BEGIN] = "BEGIN",
	[STOMP_CMD_COMMIT] = "COMMIT",
	[STOMP_CMD_ABORT] = "ABORT",
	[STOMP_CMD_DISCONNECT] = "DISCONNECT",
	[STOMP_CMD_MESSAGE] = "MESSAGE",
	[STOMP_CMD_RECEIPT] = "RECEIPT",
	[STOMP_CMD_ERROR] = "ERROR"
};

static int
norm_version(int version)
{
	if (version >= 12)
		return 12;
	if (version == 11)
		return 11;
	return 10;
}

const char *
stomp_strerror(int err)
{
	switch (err) {
	case STOMP_OK:
		return "success";
	case STOMP_E_COMMAND:
		return "unknown or malformed command";
	case STOMP_E_HEADER:
		return "malformed header line (missing colon or NUL byte)";
	case STOMP_E_ESCAPE:
		return "undefined escape sequence in header";
	case STOMP_E_FRAME_SIZE:
		return "frame too large";
	case STOMP_E_HEADER_COUNT:
		return "too many headers";
	case STOMP_E_HEADER_SIZE:
		return "header line too long";
	case STOMP_E_CONTENT_LENGTH:
		return "malformed content-length header";
	case STOMP_E_NO_NUL:
		return "frame body not terminated by NUL after content-length bytes";
	case STOMP_E_NOMEM:
		return "out of memory";
	case STOMP_E_CALLBACK:
		return "frame processing stopped";
	}
	return "unknown error";
}

enum stomp_command
stomp_command_from(const char *s, size_t len)
{
	/* Dispatch on length, then compare: at most two memcmp calls. */
	switch (len) {
	case 3:
		if (memcmp(s, "ACK", 3) == 0)
			return STOMP_CMD_ACK;
		break;
	case 4:
		if (memcmp(s, "SEND", 4) == 0)
			return STOMP_CMD_SEND;
		if (memcmp(s, "NACK", 4) == 0)
			return STOMP_CMD_NACK;
		break;
	case 5:
		if (memcmp(s, "STOMP", 5) == 0)
			return STOMP_CMD_STOMP;
		if (memcmp(s, "BEGIN", 5) == 0)
			return STOMP_CMD_BEGIN;
		if (memcmp(s, "ABORT", 5) == 0)
			return STOMP_CMD_ABORT;
		if (memcmp(s, "ERROR", 5) == 0)
			return STOMP_CMD_ERROR;
		break;
	case 6:
		if (memcmp(s, "COMMIT", 6) == 0)
			return STOMP_CMD_COMMIT;
		break;
	case 7:
		if (memcmp(s, "CONNECT", 7) == 0)
			return STOMP_CMD_CONNECT;
		if (memcmp(s, "MESSAGE", 7) == 0)
			return STOMP_CMD_MESSAGE;
		if (memcmp(s, "RECEIPT", 7) == 0)
			return STOMP_CMD_RECEIPT;
		break;
	case 9:
		if (memcmp(s, "CONNECTED", 9) == 0)
			return STOMP_CMD_CONNECTED;
		if (memcmp(s, "SUBSCRIBE", 9) == 0)
			return STOMP_CMD_SUBSCRIBE;
		break;
	case 10:
		if (memcmp(s, "DISCONNECT", 10) == 0)
			return STOMP_CMD_DISCONNECT;
		break;
	case 11:
		if (memcmp(s, "UNSUBSCRIBE", 11) == 0)
			return STOMP_CMD_UNSUBSCRIBE;
		break;
	}
	return STOMP_CMD_UNKNOWN;
}

const char *
stomp_command_name(enum stomp_command c)
{
	if ((unsigned)c >= sizeof(stomp_names) / sizeof(stomp_names[0]))
		return NULL;
	return stomp_names[c];
}

const char *
stomp_header_get(const struct stomp_frame *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->nheaders; i++)
		if (f->headers[i].name[0] == name[0] &&
		    strcmp(f->headers[i].name, name) == 0)
			return f->headers[i].value;
	return NULL;
}

const char *
stomp_hdr_name(enum stomp_hdr h)
{
	if ((unsigned)h >= STOMP_H_COUNT)
		return NULL;
	return hdr_names[h];
}

/* Which enum stomp_hdr header an unescaped name of n bytes is, or -1. */
static int
known_header(const char *name, size_t n)
{
	int h;

	switch (n) {
	case 2:
		h = STOMP_H_ID;
		break;
	case 3:
		h = STOMP_H_ACK;
		break;
	case 5:
		h = name[0] == 'e' ? STOMP_H_EVENT : STOMP_H_SINCE;
		break;
	case 6:
		h = STOMP_H_REF_ID;
		break;
	case 7:
		h = name[0] == 'r' ? STOMP_H_RECEIPT : STOMP_H_HISTORY;
		break;
	case 8:
		h = STOMP_H_MEDIA_ID;
		break;
	case 11:
		h = name[0] == 'd' ? STOMP_H_DESTINATION : STOMP_H_TRANSACTION;
		break;
	case 12:
		h = STOMP_H_CONTENT_TYPE;
		break;
	default:
		return -1;
	}
	return memcmp(name, hdr_names[h], n) == 0 ? h : -1;
}

void
stomp_frame_index(struct stomp_frame *f)
{
	size_t i;
	int h;

	memset(f->known, 0, sizeof(f->known));
	for (i = 0; i < f->nheaders; i++)
		if ((h = known_header(f->headers[i].name,
		    strlen(f->headers[i].name))) >= 0 && f->known[h] == NULL)
			f->known[h] = f->headers[i].value;
}

struct stomp_parser *
stomp_parser_new(const struct stomp_limits *lim, int version,
    stomp_frame_cb on_frame, stomp_heartbeat_cb on_heartbeat, void *arg)
{
	struct stomp_parser *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (lim != NULL)
		p->lim = *lim;
	if (p->lim.max_frame == 0)
		p->lim.max_frame = SIZE_MAX;
	if (p->lim.max_headers == 0)
		p->lim.max_headers = SIZE_MAX;
	if (p->lim.max_header == 0 || p->lim.max_header > SIZE_MAX - 1)
		p->lim.max_header = SIZE_MAX - 1;	/* room for a CR */
	p->version = norm_version(version);
	p->on_frame = on_frame;
	p->on_heartbeat = on_heartbeat;
	p->arg = arg;
	p->state = ST_IDLE;
	return p;
}

void
stomp_parser_set_version(struct stomp_parser *p, int version)
{
	/* Takes effect from the next frame's command line. */
	p->version = norm_version(version);
}

void
stomp_parser_free(struct stomp_parser *p)
{
	if (p == NULL)
		return;
	free(p->buf);
	free(p->hdrs);
	free(p->hoff);
	free(p);
}

static int
fail(struct stomp_parser *p, int err)
{
	p->err = err;
	return err;
}

/*
 * Make room for n more arena bytes.  Growth never exceeds max_frame when the
 * request fits in it (the callers guarantee that it does).
 */
static int
arena_reserve(struct stomp_parser *p, size_t n)
{
	size_t need, ncap;
	char *nbuf;

	if (n <= p->cap - p->len)
		return 0;
	if (n > SIZE_MAX - p->len)
		return -1;
	need = p->len + n;
	ncap = p->cap < STOMP_ARENA_MIN ? STOMP_ARENA_MIN : p->cap;
	while (ncap < need && ncap <= SIZE_MAX / 2)
		ncap *= 2;
	if (ncap < need)
		ncap = need;
	if (ncap > p->lim.max_frame && need <= p->lim.max_frame)
		ncap = p->lim.max_frame;
	if ((nbuf = realloc(p->buf, ncap)) == NULL)
		return -1;
	p->buf = nbuf;
	p->cap = ncap;
	return 0;
}

/*
 * Unescape src[0..n) into dst (dst <= src; may overlap) by the rules of
 * version esc.  Returns the new length, or -1 on an undefined escape.
 */
static ptrdiff_t
unescape(char *dst, const char *src, size_t n, int esc)
{
	const char *end = src + n, *bs;
	char *d = dst;
	size_t k;

	if (esc == 10) {
		if (dst != src)
			memmove(dst, src, n);
		return (ptrdiff_t)n;
	}
	while ((bs = memchr(src, '\\', end - src)) != NULL) {
		k = bs - src;
		if (d != src)
			memmove(d, src, k);
		d += k;
		if (bs + 1 == end)
			return -1;
		switch (bs[1]) {
		case 'n':
			*d++ = '\n';
			break;
		case 'c':
			*d++ = ':';
			break;
		case '\\':
			*d++ = '\\';
			break;
		case 'r':
			if (esc < 12)
				return -1;
			*d++ = '\r';
			break;
		default:
			return -1;
		}
		src = bs + 2;
	}
	k = end - src;
	if (d != src)
		memmove(d, src, k);
	d += k;
	return d - dst;
}

/* Parse a content-length value: one or more decimal digits, nothing else.
 * Values too big for size_t saturate (they fail the frame size check). */
static int
parse_clen(const char *s, size_t *out)
{
	size_t v = 0, d;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = (size_t)(*s - '0');
		if (v > (SIZE_MAX - d) / 10)
			v = SIZE_MAX;
		else
			v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* 1..STOMP_CMD_MAX capital letters: a command word, known or not. */
static int
command_word(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 'A' || s[i] > 'Z')
			return 0;
	return 1;
}

/*
 * The command line (without EOL) is at buf[0..n).  An unknown command that
 * is still a command word is parsed as a frame (STOMP_CMD_UNKNOWN), so
 * that the ERROR can carry its receipt-id; anything else (an HTTP request
 * line, binary junk) fails here, without waiting for a NUL.
 */
static int
end_command(struct stomp_parser *p, size_t n)
{
	if (n > 0 && p->buf[n - 1] == '\r')
		n--;	/* a command never holds a CR: strip in any version */
	p->cmd = stomp_command_from(p->buf, n);
	if (p->cmd == STOMP_CMD_UNKNOWN && !command_word(p->buf, n))
		return STOMP_E_COMMAND;
	p->buf[n] = '\0';
	p->len = n + 1;
	/* 1.2: CONNECT and CONNECTED headers are never escaped.  STOMP is the
	 * same frame as CONNECT, sent before a version is agreed. */
	if (p->cmd == STOMP_CMD_CONNECT || p->cmd == STOMP_CMD_STOMP ||
	    p->cmd == STOMP_CMD_CONNECTED)
		p->esc = 10;
	else
		p->esc = p->version;
	p->line = p->len;
	p->state = ST_HEADER;
	return 0;
}

/* Room for one more header in hdrs and hoff. */
static int
hdrs_grow(struct stomp_parser *p)
{
	size_t ncap = p->hcap ? p->hcap * 2 : 16;
	struct stomp_header *h;
	struct stomp_hoff *o;

	if (ncap > SIZE_MAX / sizeof(*h) || ncap < p->hcap)
		return -1;
	if ((h = realloc(p->hdrs, ncap * sizeof(*h))) == NULL)
		return -1;
	p->hdrs = h;
	if ((o = realloc(p->hoff, ncap * sizeof(*o))) == NULL)
		return -1;
	p->hoff = o;
	p->hcap = ncap;
	return 0;
}

/* A header line (without EOL) is at buf[line..line+n). */
static int
end_header(struct stomp_parser *p, size_t n)
{
	char *l = p->buf + p->line, *colon;
	ptrdiff_t nl, vl;
	int h;

	if (n > 0 && l[n - 1] == '\r' && (p->version == 12 || n == 1))
		n--;	/* CR LF: always for the blank line, else 1.2 only */
	if (n > p->lim.max_header)
		return STOMP_E_HEADER_SIZE;
	if (n == 0) {
		/* Blank line: the body starts. */
		p->len = p->line;
		p->body = p->len;
		if (p->has_clen) {
			/* Checked when the header came; fsize has grown. */
			if (p->clen >= p->lim.max_frame - p->fsize)
				return STOMP_E_FRAME_SIZE;
			if (arena_reserve(p, p->clen + 1) == -1)
				return STOMP_E_NOMEM;
			p->need = p->clen;
			p->state = p->need > 0 ? ST_BODY_LEN : ST_BODY_NUL;
		} else
			p->state = ST_BODY;
		return 0;
	}
	if (p->nhdr >= p->lim.max_headers)
		return STOMP_E_HEADER_COUNT;
	if ((colon = memchr(l, ':', n)) == NULL)
		return STOMP_E_HEADER;
	if (p->nhdr == p->hcap && hdrs_grow(p) == -1)
		return STOMP_E_NOMEM;
	if (p->noesc) {
		nl = colon - l;
		vl = l + n - (colon + 1);
	} else {
		if ((nl = unescape(l, l, colon - l, p->esc)) < 0)
			return STOMP_E_ESCAPE;
		vl = unescape(l + nl + 1, colon + 1, l + n - (colon + 1),
		    p->esc);
		if (vl < 0)
			return STOMP_E_ESCAPE;
	}
	l[nl] = '\0';
	l[nl + 1 + vl] = '\0';
	p->hoff[p->nhdr].name = p->line;
	p->hoff[p->nhdr].value = p->line + nl + 1;
	if ((h = known_header(l, (size_t)nl)) >= 0 && p->known[h] == 0)
		p->known[h] = p->nhdr + 1;	/* the first one counts */
	if (!p->has_clen && nl == 14 && memcmp(l, "content-length", 14) == 0) {
		if (parse_clen(l + nl + 1, &p->clen) == -1)
			return STOMP_E_CONTENT_LENGTH;
		/* Fail now rather than after max_frame bytes of body. */
		if (p->clen >= p->lim.max_frame - p->fsize)
			return STOMP_E_FRAME_SIZE;
		p->has_clen = 1;
	}
	p->nhdr++;
	p->len = p->line + nl + 1 + vl + 1;
	p->line = p->len;
	return 0;
}

/*
 * Check a line before its next n bytes (from s, no LF among them) and, if
 * eol, its LF are taken, so that limits fail as soon as they are known to
 * be exceeded, and before anything is buffered.  The error is that of the
 * first offending byte (ties: the first rule below), so it does not depend
 * on how the input was split.
 */
static int
check_line(struct stomp_parser *p, const char *s, size_t n, int eol)
{
	size_t have = p->len - p->line, at = SIZE_MAX, max, i;
	const char *z;
	int err = 0, cmd = p->state == ST_COMMAND;

#define FIRST(idx, e) do {						\
	if ((size_t)(idx) < at) {					\
		at = (size_t)(idx);					\
		err = (e);						\
	}								\
} while (0)

	if (n > 0) {
		/* A NUL before the blank line. */
		if ((z = memchr(s, '\0', n)) != NULL)
			FIRST(z - s, cmd ? STOMP_E_COMMAND : STOMP_E_HEADER);

		/* Line too long: the byte at line index max is over unless
		 * it is a CR that may end the line (1.2, or a command). */
		max = cmd ? STOMP_CMD_MAX : p->lim.max_header;
		if (have > max)
			FIRST(0, cmd ? STOMP_E_COMMAND : STOMP_E_HEADER_SIZE);
		else if ((i = max - have) < n) {
			if (s[i] == '\r' && (cmd || p->version == 12))
				i++;
			if (i < n)
				FIRST(i, cmd ? STOMP_E_COMMAND :
				    STOMP_E_HEADER_SIZE);
		}

		/* One header too many: all but a lone CR is a header. */
		if (!cmd && p->nhdr >= p->lim.max_headers) {
			if (have > 0 || s[0] != '\r')
				FIRST(0, STOMP_E_HEADER_COUNT);
			else if (n > 1)
				FIRST(1, STOMP_E_HEADER_COUNT);
		}
	}

	/* Frame too large: fsize + bytes taken + 1 (the NUL) > max_frame.
	 * fsize < max_frame always holds here. */
	if ((i = p->lim.max_frame - p->fsize - 1) < n + eol)
		FIRST(i, STOMP_E_FRAME_SIZE);
#undef FIRST
	return err;
}

/* The frame is complete in the arena (body NUL not yet written). */
static int
deliver(struct stomp_parser *p)
{
	struct stomp_frame f;
	size_t i;
	int rc;

	for (i = 0; i < p->nhdr; i++) {
		p->hdrs[i].name = p->buf + p->hoff[i].name;
		p->hdrs[i].value = p->buf + p->hoff[i].value;
	}
	for (i = 0; i < STOMP_H_COUNT; i++)
		f.known[i] = p->known[i] != 0 ?
		    p->hdrs[p->known[i] - 1].value : NULL;
	p->buf[p->len] = '\0';	/* reserved with the body bytes */

	f.cmd = p->cmd;
	f.command = p->buf;
	f.headers = p->hdrs;
	f.nheaders = p->nhdr;
	f.body = p->buf + p->body;
	f.body_len = p->len - p->body;

	p->state = ST_IDLE;
	rc = p->on_frame != NULL ? p->on_frame(p->arg, &f) : 0;

	if (p->cap > STOMP_ARENA_KEEP) {
		free(p->buf);
		p->buf = NULL;
		p->cap = 0;
	}
	if (p->hcap > STOMP_HDRS_KEEP) {
		free(p->hdrs);
		free(p->hoff);
		p->hdrs = NULL;
		p->hoff = NULL;
		p->hcap = 0;
	}
	p->len = 0;
	if (rc == STOMP_CB_PAUSE)
		return STOMP_PAUSED;
	return rc != 0 ? STOMP_E_CALLBACK : 0;
}

/* Lines a head may have for head_whole (more go line by line). */
#define HEAD_LINES 32

/*
 * The command and header lines of a frame that is all there, taken at
 * once: when s[0..avail) holds them up to the blank line, none of them
 * near a limit and no NUL among them -- so that check_line would pass
 * every one -- the arena is reserved once, each line is copied and ended
 * by the same end_command/end_header as below, and backslashes are only
 * looked for when the head has one.  Anything else (a head cut short,
 * a line or count near its limit, a NUL) is left to the line-by-line
 * path, which finds the same error at the same byte as before.  Returns
 * the bytes taken (0: none, go line by line), or a negative stomp_err.
 */
static ptrdiff_t
head_whole(struct stomp_parser *p, const char *s, size_t avail)
{
	size_t len[HEAD_LINES], nlines = 0, off = 0, n, i;
	const char *nl;
	int rc, blank = 0;

	while (!blank) {
		if (nlines == HEAD_LINES ||
		    (nl = memchr(s + off, '\n', avail - off)) == NULL)
			return 0;
		n = (size_t)(nl - (s + off));
		if (nlines == 0 ? n > STOMP_CMD_MAX : n > p->lim.max_header)
			return 0;
		blank = nlines > 0 && (n == 0 || (n == 1 && s[off] == '\r'));
		if (!blank && nlines >= p->lim.max_headers)
			return 0;	/* nlines - 1 headers before this one */
		len[nlines++] = n;
		off += n + 1;
	}
	if (off >= p->lim.max_frame - 1 || memchr(s, '\0', off) != NULL ||
	    arena_reserve(p, off + 1) == -1)
		return 0;
	p->noesc = memchr(s, '\\', off) == NULL;
	for (i = 0, off = 0; i < nlines; i++) {
		n = len[i];
		memcpy(p->buf + p->len, s + off, n);
		p->len += n;
		p->fsize += n + 1;
		off += n + 1;
		n = p->len - p->line;
		rc = i == 0 ? end_command(p, n) : end_header(p, n);
		if (rc != 0) {
			p->noesc = 0;
			return rc;
		}
	}
	p->noesc = 0;
	return (ptrdiff_t)off;
}

int
stomp_parse(struct stomp_parser *p, const char *data, size_t len)
{
	const char *s = data, *end = data + len, *nl, *z;
	size_t n;
	ptrdiff_t k;
	int rc;

	if (p->err != 0)
		return p->err;
	p->consumed = len;
	while (s < end) {
		switch (p->state) {
		case ST_IDLE:
			if (*s == '\n') {
				s++;
				if (p->on_heartbeat != NULL)
					p->on_heartbeat(p->arg);
				break;
			}
			if (*s == '\r') {
				s++;
				p->state = ST_IDLE_CR;
				break;
			}
			/* A new frame. */
			p->len = 0;
			p->line = 0;
			p->fsize = 0;
			p->nhdr = 0;
			p->has_clen = 0;
			memset(p->known, 0, sizeof(p->known));
			p->state = ST_COMMAND;
			break;
		case ST_IDLE_CR:
			if (*s != '\n')
				return fail(p, STOMP_E_COMMAND);
			s++;
			p->state = ST_IDLE;
			if (p->on_heartbeat != NULL)
				p->on_heartbeat(p->arg);
			break;
		case ST_COMMAND:
		case ST_HEADER:
			if (p->state == ST_COMMAND && p->len == 0 &&
			    (k = head_whole(p, s, (size_t)(end - s))) != 0) {
				if (k < 0)
					return fail(p, (int)k);
				s += k;
				break;
			}
			nl = memchr(s, '\n', end - s);
			n = (nl != NULL ? nl : end) - s;
			if ((rc = check_line(p, s, n, nl != NULL)) != 0)
				return fail(p, rc);
			/* +1: room for the NUL that replaces the EOL. */
			if (arena_reserve(p, n + 1) == -1)
				return fail(p, STOMP_E_NOMEM);
			memcpy(p->buf + p->len, s, n);
			p->len += n;
			p->fsize += n;
			s += n;
			if (nl == NULL)
				break;
			s++;
			p->fsize++;
			n = p->len - p->line;
			if (p->state == ST_COMMAND)
				rc = end_command(p, n);
			else
				rc = end_header(p, n);
			if (rc != 0)
				return fail(p, rc);
			break;
		case ST_BODY:
			z = memchr(s, '\0', end - s);
			n = (z != NULL ? z : end) - s;
			if (n >= p->lim.max_frame - p->fsize)
				return fail(p, STOMP_E_FRAME_SIZE);
			if (arena_reserve(p, n + 1) == -1)
				return fail(p, STOMP_E_NOMEM);
			memcpy(p->buf + p->len, s, n);
			p->len += n;
			p->fsize += n;
			s += n;
			if (z == NULL)
				break;
			s++;
			if ((rc = deliver(p)) != 0) {
				if (rc == STOMP_PAUSED) {
					p->consumed = (size_t)(s - data);
					return STOMP_PAUSED;
				}
				return fail(p, rc);
			}
			break;
		case ST_BODY_LEN:
			/* Room for the whole body was reserved. */
			n = (size_t)(end - s) < p->need ? (size_t)(end - s) :
			    p->need;
			memcpy(p->buf + p->len, s, n);
			p->len += n;
			p->fsize += n;
			p->need -= n;
			s += n;
			if (p->need == 0)
				p->state = ST_BODY_NUL;
			break;
		case ST_BODY_NUL:
			if (*s != '\0')
				return fail(p, STOMP_E_NO_NUL);
			s++;
			if ((rc = deliver(p)) != 0) {
				if (rc == STOMP_PAUSED) {
					p->consumed = (size_t)(s - data);
					return STOMP_PAUSED;
				}
				return fail(p, rc);
			}
			break;
		}
	}
	return 0;
}

/*
 * Writer.
 */

void
stomp_buf_init(struct stomp_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
stomp_buf_free(struct stomp_buf *b)
{
	free(b->data);
	stomp_buf_init(b);
}

static int
buf_reserve(struct stomp_buf *b, size_t n)
{
	size_t ncap;
	char *nd;

	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX - b->len)
		return -1;
	ncap = b->cap < 64 ? 64 : b->cap;
	while (ncap < b->len + n && ncap <= SIZE_MAX / 2)
		ncap *= 2;
	if (ncap < b->len + n)
		ncap = b->len + n;
	if ((nd = realloc(b->data, ncap)) == NULL)
		return -1;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

int
stomp_buf_add(struct stomp_buf *b, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (buf_reserve(b, len) == -1)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int
stomp_buf_add_escaped(struct stomp_buf *b, const char *s, int version)
{
	const char *special;
	size_t len = strlen(s), k;
	char *d;

	version = norm_version(version);
	if (version == 10 || len == 0)
		return stomp_buf_add(b, s, len);
	/* Worst case every byte doubles. */
	if (len > SIZE_MAX / 2 || buf_reserve(b, len * 2) == -1)
		return -1;
	special = version == 12 ? "\\\n:\r" : "\\\n:";
	d = b->data + b->len;
	for (;;) {
		k = strcspn(s, special);
		memcpy(d, s, k);
		d += k;
		s += k;
		if (*s == '\0')
			break;
		*d++ = '\\';
		switch (*s++) {
		case '\\':
			*d++ = '\\';
			break;
		case '\n':
			*d++ = 'n';
			break;
		case ':':
			*d++ = 'c';
			break;
		default:	/* '\r' */
			*d++ = 'r';
			break;
		}
	}
	b->len = d - b->data;
	return 0;
}

int
stomp_buf_header(struct stomp_buf *b, const char *name, const char *value,
    int version)
{
	if (stomp_buf_add_escaped(b, name, version) == -1 ||
	    stomp_buf_add(b, ":", 1) == -1 ||
	    stomp_buf_add_escaped(b, value, version) == -1 ||
	    stomp_buf_add(b, "\n", 1) == -1)
		return -1;
	return 0;
}

size_t
stomp_parser_consumed(const struct stomp_parser *p)
{
	return p->consumed;
}
