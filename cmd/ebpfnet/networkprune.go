package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// pruneWarning is docker network prune's question, word for word.
const pruneWarning = `WARNING! This will remove all custom networks not used by at least one container.
Are you sure you want to continue?`

func newNetworkPruneCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [-f]",
		Short: "Remove the bridge networks no endpoint uses (like docker network prune)",
		Long: `Remove the bridge networks no endpoint uses, as docker network prune does,
and print their names. The default network "bridge", host and none are
never removed, nor overlay networks (the cluster's: network rm). Without
--force it asks first.`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			if !force && !confirmed(cmd.InOrStdin(), cmd.OutOrStdout(), pruneWarning) {
				return nil // as docker 20.10: nothing removed, no error
			}
			removed, err := inst.PruneNetworks()
			printPruned(cmd.OutOrStdout(), removed)
			return err
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

// printPruned prints what docker network prune prints: a heading, the
// names, a blank line; nothing when nothing was removed.
func printPruned(w io.Writer, removed []string) {
	if len(removed) == 0 {
		return
	}
	fmt.Fprintln(w, "Deleted Networks:")
	for _, name := range removed {
		fmt.Fprintln(w, name)
	}
	fmt.Fprintln(w)
}

// confirmed asks question with Docker's " [y/N] " and reads one line: only
// y or Y is a yes (end of input is a no).
func confirmed(in io.Reader, out io.Writer, question string) bool {
	fmt.Fprint(out, question+" [y/N] ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	answer := strings.TrimSpace(line)
	return answer == "y" || answer == "Y"
}

// isPredefined reports whether name is one of the networks Docker lists
// although nobody made them, and which no command removes: host and none
// (modes here, see predefinedRows).
func isPredefined(name string) bool {
	return name == string(datapath.ModeHost) || name == string(datapath.ModeNone)
}
