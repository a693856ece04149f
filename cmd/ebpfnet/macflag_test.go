package main

import (
	"strings"
	"testing"
)

// TestMACAddressFlag (issue 21 item 13): --mac-address on attach and run
// gives the container that MAC; a MAC that is not a unicast Ethernet
// address, or a mode without an interface, is refused before anything is
// made: no default network, no interface, no namespace.
func TestMACAddressFlag(t *testing.T) {
	tp := newHost(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	runCases(t, tp, []cliCase{
		{name: "multicast", args: []string{"attach", "--mac-address", "01:00:5e:00:00:01", c1}, code: 1, stderr: `--mac-address: invalid MAC 01:00:5e:00:00:01: a multicast address cannot be an interface's`},
		{name: "broadcast", args: []string{"attach", "--mac-address", "ff:ff:ff:ff:ff:ff", c1}, code: 1, stderr: `multicast`},
		{name: "zeroes", args: []string{"attach", "--mac-address", "00:00:00:00:00:00", c1}, code: 1, stderr: `all zeroes`},
		{name: "malformed", args: []string{"attach", "--mac-address", "02:42:ac", c1}, code: 1, stderr: `invalid MAC "02:42:ac"`},
		{name: "too long", args: []string{"attach", "--mac-address", "02:42:ac:1e:00:02:00:01", c1}, code: 1, stderr: `invalid MAC`},
		{name: "none mode", args: []string{"attach", "--network", "none", "--mac-address", "02:42:ac:1e:00:99", c1}, code: 1, stderr: `conflicting options: --mac-address and --network=none`},
		{name: "run host mode", args: []string{"run", "--network", "host", "--mac-address", "02:42:ac:1e:00:99", "--", "true"}, code: 125, stderr: `conflicting options`},
		{name: "run bad", args: []string{"run", "--rm", "--name", "macbad", "--mac-address", "01:02:03:04:05:06", "--", "true"}, code: 125, stderr: `multicast`},
		{name: "nothing made", args: []string{"network", "ls", "-q"}, stdout: `^host\nnone\n$`},
		{name: "attach", args: []string{"attach", "--mac-address", "02:42:AC:1E:00:99", c1}, stdout: `^` + c1 + ` bridge 172\.17\.0\.2\n$`},
		{name: "run", args: []string{"run", "--rm", "--mac-address", "0a:00:00:00:00:07", "--", "ip", "-o", "link", "show", "eth0"}, stdout: `link/ether 0a:00:00:00:00:07 `},
		{name: "inspect", args: []string{"inspect", "--format", "{{.MAC}}", c1}, stdout: `^02:42:ac:1e:00:99\n$`},
		{name: "run -d passes it on", args: []string{"run", "-d", "--name", "macd", "--mac-address", "0a:00:00:00:00:08", "--", "sleep", "30"}, stdout: `^macd\n$`},
		{name: "run -d's endpoint", args: []string{"inspect", "--format", "{{.MAC}}", "macd"}, stdout: `^0a:00:00:00:00:08\n$`},
		{name: "rm it", args: []string{"rm", "-f", "macd"}, stdout: `^macd\n$`},
	})
	if out := tp.Exec(c1, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "link/ether 02:42:ac:1e:00:99 ") {
		t.Errorf("c1's eth0: %s", out)
	}
	if out := tp.Exec(tp.Host, "ip", "netns", "list"); strings.Contains(out, "macbad") {
		t.Errorf("a refused run left its namespace: %s", out)
	}
	// Traffic flows with the chosen MAC (anti-spoofing knows it).
	tp.MustEbpfnet("attach", c2)
	tp.Exec(c1, "ping", "-c", "1", "-W", "2", "172.17.0.3")
}
