// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * test-cmd: the command table and its lookup, and the line splitter.
 *
 * Lookup is checked against the documented rule (an exact name, then an
 * alias, then a unique prefix) computed here independently over the same
 * tables, for every prefix of every name; the tables are checked for the
 * invariants help, completion and lookup rely on; and "help" (run as a user
 * would, in JSON mode) must list exactly the families walked here, so a new
 * family cannot escape the invariants.  cmd_split is checked against the
 * shell's quoting rules and on hostile input (unbalanced, huge, control
 * bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "output.h"
#include "util.h"

/* The top-level families, in the order cmd.c gathers them. */
static const struct cmd *const families[] = {
    cmd_target_cmds, cmd_stack_cmds, cmd_heap_cmds, cmd_refs_cmds,
    cmd_break_cmds,  cmd_mem_cmds,   cmd_misc_cmds,
};

/*
 * A summary begins in lowercase ("attach to a running Python process"),
 * unless its first word is an acronym ("RSS") or one of these proper nouns.
 */
static const char *const proper_nouns[] = {"Python", "CPython", NULL};

/* Commands that may have a handler and no renderer because they print nothing. */
static const char *const silent_cmds[] = {NULL};

/* ----- helpers ----- */

static int is_silent(const char *name)
{
	for (const char *const *s = silent_cmds; *s; s++)
		if (!strcmp(*s, name))
			return 1;
	return 0;
}

static int lowercase_initial(const char *summary)
{
	size_t len = strcspn(summary, " ,:;");
	int acronym = len >= 2;

	if (islower((unsigned char)summary[0]))
		return 1;
	for (size_t i = 0; i < len; i++)
		if (!isupper((unsigned char)summary[i]) && !isdigit((unsigned char)summary[i]))
			acronym = 0;
	if (acronym)
		return 1;
	for (const char *const *p = proper_nouns; *p; p++)
		if (strlen(*p) == len && !strncmp(summary, *p, len))
			return 1;
	return 0;
}

/* Does the space-separated alias list hold word? (our own reading, not cmd.c's) */
static int alias_list_has(const char *aliases, const char *word)
{
	char *copy, *tok, *save = NULL;
	int found = 0;

	if (!aliases)
		return 0;
	copy = xstrdup(aliases);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (!strcmp(tok, word))
			found = 1;
	free(copy);
	return found;
}

/* Every entry of table (NULL: every family), in lookup order. */
static size_t collect(const struct cmd *table, const struct cmd **out, size_t max)
{
	size_t n = 0;

	if (table) {
		for (const struct cmd *c = table; c->name; c++) {
			assert_true(n < max);
			out[n++] = c;
		}
		return n;
	}
	for (size_t f = 0; f < ARRAY_SIZE(families); f++)
		for (const struct cmd *c = families[f]; c->name; c++) {
			assert_true(n < max);
			out[n++] = c;
		}
	return n;
}

/*
 * The documented lookup, computed independently: the entry whose name is
 * word, else the one with word as an alias, else the only name word
 * prefixes.  Returns the entry, or NULL and the names word prefixes (in
 * alphabetical order, ", "-separated) in *names.
 */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const struct cmd *expected_lookup(const struct cmd *table, const char *word,
					 struct strbuf *names, size_t *nmatches)
{
	const struct cmd *v[256], *found = NULL;
	const char *hits[256];
	size_t n = collect(table, v, ARRAY_SIZE(v)), i, matches = 0;

	sb_reset(names);
	for (i = 0; i < n; i++)
		if (!strcmp(v[i]->name, word))
			return v[i];
	for (i = 0; i < n; i++)
		if (alias_list_has(v[i]->aliases, word))
			return v[i];
	for (i = 0; i < n; i++)
		if (!strncmp(v[i]->name, word, strlen(word))) {
			hits[matches++] = v[i]->name;
			found = v[i];
		}
	qsort(hits, matches, sizeof(*hits), cmp_names);
	for (i = 0; i < matches; i++) {
		if (i)
			sb_adds(names, ", ");
		sb_adds(names, hits[i]);
	}
	*nmatches = matches;
	return matches == 1 ? found : NULL;
}

/* cmd_lookup must agree with expected_lookup, result and message. */
static void check_lookup(const struct cmd *table, const char *word)
{
	struct strbuf names = STRBUF_INIT, msg = STRBUF_INIT;
	const struct cmd *want, *got = (const struct cmd *)&got;
	size_t matches = 0;
	int r;

	want = expected_lookup(table, word, &names, &matches);
	error_quiet(1);
	r = cmd_lookup(table, word, &got);
	error_quiet(0);
	if (want) {
		sb_release(&names);
		if (r != 0 || got != want)
			fail_msg("lookup(%s, \"%s\"): got %d %s, want %s", table ? "sub" : "top",
				 word, r, r == 0 && got ? got->name : "(none)", want->name);
		return;
	}
	if (r != -1)
		fail_msg("lookup(%s, \"%s\") resolved to %s, want an error", table ? "sub" : "top",
			 word, got ? got->name : "(null)");
	assert_null(got);
	if (matches > 1)
		sb_addf(&msg, "ambiguous command: %s, could be: %s", word, sb_str(&names));
	else if (table)
		sb_addf(&msg, "undefined subcommand: \"%s\"; try \"help\"", word);
	else
		sb_addf(&msg, "undefined command: \"%s\"; try \"help\"", word);
	assert_string_equal(last_error(), sb_str(&msg));
	sb_release(&names);
	sb_release(&msg);
}

static const struct cmd *lookup_ok(const struct cmd *table, const char *word)
{
	const struct cmd *c = NULL;

	error_quiet(1);
	if (cmd_lookup(table, word, &c) != 0)
		fail_msg("lookup \"%s\" failed: %s", word, last_error());
	error_quiet(0);
	assert_non_null(c);
	return c;
}

static void lookup_fails(const struct cmd *table, const char *word)
{
	const struct cmd *c = (const struct cmd *)&c;

	error_quiet(1);
	if (cmd_lookup(table, word, &c) != -1)
		fail_msg("lookup \"%s\" should fail, got %s", word, c ? c->name : "(null)");
	error_quiet(0);
	assert_null(c);
}

/* Redirect stdout into a temporary file between capture_start and capture_end. */
static FILE *cap_file;
static int cap_saved_fd = -1;

static void capture_start(void)
{
	fflush(stdout);
	cap_file = tmpfile();
	assert_non_null(cap_file);
	cap_saved_fd = dup(STDOUT_FILENO);
	assert_true(cap_saved_fd >= 0);
	assert_true(dup2(fileno(cap_file), STDOUT_FILENO) >= 0);
}

static char *capture_end(void)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t n;

	fflush(stdout);
	assert_true(dup2(cap_saved_fd, STDOUT_FILENO) >= 0);
	close(cap_saved_fd);
	cap_saved_fd = -1;
	rewind(cap_file);
	while ((n = fread(buf, 1, sizeof(buf), cap_file)) > 0)
		sb_add(&sb, buf, n);
	fclose(cap_file);
	cap_file = NULL;
	return sb_detach(&sb);
}

/* Run one line in JSON mode; returns the parsed record (the last line printed). */
static json_t *run_json(const char *line, int *ret)
{
	struct cmd_ctx ctx = {0};
	json_error_t jerr;
	char *out, *last;
	json_t *rec;
	size_t len;

	out_init(OUT_JSON);
	capture_start();
	*ret = cmd_execute(&ctx, line);
	out = capture_end();
	out_init(OUT_HUMAN);
	len = strlen(out);
	if (len && out[len - 1] == '\n')
		out[--len] = '\0';
	last = strrchr(out, '\n');
	last = last ? last + 1 : out;
	rec = json_loads(last, 0, &jerr);
	if (!rec)
		fail_msg("'%s' printed no JSON record: %s (%s)", line, out, jerr.text);
	free(out);
	return rec;
}

/* ----- lookup ----- */

static void test_lookup_exact_names(void **state)
{
	static const char *const names[] = {"attach", "run",   "continue", "detach",
					    "kill",   "quit",  "bt",	   "pystack",
					    "x",      "disas", "info",	   "help"};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_string_equal(lookup_ok(NULL, names[i])->name, names[i]);
}

static void test_lookup_aliases(void **state)
{
	static const char *const pairs[][2] = {
	    {"c", "continue"}, {"q", "quit"},	     {"exit", "quit"},	       {"backtrace", "bt"},
	    {"where", "bt"},   {"py-bt", "pystack"}, {"disassemble", "disas"}, {"i", "info"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		const struct cmd *c = lookup_ok(NULL, pairs[i][0]);

		if (strcmp(c->name, pairs[i][1]))
			fail_msg("\"%s\" gave %s, want %s", pairs[i][0], c->name, pairs[i][1]);
		assert_true(alias_list_has(c->aliases, pairs[i][0]));
	}
}

static void test_lookup_unique_prefixes(void **state)
{
	static const char *const pairs[][2] = {
	    {"pys", "pystack"}, {"det", "detach"},    {"cont", "continue"},
	    {"att", "attach"},	{"he", "help"},	      {"inf", "info"},
	    {"ki", "kill"},	{"disab", "disable"}, {"pystac", "pystack"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		const struct cmd *c = lookup_ok(NULL, pairs[i][0]);

		if (strcmp(c->name, pairs[i][1]))
			fail_msg("\"%s\" gave %s, want %s", pairs[i][0], c->name, pairs[i][1]);
	}
}

/* "b", gdb's own example: the error names break and bt, alphabetically. */
static void test_lookup_ambiguous_b(void **state)
{
	const struct cmd *c = (const struct cmd *)&c;

	(void)state;
	error_quiet(1);
	assert_int_equal(cmd_lookup(NULL, "b", &c), -1);
	error_quiet(0);
	assert_null(c);
	assert_string_equal(last_error(), "ambiguous command: b, could be: break, bt");
	check_lookup(NULL, "b");
}

/* "d" is ambiguous (delete, detach, disable, disas): the message lists every candidate. */
static void test_lookup_ambiguous_d(void **state)
{
	const struct cmd *c = (const struct cmd *)&c;
	const char *msg, *list;

	(void)state;
	error_quiet(1);
	assert_int_equal(cmd_lookup(NULL, "d", &c), -1);
	error_quiet(0);
	assert_null(c);
	msg = last_error();
	assert_true(!strncmp(
	    msg, "ambiguous command: d, could be: ", strlen("ambiguous command: d, could be: ")));
	list = msg + strlen("ambiguous command: d, could be: ");
	assert_non_null(strstr(list, "detach"));
	assert_non_null(strstr(list, "disas"));
	assert_string_equal(list, "delete, detach, disable, disas");
	check_lookup(NULL, "d"); /* and exactly the table's list, alphabetically */
}

/* Every prefix of every name and alias, and a few more words, agree with the rule. */
static void test_lookup_matches_rule(void **state)
{
	const struct cmd *v[256];
	size_t n = collect(NULL, v, ARRAY_SIZE(v));
	char word[128];

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *names[16];
		size_t nn = 0;
		char *copy = v[i]->aliases ? xstrdup(v[i]->aliases) : NULL, *tok, *save = NULL;

		names[nn++] = v[i]->name;
		for (tok = copy ? strtok_r(copy, " ", &save) : NULL; tok && nn < 16;
		     tok = strtok_r(NULL, " ", &save))
			names[nn++] = tok;
		for (size_t k = 0; k < nn; k++)
			for (size_t len = 1; len <= strlen(names[k]) && len < sizeof(word); len++) {
				memcpy(word, names[k], len);
				word[len] = '\0';
				check_lookup(NULL, word);
				if (v[i]->subcmds)
					check_lookup(v[i]->subcmds, word);
			}
		free(copy);
	}
	for (int ch = 'a'; ch <= 'z'; ch++) {
		word[0] = (char)ch;
		word[1] = '\0';
		check_lookup(NULL, word);
		check_lookup(cmd_info_cmds, word);
	}
}

static void test_lookup_unknown(void **state)
{
	static const char *const words[] = {"frobnicate", "zz",	       "bta", "BT", "Continue",
					    "threads",	  "continue2", " bt", "bt "};
	const struct cmd *c;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		char want[256];

		c = (const struct cmd *)&c;
		error_quiet(1);
		assert_int_equal(cmd_lookup(NULL, words[i], &c), -1);
		error_quiet(0);
		assert_null(c);
		snprintf(want, sizeof(want), "undefined command: \"%s\"; try \"help\"", words[i]);
		assert_string_equal(last_error(), want);
	}
	/* the empty word is no command (every name has it as a prefix) */
	lookup_fails(NULL, "");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++)
		for (const struct cmd *t = families[f]; t->name; t++)
			if (t->subcmds)
				lookup_fails(t->subcmds, "");
}

/* A word from the user (or a script) is escaped in the message. */
static void test_lookup_error_escapes_word(void **state)
{
	static const char hostile[] = "\x1b]0;owned\x07\x1b[2J\r\nzz\x7f\xff";
	const struct cmd *c;
	const char *msg;

	(void)state;
	for (int sub = 0; sub < 2; sub++) {
		error_quiet(1);
		assert_int_equal(cmd_lookup(sub ? cmd_info_cmds : NULL, hostile, &c), -1);
		error_quiet(0);
		msg = last_error();
		for (const char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				fail_msg("raw control byte 0x%02x in \"%s\"", (unsigned char)*p,
					 msg);
		assert_non_null(strstr(msg, "\\x1b]0;owned\\x07\\x1b[2J\\r\\nzz\\x7f\\xff"));
	}
}

static void test_lookup_subcommands(void **state)
{
	const struct cmd *info = lookup_ok(NULL, "info"), *c;

	(void)state;
	assert_ptr_equal(info->subcmds, cmd_info_cmds);
	assert_string_equal(lookup_ok(cmd_info_cmds, "th")->name, "threads");
	assert_string_equal(lookup_ok(cmd_info_cmds, "threads")->name, "threads");
	assert_string_equal(lookup_ok(cmd_info_cmds, "me")->name, "memory");
	assert_string_equal(lookup_ok(cmd_info_cmds, "ma")->name, "maps");
	assert_string_equal(lookup_ok(cmd_info_cmds, "maps")->name, "maps");
	assert_string_equal(lookup_ok(cmd_info_cmds, "i")->name, "interp");

	c = (const struct cmd *)&c;
	error_quiet(1);
	assert_int_equal(cmd_lookup(cmd_info_cmds, "m", &c), -1);
	error_quiet(0);
	assert_null(c);
	assert_string_equal(last_error(), "ambiguous command: m, could be: maps, memory");

	/* a subcommand table is searched alone: no top-level names, and the other way round */
	error_quiet(1);
	assert_int_equal(cmd_lookup(cmd_info_cmds, "bt", &c), -1);
	error_quiet(0);
	assert_string_equal(last_error(), "undefined subcommand: \"bt\"; try \"help\"");
	lookup_fails(cmd_info_cmds, "help");
	lookup_fails(NULL, "threads");
	lookup_fails(NULL, "memory");
}

/*
 * The rule is "an exact name, then an alias": an exact name must win even
 * over an alias of an entry earlier in the table.  (The real tables never
 * let the two collide, see test_table_invariants; this checks the lookup
 * itself.)
 */
static void test_lookup_exact_name_beats_earlier_alias(void **state)
{
	static const struct cmd table[] = {
	    {.name = "step", .aliases = "s next", .usage = "step", .summary = "one step"},
	    {.name = "next", .usage = "next", .summary = "one line"},
	    {0},
	};

	(void)state;
	assert_ptr_equal(lookup_ok(table, "s"), &table[0]);
	assert_ptr_equal(lookup_ok(table, "step"), &table[0]);
	if (lookup_ok(table, "next") != &table[1])
		fail_msg("\"next\" found 'step' (which has it as an alias), not the command "
			 "named next");
}

/* ----- table invariants ----- */

/* Every broken invariant, so that one run shows them all. */
static struct strbuf problems = STRBUF_INIT;

PRINTF(1, 2) static void problem(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&problems, fmt, ap);
	va_end(ap);
	sb_addc(&problems, '\n');
}

struct seen {
	const char *word;
	const struct cmd *owner;
	int is_name;
};

static void check_table(const struct cmd *table, const char *parent, struct seen *seen,
			size_t *nseen, size_t max_seen)
{
	for (const struct cmd *c = table; c->name; c++) {
		char full[256];
		size_t flen;

		assert_non_null(c->name);
		if (!c->name[0])
			problem("an entry under '%s' has an empty name", parent ? parent : "(top)");
		if (!c->summary || !c->summary[0]) {
			problem("'%s' has no summary", c->name);
			continue;
		}
		for (const char *p = c->name; *p; p++)
			if (isspace((unsigned char)*p) || isupper((unsigned char)*p))
				problem("command name '%s' has a space or a capital", c->name);

		/* usage: "NAME" or "NAME ARGS", after the parent's name for a subcommand */
		snprintf(full, sizeof(full), "%s%s%s", parent ? parent : "", parent ? " " : "",
			 c->name);
		flen = strlen(full);
		if (!c->usage || strncmp(c->usage, full, flen) ||
		    (c->usage[flen] && c->usage[flen] != ' '))
			problem("usage of '%s' is \"%s\": it must start with \"%s\"", full,
				c->usage ? c->usage : "(null)", full);

		/* summary: one line, lowercase first letter, no final full stop */
		if (!lowercase_initial(c->summary))
			problem("summary of '%s' must begin in lowercase: \"%s\"", full,
				c->summary);
		if (c->summary[strlen(c->summary) - 1] == '.')
			problem("summary of '%s' ends with a full stop: \"%s\"", full, c->summary);
		if (strchr(c->summary, '\n'))
			problem("summary of '%s' is more than one line", full);

		if (c->min_args < 0 || (c->max_args != -1 && c->min_args > c->max_args) ||
		    c->max_args < -1)
			problem("'%s' has min_args %d, max_args %d", full, c->min_args,
				c->max_args);

		if (c->subcmds) {
			if (c->min_args || c->max_args)
				problem("'%s' has subcommands and argument bounds", full);
			if (!c->subcmds->name)
				problem("'%s' has an empty subcommand table", full);
		} else if (!c->fn) {
			problem("'%s' has neither a handler nor subcommands", full);
		}
		if (c->fn && !c->render && !is_silent(c->name))
			problem("'%s' has a handler but no renderer", full);

		/* names and aliases: unique in this table */
		for (int k = -1;; k++) {
			char word[64];
			const char *a = c->aliases;

			if (k == -1) {
				snprintf(word, sizeof(word), "%s", c->name);
			} else {
				int skip = k;

				if (!a)
					break;
				while (skip-- > 0 && *a) {
					a += strcspn(a, " ");
					a += strspn(a, " ");
				}
				if (!*a)
					break;
				snprintf(word, sizeof(word), "%.*s", (int)strcspn(a, " "), a);
			}
			for (size_t j = 0; j < *nseen; j++)
				if (!strcmp(seen[j].word, word) && seen[j].owner != c)
					problem("'%s' is both %s of '%s' and %s of '%s'", word,
						seen[j].is_name ? "the name" : "an alias",
						seen[j].owner->name,
						k == -1 ? "the name" : "an alias", c->name);
			assert_true(*nseen < max_seen);
			seen[*nseen].word = xstrdup(word);
			seen[*nseen].owner = c;
			seen[*nseen].is_name = k == -1;
			(*nseen)++;
		}
		if (c->aliases &&
		    (!c->aliases[0] || c->aliases[0] == ' ' ||
		     c->aliases[strlen(c->aliases) - 1] == ' ' || strstr(c->aliases, "  ")))
			problem("aliases of '%s' are not single-space separated: \"%s\"", full,
				c->aliases);

		/* every name and alias finds its own entry (an exact word always wins) */
		for (size_t j = 0; j < *nseen; j++)
			if (seen[j].owner == c) {
				const struct cmd *got = NULL;

				error_quiet(1);
				if (cmd_lookup(parent ? table : NULL, seen[j].word, &got) < 0)
					problem("'%s' does not find '%s': %s", seen[j].word,
						c->name, last_error());
				else if (got != c)
					problem("'%s' finds '%s', not '%s'", seen[j].word,
						got->name, c->name);
				error_quiet(0);
			}

		if (c->arg_words)
			for (const char *const *w = c->arg_words; *w; w++)
				assert_true((*w)[0] != '\0');
	}
}

static void check_subtables(const struct cmd *table, const char *parent)
{
	for (const struct cmd *c = table; c->name; c++) {
		struct seen seen[256];
		size_t nseen = 0;
		char full[256];

		if (!c->subcmds)
			continue;
		snprintf(full, sizeof(full), "%s%s%s", parent ? parent : "", parent ? " " : "",
			 c->name);
		check_table(c->subcmds, full, seen, &nseen, ARRAY_SIZE(seen));
		for (size_t j = 0; j < nseen; j++)
			free((char *)seen[j].word);
		check_subtables(c->subcmds, full);
	}
}

static void test_table_invariants(void **state)
{
	struct seen seen[256];
	size_t nseen = 0;

	(void)state;
	/* the families share one namespace */
	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		assert_non_null(families[f]->name); /* no empty family */
		check_table(families[f], NULL, seen, &nseen, ARRAY_SIZE(seen));
	}
	for (size_t j = 0; j < nseen; j++)
		free((char *)seen[j].word);
	for (size_t f = 0; f < ARRAY_SIZE(families); f++)
		check_subtables(families[f], NULL);
	if (problems.len) {
		print_error("%s", sb_str(&problems));
		sb_release(&problems);
		fail_msg("the command tables break the invariants above");
	}
}

/* "help" lists exactly the families this test walks, and describes each command from its entry. */
static void test_help_matches_tables(void **state)
{
	json_t *rec, *groups, *g;
	size_t i;
	int r;

	(void)state;
	rec = run_json("help", &r);
	assert_int_equal(r, 0);
	assert_true(json_is_true(json_object_get(rec, "ok")));
	groups = json_object_get(json_object_get(rec, "result"), "groups");
	assert_true(json_is_array(groups));
	if (json_array_size(groups) != ARRAY_SIZE(families)) {
		json_array_foreach (groups, i, g) {
			print_error("help lists \"%s\"\n",
				    json_string_value(json_object_get(g, "title")));
		}
		fail_msg("help lists %zu families, this test walks %zu: add the new one to "
			 "families[]",
			 json_array_size(groups), ARRAY_SIZE(families));
	}
	json_array_foreach (groups, i, g) {
		json_t *cmds = json_object_get(g, "commands");
		size_t k = 0;

		for (const struct cmd *c = families[i]; c->name; c++, k++) {
			json_t *o = json_array_get(cmds, k);

			assert_non_null(o);
			assert_string_equal(json_string_value(json_object_get(o, "name")), c->name);
			assert_string_equal(json_string_value(json_object_get(o, "usage")),
					    c->usage);
		}
		assert_int_equal(json_array_size(cmds), k);
	}
	json_decref(rec);

	/* "help NAME" and "help NAME SUB" for every entry */
	for (size_t f = 0; f < ARRAY_SIZE(families); f++)
		for (const struct cmd *c = families[f]; c->name; c++) {
			char line[128];
			json_t *res;

			snprintf(line, sizeof(line), "help %s", c->name);
			rec = run_json(line, &r);
			assert_int_equal(r, 0);
			res = json_object_get(rec, "result");
			assert_string_equal(json_string_value(json_object_get(res, "usage")),
					    c->usage);
			json_decref(rec);
			for (const struct cmd *s = c->subcmds; s && s->name; s++) {
				snprintf(line, sizeof(line), "help %s %s", c->name, s->name);
				rec = run_json(line, &r);
				assert_int_equal(r, 0);
				res = json_object_get(rec, "result");
				assert_string_equal(
				    json_string_value(json_object_get(res, "usage")), s->usage);
				json_decref(rec);
			}
		}
}

/* Dispatch checks the table's bounds and the subcommand rule before any handler runs. */
static void test_execute_bounds(void **state)
{
	json_t *rec, *errs;
	int r, r1, r2, r3;
	char *out;

	(void)state;
	/* in JSON mode the errors go into the record, not to the terminal */
	rec = run_json("help a b c", &r);
	assert_int_equal(r, -1);
	assert_true(json_is_false(json_object_get(rec, "ok")));
	assert_string_equal(last_error(),
			    "too many arguments for help; usage: help [COMMAND [SUBCOMMAND]]");
	errs = json_object_get(rec, "errors");
	assert_int_equal(json_array_size(errs), 1);
	assert_string_equal(json_string_value(json_array_get(errs, 0)), last_error());
	json_decref(rec);

	rec = run_json("info", &r);
	assert_int_equal(r, -1);
	assert_string_equal(
	    last_error(),
	    "\"info\" must be followed by the name of a subcommand; try \"help info\"");
	json_decref(rec);

	rec = run_json("frobnicate 1 2", &r);
	assert_int_equal(r, -1);
	errs = json_object_get(rec, "errors");
	assert_int_equal(json_array_size(errs), 1);
	assert_string_equal(json_string_value(json_array_get(errs, 0)),
			    "undefined command: \"frobnicate\"; try \"help\"");
	json_decref(rec);

	/* empty lines and comments succeed and print nothing */
	{
		struct cmd_ctx ctx = {0};

		out_init(OUT_JSON);
		capture_start();
		r1 = cmd_execute(&ctx, "");
		r2 = cmd_execute(&ctx, "   \t");
		r3 = cmd_execute(&ctx, "# a comment");
		out = capture_end();
		out_init(OUT_HUMAN);
	}
	assert_int_equal(r1, 0);
	assert_int_equal(r2, 0);
	assert_int_equal(r3, 0);
	assert_string_equal(out, "");
	free(out);

	assert_int_equal(cmd_line_repeats("c"), 1);
	assert_int_equal(cmd_line_repeats("continue 2s"), 1);
	assert_int_equal(cmd_line_repeats("bt"), 0);
	assert_int_equal(cmd_line_repeats("nosuchcommand"), 0);
	assert_int_equal(cmd_line_repeats(""), 0);
}

/* A line that does not split fails like any other: its own record carries the error. */
static void test_execute_unbalanced_record(void **state)
{
	json_t *rec, *errs;
	size_t nerrs;
	int r, ok;

	(void)state;
	rec = run_json("help 'unbalanced", &r);
	assert_int_equal(r, -1);
	assert_true(json_is_false(json_object_get(rec, "ok")));
	assert_string_equal(json_string_value(json_object_get(rec, "command")), "help 'unbalanced");
	errs = json_object_get(rec, "errors");
	nerrs = json_array_size(errs);
	ok = nerrs == 1 && !strncmp(json_string_value(json_array_get(errs, 0)),
				    "unbalanced quotes in: ", strlen("unbalanced quotes in: "));
	json_decref(rec);
	if (!ok)
		fail_msg("the record of a line with unbalanced quotes has %zu errors, want the "
			 "\"unbalanced quotes\" error (it went out on a line of its own)",
			 nerrs);
}

/* ----- cmd_split ----- */

static void split_ok(const char *line, int want_argc, ...)
{
	char **argv = NULL;
	int argc = -1;
	va_list ap;

	error_quiet(1);
	if (cmd_split(line, &argv, &argc) != 0)
		fail_msg("split of \"%s\" failed: %s", line, last_error());
	error_quiet(0);
	if (argc != want_argc)
		fail_msg("split of \"%s\": %d words, want %d", line, argc, want_argc);
	va_start(ap, want_argc);
	for (int i = 0; i < argc; i++) {
		const char *w = va_arg(ap, const char *);

		if (strcmp(argv[i], w))
			fail_msg("split of \"%s\": word %d is \"%s\", want \"%s\"", line, i,
				 argv[i], w);
	}
	va_end(ap);
	if (argc)
		assert_null(argv[argc]);
	cmd_free_argv(argv, argc);
}

static void split_fails(const char *line)
{
	char **argv = (char **)&argv;
	int argc = 12345;

	error_quiet(1);
	if (cmd_split(line, &argv, &argc) != -1)
		fail_msg("split of \"%s\" should fail", line);
	error_quiet(0);
	assert_true(
	    !strncmp(last_error(), "unbalanced quotes in: ", strlen("unbalanced quotes in: ")));
	/* nothing handed back */
	assert_ptr_equal(argv, (char **)&argv);
	assert_int_equal(argc, 12345);
}

static void test_split_plain(void **state)
{
	(void)state;
	split_ok("bt", 1, "bt");
	split_ok("bt all", 2, "bt", "all");
	split_ok("  x\t0x10   64  ", 3, "x", "0x10", "64");
	split_ok("a\nb\rc\vd\fe", 5, "a", "b", "c", "d", "e");
	split_ok("info threads", 2, "info", "threads");
	/* bytes above 0x7f are word characters (0xa0 is not a space in C) */
	split_ok("x \xc3\xa9\xa0z \xff", 3, "x", "\xc3\xa9\xa0z", "\xff");
}

static void test_split_quotes(void **state)
{
	(void)state;
	split_ok("x 'a b' c", 3, "x", "a b", "c");
	split_ok("x \"a b\" c", 3, "x", "a b", "c");
	split_ok("'a\\b'", 1, "a\\b"); /* single quotes: backslash is literal */
	split_ok("'a\"b'", 1, "a\"b");
	split_ok("\"a'b\"", 1, "a'b");
	split_ok("\"a\\\"b\"", 1, "a\"b"); /* \" inside double quotes */
	split_ok("\"a\\\\b\"", 1, "a\\b");
	split_ok("ab\"c d\"'e f'g", 1, "abc de fg"); /* quotes join into one word */
	split_ok("'it'\\''s'", 1, "it's");	     /* the shell's way to quote a quote */
	split_ok("''", 1, "");			     /* an empty quoted word is a word */
	split_ok("\"\"", 1, "");
	split_ok("a '' b", 3, "a", "", "b");
	split_ok("'  '", 1, "  ");
	split_ok("'\t\n'", 1, "\t\n");
}

static void test_split_backslash(void **state)
{
	(void)state;
	split_ok("a\\ b", 1, "a b");
	split_ok("\\'x", 1, "'x");
	split_ok("\\\"x\\\"", 1, "\"x\"");
	split_ok("a\\\\b", 1, "a\\b");
	split_ok("\\ ", 1, " ");
	split_ok("a \\", 2, "a", "\\"); /* a final backslash stays */
}

static void test_split_unbalanced(void **state)
{
	(void)state;
	split_fails("'abc");
	split_fails("\"abc");
	split_fails("bt 'all");
	split_fails("x \"a b");
	split_fails("\"a\\\""); /* the only closing quote is escaped */
	split_fails("'a' \"b"); /* one balanced, one not */
	split_fails("\"");
	split_fails("'");
	split_fails("a\\''"); /* \' then an opening quote */

	/* the echoed line is escaped */
	split_fails("\x1b[2J'");
	assert_null(strchr(last_error(), '\x1b'));
	assert_non_null(strstr(last_error(), "\\x1b[2J'"));
}

static void test_split_empty(void **state)
{
	char **argv = (char **)&argv;
	int argc = -1;

	(void)state;
	assert_int_equal(cmd_split("", &argv, &argc), 0);
	assert_int_equal(argc, 0);
	cmd_free_argv(argv, argc);
	argc = -1;
	assert_int_equal(cmd_split(" \t\n\r\v\f  ", &argv, &argc), 0);
	assert_int_equal(argc, 0);
	cmd_free_argv(argv, argc);
}

static void test_split_long(void **state)
{
	const size_t big = 100000;
	char *line = xmalloc(big + 3), **argv;
	int argc;

	(void)state;
	/* one 100k-character word */
	memset(line, 'a', big);
	line[big] = '\0';
	assert_int_equal(cmd_split(line, &argv, &argc), 0);
	assert_int_equal(argc, 1);
	assert_int_equal(strlen(argv[0]), big);
	assert_memory_equal(argv[0], line, big);
	cmd_free_argv(argv, argc);

	/* 50k one-letter words */
	for (size_t i = 0; i < big; i += 2) {
		line[i] = (char)('a' + (i / 2) % 26);
		line[i + 1] = ' ';
	}
	line[big] = '\0';
	assert_int_equal(cmd_split(line, &argv, &argc), 0);
	assert_int_equal(argc, (int)(big / 2));
	for (int i = 0; i < argc; i++) {
		assert_int_equal(argv[i][0], 'a' + i % 26);
		assert_int_equal(argv[i][1], '\0');
	}
	assert_null(argv[argc]);
	cmd_free_argv(argv, argc);

	/* one quoted 100k word with spaces in it */
	line[0] = '\'';
	for (size_t i = 1; i <= big; i++)
		line[i] = i % 7 ? 'q' : ' ';
	line[big + 1] = '\'';
	line[big + 2] = '\0';
	assert_int_equal(cmd_split(line, &argv, &argc), 0);
	assert_int_equal(argc, 1);
	assert_int_equal(strlen(argv[0]), big);
	assert_memory_equal(argv[0], line + 1, big);
	cmd_free_argv(argv, argc);

	/* the same, unbalanced: an error, a bounded message, no leak */
	line[big + 1] = '\0';
	error_quiet(1);
	assert_int_equal(cmd_split(line, &argv, &argc), -1);
	error_quiet(0);
	assert_true(
	    !strncmp(last_error(), "unbalanced quotes in: '", strlen("unbalanced quotes in: '")));
	assert_true(strlen(last_error()) < 1024);

	/* 100k backslash-escaped spaces: one word of spaces */
	for (size_t i = 0; i < big; i += 2) {
		line[i] = '\\';
		line[i + 1] = ' ';
	}
	line[big] = '\0';
	assert_int_equal(cmd_split(line, &argv, &argc), 0);
	assert_int_equal(argc, 1);
	assert_int_equal(strlen(argv[0]), big / 2);
	assert_int_equal(strspn(argv[0], " "), big / 2);
	cmd_free_argv(argv, argc);
	free(line);
}

/* What a word splits into is exactly what a lookup sees: quoting cannot smuggle a space. */
static void test_split_then_lookup(void **state)
{
	char **argv;
	int argc;

	(void)state;
	assert_int_equal(cmd_split("'info' \"th\"", &argv, &argc), 0);
	assert_int_equal(argc, 2);
	assert_string_equal(lookup_ok(NULL, argv[0])->name, "info");
	assert_string_equal(lookup_ok(cmd_info_cmds, argv[1])->name, "threads");
	cmd_free_argv(argv, argc);

	assert_int_equal(cmd_split("'bt all'", &argv, &argc), 0);
	assert_int_equal(argc, 1);
	lookup_fails(NULL, argv[0]);
	cmd_free_argv(argv, argc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup_exact_names),
	    cmocka_unit_test(test_lookup_aliases),
	    cmocka_unit_test(test_lookup_unique_prefixes),
	    cmocka_unit_test(test_lookup_ambiguous_b),
	    cmocka_unit_test(test_lookup_ambiguous_d),
	    cmocka_unit_test(test_lookup_matches_rule),
	    cmocka_unit_test(test_lookup_unknown),
	    cmocka_unit_test(test_lookup_error_escapes_word),
	    cmocka_unit_test(test_lookup_subcommands),
	    cmocka_unit_test(test_lookup_exact_name_beats_earlier_alias),
	    cmocka_unit_test(test_table_invariants),
	    cmocka_unit_test(test_help_matches_tables),
	    cmocka_unit_test(test_execute_bounds),
	    cmocka_unit_test(test_execute_unbalanced_record),
	    cmocka_unit_test(test_split_plain),
	    cmocka_unit_test(test_split_quotes),
	    cmocka_unit_test(test_split_backslash),
	    cmocka_unit_test(test_split_unbalanced),
	    cmocka_unit_test(test_split_empty),
	    cmocka_unit_test(test_split_long),
	    cmocka_unit_test(test_split_then_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
