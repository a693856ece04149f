package integration

import (
	"strings"
	"testing"
)

// Issue 23 (the CNI args kubelet sends): an ADD with K8S_POD_NAMESPACE and
// K8S_POD_NAME shows the pod as namespace/name where ebpfnet shows names
// (ls, inspect's container_name), as kubectl names it; the pod is also a
// target. An ADD without them (containerd, Podman) shows the endpoint's
// own name as before.
func TestCNIShowsPodsByNamespaceAndName(t *testing.T) {
	h := newCNIHost(t)
	list := h.conflist("1.1.0", nil)
	pod, plain := h.AddContainer("pod"), h.AddContainer("plain")
	rt := h.rt("c0ffee0001", pod, "eth0", nil)
	rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "web-0"},
		{"K8S_POD_INFRA_CONTAINER_ID", "c0ffee0001"}, {"K8S_POD_UID", "0d7c4cbb-5a50-4a38-9a2f-1c2d0e6a7b11"}}
	h.mustAdd(list, rt)
	h.mustAdd(list, h.rt("c0ffee0002", plain, "eth0", nil))

	names := h.MustEbpfnet("ls", "--format", "{{.DisplayName}}")
	if !strings.Contains(names, "shop/web-0\n") {
		t.Errorf("ls does not show the pod as shop/web-0:\n%s", names)
	}
	if out := h.MustEbpfnet("inspect", "--format", "{{.ContainerName}} {{.IP}}", "shop/web-0"); !strings.HasPrefix(out, "shop/web-0 10.77.0.") {
		t.Errorf("inspect shop/web-0: %q", out)
	}
	for _, ep := range h.ls() {
		if ep["container_id"] == "c0ffee0002" && ep["container_name"] != nil {
			t.Errorf("an ADD without pod args got a container name: %v", ep)
		}
	}
	h.mustDel(list, rt)
}
