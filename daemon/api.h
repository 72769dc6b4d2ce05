/*
 * api: the daemon's HTTP API on libevent's evhttp.
 *
 *   GET  /healthz             per-trigger and per-connection state; 503
 *                             while any trigger's last poll failed
 *   GET  /metrics             Prometheus text format
 *   POST /v1/actions/ACTION   runs an action of the table (action.h) on the
 *                             daemon's pooled connections
 *
 * Errors are JSON: {"error":{"code":"...","message":"..."}}. /v1/ needs
 * "Authorization: Bearer <token>" when a token is configured (compared in
 * constant time). Request bodies are capped at 32 MiB. At most
 * API_MAX_WAITING calls wait for an IMAP connection, each for at most the
 * connection's timeout; others get 503 with Retry-After. A download that
 * is API_SINK_HIGH bytes ahead of its client waits for it.
 */
#ifndef IMAPHOOKD_API_H
#define IMAPHOOKD_API_H

#include "config.h"

struct daemon;
struct api;

#define API_MAX_BODY (32u * 1024 * 1024)
/* API calls that may wait for a pooled connection at once (per daemon) */
#define API_MAX_WAITING 64
/* Bytes of a download queued for its HTTP client before it waits. */
#define API_SINK_HIGH (4u * 1024 * 1024)

/* Listens on cfg->listen. Returns NULL (logged; errno says why) when it
 * cannot bind. cfg is copied. */
struct api *api_new(struct daemon *d, const struct cfg_api *cfg);
/* Stops listening; requests in progress are abandoned. */
void api_free(struct api **api);
/* True when cfg is what api already serves. */
bool api_same(const struct api *api, const struct cfg_api *cfg);
/*
 * Reload: makes *api serve cfg (NULL: no API). A new token applies at once;
 * a new address is bound before the old one is let go, and when it cannot
 * be bound the old one stays (logged), rather than no API at all.
 */
void api_reload(struct api **api, struct daemon *d, const struct cfg_api *cfg);

#endif
