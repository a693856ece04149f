package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// macAddressFlag registers Docker's --mac-address on attach and run.
func macAddressFlag(f *pflag.FlagSet, mac *string) {
	f.StringVar(mac, "mac-address", "", "container MAC address, unicast (default: derived from the IP, as Docker does)")
}

// checkMACFlag refuses a --mac-address that attach would refuse, before
// anything is made (run's namespace, an overlay address in the cluster):
// not a unicast Ethernet address, or a mode without an interface of ours.
func checkMACFlag(mode datapath.Mode, mac string) error {
	if mac == "" {
		return nil
	}
	if mode != datapath.ModeBridge {
		return fmt.Errorf("conflicting options: --mac-address and --network=%s (a MAC needs bridge mode)", mode)
	}
	if err := datapath.CheckMAC(mac); err != nil {
		return fmt.Errorf("--mac-address: %w", err)
	}
	return nil
}
