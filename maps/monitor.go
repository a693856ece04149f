package maps

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// Event is one datapath event from the monitor ring buffer.
type Event struct {
	Time      time.Duration // CLOCK_MONOTONIC
	Type      string        // "drop" or "new_flow"
	Reason    string        // drop reason, for drops
	Direction string
	Ifindex   int
	Len       int
	// Tuple is the packet's, IPv4 or IPv6 (zero Proto when it was neither;
	// zero ports unless TCP or UDP).
	Tuple Tuple
	// Translated is a new flow's tuple after translation (the rewrite of
	// its first packet; equal to Tuple for routed flows); zero for drops.
	Translated Tuple
}

func (e Event) String() string {
	s := fmt.Sprintf("%-8s %-14s ifindex %-4d", e.Type, e.Direction, e.Ifindex)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.Tuple.Src.Addr().IsValid() {
		s += " " + e.Tuple.String()
	}
	if e.Translated.Proto != 0 {
		s += " => " + e.Translated.Src.String() + " -> " + e.Translated.Dst.String()
	}
	return s + fmt.Sprintf(" len %d", e.Len)
}

// EnableMonitor asks the datapath for events until the given CLOCK_MONOTONIC
// time, at most rate per second per CPU. A monitor renews it while it runs.
func (v *Views) EnableMonitor(until time.Duration, rate uint32) error {
	if until <= 0 {
		until = 1 // already over; 0 means "nobody listens", a negative time would be forever as a u64
	}
	ctl := loader.MonitorControl{ListenUntil: uint64(until), Rate: rate}
	return v.m.MonitorCtl.Put(uint32(0), &ctl)
}

// DisableMonitor stops events at once.
func (v *Views) DisableMonitor() error {
	return v.m.MonitorCtl.Put(uint32(0), &loader.MonitorControl{})
}

// MonitorReader reads events; Close it to stop a blocked Read.
type MonitorReader struct{ rd *ringbuf.Reader }

// OpenMonitor opens the event ring buffer.
func (v *Views) OpenMonitor() (*MonitorReader, error) {
	rd, err := ringbuf.NewReader(v.m.MonitorEvents)
	if err != nil {
		return nil, fmt.Errorf("open monitor ring buffer: %w", err)
	}
	return &MonitorReader{rd: rd}, nil
}

// Close stops the reader.
func (r *MonitorReader) Close() error { return r.rd.Close() }

// SetDeadline makes Read return os.ErrDeadlineExceeded after t.
func (r *MonitorReader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// ErrClosed is returned by Read after Close.
var ErrClosed = ringbuf.ErrClosed

// Read blocks for the next event.
func (r *MonitorReader) Read() (Event, error) {
	rec, err := r.rd.Read()
	if err != nil {
		return Event{}, err
	}
	return DecodeEvent(rec.RawSample)
}

// DecodeEvent decodes one ring buffer record: an event of this layout, or
// of the IPv4-only one before it (loader.MonitorEventV1Size bytes, from
// programs loaded by an older ebpfnet), whose missing IPv6 part reads as
// zero.
func DecodeEvent(sample []byte) (Event, error) {
	var raw loader.MonitorEvent
	size := binary.Size(raw)
	if len(sample) < size && len(sample) >= loader.MonitorEventV1Size {
		sample = append(bytes.Clone(sample), make([]byte, size-len(sample))...)
	}
	if err := binary.Read(bytes.NewReader(sample), binary.NativeEndian, &raw); err != nil {
		return Event{}, fmt.Errorf("decode monitor event: %w", err)
	}
	return decodeEvent(raw)
}

func decodeEvent(raw loader.MonitorEvent) (Event, error) {
	e := Event{
		Time:      time.Duration(raw.Ts),
		Direction: DirectionNames()[loader.Direction(raw.Dir)],
		Ifindex:   int(raw.Ifindex),
		Len:       int(raw.Len),
	}
	switch loader.MonitorType(raw.Type) {
	case loader.MonitorDrop:
		e.Type = "drop"
		names, err := DropReasonNames()
		if err != nil {
			return e, err
		}
		e.Reason = names[loader.DropReason(raw.Reason)]
	case loader.MonitorNewFlow:
		e.Type = "new_flow"
	default:
		return e, errors.New("unknown monitor event type")
	}
	if raw.Ip6 != 0 {
		e.Tuple = Tuple{
			Proto: raw.Proto6,
			Src:   netip.AddrPortFrom(netip.AddrFrom16(raw.Saddr6), PortFromBE16(raw.Sport)),
			Dst:   netip.AddrPortFrom(netip.AddrFrom16(raw.Daddr6), PortFromBE16(raw.Dport)),
		}
	} else if raw.Proto != 0 {
		e.Tuple = Tuple{
			Proto: raw.Proto,
			Src:   netip.AddrPortFrom(AddrFromBE32(raw.Saddr), PortFromBE16(raw.Sport)),
			Dst:   netip.AddrPortFrom(AddrFromBE32(raw.Daddr), PortFromBE16(raw.Dport)),
		}
		if e.Type == "new_flow" {
			e.Translated = Tuple{
				Proto: raw.Proto,
				Src:   netip.AddrPortFrom(AddrFromBE32(raw.NewSaddr), PortFromBE16(raw.NewSport)),
				Dst:   netip.AddrPortFrom(AddrFromBE32(raw.NewDaddr), PortFromBE16(raw.NewDport)),
			}
		}
	}
	return e, nil
}
