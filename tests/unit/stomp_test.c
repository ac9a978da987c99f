/*
 * stomp_test.c - TAP unit tests for the STOMP parser and writer (stomp.c).
 *
 * Build: cc -std=gnu11 -Isrc src/stomp.c tests/unit/stomp_test.c
 * Prints TAP (plan at the end); exits 1 if any test failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp.h"

#define MAXF	64

static int ntest, nfail;

static void
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
}

static void *
xmalloc(size_t n)
{
	void *p;

	if ((p = malloc(n == 0 ? 1 : n)) == NULL) {
		perror("malloc");
		exit(2);
	}
	return p;
}

static char *
xmemdup(const void *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/*
 * Recorder: deep copies of every frame, the heart-beat count, and a trace
 * (frames and heart-beats in order, serialized) to compare runs.
 */
struct hdr {
	char *name;
	char *value;
};

struct frm {
	enum stomp_command cmd;
	char *command;
	size_t nh;
	struct hdr *h;
	char *body;		/* owned copy, body_len bytes + NUL */
	size_t body_len;
	int body_nul;		/* body[body_len] was NUL in the parser */
	char *query;		/* stomp_header_get(query name) or NULL */
};

struct rec {
	struct frm f[MAXF];
	size_t nf;
	size_t nhb;
	const char *query;	/* header name to look up in each frame */
	size_t stop_at;		/* callback returns 1 at frame number stop_at */
	int upgrade;		/* set this version after CONNECT, if non-zero */
	struct stomp_parser *p;
	struct stomp_buf trace;
};

static void
rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	stomp_buf_init(&r->trace);
}

static void
rec_free(struct rec *r)
{
	size_t i, j;

	for (i = 0; i < r->nf; i++) {
		for (j = 0; j < r->f[i].nh; j++) {
			free(r->f[i].h[j].name);
			free(r->f[i].h[j].value);
		}
		free(r->f[i].h);
		free(r->f[i].command);
		free(r->f[i].body);
		free(r->f[i].query);
	}
	stomp_buf_free(&r->trace);
	r->nf = 0;
}

static void
trace_str(struct stomp_buf *b, const char *s, size_t n)
{
	char len[32];

	snprintf(len, sizeof(len), "%zu:", n);
	stomp_buf_add(b, len, strlen(len));
	stomp_buf_add(b, s, n);
}

/* Every frame of every test: stomp_hget agrees with stomp_header_get. */
static size_t hget_frames, hget_bad;

static void
check_hget(const struct stomp_frame *f)
{
	int h;

	hget_frames++;
	for (h = 0; h < STOMP_H_COUNT; h++)
		if (stomp_hget(f, h) != stomp_header_get(f, stomp_hdr_name(h))) {
			hget_bad++;
			printf("# frame %zu: stomp_hget(%s) is \"%s\", "
			    "stomp_header_get \"%s\"\n", hget_frames,
			    stomp_hdr_name(h), stomp_hget(f, h) ?
			    stomp_hget(f, h) : "(none)",
			    stomp_header_get(f, stomp_hdr_name(h)) ?
			    stomp_header_get(f, stomp_hdr_name(h)) : "(none)");
		}
}

static int
on_frame(void *arg, struct stomp_frame *f)
{
	struct rec *r = arg;
	struct frm *x;
	const char *q;
	size_t i;
	char tag[32];

	if (r->nf == MAXF)
		return 1;
	x = &r->f[r->nf++];
	x->cmd = f->cmd;
	x->command = strdup(f->command);
	x->nh = f->nheaders;
	x->h = xmalloc(sizeof(*x->h) * (f->nheaders + 1));
	for (i = 0; i < f->nheaders; i++) {
		x->h[i].name = strdup(f->headers[i].name);
		x->h[i].value = strdup(f->headers[i].value);
	}
	x->body = xmemdup(f->body, f->body_len);
	x->body_len = f->body_len;
	x->body_nul = f->body[f->body_len] == '\0';
	x->query = NULL;
	check_hget(f);
	if (r->query != NULL && (q = stomp_header_get(f, r->query)) != NULL)
		x->query = strdup(q);

	snprintf(tag, sizeof(tag), "F%d,%zu,", (int)f->cmd, f->nheaders);
	stomp_buf_add(&r->trace, tag, strlen(tag));
	trace_str(&r->trace, f->command, strlen(f->command));
	for (i = 0; i < f->nheaders; i++) {
		trace_str(&r->trace, f->headers[i].name,
		    strlen(f->headers[i].name));
		trace_str(&r->trace, f->headers[i].value,
		    strlen(f->headers[i].value));
	}
	trace_str(&r->trace, f->body, f->body_len);

	if (r->upgrade && f->cmd == STOMP_CMD_CONNECT)
		stomp_parser_set_version(r->p, r->upgrade);
	if (r->stop_at != 0 && r->nf == r->stop_at)
		return 1;
	return 0;
}

static void
on_hb(void *arg)
{
	struct rec *r = arg;

	r->nhb++;
	stomp_buf_add(&r->trace, "H", 1);
}

static const struct stomp_limits biglim = { 1 << 20, 100, 1 << 16 };

/*
 * Parse data with a fresh parser.  split: 0 = one piece, 1 = byte by byte,
 * k > 1 = two pieces at index k - 2.
 */
static int
run(struct rec *r, const char *data, size_t len, int version,
    const struct stomp_limits *lim, size_t split)
{
	struct stomp_parser *p;
	size_t i;
	int rc = 0;

	p = stomp_parser_new(lim != NULL ? lim : &biglim, version, on_frame,
	    on_hb, r);
	if (p == NULL) {
		perror("stomp_parser_new");
		exit(2);
	}
	r->p = p;
	if (split == 0)
		rc = stomp_parse(p, data, len);
	else if (split == 1) {
		for (i = 0; i < len && rc == 0; i++)
			rc = stomp_parse(p, data + i, 1);
	} else {
		rc = stomp_parse(p, data, split - 2);
		if (rc == 0)
			rc = stomp_parse(p, data + split - 2, len - (split - 2));
	}
	stomp_parser_free(p);
	r->p = NULL;
	return rc;
}

/* Parse a C string literal including its final NUL (sizeof - 1 + 1). */
#define S(lit)	(lit), sizeof(lit) - 1

/* Parse s (len bytes) in one piece, expecting rc; returns 1 if matched. */
static int
expect_rc(const char *s, size_t len, int version,
    const struct stomp_limits *lim, int want, size_t *nframes)
{
	struct rec r;
	int rc;

	rec_init(&r);
	rc = run(&r, s, len, version, lim, 0);
	if (nframes != NULL)
		*nframes = r.nf;
	rec_free(&r);
	if (rc != want)
		printf("# got %d (%s), want %d (%s)\n", rc, stomp_strerror(rc),
		    want, stomp_strerror(want));
	return rc == want;
}

/* Same, in one piece and byte by byte. */
static int
expect_rc2(const char *s, size_t len, int version,
    const struct stomp_limits *lim, int want)
{
	struct rec r;
	int rc;

	if (!expect_rc(s, len, version, lim, want, NULL))
		return 0;
	rec_init(&r);
	rc = run(&r, s, len, version, lim, 1);
	rec_free(&r);
	if (rc != want)
		printf("# byte by byte: got %d, want %d\n", rc, want);
	return rc == want;
}

/* Parse one frame that should succeed; the value of header k. */
static int
header_is(const char *s, size_t len, int version, const char *k,
    const char *want)
{
	struct rec r;
	int rc, good;

	rec_init(&r);
	r.query = k;
	rc = run(&r, s, len, version, NULL, 0);
	good = rc == 0 && r.nf == 1 && r.f[0].query != NULL &&
	    strcmp(r.f[0].query, want) == 0;
	if (!good)
		printf("# rc %d nf %zu value \"%s\"\n", rc, r.nf,
		    r.nf == 1 && r.f[0].query ? r.f[0].query : "(none)");
	rec_free(&r);
	return good;
}

static void
test_commands(void)
{
	static const char *names[] = { "CONNECT", "STOMP", "CONNECTED",
	    "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN",
	    "COMMIT", "ABORT", "DISCONNECT", "MESSAGE", "RECEIPT", "ERROR" };
	char buf[128];
	struct rec r;
	size_t i, n;
	int rc, good;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = (size_t)snprintf(buf, sizeof(buf),
		    "%s\nreceipt:77\nx:y\n\nbody of %s", names[i], names[i]);
		n++;	/* the NUL */
		rec_init(&r);
		r.query = "receipt";
		rc = run(&r, buf, n, 12, NULL, 0);
		good = rc == 0 && r.nf == 1 &&
		    r.f[0].cmd == stomp_command_from(names[i],
		    strlen(names[i])) && r.f[0].cmd != STOMP_CMD_UNKNOWN &&
		    strcmp(r.f[0].command, names[i]) == 0 &&
		    strcmp(stomp_command_name(r.f[0].cmd), names[i]) == 0 &&
		    r.f[0].nh == 2 && r.f[0].query != NULL &&
		    strcmp(r.f[0].query, "77") == 0 &&
		    r.f[0].body_len == strlen(names[i]) + 8 &&
		    strncmp(r.f[0].body, "body of ", 8) == 0 &&
		    r.f[0].body_nul;
		ok(good, "%s frame parses (command, headers, body)", names[i]);
		rec_free(&r);
	}
	ok((int)stomp_command_from("CONNECT", 7) == (int)STOMP_CMD_CONNECT &&
	    stomp_command_from("CONNEC", 6) == STOMP_CMD_UNKNOWN &&
	    stomp_command_from("connect", 7) == STOMP_CMD_UNKNOWN &&
	    stomp_command_from("", 0) == STOMP_CMD_UNKNOWN &&
	    stomp_command_name(STOMP_CMD_UNKNOWN) == NULL &&
	    stomp_command_name((enum stomp_command)99) == NULL,
	    "stomp_command_from / stomp_command_name edge cases");

	{
		struct rec r;
		int rc, good;

		rec_init(&r);
		rc = run(&r, S("FOO\nreceipt:r\\c1\n\nbody\0SEND\n\n\0"),
		    12, NULL, 1);
		good = rc == 0 && r.nf == 2 &&
		    r.f[0].cmd == STOMP_CMD_UNKNOWN &&
		    strcmp(r.f[0].command, "FOO") == 0 && r.f[0].nh == 1 &&
		    strcmp(r.f[0].h[0].value, "r:1") == 0 &&
		    r.f[0].body_len == 4 && r.f[1].cmd == STOMP_CMD_SEND;
		ok(good, "unknown command word FOO: parsed as a frame "
		    "(STOMP_CMD_UNKNOWN, its headers, body), byte by byte, "
		    "and the next frame after it");
		rec_free(&r);
	}
	ok(expect_rc(S("FO1\n\n\0"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "command with a digit -> STOMP_E_COMMAND");
	ok(expect_rc(S("ABCDEFGHIJKL\n\n\0"), 12, NULL, STOMP_E_COMMAND,
	    NULL), "12 capital letters (longer than any command) -> "
	    "STOMP_E_COMMAND");

	ok(expect_rc(S("send\n\n\0"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "lower-case command -> STOMP_E_COMMAND");
	ok(expect_rc(S("SEND \n\n\0"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "command with trailing space -> STOMP_E_COMMAND");
	ok(expect_rc(S("GET /ws HTTP/1.1"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "long garbage without EOL -> STOMP_E_COMMAND before any EOL");
	ok(expect_rc(S("\0"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "stray NUL between frames -> STOMP_E_COMMAND");
	ok(expect_rc(S("\rSEND\n\n\0"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "lone CR between frames -> STOMP_E_COMMAND");
	ok(expect_rc(S("SE\0ND\n\n\0"), 12, NULL, STOMP_E_COMMAND, NULL),
	    "NUL inside command -> STOMP_E_COMMAND");
}

static void
test_escapes(void)
{
	struct rec r;
	int rc;

	ok(header_is(S("SEND\nk:a\\nb\n\n\0"), 12, "k", "a\nb"),
	    "1.2 \\n unescapes to LF");
	ok(header_is(S("SEND\nk:a\\cb\n\n\0"), 12, "k", "a:b"),
	    "1.2 \\c unescapes to colon");
	ok(header_is(S("SEND\nk:a\\\\b\n\n\0"), 12, "k", "a\\b"),
	    "1.2 \\\\ unescapes to backslash");
	ok(header_is(S("SEND\nk:a\\rb\n\n\0"), 12, "k", "a\rb"),
	    "1.2 \\r unescapes to CR");
	ok(header_is(S("SEND\nk:\\\\\\n\\c\\r\\\\\n\n\0"), 12, "k",
	    "\\\n:\r\\"), "1.2 consecutive escapes");
	ok(header_is(S("SEND\nk\\c\\n\\\\:v\n\n\0"), 12, "k:\n\\", "v"),
	    "1.2 escapes in header name");
	ok(header_is(S("SEND\nk:a\\nb\\c\n\n\0"), 11, "k", "a\nb:"),
	    "1.1 \\n and \\c unescape");
	ok(expect_rc(S("SEND\nk:a\\rb\n\n\0"), 11, NULL, STOMP_E_ESCAPE, NULL),
	    "1.1 \\r is undefined -> STOMP_E_ESCAPE");
	ok(expect_rc(S("SEND\nk:a\\tb\n\n\0"), 12, NULL, STOMP_E_ESCAPE, NULL),
	    "1.2 \\t is undefined -> STOMP_E_ESCAPE");
	ok(expect_rc(S("SEND\nk\\x:v\n\n\0"), 11, NULL, STOMP_E_ESCAPE, NULL),
	    "undefined escape in name -> STOMP_E_ESCAPE");
	ok(expect_rc(S("SEND\nk:ab\\\n\n\0"), 12, NULL, STOMP_E_ESCAPE, NULL),
	    "backslash at end of value -> STOMP_E_ESCAPE");
	ok(header_is(S("SEND\nk:a\\nb\\t\\c\\\n\n\0"), 10, "k",
	    "a\\nb\\t\\c\\"), "1.0: no unescaping at all");
	ok(header_is(S("CONNECT\nlogin:a\\cb\\t\n\n\0"), 12, "login",
	    "a\\cb\\t"), "1.2 CONNECT headers are not unescaped");
	ok(header_is(S("STOMP\npasscode:p\\\\w\n\n\0"), 12, "passcode",
	    "p\\\\w"), "1.2 STOMP headers are not unescaped");
	ok(header_is(S("CONNECTED\nserver:x\\n\n\n\0"), 11, "server",
	    "x\\n"), "1.1 CONNECTED headers are not unescaped");
	ok(header_is(S("SEND\nk:a:b::c\n\n\0"), 12, "k", "a:b::c"),
	    "header split at the first colon");
	ok(header_is(S("SEND\nk:\n\n\0"), 12, "k", ""), "empty value");
	ok(header_is(S("SEND\n:v\n\n\0"), 12, "", "v"), "empty name");
	ok(expect_rc(S("SEND\nnocolon\n\n\0"), 12, NULL, STOMP_E_HEADER, NULL),
	    "header without colon -> STOMP_E_HEADER");
	ok(expect_rc(S("SEND\nk:v\0x\n\n\0"), 12, NULL, STOMP_E_HEADER, NULL),
	    "NUL inside header line -> STOMP_E_HEADER");
	ok(expect_rc(S("DISCONNECT\n\0"), 12, NULL, STOMP_E_HEADER, NULL),
	    "NUL where the blank line belongs -> STOMP_E_HEADER");

	/* Escaping follows a version change made in the callback. */
	rec_init(&r);
	r.upgrade = 12;
	r.query = "k";
	rc = run(&r, S("CONNECT\nk:a\\c\n\n\0SEND\nk:a\\c\n\n\0"), 10, NULL,
	    0);
	ok(rc == 0 && r.nf == 2 && strcmp(r.f[0].query, "a\\c") == 0 &&
	    strcmp(r.f[1].query, "a:") == 0,
	    "stomp_parser_set_version in the callback applies to next frame");
	rec_free(&r);
}

static void
test_crlf(void)
{
	struct rec r;
	int rc;

	rec_init(&r);
	r.query = "destination";
	rc = run(&r, S("SEND\r\ndestination:/room/a\r\nk:v\r\n\r\nhi\0"), 12,
	    NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].cmd == STOMP_CMD_SEND &&
	    strcmp(r.f[0].command, "SEND") == 0 && r.f[0].nh == 2 &&
	    strcmp(r.f[0].query, "/room/a") == 0 &&
	    strcmp(r.f[0].h[1].value, "v") == 0 &&
	    r.f[0].body_len == 2 && memcmp(r.f[0].body, "hi", 2) == 0,
	    "1.2 CRLF line ends: CR stripped from command and values");
	rec_free(&r);

	ok(header_is(S("CONNECT\r\naccept-version:1.2\r\n\r\n\0"), 12,
	    "accept-version", "1.2"), "1.2 CRLF in CONNECT");
	ok(header_is(S("SEND\nk:v\r\n\n\0"), 11, "k", "v\r"),
	    "1.1: CR before LF belongs to the value");
	ok(header_is(S("SEND\r\nk:v\n\r\n\0"), 10, "k", "v"),
	    "1.0: CR LF accepted on command line and blank line");
	ok(header_is(S("SEND\nk:v\\r\r\n\n\0"), 12, "k", "v\r"),
	    "1.2: escaped CR kept, line-end CR stripped");
}

static void
test_bodies(void)
{
	struct rec r;
	int rc;
	size_t i;
	static const char *bad[] = { "-1", "abc", "", "1 ", " 1", "+1",
	    "0x10", "1.5", "1a" };
	char buf[128];
	size_t n;

	rec_init(&r);
	rc = run(&r, S("SEND\ncontent-length:5\n\na\0b\0c\0"), 12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].body_len == 5 &&
	    memcmp(r.f[0].body, "a\0b\0c", 5) == 0 && r.f[0].body_nul,
	    "content-length body may contain NULs, NUL-terminated in memory");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("SEND\ncontent-length:0\n\n\0\n"), 12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].body_len == 0 && r.f[0].body_nul &&
	    r.nhb == 1, "content-length:0 gives an empty body");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("SEND\ncontent-length:007\n\n1234567\0"), 12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].body_len == 7,
	    "content-length with leading zeros");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("SEND\n\nplain body\0SEND\n\n\0"), 12, NULL, 0);
	ok(rc == 0 && r.nf == 2 && r.f[0].body_len == 10 &&
	    strcmp(r.f[0].body, "plain body") == 0 && r.f[1].body_len == 0 &&
	    r.f[1].body_nul, "body without content-length ends at first NUL");
	rec_free(&r);

	ok(expect_rc2(S("SEND\ncontent-length:2\n\nabc\0"), 12, NULL,
	    STOMP_E_NO_NUL), "no NUL after content-length body -> "
	    "STOMP_E_NO_NUL");
	ok(expect_rc(S("SEND\ncontent-length:2\n\nab\n"), 12, NULL,
	    STOMP_E_NO_NUL, NULL), "EOL instead of NUL after content-length "
	    "body -> STOMP_E_NO_NUL");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = (size_t)snprintf(buf, sizeof(buf),
		    "SEND\ncontent-length:%s\n\nx", bad[i]) + 1;
		ok(expect_rc(buf, n, 12, NULL, STOMP_E_CONTENT_LENGTH, NULL),
		    "content-length \"%s\" -> STOMP_E_CONTENT_LENGTH", bad[i]);
	}
	ok(expect_rc(S("SEND\ncontent-length:99999999999999999999999999\n"),
	    12, NULL, STOMP_E_FRAME_SIZE, NULL),
	    "overflowing content-length -> STOMP_E_FRAME_SIZE at once");

	/* Repeated headers: all kept, first wins. */
	rec_init(&r);
	r.query = "k";
	rc = run(&r, S("MESSAGE\nk:1\nk:2\nj:3\nk:4\n\n\0"), 12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].nh == 4 &&
	    strcmp(r.f[0].query, "1") == 0 &&
	    strcmp(r.f[0].h[1].value, "2") == 0 &&
	    strcmp(r.f[0].h[3].value, "4") == 0,
	    "repeated headers kept in order, stomp_header_get returns first");
	rec_free(&r);

	rec_init(&r);
	r.query = "missing";
	rc = run(&r, S("MESSAGE\nk:1\n\n\0"), 12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].query == NULL,
	    "stomp_header_get of an absent header is NULL");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("SEND\ncontent-length:3\ncontent-length:5\n\nabc\0"),
	    12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].body_len == 3,
	    "repeated content-length: the first one wins");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("SEND\ncontent-length:2\ncontent-length:x\n\nab\0"),
	    12, NULL, 0);
	ok(rc == 0 && r.nf == 1 && r.f[0].body_len == 2,
	    "a later, malformed content-length is ignored");
	rec_free(&r);
}

static void
test_heartbeats(void)
{
	struct rec r;
	int rc;

	rec_init(&r);
	rc = run(&r, S("\n\r\n\nSEND\n\na\0\n\r\nACK\nid:1\n\n\0\n"), 12,
	    NULL, 0);
	ok(rc == 0 && r.nf == 2 && r.nhb == 6,
	    "heart-beat EOLs (LF and CRLF) before, between, after frames");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("\n\n\n"), 10, NULL, 0);
	ok(rc == 0 && r.nf == 0 && r.nhb == 3, "heart-beats only");
	rec_free(&r);

	rec_init(&r);
	rc = run(&r, S("\r\n\r\n"), 10, NULL, 1);
	ok(rc == 0 && r.nhb == 2, "CRLF heart-beats fed byte by byte");
	rec_free(&r);
}

/* A stream exercising most paths; CONNECT upgrades the parser to 1.2. */
static const char stream[] =
    "\n"
    "CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nlogin:u\\c\n\n\0\n"
    "\r\n"
    "SEND\r\ndestination:/room/a\r\nk:a\\nb\\cc\\\\d\\re\r\n"
    "receipt:r1\r\n\r\nhello\0"
    "SEND\ndestination:/room/b\ncontent-length:7\ncontent-type:x/y\n\n"
    "a\0b\n\0\r\n\0\n\n"
    "SUBSCRIBE\nid:0\ndestination:/room/a\nack:client-individual\n"
    "since:42\n\n\0"
    "MESSAGE\nk:1\nk:2\nsubscription:0\n\nbody: with colon\n\0\r\n"
    "ACK\nid:9\n\n\0"
    "BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0"
    "UNSUBSCRIBE\nid:0\n\n\0"
    "SEND\ndestination:/room/a\ncontent-length:0\n\n\0"
    "DISCONNECT\nreceipt:bye\n\n\0\n";

static void
test_splits(void)
{
	struct rec ref, r;
	size_t len = sizeof(stream) - 1, i;
	int rc, rcref, allgood = 1, bytegood;
	struct stomp_limits tight = { 60, 100, 1000 };

	rec_init(&ref);
	ref.upgrade = 12;
	rcref = run(&ref, stream, len, 10, NULL, 0);
	ok(rcref == 0 && ref.nf == 11 && ref.nhb == 7,
	    "reference stream: 11 frames, 7 heart-beats");
	ok(ref.nf > 2 && ref.f[1].nh == 3 && strcmp(ref.f[1].h[1].value,
	    "a\nb:c\\d\re") == 0 && ref.f[0].nh == 3 &&
	    strcmp(ref.f[0].h[2].value, "u\\c") == 0 &&
	    ref.f[2].body_len == 7 && memcmp(ref.f[2].body, "a\0b\n\0\r\n",
	    7) == 0, "reference stream frames have the expected content");

	for (i = 0; i <= len; i++) {
		rec_init(&r);
		r.upgrade = 12;
		rc = run(&r, stream, len, 10, NULL, i + 2);
		if (rc != rcref || r.trace.len != ref.trace.len ||
		    memcmp(r.trace.data, ref.trace.data, r.trace.len) != 0) {
			if (allgood)
				printf("# split at %zu differs (rc %d)\n", i,
				    rc);
			allgood = 0;
		}
		rec_free(&r);
	}
	ok(allgood, "stream split in two at every index (%zu) gives "
	    "identical frames", len + 1);

	rec_init(&r);
	r.upgrade = 12;
	rc = run(&r, stream, len, 10, NULL, 1);
	bytegood = rc == rcref && r.trace.len == ref.trace.len &&
	    memcmp(r.trace.data, ref.trace.data, r.trace.len) == 0;
	ok(bytegood, "stream fed byte by byte gives identical frames");
	rec_free(&r);
	rec_free(&ref);

	/* Same for a stream that fails part-way (frame too large). */
	rec_init(&ref);
	ref.upgrade = 12;
	rcref = run(&ref, stream, len, 10, &tight, 0);
	allgood = rcref == STOMP_E_FRAME_SIZE && ref.nf == 1;
	for (i = 0; i <= len + 1 && allgood; i++) {
		rec_init(&r);
		r.upgrade = 12;
		rc = run(&r, stream, len, 10, &tight, i == len + 1 ? 1 : i + 2);
		if (rc != rcref || r.trace.len != ref.trace.len ||
		    memcmp(r.trace.data, ref.trace.data, r.trace.len) != 0) {
			printf("# split at %zu differs (rc %d)\n", i, rc);
			allgood = 0;
		}
		rec_free(&r);
	}
	ok(allgood, "failing stream (2nd frame too large): same error and "
	    "frames at every split and byte by byte");
	rec_free(&ref);

	/* Two errors in one line: the first offending byte decides, however
	 * the input is split (here the line is too long before the NUL). */
	{
		static const char two[] = "SEND\nk:0123456789\0\n\n";
		struct stomp_limits l8 = { 4096, 10, 8 };

		allgood = 1;
		for (i = 0; i <= sizeof(two) && allgood; i++) {
			rec_init(&r);
			rc = run(&r, two, sizeof(two) - 1, 12, &l8,
			    i == sizeof(two) ? 1 : i + 2);
			allgood = rc == STOMP_E_HEADER_SIZE;
			rec_free(&r);
		}
		ok(allgood, "error code does not depend on the split");
	}

	/* Many frames in one call, then the next call reuses buffers. */
	rec_init(&ref);
	rc = run(&ref, S("SEND\n\n\0SEND\n\n\0SEND\n\n\0"), 12, NULL, 0);
	ok(rc == 0 && ref.nf == 3, "several frames in one stomp_parse call");
	rec_free(&ref);
}

/* Frame of exactly total wire bytes (NUL included) with a plain body. */
static char *
mkframe(size_t total, int crlf, int clen, size_t *outlen)
{
	char hdr[128], *f;
	size_t h, b;

	if (clen) {
		/* The content-length value's digits change the header size:
		 * find a consistent body length. */
		for (b = 0;; b++) {
			h = (size_t)snprintf(hdr, sizeof(hdr),
			    crlf ? "SEND\r\ndestination:/q\r\ncontent-length:%zu"
			    "\r\n\r\n" : "SEND\ndestination:/q\n"
			    "content-length:%zu\n\n", b);
			if (h + b + 1 == total)
				break;
			if (h + b + 1 > total)
				abort();	/* no such frame size */
		}
	} else {
		h = (size_t)snprintf(hdr, sizeof(hdr), crlf ?
		    "SEND\r\ndestination:/q\r\n\r\n" : "SEND\ndestination:/q\n\n");
		b = total - h - 1;
	}
	f = xmalloc(total + 2);
	memcpy(f, hdr, h);
	memset(f + h, 'x', b);
	f[h + b] = '\0';
	f[h + b + 1] = '\n';	/* trailing EOL: not part of the frame */
	*outlen = h + b + 2;
	return f;
}

static void
test_limits(void)
{
	struct stomp_limits lim;
	struct rec r;
	char *f, buf[4096];
	size_t n, i;
	int rc, crlf, clen;

	/* max_frame: exact passes, one over fails; all body kinds. */
	for (clen = 0; clen <= 1; clen++) {
		for (crlf = 0; crlf <= 1; crlf++) {
			f = mkframe(200, crlf, clen, &n);
			lim = (struct stomp_limits){ 200, 10, 100 };
			ok(expect_rc2(f, n, 12, &lim, 0),
			    "frame of exactly max_frame bytes passes (%s%s)",
			    clen ? "content-length" : "NUL-terminated",
			    crlf ? ", CRLF" : "");
			lim.max_frame = 199;
			ok(expect_rc2(f, n, 12, &lim, STOMP_E_FRAME_SIZE),
			    "frame one byte over max_frame fails (%s%s)",
			    clen ? "content-length" : "NUL-terminated",
			    crlf ? ", CRLF" : "");
			free(f);
		}
	}
	lim = (struct stomp_limits){ 6, 10, 100 };
	ok(expect_rc2(S("ACK\n\n\0\n\n"), 10, &lim, 0),
	    "headers-only frame exactly at max_frame passes");
	lim.max_frame = 5;
	ok(expect_rc2(S("ACK\n\n\0"), 10, &lim, STOMP_E_FRAME_SIZE),
	    "headers-only frame one over max_frame fails");

	/* Early detection: no need for the whole frame. */
	lim = (struct stomp_limits){ 100, 10, 1000 };
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "SEND\n\n", 6);
	ok(expect_rc(buf, 200, 12, &lim, STOMP_E_FRAME_SIZE, NULL),
	    "oversized body without NUL fails before its end");
	ok(expect_rc(S("SEND\ncontent-length:95\n"), 12, &lim,
	    STOMP_E_FRAME_SIZE, NULL),
	    "content-length beyond max_frame fails at once");
	ok(expect_rc(S("SEND\ncontent-length:200\n"), 12, &lim,
	    STOMP_E_FRAME_SIZE, NULL),
	    "content-length larger than max_frame fails at once");
	lim = (struct stomp_limits){ 9, 10, 100 };
	ok(expect_rc2(S("SEND\nk:v\n"), 12, &lim, STOMP_E_FRAME_SIZE),
	    "max_frame bytes of headers, no NUL yet: fails at once");
	lim.max_frame = 10;
	ok(expect_rc2(S("SEND\nk:v\n"), 12, &lim, 0),
	    "max_frame - 1 bytes of headers: not an error yet");
	lim = (struct stomp_limits){ 100, 10, 1000 };
	memcpy(buf, "SEND\nk:", 7);
	ok(expect_rc(buf, 150, 12, &lim, STOMP_E_FRAME_SIZE, NULL),
	    "oversized header section fails before its end");

	/* max_header: one line, EOL excluded. */
	lim = (struct stomp_limits){ 4096, 10, 20 };
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\nk:%s\n\n",
	    "012345678901234567") + 1;
	ok(expect_rc2(buf, n, 11, &lim, 0),
	    "header line of exactly max_header bytes passes");
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\nk:%s\n\n",
	    "0123456789012345678") + 1;
	ok(expect_rc2(buf, n, 11, &lim, STOMP_E_HEADER_SIZE),
	    "header line one byte over max_header fails");
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\r\nk:%s\r\n\r\n",
	    "012345678901234567") + 1;
	ok(expect_rc2(buf, n, 12, &lim, 0),
	    "1.2 CRLF header line of exactly max_header bytes passes");
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\r\nk:%s\r\n\r\n",
	    "0123456789012345678") + 1;
	ok(expect_rc2(buf, n, 12, &lim, STOMP_E_HEADER_SIZE),
	    "1.2 CRLF header line one byte over max_header fails");
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\nk:%s\r\n\n",
	    "012345678901234567") + 1;
	ok(expect_rc2(buf, n, 11, &lim, STOMP_E_HEADER_SIZE),
	    "1.1: a CR before LF counts toward max_header");
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\nk:%s",
	    "0123456789012345678");
	ok(expect_rc(buf, n, 12, &lim, STOMP_E_HEADER_SIZE, NULL),
	    "long header line fails before its EOL");
	n = (size_t)snprintf(buf, sizeof(buf), "SEND\r\nk:%s\r",
	    "012345678901234567");
	ok(expect_rc(buf, n, 12, &lim, 0, NULL),
	    "1.2: line at max_header plus pending CR is not yet an error");

	/* max_headers. */
	lim = (struct stomp_limits){ 4096, 3, 100 };
	ok(expect_rc2(S("SEND\na:1\nb:2\nc:3\n\n\0"), 12, &lim, 0),
	    "exactly max_headers headers pass");
	ok(expect_rc2(S("SEND\r\na:1\r\nb:2\r\nc:3\r\n\r\n\0"), 12, &lim, 0),
	    "exactly max_headers headers pass (CRLF)");
	ok(expect_rc2(S("SEND\na:1\nb:2\nc:3\nd:4\n\n\0"), 12, &lim,
	    STOMP_E_HEADER_COUNT), "max_headers + 1 headers fail");
	ok(expect_rc2(S("SEND\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\n\r\n\0"), 12,
	    &lim, STOMP_E_HEADER_COUNT), "max_headers + 1 headers fail (CRLF)");
	ok(expect_rc(S("SEND\na:1\nb:2\nc:3\nd"), 12, &lim,
	    STOMP_E_HEADER_COUNT, NULL),
	    "extra header detected at its first byte");

	/* Zero limits mean unlimited. */
	lim = (struct stomp_limits){ 0, 0, 0 };
	f = mkframe(300000, 0, 1, &n);
	ok(expect_rc2(f, n, 12, &lim, 0), "zero limits: no limit");
	free(f);

	/* A large frame, then small ones: buffers are reused or dropped. */
	lim = (struct stomp_limits){ 1 << 20, 10, 100 };
	rec_init(&r);
	f = mkframe(500000, 0, 0, &n);
	{
		struct stomp_parser *p;

		p = stomp_parser_new(&lim, 12, on_frame, on_hb, &r);
		rc = stomp_parse(p, f, n);
		for (i = 0; i < 3 && rc == 0; i++)
			rc = stomp_parse(p, S("SEND\nk:v\n\nsmall\0"));
		if (rc == 0)
			rc = stomp_parse(p, f, n);
		stomp_parser_free(p);
	}
	ok(rc == 0 && r.nf == 5 && r.f[0].body_len == 500000 - 22 &&
	    r.f[3].body_len == 5 && strcmp(r.f[3].h[0].value, "v") == 0 &&
	    r.f[4].body_len == 500000 - 22,
	    "large frame, small frames, large frame again");
	rec_free(&r);
	free(f);

	/* Many headers grow the header array. */
	lim = (struct stomp_limits){ 1 << 20, 1000, 100 };
	{
		struct stomp_buf b;

		stomp_buf_init(&b);
		stomp_buf_add(&b, "MESSAGE\n", 8);
		for (i = 0; i < 500; i++) {
			n = (size_t)snprintf(buf, sizeof(buf), "h%zu", i);
			stomp_buf_header(&b, buf, buf + 1, 12);
		}
		stomp_buf_add(&b, "\n\0", 2);
		rec_init(&r);
		r.query = "h499";
		rc = run(&r, b.data, b.len, 12, &lim, 0);
		ok(rc == 0 && r.nf == 1 && r.f[0].nh == 500 &&
		    strcmp(r.f[0].query, "499") == 0,
		    "500 headers in one frame");
		rec_free(&r);
		stomp_buf_free(&b);
	}
}

static void
test_callback_and_sticky(void)
{
	struct stomp_parser *p;
	struct rec r;
	int rc1, rc2;

	rec_init(&r);
	r.stop_at = 2;
	p = stomp_parser_new(&biglim, 12, on_frame, on_hb, &r);
	rc1 = stomp_parse(p, S("SEND\n\n\0SEND\n\n\0SEND\n\n\0"));
	rc2 = stomp_parse(p, S("SEND\n\n\0"));
	stomp_parser_free(p);
	ok(rc1 == STOMP_E_CALLBACK && rc2 == STOMP_E_CALLBACK && r.nf == 2,
	    "callback returning non-zero stops parsing -> STOMP_E_CALLBACK, "
	    "sticky");
	rec_free(&r);

	rec_init(&r);
	p = stomp_parser_new(&biglim, 12, on_frame, on_hb, &r);
	rc1 = stomp_parse(p, S("SEND\nk:\\t\n\n\0"));
	rc2 = stomp_parse(p, S("SEND\n\n\0\n"));
	stomp_parser_free(p);
	ok(rc1 == STOMP_E_ESCAPE && rc2 == STOMP_E_ESCAPE && r.nf == 0 &&
	    r.nhb == 0, "error is sticky: later input returns the same error");
	rec_free(&r);

	p = stomp_parser_new(NULL, 12, NULL, NULL, NULL);
	rc1 = p != NULL ? stomp_parse(p, S("\nSEND\n\n\0\n")) : -99;
	stomp_parser_free(p);
	ok(rc1 == 0, "NULL limits and NULL callbacks are allowed");
	stomp_parser_free(NULL);
}

static int
buf_is(const struct stomp_buf *b, const char *s)
{
	return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

static int
roundtrip(const char *name, const char *value, int version)
{
	struct stomp_buf b;
	struct rec r;
	int rc, good;

	stomp_buf_init(&b);
	stomp_buf_add(&b, "SEND\n", 5);
	stomp_buf_header(&b, "destination", "/room/x", version);
	stomp_buf_header(&b, name, value, version);
	stomp_buf_add(&b, "\nbody", 6);
	rec_init(&r);
	r.query = name;
	rc = run(&r, b.data, b.len, version, NULL, 0);
	good = rc == 0 && r.nf == 1 && r.f[0].nh == 2 &&
	    strcmp(r.f[0].h[1].name, name) == 0 &&
	    strcmp(r.f[0].h[1].value, value) == 0 &&
	    strcmp(r.f[0].body, "body") == 0;
	rec_free(&r);
	stomp_buf_free(&b);
	return good;
}

/* The escaping rules one byte at a time, to check the writer against. */
static size_t
ref_escape(char *d, const char *s, int version)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (version >= 11 && (*s == '\\' || *s == '\n' || *s == ':' ||
		    (*s == '\r' && version == 12))) {
			d[n++] = '\\';
			d[n++] = *s == '\\' ? '\\' : *s == '\n' ? 'n' :
			    *s == ':' ? 'c' : 'r';
		} else
			d[n++] = *s;
	}
	d[n] = '\0';
	return n;
}

/* A special byte at every offset of strings of 1 to 40 bytes (the writer
 * looks at eight bytes a step, then at the rest one by one). */
static void
test_escape_offsets(void)
{
	static const char specials[] = "\\\n:\r";
	char s[48], want[128], hdr[272];
	struct stomp_buf b;
	size_t len, at, k, bad = 0, n = 0;
	int v;

	stomp_buf_init(&b);
	for (v = 10; v <= 12; v++)
		for (len = 1; len <= 40; len++)
			for (at = 0; at <= len; at++)	/* at == len: none */
				for (k = 0; k < 4; k++) {
					memset(s, 'x', len);
					s[len] = '\0';
					if (at < len)
						s[at] = specials[k];
					ref_escape(want, s, v);
					b.len = 0;
					stomp_buf_add_escaped(&b, s, v);
					stomp_buf_add(&b, "", 1);
					n++;
					if (strcmp(b.data, want) != 0)
						bad++;
					/* and as a header's name and value */
					snprintf(hdr, sizeof(hdr), "%s:%s\n",
					    want, want);
					b.len = 0;
					stomp_buf_header(&b, s, s, v);
					stomp_buf_add(&b, "", 1);
					if (strcmp(b.data, hdr) != 0)
						bad++;
				}
	stomp_buf_free(&b);
	ok(bad == 0, "escaping: \\, LF, colon and CR at every offset of "
	    "1- to 40-byte names and values, 1.0-1.2 (%zu strings, %zu wrong)",
	    n, bad);
}

static void
test_writer(void)
{
	struct stomp_buf b;
	char *big;
	size_t i;
	int good;

	stomp_buf_init(&b);
	stomp_buf_add_escaped(&b, "a\\b\nc:d\re", 12);
	ok(buf_is(&b, "a\\\\b\\nc\\cd\\re"), "1.2 escaping of \\ LF : CR");
	stomp_buf_free(&b);

	stomp_buf_add_escaped(&b, "a\\b\nc:d\re", 11);
	ok(buf_is(&b, "a\\\\b\\nc\\cd\re"), "1.1 escaping leaves CR alone");
	stomp_buf_free(&b);

	stomp_buf_add_escaped(&b, "a\\b\nc:d\re", 10);
	ok(buf_is(&b, "a\\b\nc:d\re"), "1.0: no escaping");
	stomp_buf_free(&b);

	stomp_buf_add_escaped(&b, "", 12);
	stomp_buf_add_escaped(&b, "plain", 12);
	stomp_buf_add(&b, "", 0);
	ok(buf_is(&b, "plain"), "empty and plain strings");
	stomp_buf_free(&b);

	stomp_buf_header(&b, "na:me", "va\nl", 12);
	stomp_buf_header(&b, "login", "a:b", 10);
	ok(buf_is(&b, "na\\cme:va\\nl\nlogin:a:b\n"), "stomp_buf_header");
	stomp_buf_free(&b);
	ok(b.data == NULL && b.len == 0 && b.cap == 0,
	    "stomp_buf_free resets the buffer");

	ok(roundtrip("we:ird\\na\nme\r", "a:b\\c\nd\re:\\", 12),
	    "1.2 writer round-trip with every special character");
	ok(roundtrip("k:\\\n", "x\ry:\\\n\r", 11),
	    "1.1 writer round-trip (CR passes raw)");
	ok(roundtrip("key", "a:b:c\\n", 10),
	    "1.0 writer round-trip (colons in value, backslashes raw)");

	big = xmalloc(20001);
	for (i = 0; i < 20000; i++)
		big[i] = ":\\\n\rab"[i % 6];
	big[20000] = '\0';
	good = roundtrip("big", big, 12);
	free(big);
	ok(good, "1.2 round-trip of a 20000-byte value");
}

static void
test_strerror(void)
{
	int codes[] = { STOMP_OK, STOMP_E_COMMAND, STOMP_E_HEADER,
	    STOMP_E_ESCAPE, STOMP_E_FRAME_SIZE, STOMP_E_HEADER_COUNT,
	    STOMP_E_HEADER_SIZE, STOMP_E_CONTENT_LENGTH, STOMP_E_NO_NUL,
	    STOMP_E_NOMEM, STOMP_E_CALLBACK };
	size_t i, j, n = sizeof(codes) / sizeof(codes[0]);
	int good = 1;
	const char *a;

	for (i = 0; i < n; i++) {
		a = stomp_strerror(codes[i]);
		if (a == NULL || *a == '\0' || strpbrk(a, "\r\n") != NULL ||
		    strcmp(a, stomp_strerror(12345)) == 0)
			good = 0;
		for (j = 0; j < i; j++)
			if (strcmp(a, stomp_strerror(codes[j])) == 0)
				good = 0;
	}
	ok(good, "stomp_strerror: distinct one-line text for every code");
	ok(stomp_strerror(12345) != NULL, "stomp_strerror of unknown code");
}

/* A frame's headers by name, value and pointer, the way session.c asks. */
struct known_seen {
	const char *v[STOMP_H_COUNT];
	size_t n;
	int copy_same;		/* stomp_frame_index on a copy agrees */
};

static int
on_known(void *arg, struct stomp_frame *f)
{
	struct known_seen *k = arg;
	struct stomp_frame c;
	struct stomp_header *h;
	size_t i;
	int j;

	check_hget(f);
	for (j = 0; j < STOMP_H_COUNT; j++)
		k->v[j] = stomp_hget(f, j) ? strdup(stomp_hget(f, j)) : NULL;
	k->n = f->nheaders;
	/* a copy made by hand, indexed afterwards (session.c's fcopy) */
	memset(&c, 0, sizeof(c));
	h = xmalloc(sizeof(*h) * (f->nheaders + 1));
	for (i = 0; i < f->nheaders; i++)
		h[i] = f->headers[i];
	c.headers = h;
	c.nheaders = f->nheaders;
	stomp_frame_index(&c);
	k->copy_same = 1;
	for (j = 0; j < STOMP_H_COUNT; j++)
		if (stomp_hget(&c, j) != stomp_hget(f, j))
			k->copy_same = 0;
	free(h);
	return 0;
}

/* xorshift: the same "random" streams on every run */
static uint32_t rnd_state = 2463534242u;

static uint32_t
rnd(uint32_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state % n;
}

/* A few bytes, mostly plain, sometimes the ones that matter to STOMP. */
static void
rnd_text(struct stomp_buf *b, size_t max)
{
	static const char special[] = "\\:\r\nncr";
	size_t n = rnd((uint32_t)max + 1), i;
	char c;

	for (i = 0; i < n; i++) {
		c = rnd(40) != 0 ? (char)('a' + rnd(26)) :
		    rnd(60) == 0 ? '\0' : special[rnd(sizeof(special) - 1)];
		stomp_buf_add(b, &c, 1);
		if (c == '\\' && rnd(4) != 0)	/* mostly a valid escape */
			stomp_buf_add(b, &"nc\\r"[rnd(4)], 1);
	}
}

/*
 * Random streams of frames, good and bad -- escapes, CRs, NULs in the
 * head, wrong content-lengths, lines and counts at and past the limits --
 * parsed in one piece (where a head that is all there is taken at once)
 * and byte by byte (where it never is): the same frames, heart-beats and
 * error every time.
 */
static void
test_whole_heads(void)
{
	static const char *const cmds[] = { "SEND", "MESSAGE", "CONNECT",
	    "STOMP", "SUBSCRIBE", "FOO", "send", "", "UNSUBSCRIBES" };
	static const struct stomp_limits lims[] = {
		{ 1 << 20, 100, 1 << 16 }, { 80, 4, 12 }, { 300, 6, 24 },
		{ 0, 0, 0 }
	};
	struct stomp_buf b, body;
	struct rec r1, r2;
	size_t i, k, nh, bad = 0, errors = 0, frames = 0;
	int rc1, rc2, v;
	char num[32];
	const char *c;
	const struct stomp_limits *lim;

	stomp_buf_init(&b);
	stomp_buf_init(&body);
	for (i = 0; i < 4000; i++) {
		b.len = 0;
		for (k = rnd(3) + 1; k > 0; k--) {
			const char *eol = rnd(3) == 0 ? "\r\n" : "\n";

			if (rnd(4) == 0)
				stomp_buf_add(&b, eol, strlen(eol));
			c = cmds[rnd(4) != 0 ? rnd(2) : rnd(9)];
			stomp_buf_add(&b, c, strlen(c));
			stomp_buf_add(&b, eol, strlen(eol));
			body.len = 0;
			rnd_text(&body, 20);
			for (nh = rnd(8); nh > 0; nh--) {
				if (rnd(5) == 0) {
					/* mostly right, sometimes not */
					snprintf(num, sizeof(num),
					    "content-length:%zu", rnd(5) != 0 ?
					    body.len : (size_t)rnd(25));
					stomp_buf_add(&b, num, strlen(num));
					if (rnd(8) == 0)
						rnd_text(&b, 2);
				} else {
					rnd_text(&b, 14);
					if (rnd(10) != 0)
						stomp_buf_add(&b, ":", 1);
					rnd_text(&b, 14);
				}
				stomp_buf_add(&b, eol, strlen(eol));
			}
			stomp_buf_add(&b, eol, strlen(eol));
			stomp_buf_add(&b, body.data, body.len);
			if (rnd(10) != 0)
				stomp_buf_add(&b, "", 1);
		}
		v = 10 + (int)rnd(3);
		lim = &lims[rnd(2) ? 0 : rnd(4)];
		rec_init(&r1);
		rec_init(&r2);
		rc1 = run(&r1, b.data, b.len, v, lim, 0);
		rc2 = run(&r2, b.data, b.len, v, lim, 1);
		if (rc1 != rc2 || r1.trace.len != r2.trace.len ||
		    (r1.trace.len > 0 && memcmp(r1.trace.data, r2.trace.data,
		    r1.trace.len) != 0)) {
			if (bad++ == 0)
				printf("# stream %zu: one piece rc %d, byte by "
				    "byte rc %d\n", i, rc1, rc2);
		}
		errors += rc1 != 0;
		frames += r1.nf;
		rec_free(&r1);
		rec_free(&r2);
	}
	stomp_buf_free(&b);
	stomp_buf_free(&body);
	ok(bad == 0 && frames > 2000 && errors > 300 && errors < 3000,
	    "4,000 random streams (%zu frames, %zu ending in an error): one "
	    "piece and byte by byte agree (%zu differ)", frames, errors, bad);
}

static void
known_free(struct known_seen *k)
{
	int j;

	for (j = 0; j < STOMP_H_COUNT; j++)
		free((char *)k->v[j]);
}

static void
test_known_headers(void)
{
	struct stomp_parser *p;
	struct stomp_buf b;
	struct known_seen k;
	char line[64];
	size_t i, split;
	int j, good;

	ok(stomp_hdr_name(STOMP_H_RECEIPT) != NULL &&
	    strcmp(stomp_hdr_name(STOMP_H_RECEIPT), "receipt") == 0 &&
	    stomp_hdr_name(STOMP_H_COUNT) == NULL,
	    "stomp_hdr_name: \"receipt\", NULL past the end");

	/*
	 * Every known header, some twice (the first counts), one whose name
	 * only unescapes to a known one, look-alikes of each length, and 60
	 * filler headers so the header array grows twice mid-frame.
	 */
	stomp_buf_init(&b);
	stomp_buf_add(&b, S("SEND\n"));
	for (i = 0; i < 30; i++) {
		snprintf(line, sizeof(line), "x-%zu:%zu\n", i, i);
		stomp_buf_add(&b, line, strlen(line));
	}
	stomp_buf_add(&b, S("id:4\nack:client\nevent:typing\n"
	    "since:12\nref-id:r1\nreceipt:first\nhistory:5\nmedia-id:m1\n"
	    "destination:/room/a\ntransaction:t1\ncontent-type:text/plain\n"
	    "receipt:second\nid:5\nre\\cceipt:odd\ndestinatioN:/room/b\n"
	    "events:x\nsince2:y\nidx:z\nreceip:w\n"));
	for (i = 30; i < 60; i++) {
		snprintf(line, sizeof(line), "x-%zu:%zu\n", i, i);
		stomp_buf_add(&b, line, strlen(line));
	}
	stomp_buf_add(&b, S("\nbody"));
	stomp_buf_add(&b, "", 1);
	for (split = 0; split < 3; split++) {
		memset(&k, 0, sizeof(k));
		p = stomp_parser_new(&biglim, 12, on_known, NULL, &k);
		if (split == 0)
			good = stomp_parse(p, b.data, b.len) == 0;
		else {		/* byte by byte, or in two halves */
			good = 1;
			for (i = 0; i < b.len && good; i += split == 1 ? 1 :
			    b.len / 2)
				good = stomp_parse(p, b.data + i, split == 1 ?
				    1 : (b.len - i < b.len / 2 ? b.len - i :
				    b.len / 2)) == 0;
		}
		stomp_parser_free(p);
		good = good && k.n == 79 && k.copy_same &&
		    k.v[STOMP_H_ID] && strcmp(k.v[STOMP_H_ID], "4") == 0 &&
		    k.v[STOMP_H_ACK] && strcmp(k.v[STOMP_H_ACK], "client") == 0 &&
		    k.v[STOMP_H_EVENT] &&
		    strcmp(k.v[STOMP_H_EVENT], "typing") == 0 &&
		    k.v[STOMP_H_SINCE] && strcmp(k.v[STOMP_H_SINCE], "12") == 0 &&
		    k.v[STOMP_H_REF_ID] &&
		    strcmp(k.v[STOMP_H_REF_ID], "r1") == 0 &&
		    k.v[STOMP_H_RECEIPT] &&
		    strcmp(k.v[STOMP_H_RECEIPT], "first") == 0 &&
		    k.v[STOMP_H_HISTORY] &&
		    strcmp(k.v[STOMP_H_HISTORY], "5") == 0 &&
		    k.v[STOMP_H_MEDIA_ID] &&
		    strcmp(k.v[STOMP_H_MEDIA_ID], "m1") == 0 &&
		    k.v[STOMP_H_DESTINATION] &&
		    strcmp(k.v[STOMP_H_DESTINATION], "/room/a") == 0 &&
		    k.v[STOMP_H_TRANSACTION] &&
		    strcmp(k.v[STOMP_H_TRANSACTION], "t1") == 0 &&
		    k.v[STOMP_H_CONTENT_TYPE] &&
		    strcmp(k.v[STOMP_H_CONTENT_TYPE], "text/plain") == 0;
		ok(good, "known headers: all 11 found once, the first of "
		    "each wins, look-alikes ignored, 79 headers (%s)",
		    split == 0 ? "one piece" : split == 1 ? "byte by byte" :
		    "two pieces");
		known_free(&k);
	}
	stomp_buf_free(&b);

	/* The next frame on the same parser starts with none of them. */
	memset(&k, 0, sizeof(k));
	p = stomp_parser_new(&biglim, 12, on_known, NULL, &k);
	good = stomp_parse(p, S("SEND\nreceipt:1\ndestination:/room/a\n\n"
	    "a\0")) == 0;
	known_free(&k);
	memset(&k, 0, sizeof(k));
	good = good && stomp_parse(p, S("SEND\nx:y\n\nb\0")) == 0;
	stomp_parser_free(p);
	for (j = 0; j < STOMP_H_COUNT; j++)
		if (k.v[j] != NULL)
			good = 0;
	ok(good && k.n == 1, "known headers are per frame: none carried "
	    "into the next one");
	known_free(&k);

	/* 1.2 unescapes names before they are compared: "ev\\\\ent" is
	 * "ev\\ent" and "receipt\\c" is "receipt:", neither a known name. */
	memset(&k, 0, sizeof(k));
	p = stomp_parser_new(&biglim, 12, on_known, NULL, &k);
	good = stomp_parse(p, S("SEND\nev\\\\ent:a\nreceipt\\c:b\n\nx\0"))
	    == 0;
	stomp_parser_free(p);
	ok(good && k.v[STOMP_H_EVENT] == NULL && k.v[STOMP_H_RECEIPT] == NULL,
	    "known headers: escaped names that are not known stay unknown");
	known_free(&k);
}

int
main(void)
{
	test_commands();
	test_escapes();
	test_crlf();
	test_bodies();
	test_heartbeats();
	test_splits();
	test_whole_heads();
	test_limits();
	test_callback_and_sticky();
	test_writer();
	test_escape_offsets();
	test_strerror();
	test_known_headers();
	ok(hget_bad == 0 && hget_frames > 100, "stomp_hget agrees with "
	    "stomp_header_get in all %zu frames parsed above", hget_frames);
	printf("1..%d\n", ntest);
	if (nfail != 0)
		printf("# %d of %d tests failed\n", nfail, ntest);
	return nfail != 0;
}
