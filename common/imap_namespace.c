/* imap_namespace: NAMESPACE answers (RFC 2342); see imap_namespace.h */
#include "imap_namespace.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_utf7.h"
#include "util.h"

/* A prefix as UTF-8: modified UTF-7 as servers should send it, else the
 * bytes themselves when they are UTF-8 (a server speaking UTF-8 names, as
 * Dovecot does in NOTIFY's STATUS); NULL when they are neither. */
static char *
prefix_to_utf8(const char *wire)
{
	char *utf8 = imap_utf7_to_utf8(wire), *check;

	if (utf8 != NULL)
		return utf8;
	check = imap_utf8_to_utf7(wire);        /* NULL: not UTF-8 */
	if (check == NULL)
		return NULL;
	free(check);
	return xstrdup(wire);
}

/* One (prefix delimiter [extensions...]) of a group: 0, or -1 when it is
 * malformed. */
static int
namespace_add(struct imap_namespaces *nss, enum imap_namespace_kind kind,
    const struct imap_arg *arg)
{
	const struct imap_arg *fields;
	const char *prefix, *delim;
	size_t plen, dlen;
	uint32_t n;
	char *utf8;

	if (!imap_arg_get_list(arg, &fields, &n) || n < 2 ||
	    !imap_arg_get_nstring(&fields[0], &prefix, &plen) || prefix == NULL ||
	    memchr(prefix, '\0', plen) != NULL ||
	    !imap_arg_get_nstring(&fields[1], &delim, &dlen) ||
	    (delim != NULL && (dlen != 1 || delim[0] == '\0')))
		return -1;
	if ((utf8 = prefix_to_utf8(prefix)) == NULL)
		return -1;
	nss->ns = xreallocarray(nss->ns, nss->count + 1, sizeof(*nss->ns));
	nss->ns[nss->count].kind = kind;
	nss->ns[nss->count].prefix = utf8;
	nss->ns[nss->count].delimiter = delim != NULL ? delim[0] : '\0';
	nss->count++;
	return 0;
}

struct imap_namespaces *
imap_namespace_parse(const struct imap_arg *args, uint32_t argc)
{
	static const enum imap_namespace_kind kinds[3] = {
		IMAP_NS_PERSONAL, IMAP_NS_OTHER, IMAP_NS_SHARED,
	};
	struct imap_namespaces *nss;
	const struct imap_arg *list;
	uint32_t g, i, n;

	if (args == NULL || argc != 3)
		return NULL;
	nss = xcalloc(1, sizeof(*nss));
	for (g = 0; g < 3; g++) {
		if (args[g].type == IMAP_ARG_NIL)
			continue;
		if (!imap_arg_get_list(&args[g], &list, &n))
			goto fail;
		for (i = 0; i < n; i++)
			if (namespace_add(nss, kinds[g], &list[i]) < 0)
				goto fail;
	}
	return nss;
fail:
	imap_namespace_free(&nss);
	return NULL;
}

void
imap_namespace_free(struct imap_namespaces **nssp)
{
	struct imap_namespaces *nss = *nssp;
	size_t i;

	*nssp = NULL;
	if (nss == NULL)
		return;
	for (i = 0; i < nss->count; i++)
		free(nss->ns[i].prefix);
	free(nss->ns);
	free(nss);
}

/* Whether mailbox starts with ns's prefix. A leading "INBOX" (the whole
 * prefix, or followed by its delimiter: "INBOX.") matches in any case. */
static bool
prefix_matches(const struct imap_namespace *ns, const char *mailbox)
{
	size_t len = strlen(ns->prefix);

	if (len >= 5 && strncasecmp(ns->prefix, "INBOX", 5) == 0 &&
	    (ns->prefix[5] == '\0' || ns->prefix[5] == ns->delimiter) &&
	    strncasecmp(mailbox, "INBOX", 5) == 0)
		return strncmp(ns->prefix + 5, mailbox + 5, len - 5) == 0;
	return strncmp(ns->prefix, mailbox, len) == 0;
}

enum imap_namespace_kind
imap_namespace_kind(const struct imap_namespaces *nss, const char *mailbox)
{
	const struct imap_namespace *best = NULL;
	size_t i;

	if (nss == NULL || strcasecmp(mailbox, "INBOX") == 0)
		return IMAP_NS_PERSONAL;
	for (i = 0; i < nss->count; i++) {
		const struct imap_namespace *ns = &nss->ns[i];

		if (prefix_matches(ns, mailbox) &&
		    (best == NULL || strlen(ns->prefix) > strlen(best->prefix)))
			best = ns;
	}
	return best != NULL ? best->kind : IMAP_NS_PERSONAL;
}

const char *
imap_namespace_kind_name(enum imap_namespace_kind kind)
{
	switch (kind) {
	case IMAP_NS_PERSONAL:
		return "personal";
	case IMAP_NS_OTHER:
		return "other users";
	case IMAP_NS_SHARED:
		return "shared";
	}
	return "?";
}
