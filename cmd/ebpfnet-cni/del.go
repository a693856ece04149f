package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// cmdDel removes the endpoint and hands its address back to delegated IPAM.
// It succeeds when the namespace, the endpoint or the whole instance is
// already gone, as the spec requires; it fails only when something that is
// still there could not be removed (the runtime retries).
func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	inst, err := open(conf)
	if err != nil {
		return err
	}
	defer inst.Close()
	var errs []error
	if ep, found, err := inst.RemoveEndpoint(args.ContainerID, args.IfName); err != nil {
		errs = append(errs, err)
	} else if found && conf.overlay() {
		if err := releaseOverlay(context.TODO(), inst, conf, ep); err != nil {
			errs = append(errs, err)
		}
	}
	if conf.hasIPAM() {
		if err := invoke.DelegateDel(context.TODO(), conf.IPAM.Type, args.StdinData, nil); err != nil {
			errs = append(errs, fmt.Errorf("ipam %s: %w", conf.IPAM.Type, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return refused("delete", err)
	}
	return nil
}

// cmdCheck verifies the endpoint against prevResult and against the kernel.
func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult", "")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "prevResult", err.Error())
	}
	if conf.hasIPAM() {
		if err := invoke.DelegateCheck(context.TODO(), conf.IPAM.Type, args.StdinData, nil); err != nil {
			return refused("ipam "+conf.IPAM.Type, err)
		}
	}
	inst, err := open(conf)
	if err != nil {
		return err
	}
	defer inst.Close()
	ep, found, err := inst.EndpointFor(args.ContainerID, args.IfName)
	if err != nil {
		return refused("look up endpoint", err)
	}
	if !found {
		return types.NewError(codeUnhealthy, fmt.Sprintf("no ebpfnet endpoint for container %s interface %s", args.ContainerID, args.IfName), "")
	}
	problems := checkPrevResult(prev, args, ep)
	more, err := inst.CheckEndpoint(ep)
	if err != nil {
		return refused("check", err)
	}
	if problems = append(problems, more...); len(problems) > 0 {
		return types.NewError(codeUnhealthy, fmt.Sprintf("endpoint %s: %s", ep.Name, strings.Join(problems, "; ")), "")
	}
	return nil
}

// checkPrevResult compares what ADD reported with the endpoint's record.
func checkPrevResult(prev *current.Result, args *skel.CmdArgs, ep datapath.Endpoint) []string {
	var problems []string
	idx := slices.IndexFunc(prev.Interfaces, func(i *current.Interface) bool {
		return i.Name == args.IfName && i.Sandbox != ""
	})
	if idx < 0 {
		return []string{fmt.Sprintf("prevResult has no interface %s in a sandbox", args.IfName)}
	}
	if i := prev.Interfaces[idx]; i.Sandbox != args.Netns {
		problems = append(problems, fmt.Sprintf("prevResult sandbox %s, CNI_NETNS is %s", i.Sandbox, args.Netns))
	} else if i.Mac != "" && !strings.EqualFold(i.Mac, ep.MAC) {
		problems = append(problems, fmt.Sprintf("prevResult MAC %s, endpoint has %s", i.Mac, ep.MAC))
	}
	for _, want := range []netip.Addr{ep.IP, ep.IP6} {
		if want.IsValid() && !slices.ContainsFunc(prev.IPs, func(c *current.IPConfig) bool {
			a, ok := netip.AddrFromSlice(c.Address.IP)
			return ok && a.Unmap() == want
		}) {
			problems = append(problems, fmt.Sprintf("prevResult lacks the endpoint's address %s", want))
		}
	}
	return problems
}

// cmdGC removes this network's CNI-made endpoints that are not in
// cni.dev/valid-attachments and whose namespace is gone. Endpoints other
// front ends made (the CLI's, without a container ID; Docker's prepared
// ones) are never touched, nor is one whose namespace still exists
// (datapath's InUse, the rule prune and the daemon follow too): another
// runtime may share the network, and a runtime's list is no proof that a
// container is gone. DEL removes such an endpoint.
func cmdGC(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	inst, err := open(conf)
	if err != nil {
		return err
	}
	defer inst.Close()
	valid := map[types.GCAttachment]bool{}
	for _, a := range conf.ValidAttachments {
		valid[a] = true
	}
	eps, err := inst.Endpoints()
	if err != nil {
		return refused("list endpoints", err)
	}
	var errs []error
	for _, ep := range eps {
		if !madeByCNI(ep) || ep.Network != conf.Name || valid[types.GCAttachment{ContainerID: ep.ContainerID, IfName: ep.Interface()}] || inst.InUse(ep) {
			continue
		}
		if removed, found, err := inst.RemoveEndpoint(ep.ContainerID, ep.Interface()); err != nil {
			errs = append(errs, err)
		} else if found && conf.overlay() {
			if err := releaseOverlay(context.TODO(), inst, conf, removed); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if conf.hasIPAM() {
		if err := invoke.DelegateGC(context.TODO(), conf.IPAM.Type, args.StdinData, nil); err != nil && !tooOld(err) {
			errs = append(errs, fmt.Errorf("ipam %s: %w", conf.IPAM.Type, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return refused("gc", err)
	}
	return nil
}

// madeByCNI reports whether a CNI ADD made the endpoint: keyed by a
// container ID, and not prepared for a runtime that moves the interface
// itself (Docker's driver also keys its endpoints by an ID).
func madeByCNI(ep datapath.Endpoint) bool {
	return ep.ContainerID != "" && ep.PeerName == ""
}

// cmdStatus reports whether ADD can work: the instance's state opens and its
// datapath loads (bpffs mounted, pin root writable, programs verified).
func cmdStatus(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	inst, err := open(conf)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "ebpfnet is not available", err.Error())
	}
	defer inst.Close()
	if err := inst.Ready(); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "ebpfnet datapath cannot be loaded: "+err.Error(), "")
	}
	if conf.hasIPAM() {
		if err := invoke.DelegateStatus(context.TODO(), conf.IPAM.Type, args.StdinData, nil); err != nil && !tooOld(err) {
			return types.NewError(types.ErrPluginNotAvailable, "ipam "+conf.IPAM.Type+" is not ready: "+err.Error(), "")
		}
	}
	return nil
}

// tooOld reports a delegate that predates GC and STATUS (CNI < 1.1.0, such
// as Debian's host-local 1.1.1): nothing to ask it then.
func tooOld(err error) bool {
	var te *types.Error
	return errors.As(err, &te) && te.Code == types.ErrIncompatibleCNIVersion
}
