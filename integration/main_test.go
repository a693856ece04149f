// Package integration runs ebpfnet on sandbox hosts (network namespaces) and
// sends real TCP, UDP and ICMP through them. Needs root.
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

var (
	ebpfnetBin string
	// workDir holds what the tests build (the ebpfnet binary, helpers);
	// TestMain removes it.
	workDir string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration tests need root: skipping")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "ebpfnet-it-")
	if err != nil {
		panic(err)
	}
	workDir = dir
	ebpfnetBin, err = testutil.BuildEbpfnet(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newTopology(t *testing.T) *testutil.Topology {
	t.Parallel()
	return testutil.NewTopology(t, ebpfnetBin)
}
