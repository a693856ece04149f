#!/usr/bin/env bash
# ebpfnet overlay demo on a self-made sandbox: an underlay namespace with a
# bridge and etcd, three "hosts" (namespaces) on it, each with its own
# ebpfnet instance and daemon, one overlay network and a container per host.
# Containers on different hosts talk over VXLAN done in eBPF; one host's
# daemon is killed and the others forget its container when its lease runs
# out. Everything it makes is removed on exit (processes by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/ebpfnet
P=ovdemo$$
U=$P-u
STATE=$(mktemp -d /tmp/ebpfnet-ovdemo.XXXXXX)
PINS=/sys/fs/bpf/ebpfnet/$P
STORE=etcd://198.18.0.1:2379
PIDS=()
declare -A DAEMON

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
host() { echo "$P-h$1"; }
# ebpfnet on host N
en() {
	local h=$1
	shift
	echo "+ host$h: ebpfnet $*" >&2
	ip netns exec "$(host "$h")" "$BIN" --state-dir "$STATE/h$h" --pin-root "$PINS/h$h" --cluster-store "$STORE" "$@"
}

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns delete "$ns"; done
	# The resolv.conf and hosts attach wrote for the named containers.
	rm -rf /etc/netns/"$P"-*
	rm -rf "$STATE" "$PINS"
	rmdir /sys/fs/bpf/ebpfnet 2>/dev/null || true
}
trap cleanup EXIT

command -v etcd >/dev/null || { echo "etcd not installed: make deps" >&2; exit 1; }

step "sandbox: underlay $U (bridge, etcd on 198.18.0.1), hosts $(host 1) $(host 2) $(host 3) (198.18.0.11-13)"
ip netns add "$U"
ip -n "$U" link set lo up
ip -n "$U" link add br0 type bridge
ip -n "$U" addr add 198.18.0.1/24 dev br0
ip -n "$U" link set br0 up
for h in 1 2 3; do
	ns=$(host "$h")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip link add uplink0 netns "$ns" type veth peer name h$h netns "$U"
	ip -n "$U" link set h$h master br0 up
	ip -n "$ns" addr add 198.18.0.1$h/24 dev uplink0
	ip -n "$ns" link set uplink0 up
	ip -n "$ns" route add default via 198.18.0.1
	# Netfilter forwards nothing: what crosses is the datapath's.
	ip netns exec "$ns" iptables -P FORWARD DROP
done
nsenter --net=/run/netns/"$U" -- etcd --name demo --data-dir "$STATE/etcd" \
	--listen-client-urls http://198.18.0.1:2379 --advertise-client-urls http://198.18.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster demo=http://127.0.0.1:2380 --log-level error >"$STATE/etcd.log" 2>&1 &
PIDS+=($!)

step "a daemon per host joins the cluster (--advertise-addr)"
for h in 1 2 3; do
	mkdir -p "$STATE/h$h"
	# Not through en: $! must be the daemon itself (ip netns exec execs it).
	echo "+ host$h: ebpfnet daemon --advertise-addr 198.18.0.1$h --lease-ttl 3s" >&2
	ip netns exec "$(host "$h")" "$BIN" --state-dir "$STATE/h$h" --pin-root "$PINS/h$h" --cluster-store "$STORE" \
		daemon --advertise-addr 198.18.0.1$h --lease-ttl 3s --metrics-addr "" >"$STATE/daemon$h.log" 2>&1 &
	DAEMON[$h]=$!
	PIDS+=($!)
done
for h in 1 2 3; do
	for _ in $(seq 100); do [ -e "$STATE/h$h/cluster-host" ] && break; sleep 0.1; done
	[ -e "$STATE/h$h/cluster-host" ] || { echo "host $h did not join:"; cat "$STATE/daemon$h.log"; exit 1; }
done

step "one overlay network, created once; a container on each host"
for _ in $(seq 50); do en 1 network create --driver overlay ov1 --subnet 10.210.0.0/24 2>/dev/null && break; sleep 0.2; done
declare -A IP
for h in 1 2 3; do
	c=$P-c$h
	ip netns add "$c"
	IP[$h]=$(en "$h" attach --network ov1 --name c$h "$c" | awk '{print $3}')
done
en 2 network ls
sleep 1 # the daemons learn the other hosts' containers from etcd

step "c1 (host 1) -> c2 (host 2) and c3 (host 3), over VXLAN in eBPF"
ip netns exec "$P-c1" ping -c 3 -i 0.2 "${IP[2]}"
ip netns exec "$P-c1" ping -c 3 -i 0.2 "${IP[3]}"
en 1 overlay ls
en 1 overlay peers

step "TCP c2 -> c1 across hosts (iperf3, 3 seconds)"
ip netns exec "$P-c1" iperf3 -s -1 >/dev/null &
PIDS+=($!)
sleep 0.5
ip netns exec "$P-c2" timeout 20 iperf3 -c "${IP[1]}" -t 3 -f g | grep -E 'sender|receiver'

step "host 3's daemon is killed: after its lease (3 s) hosts 1 and 2 forget c3"
kill -9 "${DAEMON[3]}"
wait "${DAEMON[3]}" 2>/dev/null || true
for _ in $(seq 100); do
	known=$(en 1 overlay ls -q 2>/dev/null)
	grep -qx "${IP[3]}" <<<"$known" || break
	sleep 0.2
done
en 1 overlay ls
ip netns exec "$P-c1" ping -c 2 -i 0.2 "${IP[2]}"

step "host 1's counters: from_overlay is what other hosts sent it over VXLAN (IPv6 is dropped: the datapath is IPv4-only)"
en 1 stats
