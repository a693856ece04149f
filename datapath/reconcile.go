package datapath

// Reconcile frees endpoints whose container is gone (InUse: it died
// without a detach) and removes kernel objects no stored network or
// endpoint accounts for (sweepOrphans), and compiles the stored firewall
// rules into the datapath again if it holds others. It returns the
// endpoints it freed.
func (i *Instance) Reconcile() ([]string, error) {
	var gone []string
	err := i.withStore(func(st *store) error {
		eps, err := st.endpoints()
		if err != nil {
			return err
		}
		for _, ep := range eps {
			if i.InUse(ep) {
				continue
			}
			if err := i.teardown(ep); err != nil {
				i.log.Warn("reconcile: teardown", "endpoint", ep.Name, "err", err)
			}
			if err := st.deleteEndpoint(ep.Name); err != nil {
				return err
			}
			i.log.Info("reconcile: the endpoint's container is gone (InUse): endpoint freed",
				"endpoint", ep.Name, "netns", ep.Netns, "veth", ep.HostVeth, "ip", ep.IP)
			gone = append(gone, ep.Name)
		}
		i.repairNetworks(st) // a stored network that lost its bridge gets it back
		// Then the kernel against the store: what a crashed command left.
		if err := i.sweepOrphans(st); err != nil {
			return err
		}
		// Logged, not returned: a daemon that cannot apply the firewall
		// still frees endpoints and collects conntrack.
		if fixed, err := i.reconcileFirewall(st); err != nil {
			i.log.Warn("reconcile: firewall rules", "err", err)
		} else if fixed {
			i.log.Warn("reconcile: the datapath's firewall rules differed from the stored ones: applied the stored rules")
		}
		return nil
	})
	return gone, err
}
