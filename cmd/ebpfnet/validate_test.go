package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// execute runs the CLI in-process on a state dir and pin root of its own,
// neither of which a refused command may touch (the pin root is not even a
// bpffs, so nothing can be loaded).
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--state-dir", t.TempDir(), "--pin-root", t.TempDir()}, args...))
	err := root.Execute()
	return out.String(), err
}

// Issue 9 item 12: a timeout of -5s expired every live UDP flow.
func TestCTTimeoutsMustBePositive(t *testing.T) {
	for _, cmd := range [][]string{{"ct", "gc"}, {"daemon"}} {
		for _, flag := range []string{"--ct-timeout-udp=-5s", "--ct-timeout-tcp-syn=0s", "--ct-timeout-tcp-established=-1h", "--ct-timeout-tcp-closing=-1ns", "--ct-timeout-icmp=0"} {
			_, err := execute(t, append(cmd, flag)...)
			if err == nil || !strings.Contains(err.Error(), "must be positive") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v %s: err = %v, want a one-line refusal", cmd, flag, err)
			}
		}
	}
	to := datapath.DefaultTimeouts
	fs := pflag.NewFlagSet("gc", pflag.ContinueOnError)
	timeoutFlags(fs, &to)
	if err := fs.Parse([]string{"--ct-timeout-udp=5s"}); err != nil || to.UDP != 5e9 || to.ICMP != datapath.DefaultTimeouts.ICMP {
		t.Errorf("--ct-timeout-udp=5s: %v, timeouts %+v", err, to)
	}
}

// Issue 9 item 12: --ct-map-size on a command that never creates the
// datapath was silently ignored.
func TestCTMapSizeRefusedWhereIgnored(t *testing.T) {
	for _, args := range [][]string{{"--ct-map-size", "1024", "ls"}, {"network", "ls", "--ct-map-size=1024"}, {"--ct-map-size", "1024", "ct", "ls"}} {
		_, err := execute(t, args...)
		if err == nil || !strings.Contains(err.Error(), "--ct-map-size sizes the conntrack table when the datapath is created") {
			t.Errorf("%v: err = %v, want a refusal", args, err)
		}
	}
	if out, err := execute(t, "ls"); err != nil {
		t.Errorf("ls: %v %s", err, out)
	}
	for _, path := range [][]string{{"network", "create"}, {"attach"}, {"run"}, {"daemon"}} {
		root := newRootCmd()
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags([]string{"--ct-map-size=1024"}); err != nil {
			t.Fatal(err)
		}
		if err := checkCTMapSizeFlag(cmd); err != nil {
			t.Errorf("%v --ct-map-size: %v", path, err)
		}
	}
}
