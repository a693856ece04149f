package maps

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ebpfnet/ebpfnet/loader"
)

// The event layout, byte by byte: the IPv4-only event's 48 bytes, then
// the IPv6 part. Records of the IPv4-only layout (programs an older
// ebpfnet loaded) still decode.
func TestDecodeEventLayouts(t *testing.T) {
	ne := binary.NativeEndian
	head := func(size int, proto uint8) []byte {
		b := make([]byte, size)
		ne.PutUint64(b[0:], 1234)
		ne.PutUint32(b[8:], 7)   // ifindex
		ne.PutUint32(b[12:], 99) // len
		b[16], b[17], b[18], b[19] = uint8(loader.MonitorDrop), 0, uint8(loader.DirFromUplink), proto
		return b
	}
	if n := binary.Size(loader.MonitorEvent{}); n != 88 {
		t.Fatalf("event size %d, want 88", n)
	}

	v1 := head(loader.MonitorEventV1Size, ProtoTCP)
	copy(v1[20:], []byte{198, 18, 0, 1, 172, 30, 0, 2}) // saddr, daddr: network order
	copy(v1[28:], []byte{0x15, 0xb3, 0, 80})            // sport 5555, dport 80
	ev, err := DecodeEvent(v1)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "drop" || ev.Direction != "from_uplink" || ev.Ifindex != 7 || ev.Len != 99 || ev.Time != 1234 ||
		ev.Tuple.String() != "tcp 198.18.0.1:5555 -> 172.30.0.2:80" {
		t.Fatalf("IPv4-only record: %+v", ev)
	}

	v6 := head(88, 0)
	copy(v6[28:], []byte{0x15, 0xb3, 0x1f, 0x90}) // sport 5555, dport 8080
	v6[48], v6[50], v6[51] = 1, ProtoUDP, 64      // ip6, next header, hop limit
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:ff::2")
	s16, d16 := src.As16(), dst.As16()
	copy(v6[52:], s16[:])
	copy(v6[68:], d16[:])
	if ev, err = DecodeEvent(v6); err != nil {
		t.Fatal(err)
	}
	if want := "udp [2001:db8::1]:5555 -> [2001:db8:ff::2]:8080"; ev.Tuple.String() != want || ev.Translated != (Tuple{}) {
		t.Fatalf("IPv6 record: %+v (%s), want %s", ev, ev.Tuple, want)
	}

	// Neither family: no tuple.
	if ev, err = DecodeEvent(head(88, 0)); err != nil || ev.Tuple != (Tuple{}) {
		t.Fatalf("record without a tuple: %+v %v", ev, err)
	}
	if _, err := DecodeEvent(v1[:40]); err == nil {
		t.Error("a truncated record decoded")
	}
}
