/*
 * msg.h - a room message inside the core: immutable once made, refcounted,
 * carrying the shared bytes of its STOMP MESSAGE frame so that fan-out to
 * N subscribers builds the frame once.
 */
#ifndef PARLEY_MSG_H
#define PARLEY_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <parley/plugin.h>

struct pmsg {
	int refcnt;
	struct parley_msg m;	/* strings point into this allocation */
	/*
	 * The frame after the per-subscription headers: "message-id:..\n
	 * destination:..\n ... \n\nBODY\0".  Same for every subscriber and
	 * every STOMP version (names and logins never need escaping).
	 */
	char *tail;
	size_t tail_len;
	int binary;		/* body is not valid UTF-8: WebSocket binary */
	int stored;		/* storage event (chat, edit, delete) */
	int has_token;		/* fed by the backplane's persist feed */
	uint64_t token;		/* ... with this token, acked after commit */
	void *waiters;		/* batcher.c: receipts waiting for its commit */
	/* conn.c: tail is referenced, not copied, into the connections'
	 * queues (set for a big room's fan-out, see broker.c)... */
	int share;
	/* ... and held until the end of the loop turn's flush */
	struct pmsg *held_next;
	int held;
};

/*
 * Make a message from m (copied, including body).  extra is NULL or one
 * extra "name:value\n" line block added to the shared headers (already
 * escaped).  Returns a message with refcnt 1, or NULL (out of memory).
 */
struct pmsg	*pmsg_new(const struct parley_msg *m, const char *extra);
struct pmsg	*pmsg_ref(struct pmsg *p);
void		 pmsg_unref(struct pmsg *p);

/* Sort v[0..n) by position and drop repeated positions (keeping the
 * first; the dropped references are not released: the caller owns them
 * through other lists).  Returns the new count. */
size_t		 pmsg_sort_unique(struct pmsg **v, size_t n);
/* qsort comparator on position. */
int		 pmsg_cmp_position(const void *a, const void *b);

const char	*event_name(int event);	/* NULL for plain chat */
int		 event_from_name(const char *s);	/* -1 if unknown */
int		 event_is_stored(int event);

/* A new message id: "<boot id>-<counter>" (loop thread). */
void		 msgid_init(void);
void		 msgid_next(char *buf, size_t len);

/* The host's message list given to storage plugins (struct parley_msg_list
 * is opaque to them). */
struct parley_msg_list {
	struct pmsg **v;
	size_t n, cap;
};
extern const struct parley_list_api msg_list_api;
void		 msg_list_clear(struct parley_msg_list *l);	/* unrefs */

struct parley_room_list {
	struct parley_room_info *v;	/* strings malloc'ed */
	size_t n, cap;
};
void		 room_list_clear(struct parley_room_list *l);

#endif
