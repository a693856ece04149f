// Command ebpfnet-cni is ebpfnet as a CNI plugin (installed as
// /opt/cni/bin/ebpfnet): bridge mode on an ebpfnet network, with published
// ports (capability portMappings), requested addresses (ips) and MACs (mac),
// optional delegated IPAM, and CHECK, GC and STATUS. Endpoints it makes are
// ordinary ebpfnet endpoints keyed by container ID and interface name.
package main

import (
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Plugin-specific error codes (the CNI spec reserves 1-99).
const (
	// codeRefused: ebpfnet refused or failed the change (address taken,
	// port published, interface exists, kernel error); nothing was changed.
	codeRefused uint = 100
	// codeUnhealthy: CHECK found the endpoint differs from its record.
	codeUnhealthy uint = 101
)

// supported are the CNI versions the plugin speaks; results are converted to
// the config's version by the library.
var supported = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		GC:     cmdGC,
		Status: cmdStatus,
	}, supported, "ebpfnet CNI plugin: container networking in eBPF")
}

// open opens the instance the config selects.
func open(conf *NetConf) (*datapath.Instance, error) {
	inst, err := datapath.Open(conf.instanceConfig())
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "open ebpfnet instance", err.Error())
	}
	return inst, nil
}

// refused wraps a datapath error as a CNI error, keeping CNI errors as they are.
func refused(msg string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(codeRefused, msg+": "+err.Error(), "")
}
