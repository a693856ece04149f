package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/netperf"
)

// tool runs a traffic subcommand (inside a namespace, started by the
// benchmark) and reports whether args named one.
func tool(args []string) bool {
	if len(args) == 0 {
		return false
	}
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	var err error
	var out any
	switch args[0] {
	case "serve":
		name := fs.String("name", "", "name the server answers with")
		addr := fs.String("addr", ":80", "TCP and UDP listen address")
		fs.Parse(args[1:])
		if err := netperf.ServeUntilSignal(*name, *addr); err != nil {
			fail(err)
		}
		return true
	case "check":
		network := fs.String("net", "tcp4", "tcp4 or udp4")
		addr := fs.String("addr", "", "server address")
		name := fs.String("name", "", "expected server name")
		src := fs.String("src", "", "expected source address seen by the server")
		fs.Parse(args[1:])
		out, err = netperf.Check(*network, *addr, *name, *src, 2*time.Second)
	case "rr":
		addr := fs.String("addr", "", "server address")
		size := fs.Int("size", 64, "message size")
		warm := fs.Int("warmup", 1000, "round trips before measuring")
		n := fs.Int("n", 10000, "measured round trips")
		maxT := fs.Duration("max-time", 10*time.Second, "time bound")
		fs.Parse(args[1:])
		out, err = netperf.RR(*addr, *size, *warm, *n, *maxT)
	case "connrate":
		addr := fs.String("addr", "", "server address")
		name := fs.String("name", "", "expected server name")
		conc := fs.Int("conc", 4, "concurrent workers")
		maxN := fs.Int64("max", 50000, "connection bound")
		dur := fs.Duration("duration", 3*time.Second, "time bound")
		warm := fs.Int64("warmup", 200, "connections before measuring")
		fs.Parse(args[1:])
		if *warm > 0 {
			netperf.ConnRate(*addr, *name, *conc, *warm, 2*time.Second)
		}
		out, err = netperf.ConnRate(*addr, *name, *conc, *maxN, *dur)
	case "udp":
		addr := fs.String("addr", "", "server address (UDP blast; TCP for its counters)")
		size := fs.Int("size", 64, "datagram payload size")
		maxN := fs.Int64("max", 5_000_000, "datagram bound")
		dur := fs.Duration("duration", 3*time.Second, "time bound")
		fs.Parse(args[1:])
		out, err = netperf.UDPBlast(*addr, *addr, *size, *maxN, *dur)
	default:
		return false
	}
	if out != nil {
		json.NewEncoder(os.Stdout).Encode(out)
	}
	if err != nil {
		fail(err)
	}
	return true
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
