package runtimetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// DockerOptions tune Docker; the zero value is what tests normally want.
type DockerOptions struct {
	// StorageDriver is dockerd's --storage-driver: "vfs" (default: works
	// on any backing file system, even when /tmp is itself overlayfs as in
	// a container; the test image is 1 MB so copies are cheap) or
	// "overlay2" (works here on ext4 too).
	StorageDriver string
	// ExtraArgs are appended to dockerd's command line.
	ExtraArgs []string
	// NoImage skips loading the test image.
	NoImage bool
}

// Dockerd is a dockerd (with the containerd it manages) running in the
// network namespace of a simulated host, with every path of its own.
type Dockerd struct {
	t        testing.TB
	d        *daemon
	Host     string // netns name it runs in
	Dir      string // everything of it lives here
	Socket   string // API socket: unix://<Socket>
	DataRoot string
	ExecRoot string
	PIDFile  string
}

// Docker starts a dockerd in the network namespace /run/netns/<host>,
// waits until its API answers (bounded), loads the test image (ImageName)
// and registers the cleanup: remove all containers, SIGTERM then SIGKILL
// by PID, kill leftovers (managed containerd, shims) by PID, unmount
// everything under its dirs, remove them. It touches nothing of the root
// network namespace: --bridge=none --iptables=false --ip6tables=false
// --ip-forward=false --ip-masq=false --userland-proxy=false.
func Docker(t testing.TB, host string, opts ...DockerOptions) *Dockerd {
	t.Helper()
	Require(t, DockerdBin, DockerBin, NsenterBin)
	var o DockerOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.StorageDriver == "" {
		o.StorageDriver = "vfs"
	}
	dir := ShortDir(t, "ebrt-d")
	dk := &Dockerd{
		t: t, Host: host, Dir: dir,
		Socket:   filepath.Join(dir, "docker.sock"),
		DataRoot: filepath.Join(dir, "data"),
		ExecRoot: filepath.Join(dir, "exec"),
		PIDFile:  filepath.Join(dir, "docker.pid"),
	}
	// Its own daemon.json, so a machine's /etc/docker/daemon.json (or a
	// registry mirror, a default bridge setting ...) never leaks in.
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		DockerdBin,
		"--config-file", cfg,
		"--data-root", dk.DataRoot,
		"--exec-root", dk.ExecRoot,
		"--pidfile", dk.PIDFile,
		"-H", "unix://" + dk.Socket,
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--userland-proxy=false",
		"--storage-driver", o.StorageDriver,
		"--log-level", "info",
	}
	args = append(args, o.ExtraArgs...)

	// dockerd 20.10 writes its trust key to /etc/docker/key.json when it
	// is missing (there is no flag to move it); two dockerds starting at
	// once on a fresh machine could read each other's half-written key.
	// Serialise start-up (across test processes too) until it exists.
	unlock := lockIfMissing("/etc/docker/key.json")
	d, err := startDaemon(t, "dockerd", dir, nsenterCmd(host, args...))
	if err != nil {
		unlock()
		t.Fatalf("start dockerd: %v", err)
	}
	dk.d = d
	t.Cleanup(dk.stop)
	err = d.waitReady(func() error {
		_, _, err := runCmd(dk.command("version", "--format", "{{.Server.Version}}"))
		return err
	})
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !o.NoImage {
		dk.MustCmd("load", "-q", "-i", ImageArchive(t))
	}
	return dk
}

// lockIfMissing takes an exclusive flock shared by all test processes when
// path does not exist yet, and returns its release.
func lockIfMissing(path string) func() {
	if _, err := os.Stat(path); err == nil {
		return func() {}
	}
	f, err := os.OpenFile("/tmp/ebpfnet-runtimetest.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return func() {}
	}
	unix.Flock(int(f.Fd()), unix.LOCK_EX)
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }
}

// PID is dockerd's process ID.
func (dk *Dockerd) PID() int { return dk.d.cmd.Process.Pid }

// Log is the path of dockerd's log (and its managed containerd's).
func (dk *Dockerd) Log() string { return dk.d.log }

// LogTail returns the last n lines of the log.
func (dk *Dockerd) LogTail(n int) string { return dk.d.logTail(n) }

// Env is the environment that points a docker CLI at this daemon.
func (dk *Dockerd) Env() []string {
	return append(os.Environ(), "DOCKER_HOST=unix://"+dk.Socket, "DOCKER_CONFIG="+filepath.Join(dk.Dir, "cli"))
}

func (dk *Dockerd) command(args ...string) *exec.Cmd {
	cmd := exec.Command(DockerBin, args...)
	cmd.Env = dk.Env()
	return cmd
}

// Command returns an unstarted docker CLI command against this daemon
// (for streaming, stdin, or background containers).
func (dk *Dockerd) Command(args ...string) *exec.Cmd { return dk.command(args...) }

// Cmd runs the docker CLI (Debian's, /usr/bin/docker) against this daemon,
// bounded, and returns stdout, stderr and the error. The CLI runs in the
// test's network namespace: it only talks to the unix socket.
func (dk *Dockerd) Cmd(args ...string) (string, string, error) {
	return runCmd(dk.command(args...))
}

// MustCmd is Cmd that fails the test on error and returns stdout.
func (dk *Dockerd) MustCmd(args ...string) string {
	dk.t.Helper()
	out, errOut, err := dk.Cmd(args...)
	if err != nil {
		dk.t.Fatalf("docker %s: %v\n%s%s\ndockerd log:\n%s", strings.Join(args, " "), err, out, errOut, dk.LogTail(20))
	}
	return out
}

func (dk *Dockerd) stop() {
	if !dk.d.exited() {
		// Containers first, so dockerd tears their sandboxes down itself
		// (and tells network drivers: Leave, DeleteEndpoint).
		if ids, _, err := dk.Cmd("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			dk.Cmd(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	}
	dk.d.stop()
	if b, err := os.ReadFile(dk.PIDFile); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && pid != dk.PID() {
			dk.t.Errorf("cleanup: pidfile names %d, started %d", pid, dk.PID())
		}
	}
}

// PluginDir is where dockerd 20.10 discovers legacy (remote) plugins by
// socket: /run/docker/plugins/NAME.sock or NAME/NAME.sock. It is global:
// every dockerd on the machine reads it, whatever --exec-root says.
const PluginDir = "/run/docker/plugins"

// PluginSpecDir is where dockerd also looks for NAME.spec / NAME.json
// files that point at a plugin's address (a unix socket anywhere, or tcp).
const PluginSpecDir = "/etc/docker/plugins"

// PluginSocket reserves a per-test remote plugin: a unique NAME (prefix +
// random hex) and the socket path PluginDir/NAME.sock the plugin must
// listen on; the socket is removed in t.Cleanup. Tests never share a name,
// so they never race in the global directory.
func PluginSocket(t testing.TB, prefix string) (name, socket string) {
	t.Helper()
	if err := os.MkdirAll(PluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	name = UniqueName(prefix)
	socket = filepath.Join(PluginDir, name+".sock")
	t.Cleanup(func() { os.Remove(socket) })
	return name, socket
}

// PluginSpec registers a per-test remote plugin whose socket lives
// anywhere (e.g. in the test's own dir): it writes PluginSpecDir/NAME.spec
// holding "unix://<socket>" and removes it in t.Cleanup.
func PluginSpec(t testing.TB, prefix, socket string) (name string) {
	t.Helper()
	if err := os.MkdirAll(PluginSpecDir, 0o755); err != nil {
		t.Fatal(err)
	}
	name = UniqueName(prefix)
	spec := filepath.Join(PluginSpecDir, name+".spec")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf("unix://%s\n", socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(spec) })
	return name
}
