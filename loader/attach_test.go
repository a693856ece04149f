package loader

import (
	"testing"

	"github.com/cilium/ebpf"
)

// The socket hooks' attach types come from their SEC() names in sock.c:
// these are the hooks host-local access to published ports needs.
func TestSockProgramsAttachTypes(t *testing.T) {
	d, err := Load(Options{CTMapSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := map[string]ebpf.AttachType{
		"sock_connect4":     ebpf.AttachCGroupInet4Connect,
		"sock_sendmsg4":     ebpf.AttachCGroupUDP4Sendmsg,
		"sock_recvmsg4":     ebpf.AttachCGroupUDP4Recvmsg,
		"sock_getpeername4": ebpf.AttachCgroupInet4GetPeername,
		"sock_bind4":        ebpf.AttachCGroupInet4Bind,
	}
	if len(SockPrograms) != len(want) {
		t.Errorf("SockPrograms = %v, want the %d hooks of %v", SockPrograms, len(want), want)
	}
	for _, name := range SockPrograms {
		if got, ok := d.attach[name]; !ok || got != want[name] {
			t.Errorf("%s attaches as %v, want %v", name, got, want[name])
		}
	}
	if got := d.attach[ProgFromContainer]; got != ebpf.AttachNone {
		t.Errorf("%s attach type %v: TC programs get theirs at attach time", ProgFromContainer, got)
	}
}
