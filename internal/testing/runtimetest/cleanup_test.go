package runtimetest

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestCleanupOnEarlyExit leaves a subtest half-way (SkipNow exits like
// Fatal does) with running containers, and checks that the cleanups left
// nothing: no process naming the daemon's dir, no mount under it, no dir,
// and the daemon's PID gone.
func TestCleanupOnEarlyExit(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	type left struct {
		dir string
		pid int
	}
	var got []left
	t.Run("docker", func(t *testing.T) {
		dk := Docker(t, tp.Host)
		got = append(got, left{dk.Dir, dk.PID()})
		dk.MustCmd("run", "-d", "--network", "none", ImageName, "sleep", "600")
		t.Skip("leaving early on purpose: the parent test checks the cleanup")
	})
	t.Run("containerd", func(t *testing.T) {
		c := Containerd(t, tp.Host)
		got = append(got, left{c.Dir, c.PID()})
		c.MustCtr("run", "-d", ImageRef, UniqueName("x"), "sleep", "600")
		t.Skip("leaving early on purpose: the parent test checks the cleanup")
	})
	if len(got) != 2 {
		t.Fatalf("subtests did not start both daemons")
	}
	procs := listProcs()
	for _, l := range got {
		if _, err := os.Stat(l.dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", l.dir, err)
		}
		if ms := mountsUnder(l.dir); len(ms) > 0 {
			t.Errorf("mounts left under %s: %v", l.dir, ms)
		}
		if err := syscall.Kill(l.pid, 0); err == nil && !isZombie(l.pid) {
			t.Errorf("daemon pid %d still runs", l.pid)
		}
		for pid, p := range procs {
			if strings.Contains(p.cmdline, l.dir+"/") {
				t.Errorf("pid %d left: %s", pid, p.cmdline)
			}
		}
	}
}
