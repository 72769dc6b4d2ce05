/*
 * imaphookd: watches IMAP mailboxes and turns every new email into a signed
 * JSON webhook, durably; serves the HTTP API.
 *
 *   imaphookd [-c FILE] [--check-config] [--once] [--version] [--help]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "api.h"
#include "daemon.h"
#include "log.h"
#include "mime.h"
#include "push.h"
#include "state.h"
#include "trigger.h"
#include "util.h"

#define EX_USAGE_ 64
#define EX_UNAVAILABLE_ 69
#define EX_OSERR_ 71
#define EX_CANTCREAT_ 73
#define EX_TEMPFAIL_ 75
#define EX_CONFIG_ 78

/* SIGTERM: in-flight webhook requests get this long before we exit. */
#define STOP_DRAIN_SECONDS 8

static void
usage(FILE *f)
{
	fprintf(f, "usage: imaphookd [-c FILE] [--check-config] [--once] [--version] [--help]\n\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  --check-config     check the configuration, print problems as FILE:LINE: message\n"
	    "  --once             poll every trigger once, deliver what it found, exit\n"
	    "  --version          print the version\n"
	    "  -h, --help         print this help\n",
	    CONFIG_DEFAULT_PATH);
}

struct imap_pool *
daemon_pool(struct daemon *d, const char *connection)
{
	size_t i;

	for (i = 0; i < d->npools; i++)
		if (strcmp(d->pools[i].name, connection) == 0)
			return d->pools[i].pool;
	return NULL;
}

static void
apply_logging(const struct config *cfg)
{
	log_set_level(cfg->log_level);
	log_set_format(cfg->log_format);
}

static void
print_errors(struct config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->count; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
	config_errors_free(errs);
}

/*
 * Events a poll synced to the outbox while the daemon died before it saved
 * the trigger's state: the next poll fetches and writes them again, so they
 * wait for it (outbox_hold_after), or they would be sent twice; what that
 * poll does not write again (mail expunged meanwhile) goes after it. Runs
 * before the sender is created, so before any delivery.
 */
static void
hold_unsaved_events(struct daemon *d)
{
	size_t i, n;

	for (i = 0; i < d->ntriggers; i++) {
		n = trigger_hold_unsaved(d->triggers[i]);
		if (n > 0)
			log_info("trigger %s: %zu event%s queued after its last saved state "
			    "held until its next poll", trigger_name(d->triggers[i]), n,
			    n == 1 ? " was" : "s were");
	}
}

/* pools */

static int
pool_slot_init(struct daemon *d, struct pool_slot *slot, const struct cfg_connection *cfg)
{
	struct imap_error err;

	slot->cfg = config_connection_dup(cfg);
	slot->name = xstrdup(cfg->name);
	slot->pool = imap_pool_new(d->base, d->dns, slot->cfg, d->tls, d->config->poll_backoff_max,
	    d->config->auth_backoff_max, &err);
	if (slot->pool == NULL) {
		log_error("connection %s: %s", cfg->name, err.msg);
		config_connection_free(&slot->cfg);
		free(slot->name);
		return -1;
	}
	return 0;
}

static void
pool_slot_clear(struct pool_slot *slot)
{
	imap_pool_free(&slot->pool);
	config_connection_free(&slot->cfg);
	free(slot->name);
	slot->name = NULL;
}

/* Builds pools and triggers for d->config. Returns 0 or -1 (logged). */
static int
daemon_build(struct daemon *d)
{
	const struct config *cfg = d->config;
	size_t i;

	d->pools = xcalloc(cfg->nconnections, sizeof(*d->pools));
	for (i = 0; i < cfg->nconnections; i++) {
		if (pool_slot_init(d, &d->pools[i], &cfg->connections[i]) < 0)
			return -1;
		d->npools++;
	}
	d->triggers = xcalloc(cfg->ntriggers, sizeof(*d->triggers));
	for (i = 0; i < cfg->ntriggers; i++)
		d->triggers[d->ntriggers++] = trigger_new(d, &cfg->triggers[i]);
	return 0;
}

/* SIGHUP: apply a new configuration, keeping what did not change. */
static void
daemon_reload(struct daemon *d)
{
	struct config_errors errs = { 0 };
	struct config *ncfg = NULL;
	struct pool_slot *npools, *old_pools = d->pools;
	struct trigger **ntrig;
	size_t *from;
	bool *new_pool;
	size_t i, j, n_old_pools = d->npools, kept = 0, started = 0, stopped = 0;

	log_info("reloading %s", d->config_path);
	if (config_load(d->config_path, &ncfg, &errs) < 0) {
		for (i = 0; i < errs.count; i++)
			log_error("reload refused: %s", errs.msgs[i]);
		config_errors_free(&errs);
		log_error("reload refused: the configuration in force stays");
		return;
	}
	if (strcmp(ncfg->state_dir, d->config->state_dir) != 0) {
		log_error("reload refused: state_dir cannot change while running "
		    "(restart imaphookd to move it)");
		config_free(&ncfg);
		return;
	}
	/* new contexts for new pools: a ca_file may have new content (pools
	 * kept hold references to their own) */
	imap_tls_cache_free(&d->tls);
	d->tls = imap_tls_cache_new();
	/* pools: keep those whose settings did not change, build the others;
	 * one that cannot be built refuses the whole reload */
	npools = xcalloc(ncfg->nconnections, sizeof(*npools));
	from = xcalloc(ncfg->nconnections, sizeof(*from));
	for (i = 0; i < ncfg->nconnections; i++) {
		const struct cfg_connection *c = &ncfg->connections[i];

		from[i] = SIZE_MAX;
		for (j = 0; j < n_old_pools; j++) {
			if (strcmp(old_pools[j].name, c->name) == 0 &&
			    config_connection_same(old_pools[j].cfg, c)) {
				from[i] = j;
				break;
			}
		}
		if (from[i] == SIZE_MAX && pool_slot_init(d, &npools[i], c) < 0) {
			while (i-- > 0)
				if (from[i] == SIZE_MAX)
					pool_slot_clear(&npools[i]);
			free(npools);
			free(from);
			config_free(&ncfg);
			log_error("reload refused: the configuration in force stays");
			return;
		}
	}
	new_pool = xcalloc(ncfg->nconnections, sizeof(*new_pool));
	for (i = 0; i < ncfg->nconnections; i++) {
		if (from[i] != SIZE_MAX) {
			npools[i] = old_pools[from[i]];
			old_pools[from[i]].name = NULL;         /* moved */
		} else {
			new_pool[i] = true;
		}
	}
	free(from);
	d->pools = npools;
	d->npools = ncfg->nconnections;
	/* triggers: keep unchanged ones with their state and timers; those of
	 * a connection whose settings changed restart (a fixed password is
	 * tried now, not after the back-off of the old one's failures) */
	ntrig = xcalloc(ncfg->ntriggers, sizeof(*ntrig));
	for (i = 0; i < ncfg->ntriggers; i++) {
		if (new_pool[ncfg->triggers[i].connection - ncfg->connections])
			continue;
		for (j = 0; j < d->ntriggers; j++) {
			if (d->triggers[j] != NULL &&
			    trigger_same(d->triggers[j], &ncfg->triggers[i])) {
				ntrig[i] = d->triggers[j];
				d->triggers[j] = NULL;
				kept++;
				break;
			}
		}
	}
	for (j = 0; j < d->ntriggers; j++) {
		if (d->triggers[j] != NULL) {
			const char *name = trigger_name(d->triggers[j]);

			log_info("trigger %s: stopped (reload)", name);
			/* gone for good: what it held back is owed all the same */
			if (config_find_trigger(ncfg, name) == NULL &&
			    outbox_release(d->outbox, name) > 0)
				webhook_sender_kick(d->sender);
			trigger_free(&d->triggers[j]);
			stopped++;
		}
	}
	free(d->triggers);
	free(new_pool);
	/* watchers on a connection that changed go with its old pool */
	push_prune(d->push);
	/* the old pools go once no trigger holds their connections */
	for (j = 0; j < n_old_pools; j++)
		if (old_pools[j].name != NULL)
			pool_slot_clear(&old_pools[j]);
	free(old_pools);
	config_free(&d->config);
	d->config = ncfg;
	apply_logging(ncfg);
	/* global settings of every pool, kept or new (built above with the
	 * old configuration's) */
	for (i = 0; i < d->npools; i++)
		imap_pool_set_backoff(d->pools[i].pool, ncfg->poll_backoff_max,
		    ncfg->auth_backoff_max);
	d->triggers = ntrig;
	d->ntriggers = ncfg->ntriggers;
	for (i = 0; i < ncfg->ntriggers; i++) {
		if (ntrig[i] == NULL)
			started++;
	}
	for (i = 0; i < ncfg->ntriggers; i++) {
		if (ntrig[i] == NULL) {
			ntrig[i] = trigger_new(d, &ncfg->triggers[i]);
			trigger_start(ntrig[i], started);
		}
	}
	push_reload(&d->push, d);
	webhook_sender_set_config(d->sender, ncfg);
	api_reload(&d->api, d, ncfg->api);
	log_info("reloaded: %zu trigger%s kept, %zu started, %zu stopped", kept,
	    kept == 1 ? "" : "s", started, stopped);
}

/* shutdown */

static void
drained_cb(void *arg)
{
	struct daemon *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void
stop_timeout_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct daemon *d = arg;

	log_warn("webhook requests still in flight after %d s; they will be retried "
	    "after the restart", STOP_DRAIN_SECONDS);
	event_base_loopexit(d->base, NULL);
}

static void
state_sync_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	struct daemon *d = arg;
	char *err = NULL;

	if (!d->state_sync_due)
		return;
	d->state_sync_due = false;
	if (state_sync(d->config->state_dir, &err) < 0) {
		log_error("%s: the first state of triggers started just now may not "
		    "survive a power cut", err);
		free(err);
	}
}

void
daemon_state_sync_later(struct daemon *d)
{
	struct timeval tv = { 0, DAEMON_STATE_SYNC_MS * 1000 };

	if (d->state_sync_due)
		return;
	d->state_sync_due = true;
	if (d->state_sync_ev == NULL)
		d->state_sync_ev = evtimer_new(d->base, state_sync_cb, d);
	evtimer_add(d->state_sync_ev, &tv);
}

void
daemon_stop(struct daemon *d, int code)
{
	struct timeval tv = { STOP_DRAIN_SECONDS, 0 };
	size_t i;

	if (d->stopping)
		return;
	d->stopping = true;
	d->exit_code = code;
	sd_notify(0, "STOPPING=1");
	if (!d->once)
		log_info("stopping");
	push_free(&d->push);
	for (i = 0; i < d->ntriggers; i++)
		trigger_stop(d->triggers[i]);
	api_free(&d->api);
	if (d->watchdog != NULL)
		evtimer_del(d->watchdog);
	d->stop_timer = evtimer_new(d->base, stop_timeout_cb, d);
	evtimer_add(d->stop_timer, &tv);
	webhook_sender_drain(d->sender, drained_cb, d);
}

void
daemon_once_trigger_done(struct daemon *d, int exit_code)
{
	if (exit_code != 0 && d->exit_code == 0)
		d->exit_code = exit_code;
	if (--d->once_pending > 0)
		return;
	/* every poll is over: deliver what they queued, then leave */
	webhook_sender_drain(d->sender, drained_cb, d);
}

static void
signal_cb(evutil_socket_t sig, short what ATTR_UNUSED, void *arg)
{
	struct daemon *d = arg;

	switch (sig) {
	case SIGHUP:
		if (d->once) {
			/* one pass over the configuration it started with */
			log_info("SIGHUP ignored: --once does not reload");
			break;
		}
		if (!d->stopping) {
			/* systemd's Type=notify-reload waits for READY=1 again */
			sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
			    (unsigned long long)monotonic_us());
			daemon_reload(d);
			sd_notify(0, "READY=1");
		}
		break;
	default:
		log_info("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		daemon_stop(d, 0);
		break;
	}
}

static void
watchdog_cb(evutil_socket_t fd ATTR_UNUSED, short what ATTR_UNUSED, void *arg)
{
	(void)arg;
	/* we are called from the loop: the loop is alive */
	sd_notify(0, "WATCHDOG=1");
}

static void
watchdog_init(struct daemon *d)
{
	uint64_t usec = 0;
	struct timeval tv;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000u);
	tv.tv_usec = (suseconds_t)(usec % 1000000u);
	d->watchdog = event_new(d->base, -1, EV_PERSIST, watchdog_cb, d);
	event_add(d->watchdog, &tv);
}

static void
daemon_free(struct daemon *d)
{
	size_t i;

	state_sync_cb(-1, 0, d);        /* what is still due */
	if (d->state_sync_ev != NULL)
		event_free(d->state_sync_ev);
	push_free(&d->push);
	for (i = 0; i < d->ntriggers; i++)
		trigger_free(&d->triggers[i]);
	free(d->triggers);
	api_free(&d->api);
	webhook_sender_free(&d->sender);
	for (i = 0; i < d->npools; i++)
		pool_slot_clear(&d->pools[i]);
	free(d->pools);
	outbox_free(&d->outbox);
	imap_tls_cache_free(&d->tls);
	if (d->sig_term != NULL)
		event_free(d->sig_term);
	if (d->sig_int != NULL)
		event_free(d->sig_int);
	if (d->sig_hup != NULL)
		event_free(d->sig_hup);
	if (d->watchdog != NULL)
		event_free(d->watchdog);
	if (d->stop_timer != NULL)
		event_free(d->stop_timer);
	if (d->dns != NULL)
		evdns_base_free(d->dns, 0);
	if (d->base != NULL) {
		/* LOGOUTs to write, deferred frees */
		imap_loop_finish(d->base, 500);
		event_base_free(d->base);
	}
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	config_free(&d->config);
}

/*
 * Every connection, webhook request and queue being read holds a
 * descriptor; the usual soft limit of 1,024 is low for thousands of
 * triggers. The hard limit is ours to take (libevent uses epoll, so no
 * FD_SETSIZE bound).
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	struct daemon d = { .lock_fd = -1 };
	struct config_errors errs = { 0 };
	bool check = false;
	char *err = NULL;
	size_t i;
	int ret = 0;

	signal(SIGPIPE, SIG_IGN);
	/* a reload asked for while we start (before the loop listens for
	 * SIGHUP) must not kill us: the configuration being loaded is new */
	signal(SIGHUP, SIG_IGN);
	raise_fd_limit();
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());    /* poll jitter */
	log_init("imaphookd");
	d.config_path = CONFIG_DEFAULT_PATH;
	for (i = 1; i < (size_t)argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= (size_t)argc) {
				fprintf(stderr, "imaphookd: %s needs a file\n", a);
				return EX_USAGE_;
			}
			d.config_path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			d.config_path = a + 9;
		} else if (strcmp(a, "--check-config") == 0) {
			check = true;
		} else if (strcmp(a, "--once") == 0) {
			d.once = true;
		} else if (strcmp(a, "--version") == 0) {
			printf("imaphookd %s\n", IMAPHOOK_VERSION);
			return 0;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "imaphookd: unknown option %s\n", a);
			usage(stderr);
			return EX_USAGE_;
		}
	}
	if (config_load(d.config_path, &d.config, &errs) < 0) {
		print_errors(&errs);
		return EX_CONFIG_;
	}
	if (check) {
		printf("%s: ok\n", d.config_path);
		config_free(&d.config);
		return 0;
	}
	apply_logging(d.config);
	d.lock_fd = state_lock(d.config->state_dir, &err);
	if (d.lock_fd < 0) {
		log_error("%s", err);
		free(err);
		config_free(&d.config);
		return EX_TEMPFAIL_;
	}
	mime_init();
	d.started = time(NULL);
	d.base = event_base_new();
	d.dns = d.base != NULL ? imap_dns_new(d.base) : NULL;
	d.tls = imap_tls_cache_new();
	if (d.base == NULL || d.dns == NULL) {
		log_error("cannot initialise the event loop");
		ret = EX_OSERR_;
		goto out;
	}
	d.outbox = outbox_open(d.config->state_dir, &err);
	if (d.outbox == NULL) {
		log_error("%s", err);
		free(err);
		ret = EX_CANTCREAT_;
		goto out;
	}
	if (daemon_build(&d) < 0) {
		ret = EX_CONFIG_;
		goto out;
	}
	/* before the sender exists: it takes the head of each queue at once */
	hold_unsaved_events(&d);
	d.sender = webhook_sender_new(d.base, d.outbox, d.config);
	if (d.sender == NULL) {
		ret = EX_OSERR_;
		goto out;
	}
	if (d.config->api != NULL && !d.once) {
		d.api = api_new(&d, d.config->api);
		if (d.api == NULL) {
			ret = EX_OSERR_;
			goto out;
		}
	}
	d.sig_term = evsignal_new(d.base, SIGTERM, signal_cb, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, signal_cb, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, signal_cb, &d);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);

	if (d.once) {
		webhook_sender_set_once(d.sender, true);
		d.once_pending = (unsigned)d.ntriggers;
		if (d.ntriggers == 0)
			webhook_sender_drain(d.sender, drained_cb, &d);
	}
	for (i = 0; i < d.ntriggers; i++)
		trigger_start(d.triggers[i], d.ntriggers);
	if (!d.once)
		d.push = push_new(&d);
	if (!d.once)
		log_info("imaphookd %s started: %zu trigger%s, %zu connection%s, state in %s",
		    IMAPHOOK_VERSION, d.ntriggers, d.ntriggers == 1 ? "" : "s", d.npools,
		    d.npools == 1 ? "" : "s", d.config->state_dir);
	watchdog_init(&d);
	sd_notify(0, "READY=1");
	event_base_dispatch(d.base);
	ret = d.exit_code;
	if (!d.once)
		log_info("stopped");
out:
	daemon_free(&d);
	mime_shutdown();
	return ret;
}
