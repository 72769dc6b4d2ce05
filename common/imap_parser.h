/*
 * imap_parser: an I/O-free, resumable parser of IMAP server responses
 * (RFC 3501 / RFC 9051), after Dovecot's lib-imap/imap-parser.c.
 *
 * The parser is fed bytes and answers "need more", "error" or "here is one
 * complete response". It never reads or writes a socket. Every size is
 * capped: the length of a response's text (everything but literal bodies),
 * each literal, the whole response, list nesting depth and the number of
 * arguments. Literal lengths are checked for overflow.
 *
 * Data model: a response is a list of arguments; an argument is an atom, a
 * quoted string, a literal, NIL or a parenthesized list. Numbers are atoms;
 * convert them with imap_arg_get_u32()/imap_arg_get_u64().
 *
 * All pointers in a returned response point into the parser's own memory
 * and stay valid until the next call to imap_parser_feed(),
 * imap_parser_trim() or imap_parser_reset().
 */
#ifndef IMAPHOOK_IMAP_PARSER_H
#define IMAPHOOK_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
	IMAP_ARG_ATOM,          /* includes numbers, flags (\Seen), BODY[1.2]<0> */
	IMAP_ARG_STRING,        /* "quoted", escapes removed */
	IMAP_ARG_LITERAL,       /* {n} / {n+} / ~{n}; may contain NUL bytes */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM/STRING/LITERAL: byte length of str. LIST: element count. */
	uint32_t len;
	union {
		const char *str;                /* NUL-terminated too */
		const struct imap_arg *list;    /* len elements */
	} v;
	bool literal8;                  /* LITERAL given as ~{n} */
};

enum imap_resp_kind {
	IMAP_RESP_UNTAGGED,             /* "* ..." */
	IMAP_RESP_TAGGED,               /* "A12 OK ..." */
	IMAP_RESP_CONTINUATION,         /* "+ ..." */
};

enum imap_status {
	IMAP_STATUS_NONE,               /* not a status response */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
};

struct imap_resp {
	enum imap_resp_kind kind;
	const char *tag;                /* TAGGED only, else NULL */

	/* Status responses (every tagged response; untagged OK/NO/BAD/BYE/
	 * PREAUTH): status, optional response code and human text. */
	enum imap_status status;
	const char *code;               /* "UIDNEXT", upper-cased, or NULL */
	const struct imap_arg *code_args; /* arguments inside [...] after the name */
	uint32_t code_argc;
	const char *text;               /* status text or continuation text ("" if none) */

	/* Untagged data responses ("* CAPABILITY ...", "* 5 FETCH (...)"):
	 * name upper-cased; number set for "* n NAME" forms. */
	const char *name;
	bool has_number;
	uint32_t number;
	const struct imap_arg *args;    /* arguments after the name */
	uint32_t argc;
};

struct imap_parser_limits {
	size_t max_line;        /* bytes of response text, literal bodies excluded */
	size_t max_literal;     /* bytes of one literal */
	size_t max_response;    /* bytes of the whole response, literals included */
	unsigned max_depth;     /* list nesting */
	unsigned max_args;      /* arguments in one response, all levels together */
};

/* The defaults: 16 MiB line, 64 MiB literal, 96 MiB response, depth 32,
 * 1,000,000 arguments. */
extern const struct imap_parser_limits imap_parser_default_limits;

struct imap_parser;

/* limits may be NULL for the defaults; they are copied. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **parser);
/* Forget any partial response (for example after STARTTLS). */
void imap_parser_reset(struct imap_parser *parser);
/* Between responses (the last one returned, nothing of the next fed):
 * frees the buffers a big response left above 64 KiB, which would
 * otherwise stay until the next byte arrives. Does nothing while a
 * response is in progress or after an error. */
void imap_parser_trim(struct imap_parser *parser);

/*
 * Feeds up to len bytes. *consumed_r tells how many were used (the caller
 * drains them from its buffer and feeds the rest later).
 * Returns:
 *   1  one complete response in *resp_r (valid until the next call);
 *      bytes after it were not consumed.
 *   0  all len bytes consumed, the response is not complete yet.
 *  -1  protocol error or a limit exceeded; imap_parser_error() says which.
 *      The parser stays in the error state until imap_parser_reset().
 */
int imap_parser_feed(struct imap_parser *parser, const void *data, size_t len,
    size_t *consumed_r, const struct imap_resp **resp_r);
const char *imap_parser_error(const struct imap_parser *parser);
/* Bytes the parser holds right now (buffers, arena, bookkeeping): lets
 * tests and callers check that memory stays within the limits. */
size_t imap_parser_memory(const struct imap_parser *parser);

/* Argument helpers. Return true/0 when the argument has the asked form. */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *ci_value);
/* ATOM, STRING or LITERAL: the bytes; NIL gives NULL. */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r);
bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r, size_t *len_r);
int imap_arg_get_u32(const struct imap_arg *arg, uint32_t *v_r);
int imap_arg_get_u64(const struct imap_arg *arg, uint64_t *v_r);
bool imap_arg_get_list(const struct imap_arg *arg, const struct imap_arg **list_r, uint32_t *count_r);

/* Response-code helpers: true when resp carries code (case-insensitive)
 * with a well-formed argument. */
bool imap_resp_code_is(const struct imap_resp *resp, const char *code);
bool imap_resp_code_u32(const struct imap_resp *resp, const char *code, uint32_t *v_r);
bool imap_resp_code_u64(const struct imap_resp *resp, const char *code, uint64_t *v_r);

/* An IMAP sequence set ("1:5,9,12:*") as ranges. "*" is stored as
 * UINT32_MAX. Ranges are kept as given (a:b with a > b is normalised to
 * b:a). */
struct imap_seqset {
	struct imap_seqrange { uint32_t lo, hi; } *ranges;
	size_t count;
};
/* Returns 0, or -1 on a malformed set (nothing allocated then). */
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set_r);
void imap_seqset_free(struct imap_seqset *set);
/* Number of members (counting each range's span); "*" counts as one. */
uint64_t imap_seqset_count(const struct imap_seqset *set);
/* The n-th member (0-based) in the order given, or 0 if out of range.
 * Walks the ranges from the start: for one member, not for a loop over
 * all of them (use an iterator). */
uint32_t imap_seqset_nth(const struct imap_seqset *set, uint64_t n);

/* Every member of a set in the order of imap_seqset_nth, range by range:
 * O(members + ranges) for the whole walk. The set must outlive it. */
struct imap_seqset_iter {
	const struct imap_seqset *set;
	size_t range;           /* index of the current range */
	uint64_t next;          /* the next member in it (64 bits: may pass "*") */
};
void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set);
/* Stores the next member in *v_r ("*" is UINT32_MAX) and returns true, or
 * returns false once every member was given. */
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *v_r);

/* [APPENDUID uidvalidity uid] and [COPYUID uidvalidity src-set dst-set]. */
bool imap_resp_appenduid(const struct imap_resp *resp, uint32_t *uidvalidity_r, uint32_t *uid_r);
/* On success the caller frees both sets with imap_seqset_free(). */
bool imap_resp_copyuid(const struct imap_resp *resp, uint32_t *uidvalidity_r,
    struct imap_seqset *src_r, struct imap_seqset *dst_r);

#endif
