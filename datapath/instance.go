// Package datapath is the ebpfnet control plane: networks, endpoints and the
// four Docker network modes, IPAM and the state store. It plumbs bridges and
// veth pairs with netlink and programs the eBPF datapath through loader and
// maps. Everything is relative to the network namespace it runs in, and all
// state (store and pins) is per instance.
package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// DefaultCTMapSize is the conntrack table's size when Config leaves it 0.
const DefaultCTMapSize = loader.DefaultCTMapSize

// Config locates one ebpfnet instance.
type Config struct {
	StateDir string // store directory
	PinRoot  string // bpffs directory for maps, programs and links
	// CTMapSize is the conntrack table's size in entries (two per flow);
	// 0 is DefaultCTMapSize. It is fixed while the datapath is pinned.
	CTMapSize int
	Log       *slog.Logger
	// DerivedPaths says StateDir and PinRoot are DefaultConfig's, named
	// after the namespace's inode: state found there that belongs to a dead
	// namespace which had the same inode is removed, not refused.
	DerivedPaths bool
}

// DefaultConfig names the instance after the network namespace it runs in,
// so instances on simulated hosts (network namespaces) never share state:
// "default" in the initial namespace, "netns-<inode>" elsewhere.
func DefaultConfig() Config {
	instance := "default"
	if cur, err := netnsutil.Current(); err == nil {
		if init, err := netnsutil.Inode("/proc/1/ns/net"); err != nil || init != cur.Ino {
			instance = fmt.Sprintf("netns-%d", cur.Ino)
		}
	}
	return Config{
		StateDir:     filepath.Join("/var/lib/ebpfnet", instance),
		PinRoot:      loader.DefaultPinRoot(instance),
		DerivedPaths: true,
	}
}

// Instance is an open ebpfnet instance. Its methods may be called from
// several goroutines (the daemon serves scrapes while it collects garbage);
// commands of several processes are serialized by the store's lock.
type Instance struct {
	mu    sync.Mutex // guards the loaded datapath below
	cfg   Config
	log   *slog.Logger
	dp    *loader.Datapath
	views *maps.Views
	pins  string // resolved pin root
	// pinID identifies the pinned maps i.dp opened, to notice when
	// another command removed them and pinned new ones.
	pinID uint64
	// ownerChecked: the store was found to belong to this namespace.
	ownerChecked atomic.Bool
	// inStore counts goroutines of this process holding the store's lock.
	inStore atomic.Int32
	// eps keeps decoded endpoint records between store sessions.
	eps endpointCache
	// remote: names of overlay endpoints on other hosts, in memory only
	// (remotenames.go).
	remote remoteNames
}

// Open opens an instance. The datapath is loaded lazily, on first need.
func Open(cfg Config) (*Instance, error) {
	if cfg.StateDir == "" || cfg.PinRoot == "" {
		return nil, errors.New("state dir and pin root must be set")
	}
	if !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("state dir %q: must be an absolute path", cfg.StateDir)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Instance{cfg: cfg, log: log}, nil
}

// Close releases the instance's handles; the datapath stays in the kernel.
func (i *Instance) Close() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.dp != nil {
		i.dp.Close()
	}
	i.dp, i.views, i.pins, i.pinID = nil, nil, "", 0
}

// withStore runs fn holding the store, which serializes ebpfnet commands of
// one instance (bbolt's file lock).
func (i *Instance) withStore(fn func(*store) error) error {
	opened := timeStep("store open")
	st, err := openStore(i.cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.close()
	i.eps.load(st)
	defer i.eps.save(st)
	i.inStore.Add(1)
	defer i.inStore.Add(-1)
	if !i.ownerChecked.Load() {
		if err := i.checkOwner(st); err != nil {
			return err
		}
		i.ownerChecked.Store(true)
	}
	if err := i.recoverIntents(st); err != nil {
		i.log.Warn("could not roll back a command that died half way: the next command tries again", "err", err)
	}
	opened()
	return fn(st)
}

// datapath loads (or reopens) the pinned datapath. A long-lived process
// (the daemon) whose pins were removed and made anew by other commands (the
// last network removed, then a new one created) reopens the new ones: the
// old maps still exist while it holds them, but no program uses them.
// Loading may create the pins, so it happens under the store's lock, which
// keeps it from racing another command that removes or makes them.
func (i *Instance) datapath() (*maps.Views, error) {
	i.mu.Lock()
	if i.dp != nil && i.pinsCurrent() {
		defer i.mu.Unlock()
		return i.views, nil
	}
	i.mu.Unlock()
	if i.inStore.Load() > 0 {
		return i.load()
	}
	var views *maps.Views
	err := i.withStore(func(*store) (err error) {
		views, err = i.load()
		return err
	})
	return views, err
}

// pinsCurrent reports whether the loaded datapath's pins are still the
// instance's. Callers hold i.mu.
func (i *Instance) pinsCurrent() bool {
	id, err := pinnedMapsID(i.pins)
	return err == nil && id == i.pinID
}

// load (re)opens the pinned datapath; the store's lock is held.
func (i *Instance) load() (*maps.Views, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.dp != nil {
		if i.pinsCurrent() {
			return i.views, nil
		}
		i.log.Info("the pinned datapath was removed or replaced by another command: reopening it", "pins", i.pins)
		// Not Close: a scrape may still be reading the old maps; their
		// descriptors close when the last reference goes.
		i.dp, i.views, i.pins, i.pinID = nil, nil, "", 0
	}
	defer timeStep("load datapath")()
	pins, err := loader.PreparePinRoot(i.cfg.PinRoot)
	if err != nil {
		return nil, err
	}
	dp, err := loader.Load(loader.Options{PinRoot: pins, CTMapSize: i.cfg.CTMapSize})
	if err != nil {
		return nil, err
	}
	i.dp, i.views, i.pins = dp, maps.New(&dp.Maps), pins
	if i.pinID, err = pinnedMapsID(pins); err != nil {
		return nil, err
	}
	return i.views, nil
}

// pinnedMapsID is the inode of the pinned maps' directory, which bpffs gives
// anew when the pins are removed and made again.
func pinnedMapsID(pins string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(pins, "maps"), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// releaseIfUnused removes the pinned datapath once no network and no
// endpoint is left, so a torn-down instance leaves nothing in bpffs.
func (i *Instance) releaseIfUnused(st *store) error {
	// Emptiness only: decoding every record (a 40000-port endpoint's
	// ports) after every command would be wasted.
	noNets, err := st.Empty(bucketNetworks)
	if err != nil || !noNets {
		return err
	}
	noEps, err := st.Empty(bucketEndpoints)
	if err != nil || !noEps {
		return err
	}
	pins := i.pins
	if pins == "" {
		return nil // this process loaded nothing
	}
	i.Close()
	if err := loader.RemovePins(pins); err != nil {
		return fmt.Errorf("remove pins: %w", err)
	}
	i.log.Info("no networks left: removed pinned datapath", "pins", pins)
	return nil
}

// undo collects rollback steps of a multi-step kernel change.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

// run executes the rollback steps in reverse order.
func (u *undo) run() {
	for j := len(*u) - 1; j >= 0; j-- {
		(*u)[j]()
	}
	*u = nil
}

// ReleaseIfUnused removes the pinned datapath if no network or endpoint uses
// it (e.g. when a daemon stops on an empty instance).
func (i *Instance) ReleaseIfUnused() error {
	return i.withStore(i.releaseIfUnused)
}

// StateDir is the instance's state directory.
func (i *Instance) StateDir() string { return i.cfg.StateDir }

// PinRoot is the instance's bpffs directory, as configured.
func (i *Instance) PinRoot() string { return i.cfg.PinRoot }

// LogPath is where a detached command's output goes (ebpfnet run -d),
// making its directory.
func (i *Instance) LogPath(name string) (string, error) {
	if err := netnsutil.ValidName(name); err != nil {
		return "", err
	}
	dir := filepath.Join(i.cfg.StateDir, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, name+".log"), nil
}
