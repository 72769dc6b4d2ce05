/*
 * libFuzzer target for what the HTTP API does with a request body before
 * any IMAP is spoken (daemon/api.c, POST /v1/actions/ACTION): byte 0 picks
 * the action, byte 1 is "seq", the rest is the body, loaded as api.c does
 * (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL), "connection" and "seq"
 * removed, then action_params_check(). The same bytes also go through
 * action_message_check() (the "message" of append) and
 * action_mailbox_from_wire() (a mailbox name from a LIST answer).
 *
 * Checked on every input:
 * - action_params_check() returns 0, or -1 with status ACTION_ERR_USAGE
 *   (or ACTION_ERR_INPUT) and a non-empty message;
 * - a checked parameter set starts a run that can be freed (no IMAP);
 * - action_message_check() returns 0 or -1 with ACTION_ERR_INPUT;
 * - action_mailbox_from_wire() returns valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "action.h"
#include "jsonutil.h"
#include "mime.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static size_t nactions;
	static bool initialized;
	const struct action_entry *entry;
	struct action_error err;
	struct action_run *run;
	json_error_t jerr;
	json_t *params;
	char *name;
	bool seq;

	if (!initialized) {
		mime_init();
		while (action_table[nactions] != NULL)
			nactions++;
		initialized = true;
	}
	if (size < 2)
		return 0;
	entry = action_table[data[0] % nactions];
	seq = (data[1] & 1) != 0;
	data += 2;
	size -= 2;

	memset(&err, 0, sizeof(err));
	if (action_message_check((const char *)data, size, &err) < 0 &&
	    (err.status != ACTION_ERR_INPUT || err.msg[0] == '\0'))
		abort();

	name = action_mailbox_from_wire((const char *)data, size);
	if (name == NULL || !utf8_valid(name, strlen(name)))
		abort();
	free(name);

	params = size == 0 ? json_object() :
	    json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (params == NULL)
		return 0;
	if (!json_is_object(params)) {
		json_decref(params);
		return 0;
	}
	json_object_del(params, "connection");
	json_object_del(params, "seq");
	memset(&err, 0, sizeof(err));
	if (action_params_check(entry, params, true, seq, &err) < 0) {
		if ((err.status != ACTION_ERR_USAGE && err.status != ACTION_ERR_INPUT) ||
		    err.msg[0] == '\0' || memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
			abort();
	} else {
		run = action_run_new(entry, params, seq);
		action_run_free(&run);
		if (run != NULL)
			abort();
	}
	json_decref(params);
	return 0;
}
