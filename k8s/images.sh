#!/usr/bin/env bash
# Builds the container images the harness needs, offline, as docker-archive
# tarballs in $K8S_CACHE/images (imported with `ctr -n k8s.io images import`
# under the exact names the kubelet and e2e.test ask for, so nothing is
# pulled):
#   registry.k8s.io/pause:3.10.2                    k8s/tools/pause.go (the sandbox image too)
#   registry.k8s.io/e2e-test-images/agnhost:2.66.1  agnhost, bash as /bin/sh, curl, nc
#       (and :2.55)                                 (OpenBSD), dig, ss, ip, socat, busybox
#                                                   applets, getent, /coredns; copied from this host;
#   registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1  the same image
#   registry.k8s.io/e2e-test-images/busybox:1.37.0-2 (and :1.36.1-1)  busybox-static
#   ebpfnet.test/coredns:v1.15.0                    CoreDNS, the cluster's DNS
# An image whose tarball exists is not rebuilt.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
K8S_VERSION=${K8S_VERSION:-v1.37.2}
K8S_CACHE=${K8S_CACHE:-/var/cache/ebpfnet-k8s/$K8S_VERSION}
here=$(cd "$(dirname "$0")" && pwd)
bin=$K8S_CACHE/bin
out=$K8S_CACHE/images
mkdir -p "$out"
# A change of this recipe (this script, the pause program) rebuilds them all.
recipe=$(cat "$0" "$here/tools/pause.go" | sha256sum | cut -d" " -f1)
if [ "$(cat "$out/.recipe" 2>/dev/null)" != "$recipe" ]; then
	rm -f "$out"/*.tar
	echo "$recipe" >"$out/.recipe"
fi
tmp=$(mktemp -d /tmp/k8e-images.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

log() { printf '[k8s-images %(%T)T] %s\n' -1 "$*"; }

# image NAMES TARBALL ROOTFS ENTRYPOINT-JSON CMD-JSON: a one-layer docker
# archive (manifest.json, config, layer.tar), as `docker save` writes it;
# NAMES is a comma-separated list of tags.
image() {
	local name=$1 tarball=$2 rootfs=$3 entrypoint=$4 cmd=$5 d layer_sha cfg cfg_sha tags
	d=$(mktemp -d "$tmp/img.XXXXXX")
	tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$d/layer.tar" .
	layer_sha=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
	mkdir "$d/$layer_sha"
	mv "$d/layer.tar" "$d/$layer_sha/layer.tar"
	cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"ebpfnet k8s/images.sh"}]}' "$entrypoint" "$cmd" "$layer_sha")
	cfg_sha=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
	printf '%s' "$cfg" >"$d/$cfg_sha.json"
	tags=\"${name//,/\",\"}\"
	printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":["%s/layer.tar"]}]' "$cfg_sha" "$tags" "$layer_sha" >"$d/manifest.json"
	tar --numeric-owner --owner=0 --group=0 -C "$d" -cf "$tarball.tmp" manifest.json "$cfg_sha.json" "$layer_sha"
	mv "$tarball.tmp" "$tarball"
	rm -rf "$d"
	log "$name -> $tarball ($(du -h "$tarball" | cut -f1))"
}

# copy_bin ROOTFS BINARY [DEST]: a host binary and the shared libraries it
# loads, at the same paths.
copy_bin() {
	local root=$1 src=$2 dst=${3:-$2} lib
	install -D -m 0755 "$src" "$root$dst"
	for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
		[ -e "$root$lib" ] || install -D -m 0755 "$lib" "$root$lib"
	done
}

base_etc() { # ROOTFS
	local root=$1
	mkdir -p "$root/etc" "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev"
	chmod 1777 "$root/tmp"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
}

busybox_applets() { # ROOTFS: /bin/busybox and a link per applet (existing files win)
	local root=$1 a
	install -D -m 0755 /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$root/bin/$a" ] || [ -e "$root/usr/bin/$a" ] || [ -e "$root/sbin/$a" ] || [ -e "$root/usr/sbin/$a" ] || ln -s busybox "$root/bin/$a"
	done
}

# pause
if [ ! -s "$out/pause.tar" ]; then
	r=$tmp/pause
	mkdir -p "$r"
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$r/pause" "$here/tools/pause.go"
	image registry.k8s.io/pause:3.10.2 "$out/pause.tar" "$r" '["/pause"]' 'null'
fi

# busybox
if [ ! -s "$out/busybox.tar" ]; then
	r=$tmp/busybox
	mkdir -p "$r"
	base_etc "$r"
	busybox_applets "$r"
	image registry.k8s.io/e2e-test-images/busybox:1.37.0-2,registry.k8s.io/e2e-test-images/busybox:1.36.1-1 "$out/busybox.tar" "$r" 'null' '["sh"]'
fi

# agnhost: what its Dockerfile installs that the network tests use, from
# this host (Debian) instead of Alpine. /bin/sh is bash: busybox sh would
# run busybox's own nc, which lacks -u and -v.
agnhost_src=$(cd "$K8S_CACHE/src/k8s" 2>/dev/null && go list -m -f '{{.Dir}}' k8s.io/kubernetes 2>/dev/null || true)
if [ ! -s "$out/agnhost.tar" ]; then
	r=$tmp/agnhost
	if [ ! -d "$r" ]; then
		mkdir -p "$r/uploads"
		base_etc "$r"
		printf 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' >>"$r/etc/passwd"
		printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$r/etc/group"
		install -m 0755 "$bin/agnhost" "$r/agnhost"
		ln -s agnhost "$r/agnhost-2"
		install -m 0755 "$bin/coredns" "$r/coredns"
		if [ -n "$agnhost_src" ]; then
			cp "$agnhost_src/test/images/agnhost/porter/localhost.crt" "$agnhost_src/test/images/agnhost/porter/localhost.key" "$r/"
		fi
		install -D -m 0755 /bin/bash-static "$r/bin/bash"
		ln -s bash "$r/bin/sh"
		for b in /usr/bin/curl /usr/bin/nc.openbsd /usr/bin/dig /usr/bin/nslookup /usr/bin/getent /usr/bin/ss /usr/sbin/ip /usr/bin/socat /usr/bin/iperf3; do
			if [ -x "$b" ]; then copy_bin "$r" "$b"; fi
		done
		ln -s nc.openbsd "$r/usr/bin/nc"
		# CA certificates for curl
		[ -d /etc/ssl/certs ] && mkdir -p "$r/etc/ssl" && cp -rL /etc/ssl/certs "$r/etc/ssl/certs" 2>/dev/null || true
		busybox_applets "$r"
	fi
	# glibc-dns-testing (Debian, dnsutils, /coredns) is the same content:
	# the DNS tests run dig and getent in it.
	image registry.k8s.io/e2e-test-images/agnhost:2.66.1,registry.k8s.io/e2e-test-images/agnhost:2.55,registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1 "$out/agnhost.tar" "$r" '["/agnhost"]' '["pause"]'
fi

# coredns
if [ ! -s "$out/coredns.tar" ]; then
	r=$tmp/coredns
	mkdir -p "$r"
	base_etc "$r"
	install -m 0755 "$bin/coredns" "$r/coredns"
	image ebpfnet.test/coredns:v1.15.0 "$out/coredns.tar" "$r" '["/coredns"]' 'null'
fi
