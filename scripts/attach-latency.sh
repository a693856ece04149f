#!/usr/bin/env bash
# Wall-clock latency of `ebpfnet attach` (and detach) on a sandbox host:
# N sequential attaches to one network, state on a real disk (bbolt fsyncs).
# Usage: scripts/attach-latency.sh BIN [N] [STATE_PARENT]. Needs root.
set -euo pipefail
bin=$(realpath "$1"); n=${2:-20}; parent=${3:-/var/tmp}
p=lat$$
state=$(mktemp -d "$parent/ebpfnet-lat.XXXXXX")
pins=/sys/fs/bpf/ebpfnet/$p
cleanup() {
	for ns in $(ip netns list | awk '{print $1}' | grep "^$p-" || true); do ip netns delete "$ns"; done
	rm -rf "$state" "$pins"
}
trap cleanup EXIT
ip netns add "$p-host"
ip -n "$p-host" link set lo up
e() { ip netns exec "$p-host" "$bin" --state-dir "$state" --pin-root "$pins" "$@"; }
e network create n1 --subnet 172.30.0.0/24 >/dev/null
for i in $(seq 1 "$n"); do ip netns add "$p-c$i"; done
ms() { date +%s%N; }
att=(); det=()
for i in $(seq 1 "$n"); do
	t0=$(ms); e attach --network n1 "$p-c$i" >/dev/null; t1=$(ms)
	att+=($(((t1 - t0) / 1000)))
done
for i in $(seq 1 "$n"); do
	t0=$(ms); e detach "$p-c$i" >/dev/null; t1=$(ms)
	det+=($(((t1 - t0) / 1000)))
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "median %.1f ms, mean %.1f ms, min %.1f ms, max %.1f ms (n=%d)\n", a[int((NR+1)/2)]/1000, s/NR/1000, a[1]/1000, a[NR]/1000, NR}'; }
echo "attach: $(stats "${att[@]}")"
echo "detach: $(stats "${det[@]}")"
