# Everything a fresh machine needs is installed by these targets; each step is idempotent.
SHELL := /bin/bash
CLANG ?= clang-19
APT_PACKAGES := clang-19 llvm-19 libbpf-dev libbpf1 bpftool iproute2 iputils-ping netcat-openbsd iperf3 sockperf nftables iptables util-linux etcd-server etcd-client
BPF_SOURCES := $(wildcard bpf/*.c)
BPF_OBJECTS := $(patsubst bpf/%.c,build/%.o,$(BPF_SOURCES))
BPF_HEADERS := $(wildcard bpf/include/*.h)
TS_SOURCES := $(shell find src -name '*.ts' 2>/dev/null)

.PHONY: all deps build run clean-run cluster clean-cluster test test-unit test-e2e bench clean
all: build

deps: build/.apt-stamp node_modules/.package-lock.json

build/.apt-stamp: Makefile
	@mkdir -p build
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build/vmlinux.h: build/.apt-stamp
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

build/%.o: bpf/%.c $(BPF_HEADERS) build/vmlinux.h
	$(CLANG) -target bpf -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -Ibuild -c $< -o $@

# The agent's structs, constants and map names, generated from the objects' BTF (rewritten only
# when they change, so an unchanged datapath does not rebuild the TypeScript).
GENERATED := src/datapath/bpf.generated.ts
$(GENERATED): $(BPF_OBJECTS) scripts/gen-bpf-types.ts node_modules/.package-lock.json
	node --import tsx scripts/gen-bpf-types.ts $@

dist/.stamp: $(TS_SOURCES) $(GENERATED) tsconfig.json node_modules/.package-lock.json
	npx tsc -p tsconfig.json
	@touch $@

build: deps $(BPF_OBJECTS) $(GENERATED) dist/.stamp

# ARGS passes options to the agent, e.g. make run ARGS="--policy-audit-mode --log-level debug".
run: build
	scripts/run-agent.sh $(ARGS)

clean-run:
	scripts/clean-run.sh

# Three nodes and etcd in namespaces on this machine, agents in the background (README: "A cluster on one machine").
cluster: build
	scripts/cluster.sh

clean-cluster:
	scripts/cluster.sh clean

test: build
	scripts/test.sh

test-unit: build
	scripts/test.sh unit

test-e2e: build
	scripts/test.sh e2e

bench: build
	scripts/bench.sh

clean:
	rm -rf build dist
