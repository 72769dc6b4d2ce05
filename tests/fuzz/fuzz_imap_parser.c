/*
 * libFuzzer target for imap_parser.
 *
 * Input layout: byte 0 = flags (bit 0: tiny limits, so that every limit is
 * reachable), bytes 1..8 = chunk sizes (0 = all that is left), then the
 * server stream. The stream is parsed twice, in those chunks and all at
 * once; both runs must produce the same responses and the same error,
 * and no input may reach an "internal error".
 * Every argument and every helper is exercised on each response, the
 * NAMESPACE parser (imap_namespace) included.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_namespace.h"
#include "imap_parser.h"
#include "util.h"

#define HDR_LEN 9

/* FNV-1a over everything a response says. */
static void
mix(uint64_t *h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		*h ^= p[i];
		*h *= 1099511628211ULL;
	}
}

static void
mix_u64(uint64_t *h, uint64_t v)
{
	mix(h, &v, sizeof(v));
}

static void
touch_seqset(uint64_t *h, const char *s, size_t len)
{
	struct imap_seqset set;
	struct imap_seqset_iter it;
	uint64_t k;
	uint32_t v;

	if (imap_seqset_parse(s, len, &set) < 0)
		return;
	mix_u64(h, imap_seqset_count(&set));
	mix_u64(h, imap_seqset_nth(&set, 0));
	mix_u64(h, imap_seqset_nth(&set, imap_seqset_count(&set) - 1));
	mix_u64(h, imap_seqset_nth(&set, imap_seqset_count(&set)));
	/* the iterator walks in the order of nth ("1:*" has 2^32 members:
	 * only the first few) */
	imap_seqset_iter_init(&it, &set);
	for (k = 0; k < 64 && imap_seqset_iter_next(&it, &v); k++)
		if (v != imap_seqset_nth(&set, k))
			abort();
	if (k < 64 && k != imap_seqset_count(&set))
		abort();
	imap_seqset_free(&set);
}

static void
touch_args(uint64_t *h, const struct imap_arg *args, uint32_t count,
    unsigned depth)
{
	const struct imap_arg *list;
	const char *s;
	uint32_t i, n, u32;
	uint64_t u64;
	size_t len;

	for (i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];

		mix_u64(h, a->type);
		mix_u64(h, a->len);
		mix_u64(h, a->literal8);
		if (imap_arg_get_list(a, &list, &n)) {
			if (n != a->len || depth > 10000)
				abort();
			touch_args(h, list, n, depth + 1);
			continue;
		}
		if (a->v.str == NULL || a->v.str[a->len] != '\0')
			abort();
		mix(h, a->v.str, a->len);
		if (imap_arg_get_astring(a, &s, &len) && len != a->len)
			abort();
		if (imap_arg_get_nstring(a, &s, &len) &&
		    (s == NULL) != (a->type == IMAP_ARG_NIL))
			abort();
		if (imap_arg_get_u32(a, &u32) == 0)
			mix_u64(h, u32);
		if (imap_arg_get_u64(a, &u64) == 0)
			mix_u64(h, u64);
		mix_u64(h, imap_arg_is_atom(a, "NIL"));
		if (a->type == IMAP_ARG_ATOM)
			touch_seqset(h, a->v.str, a->len);
	}
}

/* Any response's arguments as a NAMESPACE answer; every prefix found is
 * a match for itself. */
static void
touch_namespace(uint64_t *h, const struct imap_resp *r)
{
	struct imap_namespaces *nss = imap_namespace_parse(r->args, r->argc);
	size_t i;

	if (nss == NULL)
		return;
	mix_u64(h, nss->count);
	for (i = 0; i < nss->count; i++) {
		const struct imap_namespace *ns = &nss->ns[i];

		if (ns->kind > IMAP_NS_SHARED)
			abort();
		mix(h, ns->prefix, strlen(ns->prefix) + 1);
		mix_u64(h, imap_namespace_kind(nss, ns->prefix));
	}
	imap_namespace_free(&nss);
}

static void
touch_resp(uint64_t *h, const struct imap_resp *r)
{
	struct imap_seqset src, dst;
	uint32_t u32, uid;
	uint64_t u64;

	mix_u64(h, r->kind);
	mix_u64(h, r->status);
	mix_u64(h, r->has_number ? (uint64_t)r->number + 1 : 0);
	if (r->text == NULL || (r->kind == IMAP_RESP_TAGGED) != (r->tag != NULL))
		abort();
	mix(h, r->text, strlen(r->text) + 1);
	if (r->tag != NULL)
		mix(h, r->tag, strlen(r->tag) + 1);
	if (r->name != NULL)
		mix(h, r->name, strlen(r->name) + 1);
	if (r->code != NULL) {
		mix(h, r->code, strlen(r->code) + 1);
		touch_args(h, r->code_args, r->code_argc, 0);
	}
	touch_args(h, r->args, r->argc, 0);
	touch_namespace(h, r);
	if (imap_resp_code_u32(r, r->code != NULL ? r->code : "", &u32))
		mix_u64(h, u32);
	if (imap_resp_code_u64(r, "HIGHESTMODSEQ", &u64))
		mix_u64(h, u64);
	if (imap_resp_appenduid(r, &u32, &uid))
		mix_u64(h, (uint64_t)u32 << 32 | uid);
	if (imap_resp_copyuid(r, &u32, &src, &dst)) {
		if (imap_seqset_count(&src) != imap_seqset_count(&dst))
			abort();
		mix_u64(h, imap_seqset_nth(&dst, imap_seqset_count(&src) - 1));
		imap_seqset_free(&src);
		imap_seqset_free(&dst);
	}
}

/* Parses the stream; chunks == NULL feeds everything at once. Returns a
 * hash of the responses and of the final error. */
static uint64_t
parse(const uint8_t *data, size_t size, const uint8_t *chunks,
    const struct imap_parser_limits *lim)
{
	struct imap_parser *p = imap_parser_new(lim);
	const struct imap_resp *resp;
	size_t off = 0, avail, consumed, step, k = 0;
	uint64_t h = 14695981039346656037ULL;
	int ret;

	avail = size;
	if (chunks != NULL && chunks[0] != 0 && chunks[0] < size)
		avail = chunks[0];
	for (;;) {
		ret = imap_parser_feed(p, data + off, avail - off, &consumed, &resp);
		if (consumed > avail - off)
			abort();
		if (ret == 1) {
			touch_resp(&h, resp);
			off += consumed;
			continue;
		}
		if (ret < 0) {
			const char *err = imap_parser_error(p);

			/* a broken invariant of the parser, never the input */
			if (err == NULL || strncmp(err, "internal error",
			    strlen("internal error")) == 0)
				abort();
			mix(&h, err, strlen(err));
			break;
		}
		if (ret != 0 || consumed != avail - off || resp != NULL)
			abort();
		off = avail;
		if (avail == size)
			break;
		step = chunks[++k % (HDR_LEN - 1)];
		avail = step == 0 || step > size - avail ? size : avail + step;
	}
	if (imap_parser_memory(p) == 0)
		abort();
	imap_parser_free(&p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imap_parser_limits tiny = {
		.max_line = 64, .max_literal = 16, .max_response = 96,
		.max_depth = 3, .max_args = 12,
	};
	const struct imap_parser_limits *lim = NULL;

	if (size < HDR_LEN)
		return 0;
	if ((data[0] & 1) != 0)
		lim = &tiny;
	if (parse(data + HDR_LEN, size - HDR_LEN, data + 1, lim) !=
	    parse(data + HDR_LEN, size - HDR_LEN, NULL, lim))
		abort();
	return 0;
}
