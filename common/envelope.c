/* envelope: see envelope.h */
#include "envelope.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonutil.h"
#include "mime.h"
#include "util.h"

/* Positions in the ENVELOPE list. */
enum {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO, ENV_TO,
	ENV_CC, ENV_BCC, ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_FIELDS
};

/* Positions in an address list element (name adl mailbox host). */
enum { ADDR_NAME, ADDR_ADL, ADDR_MAILBOX, ADDR_HOST, ADDR_FIELDS };

/*
 * The bytes of a string argument: STRING or LITERAL, and leniently an
 * ATOM. Returns false for NIL, a list, and a NULL arg.
 */
static bool
arg_string(const struct imap_arg *arg, const char **s_r, size_t *len_r)
{
	if (arg == NULL)
		return false;
	switch (arg->type) {
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
	case IMAP_ARG_ATOM:
		*s_r = arg->v.str != NULL ? arg->v.str : "";
		*len_r = arg->v.str != NULL ? arg->len : 0;
		return true;
	default:
		return false;
	}
}

/* A malloc'd C string of s[0..len); NUL bytes (a literal may hold them)
 * become U+FFFD instead of cutting the text short. */
static char *
cstr_dup(const char *s, size_t len)
{
	struct str out;
	const char *nul;

	str_init(&out);
	str_append_n(&out, "", 0);
	while ((nul = memchr(s, '\0', len)) != NULL) {
		str_append_n(&out, s, (size_t)(nul - s));
		str_append(&out, "\xef\xbf\xbd");
		len -= (size_t)(nul - s) + 1;
		s = nul + 1;
	}
	str_append_n(&out, s, len);
	return str_steal(&out);
}

/* A JSON string of the argument's bytes, or null. */
static json_t *
raw_json(const struct imap_arg *arg)
{
	const char *s;
	size_t len;

	if (!arg_string(arg, &s, &len))
		return json_null();
	return json_str_n(s, len);
}

/* The RFC 2047-decoded text of the argument (NULL for NIL). */
static char *
decoded_text(const struct imap_arg *arg)
{
	const char *s;
	size_t len;
	char *c, *d;

	if (!arg_string(arg, &s, &len))
		return NULL;
	c = cstr_dup(s, len);
	d = mime_decode_header_text(c);
	free(c);
	return d;
}

static json_t *
date_json(const struct imap_arg *arg)
{
	char buf[21], *c;
	const char *s;
	size_t len;
	int r;

	if (!arg_string(arg, &s, &len))
		return json_null();
	c = cstr_dup(s, len);
	r = mime_date_to_iso(c, buf);
	free(c);
	return r == 0 ? json_str(buf) : json_null();
}

static json_t *
subject_json(const struct imap_arg *arg)
{
	char *d = decoded_text(arg);
	json_t *j = json_str(d);

	free(d);
	return j;
}

/* An address structure: a list of four strings or NILs. */
static bool
address_fields(const struct imap_arg *arg, const struct imap_arg **f_r)
{
	uint32_t i;

	if (arg->type != IMAP_ARG_LIST || arg->len != ADDR_FIELDS || arg->v.list == NULL)
		return false;
	for (i = 0; i < ADDR_FIELDS; i++) {
		if (arg->v.list[i].type == IMAP_ARG_LIST)
			return false;
	}
	*f_r = arg->v.list;
	return true;
}

static json_t *
address_json(const struct imap_arg *f, bool domainless)
{
	const char *mbox, *host;
	size_t mlen, hlen;
	struct str addr;
	json_t *name, *address, *o;
	char *d;

	d = decoded_text(&f[ADDR_NAME]);
	name = d != NULL && *d != '\0' ? json_str(d) : json_null();
	free(d);

	str_init(&addr);
	if (!arg_string(&f[ADDR_MAILBOX], &mbox, &mlen)) {
		address = json_null();
	} else if (domainless || !arg_string(&f[ADDR_HOST], &host, &hlen)) {
		address = json_str_n(mbox, mlen);
	} else {
		str_append_n(&addr, mbox, mlen);
		str_append_c(&addr, '@');
		str_append_n(&addr, host, hlen);
		address = json_str_n(addr.data, addr.len);
	}
	str_free(&addr);

	if (json_is_null(name) && json_is_null(address)) {
		json_decref(name);
		json_decref(address);
		return NULL;
	}
	o = json_object();
	json_object_set_new(o, "name", name);
	json_object_set_new(o, "address", address);
	return o;
}

/*
 * An address list. RFC 3501 group syntax: host NIL with a mailbox starts
 * a group named by the mailbox, mailbox and host NIL end it. Markers are
 * skipped, members listed. A would-be group start that no end marker
 * follows (or that appears inside a group) is taken as an address
 * without a domain, which some servers send that way.
 */
static json_t *
addresses_json(const struct imap_arg *arg)
{
	const struct imap_arg *f;
	json_t *out = json_array(), *a;
	bool in_group = false, has_mbox, has_host;
	const char *s;
	size_t len;
	uint32_t i, n;
	int64_t last_end = -1;

	if (arg == NULL || arg->type != IMAP_ARG_LIST || arg->v.list == NULL)
		return out;
	n = arg->len;
	for (i = 0; i < n; i++) {
		if (address_fields(&arg->v.list[i], &f) &&
		    !arg_string(&f[ADDR_MAILBOX], &s, &len) &&
		    !arg_string(&f[ADDR_HOST], &s, &len))
			last_end = i;
	}
	for (i = 0; i < n; i++) {
		if (!address_fields(&arg->v.list[i], &f))
			continue;
		has_mbox = arg_string(&f[ADDR_MAILBOX], &s, &len);
		has_host = arg_string(&f[ADDR_HOST], &s, &len);
		if (!has_mbox && !has_host) {
			in_group = false;
			continue;
		}
		if (has_mbox && !has_host && !in_group && (int64_t)i < last_end) {
			in_group = true;
			continue;
		}
		if ((a = address_json(f, has_mbox && !has_host)) != NULL)
			json_array_append_new(out, a);
	}
	return out;
}

json_t *
envelope_to_json(const struct imap_arg *env)
{
	const struct imap_arg *f[ENV_FIELDS] = { NULL };
	json_t *o;
	uint32_t i;

	if (env != NULL && env->type == IMAP_ARG_LIST && env->v.list != NULL) {
		for (i = 0; i < env->len && i < ENV_FIELDS; i++)
			f[i] = &env->v.list[i];
	}
	o = json_object();
	json_object_set_new(o, "date", date_json(f[ENV_DATE]));
	json_object_set_new(o, "subject", subject_json(f[ENV_SUBJECT]));
	json_object_set_new(o, "messageId", raw_json(f[ENV_MESSAGE_ID]));
	json_object_set_new(o, "inReplyTo", raw_json(f[ENV_IN_REPLY_TO]));
	json_object_set_new(o, "from", addresses_json(f[ENV_FROM]));
	json_object_set_new(o, "sender", addresses_json(f[ENV_SENDER]));
	json_object_set_new(o, "replyTo", addresses_json(f[ENV_REPLY_TO]));
	json_object_set_new(o, "to", addresses_json(f[ENV_TO]));
	json_object_set_new(o, "cc", addresses_json(f[ENV_CC]));
	json_object_set_new(o, "bcc", addresses_json(f[ENV_BCC]));
	return o;
}

/*
 * IMAP date-time.
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d_r = doy - (153 * mp + 2) / 5 + 1;
	*m_r = mp < 10 ? mp + 3 : mp - 9;
	*y_r = (int64_t)yoe + era * 400 + (*m_r <= 2);
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
	static const unsigned days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *pp into *v_r and advances *pp. */
static bool
digits(const char **pp, unsigned n, unsigned *v_r)
{
	const char *p = *pp;
	unsigned v = 0, i;

	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*pp = p + n;
	*v_r = v;
	return true;
}

int
imap_datetime_to_iso(const char *s, char buf[static 21])
{
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	const char *p = s;
	unsigned day, mon = 0, year, hh, mm, ss, zh, zm, i;
	int64_t secs, days, y;
	int sign, n;

	buf[0] = '\0';
	if (p == NULL)
		return -1;
	if (*p == ' ')
		p++;
	if (!digits(&p, 2, &day) && !digits(&p, 1, &day))
		return -1;
	if (*p++ != '-')
		return -1;
	for (i = 0; i < 12; i++) {
		if (strncasecmp(p, months[i], 3) == 0) {
			mon = i + 1;
			break;
		}
	}
	if (mon == 0)
		return -1;
	p += 3;
	if (*p++ != '-' || !digits(&p, 4, &year) || *p++ != ' ' ||
	    !digits(&p, 2, &hh) || *p++ != ':' || !digits(&p, 2, &mm) ||
	    *p++ != ':' || !digits(&p, 2, &ss) || *p++ != ' ')
		return -1;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if (!digits(&p, 2, &zh) || !digits(&p, 2, &zm) || *p != '\0')
		return -1;
	if (year < 1 || day < 1 || day > days_in_month(year, mon) || hh > 23 ||
	    mm > 59 || ss > 60 || zm > 59)
		return -1;

	secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
	secs -= sign * (int64_t)(zh * 3600 + zm * 60);
	days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	secs -= days * 86400;
	civil_from_days(days, &y, &mon, &day);
	if (y < 1 || y > 9999)
		return -1;
	n = snprintf(buf, 21, "%04d-%02u-%02uT%02u:%02u:%02uZ", (int)y, mon, day,
	    (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
	if (n != 20) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

json_t *
flags_to_json(const struct imap_arg *list, bool drop_recent)
{
	const struct imap_arg *items;
	uint32_t n, i;
	json_t *a = json_array();

	if (list == NULL || !imap_arg_get_list(list, &items, &n))
		return a;
	for (i = 0; i < n; i++) {
		const char *s;
		size_t len;

		if (imap_arg_get_astring(&items[i], &s, &len) &&
		    !(drop_recent && strcasecmp(s, "\\Recent") == 0))
			json_array_append_new(a, json_str_n(s, len));
	}
	return a;
}
