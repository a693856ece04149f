package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// LocalStore is the host's own record of the endpoints it runs: the truth a
// host that comes back re-registers in the cluster store (and whatever the
// cluster store has of it that the local store lacks is stale).
type LocalStore interface {
	Endpoints() ([]Endpoint, error)
	PutEndpoint(Endpoint) error
	DeleteEndpoint(network string, ip netip.Addr) error
}

// FileStore is a LocalStore in a JSON file, safe between processes (flock).
type FileStore struct{ Path string }

// NewFileStore keeps the host's endpoints in dir/cluster-endpoints.json.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &FileStore{Path: filepath.Join(dir, "cluster-endpoints.json")}, nil
}

func (f *FileStore) locked(write bool, fn func(eps []Endpoint) ([]Endpoint, error)) error {
	lk, err := os.OpenFile(f.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lk.Close()
	if err := unix.Flock(int(lk.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	var eps []Endpoint
	b, err := os.ReadFile(f.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &eps); err != nil {
			return fmt.Errorf("local cluster store %s: %w", f.Path, err)
		}
	}
	eps, err = fn(eps)
	if err != nil || !write {
		return err
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		if c := strings.Compare(a.Network, b.Network); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	b, _ = json.MarshalIndent(eps, "", "  ")
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.Path)
}

// Endpoints lists the recorded endpoints.
func (f *FileStore) Endpoints() ([]Endpoint, error) {
	var out []Endpoint
	err := f.locked(false, func(eps []Endpoint) ([]Endpoint, error) { out = eps; return eps, nil })
	return out, err
}

// PutEndpoint records (or replaces) an endpoint.
func (f *FileStore) PutEndpoint(e Endpoint) error {
	return f.locked(true, func(eps []Endpoint) ([]Endpoint, error) {
		eps = slices.DeleteFunc(eps, func(x Endpoint) bool { return x.Network == e.Network && x.IP == e.IP })
		return append(eps, e), nil
	})
}

// DeleteEndpoint forgets an endpoint.
func (f *FileStore) DeleteEndpoint(network string, ip netip.Addr) error {
	return f.locked(true, func(eps []Endpoint) ([]Endpoint, error) {
		return slices.DeleteFunc(eps, func(x Endpoint) bool { return x.Network == network && x.IP == ip }), nil
	})
}

// SetHost records the name this host joined the cluster as, for the other
// processes of the host (Joined needs it).
func (f *FileStore) SetHost(name string) error {
	p := filepath.Join(filepath.Dir(f.Path), "cluster-host")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(name+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Host is the name SetHost recorded.
func (f *FileStore) Host() (string, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(f.Path), "cluster-host"))
	if errors.Is(err, os.ErrNotExist) {
		return "", errors.New("this host has not joined the cluster: start ebpfnet daemon --advertise-addr IP (with the same --state-dir)")
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
