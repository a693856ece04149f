package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

func TestAttachCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	runCases(t, tp, []cliCase{
		{name: "bad mode", args: []string{"attach", "--net=a/b", c1}, code: 1, stderr: `invalid argument "a/b" for "--network" flag: invalid --network "a/b"`},
		{name: "host mode", args: []string{"attach", "--network=host", c1}, code: 1, stderr: `use .ebpfnet run. for host`},
		{name: "conflicting modes", args: []string{"attach", "--net=none", "--network=n1", c1}, code: 1, stderr: `conflicting options: --network=none and --network=n1`},
		{name: "bad port", args: []string{"attach", "--network", "n1", "-p", "80/sctp", c1}, code: 1, stderr: `invalid port spec "80/sctp": protocol must be tcp or udp`},
		{name: "ports need bridge", args: []string{"attach", "--net=none", "-p", "80", c1}, code: 1, stderr: `published ports need bridge mode`},
		{name: "missing target", args: []string{"attach", "--network", "n1", tp.Prefix + "-nope"}, code: 1, stderr: `nope`},
		{name: "unknown network", args: []string{"attach", "--network", "nope", c1}, code: 1, stderr: `network nope not found`},
		{name: "ip outside subnet", args: []string{"attach", "--network", "n1", "--ip", "10.0.0.5", c1}, code: 1, stderr: `10.0.0.5`},
		{name: "bridge", args: []string{"attach", "--net=bridge", "--network", "n1", "--ip", "172.30.0.10", "-p", "8080:80", "-p", "5353:53/udp", c1}, stdout: `^` + c1 + ` n1 172\.30\.0\.10\n$`},
		{name: "twice", args: []string{"attach", "--network", "n1", c1}, code: 1, stderr: `already`},
		{name: "port taken", args: []string{"attach", "--network", "n1", "-p", "8080:81", c2}, code: 1, stderr: `port 8080/tcp on 0\.0\.0\.0 is already published by endpoint ` + c1},
		{name: "none", args: []string{"attach", "--network", "none", c2}, stdout: `^` + c2 + ` none\n$`},
		{name: "no target", args: []string{"attach"}, code: 1, stderr: `accepts 1 arg`},
	})
}

// Only listening or bound sockets hold a port: a finished client's TIME-WAIT
// socket on it must not make publishing fail.
func TestAttachPublishIgnoresTimeWait(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	var port int
	var listener net.Listener
	err := netnsutil.Do(tp.Namespace(tp.Host), func() error {
		srv, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer srv.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := srv.Accept()
			accepted <- c
		}()
		// The client closes first, so its end (its port) is left in TIME-WAIT.
		cl, err := net.Dial("tcp4", srv.Addr().String())
		if err != nil {
			return err
		}
		port = cl.LocalAddr().(*net.TCPAddr).Port
		cl.Close()
		if c := <-accepted; c != nil {
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
		// A listener holds its port.
		listener, err = net.Listen("tcp4", "0.0.0.0:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	held := listener.Addr().(*net.TCPAddr).Port
	if out := tp.Exec(tp.Host, "ss", "-Htn", "state", "time-wait", "sport", "= :"+strconv.Itoa(port)); !strings.Contains(out, strconv.Itoa(port)) {
		t.Fatalf("no TIME-WAIT socket on port %d to test with:\n%s", port, out)
	}
	runCases(t, tp, []cliCase{
		{name: "TIME-WAIT does not hold a port", args: []string{"attach", "--network", "n1", "-p", fmt.Sprintf("%d:80", port), c1}, stdout: c1},
		{name: "a listener does", args: []string{"attach", "--network", "n1", "-p", fmt.Sprintf("%d:80", held), c2}, code: 1, stderr: fmt.Sprintf(`port %d/tcp on 0\.0\.0\.0 is in use by a process of the host`, held)},
		{name: "host address must be the host's", args: []string{"attach", "--network", "n1", "-p", "198.18.9.9:8080:80", c2}, code: 1, stderr: `host address 198\.18\.9\.9 is not an address of this host`},
	})
}
