package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The Grafana dashboard in contrib/grafana cannot drift from the metrics:
// every panel says what it shows and in which unit, and every metric its
// queries name is one ebpfnet exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../contrib/grafana/ebpfnet-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			FieldConfig struct {
				Defaults struct {
					Unit       string `json:"unit"`
					Thresholds *struct {
						Steps []struct {
							Value *float64 `json:"value"`
						} `json:"steps"`
					} `json:"thresholds"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	exported := exportedNames()
	metric := regexp.MustCompile(`\bebpfnet_[a-z_]+`)
	for _, p := range dash.Panels {
		if len(p.Description) < 20 {
			t.Errorf("panel %q: no description", p.Title)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("panel %q: no unit", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metric.FindAllString(tg.Expr, -1) {
				base := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("panel %q queries %s, which ebpfnet does not export", p.Title, name)
				}
				if strings.HasSuffix(base, "_total") && !strings.Contains(tg.Expr, "rate(") {
					t.Errorf("panel %q shows the counter %s without rate()", p.Title, name)
				}
			}
		}
		if strings.HasPrefix(p.Title, "Map pressure") {
			th := p.FieldConfig.Defaults.Thresholds
			if th == nil || len(th.Steps) < 3 {
				t.Errorf("panel %q: conntrack fill needs warning and critical thresholds", p.Title)
			}
		}
	}
}

func exportedNames() map[string]bool {
	ch := make(chan *prometheus.Desc, 64)
	NewCollector(nil, nil).Describe(ch)
	NewGCMetrics().Describe(ch)
	close(ch)
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names
}
