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
	Ports     []PortMapping
	Cmd       []string
	Stdin     io.Reader
	Stdout    io.Writer
	Stderr    io.Writer
}

// ParseMode splits a --net value into its mode and, for container:NAME, the
// endpoint whose namespace is shared.
func ParseMode(net string) (Mode, string, error) {
	if name, ok := strings.CutPrefix(net, "container:"); ok {
		if err := netnsutil.ValidName(name); err != nil {
			return "", "", fmt.Errorf("--net=container:NAME: %w", err)
		}
		return ModeContainer, name, nil
	}
	switch m := Mode(net); m {
	case ModeBridge, ModeHost, ModeNone:
		return m, "", nil
	}
	return "", "", fmt.Errorf("invalid --net %q: want bridge, host, none or container:NAME", net)
}

// Run starts CMD in the namespace the mode gives it and waits for it. It
// returns CMD's exit code. Signals ebpfnet receives are passed on to CMD.
func (i *Instance) Run(ctx context.Context, o RunOptions) (int, error) {
	if len(o.Cmd) == 0 {
		return 0, errors.New("no command given (ebpfnet run [flags] -- CMD [ARG...])")
	}
	mode, shared := o.Mode, o.Container
	if mode == ModeContainer {
		if err := netnsutil.ValidName(shared); err != nil {
			return 0, fmt.Errorf("--net=container:NAME: %w", err)
		}
	} else if _, _, err := ParseMode(string(mode)); err != nil {
		return 0, err
	}
	if mode != ModeBridge && (len(o.Ports) > 0 || o.Network != "" || o.IP != "") {
		return 0, fmt.Errorf("-p, --network and --ip need --net=bridge")
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
			return 0, fmt.Errorf("--net=container:%s: %w", shared, err)
		}
		if ns, err = netnsutil.Resolve(ep.Netns); err != nil {
			return 0, fmt.Errorf("--net=container:%s: namespace gone: %w", shared, err)
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
	return runIn(ctx, ns, o)
}

func (i *Instance) createAndAttach(name string, mode Mode, o RunOptions) (netnsutil.Namespace, error) {
	// Validate what can be validated before creating anything.
	if err := netnsutil.ValidName(name); err != nil {
		return netnsutil.Namespace{}, err
	}
	if _, err := checkPorts(o.Ports); err != nil {
		return netnsutil.Namespace{}, err
	}
	ns, err := netnsutil.CreateNamed(name)
	if err != nil {
		return ns, err
	}
	_, err = i.Attach(AttachOptions{Mode: mode, Network: o.Network, IP: o.IP, Ports: o.Ports, Target: ns.Ref, Name: name, ownNetns: true})
	if err != nil {
		netnsutil.DeleteNamed(name)
		return ns, err
	}
	return ns, nil
}

func runIn(ctx context.Context, ns netnsutil.Namespace, o RunOptions) (int, error) {
	cmd := exec.Command(o.Cmd[0], o.Cmd[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := netnsutil.Start(ns, cmd); err != nil {
		return 0, fmt.Errorf("start %s: %w", o.Cmd[0], err)
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
