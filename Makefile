# sdserve — one Makefile.  `make` builds build/sdserve; `make test` builds and
# runs every tests/*/test_*.c and tests/*/test_*.sh, then runs them all again
# from an ASan+UBSan build (build-asan/, the sanitizer tier of tests/run.sh),
# with one final "N passed, N failed"; `make asan` runs the sanitizer tier
# alone.  `make test-quick` is the inner loop: the normal build's unit,
# parity (tiny models) and server tests without the load, valgrind, S3, fuzz
# and full-size runs (tests/run.sh --quick; same last line).
# build-vg/ is sdserve without -march=native (valgrind has no
# AVX-512) for tests/http/test_valgrind.sh.
# It also holds test_ops and test_unet for tests/unit/test_ops_avx2.sh
# (the ops layer's AVX2 fallbacks).
# Sources are found by wildcard: a new .c under src/ is part of the build.

CC      ?= gcc
BUILD   ?= build
# NDEBUG: SD_ASSERT (src/base/alloc.h) checks op shapes only in the ASan
# build (asan-build sets its own OPT) and other builds without it.
OPT     ?= -O2 -march=native -DNDEBUG
CFLAGS  ?= $(OPT) -g
# -Wno-psabi: without AVX-512 (-march=native on an AVX2 CPU, build-vg/) GCC notes
# that ops_vec.h's 64-byte vectors change the ABI; they never cross objects.
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-psabi -fopenmp -MMD -MP
PKGS    := libmicrohttpd libpng libjpeg libwebp libcurl jansson zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -ldnnl -lm -lpthread -fopenmp
# the Redis job backend (src/jobs/redis.c, <hiredis/hiredis.h>): linked on the app side only
APP_PKGS := hiredis
LDLIBS  += $(shell pkg-config --libs $(APP_PKGS) 2>/dev/null)

ENGINE_SRC := $(wildcard src/base/*.c) $(wildcard src/engine/*.c) $(wildcard src/engine/*/*.c)
APP_SRC    := $(filter-out src/main.c,$(wildcard src/jobs/*.c src/http/*.c src/storage/*.c src/image/*.c src/cli/*.c))
TESTLIB_SRC := $(wildcard tests/common/*.c)
TEST_SRC   := $(wildcard tests/*/test_*.c)
TOOL_SRC   := $(wildcard tools/*.c)

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
APP_OBJ    := $(APP_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:%.c=$(BUILD)/%)
TOOL_BIN   := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

.PHONY: all test test-quick asan asan-build vg fuzz clean tests tools
.SECONDARY:
all: $(BUILD)/sdserve tools

$(BUILD)/libsdengine.a: $(ENGINE_OBJ)
	ar rcs $@ $^
$(BUILD)/libsdapp.a: $(APP_OBJ)
	ar rcs $@ $^ $(if $(APP_OBJ),,)

$(BUILD)/sdserve: $(BUILD)/src/main.o $(BUILD)/libsdapp.a $(BUILD)/libsdengine.a
	$(CC) $(CFLAGS) -o $@ $(BUILD)/src/main.o -Wl,--whole-archive $(BUILD)/libsdapp.a -Wl,--no-whole-archive $(BUILD)/libsdengine.a $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The CLIP vocabulary built into the binary (.incbin in vocab_blob.c, paths
# from the repository root): rebuilt when the file changes.
$(BUILD)/src/engine/tokenizer/vocab_blob.o: third_party/clip/bpe_simple_vocab_16e6.txt.gz
# The web page's files (.incbin in src/http/webui_blob.c), likewise.
$(BUILD)/src/http/webui_blob.o: $(wildcard src/http/webui/*)

# (-MMD makes the headers prerequisites too: link only the .c, .o and .a)
$(BUILD)/tests/%: tests/%.c $(TESTLIB_OBJ) $(BUILD)/libsdapp.a $(BUILD)/libsdengine.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/common -o $@ $(filter %.c %.o %.a,$^) $(LDLIBS) $(TEST_LDFLAGS)

# The allocation-failure sweep: abort() and exit() from our code fail it.
$(BUILD)/tests/http/test_alloc_fail: TEST_LDFLAGS = -Wl,--wrap=abort,--wrap=exit

$(BUILD)/tools/%: tools/%.c $(TESTLIB_OBJ) $(BUILD)/libsdapp.a $(BUILD)/libsdengine.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/common -o $@ $(filter %.c %.o %.a,$^) $(LDLIBS)

tests: $(TEST_BIN) $(BUILD)/sdserve
tools: $(TOOL_BIN)

SAN_BUILD := build-asan
SAN := -fsanitize=address,undefined
VG_BUILD := build-vg

test: tests tools asan-build vg
	./tests/run.sh $(BUILD) --sanitized $(SAN_BUILD)

test-quick: tests tools
	./tests/run.sh --quick $(BUILD)

asan: asan-build
	./tests/run.sh --sanitized $(SAN_BUILD)

asan-build:
	$(MAKE) BUILD=$(SAN_BUILD) OPT="-O1 -march=native $(SAN) -fno-omit-frame-pointer" LDLIBS="$(LDLIBS) $(SAN)" tests tools

# (and the ops tests for AVX2-only CPUs that tests/unit/test_ops_avx2.sh runs)
VG_TESTS := $(VG_BUILD)/tests/unit/test_ops $(VG_BUILD)/tests/parity/test_unet
vg:
	$(MAKE) BUILD=$(VG_BUILD) OPT="-O2 -march=x86-64-v3" $(VG_BUILD)/sdserve $(VG_TESTS)

# libFuzzer targets tests/fuzz/fuzz_*.c (clang), FUZZ_SECONDS each.
fuzz:
	SD_BUILD=$(BUILD) scripts/fuzz.sh $(or $(FUZZ_SECONDS),20)

clean:
	rm -rf build build-asan build-vg

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
