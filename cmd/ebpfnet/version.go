package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/metrics"
)

// versionLine is what `ebpfnet version` and `--version` print; the same
// version labels ebpfnet_build_info.
func versionLine() string {
	return fmt.Sprintf("ebpfnet version %s, %s %s/%s", metrics.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the build's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}
