/*
 * metrics: the daemon's Prometheus exposition (GET /metrics) and the poll
 * duration histogram. Counters live where they are counted (triggers, the
 * webhook sender, pools); this module renders them.
 */
#ifndef IMAPHOOKD_METRICS_H
#define IMAPHOOKD_METRICS_H

#include <stdint.h>

#include "util.h"

#define METRICS_POLL_BUCKETS 12

struct metrics {
	uint64_t poll_buckets[METRICS_POLL_BUCKETS];    /* cumulative counts */
	uint64_t poll_count;
	double poll_sum;                /* seconds */
};

struct daemon;

/* Records one poll that took seconds. */
void metrics_observe_poll(struct metrics *m, double seconds);
/* Appends the whole exposition to out. */
void metrics_render(struct daemon *d, struct str *out);

#endif
