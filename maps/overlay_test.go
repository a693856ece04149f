package maps

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

func remote(ip string, net uint32, host string) RemoteEndpoint {
	a := netip.MustParseAddr(ip).As4()
	return RemoteEndpoint{IP: netip.MustParseAddr(ip), MAC: []byte{0x02, 0x42, a[0], a[1], a[2], a[3]}, NetID: net, Host: netip.MustParseAddr(host)}
}

func remoteIPs(t *testing.T, v *Views) string {
	t.Helper()
	rs, err := v.RemoteEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.IP.String()+"@"+r.Host.String())
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// A sync makes the synced networks' remote endpoints exactly the wanted ones
// (new, moved to another host, gone), leaves other networks' alone, and
// refuses entries it was not asked to sync; the daemon's resyncs replay the
// same view, which changes nothing.
func TestSyncRemoteEndpoints(t *testing.T) {
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer dp.Close()
	v := New(&dp.Maps)
	h2, h3 := "198.18.0.12", "198.18.0.13"

	w, d, err := v.SyncRemoteEndpoints([]uint32{1, 2}, []RemoteEndpoint{remote("10.1.0.2", 1, h2), remote("10.1.0.3", 1, h3), remote("10.2.0.2", 2, h2)})
	if err != nil || w != 3 || d != 0 {
		t.Fatalf("first sync: written %d deleted %d err %v", w, d, err)
	}
	// Network 1 again: .3 moved to host 2, .2 gone, .4 new; network 2 untouched.
	w, d, err = v.SyncRemoteEndpoints([]uint32{1}, []RemoteEndpoint{remote("10.1.0.3", 1, h2), remote("10.1.0.4", 1, h3)})
	if err != nil || w != 2 || d != 1 {
		t.Fatalf("second sync: written %d deleted %d err %v", w, d, err)
	}
	if got, want := remoteIPs(t, v), "10.1.0.3@"+h2+" 10.1.0.4@"+h3+" 10.2.0.2@"+h2; got != want {
		t.Fatalf("remote endpoints %q, want %q", got, want)
	}
	// The same view again writes nothing.
	if w, d, err = v.SyncRemoteEndpoints([]uint32{1}, []RemoteEndpoint{remote("10.1.0.3", 1, h2), remote("10.1.0.4", 1, h3)}); err != nil || w+d != 0 {
		t.Fatalf("replay: written %d deleted %d err %v", w, d, err)
	}
	// Refused before anything is written: a network not being synced, a
	// bad MAC.
	for _, bad := range [][]RemoteEndpoint{
		{remote("10.1.0.5", 3, h2)},
		{{IP: netip.MustParseAddr("10.1.0.6"), MAC: net.HardwareAddr{1, 2, 3}, NetID: 1, Host: netip.MustParseAddr(h2)}},
	} {
		if _, _, err := v.SyncRemoteEndpoints([]uint32{1}, bad); err == nil {
			t.Errorf("sync of %+v accepted", bad)
		}
	}
	// An address network 2 holds is not taken over (the rest is synced).
	if _, _, err := v.SyncRemoteEndpoints([]uint32{1}, []RemoteEndpoint{remote("10.1.0.3", 1, h2), remote("10.1.0.4", 1, h3), remote("10.2.0.2", 1, h3)}); err == nil {
		t.Errorf("network 1 took network 2's remote endpoint")
	}
	if got := remoteIPs(t, v); !strings.Contains(got, "10.2.0.2@"+h2) {
		t.Errorf("network 2's endpoint changed: %q", got)
	}
	// Nothing wanted: the network's entries go, network 2's stay.
	if _, d, err = v.SyncRemoteEndpoints([]uint32{1}, nil); err != nil || d != 2 {
		t.Fatalf("emptying network 1: deleted %d err %v", d, err)
	}
	if got := remoteIPs(t, v); got != "10.2.0.2@"+h2 {
		t.Fatalf("after emptying network 1: %q", got)
	}
}

// Peer hosts come and go with their counters; a host that stays keeps its.
func TestSyncOverlayHosts(t *testing.T) {
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer dp.Close()
	v := New(&dp.Maps)
	a, b, c := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")
	if err := v.SyncOverlayHosts([]netip.Addr{a, b}); err != nil {
		t.Fatal(err)
	}
	// Traffic counted for a, as the programs would.
	vals := make([]loader.OverlayCounters, ebpf.MustPossibleCPU())
	vals[0].TxPackets, vals[len(vals)-1].RxBytes = 3, 100
	if err := dp.Maps.OverlayHosts.Put(BE32(a), vals); err != nil {
		t.Fatal(err)
	}
	if err := v.SyncOverlayHosts([]netip.Addr{a, c}); err != nil {
		t.Fatal(err)
	}
	got, err := v.OverlayHosts()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y OverlayHostStats) int { return x.Host.Compare(y.Host) })
	if len(got) != 2 || got[0].Host != a || got[0].TxPackets != 3 || got[0].RxBytes != 100 || got[1].Host != c || got[1].TxPackets != 0 {
		t.Fatalf("peers %+v, want %v with its counters and %v new", got, a, c)
	}
	if err := v.SyncOverlayHosts([]netip.Addr{netip.MustParseAddr("::1")}); err == nil {
		t.Errorf("IPv6 peer accepted")
	}
}

// IPv6 remote endpoints (dual-stack overlay networks) go to
// remote_endpoints6 and are synced as IPv4's are; a link-local or IPv6 host
// address is refused.
func TestSyncRemoteEndpoints6(t *testing.T) {
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer dp.Close()
	v := New(&dp.Maps)
	h2 := "198.18.0.12"
	r6 := func(ip string, net uint32) RemoteEndpoint {
		return RemoteEndpoint{IP: netip.MustParseAddr(ip), MAC: net2mac(), NetID: net, Host: netip.MustParseAddr(h2)}
	}
	w, d, err := v.SyncRemoteEndpoints([]uint32{1}, []RemoteEndpoint{remote("10.1.0.2", 1, h2), r6("fd00:1::2", 1), r6("fd00:1::3", 1)})
	if err != nil || w != 3 || d != 0 {
		t.Fatalf("first sync: written %d deleted %d err %v", w, d, err)
	}
	if got, want := remoteIPs(t, v), "10.1.0.2@"+h2+" fd00:1::2@"+h2+" fd00:1::3@"+h2; got != want {
		t.Fatalf("remote endpoints %q, want %q", got, want)
	}
	if n, err := dp.Maps.RemoteEndpoints6.Info(); err != nil || n.MaxEntries != 65536 {
		t.Fatalf("remote_endpoints6: %+v %v", n, err)
	}
	w, d, err = v.SyncRemoteEndpoints([]uint32{1}, []RemoteEndpoint{remote("10.1.0.2", 1, h2), r6("fd00:1::3", 1)})
	if err != nil || w != 0 || d != 1 {
		t.Fatalf("second sync: written %d deleted %d err %v", w, d, err)
	}
	for _, bad := range []RemoteEndpoint{r6("fe80::1", 1), r6("ff02::1", 1), {IP: netip.MustParseAddr("fd00:1::4"), MAC: net2mac(), NetID: 1, Host: netip.MustParseAddr("fd00::12")}} {
		if _, _, err := v.SyncRemoteEndpoints([]uint32{1}, []RemoteEndpoint{bad}); err == nil {
			t.Errorf("sync of %v on %v accepted", bad.IP, bad.Host)
		}
	}
	if got, want := remoteIPs(t, v), "10.1.0.2@"+h2+" fd00:1::3@"+h2; got != want {
		t.Fatalf("after refused syncs: %q, want %q", got, want)
	}
}

func net2mac() net.HardwareAddr { return net.HardwareAddr{0x02, 0x42, 0x0a, 0x01, 0x00, 0x03} }
