package datapath

import (
	"testing"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

// The datapath keeps the first interface's binding of a runtime-held port;
// another interface of the same container stands by for it.
func TestActivePortsStandsBySecondInterface(t *testing.T) {
	held := ports.Mapping{Proto: ports.TCP, HostPort: 8080, ContainerPort: 80, RuntimeHeld: true}
	eps := []Endpoint{{Name: "c1-eth0", ContainerID: "c1", Ports: []ports.Mapping{held}}}
	standby := Endpoint{Name: "c1-eth1", ContainerID: "c1", Ports: []ports.Mapping{held, {Proto: ports.UDP, HostPort: 53, ContainerPort: 53, RuntimeHeld: true}}}
	if got := activePorts(standby, append(eps, standby)); len(got) != 1 || got[0].Proto != ports.UDP {
		t.Errorf("active ports of the second interface: %v, want only 53/udp", got)
	}
}
