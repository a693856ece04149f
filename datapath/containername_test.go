package datapath

import "testing"

// Docker's container names, and a Kubernetes pod's namespace/name; nothing
// that could break ls's columns or pass for a path.
func TestValidContainerName(t *testing.T) {
	for name, ok := range map[string]bool{
		"web": true, "web_1.a-b": true, "shop/web-0": true, "kube-system/coredns-5d78c9869d-x2v4n": true,
		"": false, "-web": false, "web 1": false, "a/b/c": false, "/web": false, "shop/": false, "shop/-x": false,
		"web\n": false, "../etc": false,
	} {
		if err := validContainerName(name); (err == nil) != ok {
			t.Errorf("validContainerName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
