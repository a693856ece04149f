package datapath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// RunOptions are the flags of `ebpfnet run`.
type RunOptions struct {
	Mode      Mode
	Container string // ModeContainer: the endpoint whose namespace CMD shares
	Name      string // bridge/none: netns and endpoint name; empty: generated
	Rm        bool   // bridge/none: detach and delete the netns when CMD exits
	Network   string
	IP        string
	MAC       string // empty: derived from the IP
	// FromCluster: IP and MAC were allocated in the cluster store (an
	// overlay network's, see AttachOptions).
	FromCluster bool
	Ports       []PortRequest
	DNSOptions  // --network-alias, --dns, --add-host (dns.go)
	Cmd         []string
	Stdin       io.Reader
	Stdout      io.Writer
	Stderr      io.Writer
	// Ready, if set, is called once the namespace is attached, before CMD
	// starts (ebpfnet run -d waits for it).
	Ready func()
}

// NetworkMode is what Docker's --network value means: a mode, and for
// bridge mode the network (empty: the default network), for container mode
// the endpoint whose namespace is shared.
type NetworkMode struct {
	Mode      Mode
	Network   string
	Container string
}

// ParseNetworkMode reads a --network value as Docker does: bridge, host,
// none, container:NAME, or the name of a network (bridge mode on it).
func ParseNetworkMode(v string) (NetworkMode, error) {
	if name, ok := strings.CutPrefix(v, "container:"); ok {
		if err := netnsutil.ValidName(name); err != nil {
			return NetworkMode{}, fmt.Errorf("--network=container:NAME: %w", err)
		}
		return NetworkMode{Mode: ModeContainer, Container: name}, nil
	}
	switch Mode(v) {
	case ModeBridge:
		return NetworkMode{Mode: ModeBridge}, nil
	case ModeHost, ModeNone:
		return NetworkMode{Mode: Mode(v)}, nil
	}
	if err := netnsutil.ValidName(v); err != nil {
		return NetworkMode{}, fmt.Errorf("invalid --network %q: want bridge, host, none, container:NAME or a network's name", v)
	}
	return NetworkMode{Mode: ModeBridge, Network: v}, nil
}

// StartError is CMD failing to start: not found, or not executable.
type StartError struct {
	Cmd string
	Err error
}

func (e *StartError) Error() string { return fmt.Sprintf("start %s: %v", e.Cmd, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

// reservedNetworkNames are the --network values that are modes, not
// networks, so no network may take them (Docker refuses them too).
var reservedNetworkNames = []string{string(ModeHost), string(ModeNone)}

// Run starts CMD in the namespace the mode gives it and waits for it. It
// returns CMD's exit code. Signals ebpfnet receives are passed on to CMD.
func (i *Instance) Run(ctx context.Context, o RunOptions) (int, error) {
	if len(o.Cmd) == 0 {
		return 0, errors.New("no command given (ebpfnet run [flags] -- CMD [ARG...])")
	}
	mode, shared := o.Mode, o.Container
	switch mode {
	case ModeContainer:
		if err := netnsutil.ValidName(shared); err != nil {
			return 0, fmt.Errorf("--network=container:NAME: %w", err)
		}
	case ModeBridge, ModeHost, ModeNone:
	default:
		return 0, fmt.Errorf("invalid network mode %q", mode)
	}
	if mode != ModeBridge && (len(o.Ports) > 0 || o.Network != "" || o.IP != "" || o.MAC != "") {
		return 0, fmt.Errorf("-p, --ip and --mac-address need bridge mode (--network=bridge or a network's name)")
	}
	var ns netnsutil.Namespace
	var err error
	switch mode {
	case ModeHost:
		if ns, err = netnsutil.Current(); err != nil {
			return 0, err
		}
	case ModeContainer:
		var ep Endpoint
		err := i.withStore(func(st *store) (err error) {
			ep, err = findEndpoint(st, shared)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("--network=container:%s: %w", shared, err)
		}
		if ns, err = netnsutil.Resolve(ep.Netns); err != nil {
			return 0, fmt.Errorf("--network=container:%s: namespace gone: %w", shared, err)
		}
	default:
		name := o.Name
		if name == "" {
			name = "ebpfnet-" + randomHex(4)
		}
		if ns, err = i.createAndAttach(name, mode, o); err != nil {
			return 0, err
		}
		if o.Rm {
			defer func() {
				if _, derr := i.Detach(name); derr != nil {
					i.log.Error("detach after run", "endpoint", name, "err", derr)
				}
				if derr := netnsutil.DeleteNamed(name); derr != nil {
					i.log.Error("delete netns after run", "netns", name, "err", derr)
				}
			}()
		}
	}
	if o.Ready != nil {
		o.Ready()
	}
	return runIn(ctx, ns, o, etcDirFor(ns.Ref))
}

func (i *Instance) createAndAttach(name string, mode Mode, o RunOptions) (netnsutil.Namespace, error) {
	// Validate what can be validated before creating anything.
	if err := netnsutil.ValidName(name); err != nil {
		return netnsutil.Namespace{}, err
	}
	if _, err := ports.CheckRequests(o.Ports); err != nil {
		return netnsutil.Namespace{}, err
	}
	if err := CheckMAC(o.MAC); err != nil {
		return netnsutil.Namespace{}, err
	}
	ns, err := netnsutil.CreateNamed(name)
	if err != nil {
		return ns, err
	}
	_, err = i.Attach(AttachOptions{Mode: mode, Network: o.Network, IP: o.IP, MAC: o.MAC, FromCluster: o.FromCluster,
		PortRequests: o.Ports, Target: ns.Ref, Name: name, ownNetns: true, DNSOptions: o.DNSOptions})
	if err != nil {
		netnsutil.DeleteNamed(name)
		return ns, err
	}
	return ns, nil
}

func runIn(ctx context.Context, ns netnsutil.Namespace, o RunOptions, etcDir string) (int, error) {
	cmd := exec.Command(o.Cmd[0], o.Cmd[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := startWithEtc(ns, cmd, etcDir); err != nil {
		return 0, &StartError{Cmd: o.Cmd[0], Err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctxDone := ctx.Done()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case <-ctxDone:
			cmd.Process.Signal(syscall.SIGTERM)
			ctxDone = nil
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				if st, ok := exit.Sys().(syscall.WaitStatus); ok && st.Signaled() {
					return 128 + int(st.Signal()), nil
				}
				return exit.ExitCode(), nil
			}
			return 0, err
		}
	}
}
