/*
 * conflicts.h - position conflicts, shared by the storage plugins.
 *
 * Storage is idempotent on (room, position) and (room, id): a message whose
 * position or id is stored already is skipped.  When the message at that
 * position is a different one and the newcomer's id is nowhere in the room,
 * skipping it loses it: the backplane's positions went back (a Kafka topic
 * recreated, a backplane switched over the same database, two instances
 * with the "local" backplane on one database).  Refusing the batch would
 * stop all storage, so the plugin stores the rest and says so, once per
 * batch: an ERROR line and parley_storage_position_conflicts_total.
 */
#ifndef PARLEY_PLUGIN_CONFLICTS_H
#define PARLEY_PLUGIN_CONFLICTS_H

#include <inttypes.h>
#include <stdio.h>

#include <parley/plugin.h>

#define CONFLICTS_METRIC "parley_storage_position_conflicts_total"

/* A batch's conflicts: how many, and the first one for the log. */
struct conflicts {
	size_t n;
	uint64_t position;
	char room[PARLEY_ROOM_MAX + 1];
	char held[PARLEY_ID_MAX + 1];	/* the stored message's id */
	char id[PARLEY_ID_MAX + 1];	/* the one not stored */
};

/* m was not stored because the message held (id) holds its position. */
static inline void
conflicts_add(struct conflicts *cf, const struct parley_msg *m,
    const char *held)
{
	if (cf->n++ > 0)
		return;
	cf->position = m->position;
	snprintf(cf->room, sizeof(cf->room), "%s", m->room);
	snprintf(cf->held, sizeof(cf->held), "%s", held != NULL ? held : "?");
	snprintf(cf->id, sizeof(cf->id), "%s", m->id);
}

/* After the batch committed: count and log them (any thread). */
static inline void
conflicts_report(const struct parley_host *host, struct parley_ctx *ctx,
    const struct conflicts *cf)
{
	if (cf->n == 0)
		return;
	host->counter_add(ctx, CONFLICTS_METRIC, NULL, (double)cf->n);
	host->log(ctx, PARLEY_LOG_ERROR, "%zu message(s) not stored: their "
	    "positions hold other messages (room '%s' position %" PRIu64
	    " holds '%s', not '%s'); the backplane's positions went back "
	    "(see doc/storage.md)", cf->n, cf->room, cf->position, cf->held,
	    cf->id);
}

#endif /* PARLEY_PLUGIN_CONFLICTS_H */
