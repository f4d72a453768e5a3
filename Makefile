# tunekv build. `make` builds everything into build/ and puts the programs in bin/.
#   make deps      install missing Debian packages (a no-op when all are present)
#   make test      deps, the layering check, build, unit tests (Check, under ASan/UBSan), the
#                  fuzz corpus replayed (fuzz-replay), the simulator, integration tests,
#                  deploy-test
#   make layering  the sans-IO rule read off the sources: what coordinator/ and common/ may
#                  include and call (tests/layering.sh, which also checks itself)
#   make cluster   deps, build, run the 3-node cluster of config/cluster3.yaml in the
#                  foreground, logs prefixed by node id (Ctrl-C stops all three);
#                  KVNODE_FLAGS=--allow-fault-injection lets kvctl fault work on it;
#                  TLS=1 runs it with TLS and mutual TLS between the nodes, certificates made
#                  by deploy/certs.sh in data/cluster3-certs/ (README "TLS and tokens")
#   make bench     deps, build, kvbench against a local node next to the peers (echo ceiling)
#   make lab       deps, build, the WAN lab: 6 nodes in two regions with injected delay between
#                  them (deploy/lab.sh), kvbench at each level and kvbench lag, then stops them
#   make sim       the deterministic simulator over SEEDS (default 1-300; `make test` runs it)
#   make deb       the Debian package, build/tunekv_VERSION_ARCH.deb (README "Operations")
#   make deploy-test  the package installed into a scratch root (tests/deploy/deb.sh), the
#                  Containerfile, compose and Kubernetes files validated (tests/deploy/
#                  manifests.sh, with validators from npm); `make test` runs it
#   make sim-mutants  the simulator built with each planted bug of tests/sim/mutants/
#   make fuzz      each libFuzzer harness of tests/fuzz (clang), FUZZ_SECONDS (default 60) each,
#                  one after the other, on a copy of its corpus in build/fuzz/ (README "Fuzzing")
#   make fuzz-replay  the harnesses built with gcc and ASan/UBSan, every corpus file replayed
#                  once; `make test` runs it
#   make fuzz-seeds  rewrites the generated seeds of tests/fuzz/corpus/ (tests/fuzz/seeds.c)
#   make clean

DEB_PKGS := librocksdb-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev \
            check libcyaml-dev libyaml-dev libxxhash-dev pkg-config chromium libmicrohttpd-dev \
            curl dpkg-dev systemd adduser passwd clang
PKGS := grpc libprotobuf-c rocksdb libcyaml yaml-0.1 check libxxhash libmicrohttpd

BUILD := build
GEN := $(BUILD)/gen
CC ?= cc
INCLUDES := -Icommon -Icoordinator -Ikvnode -Iclient -I$(GEN)
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -MMD -MP $(INCLUDES) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS ?= -O2
SAN_FLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDLIBS := $(shell pkg-config --libs grpc libprotobuf-c libcyaml yaml-0.1 libxxhash libmicrohttpd \
            2>/dev/null) \
          -lrocksdb -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

PROTOS := $(wildcard proto/*.proto)
PB_SRC := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PB_HDR := $(PB_SRC:.c=.h)

# The core (DESIGN section 3): common/ and coordinator/, which include no gRPC, RocksDB,
# pthread or clock, and nothing of kvnode/.
CORE_SRC := $(wildcard common/*.c) $(wildcard coordinator/*.c)
COMMON_SRC := $(CORE_SRC) $(PB_SRC)
NODE_SRC := $(filter-out kvnode/main.c,$(wildcard kvnode/*.c))
# kvbench is kvbench.c (load mode, dispatch) plus bench_*.c (shared parts, other modes).
BENCH_SRC := client/kvbench.c $(wildcard client/bench_*.c)
CLIENT_SRC := $(filter-out client/kvctl.c $(BENCH_SRC),$(wildcard client/*.c))
# The unit tests drive the core on kvnode/store.c (RocksDB) and on the memory store of
# tests/sim (memstore.h, which depends on coordinator/ and common/ only).
UNIT_SRC := $(wildcard tests/unit/*.c) tests/sim/memstore.c
TOOL_SRC := $(wildcard tests/integration/*.c)
# The simulator: the core on the sim's memory store (through the storage table of
# coordinator/storage.h, as store.c serves kvnode), driven by its world as kvnode/ drives it,
# fault points compiled in (-DKV_SIM), under ASan/UBSan, in its own object tree. It is built
# without kvnode/ on its include path; the protobuf-c code is the record and message format.
SIM_SRC := $(wildcard tests/sim/*.c) $(CORE_SRC) $(PB_SRC)
SIM_CFLAGS := -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -MMD -MP -Icommon -Icoordinator -Itests/sim -I$(GEN) -DKV_SIM \
              $(shell pkg-config --cflags libprotobuf-c libcyaml yaml-0.1 libxxhash 2>/dev/null)
SEEDS ?= 1-300
KVNODE_FLAGS ?=
TLS ?=

# Object paths: sources under $(GEN) compile to .../gen/, everything else mirrors the tree.
genrel = $(patsubst $(GEN)/%,gen/%,$(1))
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(call genrel,$(1)))
sanobj = $(patsubst %.c,$(BUILD)/san/%.o,$(call genrel,$(1)))
simobj = $(patsubst %.c,$(BUILD)/sim/%.o,$(call genrel,$(1)))

PROGRAMS := bin/kvnode bin/kvctl bin/kvbench
TOOLS := $(patsubst tests/integration/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
# Conflict handler plugins (common/conflict.h): the example in deploy/plugins/ and the test
# fixtures in tests/plugins/, each one shared object in build/plugins/, built against the
# handler ABI only.
PLUGIN_SRC := $(wildcard deploy/plugins/*.c tests/plugins/*.c)
PLUGINS := $(patsubst %.c,$(BUILD)/plugins/%.so,$(notdir $(PLUGIN_SRC)))
vpath %.c deploy/plugins tests/plugins

all: $(PROGRAMS) $(TOOLS) $(PLUGINS)

$(BUILD)/plugins/%.so: %.c common/conflict.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -g -Wall -Wextra -Werror -fPIC -shared -Icommon -o $@ $<

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) $<

$(BUILD)/obj/%.o: %.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/san/%.o: %.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/sim/%.o: %.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(SIM_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/sim/gen/%.o: $(GEN)/%.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(SIM_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/obj/gen/%.o: $(GEN)/%.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/san/gen/%.o: $(GEN)/%.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

bin/kvnode: $(call obj,kvnode/main.c $(NODE_SRC) $(COMMON_SRC))
	@mkdir -p bin
	$(CC) -o $@ $^ $(LDLIBS)

bin/kvctl: $(call obj,client/kvctl.c $(CLIENT_SRC) $(COMMON_SRC))
	@mkdir -p bin
	$(CC) -o $@ $^ $(LDLIBS)

bin/kvbench: $(call obj,$(BENCH_SRC) $(CLIENT_SRC) $(COMMON_SRC))
	@mkdir -p bin
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/tools/%: $(call obj,tests/integration/%.c $(CLIENT_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(filter-out $(BUILD)/obj/tests/integration/%,$(call obj,$(CLIENT_SRC) $(COMMON_SRC))) \
	  $(BUILD)/obj/tests/integration/$*.o $(LDLIBS)

$(call sanobj,$(UNIT_SRC)): BASE_CFLAGS += -Itests/sim

$(BUILD)/check_unit: $(call sanobj,$(UNIT_SRC) $(NODE_SRC) $(CLIENT_SRC) $(COMMON_SRC))
	$(CC) -fsanitize=address,undefined -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/kvsim: $(call simobj,$(SIM_SRC))
	$(CC) -fsanitize=address,undefined -o $@ $^ \
	  $(shell pkg-config --libs libprotobuf-c libcyaml yaml-0.1 libxxhash) -lm

# Fuzzing (README "Fuzzing"): one harness per decoder of bytes from outside, tests/fuzz/T.c
# with its LLVMFuzzerTestOneInput, on the core, the memory store of tests/sim and
# kvnode/peer_codec.c (no gRPC or RocksDB). `make fuzz` builds them with clang and libFuzzer
# in build/fuzz/ (objects of their own, coverage-instrumented); `make fuzz-replay` builds them
# with replay.c's main() on the ASan/UBSan objects of the unit tests, so it works without
# clang and costs little in `make test`.
FUZZ_TARGETS := token record peer hint exchange config
FUZZ_SECONDS ?= 60
FUZZ_LIB_SRC := tests/fuzz/fuzz_node.c tests/sim/memstore.c kvnode/peer_codec.c $(CORE_SRC) \
                $(PB_SRC)
FUZZ_LIBS := $(shell pkg-config --libs libprotobuf-c libcyaml yaml-0.1 libxxhash 2>/dev/null) -lm
FUZZ_CFLAGS := $(BASE_CFLAGS) -Itests/sim -Itests/fuzz -O1 -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
fuzzobj = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(call genrel,$(1)))
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_TARGETS))
REPLAY_BINS := $(patsubst %,$(BUILD)/fuzz-replay/%,$(FUZZ_TARGETS))

$(BUILD)/fuzz/obj/%.o: %.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<

$(BUILD)/fuzz/obj/gen/%.o: $(GEN)/%.c | $(PB_HDR)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BINS): $(BUILD)/fuzz/%: $(BUILD)/fuzz/obj/tests/fuzz/%.o $(call fuzzobj,$(FUZZ_LIB_SRC))
	clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(FUZZ_LIBS)

$(call sanobj,$(wildcard tests/fuzz/*.c)): BASE_CFLAGS += -Itests/sim -Itests/fuzz

$(REPLAY_BINS): $(BUILD)/fuzz-replay/%: $(call sanobj,tests/fuzz/%.c tests/fuzz/replay.c \
                                                  $(FUZZ_LIB_SRC))
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=address,undefined -o $@ $^ $(FUZZ_LIBS)

$(BUILD)/fuzz-seeds: $(call sanobj,tests/fuzz/seeds.c $(FUZZ_LIB_SRC))
	$(CC) -fsanitize=address,undefined -o $@ $^ $(FUZZ_LIBS)

# Each target runs on a fresh copy of its corpus (what it finds stays in build/fuzz/corpus/T,
# a crash's input in build/fuzz/crashes/T/), then prints libFuzzer's final numbers.
fuzz: $(FUZZ_BINS)
	@failed=; for t in $(FUZZ_TARGETS); do \
	  rm -rf $(BUILD)/fuzz/corpus/$$t $(BUILD)/fuzz/crashes/$$t; \
	  mkdir -p $(BUILD)/fuzz/corpus/$$t $(BUILD)/fuzz/crashes/$$t; \
	  cp tests/fuzz/corpus/$$t/* $(BUILD)/fuzz/corpus/$$t/; \
	  $(BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/crashes/$$t/ $(BUILD)/fuzz/corpus/$$t \
	    >$(BUILD)/fuzz/$$t.log 2>&1 || failed="$$failed $$t"; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(BUILD)/fuzz/$$t.log); \
	  last=$$(grep -E '^#[0-9]+' $(BUILD)/fuzz/$$t.log | tail -1); \
	  cov=$$(echo "$$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p'); \
	  ft=$$(echo "$$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p'); \
	  echo "fuzz $$t: $${execs:-?} executions, cov $${cov:-?}, ft $${ft:-?}," \
	    "corpus $$(ls $(BUILD)/fuzz/corpus/$$t | wc -l) files" \
	    "$$(ls $(BUILD)/fuzz/crashes/$$t | sed 's/^/CRASH: /' | tr '\n' ' ')"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (logs in $(BUILD)/fuzz/)"; exit 1; fi

fuzz-replay: $(REPLAY_BINS)
	@passed=0; failed=0; for t in $(FUZZ_TARGETS); do \
	  $(BUILD)/fuzz-replay/$$t tests/fuzz/corpus/$$t/* >$(BUILD)/fuzz-replay/$$t.log 2>&1; \
	  grep '^FAIL' $(BUILD)/fuzz-replay/$$t.log | sed "s/^/$$t: /"; \
	  p=$$(sed -n 's/.*: \([0-9]*\) passed, .*/\1/p' $(BUILD)/fuzz-replay/$$t.log); \
	  f=$$(sed -n 's/.* passed, \([0-9]*\) failed/\1/p' $(BUILD)/fuzz-replay/$$t.log); \
	  passed=$$((passed + $${p:-0})); failed=$$((failed + $${f:-1})); \
	done; \
	echo "fuzz-replay: $$passed passed, $$failed failed"; [ $$failed -eq 0 ]

fuzz-seeds: $(BUILD)/fuzz-seeds
	@mkdir -p $(patsubst %,tests/fuzz/corpus/%,$(FUZZ_TARGETS))
	$(BUILD)/fuzz-seeds tests/fuzz/corpus

# npm (for tests/deploy's validators) is asked for by command: it may come with a nodejs
# package of another origin, which Debian's npm package would conflict with.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done; command -v npm >/dev/null || echo nodejs npm); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing" $$missing; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; \
	fi

unit: $(BUILD)/check_unit $(PLUGINS)
	$(BUILD)/check_unit

sim: $(BUILD)/kvsim
	tests/sim/run.sh $(BUILD)/kvsim $(SEEDS)

sim-mutants: $(BUILD)/kvsim
	tests/sim/mutants.sh $(BUILD)

layering:
	tests/layering.sh

# Every suite runs even after one fails; the last line names the failed ones and repeats their
# FAIL lines, so the tail of a CI log says which test broke.
INTEGRATION := run cluster3 cluster5 faults splitbrain reports metrics regions service tls tour
integration: all
	@failed=; for t in $(INTEGRATION); do \
	  tests/integration/$$t.sh >$(BUILD)/it-$$t.log 2>&1 || failed="$$failed $$t"; \
	  cat $(BUILD)/it-$$t.log; \
	done; \
	if [ -n "$$failed" ]; then \
	  for t in $$failed; do grep '^FAIL' $(BUILD)/it-$$t.log | sed "s/^/$$t: /"; done; \
	  echo "integration: failed:$$failed"; exit 1; \
	fi; echo "integration: every suite passed"

test: deps
	$(MAKE) layering
	$(MAKE) all $(BUILD)/check_unit $(BUILD)/kvsim
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) sim
	$(MAKE) integration
	$(MAKE) deploy-test

deploy-test: deb
	rc=0; for t in deb manifests; do tests/deploy/$$t.sh || rc=1; done; exit $$rc

# The Debian package (deploy/debian/build.sh): build/tunekv_VERSION_ARCH.deb and a link
# build/tunekv.deb to it; tests/deploy/deb.sh installs it into a scratch root.
deb: deps
	$(MAKE) $(PROGRAMS)
	deploy/debian/build.sh $(BUILD)

cluster: deps
	$(MAKE) all
	TLS=$(TLS) deploy/cluster.sh config/cluster3.yaml $(KVNODE_FLAGS)

# The peers deploy/bench.sh measures beside tunekv (../shared/peers/peers.sh).
bench: DEB_PKGS += etcd-server etcd-client redis-server redis-tools
bench: deps
	$(MAKE) all
	deploy/bench.sh

lab: deps
	$(MAKE) all
	deploy/lab.sh

clean:
	rm -rf $(BUILD) bin

.PHONY: all deps unit sim sim-mutants layering integration test deb deploy-test cluster bench lab clean \
        fuzz fuzz-replay fuzz-seeds
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
