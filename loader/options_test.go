package loader_test

import (
	"reflect"
	"testing"

	"github.com/ebpfnet/ebpfnet/loader"
)

func TestLoadOptions(t *testing.T) {
	dp, err := loader.Load(loader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := int(dp.Maps.Conntrack.MaxEntries()); got != loader.DefaultCTMapSize || got < 512*1024 {
		t.Errorf("default conntrack size %d, want %d (256k flows)", got, loader.DefaultCTMapSize)
	}
	if dp.Program(loader.ProgFromUplink) == nil || dp.Program(loader.ProgFromContainer) == nil {
		t.Error("programs missing")
	}
	dp.Close()

	dp, err = loader.Load(loader.Options{CTMapSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if got := dp.Maps.Conntrack.MaxEntries(); got != 2048 {
		t.Errorf("conntrack size %d, want 2048", got)
	}
	dp.Close()

	for _, o := range []loader.Options{
		{CTMapSize: -1},
		{NATPortMin: 5000, NATPortMax: 4000},
		{NATPortMax: 1000}, // below the default minimum
	} {
		if dp, err := loader.Load(o); err == nil {
			dp.Close()
			t.Errorf("Load(%+v) succeeded", o)
		}
	}
}

// from_uplink on an interface that is not a configured uplink leaves
// everything to the stack.
func TestFromUplinkUnknownInterface(t *testing.T) {
	e := newNATEnv(t, envOpts{})
	in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: 6, sport: 1, dport: 8080, tcpFlags: "S"}.build(t)
	ret, got := runProg(t, e.up, 999, in)
	if ret != tcActOK || string(got) != string(in) {
		t.Fatalf("verdict %d; want TC_ACT_OK unchanged", ret)
	}
}

// The struct tags are the one list of shared maps: every one is filled, and
// with the map of that name.
func TestMapsByName(t *testing.T) {
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	byName := dp.Maps.ByName()
	if want := reflect.TypeFor[loader.Maps]().NumField(); len(byName) != want {
		t.Errorf("%d maps, want one per field of loader.Maps: %d", len(byName), want)
	}
	for name, m := range byName {
		if m == nil {
			t.Errorf("map %s not loaded", name)
			continue
		}
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		// The kernel keeps the first 15 bytes of a map's name.
		if want := name[:min(len(name), 15)]; info.Name != want {
			t.Errorf("field tagged %s holds map %s", name, info.Name)
		}
	}
	if byName["conntrack"] != dp.Maps.Conntrack {
		t.Error("ByName()[conntrack] is not Maps.Conntrack")
	}
}
