#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need.
# Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(
	clang llvm libbpf-dev linux-libc-dev gcc-multilib # BPF C build (bpf2go)
	clang-format                                      # make fmt, make lint
	iproute2 iptables nftables iputils-ping           # sandbox topologies and tests
	iperf3 bpftool                                    # benchmarks and debugging
	prometheus                                        # the daemon is scraped by a real Prometheus in tests
	make git ca-certificates
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "Go is missing: install Go 1.26 or newer at /usr/local/go" >&2
	exit 1
fi
echo "dependencies ok"
