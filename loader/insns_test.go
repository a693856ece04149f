package loader_test

import (
	"testing"

	"github.com/ebpfnet/ebpfnet/loader"
)

// TestInstructionCounts logs each program's size and the instructions the
// verifier walked (go test -v -run InstructionCounts ./loader/): the numbers
// a change to bpf/ should report.
func TestInstructionCounts(t *testing.T) {
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer dp.Close()
	names := append([]string{loader.ProgFromContainer, loader.ProgFromUplink, loader.ProgFromOverlay, loader.ProgFromHost}, loader.SockPrograms...)
	for _, name := range names {
		p := dp.Program(name)
		if p == nil {
			t.Fatalf("%s not loaded", name)
		}
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		insns, _ := info.Instructions()
		verified, _ := info.VerifiedInstructions()
		t.Logf("%-20s %5d instructions, %6d verified", name, len(insns), verified)
	}
}
