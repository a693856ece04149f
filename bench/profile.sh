#!/usr/bin/env bash
# Per-packet cost of the ebpfnet programs under the benchmark's workloads:
# builds the bench topology (outside, host, one container publishing 8080 and
# 5201), runs each workload while bin/progstats samples the kernel's BPF
# run-time statistics, and prints runs and ns per run of each program.
# Everything it makes is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
P=prof$$
HOST=$P-host EXT=$P-ext C1=$P-c1
STATE=$(mktemp -d /tmp/ebpfnet-prof.XXXXXX)
PINS=/sys/fs/bpf/ebpfnet/$P
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for ns in "$C1" "$HOST" "$EXT"; do ip netns delete "$ns" 2>/dev/null || true; done
	rm -rf "$STATE" "$PINS"; rmdir /sys/fs/bpf/ebpfnet 2>/dev/null || true
}
trap cleanup EXIT
ebpfnet() { ip netns exec "$HOST" bin/ebpfnet --state-dir "$STATE" --pin-root "$PINS" "$@" >/dev/null; }
bg() { "$@" >/dev/null 2>&1 & PIDS+=($!); }

for ns in "$HOST" "$EXT" "$C1"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add eth0 netns "$EXT" type veth peer name uplink0 netns "$HOST"
ip -n "$EXT" addr add 198.18.0.1/24 dev eth0 && ip -n "$EXT" link set eth0 up
ip -n "$HOST" addr add 198.18.0.2/24 dev uplink0 && ip -n "$HOST" link set uplink0 up
ip -n "$HOST" route add default via 198.18.0.1
ebpfnet network create prof --subnet 172.30.0.0/16
ebpfnet attach --network prof -p 8080:80 -p 8080:80/udp -p 5201:5201 "$C1"
bg ip netns exec "$C1" taskset -c 1 bin/ebpfnet-bench serve -name c1 -addr :80
bg ip netns exec "$C1" taskset -c 1 iperf3 -s -p 5201
bg ip netns exec "$EXT" taskset -c 1 iperf3 -s -p 5201
sleep 0.5

measure() {
	local what=$1; shift
	echo "== $what"
	bin/progstats -pin-root "$PINS" -duration 4s & local stats=$!
	sleep 0.3
	"$@" >/dev/null
	wait "$stats"
}
measure "DNAT ingress TCP (iperf3 ext -> 198.18.0.2:5201)" ip netns exec "$EXT" taskset -c 0 timeout 10 iperf3 -c 198.18.0.2 -p 5201 -t 3
measure "SNAT egress TCP (iperf3 c1 -> ext:5201)" ip netns exec "$C1" taskset -c 0 timeout 10 iperf3 -c 198.18.0.1 -p 5201 -t 3
measure "new connections (ext -> 198.18.0.2:8080, 3 s)" ip netns exec "$EXT" taskset -c 0 bin/ebpfnet-bench connrate -addr 198.18.0.2:8080 -name c1 -duration 3s
measure "UDP 64 B (ext -> 198.18.0.2:8080/udp, 3 s)" ip netns exec "$EXT" taskset -c 0 bin/ebpfnet-bench udp -addr 198.18.0.2:8080 -duration 3s
