package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// How `ebpfnet run` runs CMD: in a namespace it makes and attaches (or
// the host's, or an endpoint's), with the namespace's resolv.conf and hosts
// bound over /etc as `ip netns exec` does, passing signals on. datapath
// only attaches and detaches; the process is the CLI's, as are its logs
// (logs.go) and rm (rm.go).

// runOptions are the flags of `ebpfnet run`.
type runOptions struct {
	Mode      datapath.Mode
	Container string // ModeContainer: the endpoint whose namespace CMD shares
	Name      string // bridge/none: netns and endpoint name; empty: generated
	Rm        bool   // bridge/none: detach and delete the netns when CMD exits
	Network   string
	IP        string
	IP6       string // on a dual-stack network; empty: allocated
	MAC       string // empty: derived from the IP
	// FromCluster: IP and MAC were allocated in the cluster store (an
	// overlay network's, see AttachOptions).
	FromCluster         bool
	Ports               []ports.Request
	datapath.DNSOptions // --network-alias, --dns, --add-host
	Cmd                 []string
	Stdin               io.Reader
	Stdout              io.Writer
	Stderr              io.Writer
	// Ready, if set, is called once the namespace is attached, before CMD
	// starts (ebpfnet run -d waits for it).
	Ready func()
}

// startError is CMD failing to start: not found, or not executable.
type startError struct {
	Cmd string
	Err error
}

func (e *startError) Error() string { return fmt.Sprintf("start %s: %v", e.Cmd, e.Err) }
func (e *startError) Unwrap() error { return e.Err }

// runProcess starts CMD in the namespace the mode gives it and waits for
// it. It returns CMD's exit code. Signals ebpfnet receives are passed on to
// CMD.
func runProcess(ctx context.Context, inst *datapath.Instance, log *slog.Logger, o runOptions) (int, error) {
	if len(o.Cmd) == 0 {
		return 0, errors.New("no command given (ebpfnet run [flags] -- CMD [ARG...])")
	}
	mode, shared := o.Mode, o.Container
	switch mode {
	case datapath.ModeContainer:
		if err := netnsutil.ValidName(shared); err != nil {
			return 0, fmt.Errorf("--network=container:NAME: %w", err)
		}
	case datapath.ModeBridge, datapath.ModeHost, datapath.ModeNone:
	default:
		return 0, fmt.Errorf("invalid network mode %q", mode)
	}
	if mode != datapath.ModeBridge && (len(o.Ports) > 0 || o.Network != "" || o.IP != "" || o.MAC != "") {
		return 0, fmt.Errorf("-p, --ip and --mac-address need bridge mode (--network=bridge or a network's name)")
	}
	var ns netnsutil.Namespace
	var err error
	switch mode {
	case datapath.ModeHost:
		if ns, err = netnsutil.Current(); err != nil {
			return 0, err
		}
	case datapath.ModeContainer:
		netns, err := inst.EndpointNetns(shared)
		if err != nil {
			return 0, fmt.Errorf("--network=container:%s: %w", shared, err)
		}
		if ns, err = netnsutil.Resolve(netns); err != nil {
			return 0, fmt.Errorf("--network=container:%s: namespace gone: %w", shared, err)
		}
	default:
		name := o.Name
		if name == "" {
			name = "ebpfnet-" + randomSuffix()
		}
		if ns, err = createAndAttach(inst, name, mode, o); err != nil {
			return 0, err
		}
		if o.Rm {
			defer func() {
				if _, derr := inst.Detach(name); derr != nil {
					log.Error("detach after run", "endpoint", name, "err", derr)
				}
				if derr := netnsutil.DeleteNamed(name); derr != nil {
					log.Error("delete netns after run", "netns", name, "err", derr)
				}
			}()
		}
	}
	if o.Ready != nil {
		o.Ready()
	}
	return runIn(ctx, ns, o, datapath.EtcDir(ns.Ref))
}

// createAndAttach makes the named namespace name and attaches it; the
// endpoint owns it (rm and run --rm delete it).
func createAndAttach(inst *datapath.Instance, name string, mode datapath.Mode, o runOptions) (netnsutil.Namespace, error) {
	// Validate what can be validated before creating anything.
	if err := netnsutil.ValidName(name); err != nil {
		return netnsutil.Namespace{}, err
	}
	if _, err := ports.CheckRequests(o.Ports); err != nil {
		return netnsutil.Namespace{}, err
	}
	if err := datapath.CheckMAC(o.MAC); err != nil {
		return netnsutil.Namespace{}, err
	}
	ns, err := netnsutil.CreateNamed(name)
	if err != nil {
		return ns, err
	}
	_, err = inst.Attach(datapath.AttachOptions{Mode: mode, Network: o.Network, IP: o.IP, IP6: o.IP6, MAC: o.MAC, FromCluster: o.FromCluster,
		PortRequests: o.Ports, Target: ns.Ref, Name: name, OwnNetns: true, DNSOptions: o.DNSOptions})
	if err != nil {
		netnsutil.DeleteNamed(name)
		return ns, err
	}
	return ns, nil
}

func runIn(ctx context.Context, ns netnsutil.Namespace, o runOptions, etcDir string) (int, error) {
	cmd := exec.Command(o.Cmd[0], o.Cmd[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := startWithEtc(ns, cmd, etcDir); err != nil {
		return 0, &startError{Cmd: o.Cmd[0], Err: err}
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

// startWithEtc starts cmd in ns as `ip netns exec` does: when etcDir (the
// namespace's /etc/netns/NAME) holds resolv.conf or hosts, cmd gets a
// private mount namespace with them bound over /etc's.
func startWithEtc(ns netnsutil.Namespace, cmd *exec.Cmd, etcDir string) error {
	var binds [][2]string
	for _, f := range []string{"resolv.conf", "hosts"} {
		src, dst := filepath.Join(etcDir, f), filepath.Join("/etc", f)
		if etcDir == "" {
			break
		}
		if _, err := os.Stat(src); err == nil {
			if _, err := os.Stat(dst); err == nil {
				binds = append(binds, [2]string{src, dst})
			}
		}
	}
	if len(binds) == 0 {
		return netnsutil.Start(ns, cmd)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread's mount namespace changes for good: it is never
		// unlocked, so it dies with this goroutine. The main thread is not
		// ended that way (see package mountns): hand the work on.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			errc <- startWithEtc(ns, cmd, etcDir)
			runtime.UnlockOSThread()
			return
		}
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			for _, b := range binds {
				if err := unix.Mount(b[0], b[1], "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("bind %s over %s: %w", b[0], b[1], err)
				}
			}
			return netnsutil.Start(ns, cmd)
		}()
	}()
	return <-errc
}
