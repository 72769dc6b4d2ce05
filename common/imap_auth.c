/* imap_auth: logging in (LOGIN, AUTHENTICATE PLAIN, XOAUTH2, OAUTHBEARER)
 * for imap_conn */
#include "imap_conn_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "oauth2.h"
#include "util.h"

/* AUTHENTICATE mech with its initial response (after "+" without SASL-IR).
 * cont_reply answers an error challenge (the server then says NO). */
static void
conn_authenticate(struct imap_conn *conn, const char *mech, const char *ir,
    const char *cont_reply)
{
	struct imap_cmd *cmd = imap_cmd_new(conn);

	imap_cmd_secret(cmd);
	if (imap_conn_has_cap(conn, "SASL-IR")) {
		imap_cmd_addf(cmd, "AUTHENTICATE %s %s", mech, ir);
	} else {
		imap_cmd_addf(cmd, "AUTHENTICATE %s\r\n", mech);
		imap_cmd_break(cmd);
		imap_cmd_add(cmd, ir);
	}
	cmd->cont_reply = cont_reply;
	imap_conn_send_internal(cmd);
}

void
imap_conn_start_auth(struct imap_conn *conn)
{
	const struct cfg_connection *cfg = conn->cfg;
	struct imap_cmd *cmd;
	struct imap_error err;
	char *ir;

	if (conn->preauth) {
		imap_conn_set_state(conn, IMAP_CONN_CAPABILITY_AUTH);
		return;
	}
	if (cfg->auth == CFG_AUTH_XOAUTH2) {
		if (conn->token == NULL) {
			imap_error_set(&err, IMAP_ERR_AUTH, "%s: no OAuth2 token", conn->name);
			imap_conn_fail(conn, &err);
		} else if (imap_conn_has_cap(conn, "AUTH=XOAUTH2")) {
			ir = oauth2_xoauth2_response(cfg->username, conn->token);
			conn_authenticate(conn, "XOAUTH2", ir, "\r\n");
			explicit_bzero(ir, strlen(ir));
			free(ir);
		} else if (imap_conn_has_cap(conn, "AUTH=OAUTHBEARER")) {
			ir = oauth2_oauthbearer_response(cfg->username, cfg->host, cfg->port,
			    conn->token);
			conn_authenticate(conn, "OAUTHBEARER", ir, "AQ==\r\n");
			explicit_bzero(ir, strlen(ir));
			free(ir);
		} else {
			imap_error_set(&err, IMAP_ERR_AUTH, "%s: auth = \"xoauth2\" but the "
			    "server offers neither AUTH=XOAUTH2 nor AUTH=OAUTHBEARER", conn->name);
			imap_conn_fail(conn, &err);
		}
		return;
	}
	if (imap_conn_has_cap(conn, "AUTH=PLAIN")) {
		struct str plain;

		/* authzid NUL authcid NUL password */
		str_init(&plain);
		str_append_c(&plain, '\0');
		str_append(&plain, cfg->username);
		str_append_c(&plain, '\0');
		str_append(&plain, cfg->password != NULL ? cfg->password : "");
		ir = base64_encode(plain.data, plain.len);
		explicit_bzero(plain.data, plain.len);
		str_free(&plain);
		conn_authenticate(conn, "PLAIN", ir, "*\r\n");
		explicit_bzero(ir, strlen(ir));
		free(ir);
	} else if (imap_conn_has_cap(conn, "LOGINDISABLED")) {
		imap_error_set(&err, IMAP_ERR_AUTH, "%s: the server disables LOGIN and "
		    "offers no AUTH=PLAIN%s", conn->name,
		    conn->ssl == NULL ? " (try secure = true or starttls = true)" : "");
		imap_conn_fail(conn, &err);
	} else {
		const char *pw = cfg->password != NULL ? cfg->password : "";

		cmd = imap_cmd_new(conn);
		imap_cmd_secret(cmd);
		imap_cmd_add(cmd, "LOGIN ");
		imap_cmd_astring(cmd, cfg->username, strlen(cfg->username));
		imap_cmd_add(cmd, " ");
		imap_cmd_astring(cmd, pw, strlen(pw));
		imap_conn_send_internal(cmd);
	}
}
