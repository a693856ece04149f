#!/usr/bin/env bash
# Builds the Kubernetes components the harness runs, from the Go module
# proxy, into $K8S_CACHE/bin. A component already there is not rebuilt
# (make k8s-clean, or delete the file, to rebuild it).
#
# Kubernetes' own go.mod replaces its staging modules (k8s.io/api,
# client-go, ...) with ./staging/... paths that only exist in its git tree,
# so k8s.io/kubernetes cannot be built as a dependency as is: a throwaway
# module under $K8S_CACHE/src requires k8s.io/kubernetes and replaces each
# staging module it requires with that module's published v0.<minor>.<patch>.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin

K8S_VERSION=${K8S_VERSION:-v1.37.2}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
K8S_CACHE=${K8S_CACHE:-/var/cache/ebpfnet-k8s/$K8S_VERSION}
bin=$K8S_CACHE/bin
src=$K8S_CACHE/src
mkdir -p "$bin" "$src/k8s" "$src/coredns"

staging_version=v0.${K8S_VERSION#v1.}
major=1
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	vflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	vflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
ldflags="-s -w$vflags"
export GOFLAGS=-mod=mod CGO_ENABLED=0

log() { printf '[k8s-build %(%T)T] %s\n' -1 "$*"; }

# The throwaway module for Kubernetes.
if [ ! -s "$src/k8s/go.mod" ] || ! grep -q "k8s.io/kubernetes $K8S_VERSION" "$src/k8s/go.mod"; then
	log "module k8s.io/kubernetes@$K8S_VERSION"
	moddir=$(cd "$src/k8s" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
	{
		printf 'module ebpfnetk8sbuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
		# every staging module kubernetes' go.mod replaces with a local path
		grep -E '=> \./staging/' "$moddir/go.mod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
	} >"$src/k8s/go.mod"
	cat >"$src/k8s/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "github.com/onsi/ginkgo/v2/ginkgo"
)
GO
	rm -f "$src/k8s/go.sum"
	(cd "$src/k8s" && go mod tidy -e >/dev/null 2>&1 || true)
fi

build() { # name package [go test -c]
	local name=$1 pkg=$2 t0
	if [ -x "$bin/$name" ]; then
		log "$name: cached"
		return
	fi
	t0=$(date +%s)
	log "$name: building $pkg"
	if [ "${3:-}" = test ]; then
		(cd "$src/k8s" && go test -c -trimpath -ldflags="$ldflags" -o "$bin/$name.tmp" "$pkg")
	else
		(cd "$src/k8s" && go build -trimpath -ldflags="$ldflags" -o "$bin/$name.tmp" "$pkg")
	fi
	mv "$bin/$name.tmp" "$bin/$name"
	log "$name: built in $(($(date +%s) - t0)) s"
	echo "$name $(($(date +%s) - t0))" >>"$K8S_CACHE/build-times"
}

# kube-proxy first: it compiles most of what the others share.
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubectl k8s.io/kubernetes/cmd/kubectl
build agnhost k8s.io/kubernetes/test/images/agnhost
build e2e.test k8s.io/kubernetes/test/e2e test
build ginkgo github.com/onsi/ginkgo/v2/ginkgo

# CoreDNS is its own module.
if [ ! -x "$bin/coredns" ]; then
	t0=$(date +%s)
	log "coredns: building github.com/coredns/coredns@$COREDNS_VERSION"
	if [ ! -s "$src/coredns/go.mod" ]; then
		printf 'module ebpfnetcorednsbuild\n\ngo 1.26.0\n' >"$src/coredns/go.mod"
		printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' >"$src/coredns/tools.go"
		(cd "$src/coredns" && go get "github.com/coredns/coredns@$COREDNS_VERSION")
	fi
	(cd "$src/coredns" && go build -trimpath -ldflags="-s -w" -o "$bin/coredns.tmp" github.com/coredns/coredns)
	mv "$bin/coredns.tmp" "$bin/coredns"
	log "coredns: built in $(($(date +%s) - t0)) s"
	echo "coredns $(($(date +%s) - t0))" >>"$K8S_CACHE/build-times"
fi
log "all components in $bin"
