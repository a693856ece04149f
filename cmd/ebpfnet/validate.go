package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// ctMapSizeUsers are the commands that load the datapath and may create it
// with --ct-map-size; it is fixed afterwards while the datapath is pinned.
var ctMapSizeUsers = map[string]bool{
	"ebpfnet network create": true,
	"ebpfnet attach":         true,
	"ebpfnet run":            true,
	"ebpfnet daemon":         true,
}

// checkCTMapSizeFlag refuses an explicit --ct-map-size on a command that
// would ignore it (the env variable, a standing setting, is not refused).
func checkCTMapSizeFlag(cmd *cobra.Command) error {
	if f := cmd.Flags().Lookup("ct-map-size"); f != nil && f.Changed && !ctMapSizeUsers[cmd.CommandPath()] {
		return fmt.Errorf("--ct-map-size sizes the conntrack table when the datapath is created: only network create, attach, run and daemon take it, not %q", cmd.CommandPath())
	}
	return nil
}
