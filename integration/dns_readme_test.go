package integration

import (
	"os"
	"os/exec"
	"testing"
)

// TestREADMEDNS runs docs/dns.md's name-resolution block (it starts a daemon) in
// a sandbox host whose resolv.conf names the test's own DNS server.
func TestREADMEDNS(t *testing.T) {
	tp := newTopology(t)
	dnsSandbox(t, tp)
	// The block names a namespace as a reader would (tools).
	t.Cleanup(func() {
		exec.Command("ip", "netns", "delete", "tools").Run()
		os.RemoveAll("/etc/netns/tools")
	})
	runREADMEBlock(t, tp, "<!-- readme-test dns -->")
}
