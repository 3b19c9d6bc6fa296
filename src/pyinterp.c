// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * pyinterp: the interpreter in the target, found from its maps, its ELF
 * symbols and its own memory.  See include/pyinterp.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "procfs.h"
#include "pyinterp.h"

/* Limits on what we read from the target (it is untrusted). */
#define TYPE_NAME_MAX	 256
#define STR_BYTES_MAX	 (1u << 20)
#define DICT_ENTRIES_MAX (1u << 20)
#define INTERPS_MAX	 256
/* No dict entry is larger: {hash, key, value} is three pointers. */
#define DICT_ENTRY_MAX 64
/* Attribute and key names we look up ourselves ("_active", "threading"). */
#define KEY_CHARS_MAX 64
/* Nothing we read an attribute of is larger (tp_basicsize, tp_dictoffset). */
#define OBJECT_SIZE_MAX (1u << 20)
/* Deeper tp_base chains than this are corrupt. */
#define TYPE_DEPTH_MAX 64
/* Entries of threading._active looked at, thread or not. */
#define THREAD_ENTRIES_MAX (4 * PY_THREAD_NAMES_MAX)
/* Pointers in the target: pyleakdb reads x86-64 processes. */
#define PTR_BYTES sizeof(uint64_t)
/* dk_kind of 3.11+ keys whose entries carry the hash (DICT_KEYS_GENERAL). */
#define DICT_KEYS_GENERAL 0
/* the largest log2 of a keys object's index table we believe */
#define DICT_LOG2_INDEX_BYTES_MAX 40
/* Py_TPFLAGS_UNICODE_SUBCLASS and friends: tp_flags bits that are part of the stable ABI */
#define TPFLAGS_LONG_SUBCLASS	 (1ul << 24)
#define TPFLAGS_BYTES_SUBCLASS	 (1ul << 27)
#define TPFLAGS_UNICODE_SUBCLASS (1ul << 28)
/* PyUnicode kinds */
#define PYUNICODE_1BYTE 1
#define PYUNICODE_2BYTE 2
#define PYUNICODE_4BYTE 4

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* "libpython3.11.so.1.0" -> 3, 11; "python3.9" -> 3, 9.  0 when the name says a version. */
static int version_from_name(const char *name, int *major, int *minor)
{
	const char *p = strstr(name, "python");

	if (!p)
		return -1;
	p += strlen("python");
	if (sscanf(p, "%d.%d", major, minor) == 2)
		return 0;
	return -1;
}

static int has_interpreter_symbols(struct symtab *st)
{
	return symtab_find(st, "Py_Initialize") || symtab_find(st, "_PyRuntime") ||
	       symtab_find(st, "PyEval_EvalFrameEx") || symtab_find(st, "Py_Version");
}

static void read_exe(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, buf, len - 1);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
}

/* The module that holds the interpreter: libpython if loaded, else the executable. */
static struct module *find_pymodule(struct modules *mods, const char *exe, int *is_py2)
{
	struct module *m;

	*is_py2 = 0;
	m = modules_find_name(mods, "libpython3");
	if (m)
		return m;
	m = modules_find_name(mods, "libpython2");
	if (m) {
		*is_py2 = 1;
		return m;
	}
	for (size_t i = 0; i < mods->n; i++) {
		struct symtab *st;

		if (strcmp(mods->v[i].path, exe))
			continue;
		st = module_symtab(mods, &mods->v[i]);
		if (st && has_interpreter_symbols(st)) {
			*is_py2 = symtab_find(st, "PyString_FromString") != NULL;
			return &mods->v[i];
		}
	}
	return NULL;
}

int pyinterp_precheck(pid_t pid)
{
	struct maps maps;
	struct modules mods;
	struct module *m;
	char exe[4096], comm[64] = "?";
	int is_py2, ret = 0;

	error_quiet(1);
	if (maps_read(pid, &maps) < 0) {
		error_quiet(0);
		/* gone, or no permission to read its maps: attaching will explain */
		return 0;
	}
	error_quiet(0);
	read_exe(pid, exe, sizeof(exe));
	modules_build(pid, &maps, &mods);
	m = find_pymodule(&mods, exe, &is_py2);
	proc_thread_comm(pid, pid, comm, sizeof(comm));
	if (!m && !exe[0]) {
		/* no executable: the process has just ended, or is a kernel thread */
		char state = proc_thread_state(pid, pid);
		char *c = escape_dup(comm, strlen(comm));

		if (!state)
			ret = error(
			    "no process with PID %d (it has exited); check the PID with 'ps'", pid);
		else if (state == 'Z' || state == 'X')
			ret = error(
			    "process %d (%s) has exited (a zombie until its parent reaps it); "
			    "there is nothing left to attach to",
			    pid, c);
		else
			ret = error("process %d (%s) is a kernel thread, not a Python process", pid,
				    c);
		free(c);
	} else if (!m) {
		char *e = escape_dup(exe, strlen(exe)), *c = escape_dup(comm, strlen(comm));

		ret = error("process %d (%s) is not a Python process: it runs '%s', which has no "
			    "CPython interpreter, and no libpython is loaded",
			    pid, c, e);
		free(e);
		free(c);
	} else if (is_py2) {
		ret = error("process %d runs Python 2, which pyleakdb does not support; it needs "
			    "CPython %d.%d to %d.%d",
			    pid, PY_MIN_MAJOR, PY_MIN_MINOR, PY_MIN_MAJOR, PY_MAX_MINOR);
	}
	modules_release(&mods);
	maps_release(&maps);
	return ret;
}

int py_read_ptr(struct pyinterp *pi, uint64_t addr, uint64_t *out)
{
	return mem_read_u64(pi->task, addr, out);
}

static uint64_t sym_addr(struct pyinterp *pi, const char *name)
{
	struct symtab *st = module_symtab(&pi->mods, pi->pymod);
	const struct symbol *s = st ? symtab_find(st, name) : NULL;

	return s ? s->value + pi->pymod->bias : 0;
}

/* Is the layout consistent with memory: interpreter -> thread -> back to interpreter? */
static int layout_checks_out(struct pyinterp *pi, const struct py_layout *L, uint64_t head_addr)
{
	uint64_t interp, ts, back;

	if (L->interp.tstate_head < 0 || L->tstate.interp < 0)
		return 0;
	if (py_read_ptr(pi, head_addr, &interp) < 0 || !interp)
		return 0;
	if (py_read_ptr(pi, interp + (uint64_t)L->interp.tstate_head, &ts) < 0)
		return 0;
	if (!ts)
		return 1; /* no threads yet: nothing contradicts it */
	if (py_read_ptr(pi, ts + (uint64_t)L->tstate.interp, &back) < 0)
		return 0;
	return back == interp;
}

static int find_version_string(struct pyinterp *pi)
{
	struct strbuf sb = STRBUF_INIT;
	/* Py_GetVersion() formats into a static buffer at start-up (sys.version reads it) */
	uint64_t a = sym_addr(pi, "version.0");
	int major, minor, micro;

	if (!a)
		a = sym_addr(pi, "version");
	if (!a || mem_read_cstr(pi->task, a, sizeof(pi->version_str) - 1, &sb) < 0 ||
	    sscanf(sb_str(&sb), "%d.%d.%d", &major, &minor, &micro) != 3) {
		sb_release(&sb);
		return -1;
	}
	snprintf(pi->version_str, sizeof(pi->version_str), "%s", sb_str(&sb));
	sb_release(&sb);
	pi->major = major;
	pi->minor = minor;
	pi->micro = micro;
	return 0;
}

static int refuse_version(struct pyinterp *pi)
{
	if (pi->major == PY_MIN_MAJOR && pi->minor > PY_MAX_MINOR)
		return error("the target runs Python %d.%d, which pyleakdb cannot read yet: it "
			     "supports CPython %d.%d to %d.%d",
			     pi->major, pi->minor, PY_MIN_MAJOR, PY_MIN_MINOR, PY_MIN_MAJOR,
			     PY_MAX_MINOR);
	if (pi->major != PY_MIN_MAJOR || pi->minor < PY_MIN_MINOR)
		return error("the target runs Python %d.%d, which pyleakdb does not support: it "
			     "needs CPython %d.%d to %d.%d",
			     pi->major, pi->minor, PY_MIN_MAJOR, PY_MIN_MINOR, PY_MIN_MAJOR,
			     PY_MAX_MINOR);
	return 0;
}

static int find_runtime(struct pyinterp *pi)
{
	struct symtab *st = module_symtab(&pi->mods, pi->pymod);
	uint64_t addr, size;

	pi->runtime = sym_addr(pi, "_PyRuntime");
	if (pi->runtime) {
		pi->runtime_how = symtab_has_full_symbols(st) ? "symbol _PyRuntime (.symtab)"
							      : "symbol _PyRuntime (.dynsym)";
		return 0;
	}
	if (st && symtab_section(st, ".PyRuntime", &addr, &size) == 0) {
		pi->runtime = addr + pi->pymod->bias;
		pi->runtime_how = "section .PyRuntime";
		return 0;
	}
	return -1;
}

static void find_eval_ranges(struct pyinterp *pi)
{
	static const char *const names[] = {"_PyEval_EvalFrameDefault",
					    "_PyEval_EvalFrameDefault.cold"};
	struct symtab *st = module_symtab(&pi->mods, pi->pymod);

	pi->neval = 0;
	for (size_t i = 0; st && i < ARRAY_SIZE(names); i++) {
		const struct symbol *s = symtab_find(st, names[i]);

		if (s && s->size && pi->neval < (int)ARRAY_SIZE(pi->eval)) {
			pi->eval[pi->neval].lo = s->value + pi->pymod->bias;
			pi->eval[pi->neval].hi = s->value + s->size + pi->pymod->bias;
			pi->neval++;
		}
	}
}

int py_gil_range(struct pyinterp *pi, uint64_t interp, uint64_t *lo, uint64_t *hi)
{
	static const char *const statics36[] = {"gil_cond", "gil_mutex", "switch_cond",
						"switch_mutex"};
	const struct py_layout *L = &pi->L;
	uint64_t base = 0;

	if (L->interp.ceval_gil >= 0) {
		/* 3.12+: each interpreter points at the GIL it uses */
		if (py_read_ptr(pi, interp + (uint64_t)L->interp.ceval_gil, &base) < 0 || !base)
			return -1;
	} else if (L->runtime.gil >= 0 && pi->runtime) {
		base = pi->runtime + (uint64_t)L->runtime.gil;
	}
	if (base && L->gil.size > 0) {
		*lo = base;
		*hi = base + (uint64_t)L->gil.size;
		return 0;
	}
	/* 3.6: file-local variables of ceval_gil.h, found by their symbols */
	*lo = UINT64_MAX;
	*hi = 0;
	for (size_t i = 0; i < ARRAY_SIZE(statics36); i++) {
		struct symtab *st = module_symtab(&pi->mods, pi->pymod);
		const struct symbol *sym = st ? symtab_find(st, statics36[i]) : NULL;

		if (!sym)
			return -1;
		if (sym->value + pi->pymod->bias < *lo)
			*lo = sym->value + pi->pymod->bias;
		if (sym->value + sym->size + pi->pymod->bias > *hi)
			*hi = sym->value + sym->size + pi->pymod->bias;
	}
	return 0;
}

int py_is_eval_frame(const struct pyinterp *pi, uint64_t pc)
{
	for (int i = 0; i < pi->neval; i++)
		if (pc >= pi->eval[i].lo && pc < pi->eval[i].hi)
			return 1;
	return 0;
}

static int open_modules(struct pyinterp *pi)
{
	if (maps_read(pi->task->pid, &pi->maps) < 0)
		return -1;
	return modules_build(pi->task->pid, &pi->maps, &pi->mods);
}

int pyinterp_refresh_maps(struct pyinterp *pi)
{
	struct modules old = pi->mods;
	char *pypath = pi->pymod ? xstrdup(pi->pymod->path) : NULL;

	maps_release(&pi->maps);
	if (open_modules(pi) < 0) {
		pi->mods = old;
		free(pypath);
		return -1;
	}
	/* keep the symbols of every file still mapped where it was: reading them is the cost */
	for (size_t i = 0; i < pi->mods.n; i++) {
		struct module *m = &pi->mods.v[i];

		for (size_t j = 0; j < old.n; j++) {
			struct module *o = &old.v[j];

			if (o->inode == m->inode && o->start == m->start &&
			    !strcmp(o->path, m->path)) {
				m->symtab = o->symtab;
				m->symtab_tried = o->symtab_tried;
				m->bias = o->bias;
				m->bias_known = o->bias_known;
				break;
			}
		}
	}
	modules_release(&old);
	pi->pymod = NULL;
	for (size_t i = 0; pypath && i < pi->mods.n; i++)
		if (!strcmp(pi->mods.v[i].path, pypath))
			pi->pymod = &pi->mods.v[i];
	free(pypath);
	if (!pi->pymod)
		return error("the interpreter's file is no longer mapped");
	module_symtab(&pi->mods, pi->pymod);
	return 0;
}

int pyinterp_open(struct pyinterp *pi, struct task *t)
{
	const struct py_layout *L;
	struct symtab *st;
	int is_py2, hint_major = 0, hint_minor = 0;
	uint32_t pyv;

	memset(pi, 0, sizeof(*pi));
	pi->task = t;
	read_exe(t->pid, pi->exe, sizeof(pi->exe));
	if (open_modules(pi) < 0)
		return -1;
	pi->pymod = find_pymodule(&pi->mods, pi->exe, &is_py2);
	if (!pi->pymod)
		return error("process %d is not a Python process: no CPython interpreter found in "
			     "its executable or libraries",
			     t->pid);
	if (is_py2)
		return error("process %d runs Python 2, which pyleakdb does not support", t->pid);
	st = module_symtab(&pi->mods, pi->pymod);
	if (!st)
		return error("cannot read the interpreter's file '%s'", pi->pymod->path);

	find_runtime(pi);
	/* 1. Py_Version: the exact PY_VERSION_HEX, 3.11 and later */
	if ((pyv = 0, sym_addr(pi, "Py_Version")) &&
	    mem_read_u32(t, sym_addr(pi, "Py_Version"), &pyv) == 0 && (pyv >> 24) == 3) {
		pi->hexversion = pyv;
		pi->major = (int)(pyv >> 24);
		pi->minor = (int)((pyv >> 16) & 0xff);
		pi->micro = (int)((pyv >> 8) & 0xff);
		pi->version_how = "Py_Version in the target's memory";
	} else if (find_version_string(pi) == 0) {
		/* 2. the string Py_GetVersion() built at start-up */
		pi->version_how = "Py_GetVersion() string in the target's memory";
	} else if (version_from_name(base_name(pi->pymod->path), &hint_major, &hint_minor) == 0) {
		/* 3. a file name: checked against memory below before we believe it */
		pi->major = hint_major;
		pi->minor = hint_minor;
		pi->version_how = "file name, checked against the interpreter's structures";
	} else {
		pi->major = 3;
		pi->version_how = "the interpreter's structures";
	}
	if (pi->minor && refuse_version(pi) < 0)
		return -1;

	/* 3.13+: the interpreter describes its own layout */
	if (pi->runtime && (!pi->minor || pi->minor >= 13)) {
		unsigned char raw[PY_DEBUG_OFFSETS_SIZE];
		uint64_t vhex;

		if (mem_read(t, pi->runtime, raw, sizeof(raw)) == 0 &&
		    !memcmp(raw, PY_DEBUG_COOKIE, strlen(PY_DEBUG_COOKIE))) {
			memcpy(&vhex, raw + 8, sizeof(vhex));
			pi->major = (int)((vhex >> 24) & 0xff);
			pi->minor = (int)((vhex >> 16) & 0xff);
			pi->micro = (int)((vhex >> 8) & 0xff);
			if (!pi->hexversion) {
				pi->hexversion = (uint32_t)vhex;
				pi->version_how = "_Py_DebugOffsets in the target's memory";
			}
			if (refuse_version(pi) < 0)
				return -1;
			L = py_layout_find(pi->major, pi->minor);
			if (!L)
				return error("no layout for Python %d.%d", pi->major, pi->minor);
			pi->L = *L;
			if (py_layout_from_debug_offsets(&pi->L, raw, sizeof(raw), &vhex) < 0)
				return -1;
			pi->layout_from_debug_offsets = 1;
		}
	}
	if (!pi->layout_from_debug_offsets) {
		if (!pi->minor)
			return error("cannot tell which Python version process %d runs", t->pid);
		L = py_layout_find(pi->major, pi->minor);
		if (!L)
			return error(
			    "the target runs Python %d.%d, for which pyleakdb has no layout",
			    pi->major, pi->minor);
		pi->L = *L;
	}

	if (pi->L.runtime.interpreters_head >= 0 && pi->runtime) {
		pi->interp_head_addr = pi->runtime + (uint64_t)pi->L.runtime.interpreters_head;
	} else {
		/* 3.6: the list of interpreters is a file-local variable */
		pi->interp_head_addr = sym_addr(pi, "interp_head");
		if (!pi->interp_head_addr)
			return error(
			    "cannot find the interpreter list of this Python %d.%d: it needs "
			    "the symbol 'interp_head' (install the interpreter's debug "
			    "symbols)",
			    pi->major, pi->minor);
		pi->runtime_how = "symbol interp_head (.symtab)";
		pi->gil_locked_addr = sym_addr(pi, "gil_locked");
		pi->gil_holder_addr = sym_addr(pi, "gil_last_holder");
	}
	if (!pi->interp_head_addr)
		return error("cannot find _PyRuntime in '%s' (no symbol, no .PyRuntime section)",
			     pi->pymod->path);
	if (!layout_checks_out(pi, &pi->L, pi->interp_head_addr)) {
		uint64_t interp = 0;

		py_read_ptr(pi, pi->interp_head_addr, &interp);
		if (!interp)
			return error("the Python interpreter in process %d is not initialised (or "
				     "already finalised)",
				     t->pid);
		return error("the interpreter's structures do not match Python %d.%d (version "
			     "from %s); cannot read this process",
			     pi->major, pi->minor, pi->version_how);
	}
	if (!pi->version_str[0])
		find_version_string(pi);
	if (!pi->version_str[0])
		snprintf(pi->version_str, sizeof(pi->version_str), "%d.%d.%d", pi->major, pi->minor,
			 pi->micro);

	pi->type_code = sym_addr(pi, "PyCode_Type");
	pi->type_str = sym_addr(pi, "PyUnicode_Type");
	pi->type_bytes = sym_addr(pi, "PyBytes_Type");
	pi->type_tuple = sym_addr(pi, "PyTuple_Type");
	pi->type_dict = sym_addr(pi, "PyDict_Type");
	pi->type_long = sym_addr(pi, "PyLong_Type");
	pi->type_frame = sym_addr(pi, "PyFrame_Type");
	pi->type_module = sym_addr(pi, "PyModule_Type");
	find_eval_ranges(pi);
	return 0;
}

void pyinterp_release(struct pyinterp *pi)
{
	modules_release(&pi->mods);
	maps_release(&pi->maps);
}

int py_first_interp(struct pyinterp *pi, uint64_t *interp)
{
	if (py_read_ptr(pi, pi->interp_head_addr, interp) < 0)
		return error("cannot read the interpreter list at %#" PRIx64, pi->interp_head_addr);
	return 0;
}

/* ----- objects ----- */

int py_obj_type(struct pyinterp *pi, uint64_t obj, uint64_t *type)
{
	if (!obj || py_read_ptr(pi, obj + (uint64_t)pi->L.object.type, type) < 0 || !*type)
		return -1;
	return 0;
}

int py_type_name(struct pyinterp *pi, uint64_t type, struct strbuf *out)
{
	uint64_t name;

	if (py_read_ptr(pi, type + (uint64_t)pi->L.type.name, &name) < 0 || !name)
		return -1;
	return mem_read_cstr(pi->task, name, TYPE_NAME_MAX, out);
}

static int type_has_flag(struct pyinterp *pi, uint64_t type, unsigned long flag)
{
	uint64_t flags;

	if (pi->L.type.flags < 0 ||
	    mem_read_u64(pi->task, type + (uint64_t)pi->L.type.flags, &flags) < 0)
		return 0;
	return (flags & flag) != 0;
}

/* Is obj an instance of the builtin type at want (or a subclass, by its tp_flags bit)? */
static int is_instance(struct pyinterp *pi, uint64_t obj, uint64_t want,
		       unsigned long subclass_flag)
{
	uint64_t type;

	if (py_obj_type(pi, obj, &type) < 0)
		return 0;
	if (want && type == want)
		return 1;
	if (!want || subclass_flag)
		return subclass_flag && type_has_flag(pi, type, subclass_flag);
	return 0;
}

static void add_utf8(struct strbuf *out, uint32_t c)
{
	char b[4];

	if (c < 0x80) {
		sb_addc(out, (char)c);
	} else if (c < 0x800) {
		b[0] = (char)(0xc0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3f));
		sb_add(out, b, 2);
	} else if (c < 0x10000) {
		b[0] = (char)(0xe0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (char)(0x80 | (c & 0x3f));
		sb_add(out, b, 3);
	} else if (c < 0x110000) {
		b[0] = (char)(0xf0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (char)(0x80 | (c & 0x3f));
		sb_add(out, b, 4);
	} else {
		sb_adds(out, "\xef\xbf\xbd"); /* U+FFFD: not a code point */
	}
}

int py_str(struct pyinterp *pi, uint64_t obj, size_t max_chars, struct strbuf *out)
{
	const struct py_layout *L = &pi->L;
	uint32_t state;
	int64_t length;
	unsigned kind, compact, ascii;
	uint64_t data;
	size_t n, bytes;
	unsigned char *buf;

	sb_reset(out);
	if (!is_instance(pi, obj, pi->type_str, TPFLAGS_UNICODE_SUBCLASS))
		return -1;
	if (mem_read_u32(pi->task, obj + (uint64_t)L->unicode.state, &state) < 0 ||
	    mem_read(pi->task, obj + (uint64_t)L->unicode.length, &length, sizeof(length)) < 0)
		return -1;
	if (length < 0)
		return -1;
	kind = (state >> L->unicode.kind_shift) & 7;
	compact = (state >> L->unicode.compact_shift) & 1;
	ascii = (state >> L->unicode.ascii_shift) & 1;
	if (!compact)
		return -1; /* legacy strings (PyUnicode_FromUnicode) never name code or files */
	if (kind != PYUNICODE_1BYTE && kind != PYUNICODE_2BYTE && kind != PYUNICODE_4BYTE)
		return -1;
	if (ascii)
		data = obj + (uint64_t)L->unicode.ascii_size;
	else if (L->unicode.compact_size > 0)
		data = obj + (uint64_t)L->unicode.compact_size;
	else
		return -1;
	n = (size_t)length < max_chars ? (size_t)length : max_chars;
	bytes = n * kind;
	if (bytes > STR_BYTES_MAX)
		return -1;
	buf = xmalloc(bytes ? bytes : 1);
	if (mem_read(pi->task, data, buf, bytes) < 0) {
		free(buf);
		return -1;
	}
	if (kind == PYUNICODE_1BYTE && ascii) {
		sb_add(out, buf, bytes);
	} else {
		for (size_t i = 0; i < n; i++) {
			uint32_t c;

			if (kind == PYUNICODE_1BYTE) {
				c = buf[i];
			} else if (kind == PYUNICODE_2BYTE) {
				uint16_t v;

				memcpy(&v, buf + 2 * i, 2);
				c = v;
			} else {
				memcpy(&c, buf + 4 * i, 4);
			}
			add_utf8(out, c);
		}
	}
	free(buf);
	if ((size_t)length > max_chars)
		sb_adds(out, "...");
	return 0;
}

int py_bytes(struct pyinterp *pi, uint64_t obj, size_t max, struct strbuf *out)
{
	int64_t size;

	sb_reset(out);
	if (!is_instance(pi, obj, pi->type_bytes, TPFLAGS_BYTES_SUBCLASS))
		return -1;
	if (mem_read(pi->task, obj + (uint64_t)pi->L.object.size, &size, sizeof(size)) < 0)
		return -1;
	if (size < 0 || (uint64_t)size > max)
		return -1;
	sb_grow(out, (size_t)size);
	if (mem_read(pi->task, obj + (uint64_t)pi->L.bytes.sval, out->buf, (size_t)size) < 0)
		return -1;
	out->len = (size_t)size;
	out->buf[out->len] = '\0';
	return 0;
}

int py_long(struct pyinterp *pi, uint64_t obj, int64_t *out)
{
	const struct py_layout *L = &pi->L;
	uint64_t ndigits, value = 0;
	int negative;
	uint32_t digits[3];

	if (!is_instance(pi, obj, pi->type_long, TPFLAGS_LONG_SUBCLASS))
		return -1;
	if (L->long_tagged) {
		uint64_t tag;

		/* lv_tag: the sign in the low bits, the digit count above them */
		if (L->long_non_size_bits <= 0 || L->long_non_size_bits >= 64 ||
		    L->long_sign_mask < 0 || L->long_sign_negative < 0 ||
		    mem_read_u64(pi->task, obj + (uint64_t)L->long_.lv_tag, &tag) < 0)
			return -1;
		ndigits = tag >> L->long_non_size_bits;
		negative = (tag & (uint64_t)L->long_sign_mask) == (uint64_t)L->long_sign_negative;
	} else {
		int64_t size;

		if (mem_read(pi->task, obj + (uint64_t)L->object.size, &size, sizeof(size)) < 0)
			return -1;
		negative = size < 0;
		ndigits = (uint64_t)(size < 0 ? -size : size);
	}
	if (L->long_shift <= 0 || L->long_shift > 30 || ndigits * (uint64_t)L->long_shift > 63 ||
	    ndigits > ARRAY_SIZE(digits))
		return -1;
	if (ndigits && mem_read(pi->task, obj + (uint64_t)L->long_.ob_digit, digits,
				ndigits * sizeof(uint32_t)) < 0)
		return -1;
	for (uint64_t i = ndigits; i-- > 0;)
		value = (value << L->long_shift) | (digits[i] & ((1u << L->long_shift) - 1));
	*out = negative ? -(int64_t)value : (int64_t)value;
	return 0;
}

/* ----- dicts ----- */

/*
 * The table of a dict's keys object: its entries and, for a split table
 * (instance attributes), the values array apart, values[i] going with
 * entry i.
 */
struct dict_table {
	uint64_t entries; /* the first entry */
	int64_t n;	  /* entries used so far, deleted ones included (dk_nentries) */
	size_t entry_size;
	int32_t key_off, value_off; /* within an entry */
	uint64_t values;	    /* split table: the values array; 0 when combined */
};

static int dict_table_open(struct pyinterp *pi, uint64_t keys, uint64_t values,
			   struct dict_table *t)
{
	const struct py_layout *L = &pi->L;
	uint64_t index_bytes;

	memset(t, 0, sizeof(*t));
	if (!keys || L->dictkeys.nentries < 0 || L->dictkeys.indices < 0 ||
	    L->dictkeys.entry_key < 0 || L->dictkeys.entry_value < 0)
		return -1;
	if (mem_read(pi->task, keys + (uint64_t)L->dictkeys.nentries, &t->n, sizeof(t->n)) < 0)
		return -1;
	if (t->n < 0 || t->n > DICT_ENTRIES_MAX)
		return -1;
	t->entry_size = (size_t)L->dictkeys.entry_size;
	t->key_off = L->dictkeys.entry_key;
	t->value_off = L->dictkeys.entry_value;
	if (L->dictkeys.log2_index_bytes >= 0) {
		uint8_t log2, kind = DICT_KEYS_GENERAL;

		if (mem_read_u8(pi->task, keys + (uint64_t)L->dictkeys.log2_index_bytes, &log2) <
			0 ||
		    log2 > DICT_LOG2_INDEX_BYTES_MAX)
			return -1;
		if (L->dictkeys.kind >= 0 &&
		    mem_read_u8(pi->task, keys + (uint64_t)L->dictkeys.kind, &kind) < 0)
			return -1;
		/* general entries carry the hash; unicode and split ones do not */
		if (kind != DICT_KEYS_GENERAL && L->dictkeys.unicode_entry_size > 0) {
			t->entry_size = (size_t)L->dictkeys.unicode_entry_size;
			t->key_off = L->dictkeys.unicode_entry_key;
			t->value_off = L->dictkeys.unicode_entry_value;
		}
		index_bytes = 1ull << log2;
	} else {
		int64_t size;
		int width;

		if (mem_read(pi->task, keys + (uint64_t)L->dictkeys.size, &size, sizeof(size)) <
			0 ||
		    size <= 0 || size > (int64_t)DICT_ENTRIES_MAX * 4)
			return -1;
		/* the index table's width grows with the table */
		width = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffll ? 4 : 8;
		index_bytes = (uint64_t)size * (uint64_t)width;
	}
	if (t->entry_size == 0 || t->entry_size > DICT_ENTRY_MAX || t->key_off < 0 ||
	    t->value_off < 0 || (size_t)t->key_off + PTR_BYTES > t->entry_size ||
	    (size_t)t->value_off + PTR_BYTES > t->entry_size)
		return -1;
	t->entries = keys + (uint64_t)L->dictkeys.indices + index_bytes;
	t->values = values;
	return 0;
}

/* Each (key, value) of a table, both non-NULL: see py_dict_fn. */
static int dict_table_each(struct pyinterp *pi, const struct dict_table *t, py_dict_fn fn,
			   void *arg)
{
	unsigned char e[DICT_ENTRY_MAX];

	for (int64_t i = 0; i < t->n; i++) {
		uint64_t at = t->entries + (uint64_t)i * t->entry_size, k, v;
		int r;

		if (mem_read(pi->task, at, e, t->entry_size) < 0)
			return -1;
		memcpy(&k, e + t->key_off, sizeof(k));
		if (t->values) {
			if (py_read_ptr(pi, t->values + (uint64_t)i * PTR_BYTES, &v) < 0)
				return -1;
		} else {
			memcpy(&v, e + t->value_off, sizeof(v));
		}
		/* an unused or deleted entry, or an attribute this instance lacks */
		if (!k || !v)
			continue;
		r = fn(pi, k, v, arg);
		if (r)
			return r;
	}
	return 0;
}

/* The table of a dict object, combined or split. */
static int dict_table_of(struct pyinterp *pi, uint64_t dict, struct dict_table *t)
{
	const struct py_layout *L = &pi->L;
	uint64_t keys, values;

	if (L->dict.keys < 0 || L->dict.values < 0)
		return -1;
	if (!is_instance(pi, dict, pi->type_dict, 0) ||
	    py_read_ptr(pi, dict + (uint64_t)L->dict.keys, &keys) < 0 ||
	    py_read_ptr(pi, dict + (uint64_t)L->dict.values, &values) < 0)
		return -1;
	/* up to 3.10 ma_values is the array itself, later a PyDictValues */
	if (values && L->dictvalues.values >= 0)
		values += (uint64_t)L->dictvalues.values;
	return dict_table_open(pi, keys, values, t);
}

int py_dict_each(struct pyinterp *pi, uint64_t dict, py_dict_fn fn, void *arg)
{
	struct dict_table t;

	if (dict_table_of(pi, dict, &t) < 0)
		return -1;
	return dict_table_each(pi, &t, fn, arg);
}

/* Is obj a str equal to the ASCII string s?  Reads no more than s is long. */
static int str_equals(struct pyinterp *pi, uint64_t obj, const char *s)
{
	const struct py_layout *L = &pi->L;
	size_t n = strlen(s);
	char buf[KEY_CHARS_MAX];
	uint32_t state;
	int64_t length;

	if (n > sizeof(buf) || !is_instance(pi, obj, pi->type_str, TPFLAGS_UNICODE_SUBCLASS))
		return 0;
	if (mem_read_u32(pi->task, obj + (uint64_t)L->unicode.state, &state) < 0 ||
	    mem_read(pi->task, obj + (uint64_t)L->unicode.length, &length, sizeof(length)) < 0)
		return 0;
	/* an ASCII s can only equal a compact ASCII str: one byte a character */
	if (length < 0 || (size_t)length != n || !((state >> L->unicode.compact_shift) & 1) ||
	    !((state >> L->unicode.ascii_shift) & 1))
		return 0;
	if (mem_read(pi->task, obj + (uint64_t)L->unicode.ascii_size, buf, n) < 0)
		return 0;
	return !memcmp(buf, s, n);
}

struct get_str {
	const char *key;
	uint64_t value;
};

#define GET_STR_FOUND 1

static int get_str_fn(struct pyinterp *pi, uint64_t key, uint64_t value, void *arg)
{
	struct get_str *g = arg;

	if (!str_equals(pi, key, g->key))
		return 0;
	g->value = value;
	return GET_STR_FOUND;
}

/* table[key]: 0 found, 1 absent, -1 error. */
static int table_get_str(struct pyinterp *pi, const struct dict_table *t, const char *key,
			 uint64_t *value)
{
	struct get_str g = {key, 0};
	int r = dict_table_each(pi, t, get_str_fn, &g);

	if (r < 0)
		return -1;
	if (r != GET_STR_FOUND)
		return 1;
	*value = g.value;
	return 0;
}

int py_dict_get_str(struct pyinterp *pi, uint64_t dict, const char *key, uint64_t *value)
{
	struct dict_table t;

	if (dict_table_of(pi, dict, &t) < 0)
		return -1;
	return table_get_str(pi, &t, key, value);
}

/* ----- instance attributes ----- */

/* An attribute in values kept without a dict, indexed like the type's shared keys. */
static int cached_keys_get(struct pyinterp *pi, uint64_t type, uint64_t values, const char *name,
			   uint64_t *value)
{
	const struct py_layout *L = &pi->L;
	struct dict_table t;
	uint64_t keys;

	if (L->type.ht_cached_keys < 0 || L->dictvalues.values < 0 || !values ||
	    py_read_ptr(pi, type + (uint64_t)L->type.ht_cached_keys, &keys) < 0 ||
	    dict_table_open(pi, keys, values + (uint64_t)L->dictvalues.values, &t) < 0)
		return -1;
	return table_get_str(pi, &t, name, value);
}

/*
 * 3.11+: where a Py_TPFLAGS_MANAGED_DICT instance keeps its attributes:
 * values without a dict (inline after the object in 3.13, pointed to
 * from before it in 3.11 and, tagged, 3.12), else the dict before it.
 */
static int managed_attr(struct pyinterp *pi, uint64_t obj, uint64_t type, uint64_t flags,
			const char *name, uint64_t *value)
{
	const struct py_layout *L = &pi->L;
	uint64_t values, word;

	if (L->object.managed_dict_before <= 0 || obj < (uint64_t)L->object.managed_dict_before)
		return -1;
	if (L->tpflags_inline_values > 0 && (flags & (uint64_t)L->tpflags_inline_values) &&
	    L->dictvalues.valid >= 0) {
		int64_t basicsize;
		uint8_t valid;

		if (mem_read(pi->task, type + (uint64_t)L->type.basicsize, &basicsize,
			     sizeof(basicsize)) < 0 ||
		    basicsize <= 0 || basicsize > OBJECT_SIZE_MAX)
			return -1;
		values = obj + (uint64_t)basicsize;
		if (mem_read_u8(pi->task, values + (uint64_t)L->dictvalues.valid, &valid) < 0)
			return -1;
		/* cleared when the attributes moved to a dict of their own */
		if (valid)
			return cached_keys_get(pi, type, values, name, value);
	}
	if (L->object.values_before > 0) {
		if (obj < (uint64_t)L->object.values_before ||
		    py_read_ptr(pi, obj - (uint64_t)L->object.values_before, &values) < 0)
			return -1;
		if (values)
			return cached_keys_get(pi, type, values, name, value);
	}
	if (py_read_ptr(pi, obj - (uint64_t)L->object.managed_dict_before, &word) < 0)
		return -1;
	if (L->dorv_values_tag > 0 && (word & (uint64_t)L->dorv_values_tag))
		return cached_keys_get(pi, type, word + (uint64_t)L->dorv_values_tag, name, value);
	if (!word)
		return 1; /* no attribute set yet */
	return py_dict_get_str(pi, word, name, value);
}

int py_instance_attr(struct pyinterp *pi, uint64_t obj, const char *name, uint64_t *value)
{
	const struct py_layout *L = &pi->L;
	uint64_t type, flags, dict;
	int64_t dictoffset;

	if (L->type.flags < 0 || L->type.dictoffset < 0 || py_obj_type(pi, obj, &type) < 0 ||
	    mem_read_u64(pi->task, type + (uint64_t)L->type.flags, &flags) < 0)
		return -1;
	if (L->tpflags_managed_dict > 0 && (flags & (uint64_t)L->tpflags_managed_dict))
		return managed_attr(pi, obj, type, flags, name, value);
	if (mem_read(pi->task, type + (uint64_t)L->type.dictoffset, &dictoffset,
		     sizeof(dictoffset)) < 0)
		return -1;
	/* a negative offset counts from the end of a variable-size object: not one we read */
	if (dictoffset <= 0 || dictoffset > OBJECT_SIZE_MAX)
		return -1;
	if (py_read_ptr(pi, obj + (uint64_t)dictoffset, &dict) < 0)
		return -1;
	if (!dict)
		return 1;
	return py_dict_get_str(pi, dict, name, value);
}

/* ----- threading ----- */

/* Is type want, or derived from it (single inheritance chain, bounded)? */
static int is_subtype(struct pyinterp *pi, uint64_t type, uint64_t want)
{
	for (int depth = 0; type && depth < TYPE_DEPTH_MAX; depth++) {
		if (type == want)
			return 1;
		if (pi->L.type.base < 0 ||
		    py_read_ptr(pi, type + (uint64_t)pi->L.type.base, &type) < 0)
			return 0;
	}
	return 0;
}

struct names {
	struct py_thread_name *v;
	size_t n, cap;
	size_t seen;
	size_t max_chars;
	struct strbuf sb;
};

#define NAMES_STOP 1

static int collect_name(struct pyinterp *pi, uint64_t key, uint64_t thread, void *arg)
{
	struct names *c = arg;
	uint64_t name;
	int64_t ident;

	if (++c->seen > THREAD_ENTRIES_MAX || c->n >= PY_THREAD_NAMES_MAX)
		return NAMES_STOP;
	/* pthread_t: an address, never negative as a Python int */
	if (py_long(pi, key, &ident) < 0 || ident < 0)
		return 0;
	if (py_instance_attr(pi, thread, "_name", &name) != 0 ||
	    py_str(pi, name, c->max_chars, &c->sb) < 0)
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n].ident = (uint64_t)ident;
	c->v[c->n].name = xstrdup(sb_str(&c->sb));
	c->n++;
	return 0;
}

int py_thread_names(struct pyinterp *pi, uint64_t interp, size_t max_chars,
		    struct py_thread_name **out, size_t *n)
{
	const struct py_layout *L = &pi->L;
	struct names c = {.max_chars = max_chars, .sb = STRBUF_INIT};
	uint64_t modules, threading, type, md_dict, active;
	int ret = -1;

	*out = NULL;
	*n = 0;
	if (L->interp.modules < 0 || L->module.dict < 0 ||
	    py_read_ptr(pi, interp + (uint64_t)L->interp.modules, &modules) < 0 || !modules)
		return -1;
	/* not imported: no thread has a name yet */
	if (py_dict_get_str(pi, modules, "threading", &threading) != 0)
		return -1;
	if (py_obj_type(pi, threading, &type) < 0 ||
	    (pi->type_module && !is_subtype(pi, type, pi->type_module)))
		return -1;
	if (py_read_ptr(pi, threading + (uint64_t)L->module.dict, &md_dict) < 0 || !md_dict ||
	    py_dict_get_str(pi, md_dict, "_active", &active) != 0)
		return -1;
	/* a walk cut short still leaves the names read so far: they are right */
	if (py_dict_each(pi, active, collect_name, &c) >= 0)
		ret = 0;
	sb_release(&c.sb);
	*out = c.v;
	*n = c.n;
	return ret;
}

void py_thread_names_release(struct py_thread_name *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}
