/* util: see util.h */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

ATTR_NORETURN static void
oom(size_t size)
{
	fprintf(stderr, "imaphook: out of memory allocating %zu bytes\n", size);
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		oom(size);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (p == NULL)
		oom(n * size);
	return p;
}

void *
xrealloc(void *p, size_t size)
{
	void *np = realloc(p, size == 0 ? 1 : size);

	if (np == NULL)
		oom(size);
	return np;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom(SIZE_MAX);
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		oom(0);
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

void
xfree(void *pp)
{
	void **p = pp;

	free(*p);
	*p = NULL;
}

void
str_init(struct str *s)
{
	s->data = NULL;
	s->len = 0;
	s->cap = 0;
}

void
str_free(struct str *s)
{
	free(s->data);
	str_init(s);
}

void
str_reset(struct str *s)
{
	s->len = 0;
	if (s->data != NULL)
		s->data[0] = '\0';
}

static void
str_reserve(struct str *s, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX - s->len - 1)
		oom(SIZE_MAX);
	need = s->len + extra + 1;
	if (need <= s->cap)
		return;
	if (s->cap == 0)
		s->cap = 64;
	while (s->cap < need)
		s->cap = s->cap > SIZE_MAX / 2 ? need : s->cap * 2;
	s->data = xrealloc(s->data, s->cap);
}

void
str_append_n(struct str *s, const void *data, size_t n)
{
	str_reserve(s, n);
	if (n > 0)
		memcpy(s->data + s->len, data, n);
	s->len += n;
	s->data[s->len] = '\0';
}

void
str_append(struct str *s, const char *cstr)
{
	str_append_n(s, cstr, strlen(cstr));
}

void
str_append_c(struct str *s, char c)
{
	str_append_n(s, &c, 1);
}

void
str_vprintf(struct str *s, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	str_reserve(s, (size_t)n);
	vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
	s->len += (size_t)n;
}

void
str_printf(struct str *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_vprintf(s, fmt, ap);
	va_end(ap);
}

char *
str_steal(struct str *s)
{
	char *p = s->data;

	if (p == NULL)
		p = xstrdup("");
	str_init(s);
	return p;
}

int
parse_u64_n(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*v_r = v;
	return 0;
}

int
parse_u32_n(const char *s, size_t len, uint32_t *v_r)
{
	uint64_t v;

	if (parse_u64_n(s, len, &v) < 0 || v > UINT32_MAX)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

int
parse_u64(const char *s, uint64_t *v_r)
{
	return parse_u64_n(s, strlen(s), v_r);
}

int
parse_u32(const char *s, uint32_t *v_r)
{
	return parse_u32_n(s, strlen(s), v_r);
}

void
format_iso8601(time_t t, char buf[static 21])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

uint64_t
monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
monotonic_ms(void)
{
	return monotonic_us() / 1000u;
}

bool
consttime_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const unsigned char *x = a, *y = b;
	unsigned char diff = alen != blen;
	size_t i;

	/* every byte of a is looked at, whatever b holds: the time tells
	 * nothing of b, not even its length */
	if (blen == 0)
		return alen == 0;
	for (i = 0; i < alen; i++)
		diff |= x[i] ^ y[i % blen];
	return diff == 0;
}

int
read_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	struct str s;
	char buf[8192];
	ssize_t n;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	str_init(&s);
	str_append_n(&s, "", 0);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		if (s.len + (size_t)n > max) {
			errno = EFBIG;
			goto fail;
		}
		str_append_n(&s, buf, (size_t)n);
	}
	close(fd);
	*len_r = s.len;
	*data_r = str_steal(&s);
	return 0;
fail:
	saved = errno;
	close(fd);
	str_free(&s);
	errno = saved;
	return -1;
}

int
fsync_dir(const char *path)
{
	int fd, ret, saved;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

int
write_full(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
write_file_replace(const char *path, int mode, bool sync,
    int (*fill)(int fd, void *arg), void *arg)
{
	char *tmp, *dir, *slash;
	int fd = -1, saved;

	tmp = xasprintf("%s.tmp", path);
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	if (fill(fd, arg) < 0 || (sync && fsync(fd) < 0))
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	if (sync && fsync_dir(dir) < 0)
		goto fail;
	free(tmp);
	free(dir);
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	free(dir);
	errno = saved;
	return -1;
}

struct fill_buf {
	const void *data;
	size_t len;
};

static int
fill_buf(int fd, void *arg)
{
	const struct fill_buf *b = arg;

	return write_full(fd, b->data, b->len);
}

int
write_file_atomic(const char *path, const void *data, size_t len, int mode)
{
	struct fill_buf b = { data, len };

	return write_file_replace(path, mode, true, fill_buf, &b);
}

int
write_file_atomic_nosync(const char *path, const void *data, size_t len, int mode)
{
	struct fill_buf b = { data, len };

	return write_file_replace(path, mode, false, fill_buf, &b);
}

int
write_file_atomic_fill(const char *path, int mode, int (*fill)(int fd, void *arg),
    void *arg)
{
	return write_file_replace(path, mode, true, fill, arg);
}

int
mkdir_p(const char *path, int mode)
{
	char *p, *s;
	struct stat st;

	if (*path == '\0') {
		errno = ENOENT;
		return -1;
	}
	p = xstrdup(path);
	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST) {
				int saved = errno;

				free(p);
				errno = saved;
				return -1;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(p);
		errno = ENOTDIR;
		return -1;
	}
	free(p);
	return 0;
}

void
strip_one_newline(char *s, size_t *len)
{
	if (*len > 0 && s[*len - 1] == '\n') {
		s[--*len] = '\0';
		if (*len > 0 && s[*len - 1] == '\r')
			s[--*len] = '\0';
	}
}

char *
base64_encode(const void *data, size_t len)
{
	size_t outlen = 4 * ((len + 2) / 3);
	char *out = xmalloc(outlen + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	out[outlen] = '\0';
	return out;
}

static bool
b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
}

int
base64_decode(const char *in, size_t inlen, unsigned char **out_r, size_t *outlen_r)
{
	unsigned char *out;
	size_t pad = 0, i;
	int n;

	/* strict: whole quanta, the alphabet only, at most two '=' and only at
	 * the very end (EVP_DecodeBlock alone accepts "====" or "Zg=a") */
	if (inlen % 4 != 0 || inlen > INT_MAX)
		return -1;
	if (inlen >= 1 && in[inlen - 1] == '=')
		pad++;
	if (inlen >= 2 && in[inlen - 2] == '=')
		pad++;
	for (i = 0; i < inlen - pad; i++)
		if (!b64_char(in[i]))
			return -1;
	out = xmalloc(inlen / 4 * 3 + 1);
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
	if (n < 0 || (size_t)n < pad) {
		free(out);
		return -1;
	}
	/* EVP_DecodeBlock counts padding bytes as output; remove them. */
	*outlen_r = (size_t)n - pad;
	out[*outlen_r] = '\0';
	*out_r = out;
	return 0;
}
