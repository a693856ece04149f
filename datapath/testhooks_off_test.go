//go:build !ebpfnet_testhooks

package datapath

import "testing"

// A build without the ebpfnet_testhooks tag, as every production build is,
// has no test hooks: EBPFNET_TEST_FAULT, _KILL and _PAUSE are not read.
func TestProductionBuildHasNoTestHooks(t *testing.T) {
	t.Setenv("EBPFNET_TEST_FAULT", "after-x")
	if testHooks != nil {
		t.Fatalf("test hooks %T in a build without -tags ebpfnet_testhooks", testHooks)
	}
	if err := runSteps(nil, at("after-x")); err != nil {
		t.Fatalf("test point in a production build: %v", err)
	}
}
