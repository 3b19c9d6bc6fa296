// SPDX-License-Identifier: GPL-3.0-or-later
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

static diag_sink_fn diag_sink;
static void (*emergency_hook)(void);
static char last_error_buf[1024];
static int quiet;

void diag_set_sink(diag_sink_fn fn)
{
	diag_sink = fn;
}

void util_set_emergency_hook(void (*fn)(void))
{
	emergency_hook = fn;
}

const char *last_error(void)
{
	return last_error_buf;
}

void error_quiet(int on)
{
	quiet = on;
}

static void emit(const char *level, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!strcmp(level, "error")) {
		memcpy(last_error_buf, msg, sizeof(msg));
		if (quiet)
			return;
	}
	if (diag_sink)
		diag_sink(level, msg);
	else
		fprintf(stderr, "%s: %s\n", level, msg);
}

int error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("error", fmt, ap);
	va_end(ap);
	return -1;
}

void warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("warning", fmt, ap);
	va_end(ap);
}

void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("note", fmt, ap);
	va_end(ap);
}

void debug(const char *fmt, ...)
{
	static int on = -1;
	va_list ap;

	if (on < 0)
		on = getenv("PYLEAKDB_DEBUG") != NULL;
	if (!on)
		return;
	fprintf(stderr, "[pyleakdb %.3f] ", (double)now_us() / 1e6);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void run_emergency_hook(void)
{
	void (*fn)(void) = emergency_hook;

	emergency_hook = NULL; /* never twice, even if the hook itself dies */
	if (fn)
		fn();
}

void die(const char *fmt, ...)
{
	va_list ap;

	run_emergency_hook();
	fputs("pyleakdb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

void bug_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	run_emergency_hook();
	fprintf(stderr, "pyleakdb: BUG at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		die("out of memory");
	return d;
}

char *xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (!d)
		die("out of memory");
	return d;
}

void sb_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
}

void sb_release(struct strbuf *sb)
{
	free(sb->buf);
	sb_init(sb);
}

char *sb_detach(struct strbuf *sb)
{
	char *s = sb->buf ? sb->buf : xstrdup("");

	sb_init(sb);
	return s;
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void sb_grow(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need < sb->len)
		die("string too long");
	if (need <= sb->alloc)
		return;
	sb->alloc = sb->alloc ? sb->alloc * 2 : 64;
	while (sb->alloc < need)
		sb->alloc *= 2;
	sb->buf = xrealloc(sb->buf, sb->alloc);
	/* a fresh buffer is an empty string, not whatever malloc left there */
	sb->buf[sb->len] = '\0';
}

void sb_add(struct strbuf *sb, const void *data, size_t n)
{
	sb_grow(sb, n);
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_addc(struct strbuf *sb, char c)
{
	sb_add(sb, &c, 1);
}

void sb_adds(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	sb_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(sb, fmt, ap);
	va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	} else if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		c = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		c = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and values past U+10FFFF are not valid */
	if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	*cp = c;
	return len;
}

/* Code points that move the cursor, change direction or hide text. */
static int unsafe_codepoint(uint32_t c)
{
	return (c >= 0x80 && c < 0xa0) || c == 0x061c || (c >= 0x200b && c <= 0x200f) ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0xfeff ||
	       c == 0x2028 || c == 0x2029;
}

void sb_add_escaped(struct strbuf *sb, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i = 0;

	sb_grow(sb, n);
	while (i < n) {
		unsigned char ch = p[i];
		uint32_t cp;
		size_t len;

		if (ch >= 0x20 && ch < 0x7f) {
			sb_addc(sb, (char)ch);
			i++;
			continue;
		}
		switch (ch) {
		case '\n':
			sb_adds(sb, "\\n");
			i++;
			continue;
		case '\t':
			sb_adds(sb, "\\t");
			i++;
			continue;
		case '\r':
			sb_adds(sb, "\\r");
			i++;
			continue;
		}
		len = ch >= 0x80 ? utf8_seq(p + i, n - i, &cp) : 0;
		if (len && !unsafe_codepoint(cp)) {
			sb_add(sb, p + i, len);
			i += len;
		} else if (len) {
			sb_addf(sb, "\\u%04" PRIx32, cp);
			i += len;
		} else {
			sb_addf(sb, "\\x%02x", ch);
			i++;
		}
	}
}

char *escape_dup(const void *data, size_t n)
{
	struct strbuf sb = STRBUF_INIT;

	sb_add_escaped(&sb, data, n);
	return sb_detach(&sb);
}

int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "BKMGTP";
	char *end;
	double v;
	const char *u;
	int shift = 0;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -1;
	if (!strncasecmp(s, "0x", 2))
		return parse_u64(s, out);
	if (s[strspn(s, "0123456789")] == '\0')
		return parse_u64(s, out); /* a plain integer stays exact past 2^53 */
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u)
			return -1;
		shift = (int)(u - units) * 10;
		end++;
		if ((*end == 'i' || *end == 'I') && shift)
			end++;
		if ((*end == 'b' || *end == 'B') && shift)
			end++;
		if (*end)
			return -1;
	}
	v = ldexp(v, shift);
	if (v >= 18446744073709551615.0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int parse_duration_us(const char *s, uint64_t *out)
{
	char *end;
	double v, mult;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	if (!*end || !strcmp(end, "s"))
		mult = 1e6;
	else if (!strcmp(end, "ms"))
		mult = 1e3;
	else if (!strcmp(end, "us"))
		mult = 1;
	else if (!strcmp(end, "ns"))
		mult = 1e-3;
	else
		return -1;
	v *= mult;
	if (v > 1e15)
		return -1;
	*out = (uint64_t)(v + 0.5); /* "4.1s" is 4100000 us, not one less */
	return 0;
}

void sb_add_bytes(struct strbuf *sb, uint64_t n)
{
	static const char *unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)n;
	int i = -1;

	if (n < 1024) {
		sb_addf(sb, "%" PRIu64 " B", n);
		return;
	}
	/* choose the unit and the precision on the value as it will be rounded */
	while (i < 5 && v >= 1023.95) {
		v /= 1024;
		i++;
	}
	if (v >= 99.995)
		sb_addf(sb, "%.1f %s", v, unit[i]);
	else
		sb_addf(sb, "%.2f %s", v, unit[i]);
}

void sb_add_bytes_delta(struct strbuf *sb, int64_t n)
{
	sb_addc(sb, n < 0 ? '-' : '+');
	sb_add_bytes(sb, n < 0 ? (uint64_t)(-(n + 1)) + 1 : (uint64_t)n);
}

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
