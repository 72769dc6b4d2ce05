/* Helpers the actions share: UID lists, SEARCH answers, FETCH items,
 * flag lists; see action.h. */
#include "action.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* UID lists */

void
action_uids_add(struct action_uids *u, uint32_t v)
{
	if (u->n == u->cap) {
		u->cap = u->cap == 0 ? 64 : u->cap * 2;
		u->v = xreallocarray(u->v, u->cap, sizeof(*u->v));
	}
	u->v[u->n++] = v;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
action_uids_sort(struct action_uids *u)
{
	size_t i, j;

	if (u->n == 0)
		return;
	qsort(u->v, u->n, sizeof(*u->v), uid_cmp);
	for (i = 1, j = 1; i < u->n; i++)
		if (u->v[i] != u->v[j - 1])
			u->v[j++] = u->v[i];
	u->n = j;
}

void
action_uids_free(struct action_uids *u)
{
	free(u->v);
	u->v = NULL;
	u->n = u->cap = 0;
}

void
action_uids_to_set(const struct action_uids *u, size_t from, size_t to, struct str *out)
{
	size_t i = from, j;

	while (i < to) {
		for (j = i; j + 1 < to && u->v[j + 1] == u->v[j] + 1; j++)
			;
		if (i > from)
			str_append_c(out, ',');
		if (j > i)
			str_printf(out, "%u:%u", u->v[i], u->v[j]);
		else
			str_printf(out, "%u", u->v[i]);
		i = j + 1;
	}
}

static int
uids_add_set(struct action_uids *u, const char *s, size_t len)
{
	struct imap_seqset set;
	uint64_t count, k;

	if (imap_seqset_parse(s, len, &set) < 0)
		return 0;       /* not a set: ignored */
	count = imap_seqset_count(&set);
	if (count > ACTION_UIDS_MAX || u->n + count > ACTION_UIDS_MAX) {
		imap_seqset_free(&set);
		return -1;
	}
	for (k = 0; k < count; k++) {
		uint32_t v = imap_seqset_nth(&set, k);

		if (v != 0 && v != UINT32_MAX)
			action_uids_add(u, v);
	}
	imap_seqset_free(&set);
	return 0;
}

int
action_uids_from_search(struct action_uids *u, const struct imap_resp *resp)
{
	uint32_t i, v;

	if (resp->kind != IMAP_RESP_UNTAGGED || resp->name == NULL)
		return 0;
	if (strcmp(resp->name, "SEARCH") == 0) {
		for (i = 0; i < resp->argc; i++) {
			/* (MODSEQ n) and anything else that is not a number */
			if (imap_arg_get_u32(&resp->args[i], &v) < 0 || v == 0)
				continue;
			if (u->n >= ACTION_UIDS_MAX)
				return -1;
			action_uids_add(u, v);
		}
		return 1;
	}
	if (strcmp(resp->name, "ESEARCH") != 0)
		return 0;
	/* ESEARCH [(TAG "x")] [UID] name value... */
	for (i = 0; i < resp->argc; i++) {
		if (resp->args[i].type == IMAP_ARG_LIST || imap_arg_is_atom(&resp->args[i], "UID"))
			continue;
		if (i + 1 >= resp->argc)
			break;
		if (imap_arg_is_atom(&resp->args[i], "ALL") &&
		    resp->args[i + 1].type == IMAP_ARG_ATOM &&
		    uids_add_set(u, resp->args[i + 1].v.str, resp->args[i + 1].len) < 0)
			return -1;
		i++;
	}
	return 1;
}

const struct imap_arg *
action_fetch_item(const struct imap_resp *resp, const char *name, bool prefix,
    const char **name_r)
{
	const struct imap_arg *items;
	uint32_t n, i;
	size_t nlen = strlen(name);

	if (resp->kind != IMAP_RESP_UNTAGGED || resp->name == NULL ||
	    strcmp(resp->name, "FETCH") != 0 || !resp->has_number || resp->argc < 1 ||
	    !imap_arg_get_list(&resp->args[0], &items, &n))
		return NULL;
	for (i = 0; i + 1 < n; i += 2) {
		const struct imap_arg *a = &items[i];

		if (a->type != IMAP_ARG_ATOM)
			continue;
		if (prefix ? (a->len >= nlen && strncasecmp(a->v.str, name, nlen) == 0) :
		    (a->len == nlen && strcasecmp(a->v.str, name) == 0)) {
			if (name_r != NULL)
				*name_r = a->v.str;
			return &items[i + 1];
		}
	}
	return NULL;
}

void
action_cmd_flags(struct imap_cmd *cmd, json_t *flags)
{
	size_t i;

	imap_cmd_add(cmd, "(");
	for (i = 0; i < json_array_size(flags); i++) {
		/* checked by the parameter table: \Word or an atom */
		if (i > 0)
			imap_cmd_add(cmd, " ");
		imap_cmd_add(cmd, json_string_value(json_array_get(flags, i)));
	}
	imap_cmd_add(cmd, ")");
}
