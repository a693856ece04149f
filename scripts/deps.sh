#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need.
# Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(
	clang llvm libbpf-dev linux-libc-dev gcc-multilib # BPF C build (bpf2go)
	iproute2 iptables nftables iputils-ping           # sandbox topologies and tests
	iperf3 bpftool                                    # benchmarks and debugging
	prometheus                                        # the daemon is scraped by a real Prometheus in tests
	docker.io containerd runc tini podman             # real runtimes in tests (internal/runtimetest): dockerd, containerd + ctr, podman (CNI backend)
	containernetworking-plugins                       # reference CNI plugins (/usr/lib/cni): bridge, portmap, host-local, tuning, bandwidth
	busybox-static util-linux                         # offline test image (static /bin/busybox); nsenter
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
	# dockerd makes docker0 and iptables rules in the root namespace. The
	# tests start their own daemons in sandbox namespaces, so deny service
	# starts during the install (policy-rc.d, exit 101) unless the machine
	# already has a policy.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "Go is missing: install Go 1.26 or newer at /usr/local/go" >&2
	exit 1
fi
echo "dependencies ok"
