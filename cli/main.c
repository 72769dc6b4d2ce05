/*
 * imaphook: runs one action against a configured IMAP connection and prints
 * its JSON result (download: the raw bytes).
 *
 *   imaphook [-c FILE] [--connection NAME] [--seq] ACTION [--PARAM VALUE]...
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <jansson.h>

#include "action.h"
#include "config.h"
#include "imap_pool.h"
#include "log.h"
#include "mime.h"
#include "util.h"

#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_CONFIG_ 78
#define EX_CANTCREAT_ 73
#define EX_IOERR_ 74

/* append --file: larger input is refused */
#define CLI_MESSAGE_MAX (128 * 1024 * 1024)

struct cli {
	const char *config_path;
	const char *connection;
	const char *output;
	bool seq;
	bool verbose;
	const struct action_entry *entry;
	json_t *params;

	struct config *config;
	struct event_base *base;
	struct evdns_base *dns;
	struct imap_pool *pool;
	struct imap_conn *conn;
	struct action_run *run;
	FILE *out;
	char *out_tmp;          /* --output is written here, renamed at the end */
	int write_errno;        /* a write to the output failed */
	int exit_code;
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: imaphook [-c FILE] [--connection NAME] [--seq] ACTION [--PARAM VALUE]...\n"
	    "       imaphook ACTION --help\n"
	    "       imaphook --version\n\n"
	    "Runs one action against an IMAP connection of the configuration\n"
	    "(default %s) and prints its result as JSON.\n\nActions:\n",
	    CONFIG_DEFAULT_PATH);
	for (i = 0; action_table[i] != NULL; i++)
		fprintf(f, "  %-16s %s\n", action_table[i]->name, action_table[i]->summary);
}

/* "newPath" -> "new-path" */
static char *
kebab(const char *camel)
{
	struct str s;

	str_init(&s);
	for (; *camel != '\0'; camel++) {
		if (isupper((unsigned char)*camel)) {
			str_append_c(&s, '-');
			str_append_c(&s, (char)tolower((unsigned char)*camel));
		} else {
			str_append_c(&s, *camel);
		}
	}
	return str_steal(&s);
}

/* The CLI option of a list parameter is its singular: flags -> --flag. */
static char *
option_name(const struct action_param *p)
{
	char *k = kebab(p->name);
	size_t n = strlen(k);

	if (p->type == APT_FLAGS && n > 1 && k[n - 1] == 's')
		k[n - 1] = '\0';
	return k;
}

static void
action_usage(const struct action_entry *entry, FILE *f)
{
	const struct action_param *p;

	fprintf(f, "usage: imaphook [-c FILE] [--connection NAME] %s%s", entry->name,
	    entry->raw_output ? " [--output FILE]" : "");
	for (p = entry->params; p->name != NULL; p++) {
		char *o;

		if (p->flags & AP_HTTP_ONLY)
			continue;
		o = option_name(p);
		fprintf(f, " %s--%s VALUE%s%s", p->flags & AP_REQUIRED ? "" : "[", o,
		    p->type == APT_FLAGS ? "..." : "", p->flags & AP_REQUIRED ? "" : "]");
		free(o);
	}
	fprintf(f, "\n\n%s\n", entry->summary);
	for (p = entry->params; p->name != NULL; p++) {
		char *o;

		if (p->flags & AP_HTTP_ONLY)
			continue;
		o = option_name(p);
		fprintf(f, "  --%-14s %s\n", o, p->help != NULL ? p->help : "");
		free(o);
	}
}

static const struct action_param *
find_option(const struct action_entry *entry, const char *opt)
{
	const struct action_param *p;

	for (p = entry->params; p->name != NULL; p++) {
		char *o;
		bool match;

		if (p->flags & AP_HTTP_ONLY)
			continue;
		o = option_name(p);
		match = strcmp(o, opt) == 0;
		free(o);
		if (match)
			return p;
	}
	return NULL;
}

static int
add_param(struct cli *cli, const struct action_param *p, const char *opt, const char *value)
{
	uint64_t n;
	json_t *a;

	switch (p->type) {
	case APT_INT:
		if (parse_u64(value, &n) < 0 || n > (uint64_t)INT64_MAX) {
			fprintf(stderr, "imaphook: --%s: not a number: %s\n", opt, value);
			return -1;
		}
		json_object_set_new(cli->params, p->name, json_integer((json_int_t)n));
		return 0;
	case APT_BOOL:
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
			fprintf(stderr, "imaphook: --%s takes true or false, not %s\n", opt, value);
			return -1;
		}
		json_object_set_new(cli->params, p->name, json_boolean(value[0] == 't'));
		return 0;
	case APT_FLAGS:
		a = json_object_get(cli->params, p->name);
		if (a == NULL) {
			a = json_array();
			json_object_set_new(cli->params, p->name, a);
		}
		json_array_append_new(a, json_stringn_nocheck(value, strlen(value)));
		return 0;
	default:
		if (json_object_get(cli->params, p->name) != NULL) {
			fprintf(stderr, "imaphook: --%s given twice\n", opt);
			return -1;
		}
		/* arguments are bytes; a mailbox name must be UTF-8 */
		json_object_set_new(cli->params, p->name,
		    json_stringn_nocheck(value, strlen(value)));
		return 0;
	}
}

/* Parses the command line; returns 0, or an exit code (64 usage). */
static int
parse_args(struct cli *cli, int argc, char **argv)
{
	int i;

	cli->config_path = CONFIG_DEFAULT_PATH;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		char opt[128];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			if (cli->entry != NULL)
				action_usage(cli->entry, stdout);
			else
				usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--version") == 0) {
			printf("imaphook %s\n", IMAPHOOK_VERSION);
			exit(0);
		}
		if (strcmp(a, "--seq") == 0) {
			cli->seq = true;
			continue;
		}
		if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			cli->verbose = true;
			continue;
		}
		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (cli->entry != NULL) {
				fprintf(stderr, "imaphook: unexpected argument: %s\n", a);
				return EX_USAGE_;
			}
			cli->entry = action_find(a);
			if (cli->entry == NULL) {
				fprintf(stderr, "imaphook: unknown action \"%s\" "
				    "(imaphook --help lists them)\n", a);
				return EX_USAGE_;
			}
			continue;
		}
		/* options with a value: --name VALUE or --name=VALUE */
		if (strcmp(a, "-c") == 0) {
			snprintf(opt, sizeof(opt), "config");
		} else if (strncmp(a, "--", 2) == 0) {
			eq = strchr(a + 2, '=');
			if (eq != NULL) {
				snprintf(opt, sizeof(opt), "%.*s", (int)(eq - a - 2), a + 2);
				val = eq + 1;
			} else {
				snprintf(opt, sizeof(opt), "%s", a + 2);
			}
		} else {
			fprintf(stderr, "imaphook: unknown option %s\n", a);
			return EX_USAGE_;
		}
		if (val == NULL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "imaphook: %s needs a value\n", a);
				return EX_USAGE_;
			}
			val = argv[++i];
		}
		if (strcmp(opt, "config") == 0) {
			cli->config_path = val;
		} else if (strcmp(opt, "connection") == 0) {
			cli->connection = val;
		} else if (cli->entry == NULL) {
			fprintf(stderr, "imaphook: unknown option --%s (before the action)\n", opt);
			return EX_USAGE_;
		} else if (strcmp(opt, "output") == 0 && cli->entry->raw_output) {
			cli->output = val;
		} else {
			const struct action_param *p = find_option(cli->entry, opt);

			if (p == NULL) {
				fprintf(stderr, "imaphook: %s: unknown option --%s\n",
				    cli->entry->name, opt);
				return EX_USAGE_;
			}
			if (add_param(cli, p, opt, val) < 0)
				return EX_USAGE_;
		}
	}
	if (cli->entry == NULL) {
		usage(stderr);
		return EX_USAGE_;
	}
	return 0;
}

static int
sink_write(void *arg, const void *data, size_t len)
{
	struct cli *cli = arg;

	if (fwrite(data, 1, len, cli->out) != len) {
		cli->write_errno = errno != 0 ? errno : EIO;
		return -1;
	}
	return 0;
}

/* Reads all of fd (at most max bytes) into a malloc'd buffer. Returns 0,
 * or -1 with errno (EFBIG when larger than max). */
static int
read_fd(int fd, size_t max, char **data_r, size_t *len_r)
{
	struct str s;
	char buf[65536];
	ssize_t n;

	str_init(&s);
	str_append_n(&s, "", 0);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n > 0 && s.len + (size_t)n > max)) {
			if (n > 0)
				errno = EFBIG;
			str_free(&s);
			return -1;
		}
		if (n == 0)
			break;
		str_append_n(&s, buf, (size_t)n);
	}
	*len_r = s.len;
	*data_r = str_steal(&s);
	return 0;
}

/*
 * append --file PATH|-: reads the message (standard input for -) and puts
 * its bytes in the action's message parameter, which the action sends.
 * Returns 0, or 65 (EX_DATAERR) when the file is missing, unreadable, too
 * large or not a message.
 */
static int
load_input_file(struct cli *cli)
{
	const struct action_param *p, *file = NULL, *msg = NULL;
	struct action_error err = { 0 };
	const char *path;
	char *data, *name;
	size_t len;
	int ret;

	for (p = cli->entry->params; p->name != NULL; p++) {
		if (p->type == APT_FILE)
			file = p;
		else if (p->type == APT_MESSAGE)
			msg = p;
	}
	if (file == NULL || msg == NULL ||
	    (path = json_string_value(json_object_get(cli->params, file->name))) == NULL)
		return 0;
	name = xstrdup(strcmp(path, "-") == 0 ? "standard input" : path);
	if (strcmp(path, "-") == 0)
		ret = read_fd(STDIN_FILENO, CLI_MESSAGE_MAX, &data, &len);
	else
		ret = read_file(path, CLI_MESSAGE_MAX, &data, &len);
	if (ret < 0) {
		if (errno == EFBIG)
			fprintf(stderr, "imaphook: %s: larger than %d MiB\n", name,
			    CLI_MESSAGE_MAX / (1024 * 1024));
		else
			fprintf(stderr, "imaphook: %s: %s\n", name, strerror(errno));
		free(name);
		return EX_DATAERR_;
	}
	if (action_message_check(data, len, &err) < 0) {
		fprintf(stderr, "imaphook: %s: %s\n", name, err.msg);
		free(data);
		free(name);
		return EX_DATAERR_;
	}
	json_object_set_new(cli->params, msg->name, json_stringn_nocheck(data, len));
	json_object_del(cli->params, file->name);
	free(data);
	free(name);
	return 0;
}

/*
 * download --output FILE: a regular file is written under a temporary
 * name beside it and renamed into place only when the download succeeds;
 * anything else (a FIFO, /dev/stdout) is written directly. "-" is stdout.
 */
static int
open_output(struct cli *cli)
{
	struct stat sb;
	FILE *f = NULL;
	mode_t mask;
	int fd, saved;

	if (strcmp(cli->output, "-") == 0)
		return 0;
	if (stat(cli->output, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		f = fopen(cli->output, "wb");
	} else {
		cli->out_tmp = xasprintf("%s.tmp-XXXXXX", cli->output);
		fd = mkstemp(cli->out_tmp);
		if (fd < 0) {
			xfree(&cli->out_tmp);
		} else {
			mask = umask(0);
			umask(mask);
			if (fchmod(fd, 0666 & ~mask) < 0 || (f = fdopen(fd, "wb")) == NULL) {
				saved = errno;
				close(fd);
				unlink(cli->out_tmp);
				xfree(&cli->out_tmp);
				errno = saved;
			}
		}
	}
	if (f == NULL) {
		fprintf(stderr, "imaphook: %s: %s\n", cli->output, strerror(errno));
		return EX_CANTCREAT_;
	}
	cli->out = f;
	return 0;
}

/* Closes --output: into place when ret is 0, else removed. Returns ret,
 * or 74 (EX_IOERR) when the file could not be completed. */
static int
close_output(struct cli *cli, int ret)
{
	if (cli->out == stdout)
		return ret;
	if (fclose(cli->out) != 0 && ret == 0) {
		fprintf(stderr, "imaphook: %s: %s\n", cli->output, strerror(errno));
		ret = EX_IOERR_;
	}
	cli->out = stdout;
	if (cli->out_tmp == NULL)
		return ret;
	if (ret == 0 && rename(cli->out_tmp, cli->output) < 0) {
		fprintf(stderr, "imaphook: %s: %s\n", cli->output, strerror(errno));
		ret = EX_IOERR_;
	}
	if (ret != 0)
		unlink(cli->out_tmp);
	xfree(&cli->out_tmp);
	return ret;
}

static void
run_done(struct action_run *run, void *arg)
{
	struct cli *cli = arg;

	if (run->err.status == ACTION_OK) {
		if (run->result != NULL) {
			json_dumpf(run->result, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		}
		cli->exit_code = 0;
	} else {
		fprintf(stderr, "imaphook: %s\n", run->err.msg);
		cli->exit_code = action_exit_code(run->err.status);
	}
	if (cli->write_errno != 0) {
		if (run->err.status == ACTION_OK)
			fprintf(stderr, "imaphook: %s: %s\n", cli->output != NULL ?
			    cli->output : "standard output", strerror(cli->write_errno));
		cli->exit_code = EX_IOERR_;
	}
	imap_pool_release(cli->pool, cli->conn, true);
	cli->conn = NULL;
	/* LOGOUT and close: the loop ends when nothing is left */
	imap_pool_free(&cli->pool);
}

static void
lease_cb(struct imap_conn *conn, const struct imap_error *err, void *arg)
{
	struct cli *cli = arg;

	if (conn == NULL) {
		fprintf(stderr, "imaphook: %s\n", err->msg);
		cli->exit_code = action_exit_code(action_status_from_imap(err->kind));
		return;
	}
	cli->conn = conn;
	cli->run = action_run_new(cli->entry, cli->params, cli->seq);
	if (cli->entry->raw_output) {
		cli->run->sink.write = sink_write;
		cli->run->sink.arg = cli;
	}
	action_run_start(cli->run, conn, run_done, cli);
}

static const struct cfg_connection *
pick_connection(struct cli *cli)
{
	const struct config *cfg = cli->config;
	const struct cfg_connection *c;
	size_t i;

	if (cli->connection != NULL) {
		c = config_find_connection(cfg, cli->connection);
		if (c == NULL) {
			fprintf(stderr, "imaphook: no connection named \"%s\" in %s\n",
			    cli->connection, cfg->path);
			return NULL;
		}
		return c;
	}
	if (cfg->nconnections == 1)
		return &cfg->connections[0];
	if (cfg->nconnections == 0) {
		fprintf(stderr, "imaphook: %s defines no connection\n", cfg->path);
	} else {
		fprintf(stderr, "imaphook: %s defines %zu connections; choose one with "
		    "--connection:", cfg->path, cfg->nconnections);
		for (i = 0; i < cfg->nconnections; i++)
			fprintf(stderr, " %s", cfg->connections[i].name);
		fputc('\n', stderr);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct cli cli = { .exit_code = 1, .out = stdout };
	struct config_errors errs = { 0 };
	struct action_error aerr = { 0 };
	const struct cfg_connection *conn_cfg;
	struct imap_error ierr;
	int ret;
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	mime_init();
	log_init("imaphook");
	log_set_level(LOG_LEVEL_WARN);
	cli.params = json_object();
	ret = parse_args(&cli, argc, argv);
	if (ret != 0)
		goto out;
	if (cli.verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	if (action_params_check(cli.entry, cli.params, false, cli.seq, &aerr) < 0) {
		fprintf(stderr, "imaphook: %s\n", aerr.msg);
		ret = action_exit_code(aerr.status);
		goto out;
	}
	ret = load_input_file(&cli);
	if (ret != 0)
		goto out;
	if (config_load_cli(cli.config_path, cli.connection, &cli.config, &errs) < 0) {
		for (i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		config_errors_free(&errs);
		ret = EX_CONFIG_;
		goto out;
	}
	if (!cli.verbose)
		log_set_level(cli.config->log_level < LOG_LEVEL_WARN ?
		    cli.config->log_level : LOG_LEVEL_WARN);
	conn_cfg = pick_connection(&cli);
	if (conn_cfg == NULL) {
		ret = EX_USAGE_;       /* no or unknown --connection */
		if (cli.config->nconnections == 0)
			ret = EX_CONFIG_;
		goto out;
	}
	if (cli.output != NULL && (ret = open_output(&cli)) != 0)
		goto out;
	cli.base = event_base_new();
	cli.dns = imap_dns_new(cli.base);
	if (cli.base == NULL || cli.dns == NULL) {
		fprintf(stderr, "imaphook: cannot initialise the event loop\n");
		ret = 71;       /* EX_OSERR */
		goto out;
	}
	cli.pool = imap_pool_new(cli.base, cli.dns, conn_cfg, NULL, 1, 1, &ierr);
	if (cli.pool == NULL) {
		fprintf(stderr, "imaphook: %s\n", ierr.msg);
		ret = action_exit_code(action_status_from_imap(ierr.kind));
		goto out;
	}
	imap_pool_lease(cli.pool, lease_cb, &cli);
	event_base_dispatch(cli.base);
	ret = close_output(&cli, cli.exit_code);
	if (fflush(stdout) != 0 && ret == 0)
		ret = EX_IOERR_;
out:
	ret = close_output(&cli, ret);
	action_run_free(&cli.run);
	imap_pool_free(&cli.pool);
	if (cli.dns != NULL)
		evdns_base_free(cli.dns, 0);
	if (cli.base != NULL) {
		/* deferred frees still queued */
		imap_loop_finish(cli.base, 500);
		event_base_free(cli.base);
	}
	config_free(&cli.config);
	json_decref(cli.params);
	mime_shutdown();
	return ret;
}
