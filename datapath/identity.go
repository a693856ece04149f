package datapath

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	boltstore "github.com/ebpfnet/ebpfnet/datapath/store"
	"github.com/ebpfnet/ebpfnet/loader"
)

// owner identifies the network namespace an instance's state belongs to.
// The kernel hands a dead namespace's inode to the next namespace at once,
// so an inode is no identity; a netns cookie is never reused while the
// machine is up, and the boot id tells a reboot from a reuse.
type owner struct {
	Cookie uint64 `json:"netns_cookie"`
	BootID string `json:"boot_id"`
}

var keyOwner = boltstore.KeyOwner

func currentOwner() (owner, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return owner{}, fmt.Errorf("netns cookie: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return owner{}, fmt.Errorf("netns cookie: %w", err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return owner{}, fmt.Errorf("boot id: %w", err)
	}
	return owner{Cookie: cookie, BootID: strings.TrimSpace(string(boot))}, nil
}

// checkOwner makes sure the store (and so the pins) belong to the network
// namespace this process runs in. State a dead namespace left under a
// reused inode is removed when the instance's paths were derived from the
// inode, refused when they were given explicitly. After a reboot the state
// is adopted: nothing of a dead namespace can be running any more.
func (i *Instance) checkOwner(st *store) error {
	cur, err := currentOwner()
	if err != nil {
		return err
	}
	var prev owner
	found := false
	err = st.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMeta).Get(keyOwner)
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, &prev)
	})
	if err != nil {
		return err
	}
	switch {
	case found && prev == cur:
		return nil
	case found && prev.BootID == cur.BootID && prev.Cookie != cur.Cookie:
		if !i.cfg.DerivedPaths {
			return fmt.Errorf("state dir %s belongs to another network namespace (netns cookie %d, this one is %d): use another --state-dir and --pin-root, or remove them", i.cfg.StateDir, prev.Cookie, cur.Cookie)
		}
		i.log.Warn("instance state belonged to a network namespace that no longer exists (its inode was reused): starting afresh", "state", i.cfg.StateDir, "pins", i.cfg.PinRoot)
		if err := i.forgetState(st); err != nil {
			return fmt.Errorf("remove a dead namespace's state: %w", err)
		}
	}
	raw, _ := json.Marshal(cur)
	return st.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyOwner, raw) })
}

// forgetState empties the store and removes the pins. The kernel objects
// they described (bridges, veths, links) died with their namespace.
func (i *Instance) forgetState(st *store) error {
	st.eps = nil
	// Everything goes, the firewall's rules too: they were a dead
	// namespace's policy.
	err := st.Reset()
	if err != nil {
		return err
	}
	i.Close()
	pins, err := loader.PreparePinRoot(i.cfg.PinRoot)
	if err != nil {
		return err
	}
	return loader.RemovePins(pins)
}
