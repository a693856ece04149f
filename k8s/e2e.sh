#!/usr/bin/env bash
# A Kubernetes cluster in network namespaces, with ebpfnet's CNI plugin as
# the pod network and stock kube-proxy (K8S_PROXY_MODE=iptables or
# nftables) or ebpfnet's own service path instead of it
# (K8S_PROXY_MODE=ebpfnet), that runs the upstream sig-network conformance
# tests and tears itself down. See docs/kubernetes.md.
#
#   k8s/e2e.sh run       build what is missing, cluster up, e2e, table, down
#   k8s/e2e.sh up        cluster up and wait (Ctrl-C tears it down); prints
#                        how to use kubectl in it
#   k8s/e2e.sh cleanup   remove what a killed run left behind
#
# Everything it makes is named k8e-* or lives under $K8S_WORK; nothing is
# changed in the root network namespace: no routes, addresses, rules or
# sysctls there. Processes are stopped by PID.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin

repo=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
K8S_CACHE=${K8S_CACHE:-/var/cache/ebpfnet-k8s/$K8S_VERSION}
K8S_PROXY_MODE=${K8S_PROXY_MODE:-iptables}
case $K8S_PROXY_MODE in
iptables | nftables | ebpfnet) ;;
*)
	echo "K8S_PROXY_MODE=$K8S_PROXY_MODE: want iptables, nftables (kube-proxy's modes) or ebpfnet (no kube-proxy)" >&2
	exit 2
	;;
esac
K8S_NODES=${K8S_NODES:-1}
# K8S_CNI=bridge runs the reference bridge plugin (host-local IPAM, portmap,
# hairpin), the pod network a kubelet node gets without a CNI of its own,
# to compare the conformance run against (one node only).
K8S_CNI=${K8S_CNI:-ebpfnet}
K8S_WORK=${K8S_WORK:-/tmp/k8e-work}
K8S_RESULTS=${K8S_RESULTS:-$repo/bin/k8s-e2e/$K8S_PROXY_MODE}
K8S_FOCUS=${K8S_FOCUS:-'\[sig-network\].*\[Conformance\]'}
# What cannot run in this sandbox (see docs/kubernetes.md): no IPv6 in the
# datapath, no SCTP, no cloud load balancers, no internet for DNS lookups
# of outside names.
K8S_SKIP=${K8S_SKIP:-'IPv6|\[Feature:SCTP|SCTPConnectivity|LoadBalancer|\[Feature:Networking-IPv6\]|\[Disruptive\]|\[Flaky\]'}
K8S_PARALLEL=${K8S_PARALLEL:-4}
K8S_TIMEOUT=${K8S_TIMEOUT:-60m}
K8S_E2E_ARGS=${K8S_E2E_ARGS:-}
EBPFNET_CNI=${EBPFNET_CNI:-$repo/bin/ebpfnet-cni}
# The CLI, for its daemon on each node when K8S_NODES > 1 or
# K8S_PROXY_MODE=ebpfnet.
EBPFNET_BIN=${EBPFNET_BIN:-$repo/bin/ebpfnet}

BIN=$K8S_CACHE/bin
IMAGES=$K8S_CACHE/images
P=k8e
OUT_NS=$P-out
SERVICE_CIDR=10.96.0.0/12
SERVICE_API_IP=10.96.0.1
DNS_IP=10.96.0.10
CLUSTER_CIDR=10.244.0.0/16
ETCD_PORT=12379
APISERVER_PORT=6443
SANDBOX_IMAGE=registry.k8s.io/pause:3.10.2

node_name() { echo "$P-n$1"; }             # node i's name and network namespace
node_ip() { echo "198.18.0.$((1 + $1))"; } # node i's address on the uplink
CP_IP=$(node_ip 1) # the control plane runs on node 1
CP_NS=$(node_name 1)
CLUSTER_STORE=etcd://$CP_IP:$ETCD_PORT # ebpfnet's, with K8S_NODES > 1

log() { printf '[k8s-e2e %(%T)T] %s\n' -1 "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}

# Processes: started in the background with their log in $K8S_WORK/logs and
# their PID in $K8S_WORK/pids (one file per process, stopped in reverse
# order of start).
start_bg() { # NAME COMMAND...
	local name=$1 n
	shift
	"$@" >>"$K8S_WORK/logs/$name.log" 2>&1 </dev/null &
	n=$(ls "$K8S_WORK/pids" | wc -l)
	echo $! >"$K8S_WORK/pids/$(printf '%03d' "$n")-$name"
	disown $!
	log "started $name (pid $!)"
	sleep 0.2
	kill -0 $! 2>/dev/null || die "$name exited at once: $(tail -3 "$K8S_WORK/logs/$name.log" 2>/dev/null)"
}

stop_pid() { # PID [SECONDS]: SIGTERM, SECONDS (10), SIGKILL
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 $((${2:-10} * 10))); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop_named() { # NAME-PATTERN: the recorded processes whose name matches, latest first
	local f
	for f in $(ls -r "$K8S_WORK/pids" 2>/dev/null); do
		# shellcheck disable=SC2254
		case ${f#*-} in $1) ;; *) continue ;; esac
		stop_pid "$(cat "$K8S_WORK/pids/$f")"
		rm -f "$K8S_WORK/pids/$f"
	done
}

wait_for() { # SECONDS WHAT COMMAND...: retry until it succeeds
	local t=$1 what=$2 end
	shift 2
	end=$((SECONDS + t))
	while [ "$SECONDS" -lt "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "timed out after ${t}s waiting for $what"
}

in_ns() { # NODE-NS COMMAND...
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

kubectl() { in_ns "$CP_NS" "$BIN/kubectl" --kubeconfig "$K8S_WORK/pki/admin.kubeconfig" "$@"; }

# The cgroup v1 hierarchies (or the v2 root) a node's cgroupRoot is made in.
cgroup_dirs() {
	local d
	if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
		echo /sys/fs/cgroup
		return
	fi
	for d in /sys/fs/cgroup/*/; do
		[ -e "$d/cgroup.procs" ] && echo "${d%/}"
	done
}

# Stand-ins, in a node's private mount namespace, for what kubelet writes
# whatever its flags say: global sysctls and /var/lib/kubelet (the device
# plugin socket), /var/log/pods and /var/log/containers.
STANDIN_SYSCTLS="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000"
STANDIN_DIRS="/var/lib/kubelet /var/log/pods /var/log/containers"

# ---------------------------------------------------------------- cleanup

cleanup() {
	local rc=$? i ns node dir pid holder f
	trap - EXIT INT TERM
	set +e
	log "tearing down"
	# ginkgo, given time to stop its e2e.test processes and write its
	# report; then those processes, if any is left.
	if [ -f "$K8S_WORK/pids/999-e2e" ]; then
		pid=$(cat "$K8S_WORK/pids/999-e2e")
		local kids
		kids=$(ps -o pid= --ppid "$pid")
		stop_pid "$pid" 60
		for i in $kids; do stop_pid "$i"; done
		rm -f "$K8S_WORK/pids/999-e2e"
	fi
	for i in $(seq "$K8S_NODES" -1 1); do
		node=$(node_name "$i")
		stop_named "kube-proxy-$node"
		stop_named "kubelet-$node"
		dir=$K8S_WORK/nodes/$node
		if [ -S "$dir/containerd.sock" ]; then
			# Tasks first (containerd stops their shims and unmounts their
			# root file systems), then containers.
			for id in $(ctr --address "$dir/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
				ctr --address "$dir/containerd.sock" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1
				ctr --address "$dir/containerd.sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1
			done
			for id in $(ctr --address "$dir/containerd.sock" -n k8s.io containers ls -q 2>/dev/null); do
				ctr --address "$dir/containerd.sock" -n k8s.io containers delete "$id" >/dev/null 2>&1
			done
		fi
		stop_named "containerd-$node"
		# What is left in the node's mount namespace (shims, the holder)
		# and in its cgroups (container processes): ours by construction.
		holder=$(cat "$dir/holder.pid" 2>/dev/null)
		if [ -n "$holder" ] && [ -e "/proc/$holder/ns/mnt" ]; then
			local mnt
			mnt=$(readlink "/proc/$holder/ns/mnt")
			for pid in $(ls /proc | grep -E '^[0-9]+$'); do
				[ "$pid" = "$holder" ] && continue
				[ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$mnt" ] && kill -KILL "$pid" 2>/dev/null
			done
			kill -KILL "$holder" 2>/dev/null
		fi
		for f in $(cgroup_dirs); do
			[ -d "$f/$node" ] || continue
			for pid in $(find "$f/$node" -name cgroup.procs -exec cat {} + 2>/dev/null); do
				kill -KILL "$pid" 2>/dev/null
			done
		done
	done
	stop_named '*' # the control plane
	sleep 0.5
	for i in $(seq 1 "$K8S_NODES"); do
		node=$(node_name "$i")
		for f in $(cgroup_dirs); do
			[ -d "$f/$node" ] && find "$f/$node" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	done
	for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do
		ip netns delete "$ns"
		rm -rf "/etc/netns/$ns"
	done
	rm -rf "/sys/fs/bpf/ebpfnet/$P-"*
	rmdir /sys/fs/bpf/ebpfnet 2>/dev/null
	# Mounts left under the work dir in this mount namespace, if any.
	for f in $(awk '{print $5}' /proc/self/mountinfo | grep "^$K8S_WORK/" | sort -r); do
		umount -l "$f"
	done
	# The empty mount points made for the stand-ins.
	if [ -f "$K8S_WORK/made-dirs" ]; then
		while read -r f; do rmdir "$f" 2>/dev/null; done < <(sort -r "$K8S_WORK/made-dirs")
	fi
	if [ "${K8S_KEEP_WORK:-0}" = 1 ]; then
		rm -rf "$K8S_WORK/pids"
		log "kept $K8S_WORK (logs)"
	else
		rm -rf "$K8S_WORK"
	fi
	log "down"
	exit "$rc"
}

# ---------------------------------------------------------------- setup

check_clean() {
	if ip netns list | grep -q "^$P-"; then
		die "namespaces $P-* exist: another run is going on or a killed one left them (k8s/e2e.sh cleanup)"
	fi
}

setup_network() {
	local i node ip
	ip netns add "$OUT_NS"
	ip -n "$OUT_NS" link set lo up
	ip -n "$OUT_NS" link add br0 type bridge
	ip -n "$OUT_NS" addr add 198.18.0.1/24 dev br0
	ip -n "$OUT_NS" link set br0 up
	for i in $(seq 1 "$K8S_NODES"); do
		node=$(node_name "$i")
		ip=$(node_ip "$i")
		ip netns add "$node"
		ip link add eth0 netns "$node" type veth peer name "n$i" netns "$OUT_NS"
		ip -n "$OUT_NS" link set "n$i" master br0 up
		ip -n "$node" link set lo up
		ip -n "$node" addr add "$ip/24" dev eth0
		ip -n "$node" link set eth0 up
		ip -n "$node" route add default via 198.18.0.1
		# Per network namespace here: never set in the root namespace.
		in_ns "$node" sysctl -qw net.ipv4.ip_forward=1
		in_ns "$node" sysctl -qw net.bridge.bridge-nf-call-iptables=1
	done
	log "network: $OUT_NS (198.18.0.1) and nodes $(for i in $(seq 1 "$K8S_NODES"); do printf '%s=%s ' "$(node_name "$i")" "$(node_ip "$i")"; done)"
}

# PKI: a CA, the apiserver's serving certificate, client certificates, the
# service account key pair. openssl, all under $K8S_WORK/pki.
cert() { # NAME SUBJECT [SANs]: NAME.crt/.key signed by the CA
	local name=$1 subj=$2 sans=${3:-} d=$K8S_WORK/pki ext
	openssl genrsa -out "$d/$name.key" 2048 2>/dev/null
	openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
	ext=$d/$name.ext
	if [ -n "$sans" ]; then
		printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >"$ext"
	else
		printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
	fi
	openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 7 -extfile "$ext" -out "$d/$name.crt" 2>/dev/null
}

kubeconfig() { # NAME CERT-NAME
	local d=$K8S_WORK/pki
	cat >"$d/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: $d/ca.crt
    server: https://$CP_IP:$APISERVER_PORT
  name: $P
contexts:
- context:
    cluster: $P
    user: $2
  name: $P
current-context: $P
users:
- name: $2
  user:
    client-certificate: $d/$2.crt
    client-key: $d/$2.key
EOF
}

setup_pki() {
	local d=$K8S_WORK/pki i
	mkdir -p "$d"
	openssl genrsa -out "$d/ca.key" 2048 2>/dev/null
	openssl req -x509 -new -key "$d/ca.key" -subj "/CN=$P-ca" -days 7 -out "$d/ca.crt" 2>/dev/null
	cert apiserver "/CN=kube-apiserver" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$SERVICE_API_IP,IP:$CP_IP,IP:127.0.0.1"
	cert admin "/O=system:masters/CN=$P-admin"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
	for i in $(seq 1 "$K8S_NODES"); do
		cert "kubelet-$(node_name "$i")" "/O=system:nodes/CN=system:node:$(node_name "$i")"
		kubeconfig "kubelet-$(node_name "$i")" "kubelet-$(node_name "$i")"
	done
	kubeconfig admin admin
	openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
	openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

start_control_plane() {
	local d=$K8S_WORK/pki
	mkdir -p "$K8S_WORK/etcd"
	start_bg etcd ip netns exec "$CP_NS" etcd --name "$P" --data-dir "$K8S_WORK/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT,http://$CP_IP:$ETCD_PORT" --advertise-client-urls "http://$CP_IP:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
		--initial-cluster "$P=http://127.0.0.1:$((ETCD_PORT + 1))" --quota-backend-bytes 4294967296
	wait_for 30 etcd in_ns "$CP_NS" etcdctl --endpoints "127.0.0.1:$ETCD_PORT" endpoint health
	start_bg kube-apiserver ip netns exec "$CP_NS" "$BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--advertise-address "$CP_IP" --bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--client-ca-file "$d/ca.crt" --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
		--kubelet-client-certificate "$d/apiserver-kubelet-client.crt" --kubelet-client-key "$d/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP,Hostname \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--allow-privileged=true --cert-dir "$K8S_WORK/apiserver-certs"
	wait_for 120 kube-apiserver kubectl get --raw /readyz
	start_bg kube-controller-manager ip netns exec "$CP_NS" "$BIN/kube-controller-manager" \
		--kubeconfig "$d/admin.kubeconfig" --authentication-kubeconfig "$d/admin.kubeconfig" --authorization-kubeconfig "$d/admin.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
		--root-ca-file "$d/ca.crt" --service-account-private-key-file "$d/sa.key" \
		--cluster-signing-cert-file "$d/ca.crt" --cluster-signing-key-file "$d/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" --allocate-node-cidrs=false \
		--controllers '*,bootstrapsigner,tokencleaner'
	start_bg kube-scheduler ip netns exec "$CP_NS" "$BIN/kube-scheduler" \
		--kubeconfig "$d/admin.kubeconfig" --authentication-kubeconfig "$d/admin.kubeconfig" --authorization-kubeconfig "$d/admin.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false
	log "control plane up on $CP_NS ($CP_IP:$APISERVER_PORT)"
}

# The node's CNI configuration: ebpfnet with its own instance (state dir,
# pin root). One node: a bridge network on 10.244.0.0/24. More: one overlay
# network on 10.244.0.0/16 across the nodes (VXLAN in eBPF; each node's
# ebpfnet daemon has joined the cluster store, addresses come from it).
# serviceCIDRs, with kube-proxy: those destinations are the kernel's
# (kube-proxy's) to translate. Without it, the daemon's service path
# balances them at the socket: nothing to hand over.
write_cni_conf() { # NODE-INDEX DIR
	local i=$1 dir=$2 node network services=""
	node=$(node_name "$i")
	if [ "$K8S_CNI" = bridge ]; then
		[ "$K8S_NODES" -eq 1 ] || die "K8S_CNI=bridge takes one node"
		cat >"$dir/cni/net.d/10-bridge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$P",
  "plugins": [
    {
      "type": "bridge", "bridge": "$P-br0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.244.0.0/24", "gateway": "10.244.0.1" }]],
                "dataDir": "$dir/cni/ipam" }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
  ]
}
EOF
		return
	fi
	if [ "$K8S_NODES" -gt 1 ]; then
		network="\"driver\": \"overlay\",
      \"clusterStore\": \"$CLUSTER_STORE\",
      \"subnet\": \"$CLUSTER_CIDR\","
	else
		network="\"subnet\": \"10.244.0.0/24\",
      \"gateway\": \"10.244.0.1\",
      \"bridge\": \"$P-br0\",
      \"uplink\": \"eth0\","
	fi
	if [ "$K8S_PROXY_MODE" != ebpfnet ]; then
		services="\"serviceCIDRs\": [\"$SERVICE_CIDR\"],"
	fi
	cat >"$dir/cni/net.d/10-ebpfnet.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$P",
  "plugins": [
    {
      "type": "ebpfnet",
      $network
      "ipMasq": true,
      "icc": true,
      $services
      "stateDir": "$dir/ebpfnet",
      "pinRoot": "/sys/fs/bpf/ebpfnet/$node",
      "capabilities": { "portMappings": true }
    }
  ]
}
EOF
}

own_mount_ns() { # PID: the holder runs sleep (so unshare has made its mount
	# namespace private) in a mount namespace other than ours
	local ns
	[ "$(cat "/proc/$1/comm")" = sleep ] || return 1
	ns=$(readlink "/proc/$1/ns/mnt") && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ]
}

start_node() { # NODE-INDEX
	local i=$1 node ip dir f s mp holder
	node=$(node_name "$i")
	ip=$(node_ip "$i")
	dir=$K8S_WORK/nodes/$node
	mkdir -p "$dir/cni/bin" "$dir/cni/net.d" "$dir/standin/sysctl" "$dir/ebpfnet" "$dir/containerd"
	ln -s /usr/lib/cni/* "$dir/cni/bin/"
	install -m 0755 "$EBPFNET_CNI" "$dir/cni/bin/ebpfnet"
	write_cni_conf "$i" "$dir"
	printf 'nameserver 198.18.0.1\n' >"$dir/resolv.conf"

	# cgroupRoot of the node, in every hierarchy.
	for f in $(cgroup_dirs); do
		mkdir -p "$f/$node"
		if [ -e "$f/cpuset.cpus" ] && [ -e "$f/$node/cpuset.cpus" ]; then
			cat "$f/cpuset.cpus" >"$f/$node/cpuset.cpus"
			cat "$f/cpuset.mems" >"$f/$node/cpuset.mems"
		fi
	done

	# The node's private mount namespace, held by a sleeping process;
	# containerd and kubelet (and all they start) run in it.
	unshare -m --propagation private sleep infinity </dev/null >/dev/null 2>&1 &
	holder=$!
	disown "$holder"
	echo "$holder" >"$dir/holder.pid"
	wait_for 10 "mount namespace of $node" own_mount_ns "$holder"
	for s in $STANDIN_SYSCTLS; do
		f=$dir/standin/sysctl/${s%%=*}
		mkdir -p "$(dirname "$f")"
		echo "${s#*=}" >"$f"
		nsenter -t "$holder" -m mount --bind "$f" "/proc/sys/${s%%=*}"
	done
	for mp in $STANDIN_DIRS; do
		if [ ! -d "$mp" ]; then
			mkdir -p "$mp"
			echo "$mp" >>"$K8S_WORK/made-dirs"
		fi
		mkdir -p "$dir/standin$mp"
		nsenter -t "$holder" -m mount --bind "$dir/standin$mp" "$mp"
	done

	# ebpfnet's daemon, for the overlay network of more than one node and
	# as the kube-proxy replacement. In the node's mount namespace: the
	# pods' network namespaces are bound there (under containerd's state
	# dir), and the daemon tells a live pod from a gone one by opening that
	# path.
	local global=() daemon=()
	if [ "$K8S_NODES" -gt 1 ]; then
		global=(--cluster-store "$CLUSTER_STORE")
		daemon=(--advertise-addr "$ip")
	fi
	if [ "$K8S_PROXY_MODE" = ebpfnet ]; then
		daemon+=(--kube-proxy-replacement --kubeconfig "$K8S_WORK/pki/admin.kubeconfig" --node-name "$node")
	fi
	if [ ${#daemon[@]} -gt 0 ]; then
		start_bg "ebpfnet-$node" nsenter -t "$holder" -m --net="/run/netns/$node" -- "$EBPFNET_BIN" --state-dir "$dir/ebpfnet" \
			--pin-root "/sys/fs/bpf/ebpfnet/$node" "${global[@]}" daemon "${daemon[@]}"
		if [ "$K8S_NODES" -gt 1 ]; then
			wait_for 30 "ebpfnet daemon of $node joining the cluster" test -e "$dir/ebpfnet/cluster-host"
		fi
		if [ "$K8S_PROXY_MODE" = ebpfnet ]; then
			wait_for 60 "ebpfnet daemon of $node balancing the cluster's Services" \
				grep -q "kube-proxy replacement: services synced" "$K8S_WORK/logs/ebpfnet-$node.log"
		fi
	fi

	cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni/bin"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
	start_bg "containerd-$node" nsenter -t "$holder" -m --net="/run/netns/$node" -- \
		containerd --config "$dir/containerd/config.toml" --log-level info
	wait_for 30 "containerd of $node" ctr --address "$dir/containerd.sock" version
	for f in "$IMAGES"/*.tar; do
		ctr --address "$dir/containerd.sock" -n k8s.io images import --snapshotter native "$f" >/dev/null ||
			die "import $f into $node"
	done

	cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $K8S_WORK/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /$node
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
containerRuntimeEndpoint: unix://$dir/containerd.sock
resolvConf: $dir/resolv.conf
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 250
serializeImagePulls: false
EOF
	start_bg "kubelet-$node" nsenter -t "$holder" -m --net="/run/netns/$node" -- \
		"$BIN/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$K8S_WORK/pki/kubelet-$node.kubeconfig" \
		--hostname-override "$node" --node-ip "$ip" --root-dir /var/lib/kubelet --v 1

	# kube-proxy: stock, as a process in the node's namespace; none when
	# ebpfnet's daemon replaces it.
	[ "$K8S_PROXY_MODE" != ebpfnet ] || return 0
	cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $K8S_WORK/pki/admin.kubeconfig}
mode: $K8S_PROXY_MODE
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $node
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
	start_bg "kube-proxy-$node" ip netns exec "$node" "$BIN/kube-proxy" --config "$dir/kube-proxy.yaml" --v 1
}

# CoreDNS as the cluster's DNS (kube-system/kube-dns, $DNS_IP), in the
# node's network namespace (hostNetwork): it reaches the apiserver through
# kube-proxy (or ebpfnet's socket balancing) from the node itself, so the
# cluster's DNS server is up
# whatever the pod datapath does, and the DNS tests measure pod ->
# ClusterIP -> DNS.
deploy_dns() {
	kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :18080
        ready :18181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
           fallthrough in-addr.arpa ip6.arpa
           ttl 30
        }
        forward . /etc/resolv.conf
        cache 30
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      hostNetwork: true
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      containers:
      - name: coredns
        image: ebpfnet.test/coredns:v1.15.0
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 18181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 18080}
          initialDelaySeconds: 30
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

cluster_up() {
	local i t0=$SECONDS
	[ -x "$EBPFNET_CNI" ] || die "$EBPFNET_CNI missing: make build"
	for f in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl e2e.test ginkgo; do
		[ -x "$BIN/$f" ] || die "$BIN/$f missing: make k8s-build"
	done
	[ -s "$IMAGES/pause.tar" ] || die "images missing: make k8s-build"
	check_clean
	if [ "$K8S_NODES" -gt 1 ] || [ "$K8S_PROXY_MODE" = ebpfnet ]; then
		[ -x "$EBPFNET_BIN" ] || die "$EBPFNET_BIN missing: make build"
	fi
	if [ "$K8S_PROXY_MODE" = ebpfnet ]; then
		log "no kube-proxy: ebpfnet daemon --kube-proxy-replacement on each node balances the Services"
	fi
	if [ "$K8S_NODES" -gt 1 ]; then
		log "$K8S_NODES nodes: one ebpfnet overlay network across them (ebpfnet daemon on each node, cluster store in the control plane's etcd)"
	fi
	rm -rf "$K8S_WORK" # a kept one (K8S_KEEP_WORK=1): its PIDs are stale
	mkdir -p "$K8S_WORK/logs" "$K8S_WORK/pids"
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	setup_network
	setup_pki
	start_control_plane
	for i in $(seq 1 "$K8S_NODES"); do
		start_node "$i"
	done
	for i in $(seq 1 "$K8S_NODES"); do
		wait_for 180 "node $(node_name "$i") Ready" kubectl wait --for=condition=Ready "node/$(node_name "$i")" --timeout=5s
	done
	deploy_dns
	wait_for 180 "CoreDNS ready" kubectl -n kube-system wait --for=condition=Ready pod -l k8s-app=kube-dns --timeout=5s
	CLUSTER_UP_SECONDS=$((SECONDS - t0))
	log "cluster up in ${CLUSTER_UP_SECONDS}s ($(proxy_name), $K8S_NODES node(s))"
	kubectl get nodes -o wide >&2
}

run_e2e() {
	local t0=$SECONDS rc=0 report=$K8S_WORK/report
	mkdir -p "$report" "$K8S_RESULTS"
	log "e2e: focus $K8S_FOCUS"
	log "e2e: skip  $K8S_SKIP"
	# e2e.test and kubectl run in the control plane's namespace: node
	# addresses are routed out of the machine from the root namespace.
	# shellcheck disable=SC2086
	PATH=$BIN:$PATH ip netns exec "$CP_NS" "$BIN/ginkgo" --procs="$K8S_PARALLEL" --timeout="$K8S_TIMEOUT" \
		--focus="$K8S_FOCUS" --skip="$K8S_SKIP" --no-color --silence-skips \
		--output-interceptor-mode=none \
		"$BIN/e2e.test" -- \
		--kubeconfig "$K8S_WORK/pki/admin.kubeconfig" --provider skeleton \
		--kubectl-path "$BIN/kubectl" --report-dir "$report" \
		--num-nodes "$K8S_NODES" --dump-logs-on-failure=false \
		$K8S_E2E_ARGS \
		>"$K8S_RESULTS/e2e.log" 2>&1 &
	echo $! >"$K8S_WORK/pids/999-e2e"
	wait $! || rc=$?
	rm -f "$K8S_WORK/pids/999-e2e"
	E2E_SECONDS=$((SECONDS - t0))
	log "e2e exited $rc after ${E2E_SECONDS}s (log: $K8S_RESULTS/e2e.log)"
	cp "$report"/junit*.xml "$K8S_RESULTS/" 2>/dev/null || true
	summarize
	# ginkgo's status: non-zero when a test failed (after the table).
	return "$rc"
}

proxy_name() {
	if [ "$K8S_PROXY_MODE" = ebpfnet ]; then
		echo "ebpfnet's service path (no kube-proxy)"
	else
		echo "kube-proxy $K8S_PROXY_MODE"
	fi
}

summarize() {
	local xml
	xml=$(ls "$K8S_RESULTS"/junit*.xml 2>/dev/null || true)
	if [ -z "$xml" ]; then
		log "no JUnit report: see $K8S_RESULTS/e2e.log"
		tail -30 "$K8S_RESULTS/e2e.log" >&2
		return 1
	fi
	{
		echo "# $K8S_CNI CNI + $(proxy_name), Kubernetes $K8S_VERSION, $K8S_NODES node(s), $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "# focus: $K8S_FOCUS"
		echo "# skip:  $K8S_SKIP"
		echo "# ebpfnet CNI plugin: $EBPFNET_CNI ($(date -u -r "$EBPFNET_CNI" '+built %Y-%m-%d %H:%M UTC' 2>/dev/null)); repository at $(git -C "$repo" log -1 --format='%h' 2>/dev/null), $(git -C "$repo" status --porcelain -uno 2>/dev/null | wc -l) files changed in the work tree"
		echo "# cluster up ${CLUSTER_UP_SECONDS:-?}s, e2e ${E2E_SECONDS:-?}s"
		# shellcheck disable=SC2086
		(cd "$repo" && go run k8s/tools/junit.go -json "$K8S_RESULTS/summary.json" $xml)
	} | tee "$K8S_RESULTS/summary.txt"
}

case "${1:-run}" in
run)
	"$(dirname "$0")/build.sh"
	"$(dirname "$0")/images.sh"
	cluster_up
	run_e2e
	;;
up)
	cluster_up
	log "cluster is up; kubectl: ip netns exec $CP_NS $BIN/kubectl --kubeconfig $K8S_WORK/pki/admin.kubeconfig get pods -A"
	log "Ctrl-C tears it down"
	sleep infinity &
	echo $! >"$K8S_WORK/pids/998-wait" # stopped with the rest, also by cleanup after a kill -9
	wait $!
	;;
cleanup)
	# As many nodes as left a work dir or a namespace.
	mkdir -p "$K8S_WORK/pids"
	K8S_NODES=$( (ls -d "$K8S_WORK"/nodes/$P-n* 2>/dev/null || true) | wc -l)
	n=$( (ip netns list | grep -c "^$P-n") || true)
	[ "$n" -gt "$K8S_NODES" ] && K8S_NODES=$n
	[ "$K8S_NODES" -gt 0 ] || K8S_NODES=1
	cleanup
	;;
summary)
	summarize
	;;
*)
	echo "usage: $0 [run|up|cleanup|summary]" >&2
	exit 2
	;;
esac
