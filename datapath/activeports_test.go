package datapath

import "testing"

// The datapath keeps the first interface's binding of a runtime-held port;
// another interface of the same container stands by for it.
func TestActivePortsStandsBySecondInterface(t *testing.T) {
	held := PortMapping{Proto: TCP, HostPort: 8080, ContainerPort: 80, RuntimeHeld: true}
	eps := []Endpoint{{Name: "c1-eth0", ContainerID: "c1", Ports: []PortMapping{held}}}
	standby := Endpoint{Name: "c1-eth1", ContainerID: "c1", Ports: []PortMapping{held, {Proto: UDP, HostPort: 53, ContainerPort: 53, RuntimeHeld: true}}}
	if got := activePorts(standby, append(eps, standby)); len(got) != 1 || got[0].Proto != UDP {
		t.Errorf("active ports of the second interface: %v, want only 53/udp", got)
	}
}
