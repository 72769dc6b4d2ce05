/*
 * imap_namespace: the server's answer to NAMESPACE (RFC 2342) and which
 * namespace a mailbox is in. I/O-free: it reads a response the parser made.
 *
 *   * NAMESPACE <personal> <other users> <shared>
 *
 * where each group is NIL or a list of (prefix delimiter [extensions...]).
 * Prefixes are modified UTF-7 on the wire and kept here in UTF-8, as
 * mailbox names are in the configuration.
 */
#ifndef IMAPHOOK_IMAP_NAMESPACE_H
#define IMAPHOOK_IMAP_NAMESPACE_H

#include <stddef.h>
#include <stdint.h>

#include "imap_parser.h"

enum imap_namespace_kind {
	IMAP_NS_PERSONAL,
	IMAP_NS_OTHER,          /* other users' mailboxes */
	IMAP_NS_SHARED,         /* shared or public mailboxes */
};

struct imap_namespace {
	enum imap_namespace_kind kind;
	char *prefix;           /* UTF-8 */
	char delimiter;         /* '\0': none (NIL) */
};

struct imap_namespaces {
	struct imap_namespace *ns;      /* in the order given, personal first */
	size_t count;
};

/*
 * Parses the arguments of an untagged NAMESPACE response (resp->args,
 * resp->argc). Returns a new set (free it with imap_namespace_free()), or
 * NULL when the answer is not three groups of well-formed namespaces or a
 * prefix is neither modified UTF-7 nor UTF-8. Extensions are ignored.
 */
struct imap_namespaces *imap_namespace_parse(const struct imap_arg *args, uint32_t argc);
void imap_namespace_free(struct imap_namespaces **nss);

/*
 * The kind of namespace the UTF-8 mailbox name is in: that of the longest
 * prefix it starts with (a prefix "" matches every name; of equal prefixes
 * the first, so personal wins). "INBOX" in any case is personal, and a
 * leading "INBOX" matches a prefix's in any case (RFC 3501 5.1). A name
 * no prefix matches, and every name when nss is NULL (no answer), is
 * personal.
 */
enum imap_namespace_kind imap_namespace_kind(const struct imap_namespaces *nss,
    const char *mailbox);
/* "personal", "other users" or "shared". */
const char *imap_namespace_kind_name(enum imap_namespace_kind kind);

#endif
