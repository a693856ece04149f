#!/usr/bin/env bash
# ebpfnet demo on a self-made sandbox: an "outside" host and a container host
# (network namespaces joined by a veth uplink), two containers on a bridge
# network, traffic between them through the eBPF fast path, counters at the
# end. Everything it makes is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/ebpfnet
P=demo$$
HOST=$P-host EXT=$P-ext C1=$P-c1 C2=$P-c2
STATE=$(mktemp -d /tmp/ebpfnet-demo.XXXXXX)
PINS=/sys/fs/bpf/ebpfnet/$P
IPERF_PID=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_host() { ip netns exec "$HOST" "$@"; }
ebpfnet() { echo "+ ebpfnet $*" >&2; in_host "$BIN" --state-dir "$STATE" --pin-root "$PINS" "$@"; }

cleanup() {
	[ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null || true
	for ns in "$C1" "$C2" "$HOST" "$EXT"; do
		ip netns delete "$ns" 2>/dev/null || true
		rm -rf "/etc/netns/$ns" # the resolv.conf and hosts attach wrote
	done
	rm -rf "$STATE" "$PINS"
	rmdir /sys/fs/bpf/ebpfnet 2>/dev/null || true
}
trap cleanup EXIT

step "sandbox: $EXT (198.18.0.1) <-veth-> $HOST uplink0 (198.18.0.2), containers $C1 $C2"
for ns in "$HOST" "$EXT" "$C1" "$C2"; do ip netns add "$ns"; done
ip link add eth0 netns "$EXT" type veth peer name uplink0 netns "$HOST"
ip -n "$EXT" addr add 198.18.0.1/24 dev eth0 && ip -n "$EXT" link set eth0 up
ip -n "$HOST" addr add 198.18.0.2/24 dev uplink0 && ip -n "$HOST" link set uplink0 up
ip -n "$HOST" link set lo up && ip -n "$HOST" route add default via 198.18.0.1
# Netfilter may not forward anything: the eBPF path does not need it.
in_host iptables -P FORWARD DROP

step "a bridge network and two containers; $C2 publishes port 5201 on the host"
ebpfnet network create demo --subnet 172.30.0.0/24
ebpfnet attach --network demo "$C1"
ebpfnet attach --network demo -p 5201:5201 "$C2"
ebpfnet ls
ebpfnet port "$C2"

step "ICMP $C1 -> $C2"
ip netns exec "$C1" ping -c 5 -i 0.2 172.30.0.3

step "TCP $C1 -> $C2 (iperf3, 3 seconds)"
ip netns exec "$C2" iperf3 -s -1 -B 172.30.0.3 >/dev/null & IPERF_PID=$!
sleep 0.5
ip netns exec "$C1" timeout 20 iperf3 -c 172.30.0.3 -t 3 -f g | grep -E 'sender|receiver'
wait "$IPERF_PID" || true; IPERF_PID=

step "outside -> published port 198.18.0.2:5201 (DNAT in eBPF, iperf3, 3 seconds)"
ip netns exec "$C2" iperf3 -s -1 >/dev/null & IPERF_PID=$!
sleep 0.5
ip netns exec "$EXT" timeout 20 iperf3 -c 198.18.0.2 -p 5201 -t 3 -f g | grep -E 'sender|receiver'
wait "$IPERF_PID" || true; IPERF_PID=

step "$C1 -> outside (SNAT masquerade in eBPF): the outside host sees 198.18.0.2"
ip netns exec "$EXT" iperf3 -s -1 -p 5202 >/dev/null & IPERF_PID=$!
sleep 0.5
ip netns exec "$C1" timeout 20 iperf3 -c 198.18.0.1 -p 5202 -t 2 -f g | grep -E 'local|sender|receiver'
wait "$IPERF_PID" || true; IPERF_PID=
ip netns exec "$C1" ping -c 2 -i 0.2 198.18.0.1 | tail -2
ebpfnet nat ls

step "the host reaches the published port locally (socket-layer eBPF, no proxy)"
ip netns exec "$C2" iperf3 -s -1 >/dev/null & IPERF_PID=$!
sleep 0.5
in_host timeout 20 iperf3 -c 127.0.0.1 -p 5201 -t 1 -f g | grep -E 'sender|receiver'
wait "$IPERF_PID" || true; IPERF_PID=

step "netfilter was not involved"
echo "iptables rules in $HOST: $(in_host iptables-save | grep -c '^-A' || true)"

step "datapath counters: what the eBPF programs did"
ebpfnet stats
echo
ebpfnet inspect "$C2" | grep -A3 -E '"(program_id|tx|rx)"'

step "tear down"
ebpfnet detach "$C1" "$C2"
ebpfnet network rm demo
echo "done: the eBPF datapath forwarded the traffic above with iptables FORWARD policy DROP"
