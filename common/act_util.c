/* Helpers the actions share: UID lists, SEARCH answers, FETCH items,
 * flag lists; see action.h. */
#include "action.h"

#include <stdio.h>
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
	struct imap_seqset_iter it;
	uint64_t count;
	uint32_t v;

	if (imap_seqset_parse(s, len, &set) < 0)
		return 0;       /* not a set: ignored */
	count = imap_seqset_count(&set);
	if (count > ACTION_UIDS_MAX || u->n + count > ACTION_UIDS_MAX) {
		imap_seqset_free(&set);
		return -1;
	}
	/* one walk: "1,3,5,..." of an ESEARCH ALL is normal after expunges */
	imap_seqset_iter_init(&it, &set);
	while (imap_seqset_iter_next(&it, &v)) {
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

int
action_copyuid_map(json_t *map, const struct imap_resp *resp)
{
	struct imap_seqset src, dst;
	struct imap_seqset_iter si, di;
	uint32_t validity, s, d;
	char key[16];
	int ret = 1;

	if (resp == NULL || !imap_resp_copyuid(resp, &validity, &src, &dst))
		return 0;
	if (imap_seqset_count(&src) + json_object_size(map) > ACTION_UIDS_MAX) {
		ret = -1;
		goto out;
	}
	/* two cursors, one walk: pairing by imap_seqset_nth would walk the
	 * ranges from the start for every member */
	imap_seqset_iter_init(&si, &src);
	imap_seqset_iter_init(&di, &dst);
	while (imap_seqset_iter_next(&si, &s) && imap_seqset_iter_next(&di, &d)) {
		snprintf(key, sizeof(key), "%u", s);
		json_object_set_new(map, key, json_integer(d));
	}
out:
	imap_seqset_free(&src);
	imap_seqset_free(&dst);
	return ret;
}

/* "*" of UID ranges */

bool
action_range_needs_max(const struct action_run *run)
{
	const char *range = action_param_str(run, "range");

	return range != NULL && !run->seq && strchr(range, '*') != NULL;
}

bool
action_ask_max_uid(struct action_run *run)
{
	if (!action_range_needs_max(run))
		return false;
	action_send_text(run, "UID FETCH * (UID)");
	return true;
}

bool
action_max_uid_done(struct action_run *run, const struct imap_reply *reply)
{
	if (reply->status == IMAP_STATUS_NONE) {
		action_fail_reply(run, reply, "UID FETCH");
		return false;
	}
	return true;
}

void
action_max_uid_untagged(const struct imap_resp *resp, uint32_t *max_r)
{
	const struct imap_arg *a = action_fetch_item(resp, "UID", false, NULL);
	uint32_t uid;

	if (a != NULL && imap_arg_get_u32(a, &uid) == 0 && uid > *max_r)
		*max_r = uid;
}

/* One end of a range element: "*" (*star_r) or a number. */
static int
range_end(const char *s, size_t len, bool *star_r, uint32_t *v_r)
{
	*star_r = len == 1 && s[0] == '*';
	if (*star_r)
		return 0;
	return parse_u32_n(s, len, v_r) < 0 || *v_r == 0 ? -1 : 0;
}

static int
seqrange_cmp(const void *a, const void *b)
{
	const struct imap_seqrange *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

bool
action_range_resolve(const char *range, uint32_t max, struct str *out)
{
	struct imap_seqrange *v;
	const char *p = range, *end, *colon;
	size_t n = 1, count = 0, i, j;
	bool star_a, star_b;
	uint32_t a = 0, b = 0;

	for (end = range; *end != '\0'; end++)
		n += *end == ',';
	v = xreallocarray(NULL, n, sizeof(*v));
	for (;;) {
		end = p + strcspn(p, ",");
		colon = memchr(p, ':', (size_t)(end - p));
		if (colon == NULL) {
			if (range_end(p, (size_t)(end - p), &star_a, &a) == 0) {
				star_b = star_a;
				b = a;
			} else {
				star_a = star_b = false;
				a = b = 0;
			}
		} else if (range_end(p, (size_t)(colon - p), &star_a, &a) < 0 ||
		    range_end(colon + 1, (size_t)(end - colon - 1), &star_b, &b) < 0) {
			star_a = star_b = false;
			a = b = 0;
		}
		if (star_a && star_b) {
			a = b = max;
		} else if (star_a || star_b) {
			/* n:* is n..max, and nothing when n is beyond max */
			a = star_a ? b : a;
			b = a <= max ? max : 0;
		} else if (a > b) {
			uint32_t t = a;

			a = b;
			b = t;
		}
		if (a != 0 && b != 0) {
			v[count].lo = a;
			v[count].hi = b;
			count++;
		}
		if (*end == '\0')
			break;
		p = end + 1;
	}
	if (count == 0) {
		free(v);
		return false;
	}
	qsort(v, count, sizeof(*v), seqrange_cmp);
	for (i = 1, j = 0; i < count; i++) {
		if (v[j].hi == UINT32_MAX || v[i].lo <= v[j].hi + 1) {
			if (v[i].hi > v[j].hi)
				v[j].hi = v[i].hi;
		} else {
			v[++j] = v[i];
		}
	}
	for (i = 0; i <= j; i++) {
		if (i > 0)
			str_append_c(out, ',');
		if (v[i].lo == v[i].hi)
			str_printf(out, "%u", v[i].lo);
		else
			str_printf(out, "%u:%u", v[i].lo, v[i].hi);
	}
	free(v);
	return true;
}

char *
action_range_set(const struct action_run *run, uint32_t max)
{
	const char *range = action_param_str(run, "range");
	struct str s;

	if (range == NULL)
		return NULL;
	if (!action_range_needs_max(run))
		return xstrdup(range);
	str_init(&s);
	if (!action_range_resolve(range, max, &s)) {
		str_free(&s);
		return NULL;
	}
	return str_steal(&s);
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
