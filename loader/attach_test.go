package loader

import (
	"fmt"
	"os"
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
		"sock_connect6":     ebpf.AttachCGroupInet6Connect,
		"sock_sendmsg6":     ebpf.AttachCGroupUDP6Sendmsg,
		"sock_recvmsg6":     ebpf.AttachCGroupUDP6Recvmsg,
		"sock_getpeername6": ebpf.AttachCgroupInet6GetPeername,
		"sock_bind6":        ebpf.AttachCGroupInet6Bind,
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

// A command of the same build opens the pinned datapath without parsing the
// embedded objects, and still finds the socket hooks' attach types (from
// the one object that has them) when it attaches them.
func TestPinnedFastPathAttachTypes(t *testing.T) {
	root, err := PreparePinRoot(DefaultPinRoot(fmt.Sprintf("unit-fast-%d", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemovePins(root) })
	first, err := Load(Options{PinRoot: root, CTMapSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := Load(Options{PinRoot: root, CTMapSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if len(second.attach) != 0 {
		t.Fatalf("the second Load parsed the objects (attach types %v): the pinned fast path was not taken", second.attach)
	}
	if second.Maps.Conntrack == nil || second.Maps.Ports == nil || second.Program(ProgFromContainer) == nil {
		t.Fatal("the fast path left maps or programs unset")
	}
	for _, name := range SockPrograms {
		got, err := second.attachType(name)
		if err != nil || got != first.attach[name] {
			t.Errorf("%s: attach type %v (%v), want %v", name, got, err, first.attach[name])
		}
	}
	// Another conntrack size than pinned takes the long way, which refuses it.
	if third, err := Load(Options{PinRoot: root, CTMapSize: 2048}); err == nil {
		third.Close()
		t.Fatal("a conntrack size other than the pinned one was accepted")
	}
}
