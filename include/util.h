/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * util: errors that carry their context, and a growable string buffer.
 *
 * error() prints one lowercase line, once, in the layer that knows what
 * failed, and returns -1 so that `return error(...)` reads naturally.  The
 * line goes to the sink installed by the output layer (a JSON record when
 * --json is on), else to stderr.  die() is for main only; BUG() is for
 * broken invariants.  Both run the emergency hook first, so that the target
 * is restored and detached before pyleakdb exits.
 */
#ifndef PYLEAKDB_UTIL_H
#define PYLEAKDB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED	      __attribute__((unused))
#define PRINTF(f, a)  __attribute__((format(printf, f, a)))
#define NORETURN      __attribute__((noreturn))

int error(const char *fmt, ...) PRINTF(1, 2);
void warning(const char *fmt, ...) PRINTF(1, 2);
/* Informational line ("waiting for a safe point"), to stderr in human mode. */
void note(const char *fmt, ...) PRINTF(1, 2);
NORETURN void die(const char *fmt, ...) PRINTF(1, 2);
/* A trace line on stderr when PYLEAKDB_DEBUG is set in the environment. */
void debug(const char *fmt, ...) PRINTF(1, 2);
#define BUG(...) bug_at(__FILE__, __LINE__, __VA_ARGS__)
NORETURN void bug_at(const char *file, int line, const char *fmt, ...) PRINTF(3, 4);

/* Where error()/warning()/note() lines go: level is "error", "warning" or "note". */
typedef void (*diag_sink_fn)(const char *level, const char *msg);
void diag_set_sink(diag_sink_fn fn);

/* Run before die()/BUG() exit: restores and detaches the target. */
void util_set_emergency_hook(void (*fn)(void));

/* The last message error() printed, for callers that need to pass it on. */
const char *last_error(void);
/* Suppress error() output (messages are still kept for last_error()). */
void error_quiet(int on);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* A growable NUL-terminated buffer; sb_release() frees it, sb_detach() hands it over. */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};
#define STRBUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}
void sb_init(struct strbuf *sb);
void sb_release(struct strbuf *sb);
char *sb_detach(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_grow(struct strbuf *sb, size_t extra);
void sb_add(struct strbuf *sb, const void *data, size_t n);
void sb_addc(struct strbuf *sb, char c);
void sb_adds(struct strbuf *sb, const char *s);
void sb_addf(struct strbuf *sb, const char *fmt, ...) PRINTF(2, 3);
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
/* The contents, never NULL. */
static inline const char *sb_str(const struct strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

/*
 * Append bytes read from the target so that they are safe on a terminal:
 * printable ASCII and valid UTF-8 pass through, quotes and backslashes are
 * kept, anything else (control characters, ESC, invalid UTF-8, NUL) becomes
 * \n, \t, \xNN, or \uNNNN for C1 and bidi controls.
 */
void sb_add_escaped(struct strbuf *sb, const void *data, size_t n);
/* The same, in a new string the caller frees. */
char *escape_dup(const void *data, size_t n);

/* Parse "4096", "0x1000", "4K", "2G", "1.5GiB" (powers of 1024). 0 on success. */
int parse_size(const char *s, uint64_t *out);
/* Parse a plain unsigned number (decimal or 0x hex). 0 on success. */
int parse_u64(const char *s, uint64_t *out);
/* Parse a duration: "100us", "5ms", "2s", "1.5s"; result in microseconds. */
int parse_duration_us(const char *s, uint64_t *out);
/* "1.30 MiB", "812.4 KiB", "12 B" into sb. */
void sb_add_bytes(struct strbuf *sb, uint64_t n);
/* The same with a sign: "+1.3 MiB", "-12 B". */
void sb_add_bytes_delta(struct strbuf *sb, int64_t n);

/* Monotonic time in microseconds. */
uint64_t now_us(void);

#endif
