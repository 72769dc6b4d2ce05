/* test-connection: log in (done by the pool) and prove a round trip. */
#include "action.h"

#include "jsonutil.h"
#include "util.h"

static void
test_connection_start(struct action_run *run)
{
	action_send_text(run, "NOOP");
}

static void
test_connection_step(struct action_run *run, const struct imap_reply *reply)
{
	const char *const *caps;
	json_t *a;

	if (reply->status != IMAP_STATUS_OK) {
		action_fail_reply(run, reply, "NOOP");
		return;
	}
	a = json_array();
	for (caps = imap_conn_caps(run->conn); *caps != NULL; caps++)
		json_array_append_new(a, json_str(*caps));
	action_finish(run, json_pack("{s:b, s:o}", "ok", 1, "capabilities", a));
}

static const struct action_param test_connection_params[] = {
	{ NULL }
};

const struct action_entry act_test_connection_entry = {
	.name = "test-connection",
	.summary = "log in and list the server's capabilities",
	.params = test_connection_params,
	.start = test_connection_start,
	.step = test_connection_step,
};
