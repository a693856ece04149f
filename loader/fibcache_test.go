package loader_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A tracked flow's packets leaving through the uplink reuse the FIB's
// answer for a second (fib_cache): a changed neighbour is used once the
// cached answer is older than that, and a packet bigger than the cached
// MTU still gets the FIB's own verdict (fragmentation needed).
func TestFIBCacheKeepsAnAnswerForASecond(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	// The cache is per CPU: keep this thread (newNATEnv locked the
	// goroutine to it) on one.
	var was, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		t.Fatal(err)
	}
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	// Before newNATEnv's cleanup hands the thread back to the runtime.
	t.Cleanup(func() { unix.SchedSetaffinity(0, &was) })
	out := func(flags string, payload []byte) []byte {
		return pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443,
			tcpFlags: flags, flags: layers.IPv4DontFragment, payload: payload}.build(t)
	}
	send := func(what string, frame []byte) []byte {
		t.Helper()
		ret, got := e.fromContainer(t, e.ifA, frame)
		if ret != tcActRedirect {
			t.Fatalf("%s: verdict %d, want TC_ACT_REDIRECT", what, ret)
		}
		verifyChecksums(t, got)
		return got
	}
	dstMAC := func(frame []byte) net.HardwareAddr { return net.HardwareAddr(frame[0:6]) }

	send("SYN", out("S", nil))
	if got := dstMAC(send("ACK", out("A", nil))); !bytes.Equal(got, macRt) {
		t.Fatalf("ACK to %v, want R's MAC %v", got, macRt)
	}
	// R's MAC changes: the answer kept says the old one...
	moved := net.HardwareAddr{0x02, 0, 0, 0, 0x0e, 0x99}
	up, err := netlink.LinkByIndex(e.ifUp)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: up.Attrs().Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_PERMANENT, IP: rtR.AsSlice(), HardwareAddr: moved}); err != nil {
		t.Fatal(err)
	}
	if got := dstMAC(send("ACK right after the change", out("A", nil))); !bytes.Equal(got, macRt) {
		t.Errorf("ACK right after R's MAC changed went to %v: the FIB's answer was not reused (want %v)", got, macRt)
	}
	// ...a packet it does not fit (no GSO, beyond the uplink's MTU) is
	// asked of the FIB, which refuses it: with DF, the stack answers...
	big := out("A", make([]byte, 1600))
	if ret, _ := e.fromContainer(t, e.ifA, big); ret != tcActOK {
		t.Errorf("a 1654-byte frame with DF: verdict %d, want TC_ACT_OK (the stack sends fragmentation needed)", ret)
	}
	// ...and after a second the FIB is asked again.
	time.Sleep(1100 * time.Millisecond)
	if got := dstMAC(send("ACK a second later", out("A", nil))); !bytes.Equal(got, moved) {
		t.Errorf("ACK a second after R's MAC changed went to %v, want %v", got, moved)
	}
}
