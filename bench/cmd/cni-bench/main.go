// Command cni-bench measures CNI ADD and DEL latency the way a runtime sees
// it (libcni, the plugin exec'd from the host's network namespace): ebpfnet
// against the reference bridge + portmap plugins with host-local IPAM, on
// the same sandbox host, each ADD publishing one port. It prints the median
// and p90 over -n runs. Needs root; it builds its namespaces itself and
// removes them on exit.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
)

func main() {
	plugin := flag.String("plugin", "bin/ebpfnet-cni", "the ebpfnet CNI plugin binary")
	refDir := flag.String("reference", "/usr/lib/cni", "directory of the reference plugins (bridge, portmap, host-local)")
	n := flag.Int("n", 50, "ADD/DEL pairs per plugin")
	flag.Parse()
	if err := run(*plugin, *refDir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "cni-bench:", err)
		os.Exit(1)
	}
}

func run(plugin, refDir string, n int) error {
	abs, err := filepath.Abs(plugin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cni-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pluginDir := filepath.Join(tmp, "bin")
	os.Mkdir(pluginDir, 0o755)
	if err := os.Symlink(abs, filepath.Join(pluginDir, "ebpfnet")); err != nil {
		return err
	}
	p := "cb" + randHex(3)
	pinRoot := loader.DefaultPinRoot(p)
	defer loader.RemovePins(pinRoot)
	host, ext := p+"-host", p+"-ext"
	defer sh("ip", "netns", "delete", ext)
	defer sh("ip", "netns", "delete", host)
	for _, c := range [][]string{
		{"ip", "netns", "add", host}, {"ip", "netns", "add", ext},
		{"ip", "link", "add", "eth0", "netns", ext, "type", "veth", "peer", "name", "uplink0", "netns", host},
		{"ip", "-n", ext, "addr", "add", "198.18.0.1/24", "dev", "eth0"}, {"ip", "-n", ext, "link", "set", "eth0", "up"},
		{"ip", "-n", host, "addr", "add", "198.18.0.2/24", "dev", "uplink0"}, {"ip", "-n", host, "link", "set", "uplink0", "up"},
		{"ip", "-n", host, "link", "set", "lo", "up"}, {"ip", "-n", host, "route", "add", "default", "via", "198.18.0.1"},
	} {
		if err := sh(c...); err != nil {
			return err
		}
	}
	hostNS, err := netnsutil.Resolve(host)
	if err != nil {
		return err
	}
	caps := map[string]bool{"portMappings": true}
	lists := []struct {
		name    string
		plugins []map[string]any
	}{
		{"ebpfnet", []map[string]any{{"type": "ebpfnet", "subnet": "10.66.0.0/16", "stateDir": filepath.Join(tmp, "state"), "pinRoot": pinRoot, "capabilities": caps}}},
		{"bridge+portmap", []map[string]any{
			{"type": "bridge", "bridge": "cni-bench0", "isGateway": true, "ipMasq": true,
				"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(tmp, "ipam"), "ranges": [][]map[string]string{{{"subnet": "10.67.0.0/16"}}}}},
			{"type": "portmap", "capabilities": caps, "snat": true},
		}},
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir, refDir}, filepath.Join(tmp, "cache"), nil)
	fmt.Printf("CNI ADD/DEL latency, %d runs each, one published port per ADD (libcni from the host netns)\n\n", n)
	fmt.Printf("| plugins | ADD median | ADD p90 | DEL median | DEL p90 |\n|---|---|---|---|---|\n")
	for _, l := range lists {
		raw, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench-" + randHex(2), "plugins": l.plugins})
		list, err := libcni.NetworkConfFromBytes(raw)
		if err != nil {
			return err
		}
		adds, dels, err := measure(cni, list, hostNS, p, n)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", l.name, ms(pct(adds, 50)), ms(pct(adds, 90)), ms(pct(dels, 50)), ms(pct(dels, 90)))
	}
	return nil
}

// measure times n ADD/DEL pairs, each on a fresh container namespace.
func measure(cni *libcni.CNIConfig, list *libcni.NetworkConfigList, hostNS netnsutil.Namespace, prefix string, n int) (adds, dels []time.Duration, err error) {
	ctx := context.Background()
	c := prefix + "-c"
	for i := range n {
		if err := sh("ip", "netns", "add", c); err != nil {
			return nil, nil, err
		}
		rt := &libcni.RuntimeConf{
			ContainerID: fmt.Sprintf("bench%d", i), NetNS: filepath.Join(netnsutil.RunDir, c), IfName: "eth0",
			CapabilityArgs: map[string]any{"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}},
		}
		err = netnsutil.Do(hostNS, func() error {
			start := time.Now()
			if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
				return fmt.Errorf("ADD: %w", err)
			}
			adds = append(adds, time.Since(start))
			start = time.Now()
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				return fmt.Errorf("DEL: %w", err)
			}
			dels = append(dels, time.Since(start))
			return nil
		})
		sh("ip", "netns", "delete", c)
		if err != nil {
			return nil, nil, err
		}
	}
	return adds, dels, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func sh(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %v: %s", args, err, out)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
