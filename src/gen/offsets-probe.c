// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * offsets-probe: print one CPython minor version's struct py_layout as a C
 * initializer.
 *
 * src/gen/gen-offsets compiles this file once per pyenv interpreter, with
 * -isystem pointing at that interpreter's own include directory, runs it, and
 * pastes the output into src/pyoffsets-table.c.  Every number printed here
 * comes from the compiler (offsetof, sizeof, a macro or enum value, or a
 * bitfield located by setting it in a zeroed struct), so the table can be
 * regenerated instead of being maintained by hand.
 *
 * This is the one place in pyleakdb that branches on the CPython version:
 * the field a descriptor entry names moved or was renamed across releases,
 * and each #if below says where it lives in which versions.  A field the
 * version does not have is printed as PYOFF_NONE, never left out, because
 * an omitted designated initializer would silently read as offset 0.
 *
 * The output format is parsed back by gen-offsets to check that every field
 * of struct py_layout was printed, in declaration order: one ".name = value,"
 * per line, ".name = {" / "}," around each group.
 */

/* The internal headers refuse to be included without this. */
#define Py_BUILD_CORE 1

#include <Python.h>

#if PY_VERSION_HEX < 0x03060000 || PY_MAJOR_VERSION != 3
#error "offsets-probe supports CPython 3.6 and later"
#endif

/* PyFrameObject is only public up to 3.10; later it is internal. */
#if PY_VERSION_HEX < 0x030b0000
#include <frameobject.h>
#endif

/* _PyRuntimeState, PyInterpreterState and the GIL's state. */
#if PY_VERSION_HEX >= 0x03090000
#include <internal/pycore_runtime.h>
#include <internal/pycore_interp.h>
#elif PY_VERSION_HEX >= 0x03080000
#include <internal/pycore_pystate.h>
#elif PY_VERSION_HEX >= 0x03070000
#include <internal/pystate.h>
#endif

#if PY_VERSION_HEX >= 0x030b0000
#include <internal/pycore_frame.h>
#include <internal/pycore_dict.h>
/* where a managed dict (and its values) sit around an instance */
#include <internal/pycore_object.h>
#endif

/* The sign and size bits of 3.12's tagged ints. */
#if PY_VERSION_HEX >= 0x030c0000
#include <internal/pycore_long.h>
#endif

/* PyModuleObject is in the internal headers from 3.10. */
#if PY_VERSION_HEX >= 0x030a0000
#include <internal/pycore_moduleobject.h>
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030b0000
/*
 * Up to 3.10 the dict keys object and its entries are private to
 * Objects/dictobject.c: they are defined in Objects/dict-common.h, which is
 * not installed, and the installed dictobject.h only declares
 * "typedef struct _dictkeysobject PyDictKeysObject".  So the two structs
 * are copied here from Objects/dict-common.h as it reads in the 3.7 - 3.10
 * branches (python/cpython, tags v3.7.16, v3.8.18, v3.9.18, v3.10.13) and
 * in v3.6.15; early 3.6 releases declared dk_indices as a union of small
 * arrays rather than char[], at the same offset.  The versions differ only
 * in the lookup function's parameters, which cannot move anything.  The
 * copy was checked member by member (name, type, offset, total size)
 * against the DWARF of the pyenv builds of those five tags.
 */
#if PY_VERSION_HEX < 0x03070000
typedef Py_ssize_t (*dict_lookup_func)(PyDictObject *mp, PyObject *key, Py_hash_t hash,
				       PyObject ***value_addr, Py_ssize_t *hashpos);
#else
typedef Py_ssize_t (*dict_lookup_func)(PyDictObject *mp, PyObject *key, Py_hash_t hash,
				       PyObject **value_addr);
#endif

typedef struct {
	Py_hash_t me_hash;
	PyObject *me_key;
	PyObject *me_value;
} PyDictKeyEntry;

struct _dictkeysobject {
	Py_ssize_t dk_refcnt;
	Py_ssize_t dk_size;
	dict_lookup_func dk_lookup;
	Py_ssize_t dk_usable;
	Py_ssize_t dk_nentries;
	char dk_indices[];
};
#endif

#if PY_VERSION_HEX < 0x030a0000
/*
 * Up to 3.9 PyModuleObject is private to Objects/moduleobject.c.  Copied
 * from there as it reads in v3.6.15, v3.7.16, v3.8.18 and v3.9.18, and
 * checked member by member (name, type, offset, total size) against the
 * DWARF of the pyenv builds of those tags (gdb: ptype /o PyModuleObject).
 */
typedef struct {
	PyObject ob_base; /* PyObject_HEAD */
	PyObject *md_dict;
	struct PyModuleDef *md_def;
	void *md_state;
	PyObject *md_weaklist;
	PyObject *md_name;
} PyModuleObject;
#endif

/* ---- output ---------------------------------------------------------- */

/* Nesting of the initializer being printed: 1 inside the version's braces. */
static int depth = 1;

static void indent(void)
{
	for (int i = 0; i < depth; i++)
		putchar('\t');
}

static void group_begin(const char *name)
{
	indent();
	printf(".%s = {\n", name);
	depth++;
}

static void group_end(void)
{
	depth--;
	indent();
	printf("},\n");
}

static void emit_num(const char *name, long value)
{
	if (value < 0 || value > INT32_MAX) {
		fprintf(stderr, "offsets-probe: %s = %ld does not fit\n", name, value);
		exit(1);
	}
	indent();
	printf(".%s = %ld,\n", name, value);
}

static void emit_sym(const char *name, const char *symbol)
{
	indent();
	printf(".%s = %s,\n", name, symbol);
}

static void emit_str(const char *name, const char *str)
{
	indent();
	printf(".%s = \"%s\",\n", name, str);
}

#define OFF(name, type, member) emit_num(name, (long)offsetof(type, member))
#define SIZE(name, type)	emit_num(name, (long)sizeof(type))
#define NONE(name)		emit_sym(name, "PYOFF_NONE")

/* ---- bitfields ------------------------------------------------------- */

/*
 * The bit, within the 32-bit word at word_off, that differs between two
 * images of a struct: the caller zeroed both and set the lowest bit of one
 * bitfield in "set".  Reading the word as a host integer gives the shift a
 * reader on the same architecture has to apply to the word it reads out of
 * the target.  Anything but exactly one changed bit, inside that word, means
 * the struct is not what this probe thinks it is.
 */
static long bit_position(const char *what, const void *zero, const void *set, size_t size,
			 size_t word_off)
{
	const unsigned char *a = zero, *b = set;
	uint32_t wa, wb, diff;

	if (word_off + sizeof(wa) > size)
		goto bad;
	for (size_t i = 0; i < size; i++)
		if (a[i] != b[i] && (i < word_off || i >= word_off + sizeof(wa)))
			goto bad;
	memcpy(&wa, a + word_off, sizeof(wa));
	memcpy(&wb, b + word_off, sizeof(wb));
	diff = wa ^ wb;
	if (diff == 0 || (diff & (diff - 1)) != 0)
		goto bad;
	return __builtin_ctz(diff);
bad:
	fprintf(stderr, "offsets-probe: cannot locate bitfield %s\n", what);
	exit(1);
}

/* Set one unicode state bitfield to 1 and say where its lowest bit is. */
#define UNICODE_STATE_BIT(name, field)                                                             \
	do {                                                                                       \
		PyASCIIObject zero_, set_;                                                         \
		memset(&zero_, 0, sizeof(zero_));                                                  \
		memset(&set_, 0, sizeof(set_));                                                    \
		set_.state.field = 1;                                                              \
		emit_num(name, bit_position(#field, &zero_, &set_, sizeof(set_),                   \
					    offsetof(PyASCIIObject, state)));                      \
	} while (0)

/* ---- managed dicts ---------------------------------------------------- */

#if PY_VERSION_HEX >= 0x030b0000
/*
 * From 3.11 an instance of a type with Py_TPFLAGS_MANAGED_DICT keeps its
 * dict (or its values) in words before the object, and 3.13 may keep the
 * values inline after it.  Rather than restate the headers' arithmetic,
 * the probe calls their own inline functions on a fake instance of a fake
 * type and measures where the pointers they return land.  The functions
 * assert the type's flags, so the fake type carries them.
 */

/* Room in front of the fake instance: more than any pre-header has. */
#define PREHEADER_ROOM (16 * sizeof(PyObject *))

static PyTypeObject managed_type;
static union {
	PyObject *align;
	char bytes[2 * PREHEADER_ROOM];
} managed_arena;

static PyObject *managed_instance(void)
{
	PyObject *obj = (PyObject *)(managed_arena.bytes + PREHEADER_ROOM);

	managed_type.tp_flags = Py_TPFLAGS_MANAGED_DICT;
#if PY_VERSION_HEX >= 0x030d0000
	managed_type.tp_flags |= Py_TPFLAGS_INLINE_VALUES;
#endif
	/* 3.13.0 inlines values only after a bare PyObject, and asserts it */
	managed_type.tp_basicsize = sizeof(PyObject);
	obj->ob_type = &managed_type;
	return obj;
}

/* How many bytes before obj the headers put p: a word of the pre-header. */
static long bytes_before(const char *what, const PyObject *obj, const void *p)
{
	long n = (long)((const char *)obj - (const char *)p);

	if (n <= 0 || (size_t)n > PREHEADER_ROOM || n % (long)sizeof(PyObject *) != 0) {
		fprintf(stderr, "offsets-probe: %s is not a word before the object (%ld)\n", what,
			n);
		exit(1);
	}
	return n;
}
#endif

#if PY_VERSION_HEX >= 0x030c0000 && PY_VERSION_HEX < 0x030d0000
/*
 * 3.12's PyDictOrValues: one word that is either the dict or, with a low
 * bit set, the values.  The reader tests that bit and adds it back to get
 * the PyDictValues *; check that this is exactly what the header's
 * _PyDictOrValues_IsValues(), _SetValues() and _GetValues() do.
 */
static long dorv_values_tag(void)
{
	static PyObject *values_storage[4];
	PyDictValues *values = (PyDictValues *)values_storage;
	PyDictOrValues d;
	uintptr_t tag = 0;

	/* the tag lives in the bits an aligned pointer leaves clear */
	for (uintptr_t bit = 1; bit < _Alignof(PyDictValues); bit <<= 1) {
		d.values = (char *)bit;
		if (_PyDictOrValues_IsValues(d)) {
			if (tag)
				goto bad;
			tag = bit;
		}
	}
	if (!tag)
		goto bad;
	d.dict = (PyObject *)values_storage;
	if (_PyDictOrValues_IsValues(d))
		goto bad;
	_PyDictOrValues_SetValues(&d, values);
	if (!_PyDictOrValues_IsValues(d) || _PyDictOrValues_GetValues(d) != values ||
	    (uintptr_t)d.values + tag != (uintptr_t)values)
		goto bad;
	return (long)tag;
bad:
	fprintf(stderr, "offsets-probe: PyDictOrValues is not tagged as expected\n");
	exit(1);
}
#endif

/* ---- the descriptor -------------------------------------------------- */

int main(void)
{
	/*
	 * The header's PY_MAJOR/MINOR_VERSION, so the table says which
	 * interpreter the numbers were compiled from, not what the
	 * generator asked for.
	 */
	indent();
	printf(".version_hex = 0x%02x%02x0000,\n", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	emit_str("headers_from", PY_VERSION);

	/*
	 * The line-number table format is a property of the version, not of
	 * a struct: PEP 626 (3.10) replaced co_lnotab by co_linetable, and
	 * PEP 657 (3.11) replaced that format by location entries.
	 */
#if PY_VERSION_HEX >= 0x030b0000
	emit_sym("linetable", "PY_LT_LOCATIONS");
#elif PY_VERSION_HEX >= 0x030a0000
	emit_sym("linetable", "PY_LT_LINETABLE310");
#else
	emit_sym("linetable", "PY_LT_LNOTAB");
#endif

	/*
	 * 3.11 moved the evaluation state out of PyFrameObject into
	 * _PyInterpreterFrame (bpo-44590); frame objects became optional.
	 */
#if PY_VERSION_HEX >= 0x030b0000
	emit_sym("frames", "PY_FRAMES_INTERP");
#else
	emit_sym("frames", "PY_FRAMES_OBJECT");
#endif

	/*
	 * bpo-27129 made f_lasti count code units in 3.10 only; 3.11 has
	 * no f_lasti in the frame, just an instruction pointer.
	 */
	emit_num("lasti_in_code_units",
		 PY_VERSION_HEX >= 0x030a0000 && PY_VERSION_HEX < 0x030b0000);

	/*
	 * 3.13 (gh-109094) replaced prev_instr, one code unit before the
	 * next instruction, with instr_ptr, the instruction executing now.
	 */
	emit_num("instr_ptr_is_current", PY_VERSION_HEX >= 0x030d0000);

	/* 3.12 marks the C-stack entry frame by owner, not is_entry. */
#if PY_VERSION_HEX >= 0x030c0000
	emit_num("frame_owned_by_cstack", FRAME_OWNED_BY_CSTACK);
#else
	NONE("frame_owned_by_cstack");
#endif

	emit_num("long_shift", PyLong_SHIFT);

	/* 3.12 (gh-101291) packs sign and digit count into lv_tag. */
	emit_num("long_tagged", PY_VERSION_HEX >= 0x030c0000);
#if PY_VERSION_HEX >= 0x030c0000
	emit_num("long_non_size_bits", NON_SIZE_BITS);
	emit_num("long_sign_mask", SIGN_MASK);
	emit_num("long_sign_negative", SIGN_NEGATIVE);
#else
	NONE("long_non_size_bits");
	NONE("long_sign_mask");
	NONE("long_sign_negative");
#endif

	/*
	 * 3.11 (bpo-45340) moved the instance dict of ordinary classes
	 * before the object, and can do without it (values only); 3.13
	 * (gh-115776) puts the values inline after the object.
	 */
#if PY_VERSION_HEX >= 0x030b0000
	emit_num("tpflags_managed_dict", Py_TPFLAGS_MANAGED_DICT);
#else
	NONE("tpflags_managed_dict");
#endif
#if PY_VERSION_HEX >= 0x030d0000
	emit_num("tpflags_inline_values", Py_TPFLAGS_INLINE_VALUES);
#else
	NONE("tpflags_inline_values");
#endif
	/* 3.12 only: 3.11 had two words, 3.13 keeps the values inline */
#if PY_VERSION_HEX >= 0x030c0000 && PY_VERSION_HEX < 0x030d0000
	emit_num("dorv_values_tag", dorv_values_tag());
#else
	NONE("dorv_values_tag");
#endif

	/*
	 * _PyRuntimeState first appeared in 3.7; 3.6 kept the interpreter
	 * list and the GIL in static variables of pystate.c and ceval_gil.h.
	 */
	group_begin("runtime");
#if PY_VERSION_HEX >= 0x03070000
	SIZE("size", _PyRuntimeState);
#if PY_VERSION_HEX >= 0x03090000
	/* renamed in 3.9, atomic until 3.13; a PyThreadState * throughout */
	OFF("finalizing", _PyRuntimeState, _finalizing);
#else
	OFF("finalizing", _PyRuntimeState, finalizing);
#endif
	OFF("interpreters_head", _PyRuntimeState, interpreters.head);
	OFF("interpreters_main", _PyRuntimeState, interpreters.main);
#if PY_VERSION_HEX >= 0x03080000
	OFF("main_thread", _PyRuntimeState, main_thread);
#else
	/* added in 3.8 */
	NONE("main_thread");
#endif
#if PY_VERSION_HEX < 0x030c0000
	/* one GIL for all interpreters until 3.12 gave each its own */
	OFF("gil_locked", _PyRuntimeState, ceval.gil.locked);
	OFF("gil_last_holder", _PyRuntimeState, ceval.gil.last_holder);
	OFF("gil", _PyRuntimeState, ceval.gil);
#else
	NONE("gil_locked");
	NONE("gil_last_holder");
	NONE("gil");
#endif
#else
	NONE("size");
	NONE("finalizing");
	NONE("interpreters_head");
	NONE("interpreters_main");
	NONE("main_thread");
	NONE("gil_locked");
	NONE("gil_last_holder");
	NONE("gil");
#endif
	group_end();

	group_begin("interp");
	SIZE("size", PyInterpreterState);
#if PY_VERSION_HEX >= 0x03070000
	OFF("id", PyInterpreterState, id);
#else
	/* interpreter ids came with PEP 554's groundwork in 3.7 */
	NONE("id");
#endif
	OFF("next", PyInterpreterState, next);
#if PY_VERSION_HEX >= 0x030b0000
	/* 3.11 grouped the thread list into struct pythreads */
	OFF("tstate_head", PyInterpreterState, threads.head);
#else
	OFF("tstate_head", PyInterpreterState, tstate_head);
#endif
#if PY_VERSION_HEX >= 0x030c0000
	OFF("modules", PyInterpreterState, imports.modules);
#else
	OFF("modules", PyInterpreterState, modules);
#endif
	OFF("sysdict", PyInterpreterState, sysdict);
	OFF("builtins", PyInterpreterState, builtins);
#if PY_VERSION_HEX >= 0x030c0000
	OFF("ceval_gil", PyInterpreterState, ceval.gil);
#else
	NONE("ceval_gil");
#endif
	group_end();

	/*
	 * struct _gil_runtime_state exists from 3.7, but before 3.12 it is
	 * embedded in _PyRuntime and runtime.gil_* already give its fields'
	 * absolute offsets.  Filling gil.* only where it is reached through
	 * interp.ceval_gil keeps one unambiguous way to find the GIL.
	 */
	group_begin("gil");
#if PY_VERSION_HEX >= 0x03070000
	/* the GIL's mutexes and condition variables live inside: a futex there is a GIL wait */
	SIZE("size", struct _gil_runtime_state);
#else
	NONE("size");
#endif
#if PY_VERSION_HEX >= 0x030c0000
	OFF("locked", struct _gil_runtime_state, locked);
	OFF("last_holder", struct _gil_runtime_state, last_holder);
#else
	NONE("locked");
	NONE("last_holder");
#endif
	group_end();

	group_begin("tstate");
	SIZE("size", PyThreadState);
	OFF("prev", PyThreadState, prev);
	OFF("next", PyThreadState, next);
	OFF("interp", PyThreadState, interp);
#if PY_VERSION_HEX < 0x030b0000
	OFF("frame", PyThreadState, frame);
#else
	NONE("frame");
#endif
#if PY_VERSION_HEX >= 0x030b0000 && PY_VERSION_HEX < 0x030d0000
	OFF("cframe", PyThreadState, cframe);
#else
	/*
	 * 3.10 has a "CFrame *cframe" too, but that CFrame holds only
	 * use_tracing and previous, no frame pointer: 3.10's frames are
	 * still reached through tstate->frame, so it is left out rather
	 * than offer a second, useless way in.
	 */
	NONE("cframe");
#endif
#if PY_VERSION_HEX >= 0x030d0000
	OFF("current_frame", PyThreadState, current_frame);
#else
	NONE("current_frame");
#endif
	OFF("thread_id", PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x030b0000
	OFF("native_thread_id", PyThreadState, native_thread_id);
#else
	NONE("native_thread_id");
#endif
	OFF("dict", PyThreadState, dict);
	group_end();

	/* _PyCFrame linked the C stack's interpreter frames in 3.11 - 3.12. */
	group_begin("cframe");
#if PY_VERSION_HEX >= 0x030b0000 && PY_VERSION_HEX < 0x030d0000
	OFF("current_frame", _PyCFrame, current_frame);
	OFF("previous", _PyCFrame, previous);
#else
	NONE("current_frame");
	NONE("previous");
#endif
	group_end();

	/*
	 * PyFrameObject still exists from 3.11 on, but only as a lazily made
	 * wrapper around a _PyInterpreterFrame: its f_back is usually NULL
	 * and it has no f_code, so only 3.6 - 3.10 describe it here.
	 */
	group_begin("frame");
#if PY_VERSION_HEX < 0x030b0000
	OFF("back", PyFrameObject, f_back);
	OFF("code", PyFrameObject, f_code);
	OFF("globals", PyFrameObject, f_globals);
	OFF("locals", PyFrameObject, f_locals);
	OFF("lasti", PyFrameObject, f_lasti);
	OFF("lineno", PyFrameObject, f_lineno);
	OFF("localsplus", PyFrameObject, f_localsplus);
#else
	NONE("back");
	NONE("code");
	NONE("globals");
	NONE("locals");
	NONE("lasti");
	NONE("lineno");
	NONE("localsplus");
#endif
	group_end();

	group_begin("iframe");
#if PY_VERSION_HEX >= 0x030b0000
	SIZE("size", _PyInterpreterFrame);
	OFF("previous", _PyInterpreterFrame, previous);
#if PY_VERSION_HEX >= 0x030d0000
	/* 3.13 lets non-code executables own frames: f_executable */
	OFF("code", _PyInterpreterFrame, f_executable);
#else
	OFF("code", _PyInterpreterFrame, f_code);
#endif
	OFF("globals", _PyInterpreterFrame, f_globals);
	OFF("locals", _PyInterpreterFrame, f_locals);
#if PY_VERSION_HEX >= 0x030d0000
	OFF("instr", _PyInterpreterFrame, instr_ptr);
#else
	OFF("instr", _PyInterpreterFrame, prev_instr);
#endif
	OFF("stacktop", _PyInterpreterFrame, stacktop);
#if PY_VERSION_HEX < 0x030c0000
	OFF("is_entry", _PyInterpreterFrame, is_entry);
#else
	NONE("is_entry");
#endif
	OFF("owner", _PyInterpreterFrame, owner);
	OFF("localsplus", _PyInterpreterFrame, localsplus);
	OFF("frame_obj", _PyInterpreterFrame, frame_obj);
#else
	NONE("size");
	NONE("previous");
	NONE("code");
	NONE("globals");
	NONE("locals");
	NONE("instr");
	NONE("stacktop");
	NONE("is_entry");
	NONE("owner");
	NONE("localsplus");
	NONE("frame_obj");
#endif
	group_end();

	group_begin("code");
	/* from 3.11 this is the header only: the bytecode follows inline */
	SIZE("size", PyCodeObject);
	OFF("argcount", PyCodeObject, co_argcount);
	OFF("flags", PyCodeObject, co_flags);
	OFF("firstlineno", PyCodeObject, co_firstlineno);
	OFF("filename", PyCodeObject, co_filename);
	OFF("name", PyCodeObject, co_name);
#if PY_VERSION_HEX >= 0x030b0000
	OFF("qualname", PyCodeObject, co_qualname);
#else
	NONE("qualname");
#endif
#if PY_VERSION_HEX < 0x030a0000
	OFF("lnotab", PyCodeObject, co_lnotab);
	NONE("linetable");
#else
	/* 3.10 computes co_lnotab on demand from co_linetable */
	NONE("lnotab");
	OFF("linetable", PyCodeObject, co_linetable);
#endif
#if PY_VERSION_HEX < 0x030b0000
	OFF("code", PyCodeObject, co_code);
	NONE("code_adaptive");
	OFF("varnames", PyCodeObject, co_varnames);
	NONE("localsplusnames");
#else
	/*
	 * 3.11 stores the (quickened) bytecode inline and derives co_code
	 * and co_varnames on demand from it and co_localsplusnames; 3.12's
	 * _co_varnames is only a cache of that, often NULL.
	 */
	NONE("code");
	OFF("code_adaptive", PyCodeObject, co_code_adaptive);
	NONE("varnames");
	OFF("localsplusnames", PyCodeObject, co_localsplusnames);
#endif
	OFF("nlocals", PyCodeObject, co_nlocals);
	group_end();

	group_begin("object");
	OFF("refcnt", PyObject, ob_refcnt);
	OFF("type", PyObject, ob_type);
	OFF("size", PyVarObject, ob_size);
#if PY_VERSION_HEX >= 0x030b0000
	{
		PyObject *obj = managed_instance();

#if PY_VERSION_HEX >= 0x030d0000
		emit_num("managed_dict_before", bytes_before("_PyObject_ManagedDictPointer", obj,
							     _PyObject_ManagedDictPointer(obj)));
		NONE("values_before");
		/* the reader finds inline values at tp_basicsize: so does the header */
		if ((char *)_PyObject_InlineValues(obj) !=
		    (char *)obj + managed_type.tp_basicsize) {
			fprintf(stderr, "offsets-probe: inline values are not after the object\n");
			return 1;
		}
#elif PY_VERSION_HEX >= 0x030c0000
		emit_num("managed_dict_before", bytes_before("_PyObject_DictOrValuesPointer", obj,
							     _PyObject_DictOrValuesPointer(obj)));
		NONE("values_before");
#else
		emit_num("managed_dict_before", bytes_before("_PyObject_ManagedDictPointer", obj,
							     _PyObject_ManagedDictPointer(obj)));
		emit_num("values_before", bytes_before("_PyObject_ValuesPointer", obj,
						       _PyObject_ValuesPointer(obj)));
#endif
	}
#else
	NONE("managed_dict_before");
	NONE("values_before");
#endif
	group_end();

	group_begin("type");
	OFF("name", PyTypeObject, tp_name);
	OFF("basicsize", PyTypeObject, tp_basicsize);
	OFF("itemsize", PyTypeObject, tp_itemsize);
	OFF("flags", PyTypeObject, tp_flags);
	OFF("dictoffset", PyTypeObject, tp_dictoffset);
	OFF("base", PyTypeObject, tp_base);
	OFF("mro", PyTypeObject, tp_mro);
	OFF("dict", PyTypeObject, tp_dict);
	OFF("ht_qualname", PyHeapTypeObject, ht_qualname);
	OFF("ht_cached_keys", PyHeapTypeObject, ht_cached_keys);
#if PY_VERSION_HEX >= 0x03090000
	OFF("ht_module", PyHeapTypeObject, ht_module);
#else
	NONE("ht_module");
#endif
	group_end();

	group_begin("bytes");
	OFF("sval", PyBytesObject, ob_sval);
	group_end();

	group_begin("module");
	OFF("dict", PyModuleObject, md_dict);
	group_end();

	group_begin("unicode");
	OFF("length", PyASCIIObject, length);
	OFF("state", PyASCIIObject, state);
	SIZE("ascii_size", PyASCIIObject);
	SIZE("compact_size", PyCompactUnicodeObject);
	UNICODE_STATE_BIT("kind_shift", kind);
	UNICODE_STATE_BIT("compact_shift", compact);
	UNICODE_STATE_BIT("ascii_shift", ascii);
	group_end();

	group_begin("tuple");
	OFF("ob_item", PyTupleObject, ob_item);
	group_end();

	group_begin("list");
	OFF("ob_item", PyListObject, ob_item);
	OFF("allocated", PyListObject, allocated);
	group_end();

	group_begin("long_");
#if PY_VERSION_HEX >= 0x030c0000
	OFF("ob_digit", PyLongObject, long_value.ob_digit);
	OFF("lv_tag", PyLongObject, long_value.lv_tag);
#else
	OFF("ob_digit", PyLongObject, ob_digit);
	NONE("lv_tag");
#endif
	group_end();

	group_begin("dict");
	OFF("used", PyDictObject, ma_used);
	OFF("keys", PyDictObject, ma_keys);
	OFF("values", PyDictObject, ma_values);
	group_end();

	group_begin("dictkeys");
#if PY_VERSION_HEX >= 0x030b0000
	/*
	 * 3.11 keeps the table size as its log2 (bpo-44206) and str-keyed
	 * entries in the smaller PyDictUnicodeEntry (bpo-46845).
	 */
	NONE("size");
	OFF("log2_size", PyDictKeysObject, dk_log2_size);
	OFF("log2_index_bytes", PyDictKeysObject, dk_log2_index_bytes);
	OFF("kind", PyDictKeysObject, dk_kind);
#else
	OFF("size", PyDictKeysObject, dk_size);
	NONE("log2_size");
	NONE("log2_index_bytes");
	NONE("kind");
#endif
	OFF("nentries", PyDictKeysObject, dk_nentries);
	OFF("indices", PyDictKeysObject, dk_indices);
	SIZE("entry_size", PyDictKeyEntry);
#if PY_VERSION_HEX >= 0x030b0000
	SIZE("unicode_entry_size", PyDictUnicodeEntry);
#else
	NONE("unicode_entry_size");
#endif
	OFF("entry_key", PyDictKeyEntry, me_key);
	OFF("entry_value", PyDictKeyEntry, me_value);
#if PY_VERSION_HEX >= 0x030b0000
	OFF("unicode_entry_key", PyDictUnicodeEntry, me_key);
	OFF("unicode_entry_value", PyDictUnicodeEntry, me_value);
#else
	NONE("unicode_entry_key");
	NONE("unicode_entry_value");
#endif
	group_end();

	group_begin("dictvalues");
#if PY_VERSION_HEX >= 0x030b0000
	OFF("values", PyDictValues, values);
#else
	/* ma_values is a PyObject ** to the values themselves */
	NONE("values");
#endif
#if PY_VERSION_HEX >= 0x030d0000
	/* cleared when the attributes move to a materialised dict */
	OFF("valid", PyDictValues, valid);
#else
	NONE("valid");
#endif
	group_end();

	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("offsets-probe: stdout");
		return 1;
	}
	return 0;
}
