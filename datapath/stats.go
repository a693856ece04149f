package datapath

import (
	"github.com/ebpfnet/ebpfnet/maps"
)

// VerdictStat is one datapath counter: what a program did with packets.
type VerdictStat struct {
	Direction string       `json:"direction"`
	Verdict   string       `json:"verdict"`
	Count     maps.Counter `json:"count"`
}

// Stats are the datapath-wide counters.
type Stats struct {
	Verdicts []VerdictStat           `json:"verdicts"`
	Drops    map[string]maps.Counter `json:"drops"`
}

// Stats reads the datapath counters (summed over CPUs).
func (i *Instance) Stats() (Stats, error) {
	views, err := i.datapath()
	if err != nil {
		return Stats{}, err
	}
	vs, err := views.Verdicts()
	if err != nil {
		return Stats{}, err
	}
	drops, err := views.Drops()
	if err != nil {
		return Stats{}, err
	}
	var out Stats
	for d, dname := range maps.DirectionNames() {
		for v, vname := range maps.VerdictNames() {
			out.Verdicts = append(out.Verdicts, VerdictStat{dname, vname, vs[maps.VerdictKey{Direction: d, Verdict: v}]})
		}
	}
	out.Drops = drops
	return out, nil
}
