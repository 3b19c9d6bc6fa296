// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * pyoffsets: finding a version's layout, and reading the layout a 3.13
 * interpreter publishes about itself.  See include/pyoffsets.h.
 */
#include <string.h>

#include "pyoffsets.h"
#include "util.h"

const struct py_layout *py_layout_find(int major, int minor)
{
	uint32_t want = ((uint32_t)major << 24) | ((uint32_t)minor << 16);

	for (size_t i = 0; i < py_layouts_count; i++)
		if (py_layouts[i].version_hex == want)
			return &py_layouts[i];
	return NULL;
}

/*
 * The shape of CPython 3.13's _Py_DebugOffsets: every member a uint64_t, in
 * this order.  (3.14 reorders and extends it; pyleakdb refuses 3.14.)
 */
struct debug_offsets_313 {
	char cookie[8];
	uint64_t version;
	uint64_t free_threaded;
	struct {
		uint64_t size, finalizing, interpreters_head;
	} runtime_state;
	struct {
		uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins,
		    ceval_gil, gil_runtime_state, gil_runtime_state_enabled,
		    gil_runtime_state_locked, gil_runtime_state_holder;
	} interpreter_state;
	struct {
		uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id,
		    datastack_chunk, status;
	} thread_state;
	struct {
		uint64_t size, previous, executable, instr_ptr, localsplus, owner;
	} interpreter_frame;
	struct {
		uint64_t size, filename, name, qualname, linetable, firstlineno, argcount,
		    localsplusnames, localspluskinds, co_code_adaptive;
	} code_object;
	struct {
		uint64_t size, ob_type;
	} pyobject;
	struct {
		uint64_t size, tp_name, tp_repr, tp_flags;
	} type_object;
	struct {
		uint64_t size, ob_item, ob_size;
	} tuple_object;
	struct {
		uint64_t size, ob_item, ob_size;
	} list_object;
	struct {
		uint64_t size, ma_keys, ma_values;
	} dict_object;
	struct {
		uint64_t size, ob_fval;
	} float_object;
	struct {
		uint64_t size, lv_tag, ob_digit;
	} long_object;
	struct {
		uint64_t size, ob_size, ob_sval;
	} bytes_object;
	struct {
		uint64_t size, state, length, asciiobject_size;
	} unicode_object;
	struct {
		uint64_t size, collecting;
	} gc;
};

_Static_assert(sizeof(struct debug_offsets_313) <= PY_DEBUG_OFFSETS_SIZE,
	       "PY_DEBUG_OFFSETS_SIZE too small");

/* No CPython structure we read is anywhere near this large. */
#define STRUCT_SIZE_MAX (1u << 20)

static int take(int32_t *dst, uint64_t off, uint64_t size, const char *what)
{
	if (size == 0 || size > STRUCT_SIZE_MAX || off >= size)
		return error("the interpreter's debug offsets are corrupt (%s = %#llx in a "
			     "structure of %#llx bytes)",
			     what, (unsigned long long)off, (unsigned long long)size);
	*dst = (int32_t)off;
	return 0;
}

#define TAKE(dst, sect, field)                                                                     \
	if (take(&(dst), d.sect.field, d.sect.size, #sect "." #field) < 0)                         \
		return -1;

int py_layout_from_debug_offsets(struct py_layout *l, const void *raw, size_t len,
				 uint64_t *version_hex)
{
	struct debug_offsets_313 d;

	if (len < sizeof(d))
		return error("the interpreter's debug offsets are truncated");
	memcpy(&d, raw, sizeof(d));
	if (memcmp(d.cookie, PY_DEBUG_COOKIE, sizeof(d.cookie)))
		return error("no debug offsets at the start of _PyRuntime (cookie mismatch)");
	*version_hex = d.version;
	if (d.free_threaded)
		return error("this is a free-threaded (no-GIL) build of Python; pyleakdb supports "
			     "only builds with the GIL");

	l->runtime.size = (int32_t)d.runtime_state.size;
	TAKE(l->runtime.finalizing, runtime_state, finalizing);
	TAKE(l->runtime.interpreters_head, runtime_state, interpreters_head);

	l->interp.size = (int32_t)d.interpreter_state.size;
	TAKE(l->interp.id, interpreter_state, id);
	TAKE(l->interp.next, interpreter_state, next);
	TAKE(l->interp.tstate_head, interpreter_state, threads_head);
	TAKE(l->interp.modules, interpreter_state, imports_modules);
	TAKE(l->interp.sysdict, interpreter_state, sysdict);
	TAKE(l->interp.builtins, interpreter_state, builtins);
	TAKE(l->interp.ceval_gil, interpreter_state, ceval_gil);
	/* the gil's fields are published relative to the interpreter: make them relative
	 * to struct _gil_runtime_state, which interp.ceval_gil points at */
	if (d.interpreter_state.gil_runtime_state_locked >= d.interpreter_state.gil_runtime_state &&
	    d.interpreter_state.gil_runtime_state_holder >= d.interpreter_state.gil_runtime_state &&
	    d.interpreter_state.gil_runtime_state_locked < d.interpreter_state.size &&
	    d.interpreter_state.gil_runtime_state_holder < d.interpreter_state.size) {
		l->gil.locked = (int32_t)(d.interpreter_state.gil_runtime_state_locked -
					  d.interpreter_state.gil_runtime_state);
		l->gil.last_holder = (int32_t)(d.interpreter_state.gil_runtime_state_holder -
					       d.interpreter_state.gil_runtime_state);
	}

	l->tstate.size = (int32_t)d.thread_state.size;
	TAKE(l->tstate.prev, thread_state, prev);
	TAKE(l->tstate.next, thread_state, next);
	TAKE(l->tstate.interp, thread_state, interp);
	TAKE(l->tstate.current_frame, thread_state, current_frame);
	TAKE(l->tstate.thread_id, thread_state, thread_id);
	TAKE(l->tstate.native_thread_id, thread_state, native_thread_id);

	l->iframe.size = (int32_t)d.interpreter_frame.size;
	TAKE(l->iframe.previous, interpreter_frame, previous);
	TAKE(l->iframe.code, interpreter_frame, executable);
	TAKE(l->iframe.instr, interpreter_frame, instr_ptr);
	TAKE(l->iframe.localsplus, interpreter_frame, localsplus);
	TAKE(l->iframe.owner, interpreter_frame, owner);

	l->code.size = (int32_t)d.code_object.size;
	TAKE(l->code.filename, code_object, filename);
	TAKE(l->code.name, code_object, name);
	TAKE(l->code.qualname, code_object, qualname);
	TAKE(l->code.linetable, code_object, linetable);
	TAKE(l->code.firstlineno, code_object, firstlineno);
	TAKE(l->code.argcount, code_object, argcount);
	TAKE(l->code.localsplusnames, code_object, localsplusnames);
	/* co_code_adaptive is the variable-length tail: it may sit at the very end */
	if (d.code_object.co_code_adaptive > d.code_object.size ||
	    d.code_object.co_code_adaptive > STRUCT_SIZE_MAX)
		return error("the interpreter's debug offsets are corrupt (co_code_adaptive)");
	l->code.code_adaptive = (int32_t)d.code_object.co_code_adaptive;

	TAKE(l->object.type, pyobject, ob_type);
	TAKE(l->type.name, type_object, tp_name);
	TAKE(l->type.flags, type_object, tp_flags);
	TAKE(l->tuple.ob_item, tuple_object, ob_item);
	TAKE(l->list.ob_item, list_object, ob_item);
	TAKE(l->dict.keys, dict_object, ma_keys);
	TAKE(l->dict.values, dict_object, ma_values);
	TAKE(l->long_.lv_tag, long_object, lv_tag);
	if (d.long_object.ob_digit > d.long_object.size)
		return error("the interpreter's debug offsets are corrupt (ob_digit)");
	l->long_.ob_digit = (int32_t)d.long_object.ob_digit;
	TAKE(l->bytes.sval, bytes_object, ob_sval);
	TAKE(l->unicode.state, unicode_object, state);
	TAKE(l->unicode.length, unicode_object, length);
	if (d.unicode_object.asciiobject_size == 0 || d.unicode_object.asciiobject_size > 256)
		return error("the interpreter's debug offsets are corrupt (asciiobject_size)");
	l->unicode.ascii_size = (int32_t)d.unicode_object.asciiobject_size;
	return 0;
}
