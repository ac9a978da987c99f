/*
 * msg.c - see msg.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include "msg.h"
#include "util.h"

static const char *const event_names[] = {
	NULL, "join", "leave", "typing", "edit", "delete"
};

const char *
event_name(int event)
{
	if (event < 0 || event > PARLEY_EV_DELETE)
		return NULL;
	return event_names[event];
}

int
event_from_name(const char *s)
{
	int i;

	for (i = 1; i <= PARLEY_EV_DELETE; i++)
		if (strcmp(s, event_names[i]) == 0)
			return i;
	return -1;
}

int
event_is_stored(int event)
{
	return event == PARLEY_EV_MESSAGE || event == PARLEY_EV_EDIT ||
	    event == PARLEY_EV_DELETE;
}

static size_t
slen(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

static char *
scopy(char **pos, const char *s)
{
	char *d;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	d = *pos;
	memcpy(d, s, n);
	*pos += n;
	return d;
}

/*
 * Everything copied into the frame's headers must not be able to add a
 * header of its own (a "sender" line, say): messages from the backplane get
 * the same check as those from local clients.
 */
static int
msg_safe(const struct parley_msg *m)
{
	return m->room != NULL && room_name_valid(m->room, strlen(m->room)) &&
	    m->sender != NULL && login_valid(m->sender) &&
	    m->id != NULL && header_value_safe(m->id, PARLEY_ID_MAX) &&
	    m->id[0] != '\0' &&
	    (m->content_type == NULL ||
	    header_value_safe(m->content_type, 256)) &&
	    (m->ref_id == NULL || header_value_safe(m->ref_id, PARLEY_ID_MAX)) &&
	    (m->media_id == NULL || id_valid(m->media_id));
}

/* A bounded appender for the header block (no printf on the hot path). */
struct hbuf {
	char *p, *end;
	int full;
};

static void
h_put(struct hbuf *h, const char *s, size_t n)
{
	if (h->full || (size_t)(h->end - h->p) < n) {
		h->full = 1;
		return;
	}
	memcpy(h->p, s, n);
	h->p += n;
}

static void
h_str(struct hbuf *h, const char *s)
{
	h_put(h, s, strlen(s));
}

static void
h_u64(struct hbuf *h, uint64_t v)
{
	char d[U64_DIGITS];

	h_put(h, d, fmt_u64(d, v));
}

/* name:value\n */
static void
h_hdr(struct hbuf *h, const char *name, size_t nlen, const char *value)
{
	h_put(h, name, nlen);
	h_str(h, value);
	h_put(h, "\n", 1);
}

#define H_HDR(h, lit, v) h_hdr((h), lit, sizeof(lit) - 1, (v))

struct pmsg *
pmsg_new(const struct parley_msg *m, const char *extra)
{
	struct pmsg *p;
	char hdr[1024], *pos;
	const char *ev;
	size_t strs, hlen;
	struct hbuf h = { hdr, hdr + sizeof(hdr), 0 };

	if (!msg_safe(m))
		return NULL;
	ev = event_name(m->event);
	/* content-type first, then the fields every message has */
	if (m->content_type != NULL)
		H_HDR(&h, "content-type:", m->content_type);
	H_HDR(&h, "message-id:", m->id);
	H_HDR(&h, "destination:/room/", m->room);
	h_put(&h, "position:", 9);
	h_u64(&h, m->position);
	h_put(&h, "\n", 1);
	H_HDR(&h, "sender:", m->sender);
	h_put(&h, "timestamp:", 10);
	if (m->timestamp_ms < 0) {
		h_put(&h, "-", 1);
		h_u64(&h, -(uint64_t)m->timestamp_ms);
	} else
		h_u64(&h, (uint64_t)m->timestamp_ms);
	h_put(&h, "\n", 1);
	if (ev != NULL)
		H_HDR(&h, "event:", ev);
	if (m->ref_id != NULL)
		H_HDR(&h, "ref-id:", m->ref_id);
	if (m->media_id != NULL)
		H_HDR(&h, "media-id:", m->media_id);
	if (extra != NULL)
		h_str(&h, extra);
	h_put(&h, "content-length:", 15);
	h_u64(&h, m->body_len);
	h_put(&h, "\n\n", 2);
	if (h.full)
		return NULL;
	hlen = (size_t)(h.p - hdr);
	strs = slen(m->room) + slen(m->id) + slen(m->sender) +
	    slen(m->content_type) + slen(m->ref_id) + slen(m->media_id);
	if ((p = malloc(sizeof(*p) + strs + hlen + m->body_len + 1)) == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->refcnt = 1;
	p->m = *m;
	memset(p->m.spare, 0, sizeof(p->m.spare));
	pos = (char *)(p + 1);
	p->m.room = scopy(&pos, m->room);
	p->m.id = scopy(&pos, m->id);
	p->m.sender = scopy(&pos, m->sender);
	p->m.content_type = scopy(&pos, m->content_type);
	p->m.ref_id = scopy(&pos, m->ref_id);
	p->m.media_id = scopy(&pos, m->media_id);
	p->tail = pos;
	memcpy(pos, hdr, hlen);
	pos += hlen;
	p->m.body = pos;
	memcpy(pos, m->body, m->body_len);
	pos[m->body_len] = '\0';
	p->tail_len = hlen + m->body_len + 1;
	p->binary = !utf8_valid((const unsigned char *)m->body, m->body_len);
	p->stored = event_is_stored(m->event);
	return p;
}

int
pmsg_cmp_position(const void *a, const void *b)
{
	const struct pmsg *x = *(struct pmsg *const *)a;
	const struct pmsg *y = *(struct pmsg *const *)b;

	return x->m.position < y->m.position ? -1 :
	    x->m.position > y->m.position;
}

size_t
pmsg_sort_unique(struct pmsg **v, size_t n)
{
	size_t i, k = 0;

	qsort(v, n, sizeof(*v), pmsg_cmp_position);
	for (i = 0; i < n; i++)
		if (k == 0 || v[i]->m.position != v[k - 1]->m.position)
			v[k++] = v[i];
	return k;
}

struct pmsg *
pmsg_ref(struct pmsg *p)
{
	p->refcnt++;
	return p;
}

void
pmsg_unref(struct pmsg *p)
{
	if (p != NULL && --p->refcnt == 0)
		free(p);
}

static char boot_id[24];
static uint64_t msg_counter;

void
msgid_init(void)
{
	uint32_t r = 0;

	/* time + random: unique across restarts and across instances */
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)getpid();
	snprintf(boot_id, sizeof(boot_id), "%" PRIx64 "%08x",
	    (uint64_t)now_ms(), r);
}

void
msgid_next(char *buf, size_t len)
{
	char d[U64_DIGITS];
	size_t b = strlen(boot_id), n = fmt_u64(d, ++msg_counter);

	if (b + 1 + n + 1 > len) {	/* not with PARLEY_ID_MAX + 1 */
		snprintf(buf, len, "%s-%.*s", boot_id, (int)n, d);
		return;
	}
	memcpy(buf, boot_id, b);
	buf[b] = '-';
	memcpy(buf + b + 1, d, n);
	buf[b + 1 + n] = '\0';
}

/* ------------------------------------------------------------ lists */

static int
list_msg_add(struct parley_msg_list *l, const struct parley_msg *m)
{
	struct pmsg *p;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct pmsg **v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((p = pmsg_new(m, NULL)) == NULL)
		return -1;
	l->v[l->n++] = p;
	return 0;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static int
list_room_add(struct parley_room_list *l, const struct parley_room_info *r)
{
	struct parley_room_info *d;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct parley_room_info *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	d = &l->v[l->n];
	*d = *r;
	d->name = dup_or_null(r->name);
	d->creator = dup_or_null(r->creator);
	d->topic = dup_or_null(r->topic);
	if (d->name == NULL)
		return -1;
	l->n++;
	return 0;
}

const struct parley_list_api msg_list_api = {
	.msg_add = list_msg_add,
	.room_add = list_room_add,
};

void
msg_list_clear(struct parley_msg_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		pmsg_unref(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

void
room_list_clear(struct parley_room_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free((char *)l->v[i].name);
		free((char *)l->v[i].creator);
		free((char *)l->v[i].topic);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
