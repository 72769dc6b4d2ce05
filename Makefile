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

# libFuzzer targets (clang); each runs FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
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
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} \
	    2>build/fuzz/$$n.log || { tail -50 build/fuzz/$$n.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|Done' build/fuzz/$$n.log | tail -2; \
	done

demo: all
	tests/fixtures/demo.sh

clean:
	rm -rf build
