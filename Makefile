# Rollcall — one non-recursive Makefile.
#
#   make                 every binary into build/
#   make test            unit tests, then integration tests against the embedded stack
#   make run             the main job: stack up, sample registry, one simulated day, totals
#   make up / make down  the embedded stack (PostgreSQL + development broker + services)
#   make bench           benchmarks (print their figures)
#   make install         PREFIX=/usr/local DESTDIR=
#   make web             the dashboard pages and their chart libraries into build/web
#   make sanitize        unit + integration tests built with ASan/UBSan (into build/asan)
#
# New code is picked up without editing this file: lib/*.c goes into
# librollcall.a, services/<name>/*.c becomes build/rollcall-<name> (services/cli
# becomes build/rollcall), tests/unit/test_*.c and tests/integration/test_*.c
# become test binaries.

PREFIX    ?= /usr/local
DESTDIR   ?=
SANITIZE  ?=
BUILD     ?= $(if $(SANITIZE),build/asan,build)

CC        ?= cc
PKGS      := rdkafka libpq libprotobuf-c libevent jansson uuid libcrypto libsodium
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) cmocka)
PKG_LIBS  := $(shell pkg-config --libs $(PKGS))
CMOCKA_LIBS := $(shell pkg-config --libs cmocka)

WARN      := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
             -Wshadow -Wpointer-arith -Wvla -Wno-unused-parameter
OPT       ?= -O2
SAN_OPTS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_FLAGS := $(if $(SANITIZE),$(SAN_OPTS))
CFLAGS    ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN_FLAGS) \
              -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)
LIBS      := $(PKG_LIBS) -lcsv -lm -lpthread  # libcsv ships no .pc file

PROTO_SRC := $(wildcard proto/*.proto)
GEN_C     := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTO_SRC))
GEN_H     := $(GEN_C:.c=.h)

LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) \
             $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(GEN_C))
LIBRC     := $(BUILD)/librollcall.a

SERVICES  := $(notdir $(patsubst %/,%,$(dir $(wildcard services/*/main.c))))
bin_name   = $(if $(filter cli,$(1)),rollcall,rollcall-$(1))
BINS      := $(foreach s,$(SERVICES),$(BUILD)/$(call bin_name,$(s)))
# services/level is one program run under three names (it reads its level
# from argv[0]): hard links next to build/rollcall-level.
LEVEL_ALIASES := $(if $(filter level,$(SERVICES)),$(foreach l,township county province,$(BUILD)/rollcall-$(l)))
BINS      += $(LEVEL_ALIASES)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(ITEST_SRC))
TEST_HELPER_SRC := $(wildcard tests/support/*.c)
TEST_HELPER_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_HELPER_SRC))

.SECONDARY:
.PHONY: all test unit-test integration-test browser-test run up down bench install sanitize clean web fuzz
all: $(BINS) $(UNIT_BINS) $(ITEST_BINS) web

# The dashboard's front end (web/): plain ES modules copied as they are, and
# the two chart libraries' dist files vendored beside them from the npm
# packages pinned by web/package-lock.json (npm ci runs only when the lock
# changes).  rollcall-dashboard serves $(BUILD)/web.
WEB_SRC    := web/index.html web/app.css $(wildcard web/src/*.js web/src/pages/*.js)
WEB_NPM    := web/node_modules/.package-lock.json
WEB_STAMP  := $(BUILD)/web/.built

web: $(WEB_STAMP)

$(WEB_NPM): web/package-lock.json web/package.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_STAMP): $(WEB_SRC) $(WEB_NPM)
	@rm -rf $(BUILD)/web && mkdir -p $(BUILD)/web/src/pages $(BUILD)/web/vendor
	cp web/index.html web/app.css $(BUILD)/web/
	cp $(wildcard web/src/*.js) $(BUILD)/web/src/
	cp $(wildcard web/src/pages/*.js) $(BUILD)/web/src/pages/
	cp web/node_modules/uplot/dist/uPlot.esm.js web/node_modules/uplot/dist/uPlot.min.css $(BUILD)/web/vendor/
	cp web/node_modules/uplot/LICENSE $(BUILD)/web/vendor/uPlot.LICENSE
	cp web/node_modules/echarts/dist/echarts.esm.min.mjs $(BUILD)/web/vendor/
	cp web/node_modules/echarts/LICENSE $(BUILD)/web/vendor/echarts.LICENSE
	@touch $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBRC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

define service_rule
$(BUILD)/$(call bin_name,$(1)): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard services/$(1)/*.c)) $(LIBRC)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(LEVEL_ALIASES): $(BUILD)/rollcall-level
	ln -f $< $@

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TEST_HELPER_OBJ) $(LIBRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TEST_HELPER_OBJ) $(LIBRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

# libFuzzer harnesses (tests/fuzz/fuzz_*.c) with ASan and UBSan: clang
# builds the library again into build/fuzz with coverage instrumentation.
# Skipped (with a line saying so) when clang or libFuzzer is missing.
FUZZ_CC    ?= clang
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined
HAVE_FUZZ  := $(shell echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' | \
                $(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null && echo yes)

fuzz:
ifeq ($(HAVE_FUZZ),yes)
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=$(FUZZ_CC) \
	    CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" build/fuzz/librollcall.a
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
else
	@echo "fuzz: $(FUZZ_CC) with libFuzzer not found (deploy/install-deps.sh installs clang): harnesses not built"
endif

# A harness of a service's private code names the service's sources as
# prerequisites: they are built into it (with the service's folder on the
# include path), as the service builds them.
build/fuzz/fuzz_stage: services/rollup/stage.c

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/librollcall.a
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE $(FUZZ_FLAGS) -fsanitize=fuzzer -Iinclude -Ibuild/fuzz/gen \
	    $(addprefix -I,$(sort $(dir $(filter services/%.c,$^)))) \
	    $(PKG_CFLAGS) -o $@ $(filter %.c,$^) build/fuzz/librollcall.a $(LIBS)

test: all fuzz
	@BUILD=$(BUILD) tests/run.sh all

unit-test: all
	@BUILD=$(BUILD) tests/run.sh unit

integration-test: all
	@BUILD=$(BUILD) tests/run.sh integration

browser-test: all
	@BUILD=$(BUILD) tests/run.sh browser

sanitize:
	$(MAKE) SANITIZE=1 test

up: all
	@BUILD=$(BUILD) deploy/stack.sh up

down:
	@BUILD=$(BUILD) deploy/stack.sh down

run: all
	@BUILD=$(BUILD) deploy/run-day.sh

bench: all
	@BUILD=$(BUILD) bench/run.sh

# The tree deploy/README.md shows: binaries, migrations, the guide, systemd
# units (placeholders filled in) for every service built, and a commented
# example configuration per service generated from its own config table —
# written only where none exists, so a reinstall never clobbers a
# configuration holding passwords.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(if $(filter /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc))
UNITDIR   ?= $(PREFIX)/lib/systemd/system
DATADIR   := $(PREFIX)/share/rollcall
DOCDIR    := $(PREFIX)/share/doc/rollcall
UNIT_SERVICES := $(filter-out cli devbroker level,$(SERVICES)) $(if $(filter level,$(SERVICES)),township county province)
# The dashboard's pages go to $(DATADIR)/web (its web_root there).
install: $(BINS) web
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR)/migrations $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/rollcall
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 migrations/*.sql $(DESTDIR)$(DATADIR)/migrations/
	install -D -m 644 -t $(DESTDIR)$(DATADIR)/proto $(PROTO_SRC)
	rm -rf $(DESTDIR)$(DATADIR)/web
	cp -R $(BUILD)/web $(DESTDIR)$(DATADIR)/web
	rm -f $(DESTDIR)$(DATADIR)/web/.built
	install -m 644 deploy/README.md $(DESTDIR)$(DOCDIR)/README.md
	@set -e; for s in $(UNIT_SERVICES) migrate; do \
	    sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	        -e 's|@DATADIR@|$(DATADIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	        deploy/systemd/rollcall-$$s.service >$(DESTDIR)$(UNITDIR)/rollcall-$$s.service; \
	    chmod 644 $(DESTDIR)$(UNITDIR)/rollcall-$$s.service; \
	done
	@set -e; umask 077; for s in $(UNIT_SERVICES); do \
	    f=$(DESTDIR)$(SYSCONFDIR)/rollcall/$$s.conf; \
	    if [ -e $$f ]; then echo "install: kept $$f"; \
	    else deploy/gen-conf.sh $(BUILD)/rollcall-$$s $$s >$$f; echo "install: wrote $$f"; fi; \
	done; \
	f=$(DESTDIR)$(SYSCONFDIR)/rollcall/topics.conf; \
	[ -e $$f ] || cp deploy/topics.conf $$f; \
	f=$(DESTDIR)$(SYSCONFDIR)/rollcall/migrate.env; \
	[ -e $$f ] || printf '%s\n' '# rollcall-migrate.service: the owner role of the tables (never a service role).' \
	    'ROLLCALL_PG_DSN=host=localhost dbname=rollcall user=rollcall password=change-me' >$$f

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
