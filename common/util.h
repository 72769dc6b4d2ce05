/*
 * util: memory helpers that abort on out-of-memory, a growable string buffer,
 * checked number parsing, time formatting and small file helpers.
 *
 * Memory helpers (x*) never return NULL: running out of memory is the one
 * condition that aborts. Everything else (bad input, I/O errors) is reported
 * through return values.
 */
#ifndef IMAPHOOK_UTIL_H
#define IMAPHOOK_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ATTR_FORMAT(f, a) __attribute__((format(printf, f, a)))
#define ATTR_UNUSED __attribute__((unused))
#define ATTR_NORETURN __attribute__((noreturn))
#define ATTR_WARN_UNUSED __attribute__((warn_unused_result))
#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* xreallocarray: like reallocarray(3), aborts on overflow and OOM. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) ATTR_FORMAT(1, 2);
char *xvasprintf(const char *fmt, va_list ap) ATTR_FORMAT(1, 0);
/* Frees *p and sets it to NULL. */
void xfree(void *pp);

/* A growable byte buffer, always NUL-terminated (data[len] == 0). */
struct str {
	char *data;
	size_t len;
	size_t cap;
};
void str_init(struct str *s);
void str_free(struct str *s);
void str_reset(struct str *s);          /* len = 0, keeps the allocation */
void str_append(struct str *s, const char *cstr);
void str_append_n(struct str *s, const void *data, size_t n);
void str_append_c(struct str *s, char c);
void str_printf(struct str *s, const char *fmt, ...) ATTR_FORMAT(2, 3);
void str_vprintf(struct str *s, const char *fmt, va_list ap) ATTR_FORMAT(2, 0);
/* Takes the buffer out of s (caller frees); s is left empty. */
char *str_steal(struct str *s);

/* Checked decimal parsing: the whole string must be digits (no sign, no
 * space), the value must fit. Return 0 on success, -1 otherwise. */
int parse_u32(const char *s, uint32_t *v_r);
int parse_u64(const char *s, uint64_t *v_r);
/* Same, on a counted buffer (not NUL-terminated). */
int parse_u32_n(const char *s, size_t len, uint32_t *v_r);
int parse_u64_n(const char *s, size_t len, uint64_t *v_r);

/* Formats t as "2026-11-26T00:40:31Z" into buf (at least 21 bytes). */
void format_iso8601(time_t t, char buf[static 21]);
/* Monotonic clock in milliseconds / microseconds. */
uint64_t monotonic_ms(void);
uint64_t monotonic_us(void);

/* Compares a (the untrusted input) with b (the secret) in time that
 * depends on alen only, not on b's bytes nor its length. */
bool consttime_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Reads a whole file of at most max bytes. Returns 0 and a NUL-terminated
 * buffer (caller frees) in *data_r, *len_r; -1 with errno set on failure
 * (EFBIG when larger than max). */
int read_file(const char *path, size_t max, char **data_r, size_t *len_r);

/* write(2) until all len bytes are written (EINTR retried). 0, or -1 with
 * errno. */
int write_full(int fd, const void *data, size_t len);

/* Writes data to path atomically and durably: path.tmp, fsync, rename,
 * fsync of the directory. Returns 0, or -1 with errno set. */
int write_file_atomic(const char *path, const void *data, size_t len, int mode);
/* The same without either fsync: atomic (a reader or a crash of the process
 * sees the old or the new file) but durable only after a later fsync or
 * syncfs(2) of the file system, which the caller owes. */
int write_file_atomic_nosync(const char *path, const void *data, size_t len, int mode);
/* As write_file_atomic, with what fill(fd, arg) writes (0, or -1 with
 * errno set) as the content. */
int write_file_atomic_fill(const char *path, int mode, int (*fill)(int fd, void *arg),
    void *arg);
/* fsync(2) of the directory at path. Returns 0 or -1 with errno. */
int fsync_dir(const char *path);
/* mkdir -p with the given mode. Returns 0 or -1 with errno. */
int mkdir_p(const char *path, int mode);

/* Removes one trailing "\n" (or "\r\n") from a secret read from a file. */
void strip_one_newline(char *s, size_t *len);

/* base64 (standard alphabet, padded). Encode returns a malloc'd string.
 * Decode returns 0 and a malloc'd buffer, or -1 on invalid input. */
char *base64_encode(const void *data, size_t len);
int base64_decode(const char *in, size_t inlen, unsigned char **out_r, size_t *outlen_r);

#endif
