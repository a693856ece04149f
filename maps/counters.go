package maps

import (
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// Counter is a packet and byte count summed over all CPUs.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (c *Counter) add(o loader.Counter) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
}

// Directions and verdicts as metric labels, from the C enums' BTF
// (DIR_FROM_UPLINK -> "from_uplink", VERDICT_SNAT -> "snat"), read on
// first use: parsing the BTF at start-up cost every command about 2 ms.
var (
	DirectionNames = sync.OnceValue(func() map[loader.Direction]string { return mustEnumLabels[loader.Direction]("direction", "DIR_") })
	VerdictNames   = sync.OnceValue(func() map[loader.Verdict]string { return mustEnumLabels[loader.Verdict]("verdict", "VERDICT_") })
)

// enumLabels names the values of a C enum of the datapath by their
// lowercased C names without prefix. Sentinels (__DIR_MAX) are no values.
func enumLabels[T ~uint32](enum, prefix string) (map[T]string, error) {
	raw, err := loader.EnumNames(enum)
	if err != nil {
		return nil, err
	}
	out := make(map[T]string, len(raw))
	for v, name := range raw {
		if strings.HasPrefix(name, "__") {
			continue
		}
		out[T(v)] = strings.ToLower(strings.TrimPrefix(name, prefix))
	}
	return out, nil
}

// mustEnumLabels is enumLabels for package variables. The BTF is embedded
// at build time, so a failure is a build defect (the package's tests catch
// it), not a runtime condition.
func mustEnumLabels[T ~uint32](enum, prefix string) map[T]string {
	out, err := enumLabels[T](enum, prefix)
	if err != nil {
		panic(err)
	}
	return out
}

// VerdictKey names one verdict counter.
type VerdictKey struct {
	Direction loader.Direction
	Verdict   loader.Verdict
}

// Verdicts returns every (direction, verdict) counter.
func (v *Views) Verdicts() (map[VerdictKey]Counter, error) {
	out := map[VerdictKey]Counter{}
	for d := loader.Direction(0); d < loader.NumDirections; d++ {
		for vd := loader.Verdict(0); vd < loader.NumVerdicts; vd++ {
			c, err := sumPerCPU(v.m.VerdictCounters, uint32(d)*loader.VerdictSlots+uint32(vd))
			if err != nil {
				return nil, fmt.Errorf("read verdict counters: %w", err)
			}
			out[VerdictKey{d, vd}] = c
		}
	}
	return out, nil
}

// Drops returns the drop counters by reason name (e.g. "spoofed_ip").
func (v *Views) Drops() (map[string]Counter, error) {
	names, err := DropReasonNames()
	if err != nil {
		return nil, err
	}
	out := map[string]Counter{}
	for r := uint32(1); r < uint32(loader.NumDropReasons); r++ {
		c, err := sumPerCPU(v.m.DropCounters, r)
		if err != nil {
			return nil, fmt.Errorf("read drop counters: %w", err)
		}
		out[names[loader.DropReason(r)]] = c
	}
	return out, nil
}

// EndpointCounters returns what an endpoint sent (tx) and received (rx)
// through the datapath.
func (v *Views) EndpointCounters(ifindex int) (tx, rx Counter, err error) {
	var per []loader.EndpointCounters
	if err := v.m.EndpointStats.Lookup(uint32(ifindex), &per); err != nil {
		return tx, rx, err
	}
	for _, c := range per {
		tx.add(c.Tx)
		rx.add(c.Rx)
	}
	return tx, rx, nil
}

func sumPerCPU(m *ebpf.Map, key uint32) (Counter, error) {
	var per []loader.Counter
	var c Counter
	if err := m.Lookup(key, &per); err != nil {
		return c, err
	}
	for _, p := range per {
		c.add(p)
	}
	return c, nil
}

var dropNames = sync.OnceValues(func() (map[loader.DropReason]string, error) {
	return enumLabels[loader.DropReason]("drop_reason", "DROP_")
})

// DropReasonNames maps each drop reason to its label, derived from the C enum
// (DROP_SPOOFED_IP -> "spoofed_ip").
func DropReasonNames() (map[loader.DropReason]string, error) { return dropNames() }
