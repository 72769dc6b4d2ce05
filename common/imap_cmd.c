/* imap_cmd: building IMAP commands for imap_conn; see imap_conn.h */
#include "imap_conn_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_utf7.h"
#include "log.h"

struct imap_cmd *
imap_cmd_new(struct imap_conn *conn)
{
	struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

	cmd->conn = conn;
	cmd->segs = xcalloc(1, sizeof(*cmd->segs));
	cmd->nsegs = 1;
	str_init(&cmd->segs[0].data);
	return cmd;
}

static struct str *
cmd_cur(struct imap_cmd *cmd)
{
	return &cmd->segs[cmd->nsegs - 1].data;
}

void
imap_cmd_break(struct imap_cmd *cmd)
{
	cmd->segs[cmd->nsegs - 1].wait_cont = true;
	cmd->segs = xreallocarray(cmd->segs, cmd->nsegs + 1, sizeof(*cmd->segs));
	cmd->nsegs++;
	cmd->segs[cmd->nsegs - 1].wait_cont = false;
	str_init(cmd_cur(cmd));
}

void
imap_cmd_add(struct imap_cmd *cmd, const char *text)
{
	str_append(cmd_cur(cmd), text);
}

void
imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_vprintf(cmd_cur(cmd), fmt, ap);
	va_end(ap);
}

void
imap_cmd_literal(struct imap_cmd *cmd, const void *data, size_t len)
{
	bool plus = imap_conn_has_cap(cmd->conn, "LITERAL+");

	if (plus) {
		str_printf(cmd_cur(cmd), "{%zu+}\r\n", len);
		str_append_n(cmd_cur(cmd), data, len);
		return;
	}
	str_printf(cmd_cur(cmd), "{%zu}\r\n", len);
	imap_cmd_break(cmd);
	str_append_n(cmd_cur(cmd), data, len);
}

static bool
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* Longer strings go as literals, whatever they hold: the command line
 * itself stays short (RFC 7162 section 4 asks clients to keep it within
 * 8192 octets). */
#define CMD_INLINE_MAX 1024

void
imap_cmd_astring(struct imap_cmd *cmd, const char *s, size_t len)
{
	bool atom = len > 0 && len <= CMD_INLINE_MAX, quotable = len <= CMD_INLINE_MAX;
	size_t i;

	for (i = 0; i < len && quotable; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_atom_char(c))
			atom = false;
		if (c < 0x20 || c >= 0x7f)
			quotable = false;
	}
	if (atom && !(len == 3 && strncasecmp(s, "NIL", 3) == 0)) {
		str_append_n(cmd_cur(cmd), s, len);
	} else if (quotable) {
		str_append_c(cmd_cur(cmd), '"');
		for (i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				str_append_c(cmd_cur(cmd), '\\');
			str_append_c(cmd_cur(cmd), s[i]);
		}
		str_append_c(cmd_cur(cmd), '"');
	} else {
		imap_cmd_literal(cmd, s, len);
	}
}

int
imap_cmd_mailbox(struct imap_cmd *cmd, const char *utf8)
{
	char *wire;

	if (strcasecmp(utf8, "INBOX") == 0) {
		imap_cmd_add(cmd, "INBOX");
		return 0;
	}
	wire = imap_utf8_to_utf7(utf8);
	if (wire == NULL)
		return -1;
	imap_cmd_astring(cmd, wire, strlen(wire));
	free(wire);
	return 0;
}

void
imap_cmd_secret(struct imap_cmd *cmd)
{
	cmd->secret = true;
}

void
imap_cmd_free(struct imap_cmd *cmd)
{
	size_t i;

	for (i = 0; i < cmd->nsegs; i++)
		str_free(&cmd->segs[i].data);
	free(cmd->segs);
	free(cmd);
}

void
imap_cmd_discard(struct imap_cmd **cmdp)
{
	if (*cmdp != NULL)
		imap_cmd_free(*cmdp);
	*cmdp = NULL;
}

/* The verb (and for non-secret commands the first line) for debug logs. */
void
imap_cmd_log(struct imap_conn *conn, const struct imap_cmd *cmd)
{
	const struct str *s = &cmd->segs[0].data;
	size_t n;

	if (log_get_level() < LOG_LEVEL_DEBUG)
		return;
	n = strcspn(s->data != NULL ? s->data : "", cmd->secret ? " \r" : "\r");
	if (n > 200)
		n = 200;
	log_debug("%s: C: %s %.*s%s", conn->name, cmd->tag, (int)n,
	    s->data != NULL ? s->data : "", cmd->secret ? " <secret>" : "");
}
