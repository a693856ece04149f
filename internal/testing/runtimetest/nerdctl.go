package runtimetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NerdctlBin is nerdctl v1.7.7 (the last line that supports containerd
// 1.6), built from the Go module proxy by scripts/deps.sh: Debian has no
// package.
var NerdctlBin = "/usr/local/libexec/ebpfnet-test/nerdctl"

// NerdctlCommand returns an unstarted nerdctl command against this
// containerd, in the host's network namespace, with per-test paths:
// --data-root under the containerd dir, and --cni-path/--cni-netconfpath
// set to CNIBinDir/CNIConfDir (nerdctl takes them as flags, no mount trick
// needed; it passes them on to its own OCI hook, which runs the CNI
// plugins). nerdctl gives containerd what ctr lacks: -p (portMappings
// through the CNI portmap capability) and `network create`.
//
// Use a network of the test's own (`nerdctl network create NAME` writes
// a conflist into CNIConfDir, or WriteCNIConfig with ipam.dataDir in the
// test dir): the default network "bridge" keeps host-local leases in the
// global /var/lib/cni/networks/bridge, shared by every test.
func (c *ContainerdDaemon) NerdctlCommand(args ...string) *exec.Cmd {
	full := append([]string{NerdctlBin,
		"--address", c.Socket, "--namespace", c.Namespace, "--snapshotter", c.Snapshotter,
		"--cgroup-manager", "cgroupfs", "--data-root", filepath.Join(c.Dir, "nerdctl"),
		"--cni-path", c.CNIBinDir, "--cni-netconfpath", c.CNIConfDir,
	}, args...)
	cmd := nsenterCmd(c.Host, full...)
	// Its own (absent) config file: a machine's /etc/nerdctl/nerdctl.toml
	// never leaks in.
	cmd.Env = append(c.Env(), "NERDCTL_TOML="+filepath.Join(c.Dir, "nerdctl.toml"))
	return cmd
}

// Nerdctl runs NerdctlCommand, bounded.
func (c *ContainerdDaemon) Nerdctl(args ...string) (string, string, error) {
	return runCmd(c.NerdctlCommand(args...))
}

// MustNerdctl is Nerdctl that fails the test on error.
func (c *ContainerdDaemon) MustNerdctl(args ...string) string {
	c.t.Helper()
	if _, err := os.Stat(NerdctlBin); err != nil {
		c.t.Skipf("%s missing (make deps builds it)", NerdctlBin)
	}
	out, errOut, err := c.Nerdctl(args...)
	if err != nil {
		c.t.Fatalf("nerdctl %s: %v\n%s%s\ncontainerd log:\n%s", strings.Join(args, " "), err, out, errOut, c.LogTail(20))
	}
	return out
}

// ForgetCNINetwork registers a cleanup that removes what CNI keeps per
// network name in global dirs: host-local leases in
// /var/lib/cni/networks/<name> (when the config sets no ipam.dataDir, as
// `nerdctl network create` and podman's generated configs do) and
// libcni's cached results /var/lib/cni/results/<name>-*.
func ForgetCNINetwork(t interface{ Cleanup(func()) }, name string) {
	t.Cleanup(func() {
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", name))
		if m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", name+"-*")); len(m) > 0 {
			for _, f := range m {
				os.Remove(f)
			}
		}
	})
}
