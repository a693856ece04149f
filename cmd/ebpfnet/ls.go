package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

func newLsCmd(g *globals) *cobra.Command {
	var out *listFlags
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"ps"},
		Short:   "List endpoints",
		Long: `ls lists endpoints. The NAME column shows an endpoint's container name
when ebpfnet knows it (the Docker plugin asks dockerd), as docker ps's
NAMES does; -q, --format '{{.Name}}' and -o json keep the endpoint's own
name (for Docker, the endpoint's short ID). Commands take either.`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			eps, err := inst.EndpointStatuses()
			if err != nil {
				return err
			}
			return printList(cmd, out, eps, func(e datapath.EndpointStatus) string { return e.Name }, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tMODE\tNETWORK\tIP\tPORTS\tSTATUS\tHOST VETH\tNETNS")
				for _, e := range eps {
					// As docker ps's NAMES: the container's name when known;
					// -q and --format '{{.Name}}' keep the endpoint's own.
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.DisplayName(), e.Mode, dash(e.Network), dash(addrString(e.Endpoint)),
						dash(portsColumn(e.Ports)), e.Status, dash(e.HostVeth), dash(e.Netns))
				}
			})
		}),
	}
	out = newListFlags(cmd.Flags(), true)
	return cmd
}

// addrString is e's addresses, IPv4 then IPv6, comma-separated.
func addrString(e datapath.Endpoint) string {
	var out []string
	for _, a := range []netip.Addr{e.IP, e.IP6} {
		if a.IsValid() {
			out = append(out, a.String())
		}
	}
	return strings.Join(out, ",")
}

// portsColumn writes published ports as docker ps does, consecutive ports
// folded into ranges: 0.0.0.0:8080->80/tcp, 0.0.0.0:9000-9009->7000-7009/udp.
func portsColumn(ps []ports.Mapping) string {
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1].Proto == ps[i].Proto && ps[j+1].HostIP == ps[i].HostIP &&
			ps[j+1].HostPort == ps[j].HostPort+1 && ps[j+1].ContainerPort == ps[j].ContainerPort+1 {
			j++
		}
		host, ctr := fmt.Sprint(ps[i].HostPort), fmt.Sprint(ps[i].ContainerPort)
		if j > i {
			host += fmt.Sprintf("-%d", ps[j].HostPort)
			ctr += fmt.Sprintf("-%d", ps[j].ContainerPort)
		}
		parts = append(parts, fmt.Sprintf("%s:%s->%s/%s", ports.HostAddrString(ps[i].HostIP), host, ctr, ps[i].Proto))
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
