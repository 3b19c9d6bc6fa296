// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * output: human and JSON backends over one result object.  See
 * include/output.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "output.h"

#define ESC_RING 64

static enum out_mode mode = OUT_HUMAN;
static json_t *cur_result, *cur_diag[3];
static char *cur_command;
static struct strbuf esc_ring[ESC_RING];
static size_t esc_next;

static const char *const diag_keys[3] = {"errors", "warnings", "notes"};
static int progress_shown;

void out_progress(const char *what, double seconds)
{
	if (mode == OUT_JSON || !isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\r\033[K%s: %.0f s (Ctrl-C to stop)", what, seconds);
	fflush(stderr);
	progress_shown = 1;
}

static void progress_clear(void)
{
	if (progress_shown) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
		progress_shown = 0;
	}
}

static int diag_index(const char *level)
{
	for (int i = 0; i < 3; i++)
		if (!strncmp(level, diag_keys[i], strlen(level)))
			return i;
	return 2;
}

static void diag_sink(const char *level, const char *msg)
{
	if (mode == OUT_JSON) {
		int i = diag_index(level);

		if (cur_result) {
			json_array_append_new(cur_diag[i], json_target_cstr(msg));
		} else {
			/* outside any command (start-up): a line of its own */
			json_t *o = json_object();

			json_object_set_new(o, level, json_target_cstr(msg));
			json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
			fputc('\n', stdout);
			fflush(stdout);
			json_decref(o);
		}
		return;
	}
	fflush(stdout);
	progress_clear();
	if (!strcmp(level, "note"))
		fprintf(stderr, "%s\n", msg);
	else
		fprintf(stderr, "%s: %s\n", level, msg);
}

void out_init(enum out_mode m)
{
	mode = m;
	diag_set_sink(diag_sink);
}

int out_json_mode(void)
{
	return mode == OUT_JSON;
}

void out_begin(const char *command_line)
{
	if (cur_result)
		BUG("output of a command began inside another");
	cur_result = json_object();
	for (int i = 0; i < 3; i++)
		cur_diag[i] = json_array();
	free(cur_command);
	cur_command = xstrdup(command_line);
}

json_t *out_result(void)
{
	if (!cur_result)
		BUG("no command under way");
	return cur_result;
}

static void esc_reset(void)
{
	for (size_t i = 0; i < ESC_RING; i++)
		sb_release(&esc_ring[i]);
	esc_next = 0;
}

void out_end(int ok, out_render_fn render)
{
	if (!cur_result)
		BUG("no command under way");
	progress_clear();
	if (mode == OUT_JSON) {
		json_t *o = json_object();

		json_object_set_new(o, "command", json_target_cstr(cur_command));
		json_object_set_new(o, "ok", json_boolean(ok));
		json_object_set(o, "result", cur_result);
		for (int i = 0; i < 3; i++)
			json_object_set(o, diag_keys[i], cur_diag[i]);
		json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
		fputc('\n', stdout);
		json_decref(o);
	} else if (render && json_object_size(cur_result) &&
		   (ok || json_object_get(cur_result, "raised"))) {
		/* a failed command shows only its errors, unless what failed was the user's own
		 * Python, whose traceback is the answer */
		render(cur_result);
	}
	fflush(stdout);
	json_decref(cur_result);
	cur_result = NULL;
	for (int i = 0; i < 3; i++) {
		json_decref(cur_diag[i]);
		cur_diag[i] = NULL;
	}
	esc_reset();
}

void out_event(json_t *ev, out_render_fn render)
{
	if (mode == OUT_JSON && cur_result) {
		json_t *events = json_object_get(cur_result, "events");

		if (!events) {
			events = json_array();
			json_object_set_new(cur_result, "events", events);
		}
		json_array_append_new(events, ev);
		return;
	}
	if (mode == OUT_HUMAN && render)
		render(ev);
	fflush(stdout);
	json_decref(ev);
}

void out_printf(const char *fmt, ...)
{
	va_list ap;

	if (mode == OUT_JSON)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
}

void out_puts(const char *s)
{
	if (mode == OUT_JSON)
		return;
	fputs(s, stdout);
	fputc('\n', stdout);
}

const char *esc(const char *s)
{
	struct strbuf *sb;

	if (!s)
		return "";
	/* a ring: a renderer may hold several escaped strings for one line */
	sb = &esc_ring[esc_next++ % ESC_RING];
	sb_reset(sb);
	sb_add_escaped(sb, s, strlen(s));
	return sb_str(sb);
}

const char *esc_member(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? esc(json_string_value(v)) : "";
}

void sb_add_utf8_sanitized(struct strbuf *sb, const char *bytes, size_t len)
{
	const unsigned char *p = (const unsigned char *)bytes;
	size_t i = 0;

	while (i < len) {
		size_t need, k;
		uint32_t c;

		if (p[i] < 0x80) {
			/* NUL cannot live in a C string for jansson: show it */
			if (p[i] == 0)
				sb_adds(sb, "\xef\xbf\xbd");
			else
				sb_addc(sb, (char)p[i]);
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			need = 2;
			c = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			need = 3;
			c = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			need = 4;
			c = p[i] & 0x07;
		} else {
			goto bad;
		}
		if (i + need > len)
			goto bad;
		for (k = 1; k < need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				goto bad;
			c = (c << 6) | (p[i + k] & 0x3f);
		}
		if ((need == 2 && c < 0x80) || (need == 3 && c < 0x800) ||
		    (need == 4 && c < 0x10000) || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			goto bad;
		sb_add(sb, p + i, need);
		i += need;
		continue;
	bad:
		sb_adds(sb, "\xef\xbf\xbd"); /* U+FFFD REPLACEMENT CHARACTER */
		i++;
	}
}

json_t *json_target_str(const char *bytes, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *j;

	sb_add_utf8_sanitized(&sb, bytes, len);
	/* valid UTF-8 by construction, and NUL-free: no need for jansson to check again */
	j = json_stringn_nocheck(sb_str(&sb), sb.len);
	sb_release(&sb);
	return j ? j : json_string("");
}

json_t *json_target_cstr(const char *s)
{
	return s ? json_target_str(s, strlen(s)) : json_null();
}

json_t *json_hex(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%#" PRIx64, v);
	return json_string(buf);
}

long long json_int_member(const json_t *obj, const char *key, long long def)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? json_integer_value(v) : def;
}
