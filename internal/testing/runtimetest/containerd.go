package runtimetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ContainerdOptions tune Containerd; the zero value is what tests normally want.
type ContainerdOptions struct {
	// Snapshotter: "native" (default: works on any backing file system,
	// like dockerd's vfs) or "overlayfs".
	Snapshotter string
	// Namespace is the containerd namespace ctr uses (default: a unique
	// name per test, so runc's state dirs /run/containerd/runc/<ns>,
	// global, never mix tests).
	Namespace string
	// NoImage skips importing the test image.
	NoImage bool
	// ExtraConfig is appended to the generated config.toml.
	ExtraConfig string
}

// ContainerdDaemon is a containerd running in the network namespace of a
// simulated host, with its own root, state, sockets and config, and a
// per-test CNI configuration for `ctr run --cni`.
type ContainerdDaemon struct {
	t           testing.TB
	d           *daemon
	Host        string
	Dir         string
	Socket      string // gRPC address (unix socket path)
	Root        string
	State       string
	Config      string
	Namespace   string
	Snapshotter string
	// CNIConfDir and CNIBinDir are this test's CNI directories. CtrCNI
	// shows them to ctr as /etc/cni/net.d and /opt/cni/bin (see there).
	// CNIBinDir starts with links to every reference plugin of
	// /usr/lib/cni; put the plugin under test next to them.
	CNIConfDir string
	CNIBinDir  string
}

// containerd 1.6 plugins to disable: CRI (it wants its own CNI and
// sandbox image, and ctr does not use it), snapshotters that need tools or
// file systems absent here, tracing.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.internal.v1.tracing",
	"io.containerd.tracing.processor.v1.otlp",
}

// Containerd starts a containerd in the network namespace
// /run/netns/<host>, waits until it answers (bounded), imports the test
// image (ImageRef) and registers the cleanup (tasks and containers
// removed, SIGTERM then SIGKILL by PID, shims killed by PID, mounts under
// its dir unmounted, dir removed).
func Containerd(t testing.TB, host string, opts ...ContainerdOptions) *ContainerdDaemon {
	t.Helper()
	Require(t, ContainerdBin, CtrBin, NsenterBin)
	var o ContainerdOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Snapshotter == "" {
		o.Snapshotter = "native"
	}
	if o.Namespace == "" {
		o.Namespace = UniqueName("ebt-")
	}
	dir := ShortDir(t, "ebrt-c")
	c := &ContainerdDaemon{
		t: t, Host: host, Dir: dir,
		Socket:      filepath.Join(dir, "containerd.sock"),
		Root:        filepath.Join(dir, "root"),
		State:       filepath.Join(dir, "state"),
		Config:      filepath.Join(dir, "config.toml"),
		Namespace:   o.Namespace,
		Snapshotter: o.Snapshotter,
		CNIConfDir:  filepath.Join(dir, "cni", "net.d"),
		CNIBinDir:   filepath.Join(dir, "cni", "bin"),
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	var dp []string
	for _, p := range disabledPlugins {
		dp = append(dp, q(p))
	}
	cfg := strings.Join([]string{
		"version = 2",
		"root = " + q(c.Root),
		"state = " + q(c.State),
		"disabled_plugins = [" + strings.Join(dp, ", ") + "]",
		"[grpc]",
		"  address = " + q(c.Socket),
		"[ttrpc]",
		"  address = " + q(c.Socket+".ttrpc"),
		"[debug]",
		`  address = ""`,
		"[metrics]",
		`  address = ""`,
		`[plugins."io.containerd.internal.v1.opt"]`,
		"  path = " + q(filepath.Join(dir, "opt")),
		o.ExtraConfig,
	}, "\n") + "\n"
	if err := os.WriteFile(c.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.setupCNIDirs(); err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(t, "containerd", dir, nsenterCmd(host, ContainerdBin, "--config", c.Config, "--log-level", "info"))
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	c.d = d
	t.Cleanup(c.stop)
	if err := d.waitReady(func() error { _, _, err := runCmd(c.command("version")); return err }); err != nil {
		t.Fatal(err)
	}
	if !o.NoImage {
		c.MustCtr("image", "import", ImageArchive(t))
	}
	return c
}

func (c *ContainerdDaemon) setupCNIDirs() error {
	if err := os.MkdirAll(c.CNIConfDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(c.CNIBinDir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(CNIPluginDir)
	if err != nil {
		return nil // no reference plugins: CNI tests skip themselves
	}
	for _, e := range ents {
		if err := os.Symlink(filepath.Join(CNIPluginDir, e.Name()), filepath.Join(c.CNIBinDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// PID is containerd's process ID.
func (c *ContainerdDaemon) PID() int { return c.d.cmd.Process.Pid }

// LogTail returns the last n lines of containerd's log.
func (c *ContainerdDaemon) LogTail(n int) string { return c.d.logTail(n) }

// Env is the environment that points ctr at this containerd.
func (c *ContainerdDaemon) Env() []string {
	return append(os.Environ(),
		"CONTAINERD_ADDRESS="+c.Socket,
		"CONTAINERD_NAMESPACE="+c.Namespace,
		"CONTAINERD_SNAPSHOTTER="+c.Snapshotter,
	)
}

func (c *ContainerdDaemon) command(args ...string) *exec.Cmd {
	cmd := exec.Command(CtrBin, args...)
	cmd.Env = c.Env()
	return cmd
}

// Command returns an unstarted ctr command against this containerd, run in
// the test's network namespace.
func (c *ContainerdDaemon) Command(args ...string) *exec.Cmd { return c.command(args...) }

// Ctr runs ctr (Debian's /usr/bin/ctr) against this containerd, bounded,
// and returns stdout, stderr and the error. It runs in the test's own
// namespaces: use CtrCNI for `ctr run --cni`.
func (c *ContainerdDaemon) Ctr(args ...string) (string, string, error) {
	return runCmd(c.command(args...))
}

// MustCtr is Ctr that fails the test on error and returns stdout.
func (c *ContainerdDaemon) MustCtr(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.Ctr(args...)
	if err != nil {
		c.t.Fatalf("ctr %s: %v\n%s%s\ncontainerd log:\n%s", strings.Join(args, " "), err, out, errOut, c.LogTail(20))
	}
	return out
}

// The fixed paths ctr 1.6 reads for `run --cni`: it has no flag and no
// environment variable for them (go-cni's defaults, WithDefaultConf: the
// first file in sorted order of the conf dir). Debian's build also
// searches /usr/lib/cni for plugins.
const (
	ctrCNIConfDir = "/etc/cni/net.d"
	ctrCNIBinDir  = "/opt/cni/bin"
)

// CtrCNICommand returns an unstarted ctr command that runs in the host's
// network namespace (where CNI plugins make the host side of the
// interface) and in a private mount namespace in which this test's
// CNIConfDir and CNIBinDir are bind-mounted over /etc/cni/net.d and
// /opt/cni/bin. So parallel tests each see only their own CNI config, and
// the machine's real directories are never written. (The bind mounts
// vanish with the ctr process; only the two empty mount points are
// created on the machine if missing.)
func (c *ContainerdDaemon) CtrCNICommand(args ...string) *exec.Cmd {
	for _, d := range []string{ctrCNIConfDir, ctrCNIBinDir} {
		os.MkdirAll(d, 0o755)
	}
	script := `set -e
mount --bind "$1" ` + ctrCNIConfDir + `
mount --bind "$2" ` + ctrCNIBinDir + `
shift 2
exec "$@"`
	argv := append([]string{UnshareBin, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", c.CNIConfDir, c.CNIBinDir, CtrBin}, args...)
	cmd := nsenterCmd(c.Host, argv...)
	cmd.Env = c.Env()
	return cmd
}

// CtrCNI runs CtrCNICommand, bounded.
func (c *ContainerdDaemon) CtrCNI(args ...string) (string, string, error) {
	return runCmd(c.CtrCNICommand(args...))
}

// MustCtrCNI is CtrCNI that fails the test on error.
func (c *ContainerdDaemon) MustCtrCNI(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.CtrCNI(args...)
	if err != nil {
		c.t.Fatalf("ctr (cni) %s: %v\n%s%s\ncontainerd log:\n%s", strings.Join(args, " "), err, out, errOut, c.LogTail(20))
	}
	return out
}

// WriteCNIConfig writes a conflist into this test's CNIConfDir. ctr uses
// the first file in sorted order, so name it e.g. "10-NAME.conflist".
func (c *ContainerdDaemon) WriteCNIConfig(file, conflist string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.CNIConfDir, file), []byte(conflist), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *ContainerdDaemon) stop() {
	if !c.d.exited() {
		// Tasks and containers first: containerd then stops the shims and
		// unmounts the rootfs itself.
		if out, _, err := c.Ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				c.Ctr("tasks", "kill", "-s", "KILL", id)
				c.Ctr("tasks", "delete", "-f", id)
			}
		}
		if out, _, err := c.Ctr("containers", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				c.Ctr("containers", "delete", id)
			}
		}
	}
	c.d.stop()
	os.Remove(filepath.Join("/run/containerd/runc", c.Namespace)) // only if empty
}
