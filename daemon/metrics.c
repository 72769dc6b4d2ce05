/* metrics: Prometheus text exposition; see metrics.h */
#include "metrics.h"

#include <string.h>

#include "daemon.h"
#include "trigger.h"
#include "webhook.h"

static const double poll_bounds[METRICS_POLL_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};

void
metrics_observe_poll(struct metrics *m, double seconds)
{
	size_t i;

	for (i = 0; i < METRICS_POLL_BUCKETS; i++)
		if (seconds <= poll_bounds[i])
			m->poll_buckets[i]++;
	m->poll_count++;
	m->poll_sum += seconds;
}

/* A label value: backslash, quote and newline escaped. */
static void
label(struct str *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			str_append_c(out, '\\');
		if (*v == '\n') {
			str_append(out, "\\n");
			continue;
		}
		str_append_c(out, *v);
	}
}

static void
header(struct str *out, const char *name, const char *type, const char *help)
{
	str_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
metrics_render(struct daemon *d, struct str *out)
{
	struct trigger_info ti;
	struct webhook_stats ws;
	struct imap_pool_stats ps;
	size_t i;

	header(out, "imaphook_polls_total", "counter", "Polls of a trigger by result.");
	for (i = 0; i < d->ntriggers; i++) {
		trigger_info(d->triggers[i], &ti);
		str_append(out, "imaphook_polls_total{trigger=\"");
		label(out, ti.name);
		str_printf(out, "\",result=\"ok\"} %llu\n", (unsigned long long)ti.polls_ok);
		str_append(out, "imaphook_polls_total{trigger=\"");
		label(out, ti.name);
		str_printf(out, "\",result=\"error\"} %llu\n", (unsigned long long)ti.polls_failed);
	}
	header(out, "imaphook_events_queued_total", "counter",
	    "Events (email.new and mailbox.reset) queued by a trigger.");
	for (i = 0; i < d->ntriggers; i++) {
		trigger_info(d->triggers[i], &ti);
		str_append(out, "imaphook_events_queued_total{trigger=\"");
		label(out, ti.name);
		str_printf(out, "\"} %llu\n", (unsigned long long)ti.events_queued);
	}
	header(out, "imaphook_trigger_up", "gauge",
	    "1 when the trigger's last poll succeeded, 0 when it failed.");
	for (i = 0; i < d->ntriggers; i++) {
		trigger_info(d->triggers[i], &ti);
		str_append(out, "imaphook_trigger_up{trigger=\"");
		label(out, ti.name);
		str_printf(out, "\"} %d\n", ti.failing ? 0 : 1);
	}
	header(out, "imaphook_trigger_push", "gauge",
	    "How new mail reaches a trigger now (method notify, idle or poll).");
	for (i = 0; i < d->ntriggers; i++) {
		trigger_info(d->triggers[i], &ti);
		str_append(out, "imaphook_trigger_push{trigger=\"");
		label(out, ti.name);
		str_printf(out, "\",method=\"%s\"} 1\n", ti.push != NULL ? ti.push : "poll");
	}
	header(out, "imaphook_webhook_deliveries_total", "counter",
	    "Webhook attempts by result: ok (2xx), retry (will be retried), dead (dead letter).");
	for (i = 0; d->sender != NULL && i < webhook_sender_webhook_count(d->sender); i++) {
		const char *name = webhook_sender_webhook_name(d->sender, i);
		static const char *const results[] = { "ok", "retry", "dead" };
		uint64_t v[3];
		size_t k;

		if (!webhook_sender_stats(d->sender, name, &ws))
			continue;
		v[0] = ws.delivered;
		v[1] = ws.retried;
		v[2] = ws.dead;
		for (k = 0; k < 3; k++) {
			str_append(out, "imaphook_webhook_deliveries_total{webhook=\"");
			label(out, name);
			str_printf(out, "\",result=\"%s\"} %llu\n", results[k],
			    (unsigned long long)v[k]);
		}
	}
	header(out, "imaphook_outbox_depth", "gauge", "Events waiting for delivery to a webhook.");
	for (i = 0; d->sender != NULL && i < webhook_sender_webhook_count(d->sender); i++) {
		const char *name = webhook_sender_webhook_name(d->sender, i);

		if (!webhook_sender_stats(d->sender, name, &ws))
			continue;
		str_append(out, "imaphook_outbox_depth{webhook=\"");
		label(out, name);
		str_printf(out, "\"} %zu\n", ws.outbox_depth);
	}
	header(out, "imaphook_imap_connections", "gauge", "Open IMAP connections of a connection.");
	for (i = 0; i < d->npools; i++) {
		imap_pool_stats(d->pools[i].pool, &ps);
		str_append(out, "imaphook_imap_connections{connection=\"");
		label(out, d->pools[i].name);
		str_printf(out, "\"} %u\n", ps.open);
	}
	header(out, "imaphook_poll_duration_seconds", "histogram",
	    "Time from the start of a poll to its end.");
	for (i = 0; i < METRICS_POLL_BUCKETS; i++)
		str_printf(out, "imaphook_poll_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    poll_bounds[i], (unsigned long long)d->metrics.poll_buckets[i]);
	str_printf(out, "imaphook_poll_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long)d->metrics.poll_count);
	str_printf(out, "imaphook_poll_duration_seconds_sum %.6f\n", d->metrics.poll_sum);
	str_printf(out, "imaphook_poll_duration_seconds_count %llu\n",
	    (unsigned long long)d->metrics.poll_count);
	header(out, "imaphook_start_time_seconds", "gauge", "When the daemon started (Unix time).");
	str_printf(out, "imaphook_start_time_seconds %lld\n", (long long)d->started);
	header(out, "imaphook_build_info", "gauge", "The running version.");
	str_printf(out, "imaphook_build_info{version=\"%s\"} 1\n", IMAPHOOK_VERSION);
}
