package integration

import (
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Issue 12: `monitor -o json` shows a new flow's tuple after translation:
// a masqueraded flow's source becomes the host's address, a published
// port's destination the container's.
func TestMonitorShowsTranslatedTuples(t *testing.T) {
	tp := natHost(t)
	c := publishedServer(tp)
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	events := monitorEvents(t, tp.EbpfnetCmd("monitor", "-o", "json"))

	sawSNAT, sawDNAT := false, false
	deadline := time.After(30 * time.Second) // generous: a loaded 2-core machine
	for !sawSNAT || !sawDNAT {
		// The monitor may still be starting: new flows until it reports.
		testutil.Ask(tp.Namespace(c), "tcp4", extAddr+":9000")
		testutil.Ask(tp.Namespace(tp.Ext), "tcp4", hostAddr+":8080")
		for drained := false; !drained; {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("monitor exited")
				}
				if ev["type"] != "new_flow" {
					continue
				}
				switch {
				case ev["src"] == "172.30.0.2" && ev["dst"] == extAddr:
					if ev["translated_src"] != hostAddr || ev["translated_dst"] != extAddr || ev["translated_dst_port"] != float64(9000) ||
						ev["translated_src_port"] == nil {
						t.Fatalf("masquerade event %v: want translated %s:PORT -> %s:9000", ev, hostAddr, extAddr)
					}
					sawSNAT = true
				case ev["src"] == extAddr && ev["dst"] == hostAddr:
					if ev["translated_src"] != extAddr || ev["translated_src_port"] != ev["src_port"] ||
						ev["translated_dst"] != "172.30.0.2" || ev["translated_dst_port"] != float64(80) {
						t.Fatalf("published port event %v: want translated %s:%v -> 172.30.0.2:80", ev, extAddr, ev["src_port"])
					}
					sawDNAT = true
				}
			case <-deadline:
				t.Fatalf("within 30s: masquerade event %v, published port event %v", sawSNAT, sawDNAT)
			case <-time.After(500 * time.Millisecond):
				drained = true
			}
		}
	}
}
