# ebpfnet. Needs root for everything that touches the kernel (test, demo, bench).
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/ebpfnet
CNI_BIN := bin/ebpfnet-cni
# install: DESTDIR for staging, PREFIX for the CLI, CNI_BIN_DIR for the plugin.
DESTDIR ?=
PREFIX ?= /usr/local
CNI_BIN_DIR ?= /opt/cni/bin
GENERATED := $(wildcard loader/*_bpfel.go loader/*_bpfel.o)
C_SOURCES := $(wildcard bpf/*.c bpf/lib/*.h)
# The build tag of datapath's test hooks (fault, kill and pause points):
# the integration tests build ebpfnet with it (internal/testing/testutil.Build),
# build and install never do.
TESTHOOKS := ebpfnet_testhooks

.PHONY: all deps generate check-generated build install fmt lint test fuzz unit-test integration-test demo demo-overlay bench bench-quick bench-cni bench-services bench-docker bench-profile clean k8s-build k8s-e2e k8s-clean

all: build

## deps: install build, test and demo dependencies (apt; idempotent)
deps:
	./scripts/deps.sh
	$(GO) mod download

## generate: compile bpf/*.c with bpf2go into loader/
generate:
	cd loader && $(GO) generate

## check-generated: fail if the committed bpf2go output is stale
check-generated: generate
	@git diff --exit-code --stat -- loader/ || { echo "bpf2go output is stale: run make generate and commit"; exit 1; }

## build: bin/ebpfnet and bin/ebpfnet-cni
build:
	$(GO) build -o $(BIN) ./cmd/ebpfnet
	$(GO) build -o $(CNI_BIN) ./cmd/ebpfnet-cni

## install: the CLI as $(PREFIX)/bin/ebpfnet, the CNI plugin as $(CNI_BIN_DIR)/ebpfnet (DESTDIR stages)
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ebpfnet
	install -D -m 0755 $(CNI_BIN) $(DESTDIR)$(CNI_BIN_DIR)/ebpfnet

## fmt: format the C (clang-format, see .clang-format) and the Go (gofmt)
fmt:
	clang-format -i $(C_SOURCES)
	gofmt -w .

## lint: go vet (also with the test hooks tag), staticcheck, go.mod tidy, C and Go formatted as make fmt would, the one-way import rule (docs/ARCHITECTURE.md), and the docs held to the code (pinned maps, import table, folder map, links, tested blocks)
lint:
	$(GO) vet ./...
	$(GO) vet -tags $(TESTHOOKS) ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) mod tidy -diff
	clang-format --dry-run --Werror $(C_SOURCES)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "Go not gofmt-formatted: run make fmt"; exit 1; }
	$(GO) test -count=1 ./internal/layering/ ./internal/testing/doccheck/
	$(GO) test -count=1 -run '^TestDoc' ./loader/

## test: every test (unit, BPF_PROG_TEST_RUN and namespace integration); needs root
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -tags $(TESTHOOKS) -run TestHooks ./datapath/

## fuzz: property-based fuzzing of from_container and from_uplink (loader/fuzz_test.go) and from_overlay (loader/fromoverlay_test.go), FUZZTIME each; needs root
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFromContainer$$' -fuzztime $(FUZZTIME) ./loader/
	$(GO) test -run '^$$' -fuzz '^FuzzFromUplink$$' -fuzztime $(FUZZTIME) ./loader/
	$(GO) test -run '^$$' -fuzz '^FuzzFromOverlay$$' -fuzztime $(FUZZTIME) ./loader/
	$(GO) test -run '^$$' -fuzz '^FuzzFromUplinkDecap$$' -fuzztime $(FUZZTIME) ./loader/

unit-test:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

integration-test: build
	$(GO) test -count=1 -v ./integration/

## demo: a host namespace, two containers, traffic between them via eBPF
demo: build
	./scripts/demo.sh

## demo-overlay: three hosts and etcd in namespaces, one overlay network, traffic across hosts via VXLAN in eBPF
demo-overlay: build
	./scripts/demo-overlay.sh

## bench: full benchmark (ebpfnet vs Docker iptables/nftables rules vs host), results in bench/results/; needs root
bench: build
	$(GO) build -o bin/ebpfnet-bench ./bench/cmd/ebpfnet-bench
	./bin/ebpfnet-bench -ebpfnet $(BIN) $(BENCH_FLAGS)

## bench-profile: the cost account (bench/README.md): each program's runs and ns per new connection and per UDP datagram, and perf's top symbols for host, routed and ebpfnet (about 2 minutes; needs root and perf: make deps)
bench-profile: build
	$(GO) build -o bin/ebpfnet-bench ./bench/cmd/ebpfnet-bench
	$(GO) build -o bin/progstats ./bench/cmd/progstats
	./bench/profile.sh

## bench-quick: CI smoke run of the benchmark (< 2 minutes), results in bench/results/quick/
bench-quick: build
	$(GO) build -o bin/ebpfnet-bench ./bench/cmd/ebpfnet-bench
	./bin/ebpfnet-bench -quick -ebpfnet $(BIN) $(BENCH_FLAGS)

## bench-cni: CNI ADD/DEL latency, ebpfnet vs the reference bridge+portmap plugins (median of 50); needs root
bench-cni: build
	$(GO) build -o bin/cni-bench ./bench/cmd/cni-bench
	./bin/cni-bench -plugin $(CNI_BIN) $(BENCH_CNI_FLAGS)

## bench-services: pod to Service through kube-proxy's iptables and nftables rules and through ebpfnet's service path at 1/1000/10000 Services, ebpfnet the CNI: connection rate and time to program (BENCH_SVC_FLAGS); needs root
bench-services: build
	$(GO) build -o bin/svc-bench ./bench/cmd/svc-bench
	./bin/svc-bench -ebpfnet $(BIN) $(BENCH_SVC_FLAGS)

## bench-docker: docker run -p start-to-ready, ebpfnet driver vs Docker's bridge+iptables (median of RUNS=20, then with PRELOAD=1000 ports published); needs root
bench-docker: build
	EBPFNET_DOCKER_BENCH=1 EBPFNET_BIN=$(CURDIR)/$(BIN) RUNS=$(or $(RUNS),20) PRELOAD=$(or $(PRELOAD),1000) \
		$(GO) test -count=1 -timeout 30m -v -run TestDockerRunStartup ./bench/dockerbench/

clean:
	rm -rf bin

## k8s-build: Kubernetes K8S_VERSION (apiserver, kubelet, kube-proxy, ..., e2e.test, ginkgo, agnhost, CoreDNS) built from the Go module proxy into K8S_CACHE, and the offline test images; what is there is not rebuilt
K8S_VERSION ?= v1.37.2
K8S_CACHE ?= /var/cache/ebpfnet-k8s/$(K8S_VERSION)
K8S_PROXY_MODE ?= iptables
K8S_NODES ?= 1
K8S_RESULTS ?= $(CURDIR)/bin/k8s-e2e/$(K8S_PROXY_MODE)
K8S_ENV = K8S_VERSION=$(K8S_VERSION) K8S_CACHE=$(K8S_CACHE) K8S_PROXY_MODE=$(K8S_PROXY_MODE) K8S_NODES=$(K8S_NODES) K8S_RESULTS=$(K8S_RESULTS)
k8s-build:
	$(K8S_ENV) ./k8s/build.sh
	$(K8S_ENV) ./k8s/images.sh

## k8s-e2e: a Kubernetes cluster in namespaces with the ebpfnet CNI and kube-proxy (K8S_PROXY_MODE=iptables|nftables) or ebpfnet's own service path instead of it (K8S_PROXY_MODE=ebpfnet), K8S_NODES=1 or more, the sig-network conformance tests, a pass/fail table in K8S_RESULTS, teardown (docs/kubernetes.md); needs root
k8s-e2e: build
	$(K8S_ENV) ./k8s/e2e.sh run

## k8s-clean: what a killed k8s-e2e left behind, and the K8S_CACHE of built components
k8s-clean:
	$(K8S_ENV) ./k8s/e2e.sh cleanup
	rm -rf $(K8S_CACHE)
