package datapath

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// PruneNetworks removes the bridge networks no endpoint uses, as `docker
// network prune` removes unused custom networks, and returns their names,
// sorted. It never removes the default network (Docker's predefined
// "bridge"), nor an overlay network: that is the cluster's, and whether
// another host uses it is the cluster's to say (`network rm`). The check
// and the removals are one store session, so an attach cannot slip in
// between. It keeps going past a network it fails to remove.
func (i *Instance) PruneNetworks() ([]string, error) {
	var removed []string
	var errs []error
	err := i.withStore(func(st *store) error {
		unused, err := unusedNetworks(st)
		if err != nil || len(unused) == 0 {
			return err
		}
		// Whatever a crash left on the bridges goes with them, as with rm.
		if err := i.sweepOrphans(st); err != nil {
			i.log.Warn("reconcile before network prune", "err", err)
		}
		for _, n := range unused {
			if err := i.removeNetwork(st, n); err != nil {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
				continue
			}
			i.log.Info("network removed", "name", n.Name, "by", "prune")
			removed = append(removed, n.Name)
		}
		if len(removed) == 0 {
			return nil
		}
		// As network rm does: the compiled firewall rules follow the
		// stored networks (a removed one's rules wait for its name).
		if err := i.applyFirewall(st); err != nil {
			return err
		}
		return i.releaseIfUnused(st)
	})
	return removed, errors.Join(append(errs, err)...)
}

// unusedNetworks are the networks PruneNetworks removes, sorted by name.
func unusedNetworks(st *store) ([]Network, error) {
	nets, err := st.networks()
	if err != nil {
		return nil, err
	}
	eps, err := st.endpoints()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, e := range eps {
		used[e.Network] = true
	}
	var out []Network
	for _, n := range nets {
		if !used[n.Name] && n.Name != DefaultNetwork && n.VNI == 0 {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
