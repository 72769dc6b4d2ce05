/*
 * imap_parser: IMAP server responses, framed incrementally and tokenized
 * once complete.
 *
 * Stage 1, the framer (frame_*), copies the bytes of one response into buf
 * as they arrive: line segments (each ending in CRLF or LF) and, between
 * them, literal bodies announced by "{n}", "{n+}" or "~{n}" right before a
 * line end. It keeps its scan state between calls, so feeding one byte at
 * a time costs the same as feeding everything at once, and it enforces the
 * size limits on every byte, before the byte is buffered. A NUL byte is
 * appended after each literal body so that literals can be returned in
 * place, NUL-terminated.
 *
 * Stage 2, the tokenizer (tok_*), runs over a complete response. Tokens
 * never cross a segment end: a segment that announced a literal ends at
 * its marker, where the literal becomes one argument. Atom, string and
 * header strings are copied (unescaped, NUL-terminated) into a pool sized
 * up front, so no pointer moves; lists are built on a stack of arguments
 * and copied into a block arena when they close.
 *
 * Literals are only recognised where the grammar allows them: not in the
 * free text of a continuation or of a status response (tagged, or untagged
 * OK/NO/BAD/BYE/PREAUTH), and only at the start of an argument.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"
#include "util.h"

const struct imap_parser_limits imap_parser_default_limits = {
	/* an ENVELOPE is one line of quoted strings: a message with 60,000
	 * recipients makes it 2 MiB and 240,000 arguments; such a message
	 * must not block its mailbox */
	.max_line = 16 * 1024 * 1024,
	.max_literal = 64 * 1024 * 1024,
	.max_response = 96 * 1024 * 1024,
	.max_depth = 32,
	.max_args = 1000000,
};

/* Buffers bigger than this are released when a new response starts. */
#define PARSER_KEEP_BYTES (64 * 1024)
/* Arguments per arena block (more when one list needs it). */
#define ARENA_BLOCK_ARGS 1024

/* Tokenizer results: a syntax error may be recovered from (inside a
 * response code), a limit error may not. */
#define TOK_SYNTAX (-1)
#define TOK_FATAL (-2)

struct segment {
	size_t start;           /* first byte of the line in buf */
	size_t end;             /* end of its text, CRLF / LF excluded */
	size_t marker;          /* has_lit: where "{n}" or "~{n}" starts */
	size_t lit_off;         /* has_lit: the literal body in buf */
	size_t lit_len;
	bool has_lit;
	bool literal8;
};

struct arena_block {
	struct arena_block *next;
	size_t cap, used;
	struct imap_arg args[];
};

enum frame_state { FRAME_LINE, FRAME_LITERAL };

struct imap_parser {
	struct imap_parser_limits limits;

	/* Framer: the response so far. */
	char *buf;
	size_t len, cap;
	struct segment *segs;
	size_t nsegs, segs_cap;
	enum frame_state state;
	uint64_t lit_left;      /* literal bytes still to come */
	size_t line_bytes;      /* bytes outside literal bodies */
	size_t total;           /* all bytes of the response */
	bool cr;                /* the last line byte was CR */
	bool complete;          /* resp was returned: start afresh */
	bool failed;
	char error[96];

	/* Tokenizer. */
	char *pool;             /* strings of the response */
	size_t pool_len, pool_cap;
	struct imap_arg *stack; /* arguments of the open lists */
	size_t stack_len, stack_cap;
	size_t *frames;         /* stack index where each open list starts */
	size_t frames_cap;
	struct arena_block *arena;
	size_t nargs;
	struct imap_resp resp;
};

/* A position in a complete response. */
struct tok {
	struct imap_parser *parser;
	const char *buf;
	size_t seg;             /* current segment */
	size_t pos;
	size_t bound;           /* its marker, or its end */
};

static const char *const status_names[] = {
	[IMAP_STATUS_OK] = "OK",
	[IMAP_STATUS_NO] = "NO",
	[IMAP_STATUS_BAD] = "BAD",
	[IMAP_STATUS_BYE] = "BYE",
	[IMAP_STATUS_PREAUTH] = "PREAUTH",
};

static int
fail(struct imap_parser *parser, const char *msg)
{
	snprintf(parser->error, sizeof(parser->error), "%s", msg);
	parser->failed = true;
	return -1;
}

/* The tokenizer records its message; feed() decides whether it is final. */
static int
tok_error(struct tok *t, int kind, const char *msg)
{
	snprintf(t->parser->error, sizeof(t->parser->error), "%s", msg);
	return kind;
}

static size_t
sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static char
ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Characters that end a tag, a response name or a status word. */
static bool
is_word_end(unsigned char c)
{
	return c == ' ' || c == '(' || c == ')' || c == '"' || c == '[' ||
	    c == ']' || is_ctl(c);
}

static size_t
word_end(const char *buf, size_t pos, size_t bound)
{
	while (pos < bound && !is_word_end((unsigned char)buf[pos]))
		pos++;
	return pos;
}

static enum imap_status
status_from_word(const char *s, size_t len)
{
	size_t i;

	for (i = IMAP_STATUS_OK; i < N_ELEMENTS(status_names); i++) {
		if (strlen(status_names[i]) == len &&
		    strncasecmp(s, status_names[i], len) == 0)
			return (enum imap_status)i;
	}
	return IMAP_STATUS_NONE;
}

/*
 * Grows buf to hold at least need bytes. Doubling, but never past hint
 * (the most this response may still need), so that memory stays within
 * the limits however the bytes are fed.
 */
static void
buf_reserve(struct imap_parser *parser, size_t need, size_t hint)
{
	size_t cap;

	if (need <= parser->cap)
		return;
	cap = parser->cap < 256 ? 256 : parser->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > hint)
		cap = hint > need ? hint : need;
	parser->buf = xrealloc(parser->buf, cap);
	parser->cap = cap;
}

static void
buf_append(struct imap_parser *parser, const void *data, size_t n, size_t hint)
{
	buf_reserve(parser, sat_add(parser->len, n), hint);
	if (n > 0)
		memcpy(parser->buf + parser->len, data, n);
	parser->len += n;
}

static struct segment *
seg_new(struct imap_parser *parser)
{
	struct segment *seg;

	if (parser->nsegs == parser->segs_cap) {
		parser->segs_cap = parser->segs_cap == 0 ? 4 : parser->segs_cap * 2;
		parser->segs = xreallocarray(parser->segs, parser->segs_cap,
		    sizeof(*parser->segs));
	}
	seg = &parser->segs[parser->nsegs++];
	memset(seg, 0, sizeof(*seg));
	seg->start = parser->len;
	return seg;
}

static void
arena_clear(struct imap_parser *parser)
{
	struct arena_block *b, *next, *keep = NULL;

	for (b = parser->arena; b != NULL; b = next) {
		next = b->next;
		if (keep == NULL && b->cap == ARENA_BLOCK_ARGS) {
			keep = b;
			keep->used = 0;
			keep->next = NULL;
		} else
			free(b);
	}
	parser->arena = keep;
}

/* Contiguous room for n arguments, stable until the next response. */
static struct imap_arg *
arena_alloc(struct imap_parser *parser, size_t n)
{
	struct arena_block *b = parser->arena;
	size_t cap;

	if (n == 0)
		return NULL;
	if (b == NULL || b->cap - b->used < n) {
		cap = n > ARENA_BLOCK_ARGS ? n : ARENA_BLOCK_ARGS;
		b = xmalloc(sizeof(*b) + cap * sizeof(b->args[0]));
		b->cap = cap;
		b->used = 0;
		b->next = parser->arena;
		parser->arena = b;
	}
	b->used += n;
	return &b->args[b->used - n];
}

/* Frees the array at *pp when it holds more than PARSER_KEEP_BYTES. */
static void
shrink(void *pp, size_t *cap, size_t elem_size)
{
	if (*cap > PARSER_KEEP_BYTES / elem_size) {
		xfree(pp);
		*cap = 0;
	}
}

/* Forgets the previous response; big buffers are given back. */
static void
response_start(struct imap_parser *parser)
{
	shrink(&parser->buf, &parser->cap, 1);
	shrink(&parser->pool, &parser->pool_cap, 1);
	shrink(&parser->stack, &parser->stack_cap, sizeof(*parser->stack));
	shrink(&parser->segs, &parser->segs_cap, sizeof(*parser->segs));
	arena_clear(parser);
	parser->len = 0;
	parser->nsegs = 0;
	parser->state = FRAME_LINE;
	parser->lit_left = 0;
	parser->line_bytes = 0;
	parser->total = 0;
	parser->cr = false;
	parser->complete = false;
	parser->pool_len = 0;
	parser->stack_len = 0;
	parser->nargs = 0;
	memset(&parser->resp, 0, sizeof(parser->resp));
	(void)seg_new(parser);
}

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *parser = xcalloc(1, sizeof(*parser));

	parser->limits = limits != NULL ? *limits : imap_parser_default_limits;
	response_start(parser);
	return parser;
}

void
imap_parser_free(struct imap_parser **parserp)
{
	struct imap_parser *parser = *parserp;

	if (parser == NULL)
		return;
	arena_clear(parser);
	free(parser->arena);
	free(parser->buf);
	free(parser->segs);
	free(parser->pool);
	free(parser->stack);
	free(parser->frames);
	free(parser);
	*parserp = NULL;
}

void
imap_parser_reset(struct imap_parser *parser)
{
	response_start(parser);
	parser->failed = false;
	parser->error[0] = '\0';
}

void
imap_parser_trim(struct imap_parser *parser)
{
	/* complete: the returned response is all the buffers hold; when it
	 * is not, either nothing was fed since response_start() or a
	 * response is in progress */
	if (parser->complete && !parser->failed)
		response_start(parser);
}

const char *
imap_parser_error(const struct imap_parser *parser)
{
	return parser->failed ? parser->error : NULL;
}

size_t
imap_parser_memory(const struct imap_parser *parser)
{
	const struct arena_block *b;
	size_t n;

	n = sizeof(*parser) + parser->cap + parser->pool_cap +
	    parser->segs_cap * sizeof(*parser->segs) +
	    parser->stack_cap * sizeof(*parser->stack) +
	    parser->frames_cap * sizeof(*parser->frames);
	for (b = parser->arena; b != NULL; b = b->next)
		n += sizeof(*b) + b->cap * sizeof(b->args[0]);
	return n;
}

/*
 * Framer.
 */

/* Whether the first line may announce a literal: only an untagged data
 * response may; "+ text", tagged and untagged status lines end in text. */
static bool
frame_first_line_takes_literals(const struct imap_parser *parser,
    const struct segment *seg)
{
	const char *buf = parser->buf;
	size_t pos = seg->start, end;

	end = word_end(buf, pos, seg->end);
	if (end - pos != 1 || buf[pos] != '*')
		return false;
	pos = end;
	while (pos < seg->end && buf[pos] == ' ')
		pos++;
	end = word_end(buf, pos, seg->end);
	return status_from_word(buf + pos, end - pos) == IMAP_STATUS_NONE;
}

/*
 * Looks for "{n}", "{n+}" or "~{n}" at the end of the line just framed, at
 * the start of an argument. Returns 1 (seg describes the literal), 0 (no
 * literal: the response is complete) or -1 (error).
 */
static int
frame_find_literal(struct imap_parser *parser, struct segment *seg)
{
	const char *buf = parser->buf;
	size_t k, open, marker, dend;
	uint64_t n;
	unsigned char c;

	if (seg->end == seg->start || buf[seg->end - 1] != '}')
		return 0;
	for (k = seg->end - 1; k > seg->start; k--) {
		c = (unsigned char)buf[k - 1];
		if (c == '{')
			break;
		if (c == ' ' || c == '(' || c == ')' || c == '"')
			return 0;
	}
	if (k == seg->start)
		return 0;
	open = k - 1;
	marker = open;
	if (marker > seg->start && buf[marker - 1] == '~')
		marker--;
	if (marker > seg->start && buf[marker - 1] != ' ' &&
	    buf[marker - 1] != '(')
		return 0;
	if (parser->nsegs == 1 && !frame_first_line_takes_literals(parser, seg))
		return 0;

	dend = seg->end - 1;
	if (dend > open + 1 && buf[dend - 1] == '+')
		dend--;
	if (dend == open + 1)
		return fail(parser, "invalid literal size");
	for (k = open + 1; k < dend; k++) {
		if (buf[k] < '0' || buf[k] > '9')
			return fail(parser, "invalid literal size");
	}
	if (parse_u64_n(buf + open + 1, dend - open - 1, &n) < 0 ||
	    n > parser->limits.max_literal)
		return fail(parser, "literal size too large");
	if (n > parser->limits.max_response - parser->total)
		return fail(parser, "response too large");
	if (parser->nsegs > parser->limits.max_args)
		return fail(parser, "too many arguments");
	seg->has_lit = true;
	seg->literal8 = marker != open;
	seg->marker = marker;
	seg->lit_off = parser->len;
	seg->lit_len = (size_t)n;
	return 1;
}

/* The literal body is complete: terminate it and start the next line. */
static void
frame_literal_done(struct imap_parser *parser)
{
	char nul = '\0';

	buf_append(parser, &nul, 1, sat_add(parser->len, 256));
	parser->state = FRAME_LINE;
	(void)seg_new(parser);
}

/*
 * Takes line bytes up to and including LF. *used_r says how many (on error:
 * how many came before the offending byte, none of them kept); *eol_r
 * whether the line ended. Every limit is checked before a byte is kept.
 */
static int
frame_line(struct imap_parser *parser, const unsigned char *data, size_t len,
    size_t *used_r, bool *eol_r)
{
	const struct imap_parser_limits *lim = &parser->limits;
	size_t i, hint;

	*eol_r = false;
	*used_r = 0;
	for (i = 0; i < len; i++) {
		unsigned char c = data[i];

		*used_r = i;
		if (parser->cr && c != '\n')
			return fail(parser, "CR not followed by LF");
		if (c == '\0')
			return fail(parser, "NUL byte in response");
		if (parser->line_bytes + i >= lim->max_line)
			return fail(parser, "line too long");
		if (parser->total + i >= lim->max_response)
			return fail(parser, "response too large");
		parser->cr = c == '\r';
		if (c == '\n') {
			*eol_r = true;
			i++;
			break;
		}
	}
	hint = sat_add(parser->len, lim->max_line - parser->line_bytes);
	buf_append(parser, data, i, hint);
	parser->line_bytes += i;
	parser->total += i;
	*used_r = i;
	return 0;
}

/* A line ended. Returns 1 when a literal follows, 0 when the response is
 * complete, -1 on error. */
static int
frame_eol(struct imap_parser *parser)
{
	struct segment *seg = &parser->segs[parser->nsegs - 1];
	int ret;

	seg->end = parser->len - 1;
	if (seg->end > seg->start && parser->buf[seg->end - 1] == '\r')
		seg->end--;
	parser->cr = false;
	if ((ret = frame_find_literal(parser, seg)) <= 0)
		return ret;
	parser->lit_left = seg->lit_len;
	parser->state = FRAME_LITERAL;
	if (parser->lit_left == 0)
		frame_literal_done(parser);
	return 1;
}

/*
 * Tokenizer.
 */

static void
tok_set_seg(struct tok *t, size_t idx)
{
	const struct segment *seg = &t->parser->segs[idx];

	t->seg = idx;
	t->pos = seg->start;
	t->bound = seg->has_lit ? seg->marker : seg->end;
}

static void
tok_skip_sp(struct tok *t)
{
	while (t->pos < t->bound && t->buf[t->pos] == ' ')
		t->pos++;
}

/* The pool is sized before tokenizing so that its pointers never move:
 * every copied string comes from distinct line bytes, at least one byte
 * longer than the string (a delimiter, a quote or the line end). */
static void
pool_prepare(struct imap_parser *parser)
{
	size_t need = sat_add(parser->line_bytes, 2);

	if (need > parser->pool_cap) {
		free(parser->pool);
		parser->pool = xmalloc(need);
		parser->pool_cap = need;
	}
	parser->pool_len = 0;
}

/* Room for n bytes plus NUL, or NULL (ruled out by pool_prepare; checked
 * all the same, as an error rather than an overflow). */
static char *
pool_room(struct tok *t, size_t n)
{
	struct imap_parser *parser = t->parser;

	if (n >= parser->pool_cap - parser->pool_len)
		return NULL;
	return parser->pool + parser->pool_len;
}

static const char *
pool_commit(struct tok *t, size_t n)
{
	char *s = t->parser->pool + t->parser->pool_len;

	s[n] = '\0';
	t->parser->pool_len += n + 1;
	return s;
}

/* Copies n bytes at pos (upper-cased if asked) into the pool. */
static int
tok_copy(struct tok *t, size_t pos, size_t n, bool upper, const char **str_r)
{
	char *dst;
	size_t i;

	if ((dst = pool_room(t, n)) == NULL)
		return tok_error(t, TOK_FATAL, "internal error: string pool full");
	for (i = 0; i < n; i++)
		dst[i] = upper ? ascii_upper(t->buf[pos + i]) : t->buf[pos + i];
	*str_r = pool_commit(t, n);
	return 0;
}

static int
tok_push(struct tok *t, const struct imap_arg *arg)
{
	struct imap_parser *parser = t->parser;

	if (parser->nargs >= parser->limits.max_args)
		return tok_error(t, TOK_FATAL, "too many arguments");
	parser->nargs++;
	if (parser->stack_len == parser->stack_cap) {
		parser->stack_cap = parser->stack_cap == 0 ? 64 :
		    parser->stack_cap * 2;
		parser->stack = xreallocarray(parser->stack, parser->stack_cap,
		    sizeof(*parser->stack));
	}
	parser->stack[parser->stack_len++] = *arg;
	return 0;
}

static int
tok_push_str(struct tok *t, enum imap_arg_type type, const char *s, size_t len)
{
	if (len > UINT32_MAX)
		return tok_error(t, TOK_FATAL, "argument too long");
	return tok_push(t, &(struct imap_arg){ .type = type,
	    .len = (uint32_t)len, .v.str = s });
}

/* The literal announced at the end of the current segment. */
static int
tok_literal(struct tok *t)
{
	const struct segment *seg = &t->parser->segs[t->seg];

	if (seg->lit_len > UINT32_MAX)
		return tok_error(t, TOK_FATAL, "literal size too large");
	return tok_push(t, &(struct imap_arg){ .type = IMAP_ARG_LITERAL,
	    .len = (uint32_t)seg->lit_len, .v.str = t->buf + seg->lit_off,
	    .literal8 = seg->literal8 });
}

/* "..." with \-escapes; any escaped byte stands for itself. */
static int
tok_quoted(struct tok *t)
{
	size_t n = 0;
	char *dst, c;

	if ((dst = pool_room(t, t->bound - t->pos)) == NULL)
		return tok_error(t, TOK_FATAL, "internal error: string pool full");
	t->pos++;
	while (t->pos < t->bound) {
		c = t->buf[t->pos++];
		if (c == '"')
			return tok_push_str(t, IMAP_ARG_STRING,
			    pool_commit(t, n), n);
		if (c == '\\') {
			if (t->pos == t->bound)
				break;
			c = t->buf[t->pos++];
		}
		dst[n++] = c;
	}
	return tok_error(t, TOK_SYNTAX, "unterminated quoted string");
}

/*
 * An atom: bytes other than SP ( ) " and CTLs. A '[' opens a section that
 * lasts to its matching ']' and may hold anything of the line. In a
 * response code (in_code) a ']' outside a section ends the atom.
 */
static int
tok_atom(struct tok *t, bool in_code)
{
	size_t start = t->pos, len;
	unsigned sect = 0;
	unsigned char c;
	const char *s;
	int ret;

	for (; t->pos < t->bound; t->pos++) {
		c = (unsigned char)t->buf[t->pos];
		if (sect > 0) {
			sect += c == '[' ? 1 : c == ']' ? -1 : 0;
			continue;
		}
		if (c == ' ' || c == '(' || c == ')' || c == '"' || is_ctl(c) ||
		    (c == ']' && in_code))
			break;
		if (c == '[')
			sect++;
	}
	if (sect > 0)
		return tok_error(t, TOK_SYNTAX, "unterminated '[' in atom");
	len = t->pos - start;
	if ((ret = tok_copy(t, start, len, false, &s)) < 0)
		return ret;
	return tok_push_str(t, len == 3 && strcasecmp(s, "NIL") == 0 ?
	    IMAP_ARG_NIL : IMAP_ARG_ATOM, s, len);
}

/* Closes the innermost list: its elements move from the stack into the
 * arena and a LIST argument takes their place. */
static int
tok_close_list(struct tok *t, size_t start)
{
	struct imap_parser *parser = t->parser;
	size_t n = parser->stack_len - start;
	struct imap_arg *list = arena_alloc(parser, n);

	if (n > 0)
		memcpy(list, parser->stack + start, n * sizeof(*list));
	parser->stack_len = start;
	return tok_push(t, &(struct imap_arg){ .type = IMAP_ARG_LIST,
	    .len = (uint32_t)n, .v.list = list });
}

/*
 * Arguments up to the end of the response or, in a response code, up to
 * the ']' that closes it (consumed). The result lives in the arena.
 */
static int
tok_args(struct tok *t, bool in_code, const struct imap_arg **args_r,
    uint32_t *argc_r)
{
	struct imap_parser *parser = t->parser;
	size_t base = parser->stack_len, n;
	struct imap_arg *out;
	unsigned depth = 0;
	unsigned char c;
	int ret;

	for (;;) {
		tok_skip_sp(t);
		if (t->pos == t->bound) {
			if (parser->segs[t->seg].has_lit) {
				if ((ret = tok_literal(t)) < 0)
					return ret;
				tok_set_seg(t, t->seg + 1);
				continue;
			}
			if (depth > 0)
				return tok_error(t, TOK_SYNTAX, "unterminated list");
			if (in_code)
				return tok_error(t, TOK_SYNTAX,
				    "unterminated response code");
			break;
		}
		c = (unsigned char)t->buf[t->pos];
		if (c == '(') {
			if (depth >= parser->limits.max_depth)
				return tok_error(t, TOK_FATAL,
				    "list nesting too deep");
			if (depth == parser->frames_cap) {
				parser->frames_cap = depth == 0 ? 8 : depth * 2;
				parser->frames = xreallocarray(parser->frames,
				    parser->frames_cap, sizeof(*parser->frames));
			}
			parser->frames[depth++] = parser->stack_len;
			t->pos++;
			continue;
		}
		if (c == ')') {
			if (depth == 0)
				return tok_error(t, TOK_SYNTAX, "unexpected ')'");
			t->pos++;
			ret = tok_close_list(t, parser->frames[--depth]);
		} else if (c == ']' && in_code) {
			if (depth > 0)
				return tok_error(t, TOK_SYNTAX, "unterminated list");
			t->pos++;
			break;
		} else if (c == '"')
			ret = tok_quoted(t);
		else if (is_ctl(c))
			return tok_error(t, TOK_SYNTAX,
			    "control character in response");
		else
			ret = tok_atom(t, in_code);
		if (ret < 0)
			return ret;
	}
	n = parser->stack_len - base;
	out = arena_alloc(parser, n);
	if (n > 0)
		memcpy(out, parser->stack + base, n * sizeof(*out));
	parser->stack_len = base;
	*args_r = out;
	*argc_r = (uint32_t)n;
	return 0;
}

/* The rest of the line as text, without tokenizing it. */
static int
tok_text(struct tok *t)
{
	const struct segment *seg = &t->parser->segs[t->seg];

	return tok_copy(t, t->pos, seg->end - t->pos, false,
	    &t->parser->resp.text);
}

/*
 * Code arguments that do not tokenize (RFC 3501 allows any text but ']'
 * there) become one atom holding their raw text, in place; the caller has
 * given the strings of the attempt back to the pool. Without a closing ']'
 * there is no code and the whole rest, from open, is text: the caller
 * gives the code name back too.
 */
static int
tok_code_raw(struct tok *t, size_t open, size_t args_start)
{
	struct imap_parser *parser = t->parser;
	struct imap_resp *resp = &parser->resp;
	struct imap_arg *arg;
	char *close;

	close = memchr(parser->buf + args_start, ']', t->bound - args_start);
	if (close == NULL) {
		resp->code = NULL;
		t->pos = open;
		return 0;
	}
	if (parser->nargs >= parser->limits.max_args)
		return tok_error(t, TOK_FATAL, "too many arguments");
	parser->nargs++;
	*close = '\0';
	arg = arena_alloc(parser, 1);
	*arg = (struct imap_arg){ .type = IMAP_ARG_ATOM,
	    .len = (uint32_t)(close - (parser->buf + args_start)),
	    .v.str = parser->buf + args_start };
	resp->code_args = arg;
	resp->code_argc = 1;
	t->pos = (size_t)(close - parser->buf) + 1;
	return 0;
}

/* After the status word: an optional "[CODE args]", then the text. */
static int
tok_status(struct tok *t)
{
	struct imap_parser *parser = t->parser;
	struct imap_resp *resp = &parser->resp;
	size_t open, name_end, stack_len, nargs, pool_start, pool_len;
	int ret;

	if (t->pos < t->bound && t->buf[t->pos] == ' ')
		t->pos++;
	if (t->pos == t->bound || t->buf[t->pos] != '[')
		return tok_text(t);
	open = t->pos;
	name_end = word_end(t->buf, open + 1, t->bound);
	if (name_end == open + 1 || name_end == t->bound ||
	    (t->buf[name_end] != ' ' && t->buf[name_end] != ']'))
		return tok_text(t);
	/* A code dropped below gives its name back: the text then copies
	 * the same bytes, and pool_prepare counted them once. */
	pool_start = parser->pool_len;
	if ((ret = tok_copy(t, open + 1, name_end - open - 1, true,
	    &resp->code)) < 0)
		return ret;
	t->pos = name_end + 1;
	if (t->buf[name_end] == ' ') {
		stack_len = parser->stack_len;
		nargs = parser->nargs;
		pool_len = parser->pool_len;
		ret = tok_args(t, true, &resp->code_args, &resp->code_argc);
		if (ret == TOK_FATAL)
			return ret;
		if (ret < 0) {
			parser->stack_len = stack_len;
			parser->nargs = nargs;
			parser->pool_len = pool_len;
			if ((ret = tok_code_raw(t, open, name_end + 1)) < 0)
				return ret;
			if (resp->code == NULL)
				parser->pool_len = pool_start;
		}
	}
	if (resp->code != NULL && t->pos < t->bound && t->buf[t->pos] == ' ')
		t->pos++;
	return tok_text(t);
}

/* Parses the complete response in buf into parser->resp. */
static int
tokenize(struct imap_parser *parser)
{
	struct imap_resp *resp = &parser->resp;
	struct tok t = { .parser = parser, .buf = parser->buf };
	enum imap_status status;
	size_t end;
	int ret;

	pool_prepare(parser);
	memset(resp, 0, sizeof(*resp));
	resp->text = "";
	tok_set_seg(&t, 0);
	if (t.pos == t.bound)
		return tok_error(&t, TOK_FATAL, "empty response line");

	if (t.buf[t.pos] == '+' &&
	    (t.pos + 1 == t.bound || t.buf[t.pos + 1] == ' ')) {
		resp->kind = IMAP_RESP_CONTINUATION;
		t.pos += t.pos + 1 == t.bound ? 1 : 2;
		return tok_text(&t);
	}

	end = word_end(t.buf, t.pos, t.bound);
	if (end == t.pos)
		return tok_error(&t, TOK_FATAL, "missing tag");
	if (end - t.pos == 1 && t.buf[t.pos] == '*')
		resp->kind = IMAP_RESP_UNTAGGED;
	else {
		resp->kind = IMAP_RESP_TAGGED;
		if ((ret = tok_copy(&t, t.pos, end - t.pos, false,
		    &resp->tag)) < 0)
			return ret;
	}
	t.pos = end;
	if (t.pos == t.bound || t.buf[t.pos] != ' ')
		return tok_error(&t, TOK_FATAL, "missing response name");
	tok_skip_sp(&t);

	end = word_end(t.buf, t.pos, t.bound);
	status = status_from_word(t.buf + t.pos, end - t.pos);
	if (resp->kind == IMAP_RESP_TAGGED && status != IMAP_STATUS_OK &&
	    status != IMAP_STATUS_NO && status != IMAP_STATUS_BAD)
		return tok_error(&t, TOK_FATAL, "tagged response without status");
	if (status != IMAP_STATUS_NONE) {
		resp->status = status;
		t.pos = end;
		return tok_status(&t);
	}

	if (end > t.pos && t.buf[t.pos] >= '0' && t.buf[t.pos] <= '9') {
		if (parse_u32_n(t.buf + t.pos, end - t.pos, &resp->number) < 0)
			return tok_error(&t, TOK_FATAL,
			    "invalid message number");
		resp->has_number = true;
		t.pos = end;
		tok_skip_sp(&t);
		end = word_end(t.buf, t.pos, t.bound);
	}
	if (end == t.pos)
		return tok_error(&t, TOK_FATAL, "missing response name");
	if ((ret = tok_copy(&t, t.pos, end - t.pos, true, &resp->name)) < 0)
		return ret;
	t.pos = end;
	return tok_args(&t, false, &resp->args, &resp->argc);
}

int
imap_parser_feed(struct imap_parser *parser, const void *data, size_t len,
    size_t *consumed_r, const struct imap_resp **resp_r)
{
	const unsigned char *in = data;
	size_t i = 0, used, take;
	bool eol;
	int ret;

	*consumed_r = 0;
	*resp_r = NULL;
	if (parser->failed)
		return -1;
	if (parser->complete)
		response_start(parser);
	while (i < len) {
		if (parser->state == FRAME_LITERAL) {
			take = len - i;
			if (take > parser->lit_left)
				take = (size_t)parser->lit_left;
			buf_append(parser, in + i, take, sat_add(parser->len,
			    sat_add((size_t)parser->lit_left, 1)));
			parser->total += take;
			parser->lit_left -= take;
			i += take;
			if (parser->lit_left == 0)
				frame_literal_done(parser);
			continue;
		}
		ret = frame_line(parser, in + i, len - i, &used, &eol);
		i += used;
		*consumed_r = i;
		if (ret < 0)
			return -1;
		if (!eol)
			continue;
		if ((ret = frame_eol(parser)) < 0)
			return -1;
		if (ret > 0)
			continue;
		parser->complete = true;
		if (tokenize(parser) < 0) {
			parser->failed = true;
			return -1;
		}
		*resp_r = &parser->resp;
		return 1;
	}
	*consumed_r = len;
	return 0;
}
