# SPDX-License-Identifier: GPL-3.0-or-later
# pyleakdb: `make` builds ./pyleakdb, `make check` runs every test.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man/man1

CC      ?= cc
PYTHON  ?= /usr/bin/python3
VERSION := 0.1.0

# Debian packages the build and the tests need, and the pkg-config modules
# that prove the -dev ones are there.
DEB_BUILD := gcc make pkg-config libunwind-dev libcapstone-dev libreadline-dev \
	libjansson-dev libelf-dev libcmocka-dev
DEB_TEST  := python3 python3-pytest python3-pexpect python3-objgraph \
	python3-memory-profiler gdb graphviz procps groff-base
PKGS      := libunwind-ptrace capstone readline jansson libelf
TEST_PKGS := cmocka

SANITIZE ?=
comma    := ,
VARIANT  := $(if $(SANITIZE),san-$(subst $(comma),-,$(SANITIZE)),default)
B        := build/$(VARIANT)

CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
	-Wmissing-prototypes -Wstrict-prototypes
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -Iinclude -I$(B)/gen -MMD -MP \
	-DPYLEAKDB_VERSION='"$(VERSION)"' -D_GNU_SOURCE \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# The libraries are linked statically by default: loading six shared libraries (and
# libunwind's own three) costs pyleakdb 2 ms at every start, most of a quick `bt`.
# libunwind-ptrace's archive is not position-independent, hence -no-pie.
# STATIC=0 links them dynamically.
STATIC   ?= 1
ifeq ($(STATIC),1)
LIBS     = -Wl,-Bstatic $(shell pkg-config --static --libs $(PKGS) 2>/dev/null) -Wl,-Bdynamic -lm
LDFLAGS  += -no-pie
else
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
endif
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=$(SANITIZE)
endif

SRCS      := $(wildcard src/*.c)
OBJS      := $(patsubst src/%.c,$(B)/%.o,$(SRCS))
LIB_OBJS  := $(filter-out $(B)/main.o,$(OBJS))
AGENT_PY  := $(wildcard src/agent/*.py)
UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))

.PHONY: all deps check check-unit check-e2e demo bench install uninstall clean format format-check offsets

all: deps pyleakdb

# Installs what is missing when run as root, else says the exact command.
deps:
	@missing=$$(for p in $(DEB_BUILD) $(if $(filter check check-e2e bench,$(MAKECMDGOALS)),$(DEB_TEST)); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
		else \
			echo "missing Debian packages; run: sudo apt-get install -y $$missing" >&2; exit 1; \
		fi; \
	fi

# Rebuild when the compiler flags change (e.g. SANITIZE on and off).
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(ALL_CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(LDFLAGS)' > $@
FORCE:

pyleakdb: $(OBJS) $(B)/agent-blob.o $(B)/.flags
	$(CC) $(LDFLAGS) -o $@ $(OBJS) $(B)/agent-blob.o $(LIBS)

$(B)/%.o: src/%.c $(B)/.flags | $(B)/gen/agent-blob.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The agent's Python source, embedded in the binary as one read-only blob.
$(B)/gen/agent-blob.h: $(AGENT_PY) src/gen/embed-agent
	@mkdir -p $(dir $@)
	$(PYTHON) src/gen/embed-agent $@ $(B)/gen/agent-blob.c $(AGENT_PY)
$(B)/gen/agent-blob.c: $(B)/gen/agent-blob.h
$(B)/agent-blob.o: $(B)/gen/agent-blob.c $(B)/.flags
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(LIB_OBJS) $(B)/agent-blob.o $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags $(TEST_PKGS)) -Itests/unit $(LDFLAGS) \
		-o $@ $< $(LIB_OBJS) $(B)/agent-blob.o $(LIBS) $(shell pkg-config --libs $(TEST_PKGS))

check: deps pyleakdb $(UNIT_BINS)
	@$(PYTHON) tests/run-tests --unit-dir $(B)/tests -- $(PYTEST_ARGS)

check-unit: deps pyleakdb $(UNIT_BINS)
	@$(PYTHON) tests/run-tests --unit-dir $(B)/tests --unit-only

check-e2e: deps pyleakdb
	@$(PYTHON) tests/run-tests --e2e-only -- $(PYTEST_ARGS)

demo: deps pyleakdb
	@$(PYTHON) examples/demo

bench: deps pyleakdb
	@$(PYTHON) tests/bench/run-bench

install: pyleakdb
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 755 pyleakdb $(DESTDIR)$(BINDIR)/pyleakdb
	install -m 644 doc/pyleakdb.1 $(DESTDIR)$(MANDIR)/pyleakdb.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pyleakdb $(DESTDIR)$(MANDIR)/pyleakdb.1

# Regenerate the per-version struct layouts from the pyenv interpreters' headers.
offsets:
	src/gen/gen-offsets > src/pyoffsets-table.c.new && mv src/pyoffsets-table.c.new src/pyoffsets-table.c

# every hand-written C file (generated ones keep their generator's layout)
FORMAT_FILES = $(filter-out tests/unit/linetable-vectors.h,$(wildcard src/*.c include/*.h tests/unit/*.c tests/unit/*.h))

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build pyleakdb

-include $(wildcard $(B)/*.d $(B)/tests/*.d)
