package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/overlay"
)

// Docker's exit codes for `run` when the command's own status is not there.
const (
	exitRunFailed     = 125 // ebpfnet itself failed
	exitCannotExecute = 126 // CMD exists but cannot be executed
	exitNotFound      = 127 // CMD was not found
)

func newRunCmd(g *globals) *cobra.Command {
	var o runOptions
	var network networkFlag
	var ports publishFlags
	var detach bool
	var dns dnsFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Run a command with a Docker network mode",
		Long: `Run CMD in the network --network gives it, as docker run does:
  --network=bridge          a new named netns (see ip netns) on the default network
  --network=NETWORK         the same on a network made with ebpfnet network create
  --network=none            a new named netns with only lo
  --network=host            the host's namespace (the one ebpfnet runs in)
  --network=container:NAME  the namespace of endpoint NAME

With --rm, a namespace made for CMD is detached and deleted when CMD exits.
The exit status is CMD's; as with docker run, 125 means ebpfnet failed, 126
that CMD cannot be executed and 127 that it was not found.`,
		Example: `  ebpfnet run --network backend --name web --rm -p 8080:80 -- python3 -m http.server 80
  ebpfnet run --network container:web -- ss -ltn`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MinimumNArgs(1)(cmd, args); err != nil {
				return runFailed(err)
			}
			return nil
		},
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			m, err := network.mode()
			if err != nil {
				return runFailed(err)
			}
			o.Mode, o.Network, o.Container = m.Mode, m.Network, m.Container
			if err := checkMACFlag(o.Mode, o.MAC); err != nil {
				return runFailed(err)
			}
			if o.Ports, err = ports.requests(); err != nil {
				return runFailed(err)
			}
			if o.DNSOptions, err = dns.options(); err != nil {
				return runFailed(err)
			}
			if detach {
				return runDetached(cmd, g, inst, o, network.values, append(ports.args(), dns.args()...), args)
			}
			o.Cmd = args
			o.Stdin, o.Stdout, o.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			if os.Getenv(readyFDEnv) == "3" {
				// Started by run -d: tell it the endpoint is attached.
				os.Unsetenv(readyFDEnv)
				o.Ready = func() {
					ready := os.NewFile(3, "ready")
					ready.Write([]byte("ok\n"))
					ready.Close()
				}
			}
			var addr *overlay.Address
			if o.Mode == datapath.ModeBridge {
				agent := g.overlayAgent(inst)
				defer agent.Close()
				if addr, err = agent.Allocate(cmd.Context(), overlay.AddressRequest{Network: o.Network, Name: o.Name, IP: o.IP, IP6: o.IP6, MAC: o.MAC}); err != nil {
					return runFailed(err)
				}
			}
			if addr != nil {
				o.IP, o.IP6, o.MAC, o.FromCluster = addr.IP.String(), addr.IP6String(), addr.MAC, true
			}
			code, err := runProcess(cmd.Context(), inst, g.logger(slog.LevelWarn), o)
			if addr != nil {
				err = addr.ReleaseUnlessUsed(cmd.Context(), err)
			}
			var start *startError
			switch {
			case errors.As(err, &start) && (errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)):
				return exitError{code: exitNotFound, err: err}
			case errors.As(err, &start):
				return exitError{code: exitCannotExecute, err: err}
			case err != nil:
				return runFailed(err)
			case code != 0:
				return exitError{code: code}
			}
			return nil
		}),
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return runFailed(err) })
	f := cmd.Flags()
	network.register(f, "bridge, host, none, container:NAME or a network's name (alias --net)")
	f.StringVar(&o.Name, "name", "", "name of the netns and endpoint (default: generated)")
	f.BoolVar(&o.Rm, "rm", false, "detach and delete the namespace when CMD exits")
	f.BoolVarP(&detach, "detach", "d", false, "run CMD in the background (output in `ebpfnet logs NAME`); its endpoint is freed when it exits")
	f.StringVar(&o.IP, "ip", "", "IPv4 address")
	f.StringVar(&o.IP6, "ip6", "", "IPv6 address on a dual-stack network")
	macAddressFlag(f, &o.MAC)
	ports.register(f)
	dns.register(f)
	return cmd
}

func runFailed(err error) error { return exitError{code: exitRunFailed, err: err} }

// runDetached starts `ebpfnet run --rm` for CMD in the background, as its
// own session, so the endpoint is freed when CMD exits, and returns once the
// endpoint is attached, printing its name.
func runDetached(cmd *cobra.Command, g *globals, inst *datapath.Instance, o runOptions, networks, extra, args []string) error {
	if o.Mode == datapath.ModeHost || o.Mode == datapath.ModeContainer {
		return runFailed(errors.New("-d needs a namespace of its own: bridge mode or --network=none"))
	}
	if o.Name == "" {
		o.Name = "ebpfnet-" + randomSuffix()
	}
	if err := datapath.ValidName(o.Name); err != nil {
		return runFailed(err)
	}
	self, err := os.Executable()
	if err != nil {
		return runFailed(err)
	}
	child := []string{"--state-dir", inst.StateDir(), "--pin-root", inst.PinRoot()}
	if g.clusterStore != "" {
		child = append(child, "--cluster-store", g.clusterStore)
	}
	child = append(child, "run", "--rm", "--name", o.Name)
	for _, n := range networks {
		child = append(child, "--network", n)
	}
	if o.IP != "" {
		child = append(child, "--ip", o.IP)
	}
	if o.IP6 != "" {
		child = append(child, "--ip6", o.IP6)
	}
	if o.MAC != "" {
		child = append(child, "--mac-address", o.MAC)
	}
	child = append(child, extra...)
	logPath, err := inst.LogPath(o.Name)
	if err != nil {
		return runFailed(err)
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return runFailed(err)
	}
	defer log.Close()
	c := exec.Command(self, append(append(child, "--"), args...)...)
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if g.verbose {
		c.Args = append([]string{c.Args[0], "--verbose"}, c.Args[1:]...)
	}
	// The child says "ok" on a pipe once attached; EOF without it means it
	// failed, and its log says why.
	readR, readW, err := os.Pipe()
	if err != nil {
		return runFailed(err)
	}
	defer readR.Close()
	c.ExtraFiles = []*os.File{readW}
	c.Env = append(os.Environ(), readyFDEnv+"=3")
	err = c.Start()
	readW.Close()
	if err != nil {
		return runFailed(err)
	}
	go c.Wait() // reap it if it ends while we are here; it outlives us otherwise
	readR.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 3)
	if n, _ := io.ReadFull(readR, buf); n == 3 && string(buf) == "ok\n" {
		fmt.Fprintln(cmd.OutOrStdout(), o.Name)
		return nil
	}
	out, _ := os.ReadFile(logPath)
	why := strings.TrimSpace(strings.ReplaceAll(string(out), "ebpfnet: ", ""))
	if why == "" {
		why = "no word from it in 60s (see " + logPath + ")"
	}
	return runFailed(fmt.Errorf("run -d: %s", why))
}

// readyFDEnv tells a run started by run -d that fd 3 is where to say it is
// attached.
const readyFDEnv = "EBPFNET_READY_FD"

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
