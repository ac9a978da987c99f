/*
 * stomp.h - STOMP 1.0-1.2 frame parser and frame writer.  No I/O.
 *
 * The parser takes input in pieces split at any byte and calls back once per
 * complete frame.  Heart-beat EOLs between frames are reported through the
 * heartbeat callback (so the caller can note peer activity).  Limits are
 * enforced while parsing, so a hostile peer cannot make it buffer more than
 * max_frame bytes.
 */
#ifndef PARLEY_STOMP_H
#define PARLEY_STOMP_H

#include <stddef.h>
#include <stdint.h>

enum stomp_command {
	STOMP_CMD_UNKNOWN = 0,
	STOMP_CMD_CONNECT,
	STOMP_CMD_STOMP,
	STOMP_CMD_CONNECTED,
	STOMP_CMD_SEND,
	STOMP_CMD_SUBSCRIBE,
	STOMP_CMD_UNSUBSCRIBE,
	STOMP_CMD_ACK,
	STOMP_CMD_NACK,
	STOMP_CMD_BEGIN,
	STOMP_CMD_COMMIT,
	STOMP_CMD_ABORT,
	STOMP_CMD_DISCONNECT,
	STOMP_CMD_MESSAGE,
	STOMP_CMD_RECEIPT,
	STOMP_CMD_ERROR
};

/* Parser error codes (negative). */
enum stomp_err {
	STOMP_OK = 0,
	STOMP_E_COMMAND = -1,	/* unknown command */
	STOMP_E_HEADER = -2,	/* header line without ':' */
	STOMP_E_ESCAPE = -3,	/* undefined escape sequence (1.2/1.1) */
	STOMP_E_FRAME_SIZE = -4, /* frame larger than max_frame */
	STOMP_E_HEADER_COUNT = -5, /* more than max_headers headers */
	STOMP_E_HEADER_SIZE = -6, /* one header line longer than max_header */
	STOMP_E_CONTENT_LENGTH = -7, /* content-length malformed */
	STOMP_E_NO_NUL = -8,	/* content-length body not followed by NUL */
	STOMP_E_NOMEM = -9,
	STOMP_E_CALLBACK = -10	/* the frame callback returned non-zero */
};

struct stomp_header {
	char *name;		/* unescaped, NUL-terminated */
	char *value;		/* unescaped, NUL-terminated */
};

/*
 * Headers the server looks up in every frame of some command.  The parser
 * finds them once, as it reads the header lines: stomp_hget(f,
 * STOMP_H_RECEIPT) is stomp_header_get(f, "receipt") without the search.
 */
enum stomp_hdr {
	STOMP_H_ACK,
	STOMP_H_CONTENT_TYPE,
	STOMP_H_DESTINATION,
	STOMP_H_EVENT,
	STOMP_H_HISTORY,
	STOMP_H_ID,
	STOMP_H_MEDIA_ID,
	STOMP_H_RECEIPT,
	STOMP_H_REF_ID,
	STOMP_H_SINCE,
	STOMP_H_TRANSACTION,
	STOMP_H_COUNT
};

/*
 * A parsed frame.  Everything points into memory owned by the parser and is
 * valid only during the frame callback.  body is body_len bytes followed by
 * a NUL (not counted) and may contain NULs when content-length was given.
 * cmd is STOMP_CMD_UNKNOWN for a command word (1-11 capital letters) that
 * is no STOMP command: the frame is parsed so its receipt can be answered;
 * any other command line is STOMP_E_COMMAND.
 */
struct stomp_frame {
	enum stomp_command cmd;
	const char *command;	/* the command word as sent */
	struct stomp_header *headers;
	size_t nheaders;
	char *body;
	size_t body_len;
	/* the first value of each enum stomp_hdr header, or NULL */
	const char *known[STOMP_H_COUNT];
};

/* Returns 0 to continue, STOMP_CB_PAUSE to stop after this frame (stomp_parse
 * returns STOMP_PAUSED; call it again with the rest of the input later), or
 * any other non-zero value to fail (stomp_parse returns STOMP_E_CALLBACK). */
#define STOMP_CB_PAUSE 2
#define STOMP_PAUSED 1
typedef int (*stomp_frame_cb)(void *arg, struct stomp_frame *f);
typedef void (*stomp_heartbeat_cb)(void *arg);

struct stomp_limits {
	size_t max_frame;	/* whole frame: command+headers+body */
	size_t max_headers;	/* header count */
	size_t max_header;	/* one header line, bytes */
};

struct stomp_parser;

/*
 * Create a parser.  version is 10, 11 or 12 and selects escaping rules
 * (1.0: no escapes, 1.1: no \r escape, 1.2: all, plus CR LF line ends);
 * it can be changed later with stomp_parser_set_version (after CONNECT).
 * Returns NULL on allocation failure.  Free with stomp_parser_free.
 */
struct stomp_parser *stomp_parser_new(const struct stomp_limits *lim,
    int version, stomp_frame_cb on_frame, stomp_heartbeat_cb on_heartbeat,
    void *arg);
void stomp_parser_set_version(struct stomp_parser *p, int version);
void stomp_parser_free(struct stomp_parser *p);

/*
 * Feed len bytes.  Calls on_frame for each complete frame, in order.
 * Returns 0 when all input was consumed, or a negative enum stomp_err; after
 * an error the parser stays failed (further calls return the same error).
 */
int stomp_parse(struct stomp_parser *p, const char *data, size_t len);

/* After stomp_parse: how many input bytes it consumed (all of them unless
 * it returned STOMP_PAUSED). */
size_t stomp_parser_consumed(const struct stomp_parser *p);

/* Human-readable text for an error code. */
const char *stomp_strerror(int err);

/* Command word <-> enum.  stomp_command_name returns NULL for UNKNOWN. */
enum stomp_command stomp_command_from(const char *s, size_t len);
const char *stomp_command_name(enum stomp_command c);

/* First header named name (first occurrence wins, as 1.2 says), or NULL. */
const char *stomp_header_get(const struct stomp_frame *f, const char *name);

/* The same for a header of enum stomp_hdr, in constant time. */
static inline const char *
stomp_hget(const struct stomp_frame *f, enum stomp_hdr h)
{
	return f->known[h];
}

/* The name of an enum stomp_hdr header ("receipt"), or NULL. */
const char *stomp_hdr_name(enum stomp_hdr h);

/* Fill f->known from f->headers: for a frame built or copied by hand. */
void stomp_frame_index(struct stomp_frame *f);

/*
 * Frame writing.  stomp_escape appends the escaped form of s (for the given
 * version) to out.  A writer builds "COMMAND\nname:value\n...\n" into a
 * growable buffer; bodies are appended by the caller followed by a NUL.
 */
struct stomp_buf {
	char *data;
	size_t len;
	size_t cap;
};

void stomp_buf_init(struct stomp_buf *b);
void stomp_buf_free(struct stomp_buf *b);
/* Return 0 or -1 (out of memory). */
int stomp_buf_add(struct stomp_buf *b, const void *data, size_t len);
int stomp_buf_add_escaped(struct stomp_buf *b, const char *s, int version);
/* "name:value\n" with both escaped (except for CONNECT/CONNECTED, where the
 * caller passes version 10 to disable escaping, as 1.2 requires). */
int stomp_buf_header(struct stomp_buf *b, const char *name, const char *value,
    int version);

#endif
