package runtimetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PodmanBin is Debian's podman (4.3, CNI network backend: bookworm has no
// netavark).
var PodmanBin = "/usr/bin/podman"

// Podman is a per-test podman (it has no daemon): its own storage root and
// run root, containers.conf, storage.conf, CNI network config dir, tmp
// dir and events file, run in the network namespace of a simulated host.
type Podman struct {
	t       testing.TB
	Host    string
	Dir     string
	Root    string
	RunRoot string
	// NetConfDir is podman's --network-config-dir: put CNI conflists here
	// (file name NAME.conflist, "name": NAME); `podman run --network NAME`
	// uses it. Plugins are looked up in /usr/lib/cni, /opt/cni/bin and
	// the other cni_plugin_dirs; add more with PodmanOptions.CNIPluginDirs.
	NetConfDir string
	conf       string
	storage    string
}

// PodmanOptions tune Podman.
type PodmanOptions struct {
	// CNIPluginDirs are searched before Debian's defaults (put the
	// directory of the plugin under test here).
	CNIPluginDirs []string
	// NoImage skips loading the test image.
	NoImage bool
}

// NewPodman prepares podman for the simulated host <host> and loads the
// test image (ImageRef). The cleanup removes every container (rm -af -t 0),
// kills leftover conmon processes by PID, unmounts and removes its dir.
//
// What makes it work in this sandbox (see README.md): runc, not crun (crun
// 1.8 refuses hybrid cgroup v1/v2: "cgroups in hybrid mode not
// supported"); containers.conf default_ulimits = [] (otherwise runc fails
// "error setting rlimit type 7: operation not permitted": without
// CAP_SYS_RESOURCE it cannot raise RLIMIT_NOFILE above the hard limit,
// and --ulimit host alone does not help); cgroupfs; events to a file; vfs.
func NewPodman(t testing.TB, host string, opts ...PodmanOptions) *Podman {
	t.Helper()
	Require(t, PodmanBin, NsenterBin, "/usr/sbin/runc")
	var o PodmanOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := ShortDir(t, "ebrt-p")
	p := &Podman{
		t: t, Host: host, Dir: dir,
		Root:       filepath.Join(dir, "root"),
		RunRoot:    filepath.Join(dir, "run"),
		NetConfDir: filepath.Join(dir, "net.d"),
		conf:       filepath.Join(dir, "containers.conf"),
		storage:    filepath.Join(dir, "storage.conf"),
	}
	for _, d := range []string{p.NetConfDir, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pluginDirs := append(append([]string{}, o.CNIPluginDirs...), "/usr/local/libexec/cni", "/usr/libexec/cni", "/usr/local/lib/cni", "/usr/lib/cni", "/opt/cni/bin")
	var q []string
	for _, d := range pluginDirs {
		q = append(q, fmt.Sprintf("%q", d))
	}
	conf := fmt.Sprintf(`[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
runtime = "runc"
tmp_dir = %q
[network]
network_backend = "cni"
network_config_dir = %q
cni_plugin_dirs = [%s]
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), p.NetConfDir, strings.Join(q, ", "))
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", p.Root, p.RunRoot)
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.storage, []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cleanup)
	if !o.NoImage {
		p.MustCmd("load", "-q", "-i", ImageArchive(t))
	}
	return p
}

// Env is the environment podman runs with: only this test's config files.
func (p *Podman) Env() []string {
	return append(os.Environ(),
		"CONTAINERS_CONF="+p.conf,
		"CONTAINERS_STORAGE_CONF="+p.storage,
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(p.Dir, "registries.conf"), // absent: no registries
	)
}

// Command returns an unstarted podman command in the host's network
// namespace, with every per-test flag.
func (p *Podman) Command(args ...string) *exec.Cmd {
	full := append([]string{PodmanBin,
		"--root", p.Root, "--runroot", p.RunRoot, "--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
		"--network-config-dir", p.NetConfDir, "--tmpdir", filepath.Join(p.Dir, "tmp"),
	}, args...)
	cmd := nsenterCmd(p.Host, full...)
	cmd.Env = p.Env()
	return cmd
}

// Cmd runs podman, bounded, and returns stdout, stderr and the error.
func (p *Podman) Cmd(args ...string) (string, string, error) { return runCmd(p.Command(args...)) }

// MustCmd is Cmd that fails the test on error and returns stdout.
func (p *Podman) MustCmd(args ...string) string {
	p.t.Helper()
	out, errOut, err := p.Cmd(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// WriteCNIConfig writes a conflist into NetConfDir.
func (p *Podman) WriteCNIConfig(file, conflist string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.NetConfDir, file), []byte(conflist), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Podman) cleanup() {
	// rm -af runs CNI DEL and removes podman's /run/netns/netns-* file.
	p.Cmd("rm", "-af", "-t", "0")
	killLeftovers(p.t, p.Dir) // conmon names the dir on its command line
	unmountUnder(p.t, p.Dir)
}
