/*
 * hist.c - log-bucket latency histogram (see bench.h).
 *
 * Values 0..15 have a bucket each; above that every power of two
 * [2^m, 2^(m+1)) is split into 16 equal buckets, indexed by the four bits
 * after the leading one.
 */
#include <string.h>

#include "bench.h"

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static size_t
bucket_of(uint64_t v)
{
	int msb;
	size_t idx;

	if (v < HIST_SUB)
		return (size_t)v;
	msb = 63 - __builtin_clzll(v);
	idx = (size_t)(msb - 3) * HIST_SUB + ((v >> (msb - 4)) & 15);
	if (idx >= HIST_EXP * HIST_SUB)
		idx = HIST_EXP * HIST_SUB - 1;
	return idx;
}

/* the largest value that falls in bucket idx */
static uint64_t
bucket_top(size_t idx)
{
	size_t g = idx / HIST_SUB, sub = idx % HIST_SUB;
	int msb;

	if (g == 0)
		return sub;
	msb = (int)g + 3;
	return ((uint64_t)(16 + sub) << (msb - 4)) +
	    ((uint64_t)1 << (msb - 4)) - 1;
}

void
hist_add(struct hist *h, uint64_t us)
{
	h->b[bucket_of(us)]++;
	h->count++;
	h->sum += (double)us;
	if (us > h->max)
		h->max = us;
	if (us < h->min)
		h->min = us;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	size_t i;

	for (i = 0; i < HIST_EXP * HIST_SUB; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
	if (src->min < dst->min)
		dst->min = src->min;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0, top;
	size_t i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(q * (double)h->count);
	if (want >= h->count)
		want = h->count - 1;
	for (i = 0; i < HIST_EXP * HIST_SUB; i++) {
		seen += h->b[i];
		if (seen > want) {
			top = bucket_top(i);
			return top > h->max ? h->max : top;
		}
	}
	return h->max;
}
