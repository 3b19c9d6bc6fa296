/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * output: the one way commands speak.
 *
 * A command fills a JSON object with its result; the output mode decides
 * what the user sees.  In human mode the command's renderer turns the
 * object into text; with --json the object is printed as one line:
 *
 *   {"command": "bt all", "ok": true, "result": {...}, "errors": [...],
 *    "warnings": [...], "notes": [...]}
 *
 * so that both views come from the same data.  Strings from the target are
 * put in with json_target_str(), which guarantees valid UTF-8; renderers
 * print every string through esc(), which makes it safe on a terminal.
 */
#ifndef PYLEAKDB_OUTPUT_H
#define PYLEAKDB_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum out_mode {
	OUT_HUMAN,
	OUT_JSON,
};

typedef void (*out_render_fn)(const json_t *result);

void out_init(enum out_mode mode);
int out_json_mode(void);

void out_begin(const char *command_line);
/* The result object of the command under way (never NULL between begin and end). */
json_t *out_result(void);
/* Prints the command's output; ok is whether it succeeded. */
void out_end(int ok, out_render_fn render);
/* Something to show now, while the command goes on (human: rendered now; JSON:
 * appended to result.events).  Takes ownership of ev. */
void out_event(json_t *ev, out_render_fn render);

/* A progress line on a terminal ("running X: 3 s"), rewritten in place and cleared when the
 * command ends; nothing when stderr is not a terminal or in JSON mode. */
void out_progress(const char *what, double seconds);

/* Text for humans: in JSON mode it is dropped. */
void out_printf(const char *fmt, ...) PRINTF(1, 2);
void out_puts(const char *s);

/* A terminal-safe copy of s, valid for the next 63 calls (long enough for one line). */
const char *esc(const char *s);
/* The same for the string member key of obj ("" when absent). */
const char *esc_member(const json_t *obj, const char *key);

/* Bytes from the target as a JSON string: invalid UTF-8 becomes U+FFFD. */
json_t *json_target_str(const char *bytes, size_t len);
json_t *json_target_cstr(const char *s);
/* "0x7f12..." */
json_t *json_hex(uint64_t v);
/* The member as an integer, or def when absent. */
long long json_int_member(const json_t *obj, const char *key, long long def);

/* Make bytes valid UTF-8 (exposed for tests). */
void sb_add_utf8_sanitized(struct strbuf *sb, const char *bytes, size_t len);

#endif
