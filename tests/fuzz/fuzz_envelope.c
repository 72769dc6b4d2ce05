/*
 * libFuzzer target for what the trigger makes of a server's FETCH answer:
 * the input is a server stream, parsed with imap_parser (default limits);
 * every list found at any depth goes through envelope_to_json() (as the
 * ENVELOPE of a FETCH answer does), every string through
 * imap_datetime_to_iso() (as INTERNALDATE does). Checked on every input:
 * - envelope_to_json() returns an object with exactly the ten SPEC keys,
 *   string fields null or valid UTF-8, address fields arrays of
 *   {"name": null or UTF-8, "address": UTF-8}, never both null ("address"
 *   is null for a structure whose mailbox is NIL but whose host is not,
 *   such as ("Bob" NIL NIL "example.com"): corpus/envelope/address-null,
 *   reported as a question to the envelope module);
 * - the object serialises;
 * - imap_datetime_to_iso() gives 0 and a 20-byte "YYYY-MM-DDTHH:MM:SSZ",
 *   or -1 and "".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "imap_parser.h"
#include "jsonutil.h"
#include "mime.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_string(json_t *s)
{
	if (json_is_null(s))
		return;
	if (!json_is_string(s) || !utf8_valid(json_string_value(s), json_string_length(s)))
		abort();
}

static void
check_addresses(json_t *a)
{
	json_t *e;
	size_t i;

	if (!json_is_array(a))
		abort();
	json_array_foreach(a, i, e) {
		if (!json_is_object(e) || json_object_size(e) != 2)
			abort();
		check_string(json_object_get(e, "name"));
		check_string(json_object_get(e, "address"));
		if (json_is_null(json_object_get(e, "name")) &&
		    json_is_null(json_object_get(e, "address")))
			abort();
	}
}

static void
check_envelope(const struct imap_arg *arg)
{
	static const char *const strings[] = { "date", "subject", "messageId", "inReplyTo" };
	static const char *const lists[] = { "from", "sender", "replyTo", "to", "cc", "bcc" };
	json_t *o = envelope_to_json(arg);
	char *dump;
	size_t i;

	if (!json_is_object(o) || json_object_size(o) != 10)
		abort();
	for (i = 0; i < N_ELEMENTS(strings); i++)
		check_string(json_object_get(o, strings[i]));
	if (json_is_string(json_object_get(o, "date")) &&
	    strlen(json_string_value(json_object_get(o, "date"))) != 20)
		abort();
	for (i = 0; i < N_ELEMENTS(lists); i++)
		check_addresses(json_object_get(o, lists[i]));
	if ((dump = json_dumps(o, JSON_COMPACT)) == NULL)
		abort();
	free(dump);
	json_decref(o);
}

static void
check_date(const char *s)
{
	char buf[21];

	memset(buf, 'x', sizeof(buf));
	if (imap_datetime_to_iso(s, buf) == 0) {
		if (strlen(buf) != 20 || buf[4] != '-' || buf[10] != 'T' || buf[19] != 'Z')
			abort();
	} else if (buf[0] != '\0') {
		abort();
	}
}

static void
walk(const struct imap_arg *args, uint32_t n, unsigned depth)
{
	const struct imap_arg *list;
	uint32_t i, count;

	for (i = 0; i < n; i++) {
		if (imap_arg_get_list(&args[i], &list, &count)) {
			check_envelope(&args[i]);
			if (depth < 64)
				walk(list, count, depth + 1);
		} else if (args[i].type != IMAP_ARG_NIL) {
			check_date(args[i].v.str);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialized;
	struct imap_parser *p;
	const struct imap_resp *resp;
	size_t off = 0, consumed;

	if (!initialized) {
		mime_init();
		initialized = true;
	}
	check_envelope(NULL);
	p = imap_parser_new(NULL);
	while (off < size) {
		int ret = imap_parser_feed(p, data + off, size - off, &consumed, &resp);

		off += consumed;
		if (ret != 1)
			break;
		walk(resp->args, resp->argc, 0);
		if (resp->code != NULL)
			walk(resp->code_args, resp->code_argc, 0);
	}
	imap_parser_free(&p);
	return 0;
}
