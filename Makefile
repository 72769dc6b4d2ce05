# imaphook: `make` builds build/imaphookd and build/imaphook;
# `make check` installs what is missing, builds with ASan+UBSan and runs the
# unit tests (Check) and the integration tests (real Dovecot, real HTTP).

CC       ?= cc
PYTHON   ?= python3
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := 0.1.0

PKGS      := libevent libevent_openssl openssl libcurl jansson libconfig gmime-3.0 libsystemd
# Debian packages: what `make deps` installs when missing.
DEB_PKGS  := build-essential pkg-config libevent-dev libssl-dev libcurl4-openssl-dev \
             libjansson-dev libconfig-dev check libgmime-3.0-dev libsystemd-dev \
             dovecot-core dovecot-imapd openssl python3 curl
DEB_FUZZ  := clang libclang-rt-14-dev

# pkg-config's -I become -isystem: warnings in glib's headers are not ours.
PKG_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS) 2>/dev/null))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags check 2>/dev/null))
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wformat=2 -Wvla -Wmissing-prototypes -Wstrict-prototypes \
            -Wpointer-arith -Wshadow=local -Wno-missing-field-initializers
OPT      ?= -O2
CFLAGS   ?= -g
BASE_CFLAGS = -std=gnu11 $(OPT) $(CFLAGS) $(WARN) -D_GNU_SOURCE -DIMAPHOOK_VERSION='"$(VERSION)"' \
              -Icommon $(PKG_CFLAGS) -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

COMMON_SRC := $(sort $(wildcard common/*.c))
DAEMON_SRC := $(sort $(wildcard daemon/*.c))
CLI_SRC    := $(sort $(wildcard cli/*.c))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC   := $(sort $(wildcard tests/tools/*.c))
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))

# $(1) = build directory, $(2) = extra flags
define variant
$(1)/common/%.o: common/%.c | $(1)/common
	$$(CC) $$(BASE_CFLAGS) $(2) -c $$< -o $$@
$(1)/daemon/%.o: daemon/%.c | $(1)/daemon
	$$(CC) $$(BASE_CFLAGS) $(2) -c $$< -o $$@
$(1)/cli/%.o: cli/%.c | $(1)/cli
	$$(CC) $$(BASE_CFLAGS) $(2) -c $$< -o $$@
$(1)/tests/%.o: tests/unit/%.c | $(1)/tests
	$$(CC) $$(BASE_CFLAGS) $$(CHECK_CFLAGS) $(2) -c $$< -o $$@
$(1)/tools/%.o: tests/tools/%.c | $(1)/tools
	$$(CC) $$(BASE_CFLAGS) $(2) -c $$< -o $$@
$(1)/libimaphook.a: $(patsubst common/%.c,$(1)/common/%.o,$(COMMON_SRC))
	rm -f $$@ && ar rcs $$@ $$^
$(1)/imaphookd: $(patsubst daemon/%.c,$(1)/daemon/%.o,$(DAEMON_SRC)) $(1)/libimaphook.a
	$$(CC) $(2) -o $$@ $$^ $$(PKG_LIBS) -lm
$(1)/imaphook: $(patsubst cli/%.c,$(1)/cli/%.o,$(CLI_SRC)) $(1)/libimaphook.a
	$$(CC) $(2) -o $$@ $$^ $$(PKG_LIBS) -lm
$(1)/tests/test_%: $(1)/tests/test_%.o $(1)/libimaphook.a
	$$(CC) $(2) -o $$@ $$^ $$(CHECK_LIBS) $$(PKG_LIBS) -lm
$(1)/tools/%: $(1)/tools/%.o $(1)/libimaphook.a
	$$(CC) $(2) -o $$@ $$^ $$(PKG_LIBS) -lm
$(1)/common $(1)/daemon $(1)/cli $(1)/tests $(1)/tools:
	mkdir -p $$@
-include $(1)/*/*.d
endef

REL := build
SAN := build/san
$(eval $(call variant,$(REL),))
$(eval $(call variant,$(SAN),$(SAN_FLAGS)))

UNIT_BINS_SAN := $(patsubst tests/unit/%.c,$(SAN)/tests/%,$(UNIT_SRC))
TOOLS_REL     := $(patsubst tests/tools/%.c,$(REL)/tools/%,$(TOOL_SRC))
TOOLS_SAN     := $(patsubst tests/tools/%.c,$(SAN)/tools/%,$(TOOL_SRC))
PROGS_REL     := $(REL)/imaphookd $(REL)/imaphook
PROGS_SAN     := $(SAN)/imaphookd $(SAN)/imaphook

.PHONY: all deps deps-fuzz check check-unit check-integration fuzz demo clean san tools

all: $(PROGS_REL) $(TOOLS_REL)

san: $(PROGS_SAN) $(UNIT_BINS_SAN) $(TOOLS_SAN)

# Installs the Debian packages the build and the tests need, and only those
# that are missing. Service start-up during install is suppressed.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  [ "$$(id -u)" = 0 ] || { echo "make deps: run as root to install:$$missing" >&2; exit 1; }; \
	  prc=/usr/sbin/policy-rc.d; made=""; \
	  if [ ! -e $$prc ]; then printf '#!/bin/sh\nexit 101\n' > $$prc; chmod 755 $$prc; made=1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $$missing >/tmp/imaphook-deps.log 2>&1 || \
	  { apt-get update >>/tmp/imaphook-deps.log 2>&1 && \
	    apt-get install -y --no-install-recommends $$missing >>/tmp/imaphook-deps.log 2>&1; } || \
	  { rc=$$?; tail -30 /tmp/imaphook-deps.log >&2; [ -z "$$made" ] || rm -f $$prc; exit $$rc; }; \
	  [ -z "$$made" ] || rm -f $$prc; \
	fi

deps-fuzz:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_FUZZ)"

# Sanitizer options: any report fails the run.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86:strict_string_checks=1 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

check: deps
	@$(MAKE) --no-print-directory san
	@$(MAKE) --no-print-directory check-unit check-integration

check-unit: $(UNIT_BINS_SAN)
	@fail=0; for t in $(UNIT_BINS_SAN); do \
	  $(SAN_ENV) CK_VERBOSITY=normal $$t || fail=1; \
	done; [ $$fail = 0 ] || { echo "unit tests FAILED"; exit 1; }

check-integration: $(PROGS_SAN) $(TOOLS_SAN)
	$(SAN_ENV) IMAPHOOK_BUILD=$(CURDIR)/$(SAN) IMAPHOOK_TOP=$(CURDIR) \
	  $(PYTHON) -m unittest discover -s tests/integration -t tests -p 'test_*.py' $(if $(V),-v,)

# libFuzzer targets (clang); each runs FUZZ_SECONDS, with tests/fuzz/NAME.dict
# when there is one; a crashing input is left in build/fuzz/fuzz_NAME-crash-*.
FUZZ_SECONDS ?= 30
FUZZ_FLAGS   ?= -timeout=25
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(COMMON_SRC) | build/fuzz
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DIMAPHOOK_VERSION='"$(VERSION)"' -Icommon \
	  $(PKG_CFLAGS) -o $@ $< $(COMMON_SRC) $(PKG_LIBS) -lm
build/fuzz:
	mkdir -p $@
fuzz: deps-fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); \
	  mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_FLAGS) -artifact_prefix=build/fuzz/$$n- \
	    $$(d=tests/fuzz/$${n#fuzz_}.dict; [ ! -f $$d ] || echo -dict=$$d) build/fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} \
	    2>build/fuzz/$$n.log || { tail -50 build/fuzz/$$n.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|Done' build/fuzz/$$n.log | tail -2; \
	done

demo: all
	tests/fixtures/demo.sh

clean:
	rm -rf build

# ---------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=]: builds the release programs
# (all) and installs
#   $(SBINDIR)/imaphookd, $(BINDIR)/imaphook, man pages in $(MANDIR)/man{1,5,8},
#   $(UNITDIR)/imaphookd.service (its ExecStart* follow SBINDIR),
#   $(SYSUSERSDIR)/imaphook.conf (the user "imaphook" the unit runs as),
#   $(SYSCONFDIR)/imaphook/imaphook.conf.example.
# An existing imaphook.conf is never touched. Without DESTDIR, as root, it
# also creates the user (systemd-sysusers) and reloads systemd.
#
# Unit and sysusers.d directories: with PREFIX=/usr (a distribution package)
# those this system's systemd names (pkg-config systemd: /lib/systemd/system
# and /usr/lib/sysusers.d on Debian 12, where dh_installsystemd looks);
# with any other PREFIX they stay below it (/usr/local/lib/systemd/system and
# /usr/local/lib/sysusers.d are on systemd's search paths).
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
ifeq ($(patsubst %/,%,$(PREFIX)),/usr)
UNITDIR     ?= $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/lib/systemd/system)
SYSUSERSDIR ?= $(or $(shell pkg-config --variable=sysusersdir systemd 2>/dev/null),/usr/lib/sysusers.d)
else
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
endif
INSTALL     ?= install

MAN_PAGES := man/imaphook.1 man/imaphook.conf.5 man/imaphookd.8

.PHONY: install uninstall deps-build

# `make` alone builds the programs (the first rule of this file is a
# library's, which is not what README promises).
.DEFAULT_GOAL := all

install: all
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/imaphook
	$(INSTALL) -m 0755 $(REL)/imaphookd $(DESTDIR)$(SBINDIR)/imaphookd
	$(INSTALL) -m 0755 $(REL)/imaphook $(DESTDIR)$(BINDIR)/imaphook
	$(INSTALL) -m 0644 man/imaphook.1 $(DESTDIR)$(MANDIR)/man1/imaphook.1
	$(INSTALL) -m 0644 man/imaphook.conf.5 $(DESTDIR)$(MANDIR)/man5/imaphook.conf.5
	$(INSTALL) -m 0644 man/imaphookd.8 $(DESTDIR)$(MANDIR)/man8/imaphookd.8
	sed -e 's|/usr/local/sbin/imaphookd|$(SBINDIR)/imaphookd|g' systemd/imaphookd.service \
	  > $(DESTDIR)$(UNITDIR)/imaphookd.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/imaphookd.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/imaphookd.service.tmp $(DESTDIR)$(UNITDIR)/imaphookd.service
	$(INSTALL) -m 0644 systemd/imaphook.sysusers $(DESTDIR)$(SYSUSERSDIR)/imaphook.conf
	$(INSTALL) -m 0644 config/imaphook.conf.example \
	  $(DESTDIR)$(SYSCONFDIR)/imaphook/imaphook.conf.example
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  if command -v systemd-sysusers >/dev/null; then \
	    systemd-sysusers $(SYSUSERSDIR)/imaphook.conf || exit 1; \
	  fi; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi; \
	fi
	@[ -e $(DESTDIR)$(SYSCONFDIR)/imaphook/imaphook.conf ] || \
	  echo "make install: next, write $(SYSCONFDIR)/imaphook/imaphook.conf" \
	    "(from imaphook.conf.example), then: systemctl enable --now imaphookd"

# Leaves imaphook.conf, the secrets beside it, the state directory and the
# user alone.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/imaphookd $(DESTDIR)$(BINDIR)/imaphook \
	  $(DESTDIR)$(MANDIR)/man1/imaphook.1 $(DESTDIR)$(MANDIR)/man5/imaphook.conf.5 \
	  $(DESTDIR)$(MANDIR)/man8/imaphookd.8 $(DESTDIR)$(UNITDIR)/imaphookd.service \
	  $(DESTDIR)$(SYSUSERSDIR)/imaphook.conf \
	  $(DESTDIR)$(SYSCONFDIR)/imaphook/imaphook.conf.example
	-rmdir $(DESTDIR)$(SYSCONFDIR)/imaphook 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && [ -d /run/systemd/system ]; then \
	  systemctl daemon-reload || true; fi

# Only what `make all` needs (the container image's build stage): not the
# test dependencies (Dovecot, Check...) that `make deps` adds.
DEB_BUILD := build-essential pkg-config libevent-dev libssl-dev libcurl4-openssl-dev \
             libjansson-dev libconfig-dev libgmime-3.0-dev libsystemd-dev
deps-build:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_BUILD)"

# tests/integration/test_packaging.py lints the man pages with mandoc.
DEB_PKGS += mandoc

# ---------------------------------------------------------------- bench
# make bench: imaphook side by side with a Node.js poller built on ImapFlow
# (bench/peer) and with the machine's limits, on a private Dovecot and one
# webhook receiver; see bench/README.md. BENCH_QUICK=1: a short smoke run;
# BENCH_RUNS, BENCH_ONLY, BENCH_TOOLS, BENCH_PERF=1: see bench/run.py.
# Results go to bench/results/<time>/ (results.md, results.json).
# bench-deps: wrk, strace (apt-get, when missing), the peer's npm packages
# (npm ci, pinned by bench/peer/package-lock.json) and the bench's C tools.
BENCH_DEB := wrk strace
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror

.PHONY: bench bench-deps

bench: bench-deps all
	$(PYTHON) bench/run.py

bench-deps:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) $(BENCH_DEB)"
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { echo "make bench-deps: bench/peer needs Node.js (20 or later) and npm" >&2; exit 1; }
	@$(MAKE) --no-print-directory bench/peer/node_modules/.bench-stamp build/bench/recv \
	  build/bench/imapfetch

bench/peer/node_modules/.bench-stamp: bench/peer/package.json bench/peer/package-lock.json
	cd bench/peer && npm ci --no-audit --no-fund --loglevel=error
	touch $@

build/bench/recv: bench/recv.c | build/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $<

build/bench/imapfetch: bench/imapfetch.c | build/bench
	$(CC) $(BENCH_CFLAGS) -pthread -o $@ $< -lssl -lcrypto

build/bench:
	mkdir -p $@

# ---------------------------------------------------------------- robustness
# make check-valgrind: the daemon, CLI, API and fault tests (not the kill
# test, tests/integration/test_faults_kill.py) with the plain build under
# valgrind memcheck: every run of imaphook/imaphookd goes through
# IMAPHOOK_WRAP, and any error or definite/indirect leak fails its test
# (tests/valgrind.supp: one-time allocations of GLib/GMime/OpenSSL...).
# VALGRIND_TESTS picks other modules; VALGRIND_TIME_FACTOR stretches waits.
VALGRIND := valgrind --tool=memcheck --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
            --error-exitcode=99 --num-callers=40 --gen-suppressions=all \
            --suppressions=$(CURDIR)/tests/valgrind.supp --log-file={log}.%p
# Every integration module but the kill test (timing-bound, its figures come
# from make check), the packaging checks (no daemon runs) and the interop
# suites (make check-interop).
VALGRIND_TESTS ?= $(filter-out test_faults_kill test_packaging test_interop_%,$(basename \
                  $(notdir $(sort $(wildcard tests/integration/test_*.py)))))
VALGRIND_TIME_FACTOR ?= 6

.PHONY: check-valgrind deps-valgrind fuzz-ci

deps-valgrind:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) valgrind"

check-valgrind: deps-valgrind
	@$(MAKE) --no-print-directory $(PROGS_REL) $(TOOLS_REL)
	cd tests && IMAPHOOK_BUILD=$(CURDIR)/$(REL) IMAPHOOK_TOP=$(CURDIR) \
	  IMAPHOOK_WRAP="$(VALGRIND)" IMAPHOOK_TIME_FACTOR=$(VALGRIND_TIME_FACTOR) \
	  $(PYTHON) -m unittest $(if $(V),-v,) $(addprefix integration.,$(VALGRIND_TESTS))

# make fuzz-ci: every fuzz target for FUZZ_CI_SECONDS (60) from its seed
# corpus (CI runs it after make check); a crash fails.
FUZZ_CI_SECONDS ?= 60
fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_CI_SECONDS)

# ---------------------------------------------------------------- interop
# make check-interop: the interop suites (tests/integration/test_interop_*.py:
# connect, list/status, every action, the trigger in poll and idle mode)
# against Dovecot 2.3, Cyrus IMAP 3.6 and Courier-IMAP 5.0, one server after
# the other, each started on free 127.0.0.1 ports (tests/integration/servers.py).
# INTEROP_SERVERS="cyrus courier" runs some of them; V=1 names every test.
# deps-interop installs what Cyrus and Courier need, and only what is missing
# (tests/fixtures/install-interop-imap.sh, as root): cyrus-imapd and
# courier-imap conflict with dovecot-imapd, so they are unpacked under
# /opt/interop-imap and Dovecot stays installed.
INTEROP_SERVERS ?= dovecot cyrus courier

.PHONY: check-interop deps-interop

deps-interop: deps
	@tests/fixtures/install-interop-imap.sh

check-interop: deps-interop
	@$(MAKE) --no-print-directory $(PROGS_SAN)
	@fail=""; for s in $(INTEROP_SERVERS); do \
	  echo "== check-interop: $$s"; t0=$$(date +%s); \
	  $(SAN_ENV) IMAPHOOK_BUILD=$(CURDIR)/$(SAN) IMAPHOOK_TOP=$(CURDIR) IMAPHOOK_INTEROP_SERVERS=$$s \
	    $(PYTHON) -m unittest discover -s tests/integration -t tests -p 'test_interop*.py' \
	    $(if $(V),-v,) || fail="$$fail $$s"; \
	  echo "== check-interop: $$s took $$(( $$(date +%s) - t0 )) s"; \
	done; [ -z "$$fail" ] || { echo "check-interop FAILED on:$$fail"; exit 1; }
