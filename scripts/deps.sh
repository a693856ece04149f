#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need.
# Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(
	clang llvm libbpf-dev linux-libc-dev gcc-multilib # BPF C build (bpf2go)
	clang-format                                      # make fmt, make lint
	iproute2 iptables nftables iputils-ping           # sandbox topologies and tests
	iperf3 bpftool                                    # benchmarks and debugging
	linux-perf                                        # make bench-profile: perf record -a -g of the kernel path
	prometheus                                        # the daemon is scraped by a real Prometheus in tests
	docker.io containerd runc tini podman             # real runtimes in tests (internal/testing/runtimetest): dockerd, containerd + ctr, podman (CNI backend)
	containernetworking-plugins                       # reference CNI plugins (/usr/lib/cni): bridge, portmap, host-local, tuning, bandwidth
	busybox-static util-linux                         # offline test image (static /bin/busybox); nsenter
	etcd-server etcd-client                           # overlay cluster store: tests run etcd in a sandbox namespace (internal/testing/etcdtest)
	curl                                              # docs/api.md's API example (a tested block)
	netcat-openbsd bind9-dnsutils socat bash-static openssl # make k8s-e2e: the offline agnhost image (nc -u/-v, dig, socat, bash as /bin/sh) and the cluster's certificates
	make git ca-certificates
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# docker.io and containerd start system daemons on install, and a system
	# dockerd makes docker0 and iptables rules in the root namespace;
	# etcd-server would start a system etcd listening on 127.0.0.1:2379 of the
	# root namespace. The
	# tests start their own daemons in sandbox namespaces, so deny service
	# starts during the install (policy-rc.d, exit 101) unless the machine
	# already has a policy.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		remove_policy=1
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if [ -n "${remove_policy:-}" ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
fi

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "Go is missing: install Go 1.26 or newer at /usr/local/go" >&2
	exit 1
fi
# nerdctl (for containerd tests with -p): Debian has no package. v1.7.7 is
# the last line that supports containerd 1.6. Built from the Go module proxy
# in a throwaway module (`go install pkg@version` fails on proxies that
# refuse the module's version list, as this sandbox's does).
nerdctl_version=v1.7.7
nerdctl=/usr/local/libexec/ebpfnet-test/nerdctl
if ! "$nerdctl" --version 2>/dev/null | grep -q "version ${nerdctl_version#v}\$"; then
	echo "building nerdctl $nerdctl_version (a few minutes)"
	go=$(command -v go || echo /usr/local/go/bin/go)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	printf 'module nerdctlbuild\n\ngo 1.21\n' >"$tmp/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/containerd/nerdctl/cmd/nerdctl"\n' >"$tmp/tools.go"
	mkdir -p "$(dirname "$nerdctl")"
	if ! (cd "$tmp" && GOFLAGS=-mod=mod "$go" get "github.com/containerd/nerdctl@$nerdctl_version" &&
		GOFLAGS=-mod=mod "$go" build -o "$nerdctl" github.com/containerd/nerdctl/cmd/nerdctl) >"$tmp/log" 2>&1; then
		cat "$tmp/log" >&2
		echo "building nerdctl failed" >&2
		exit 1
	fi
	rm -rf "$tmp"
	trap - EXIT
fi

echo "dependencies ok"
