package plumbing

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inSandbox runs fn on a thread of its own in a new, unnamed network
// namespace. The thread is never unlocked, so it ends with fn and the
// namespace with it: nothing is left behind.
func inSandbox(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fn()
	}()
	<-done
}

func TestBridgeVethAndRoutes(t *testing.T) {
	inSandbox(t, func() {
		gw := netip.MustParsePrefix("172.30.0.1/24")
		mac, _ := net.ParseMAC("02:42:ac:1e:00:01")
		del, err := AddBridge("br0", 1500, mac)
		if err != nil {
			t.Error(err)
			return
		}
		br, err := AddressBridge("br0", gw)
		if err != nil {
			t.Error(err)
			return
		}
		if br.Attrs().HardwareAddr.String() != mac.String() {
			t.Errorf("bridge MAC %s, want %s", br.Attrs().HardwareAddr, mac)
		}
		if err := CheckRoutedSubnet(netip.MustParsePrefix("172.30.0.0/16")); err == nil || !strings.Contains(err.Error(), "dev br0") {
			t.Errorf("a subnet over the bridge's route: %v", err)
		}
		if err := CheckRoutedSubnet(netip.MustParsePrefix("172.31.0.0/24")); err != nil {
			t.Errorf("a free subnet: %v", err)
		}
		if ps, err := RoutedPrefixes(); err != nil || !slices.Contains(ps, gw.Masked()) {
			t.Errorf("RoutedPrefixes = %v, %v", ps, err)
		}

		var idx int
		var undo []func()
		peerMAC, _ := net.ParseMAC("02:42:ac:1e:00:02")
		v := Veth{Host: "vh0", Peer: "vc0", PeerMAC: peerMAC, MTU: 1400, BridgeIndex: br.Attrs().Index, Hairpin: true}
		if err := AddPreparedVeth(v, &idx, func(f func()) { undo = append(undo, f) }); err != nil {
			t.Error(err)
			return
		}
		if len(undo) != 1 || idx == 0 {
			t.Errorf("prepared veth: ifindex %d, %d undos", idx, len(undo))
		}
		peer, err := netlink.LinkByName("vc0")
		if err != nil || peer.Attrs().MTU != 1400 || peer.Attrs().HardwareAddr.String() != peerMAC.String() {
			t.Errorf("peer: %v %v", peer, err)
		}
		if err := EnableForwarding("vh0"); err != nil {
			t.Error(err)
		}
		if l, err := netlink.LinkByName("vh0"); err != nil {
			t.Error(err)
		} else if pi, err := netlink.LinkGetProtinfo(l); err != nil || !pi.Hairpin {
			t.Errorf("prepared veth with Hairpin: port hairpin mode off (%v)", err)
		}
		if err := Enslave("vh0", br, true); err != nil {
			t.Error(err)
		}
		if err := Enslave("gone0", br, false); err != nil {
			t.Errorf("enslaving a vanished interface: %v", err)
		}

		h, err := netlink.NewHandle()
		if err != nil {
			t.Error(err)
			return
		}
		defer h.Close()
		// A namespace's interface, addressed and routed as a container's.
		if err := h.LinkSetNoMaster(peer); err != nil {
			t.Error(err)
		}
		ifindex, def, def6, err := ConfigureContainerEnd(h, "vc0", netip.MustParsePrefix("172.30.0.2/24"), gw.Addr(), ContainerIPv6{}, "the sandbox")
		if err != nil || ifindex != peer.Attrs().Index || !def || def6 {
			t.Errorf("ConfigureContainerEnd = %d, %v, %v, %v", ifindex, def, def6, err)
		}
		if !HasDefaultRoute(h) || !DefaultRouteVia(h, ifindex, gw.Addr()) {
			t.Error("no default route via the gateway")
		}
		if added, err := AddDefaultRouteIfNone(h, "vc0", gw.Addr()); added || err != nil {
			t.Errorf("a second default route: %v, %v", added, err)
		}
		if l := DefaultRouteLink(); l == nil || l.Attrs().Name != "vc0" {
			t.Errorf("DefaultRouteLink = %v", l)
		}

		if err := DeleteVeth("vh0", idx+1000); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName("vh0"); err != nil {
			t.Error("DeleteVeth removed a veth whose ifindex differs")
		}
		if err := DeleteVeth("vh0", idx); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName("vc0"); err == nil {
			t.Error("the peer outlived its veth")
		}
		del()
		if err := DeleteLink("br0"); err != nil {
			t.Errorf("deleting a link that is gone: %v", err)
		}
	})
}

func TestEnsureVXLAN(t *testing.T) {
	inSandbox(t, func() {
		idx, del, err := EnsureVXLAN("vx0", 1450, 4789)
		if err != nil {
			t.Logf("no VXLAN here: %v", err) // Skip belongs to the test's goroutine
			return
		}
		if del == nil || idx == 0 {
			t.Errorf("made: ifindex %d, del %v", idx, del != nil)
		}
		again, del2, err := EnsureVXLAN("vx0", 1450, 4789)
		if err != nil || again != idx || del2 != nil {
			t.Errorf("again: %d %v %v", again, del2 != nil, err)
		}
		if _, err := AddBridge("notvx", 1500, nil); err != nil {
			t.Error(err)
		}
		if _, _, err := EnsureVXLAN("notvx", 1450, 4789); err == nil {
			t.Error("a bridge taken for the VXLAN device")
		}
		del()
		if err := DeleteLink("notvx"); err != nil {
			t.Error(err)
		}
	})
}
