/* config: see config.h */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/ssl.h>

#include "cfgval.h"
#include "imap_conn.h"
#include "jsonutil.h"

#define SECONDS_MAX 1000000     /* cap of every duration, about 11 days */
#define CONTENT_SIZE_MIN 1024
#define CONTENT_SIZE_MAX 67108864  /* the IMAP parser's literal cap */
#define TRIGGER_NAME_MAX 128
/* A webhook's name names its outbox and dead-letter directories. */
#define WEBHOOK_NAME_MAX 200
#define CTX_MAX 160

static const char *const root_keys[] = {
	"state_dir", "log_level", "log_format", "api", "connections",
	"webhooks", "triggers", "poll_backoff_max", "auth_backoff_max",
	"webhook_backoff_max", NULL
};
static const char *const api_keys[] = {
	"listen", "token", "token_file", NULL
};
static const char *const connection_keys[] = {
	"name", "host", "port", "secure", "starttls", "username", "password",
	"password_file", "password_env", "auth", "oauth2_token_command",
	"min_tls_version", "max_tls_version", "min_dh_size", "tls_verify",
	"ca_file", "max_connections", "timeout", "idle_restart", NULL
};
static const char *const webhook_keys[] = {
	"name", "url", "secret", "secret_file", "headers", "timeout", NULL
};
static const char *const trigger_keys[] = {
	"name", "connection", "mailbox", "interval", "mode", "fetch_content",
	"mark_as_read", "webhooks", "start_from", "max_content_size", NULL
};

/* Sources of a secret for cfgval_secret: inline, file, environment. */
static const char *const password_keys[] = {
	"password", "password_file", "password_env"
};
static const char *const secret_keys[] = { "secret", "secret_file", NULL };
static const char *const token_keys[] = { "token", "token_file", NULL };

static const char *const auth_names[] = { "login", "xoauth2", NULL };
static const char *const mode_names[] = { "poll", "idle", NULL };
static const char *const start_names[] = { "now", "all", NULL };
static const char *const log_level_names[] = {
	"error", "warn", "info", "debug", NULL
};
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const tls_names[] = {
	"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL
};
static const int tls_versions[] = {
	TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION
};

/* Headers the webhook sender sets itself: overriding them breaks signing
 * or the request (the sender would drop them). */
static const char *const reserved_headers[] = {
	"webhook-id", "webhook-timestamp", "webhook-signature",
	"content-length", "content-type", "expect", NULL
};

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

void
config_errors_free(struct config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->count = 0;
}

static config_setting_t *
opt(const config_setting_t *g, const char *key)
{
	return config_setting_get_member(g, key);
}

/* "connections[0]" or "connections[0] ("work")" for messages. */
static void
item_ctx(char *buf, size_t size, const char *section, size_t i,
    const char *name)
{
	if (name == NULL)
		snprintf(buf, size, "%s[%zu]", section, i);
	else
		snprintf(buf, size, "%s[%zu] (\"%.100s\")", section, i, name);
}

/* Options of a load (config_load_cli) */
struct load_opts {
	bool cli;
	const char *connection;         /* cli: the only one whose secret is read */
};

/* Is the secret of connection (NULL: of a webhook or the API) read? */
static bool
secret_wanted(const struct cfgval *cv, const char *connection)
{
	const struct load_opts *o = cv->user;

	if (o == NULL || !o->cli)
		return true;
	return connection != NULL && (o->connection == NULL ||
	    strcmp(o->connection, connection) == 0);
}

/*
 * Reads the name of item idx of section into *name_r (pointing into the
 * tree) and makes ctx carry it. Returns true when there is a valid name.
 */
static bool
item_name(struct cfgval *cv, const config_setting_t *g, const char *section,
    size_t idx, char *ctx, const char **name_r)
{
	item_ctx(ctx, CTX_MAX, section, idx, NULL);
	if (cfgval_require_string(cv, ctx, g, "name", CFGVAL_NAME, name_r) <= 0)
		return false;
	item_ctx(ctx, CTX_MAX, section, idx, *name_r);
	return true;
}

/* Reports the name of g as already used by an item defined at line. Items
 * are loaded in order into zeroed arrays, so a look-up by name before the
 * current item's name is set finds only earlier ones. */
static void
duplicate(struct cfgval *cv, const config_setting_t *g, const char *ctx,
    const char *what, const char *name, int line)
{
	cfgval_problem(cv, opt(g, "name"), ctx, "duplicate %s name \"%s\" "
	    "(first defined at line %d)", what, name, line);
}

static bool
host_is_loopback(const char *h)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, h, &a6) == 1) {
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		    (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	}
	return false;
}

static void
load_tls(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    struct cfg_connection *c)
{
	config_setting_t *smin = opt(g, "min_tls_version");
	config_setting_t *smax = opt(g, "max_tls_version");
	int vmin = -1, vmax = -1;

	if (cfgval_enum(cv, ctx, smin, tls_names, &vmin) > 0)
		c->min_tls_version = tls_versions[vmin];
	if (cfgval_enum(cv, ctx, smax, tls_names, &vmax) > 0)
		c->max_tls_version = tls_versions[vmax];
	if ((vmin >= 0 || vmax >= 0) &&
	    c->min_tls_version > c->max_tls_version) {
		cfgval_problem(cv, vmin >= 0 ? smin : smax, ctx,
		    "\"min_tls_version\" (%s) is higher than "
		    "\"max_tls_version\" (%s)",
		    config_tls_version_name(c->min_tls_version),
		    config_tls_version_name(c->max_tls_version));
	}
}

static void
load_xoauth2(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    struct cfg_connection *c)
{
	config_setting_t *s;
	const char *v;
	size_t i, n;

	for (i = 0; i < N_ELEMENTS(password_keys); i++) {
		if ((s = opt(g, password_keys[i])) != NULL) {
			cfgval_problem(cv, s, ctx, "\"%s\" cannot be used with "
			    "auth = \"xoauth2\"", password_keys[i]);
		}
	}
	/* XOAUTH2 and OAUTHBEARER name the user too */
	if (cfgval_require_string(cv, ctx, g, "username", CFGVAL_NAME, &v) > 0)
		c->username = xstrdup(v);
	if ((s = opt(g, "oauth2_token_command")) == NULL) {
		cfgval_problem(cv, g, ctx, "auth = \"xoauth2\" requires "
		    "\"oauth2_token_command\"");
		return;
	}
	if (cfgval_strv(cv, ctx, s, true, &c->oauth2_token_command, &n) > 0 &&
	    (n == 0 || c->oauth2_token_command[0][0] == '\0')) {
		cfgval_problem(cv, s, ctx, "\"oauth2_token_command\" must name "
		    "a program (a non-empty first element)");
	}
}

static void
load_auth(struct cfgval *cv, const char *ctx, const config_setting_t *g,
    struct cfg_connection *c)
{
	const config_setting_t *from, *s;
	const char *v;
	size_t len;
	int auth = CFG_AUTH_LOGIN, r;

	if (cfgval_enum(cv, ctx, opt(g, "auth"), auth_names, &auth) < 0)
		return;
	c->auth = (enum cfg_auth)auth;
	if (c->auth == CFG_AUTH_XOAUTH2) {
		load_xoauth2(cv, ctx, g, c);
		return;
	}
	if ((s = opt(g, "oauth2_token_command")) != NULL) {
		cfgval_problem(cv, s, ctx, "\"oauth2_token_command\" needs "
		    "auth = \"xoauth2\"");
	}
	if (cfgval_require_string(cv, ctx, g, "username", CFGVAL_NAME, &v) > 0)
		c->username = xstrdup(v);
	cv->skip_secrets = !secret_wanted(cv, c->name);
	r = cfgval_secret(cv, ctx, g, password_keys, false, &c->password, &len, &from);
	cv->skip_secrets = false;
	if (r == 0) {
		cfgval_problem(cv, g, ctx, "missing \"password\", "
		    "\"password_file\" or \"password_env\" (auth = \"login\")");
	}
}

static void
load_connection(struct cfgval *cv, struct config *cfg,
    const config_setting_t *g, size_t idx)
{
	struct cfg_connection *c = &cfg->connections[idx], *dup;
	config_setting_t *s;
	char ctx[CTX_MAX];
	const char *v;
	char *why = NULL;
	long long n;

	c->line = (int)config_setting_source_line(g);
	c->secure = true;
	c->min_tls_version = TLS1_1_VERSION;
	c->max_tls_version = TLS1_3_VERSION;
	c->min_dh_size = 1024;
	c->tls_verify = true;
	c->max_connections = 2;
	c->timeout = 60;
	c->idle_restart = 1500;
	if (item_name(cv, g, "connections", idx, ctx, &v)) {
		if ((dup = config_find_connection(cfg, v)) != NULL)
			duplicate(cv, g, ctx, "connection", v, dup->line);
		c->name = xstrdup(v);
	}
	cfgval_check_keys(cv, ctx, g, connection_keys);
	if (cfgval_require_string(cv, ctx, g, "host", CFGVAL_NAME, &v) > 0)
		c->host = xstrdup(v);
	cfgval_set_bool(cv, ctx, g, "secure", &c->secure);
	cfgval_set_bool(cv, ctx, g, "starttls", &c->starttls);
	if (c->secure && c->starttls) {
		cfgval_problem(cv, opt(g, "starttls"), ctx, "\"starttls = true\" "
		    "contradicts \"secure = true\"%s; set secure = false to use "
		    "STARTTLS", opt(g, "secure") == NULL ? " (the default)" : "");
	}
	c->port = c->secure ? 993 : 143;
	if (cfgval_int(cv, ctx, opt(g, "port"), 1, 65535, &n) > 0)
		c->port = (uint16_t)n;
	load_auth(cv, ctx, g, c);
	load_tls(cv, ctx, g, c);
	cfgval_set_uint(cv, ctx, g, "min_dh_size", 0, 16384, &c->min_dh_size);
	cfgval_set_bool(cv, ctx, g, "tls_verify", &c->tls_verify);
	s = opt(g, "ca_file");
	if (cfgval_string(cv, ctx, s, CFGVAL_NAME, &v) > 0) {
		c->ca_file = cfgval_path(s, v);
		if (access(c->ca_file, R_OK) < 0) {
			cfgval_problem(cv, s, ctx, "\"ca_file\": cannot read "
			    "\"%s\": %s", c->ca_file, strerror(errno));
		} else if (c->tls_verify && imap_tls_ca_file_check(c->ca_file, &why) < 0) {
			cfgval_problem(cv, s, ctx, "\"ca_file\": \"%s\": %s", c->ca_file, why);
			free(why);
		}
	}
	cfgval_set_uint(cv, ctx, g, "max_connections", 1, 1000,
	    &c->max_connections);
	cfgval_set_uint(cv, ctx, g, "timeout", 1, SECONDS_MAX, &c->timeout);
	cfgval_set_uint(cv, ctx, g, "idle_restart", 5, 1740, &c->idle_restart);
	if (!c->secure && !c->starttls && c->name != NULL && c->host != NULL &&
	    !host_is_loopback(c->host)) {
		log_warn("connection \"%s\": secure = false and starttls = false: "
		    "the password and all mail cross the network unencrypted",
		    c->name);
	}
}

/* Checks header i ("Name: value"); returns a normalised copy or NULL. */
static char *
load_header(struct cfgval *cv, const char *ctx, const config_setting_t *e,
    size_t i)
{
	const char *h = config_setting_get_string(e), *val;
	size_t k, nlen, vlen;

	if (strpbrk(h, "\r\n") != NULL) {
		cfgval_problem(cv, e, ctx, "headers[%zu] must not contain CR or LF",
		    i);
		return NULL;
	}
	nlen = strspn(h, ALNUM "!#$%&'*+-.^_`|~");
	if (nlen == 0 || h[nlen] != ':') {
		cfgval_problem(cv, e, ctx, "headers[%zu] must be \"Name: value\" "
		    "with a name made of letters, digits and !#$%%&'*+-.^_`|~", i);
		return NULL;
	}
	for (k = 0; reserved_headers[k] != NULL; k++) {
		if (strlen(reserved_headers[k]) == nlen &&
		    strncasecmp(h, reserved_headers[k], nlen) == 0) {
			cfgval_problem(cv, e, ctx, "headers[%zu]: \"%s\" is set by "
			    "imaphook and cannot be configured", i,
			    reserved_headers[k]);
			return NULL;
		}
	}
	val = h + nlen + 1;
	val += strspn(val, " ");
	vlen = strlen(val);
	while (vlen > 0 && val[vlen - 1] == ' ')
		vlen--;
	if (vlen == 0 || cfgval_has_ctl(val)) {
		/* The value may be a credential: only the name is shown. */
		cfgval_problem(cv, e, ctx, "headers[%zu] (\"%.*s\") needs a "
		    "non-empty value without control characters", i, (int)nlen, h);
		return NULL;
	}
	return xasprintf("%.*s: %.*s", (int)nlen, h, (int)vlen, val);
}

static bool
url_valid(const char *u)
{
	size_t skip;

	if (strncasecmp(u, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(u, "https://", 8) == 0)
		skip = 8;
	else
		return false;
	if (u[skip] == '\0' || strchr("/?#", u[skip]) != NULL)
		return false;
	for (; *u != '\0'; u++) {
		if ((unsigned char)*u <= 0x20 || *u == 0x7f)
			return false;
	}
	return true;
}

/* The HMAC key of a webhook from the secret text (see cfg_webhook). */
static void
load_webhook_secret(struct cfgval *cv, const char *ctx,
    const config_setting_t *g, struct cfg_webhook *w)
{
	const config_setting_t *from;
	char *val;
	size_t len;
	int r;

	cv->skip_secrets = !secret_wanted(cv, NULL);
	r = cfgval_secret(cv, ctx, g, secret_keys, true, &val, &len, &from);
	cv->skip_secrets = false;
	if (r <= 0)
		return;
	if (len >= 6 && memcmp(val, "whsec_", 6) == 0) {
		if (base64_decode(val + 6, len - 6, &w->secret,
		    &w->secret_len) < 0) {
			cfgval_problem(cv, from, ctx, "\"%s\": invalid base64 after "
			    "\"whsec_\"", config_setting_name(from));
		} else if (w->secret_len == 0) {
			cfgval_problem(cv, from, ctx, "\"%s\": empty key after "
			    "\"whsec_\"", config_setting_name(from));
		}
	} else {
		w->secret = xmalloc(len);
		memcpy(w->secret, val, len);
		w->secret_len = len;
	}
	explicit_bzero(val, len);
	free(val);
}

static void
load_webhook(struct cfgval *cv, struct config *cfg,
    const config_setting_t *g, size_t idx)
{
	struct cfg_webhook *w = &cfg->webhooks[idx], *dup;
	config_setting_t *s;
	char ctx[CTX_MAX], **hv;
	const char *v;
	size_t j, n, nh = 0;

	w->line = (int)config_setting_source_line(g);
	w->timeout = 10;
	w->headers = xcalloc(1, sizeof(*w->headers));
	if (item_name(cv, g, "webhooks", idx, ctx, &v)) {
		if ((dup = config_find_webhook(cfg, v)) != NULL)
			duplicate(cv, g, ctx, "webhook", v, dup->line);
		w->name = xstrdup(v);
		/* it names a directory (state_dir/outbox/NAME) */
		if (strlen(v) > WEBHOOK_NAME_MAX || strchr(v, '/') != NULL ||
		    strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
			cfgval_problem(cv, opt(g, "name"), ctx, "\"name\" must be 1 to %d "
			    "bytes without \"/\", and not \".\" or \"..\"", WEBHOOK_NAME_MAX);
		}
	}
	cfgval_check_keys(cv, ctx, g, webhook_keys);
	if (cfgval_require_string(cv, ctx, g, "url", CFGVAL_NONEMPTY, &v) > 0) {
		/* A URL may carry credentials: it is not shown. */
		if (url_valid(v)) {
			w->url = xstrdup(v);
		} else {
			cfgval_problem(cv, opt(g, "url"), ctx, "\"url\" must be an "
			    "http:// or https:// URL with a host and no spaces "
			    "or control characters");
		}
	}
	load_webhook_secret(cv, ctx, g, w);
	s = opt(g, "headers");
	if (cfgval_strv(cv, ctx, s, true, &hv, &n) > 0) {
		w->headers = xreallocarray(w->headers, n + 1, sizeof(*w->headers));
		for (j = 0; j < n; j++) {
			w->headers[nh] = load_header(cv, ctx,
			    cfgval_strv_elem(s, j), j);
			if (w->headers[nh] != NULL)
				nh++;
		}
		w->headers[nh] = NULL;
		cfgval_strv_free(hv);
	}
	cfgval_set_uint(cv, ctx, g, "timeout", 1, SECONDS_MAX, &w->timeout);
}

static bool
trigger_name_valid(const char *s)
{
	size_t n = strspn(s, ALNUM "_.-");

	return n <= TRIGGER_NAME_MAX && s[n] == '\0' && strcmp(s, ".") != 0 &&
	    strcmp(s, "..") != 0;
}

static void
load_trigger_webhooks(struct cfgval *cv, struct config *cfg, const char *ctx,
    const config_setting_t *g, struct cfg_trigger *t)
{
	config_setting_t *s = opt(g, "webhooks");
	struct cfg_webhook *w;
	char **names;
	size_t i, j, n;

	if (s == NULL) {
		cfgval_problem(cv, g, ctx, "missing required key \"webhooks\"");
		return;
	}
	if (cfgval_strv(cv, ctx, s, true, &names, &n) <= 0)
		return;
	if (n == 0) {
		cfgval_problem(cv, s, ctx, "\"webhooks\" must name at least one "
		    "webhook");
	}
	t->webhooks = xcalloc(n, sizeof(*t->webhooks));
	for (i = 0; i < n; i++) {
		for (j = 0; j < i && strcmp(names[i], names[j]) != 0; j++)
			;
		if (j < i) {
			cfgval_problem(cv, cfgval_strv_elem(s, i), ctx, "webhook "
			    "\"%.100s\" is listed twice", names[i]);
		} else if ((w = config_find_webhook(cfg, names[i])) == NULL) {
			cfgval_problem(cv, cfgval_strv_elem(s, i), ctx, "webhook "
			    "\"%.100s\" is not defined", names[i]);
		} else {
			t->webhooks[t->nwebhooks++] = w;
		}
	}
	cfgval_strv_free(names);
}

static void
load_trigger(struct cfgval *cv, struct config *cfg,
    const config_setting_t *g, size_t idx)
{
	struct cfg_trigger *t = &cfg->triggers[idx], *dup;
	config_setting_t *s;
	char ctx[CTX_MAX];
	const char *v;
	long long n;
	int e;

	t->line = (int)config_setting_source_line(g);
	t->interval = 60;
	t->max_content_size = 4194304;
	if (item_name(cv, g, "triggers", idx, ctx, &v)) {
		if ((dup = config_find_trigger(cfg, v)) != NULL)
			duplicate(cv, g, ctx, "trigger", v, dup->line);
		t->name = xstrdup(v);
		if (!trigger_name_valid(v)) {
			cfgval_problem(cv, opt(g, "name"), ctx, "\"name\" must be "
			    "1 to %d characters from [A-Za-z0-9_.-], and not "
			    "\".\" or \"..\"", TRIGGER_NAME_MAX);
		}
	}
	cfgval_check_keys(cv, ctx, g, trigger_keys);
	if (cfgval_require_string(cv, ctx, g, "connection", CFGVAL_NAME,
	    &v) > 0 && (t->connection = config_find_connection(cfg, v)) == NULL) {
		cfgval_problem(cv, opt(g, "connection"), ctx, "connection "
		    "\"%.100s\" is not defined", v);
	}
	if (cfgval_require_string(cv, ctx, g, "mailbox", CFGVAL_NONEMPTY,
	    &v) > 0) {
		s = opt(g, "mailbox");
		if (!utf8_valid(v, strlen(v))) {
			cfgval_problem(cv, s, ctx, "\"mailbox\" is not valid UTF-8");
		} else if (cfgval_has_ctl(v)) {
			cfgval_problem(cv, s, ctx, "\"mailbox\" must not contain "
			    "control characters");
		} else
			t->mailbox = xstrdup(v);
	}
	cfgval_set_uint(cv, ctx, g, "interval", 1, SECONDS_MAX, &t->interval);
	if (cfgval_enum(cv, ctx, opt(g, "mode"), mode_names, &e) > 0)
		t->mode = (enum cfg_mode)e;
	cfgval_set_bool(cv, ctx, g, "fetch_content", &t->fetch_content);
	cfgval_set_bool(cv, ctx, g, "mark_as_read", &t->mark_as_read);
	load_trigger_webhooks(cv, cfg, ctx, g, t);
	if (cfgval_enum(cv, ctx, opt(g, "start_from"), start_names, &e) > 0)
		t->start_from = (enum cfg_start_from)e;
	if (cfgval_int(cv, ctx, opt(g, "max_content_size"), CONTENT_SIZE_MIN,
	    CONTENT_SIZE_MAX, &n) > 0)
		t->max_content_size = (size_t)n;
}

/* "HOST:PORT" or "[V6]:PORT". Returns 0 with a malloc'd host, or -1. */
static int
parse_listen(const char *s, char **host_r, uint16_t *port_r)
{
	const char *end, *port;
	struct in6_addr a6;
	char *host;
	uint32_t p;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return -1;
		host = xstrndup(s + 1, (size_t)(end - s - 1));
		port = end + 2;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			goto fail;
	} else {
		if ((end = strrchr(s, ':')) == NULL || end == s)
			return -1;
		host = xstrndup(s, (size_t)(end - s));
		port = end + 1;
		if (host[strspn(host, ALNUM ".-_")] != '\0')
			goto fail;
	}
	if (parse_u32(port, &p) < 0 || p < 1 || p > 65535)
		goto fail;
	*host_r = host;
	*port_r = (uint16_t)p;
	return 0;
fail:
	free(host);
	return -1;
}

static void
load_api(struct cfgval *cv, struct config *cfg, const config_setting_t *g)
{
	struct cfg_api *api;
	const config_setting_t *from, *ls = opt(g, "listen");
	const char *v;
	size_t len;
	int r;

	api = cfg->api = xcalloc(1, sizeof(*api));
	api->line = (int)config_setting_source_line(g);
	cfgval_check_keys(cv, "api", g, api_keys);
	if (cfgval_require_string(cv, "api", g, "listen", CFGVAL_NAME, &v) > 0) {
		if (parse_listen(v, &api->host, &api->port) < 0) {
			cfgval_problem(cv, ls, "api", "\"listen\" must be HOST:PORT "
			    "or [IPV6]:PORT with a port between 1 and 65535 "
			    "(got \"%.100s\")", v);
		} else {
			api->listen = xstrdup(v);
			api->loopback = host_is_loopback(api->host);
		}
	}
	cv->skip_secrets = !secret_wanted(cv, NULL);
	r = cfgval_secret(cv, "api", g, token_keys, false, &api->token, &len,
	    &from);
	cv->skip_secrets = false;
	if (r == 0 && api->listen != NULL && !api->loopback) {
		cfgval_problem(cv, ls, "api", "\"listen\" (%s) is not a loopback "
		    "address, so \"token\" or \"token_file\" is required",
		    api->host);
	}
}

typedef void load_item_fn(struct cfgval *, struct config *,
    const config_setting_t *, size_t);

/* Checks that key is a list of groups; returns its length (0 when absent
 * or not a list). Elements that are not groups are reported here. */
static size_t
section_length(struct cfgval *cv, const config_setting_t *root,
    const char *key)
{
	const config_setting_t *s = opt(root, key), *e;
	size_t i, n;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_LIST &&
	    (config_setting_type(s) != CONFIG_TYPE_ARRAY ||
	    config_setting_length(s) != 0)) {
		cfgval_problem(cv, s, "", "\"%s\" must be a list of groups: "
		    "%s = ( { ... }, { ... } ); (got %s)", key, key,
		    cfgval_type_name(s));
		return 0;
	}
	n = (size_t)config_setting_length(s);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			cfgval_problem(cv, e, "", "%s[%zu] must be a group "
			    "{ ... } (got %s)", key, i, cfgval_type_name(e));
		}
	}
	return n;
}

/* Calls load for each group of the list key (n elements). */
static void
section_load(struct cfgval *cv, struct config *cfg,
    const config_setting_t *root, const char *key, size_t n,
    load_item_fn *load)
{
	const config_setting_t *e;
	size_t i;

	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(opt(root, key), (unsigned)i);
		if (config_setting_type(e) == CONFIG_TYPE_GROUP)
			load(cv, cfg, e, i);
	}
}

static void
load_root(struct cfgval *cv, struct config *cfg, const config_setting_t *root)
{
	const config_setting_t *s;
	const char *v;
	int x;

	cfg->log_level = LOG_LEVEL_INFO;
	cfg->log_format = LOG_FORMAT_TEXT;
	cfg->poll_backoff_max = 60;
	cfg->auth_backoff_max = 900;
	cfg->webhook_backoff_max = 300;
	cfgval_check_keys(cv, "", root, root_keys);
	s = opt(root, "state_dir");
	if (cfgval_string(cv, "", s, CFGVAL_NAME, &v) > 0)
		cfg->state_dir = cfgval_path(s, v);
	else
		cfg->state_dir = xstrdup(CONFIG_DEFAULT_STATE_DIR);
	if (cfgval_enum(cv, "", opt(root, "log_level"), log_level_names, &x) > 0)
		cfg->log_level = (enum log_level)x;
	if (cfgval_enum(cv, "", opt(root, "log_format"), log_format_names,
	    &x) > 0)
		cfg->log_format = (enum log_format)x;
	cfgval_set_uint(cv, "", root, "poll_backoff_max", 1, SECONDS_MAX,
	    &cfg->poll_backoff_max);
	cfgval_set_uint(cv, "", root, "auth_backoff_max", 1, SECONDS_MAX,
	    &cfg->auth_backoff_max);
	cfgval_set_uint(cv, "", root, "webhook_backoff_max", 1, SECONDS_MAX,
	    &cfg->webhook_backoff_max);
	if ((s = opt(root, "api")) != NULL) {
		if (config_setting_type(s) == CONFIG_TYPE_GROUP)
			load_api(cv, cfg, s);
		else
			cfgval_problem(cv, s, "", "\"api\" must be a group "
			    "{ listen = \"...\"; ... } (got %s)",
			    cfgval_type_name(s));
	}

	/* Connections and webhooks first: triggers point into them. The
	 * arrays are never reallocated after this. */
	cfg->nconnections = section_length(cv, root, "connections");
	cfg->connections = xcalloc(cfg->nconnections, sizeof(*cfg->connections));
	s = opt(root, "connections");
	if (s == NULL || (cfg->nconnections == 0 &&
	    config_setting_type(s) != CONFIG_TYPE_GROUP &&
	    config_setting_is_aggregate(s))) {
		cfgval_problem(cv, s != NULL ? s : root, "", "no connections "
		    "defined: \"connections\" must list at least one");
	}
	section_load(cv, cfg, root, "connections", cfg->nconnections,
	    load_connection);
	cfg->nwebhooks = section_length(cv, root, "webhooks");
	cfg->webhooks = xcalloc(cfg->nwebhooks, sizeof(*cfg->webhooks));
	section_load(cv, cfg, root, "webhooks", cfg->nwebhooks, load_webhook);
	cfg->ntriggers = section_length(cv, root, "triggers");
	cfg->triggers = xcalloc(cfg->ntriggers, sizeof(*cfg->triggers));
	section_load(cv, cfg, root, "triggers", cfg->ntriggers, load_trigger);
}

/* Reports why libconfig could not read path (I/O or syntax error). */
static void
read_error(struct cfgval *cv, const config_t *lc, const char *path)
{
	struct stat st;
	const char *why;
	int line;

	if (config_error_type(lc) == CONFIG_ERR_PARSE) {
		line = config_error_line(lc);
		cfgval_problem_at(cv, config_error_file(lc) != NULL ?
		    config_error_file(lc) : path, line > 0 ? (unsigned)line : 1,
		    "%s", config_error_text(lc));
		return;
	}
	if (stat(path, &st) < 0)
		why = strerror(errno);
	else if (S_ISDIR(st.st_mode))
		why = "is a directory";
	else if (access(path, R_OK) < 0)
		why = strerror(errno);
	else
		why = "read error";
	cfgval_problem_at(cv, path, 0, "cannot read the config file: %s", why);
}

static int
config_load_how(const char *path, const struct load_opts *opts, struct config **config_r,
    struct config_errors *errs)
{
	struct cfgval cv;
	struct config *cfg = NULL;
	config_t lc;
	bool failed;

	*config_r = NULL;
	cfgval_init(&cv, path);
	cv.user = opts;
	config_init(&lc);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		read_error(&cv, &lc, path);
	} else {
		cfg = xcalloc(1, sizeof(*cfg));
		cfg->path = xstrdup(path);
		load_root(&cv, cfg, config_root_setting(&lc));
	}
	config_destroy(&lc);
	failed = cv.nprobs > 0;
	cfgval_finish(&cv, errs);
	if (failed) {
		config_free(&cfg);
		return -1;
	}
	*config_r = cfg;
	return 0;
}

int
config_load(const char *path, struct config **config_r, struct config_errors *errs)
{
	static const struct load_opts all = { false, NULL };

	return config_load_how(path, &all, config_r, errs);
}

int
config_load_cli(const char *path, const char *connection, struct config **config_r,
    struct config_errors *errs)
{
	const struct load_opts cli = { true, connection };

	return config_load_how(path, &cli, config_r, errs);
}

static void
free_secret(void *p, size_t len)
{
	if (p != NULL)
		explicit_bzero(p, len);
	free(p);
}

static void
connection_clear(struct cfg_connection *c)
{
	free(c->name);
	free(c->host);
	free(c->username);
	if (c->password != NULL)
		free_secret(c->password, strlen(c->password));
	cfgval_strv_free(c->oauth2_token_command);
	free(c->ca_file);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct cfg_connection *
config_connection_dup(const struct cfg_connection *c)
{
	struct cfg_connection *d = xmalloc(sizeof(*d));
	size_t n = 0, i;

	*d = *c;
	d->name = dup_or_null(c->name);
	d->host = dup_or_null(c->host);
	d->username = dup_or_null(c->username);
	d->password = dup_or_null(c->password);
	d->ca_file = dup_or_null(c->ca_file);
	d->oauth2_token_command = NULL;
	if (c->oauth2_token_command != NULL) {
		while (c->oauth2_token_command[n] != NULL)
			n++;
		d->oauth2_token_command = xcalloc(n + 1, sizeof(char *));
		for (i = 0; i < n; i++)
			d->oauth2_token_command[i] = xstrdup(c->oauth2_token_command[i]);
	}
	return d;
}

void
config_connection_free(struct cfg_connection **cp)
{
	if (*cp == NULL)
		return;
	connection_clear(*cp);
	free(*cp);
	*cp = NULL;
}

void
config_free(struct config **configp)
{
	struct config *cfg = *configp;
	struct cfg_webhook *w;
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nconnections; i++)
		connection_clear(&cfg->connections[i]);
	free(cfg->connections);
	for (i = 0; i < cfg->nwebhooks; i++) {
		w = &cfg->webhooks[i];
		free(w->name);
		free(w->url);
		free_secret(w->secret, w->secret_len);
		cfgval_strv_free(w->headers);
	}
	free(cfg->webhooks);
	for (i = 0; i < cfg->ntriggers; i++) {
		free(cfg->triggers[i].name);
		free(cfg->triggers[i].mailbox);
		free(cfg->triggers[i].webhooks);
	}
	free(cfg->triggers);
	if (cfg->api != NULL) {
		free(cfg->api->listen);
		free(cfg->api->host);
		if (cfg->api->token != NULL)
			free_secret(cfg->api->token, strlen(cfg->api->token));
		free(cfg->api);
	}
	free(cfg->state_dir);
	free(cfg->path);
	free(cfg);
	*configp = NULL;
}

struct cfg_connection *
config_find_connection(const struct config *config, const char *name)
{
	size_t i;

	for (i = 0; i < config->nconnections; i++) {
		if (config->connections[i].name != NULL &&
		    strcmp(config->connections[i].name, name) == 0)
			return &config->connections[i];
	}
	return NULL;
}

struct cfg_webhook *
config_find_webhook(const struct config *config, const char *name)
{
	size_t i;

	for (i = 0; i < config->nwebhooks; i++) {
		if (config->webhooks[i].name != NULL &&
		    strcmp(config->webhooks[i].name, name) == 0)
			return &config->webhooks[i];
	}
	return NULL;
}

struct cfg_trigger *
config_find_trigger(const struct config *config, const char *name)
{
	size_t i;

	for (i = 0; i < config->ntriggers; i++) {
		if (config->triggers[i].name != NULL &&
		    strcmp(config->triggers[i].name, name) == 0)
			return &config->triggers[i];
	}
	return NULL;
}

int
config_tls_version_parse(const char *s, int *version_r)
{
	size_t i;

	for (i = 0; tls_names[i] != NULL; i++) {
		if (strcmp(s, tls_names[i]) == 0) {
			*version_r = tls_versions[i];
			return 0;
		}
	}
	return -1;
}

const char *
config_tls_version_name(int version)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(tls_versions); i++) {
		if (tls_versions[i] == version)
			return tls_names[i];
	}
	return "unknown";
}

static bool
str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
strv_same(char *const *a, char *const *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return a == b;
	for (i = 0; a[i] != NULL && b[i] != NULL; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return a[i] == NULL && b[i] == NULL;
}

bool
config_connection_same(const struct cfg_connection *a,
    const struct cfg_connection *b)
{
	return str_same(a->name, b->name) && str_same(a->host, b->host) &&
	    a->port == b->port && a->secure == b->secure &&
	    a->starttls == b->starttls && str_same(a->username, b->username) &&
	    str_same(a->password, b->password) && a->auth == b->auth &&
	    strv_same(a->oauth2_token_command, b->oauth2_token_command) &&
	    a->min_tls_version == b->min_tls_version &&
	    a->max_tls_version == b->max_tls_version &&
	    a->min_dh_size == b->min_dh_size && a->tls_verify == b->tls_verify &&
	    str_same(a->ca_file, b->ca_file) &&
	    a->max_connections == b->max_connections &&
	    a->timeout == b->timeout && a->idle_restart == b->idle_restart;
}

bool
config_webhook_same(const struct cfg_webhook *a, const struct cfg_webhook *b)
{
	if (a->secret_len != b->secret_len ||
	    (a->secret == NULL) != (b->secret == NULL) ||
	    (a->secret != NULL &&
	    memcmp(a->secret, b->secret, a->secret_len) != 0))
		return false;
	return str_same(a->name, b->name) && str_same(a->url, b->url) &&
	    strv_same(a->headers, b->headers) && a->timeout == b->timeout;
}

bool
config_trigger_same(const struct cfg_trigger *a, const struct cfg_trigger *b)
{
	size_t i;

	if (!str_same(a->name, b->name) || !str_same(a->mailbox, b->mailbox) ||
	    a->interval != b->interval || a->mode != b->mode ||
	    a->fetch_content != b->fetch_content ||
	    a->mark_as_read != b->mark_as_read ||
	    a->start_from != b->start_from ||
	    a->max_content_size != b->max_content_size ||
	    a->nwebhooks != b->nwebhooks)
		return false;
	if (a->connection == NULL || b->connection == NULL) {
		if (a->connection != b->connection)
			return false;
	} else if (!str_same(a->connection->name, b->connection->name) ||
	    !config_connection_same(a->connection, b->connection)) {
		return false;
	}
	for (i = 0; i < a->nwebhooks; i++) {
		if (!str_same(a->webhooks[i]->name, b->webhooks[i]->name))
			return false;
	}
	return true;
}
