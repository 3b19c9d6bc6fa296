// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * The generated layout table, checked for what the stack walker and the
 * object readers rely on: one descriptor per version, oldest first; every
 * field a supported version needs to walk threads and frames and to read
 * str, bytes, int, tuple, list, dict, module and instance attributes is
 * present; no offset lies outside its structure where the structure's size
 * is known; the per-version properties (line table, frame kind, int
 * encoding, where instances keep their attributes) match the versions.
 *
 * It walks py_layouts[] directly, so it needs only pyoffsets-table.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pyoffsets.h"

#define VERSION(major, minor) ((uint32_t)(major) << 24 | (uint32_t)(minor) << 16)
#define V3_7		      VERSION(3, 7)
#define V3_8		      VERSION(3, 8)
#define V3_9		      VERSION(3, 9)
#define V3_10		      VERSION(3, 10)
#define V3_11		      VERSION(3, 11)
#define V3_12		      VERSION(3, 12)
#define V3_13		      VERSION(3, 13)
#define MAJOR(hex)	      ((int)((hex) >> 24))
#define MINOR(hex)	      ((int)(((hex) >> 16) & 0xff))
#define LOW_BITS_MASK	      0xffffu /* micro, level and serial: never set */

/* The oldest and newest versions the generator is asked to cover. */
#define FIRST_SUPPORTED VERSION(3, 6)
#define LAST_SUPPORTED	VERSION(3, 13)

#define BITS_PER_STATE_WORD 32 /* PyASCIIObject.state is one unsigned int */
#define POINTER_BYTES	    8  /* the targets are x86-64 processes */
#define KIND_BITS	    3  /* state.kind: 1, 2 or 4 bytes per character */

#define present(v) ((v) != PYOFF_NONE)
/* A flag word with exactly one bit set. */
#define one_bit(v) ((v) > 0 && ((v) & ((v)-1)) == 0)

/* Fail naming the version and the field, not just a line of this file. */
#define require(L, cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail_msg("%d.%d: %s", MAJOR((L)->version_hex), MINOR((L)->version_hex),    \
				 #cond);                                                           \
	} while (0)

#define require_present(L, field) require(L, present((L)->field))
#define require_absent(L, field)  require(L, !present((L)->field))
/* A field inside a structure whose size the descriptor gives. */
#define require_within(L, field, size)                                                             \
	require(L, !present((L)->field) || ((L)->field >= 0 && (L)->field < (L)->size))

static const struct py_layout *layout_at(size_t i)
{
	return &py_layouts[i];
}

static void test_table_not_empty(void **state)
{
	(void)state;
	assert_true(py_layouts_count > 0);
}

static void test_versions_strictly_increasing(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);
		char prefix[16];

		require(L, MAJOR(L->version_hex) == 3);
		require(L, (L->version_hex & LOW_BITS_MASK) == 0);
		require(L, L->version_hex >= FIRST_SUPPORTED && L->version_hex <= LAST_SUPPORTED);
		if (i > 0)
			require(L, L->version_hex > layout_at(i - 1)->version_hex);

		/* the headers compiled must be a patch release of this minor */
		require(L, L->headers_from != NULL);
		snprintf(prefix, sizeof(prefix), "%d.%d.", MAJOR(L->version_hex),
			 MINOR(L->version_hex));
		require(L, strncmp(L->headers_from, prefix, strlen(prefix)) == 0);
	}
}

/*
 * Every offset in every group is PYOFF_NONE or a real offset: a negative
 * number other than PYOFF_NONE would be a generator bug.  The groups are
 * listed rather than walked as raw memory so a new group must be added here.
 */
static void check_group(const struct py_layout *L, const char *name, const int32_t *fields,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fields[i] < 0 && fields[i] != PYOFF_NONE)
			fail_msg("%d.%d: %s field %zu is %d", MAJOR(L->version_hex),
				 MINOR(L->version_hex), name, i, fields[i]);
}

#define CHECK_GROUP(L, g)                                                                          \
	check_group(L, #g, (const int32_t *)&(L)->g, sizeof((L)->g) / sizeof(int32_t))

static void test_offsets_well_formed(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);

		CHECK_GROUP(L, runtime);
		CHECK_GROUP(L, interp);
		CHECK_GROUP(L, gil);
		CHECK_GROUP(L, tstate);
		CHECK_GROUP(L, cframe);
		CHECK_GROUP(L, frame);
		CHECK_GROUP(L, iframe);
		CHECK_GROUP(L, code);
		CHECK_GROUP(L, object);
		CHECK_GROUP(L, type);
		CHECK_GROUP(L, bytes);
		CHECK_GROUP(L, unicode);
		CHECK_GROUP(L, tuple);
		CHECK_GROUP(L, list);
		CHECK_GROUP(L, long_);
		CHECK_GROUP(L, dict);
		CHECK_GROUP(L, dictkeys);
		CHECK_GROUP(L, module);
		CHECK_GROUP(L, dictvalues);
	}
}

/* From 3.8 on the stack walker needs no symbol but _PyRuntime. */
static void test_stack_walk_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);

		if (L->version_hex < V3_8)
			continue;
		require_present(L, runtime.interpreters_head);
		require_present(L, interp.tstate_head);
		require_present(L, interp.next);
		require_present(L, tstate.next);
		require_present(L, tstate.thread_id);

		switch (L->frames) {
		case PY_FRAMES_OBJECT:
			require_present(L, tstate.frame);
			require_present(L, frame.back);
			require_present(L, frame.code);
			require_present(L, frame.lasti);
			break;
		case PY_FRAMES_INTERP:
			/* exactly one way from the thread to its newest frame */
			if (present(L->tstate.current_frame)) {
				require_absent(L, tstate.cframe);
			} else {
				require_present(L, tstate.cframe);
				require_present(L, cframe.current_frame);
			}
			require_absent(L, tstate.frame);
			require_present(L, iframe.previous);
			require_present(L, iframe.code);
			require_present(L, iframe.instr);
			require_present(L, iframe.owner);
			/* how the walker knows where the C stack's frames end */
			require(L,
				present(L->iframe.is_entry) || present(L->frame_owned_by_cstack));
			break;
		default:
			require(L, !"frames is OBJECT or INTERP");
		}

		require_present(L, code.filename);
		require_present(L, code.name);
		require_present(L, code.firstlineno);
		if (L->linetable == PY_LT_LNOTAB)
			require_present(L, code.lnotab);
		else
			require_present(L, code.linetable);
		/* the instruction offset needs the start of the bytecode */
		require(L, present(L->code.code) || present(L->code.code_adaptive));
	}
}

/* The objects pyleakdb reads out of process, in every version. */
static void test_object_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);
		int32_t u = L->unicode.state;

		require_present(L, object.refcnt);
		require_present(L, object.type);
		require_present(L, object.size);
		require_present(L, type.name);
		require_present(L, type.flags);
		require_present(L, bytes.sval);
		require_present(L, tuple.ob_item);
		require_present(L, list.ob_item);
		require_present(L, long_.ob_digit);
		require_present(L, dict.used);
		require_present(L, dict.keys);
		require_present(L, dict.values);
		require_present(L, dictkeys.nentries);
		require_present(L, dictkeys.indices);
		require(L, L->dictkeys.entry_size > 0);
		require(L, present(L->dictkeys.size) || present(L->dictkeys.log2_size));
		/* an entry's key and value pointers lie inside the entry */
		require(L, present(L->dictkeys.entry_key) && present(L->dictkeys.entry_value));
		require(L, L->dictkeys.entry_key + POINTER_BYTES <= L->dictkeys.entry_size);
		require(L, L->dictkeys.entry_value + POINTER_BYTES <= L->dictkeys.entry_size);
		require(L, L->dictkeys.entry_key != L->dictkeys.entry_value);
		require(L, present(L->dictkeys.unicode_entry_key) ==
			       present(L->dictkeys.unicode_entry_size));
		require(L, present(L->dictkeys.unicode_entry_value) ==
			       present(L->dictkeys.unicode_entry_size));
		if (present(L->dictkeys.unicode_entry_size)) {
			require(L, L->dictkeys.unicode_entry_key + POINTER_BYTES <=
				       L->dictkeys.unicode_entry_size);
			require(L, L->dictkeys.unicode_entry_value + POINTER_BYTES <=
				       L->dictkeys.unicode_entry_size);
			require(L,
				L->dictkeys.unicode_entry_key != L->dictkeys.unicode_entry_value);
		}

		/* sys.modules['threading'].__dict__: after the object header */
		require_present(L, module.dict);
		require(L, L->module.dict > L->object.type);

		require_present(L, unicode.length);
		require_present(L, unicode.state);
		require(L, L->unicode.ascii_size > u);
		require(L, L->unicode.compact_size > L->unicode.ascii_size);
		require(L, L->unicode.length < u);
		require(L, L->unicode.kind_shift >= 0 &&
			       L->unicode.kind_shift + KIND_BITS <= BITS_PER_STATE_WORD);
		require(L, L->unicode.compact_shift >= 0 &&
			       L->unicode.compact_shift < BITS_PER_STATE_WORD);
		require(L, L->unicode.ascii_shift >= 0 &&
			       L->unicode.ascii_shift < BITS_PER_STATE_WORD);
		/* the three bitfields do not overlap */
		require(L, L->unicode.compact_shift != L->unicode.ascii_shift);
		require(L, L->unicode.compact_shift < L->unicode.kind_shift ||
			       L->unicode.compact_shift >= L->unicode.kind_shift + KIND_BITS);
		require(L, L->unicode.ascii_shift < L->unicode.kind_shift ||
			       L->unicode.ascii_shift >= L->unicode.kind_shift + KIND_BITS);

		require(L, L->long_shift > 0 && L->long_shift < BITS_PER_STATE_WORD);
	}
}

static void test_offsets_inside_structs(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);

		require_within(L, runtime.finalizing, runtime.size);
		require_within(L, runtime.interpreters_head, runtime.size);
		require_within(L, runtime.interpreters_main, runtime.size);
		require_within(L, runtime.main_thread, runtime.size);
		require_within(L, runtime.gil_locked, runtime.size);
		require_within(L, runtime.gil_last_holder, runtime.size);

		require_within(L, interp.id, interp.size);
		require_within(L, interp.next, interp.size);
		require_within(L, interp.tstate_head, interp.size);
		require_within(L, interp.modules, interp.size);
		require_within(L, interp.sysdict, interp.size);
		require_within(L, interp.builtins, interp.size);
		require_within(L, interp.ceval_gil, interp.size);

		require_within(L, tstate.prev, tstate.size);
		require_within(L, tstate.next, tstate.size);
		require_within(L, tstate.interp, tstate.size);
		require_within(L, tstate.frame, tstate.size);
		require_within(L, tstate.cframe, tstate.size);
		require_within(L, tstate.current_frame, tstate.size);
		require_within(L, tstate.thread_id, tstate.size);
		require_within(L, tstate.native_thread_id, tstate.size);
		require_within(L, tstate.dict, tstate.size);

		require_within(L, iframe.previous, iframe.size);
		require_within(L, iframe.code, iframe.size);
		require_within(L, iframe.globals, iframe.size);
		require_within(L, iframe.locals, iframe.size);
		require_within(L, iframe.instr, iframe.size);
		require_within(L, iframe.stacktop, iframe.size);
		require_within(L, iframe.is_entry, iframe.size);
		require_within(L, iframe.owner, iframe.size);
		require_within(L, iframe.localsplus, iframe.size);
		require_within(L, iframe.frame_obj, iframe.size);

		require_within(L, code.argcount, code.size);
		require_within(L, code.flags, code.size);
		require_within(L, code.firstlineno, code.size);
		require_within(L, code.filename, code.size);
		require_within(L, code.name, code.size);
		require_within(L, code.qualname, code.size);
		require_within(L, code.lnotab, code.size);
		require_within(L, code.linetable, code.size);
		require_within(L, code.code, code.size);
		require_within(L, code.code_adaptive, code.size);
		require_within(L, code.varnames, code.size);
		require_within(L, code.localsplusnames, code.size);
		require_within(L, code.nlocals, code.size);

		/* the keys' header ends where the index table starts */
		require(L, L->dictkeys.nentries < L->dictkeys.indices);
		require(L, !present(L->dictkeys.size) || L->dictkeys.size < L->dictkeys.indices);
		require(L, !present(L->dictkeys.log2_size) ||
			       L->dictkeys.log2_size < L->dictkeys.indices);
	}
}

/* A size, where the version has the structure, is a plausible size. */
static void test_sizes_present_with_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);

		require(L, present(L->runtime.size) == present(L->runtime.interpreters_head));
		require(L, present(L->iframe.size) == (L->frames == PY_FRAMES_INTERP));
		require(L, L->interp.size > 0);
		require(L, L->tstate.size > 0);
		require(L, L->code.size > 0);
	}
}

static void test_version_properties(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);
		uint32_t v = L->version_hex;

		/* PEP 626 (3.10), then PEP 657 (3.11) */
		if (v < V3_10)
			require(L, L->linetable == PY_LT_LNOTAB);
		else if (v == V3_10)
			require(L, L->linetable == PY_LT_LINETABLE310);
		else
			require(L, L->linetable == PY_LT_LOCATIONS);
		require(L, present(L->code.lnotab) == (L->linetable == PY_LT_LNOTAB));
		require(L, present(L->code.linetable) == (L->linetable != PY_LT_LNOTAB));

		require(L, L->frames == (v < V3_11 ? PY_FRAMES_OBJECT : PY_FRAMES_INTERP));
		require(L, L->lasti_in_code_units == (v == V3_10));
		require(L, L->instr_ptr_is_current == (v >= V3_13));

		require(L, L->long_tagged == (v >= V3_12));
		require(L, present(L->long_.lv_tag) == L->long_tagged);
		require(L, present(L->frame_owned_by_cstack) == (v >= V3_12));

		/* one GIL in _PyRuntime until 3.12, one per interpreter after */
		require(L, present(L->runtime.gil_locked) == (v >= V3_7 && v < V3_12));
		require(L, present(L->interp.ceval_gil) == (v >= V3_12));
		require(L, present(L->gil.locked) == present(L->interp.ceval_gil));
		require(L, present(L->gil.last_holder) == present(L->interp.ceval_gil));

		require(L, present(L->tstate.native_thread_id) == (v >= V3_11));
		require(L, present(L->type.ht_module) == (v >= V3_9));
		require(L, present(L->dictkeys.unicode_entry_size) == (v >= V3_11));
	}
}

/*
 * Where an instance keeps its attributes (threading.Thread()._name, say):
 * at tp_dictoffset up to 3.10; from 3.11 in words before the object for
 * types with Py_TPFLAGS_MANAGED_DICT (3.11: values and dict apart; 3.12:
 * one tagged word; 3.13: the dict, the values inline after the object).
 */
static void test_instance_attribute_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);
		uint32_t v = L->version_hex;
		int32_t before = L->object.managed_dict_before;

		require_present(L, type.dictoffset);
		require_present(L, type.basicsize);
		require_present(L, type.ht_cached_keys);
		require(L, L->type.ht_cached_keys > L->type.dict);

		require(L, present(L->tpflags_managed_dict) == (v >= V3_11));
		require(L, present(L->tpflags_inline_values) == (v >= V3_13));
		require(L, !present(L->tpflags_managed_dict) || one_bit(L->tpflags_managed_dict));
		require(L, !present(L->tpflags_inline_values) || one_bit(L->tpflags_inline_values));
		require(L, !present(L->tpflags_inline_values) ||
			       L->tpflags_inline_values != L->tpflags_managed_dict);

		/* the pre-header: whole words before the object */
		require(L, present(before) == (v >= V3_11));
		require(L, !present(before) || (before > 0 && before % POINTER_BYTES == 0));
		require(L, present(L->object.values_before) == (v == V3_11));
		if (present(L->object.values_before)) {
			require(L, L->object.values_before > 0 &&
				       L->object.values_before % POINTER_BYTES == 0);
			require(L, L->object.values_before != before);
		}
		/* 3.12's tag: a low bit an aligned pointer leaves clear */
		require(L, present(L->dorv_values_tag) == (v == V3_12));
		require(L, !present(L->dorv_values_tag) ||
			       (one_bit(L->dorv_values_tag) && L->dorv_values_tag < POINTER_BYTES));

		/* split tables: ma_values is the array itself up to 3.10 */
		require(L, present(L->dictvalues.values) == (v >= V3_11));
		require(L, !present(L->dictvalues.values) ||
			       L->dictvalues.values % POINTER_BYTES == 0);
		require(L, present(L->dictvalues.valid) == (v >= V3_13));
		require(L, !present(L->dictvalues.valid) ||
			       L->dictvalues.valid < L->dictvalues.values);
		require(L, present(L->dictvalues.valid) == present(L->tpflags_inline_values));
	}
}

/* 3.12's lv_tag: sign in the low bits, digit count above them. */
static void test_tagged_int_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < py_layouts_count; i++) {
		const struct py_layout *L = layout_at(i);

		require(L, present(L->long_non_size_bits) == L->long_tagged);
		require(L, present(L->long_sign_mask) == L->long_tagged);
		require(L, present(L->long_sign_negative) == L->long_tagged);
		if (!L->long_tagged)
			continue;
		require(L,
			L->long_non_size_bits > 0 && L->long_non_size_bits < BITS_PER_STATE_WORD);
		/* the sign lies below the size, and a negative sign is one of its values */
		require(L,
			L->long_sign_mask > 0 && L->long_sign_mask < (1 << L->long_non_size_bits));
		require(L, L->long_sign_negative > 0 &&
			       (L->long_sign_negative & ~L->long_sign_mask) == 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_not_empty),
	    cmocka_unit_test(test_versions_strictly_increasing),
	    cmocka_unit_test(test_offsets_well_formed),
	    cmocka_unit_test(test_stack_walk_fields),
	    cmocka_unit_test(test_object_fields),
	    cmocka_unit_test(test_offsets_inside_structs),
	    cmocka_unit_test(test_sizes_present_with_fields),
	    cmocka_unit_test(test_version_properties),
	    cmocka_unit_test(test_instance_attribute_fields),
	    cmocka_unit_test(test_tagged_int_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
