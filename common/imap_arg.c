/*
 * imap_arg: helpers on parsed IMAP arguments and response codes, and IMAP
 * sequence sets; declared in imap_parser.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"
#include "util.h"

/*
 * Argument and response-code helpers.
 */

bool
imap_arg_is_atom(const struct imap_arg *arg, const char *ci_value)
{
	return arg != NULL && (arg->type == IMAP_ARG_ATOM ||
	    arg->type == IMAP_ARG_NIL) && strcasecmp(arg->v.str, ci_value) == 0;
}

/* The atom NIL is a valid astring: it gives its text ("NIL"). */
bool
imap_arg_get_astring(const struct imap_arg *arg, const char **str_r,
    size_t *len_r)
{
	if (arg == NULL || arg->type == IMAP_ARG_LIST)
		return false;
	*str_r = arg->v.str;
	*len_r = arg->len;
	return true;
}

bool
imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r,
    size_t *len_r)
{
	if (arg != NULL && arg->type == IMAP_ARG_NIL) {
		*str_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_arg_get_astring(arg, str_r, len_r);
}

int
imap_arg_get_u32(const struct imap_arg *arg, uint32_t *v_r)
{
	if (arg == NULL || arg->type != IMAP_ARG_ATOM)
		return -1;
	return parse_u32_n(arg->v.str, arg->len, v_r);
}

int
imap_arg_get_u64(const struct imap_arg *arg, uint64_t *v_r)
{
	if (arg == NULL || arg->type != IMAP_ARG_ATOM)
		return -1;
	return parse_u64_n(arg->v.str, arg->len, v_r);
}

bool
imap_arg_get_list(const struct imap_arg *arg, const struct imap_arg **list_r,
    uint32_t *count_r)
{
	if (arg == NULL || arg->type != IMAP_ARG_LIST)
		return false;
	*list_r = arg->v.list;
	*count_r = arg->len;
	return true;
}

bool
imap_resp_code_is(const struct imap_resp *resp, const char *code)
{
	return resp->code != NULL && strcasecmp(resp->code, code) == 0;
}

bool
imap_resp_code_u32(const struct imap_resp *resp, const char *code,
    uint32_t *v_r)
{
	return imap_resp_code_is(resp, code) && resp->code_argc == 1 &&
	    imap_arg_get_u32(&resp->code_args[0], v_r) == 0;
}

bool
imap_resp_code_u64(const struct imap_resp *resp, const char *code,
    uint64_t *v_r)
{
	return imap_resp_code_is(resp, code) && resp->code_argc == 1 &&
	    imap_arg_get_u64(&resp->code_args[0], v_r) == 0;
}

/*
 * Sequence sets.
 */

/* A set member: a non-zero number or "*". */
static int
seqset_number(const char *s, size_t len, uint32_t *v_r)
{
	if (len == 1 && s[0] == '*') {
		*v_r = UINT32_MAX;
		return 0;
	}
	if (parse_u32_n(s, len, v_r) < 0 || *v_r == 0)
		return -1;
	return 0;
}

int
imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set_r)
{
	struct imap_seqrange *ranges, *r;
	size_t i, n = 1, start, colon, count = 0;
	uint32_t t;

	set_r->ranges = NULL;
	set_r->count = 0;
	for (i = 0; i < len; i++)
		n += s[i] == ',';
	ranges = xreallocarray(NULL, n, sizeof(*ranges));
	for (start = 0; start <= len; start = i + 1) {
		colon = SIZE_MAX;
		for (i = start; i < len && s[i] != ','; i++) {
			if (s[i] == ':' && colon == SIZE_MAX)
				colon = i;
		}
		r = &ranges[count++];
		if (colon == SIZE_MAX) {
			if (seqset_number(s + start, i - start, &r->lo) < 0)
				goto fail;
			r->hi = r->lo;
		} else if (seqset_number(s + start, colon - start, &r->lo) < 0 ||
		    seqset_number(s + colon + 1, i - colon - 1, &r->hi) < 0)
			goto fail;
		if (r->lo > r->hi) {
			t = r->lo;
			r->lo = r->hi;
			r->hi = t;
		}
	}
	set_r->ranges = ranges;
	set_r->count = count;
	return 0;
fail:
	free(ranges);
	return -1;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	xfree(&set->ranges);
	set->count = 0;
}

uint64_t
imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < set->count; i++)
		n += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
	return n;
}

uint32_t
imap_seqset_nth(const struct imap_seqset *set, uint64_t n)
{
	uint64_t span;
	size_t i;

	for (i = 0; i < set->count; i++) {
		span = (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
		if (n < span)
			return set->ranges[i].lo + (uint32_t)n;
		n -= span;
	}
	return 0;
}

void
imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set)
{
	it->set = set;
	it->range = 0;
	it->next = set->count > 0 ? set->ranges[0].lo : 0;
}

bool
imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *v_r)
{
	const struct imap_seqset *set = it->set;

	while (it->range < set->count) {
		if (it->next <= set->ranges[it->range].hi) {
			*v_r = (uint32_t)it->next++;
			return true;
		}
		if (++it->range < set->count)
			it->next = set->ranges[it->range].lo;
	}
	return false;
}

/* UIDVALIDITY and UIDs are non-zero numbers. */
static bool
code_nz_u32(const struct imap_arg *arg, uint32_t *v_r)
{
	return imap_arg_get_u32(arg, v_r) == 0 && *v_r != 0;
}

bool
imap_resp_appenduid(const struct imap_resp *resp, uint32_t *uidvalidity_r,
    uint32_t *uid_r)
{
	return imap_resp_code_is(resp, "APPENDUID") && resp->code_argc == 2 &&
	    code_nz_u32(&resp->code_args[0], uidvalidity_r) &&
	    code_nz_u32(&resp->code_args[1], uid_r);
}

bool
imap_resp_copyuid(const struct imap_resp *resp, uint32_t *uidvalidity_r,
    struct imap_seqset *src_r, struct imap_seqset *dst_r)
{
	const struct imap_arg *a = resp->code_args;

	if (!imap_resp_code_is(resp, "COPYUID") || resp->code_argc != 3 ||
	    !code_nz_u32(&a[0], uidvalidity_r) || a[1].type != IMAP_ARG_ATOM ||
	    a[2].type != IMAP_ARG_ATOM)
		return false;
	if (imap_seqset_parse(a[1].v.str, a[1].len, src_r) < 0)
		return false;
	if (imap_seqset_parse(a[2].v.str, a[2].len, dst_r) < 0) {
		imap_seqset_free(src_r);
		return false;
	}
	if (imap_seqset_count(src_r) != imap_seqset_count(dst_r)) {
		imap_seqset_free(src_r);
		imap_seqset_free(dst_r);
		return false;
	}
	return true;
}
