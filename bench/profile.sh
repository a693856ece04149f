#!/usr/bin/env bash
# The cost account of ebpfnet's datapath (issue 25), in two parts.
#
# 1. Program cost per unit of work. In the bench's ebpfnet topology (ext ->
#    uplink -> host -> one container publishing 8080/tcp, 8080/udp and 5201),
#    bin/progstats holds the kernel's BPF run-time statistics on while one
#    workload runs (BPF_ENABLE_STATS: no sysctl is written) and divides each
#    pinned program's runs and run time by the units the client completed:
#    per new TCP connection through the published port (connrate: connect,
#    request, response, close), per UDP datagram sent into the container
#    through 8080/udp and per datagram the container sends out (SNAT). The
#    socket hooks are in the table: they are attached to the root cgroup and
#    run for every socket of the machine, so they are also measured while the
#    same workloads run in host mode, where no ebpfnet network is involved.
#    Two iperf3 rows (DNAT ingress, SNAT egress) give ns per GSO packet.
# 2. The rest of the kernel path. `perf record -a -g -e cpu-clock` (one
#    sample per 250 µs of CPU, 3 s, PERF_ROUNDS times, the modes interleaved)
#    while the same connrate and UDP workloads run in each of the bench's
#    three shapes: host (the server in the host namespace itself), routed (the
#    container's veth routed without NAT, no program: the bench's second
#    reference) and ebpfnet (published port). Samples become µs of CPU per
#    connection or datagram (samples x 250 µs / units the client completed in
#    the window). For each mode it prints the top 20 symbols (self time, as
#    `perf report --no-children --sort symbol`), then the modes side by side:
#    totals, the inclusive time of the functions on the packets' path and of
#    all bpf_prog_*, and the top 10 self symbols of each. Samples of other
#    processes (this machine runs other work) are left out, and idle.
#
# Clients are pinned to CPU 0 and servers to CPU 1, as in the bench. Traffic
# stays between the script's own namespaces; no sysctl of the root namespace
# is written. Everything it makes (namespaces, processes, pins, the perf
# data) is removed on exit, also on failure or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."

PERIOD_NS=250000 # cpu-clock sample period: one sample per 250 µs of CPU
PERF_SECONDS=3
PERF_ROUNDS=2 # recordings of each mode and workload, interleaved
RUN_SECONDS=3 # each measured workload of part 1

find_perf() {
	local c p
	for c in "${PERF:-}" perf $(ls -rv /usr/bin/perf_* 2>/dev/null) /usr/lib/linux-tools/*/perf /usr/lib/linux-tools-*/perf; do
		[ -n "$c" ] || continue
		p=$(command -v "$c" 2>/dev/null) || continue
		if "$p" version >/dev/null 2>&1; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
PERF=$(find_perf) || {
	echo "profile.sh: no working perf (apt-get install linux-perf, or make deps; PERF=/path/to/perf)" >&2
	exit 1
}
for b in bin/ebpfnet bin/ebpfnet-bench bin/progstats; do
	[ -x "$b" ] || {
		echo "profile.sh: $b missing: run make bench-profile" >&2
		exit 1
	}
done

P=prof$$
WORK=$(mktemp -d /tmp/ebpfnet-prof.XXXXXX) # ebpfnet state, perf data, outputs
PINS=/sys/fs/bpf/ebpfnet/$P
PIDS=()
NSS=()
cleanup() {
	set +e
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for ns in "${NSS[@]}"; do ip netns delete "$ns" 2>/dev/null; done
	rm -rf "$PINS" "$WORK" # removing the pins detaches the instance's links
	rmdir /sys/fs/bpf/ebpfnet 2>/dev/null
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Sandbox addresses, as the bench's (bench/cmd/ebpfnet-bench/env.go).
EXT_IP=198.18.0.1 HOST_IP=198.18.0.2 SUBNET=172.30.0.0/16 ROUTED_IP=172.30.0.2 ROUTED_GW=169.254.1.1
BENCH=bin/ebpfnet-bench

addns() {
	ip netns add "$1"
	NSS+=("$1")
	ip -n "$1" link set lo up
}
bg() { # start a long-running command, remember its pid
	"$@" >/dev/null 2>&1 &
	PIDS+=($!)
}
forget() { # a pid that has been waited for: never signal it (it may be reused)
	local p keep=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
listening() { # ns port: wait until something listens on TCP port
	local i
	for i in $(seq 50); do
		[ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ] && return 0
		sleep 0.1
	done
	echo "profile.sh: nothing listens on :$2 in $1" >&2
	return 1
}
# mode: <pfx>-ext eth0 198.18.0.1/24 <-veth-> <pfx>-host uplink0 198.18.0.2/24,
# the ext server on :80, as every mode of the bench has.
base() {
	local pfx=$1
	addns "$pfx-host"
	addns "$pfx-ext"
	ip link add eth0 netns "$pfx-ext" type veth peer name uplink0 netns "$pfx-host"
	ip -n "$pfx-ext" addr add $EXT_IP/24 dev eth0
	ip -n "$pfx-ext" link set eth0 up
	ip -n "$pfx-host" addr add $HOST_IP/24 dev uplink0
	ip -n "$pfx-host" link set uplink0 up
	ip -n "$pfx-host" route add default via $EXT_IP
	ip netns exec "$pfx-ext" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
	bg ip netns exec "$pfx-ext" taskset -c 1 $BENCH serve -name ext -addr :80
	listening "$pfx-ext" 80
}

# host: no container; the server listens on the published port in the host
# namespace itself.
H=${P}h
base $H
bg ip netns exec $H-host taskset -c 1 $BENCH serve -name host -addr :8080
listening $H-host 8080

# routed: the bench's setupRouted (a Calico-style /32 route and proxy ARP per
# container veth, no bridge, no NAT, no netfilter rule); the outside reaches
# the container's address directly.
R=${P}r
base $R
addns $R-c1
ip netns exec $R-host sysctl -qw net.ipv4.ip_forward=1
ip -n $R-ext route add $SUBNET via $HOST_IP
ip link add vethc1 netns $R-host type veth peer name eth0 netns $R-c1
ip netns exec $R-host sysctl -qw net.ipv4.conf.vethc1.proxy_arp=1
ip -n $R-host link set vethc1 up
ip -n $R-host route add $ROUTED_IP/32 dev vethc1
ip -n $R-c1 addr add $ROUTED_IP/32 dev eth0
ip -n $R-c1 link set eth0 up
ip -n $R-c1 route add $ROUTED_GW dev eth0
ip -n $R-c1 route add default via $ROUTED_GW dev eth0
bg ip netns exec $R-c1 taskset -c 1 $BENCH serve -name routed -addr :80
listening $R-c1 80

# ebpfnet: the bench's setupEbpfnet (container c1 publishing 8080 and 5201).
E=${P}e
base $E
addns $E-c1
ebpfnet() { ip netns exec $E-host bin/ebpfnet --state-dir "$WORK/state" --pin-root "$PINS" "$@"; }
ebpfnet network create bench --subnet $SUBNET --uplink uplink0 >/dev/null
C1_IP=$(ebpfnet attach --net=bridge --network bench -p 8080:80 -p 8080:80/udp -p 5201:5201 $E-c1 | awk 'END{print $3}')
bg ip netns exec $E-c1 taskset -c 1 $BENCH serve -name ebpfnet -addr :80
bg ip netns exec $E-c1 taskset -c 1 iperf3 -s -p 5201
bg ip netns exec $E-ext taskset -c 1 iperf3 -s -p 5201
listening $E-c1 80
listening $E-c1 5201
listening $E-ext 5201

# Paths: client namespace, server address, server name, source it must see.
declare -A CONN_NS CONN_ADDR CONN_NAME
CONN_NS=([host]=$H-ext [routed]=$R-ext [ebpfnet]=$E-ext)
CONN_ADDR=([host]=$HOST_IP:8080 [routed]=$ROUTED_IP:80 [ebpfnet]=$HOST_IP:8080)
CONN_NAME=([host]=host [routed]=routed [ebpfnet]=ebpfnet)
for m in host routed ebpfnet; do
	for net in tcp4 udp4; do
		ip netns exec ${CONN_NS[$m]} $BENCH check -net $net -addr ${CONN_ADDR[$m]} -name ${CONN_NAME[$m]} -src $EXT_IP >/dev/null
	done
done
ip netns exec $E-c1 $BENCH check -net udp4 -addr $EXT_IP:80 -name ext -src $HOST_IP >/dev/null

client() { # ns seconds workload args...: prints the command of a bench client pinned to CPU 0
	local ns=$1 secs=$2 w=$3
	shift 3
	case $w in
	connrate) set -- connrate -conc 4 -warmup 0 -max 10000000 -duration ${secs}s "$@" ;;
	udp) set -- udp -size 64 -max 1000000000 -duration ${secs}s "$@" ;;
	esac
	echo ip netns exec "$ns" taskset -c 0 $BENCH "$@"
}

echo "# ebpfnet cost account: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git log -1 --format=%h 2>/dev/null || echo ?)," \
	"$(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# ebpfnet container c1 $C1_IP; perf: $PERF ($("$PERF" version 2>/dev/null))"

# ---- Part 1: program runs and ns per unit of work ------------------------
account() { # title count-field unit command...
	local title=$1 count=$2 unit=$3
	shift 3
	echo
	echo "== $title"
	bin/progstats -pin-root "$PINS" -count "$count" -unit "$unit" -- "$@"
}
echo
echo "## 1. ebpfnet programs per unit of work (BPF_ENABLE_STATS on, which adds its own timing to every run)"
account "ebpfnet: one new TCP connection, ext -> $HOST_IP:8080 -> c1:80 ($RUN_SECONDS s, 4 workers)" conns conn \
	$(client $E-ext $RUN_SECONDS connrate -addr $HOST_IP:8080 -name ebpfnet)
account "ebpfnet: one UDP datagram in, 64 B, ext -> $HOST_IP:8080/udp -> c1:80 (per datagram sent)" sent dgram \
	$(client $E-ext $RUN_SECONDS udp -addr $HOST_IP:8080)
account "ebpfnet: one UDP datagram out, 64 B, c1 -> $EXT_IP:80 masqueraded (per datagram sent)" sent dgram \
	$(client $E-c1 $RUN_SECONDS udp -addr $EXT_IP:80)
account "host mode (no ebpfnet network in its path): one new TCP connection, ext -> $HOST_IP:8080 (only socket hooks can run)" conns conn \
	$(client $H-ext $RUN_SECONDS connrate -addr $HOST_IP:8080 -name host)
account "host mode: one UDP datagram, ext -> $HOST_IP:8080/udp" sent dgram \
	$(client $H-ext $RUN_SECONDS udp -addr $HOST_IP:8080)
for dir in "DNAT ingress TCP, iperf3 ext -> $HOST_IP:5201|$E-ext|$HOST_IP" "SNAT egress TCP, iperf3 c1 -> $EXT_IP:5201|$E-c1|$EXT_IP"; do
	IFS='|' read -r title ns dst <<<"$dir"
	echo
	echo "== ebpfnet: $title ($RUN_SECONDS s; runs are GSO packets)"
	bin/progstats -pin-root "$PINS" -- ip netns exec "$ns" taskset -c 0 timeout 20 iperf3 -c "$dst" -p 5201 -t $RUN_SECONDS
done

# ---- Part 2: perf, host vs routed vs ebpfnet -----------------------------
# Workload comms: the bench's clients and servers (Go threads keep the
# process's comm), the idle task and ksoftirqd, where softirq work may land.
COMMS='^(ebpfnet-bench|swapper|swapper/[0-9]+|ksoftirqd/[0-9]+)$'
IDLE='^(pv_native_safe_halt|native_safe_halt|default_idle|default_idle_call|arch_cpu_idle|acpi_safe_halt|cpu_idle_poll|poll_idle|do_idle|cpuidle_enter_state|intel_idle.*|acpi_idle.*|mwait_idle.*)$'
# Functions whose inclusive time (children) is shown side by side; they
# nest, so the rows do not add up. bpf_progs is the sum over all bpf_prog_*
# (our programs, with the helpers and map operations they call). Functions
# the kernel leaves by a tail call (ip_rcv, ip_local_deliver, udp_rcv) are
# often missing from the stacks, so they are not in the list.
PATHFN='^(bpf_progs|net_rx_action|process_backlog|__netif_receive_skb_core|ip_forward|tcp_v4_rcv|__udp4_lib_rcv|__dev_queue_xmit|veth_xmit|nf_hook_slow|fib_table_lookup|__x64_sys_connect|__x64_sys_accept4|__x64_sys_close|__x64_sys_write|__x64_sys_recvfrom)$'

# record mode workload round rate-field client-command...: perf record of the
# whole machine for PERF_SECONDS while the workload runs; keeps the perf data
# and the workload's rate.
record() {
	local mode=$1 w=$2 round=$3 ratefield=$4
	shift 4
	local out=$WORK/$mode-$w.$round
	"$@" >"$out.json" 2>"$out.err" &
	local wl=$!
	PIDS+=($wl)
	sleep 0.7
	"$PERF" record -a -g -e cpu-clock -c $PERIOD_NS -o "$out.data" -- sleep $PERF_SECONDS >/dev/null 2>"$out.perf.err" ||
		{ cat "$out.perf.err" >&2; return 1; }
	wait $wl || { cat "$out.err" >&2; return 1; }
	forget $wl
	sed -n "s/.*\"$ratefield\":\([-0-9.eE+]*\).*/\1/p" "$out.json" >"$out.rate"
}

# samples mode workload: over the rounds, the workload comms' samples as
# "T busy idle other all kernel user" (self), "S symbol n" (self, idle left
# out) and "C function n" (inclusive, PATHFN only).
samples() {
	local f
	for f in "$WORK/$1-$2".*.data; do
		"$PERF" report -i "$f" --no-children --sort comm,symbol -n -g none --stdio -t '|' 2>/dev/null |
			awk -F'|' '/^#/ || NF < 4 { next } { print "self|" $2 "|" $3 "|" $4 }'
		"$PERF" report -i "$f" --children --sort comm,symbol -g none --stdio -t '|' 2>/dev/null |
			awk -F'|' -v period=$PERIOD_NS '
			/^# Event count/ { total = $0; sub(/.*: /, "", total); total /= period; next }
			/^#/ || NF < 4 { next }
			{ printf "children|%.2f|%s|%s\n", $1 * total / 100, $3, $4 }'
	done | awk -F'|' -v comms="$COMMS" -v idle="$IDLE" -v pathfn="$PATHFN" '
		{
			n = $2 + 0; comm = $3; sym = $4
			gsub(/^ +| +$/, "", comm); gsub(/^ +| +$/, "", sym)
			user = sym ~ /^\[\.\]/
			sub(/^\[.\] /, "", sym)
			if ($1 == "children") {
				if (comm !~ comms) next
				if (sym ~ /^bpf_prog_/) sym = "bpf_progs"
				sub(/\.(constprop|isra|part|cold)\..*$/, "", sym)
				if (sym ~ pathfn) c[sym] += n
				next
			}
			all += n
			if (comm !~ comms) { other += n; next }
			if (sym ~ idle) { idlen += n; next }
			busy += n; s[sym] += n
			if (user) u += n; else k += n
		}
		END {
			printf "T\t%d\t%d\t%d\t%d\t%d\t%d\n", busy, idlen, other, all, k, u
			for (x in s) printf "S\t%s\t%d\n", x, s[x]
			for (x in c) printf "C\t%s\t%.0f\n", x, c[x]
		}'
}

# profile mode workload unit: prints the top 20 symbols (self) in µs of CPU
# per unit of work and writes $WORK/<mode>-<workload>.sym for side_by_side.
profile() {
	local mode=$1 w=$2 unit=$3 units
	units=$(cat "$WORK/$mode-$w".*.rate | awk -v secs=$PERF_SECONDS '{ u += $1 * secs } END { print u }')
	samples $mode $w >"$WORK/$mode-$w.agg"
	{
		grep '^T' "$WORK/$mode-$w.agg" || true
		grep '^C' "$WORK/$mode-$w.agg" || true
		grep '^S' "$WORK/$mode-$w.agg" | sort -t$'\t' -k3,3nr || true
	} | awk -F'\t' -v period=$PERIOD_NS -v units="$units" -v secs=$PERF_SECONDS -v rounds=$PERF_ROUNDS \
		-v unit="$unit" -v title="$mode, $w" -v symfile="$WORK/$mode-$w.sym" '
		$1 == "T" {
			busy = $2; idlen = $3; other = $4; all = $5
			us = period / 1000 / units # µs of CPU per sample, per unit of work
			printf "\n== perf: %s: %.0f %s/s, %.1f µs of CPU per %s (kernel %.1f, user %.1f; %d samples; idle %.0f%%, other processes %.1f%% of all samples)\n",
				title, units / secs / rounds, unit, busy * us, unit, $6 * us, $7 * us, busy, 100 * idlen / all, 100 * other / all
			printf "%7s %9s  %s\n", "share", "µs/" unit, "symbol (self)"
			printf "T\tall (busy CPU)\t%.3f\nT\t  kernel\t%.3f\nT\t  user\t%.3f\n", busy * us, $6 * us, $7 * us >symfile
			next
		}
		$1 == "C" { printf "C\t%s\t%.3f\n", $2, $3 * us >symfile; next }
		{
			printf "S\t%s\t%.3f\n", $2, $3 * us >symfile
			if (++i <= 20) printf "%6.1f%% %9.3f  %s\n", 100 * $3 / busy, $3 * us, $2
			if ($2 ~ /^bpf_prog_/) bpf += $3
		}
		END { printf "%6.1f%% %9.3f  (all bpf_prog_* JIT code, self)\n", 100 * bpf / busy, bpf * us }'
}

side_by_side() { # workload unit: totals, inclusive path functions, top 10 self symbols of each mode
	local w=$1 unit=$2
	echo
	echo "== perf side by side: $w, µs of CPU per $unit"
	awk -F'\t' -v unit="$unit" -v pathfn="$PATHFN" '
		FNR == 1 { m++; mode[m] = FILENAME; sub(/.*\//, "", mode[m]); sub(/-[^-]*\.sym$/, "", mode[m]); rank = 0 }
		$1 == "T" { if (!($2 in tseen)) { tseen[$2] = 1; torder[++nt] = $2 } t[m, $2] = $3; next }
		$1 == "C" { c[m, $2] = $3; next }
		{ v[m, $2] = $3; if (++rank <= 10 && !($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
		END {
			printf "%-44s", ""; for (j = 1; j <= m; j++) printf " %9s", mode[j]; printf "\n"
			for (i = 1; i <= nt; i++) {
				printf "%-44s", torder[i]; for (j = 1; j <= m; j++) printf " %9.2f", t[j, torder[i]]; printf "\n"
			}
			print "inclusive (children; nested, not additive):"
			f = pathfn; gsub(/^\^\(|\)\$$/, "", f); gsub(/\\/, "", f); nf = split(f, fn, "|")
			for (i = 1; i <= nf; i++) {
				for (j = 1; j <= m; j++) if (c[j, fn[i]] >= 0.0005) break
				if (j > m) continue # not on the path of this workload
				printf "  %-42s", fn[i]; for (j = 1; j <= m; j++) printf " %9.3f", c[j, fn[i]]; printf "\n"
			}
			print "self, the top 10 of each mode:"
			for (i = 1; i <= n; i++) {
				printf "  %-42s", substr(order[i], 1, 42); for (j = 1; j <= m; j++) printf " %9.3f", v[j, order[i]]; printf "\n"
			}
		}' "$WORK/host-$w.sym" "$WORK/routed-$w.sym" "$WORK/ebpfnet-$w.sym"
}

echo
echo "## 2. perf record -a -g -e cpu-clock, $PERF_ROUNDS x $PERF_SECONDS s of each workload, host vs routed vs ebpfnet interleaved (no BPF statistics on)"
for round in $(seq $PERF_ROUNDS); do
	for m in host routed ebpfnet; do
		record $m connrate $round conn_per_sec \
			$(client ${CONN_NS[$m]} $((PERF_SECONDS + 2)) connrate -addr ${CONN_ADDR[$m]} -name ${CONN_NAME[$m]})
	done
	for m in host routed ebpfnet; do
		record $m udp $round sent_pps $(client ${CONN_NS[$m]} $((PERF_SECONDS + 2)) udp -addr ${CONN_ADDR[$m]})
	done
done
for m in host routed ebpfnet; do profile $m connrate conn; done
for m in host routed ebpfnet; do profile $m udp dgram; done
side_by_side connrate conn
side_by_side udp dgram
echo
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
