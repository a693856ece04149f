package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRunCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	name := tp.Prefix + "-r1"
	notExecutable := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, tp, []cliCase{
		{name: "exit status is the command's", args: []string{"run", "--net=none", "--rm", "--", "sh", "-c", "exit 7"}, code: 7},
		{name: "bridge gets eth0 and a route", args: []string{"run", "--network", "n1", "--name", name, "--rm", "--", "ip", "-4", "route"}, stdout: `default via 172\.30\.0\.1 dev eth0`},
		{name: "a network's name is bridge mode on it", args: []string{"run", "--network", "n1", "--rm", "--", "ip", "-4", "-o", "addr", "show", "eth0"}, stdout: `172\.30\.0\.\d+/24`},
		{name: "--network=host as in Docker", args: []string{"run", "--network=host", "--", "ip", "-o", "link", "show", "uplink0"}, stdout: `uplink0`},
		{name: "--net is --network", args: []string{"run", "--net=host", "--", "ip", "-o", "link", "show", "uplink0"}, stdout: `uplink0`},
		{name: "none has only lo", args: []string{"run", "--net=none", "--rm", "--", "ip", "-o", "link"}, stdout: `^1: lo:[^\n]*\n$`},
		{name: "bad mode", args: []string{"run", "--net=a/b", "--", "true"}, code: 125, stderr: `invalid --network "a/b"`},
		{name: "unknown network", args: []string{"run", "--network=nope", "--", "true"}, code: 125, stderr: `network nope not found`},
		{name: "ports need bridge", args: []string{"run", "--net=host", "-p", "80", "--", "true"}, code: 125, stderr: `-p, --ip and --mac-address need bridge mode`},
		{name: "bad port", args: []string{"run", "-p", "0", "--", "true"}, code: 125, stderr: `invalid port spec "0"`},
		{name: "bad flag", args: []string{"run", "--bogus", "--", "true"}, code: 125, stderr: `unknown flag: --bogus`},
		{name: "container mode needs an endpoint", args: []string{"run", "--net=container:nope", "--", "true"}, code: 125, stderr: `--network=container:nope: no endpoint nope`},
		{name: "command not found", args: []string{"run", "--net=host", "--", "/nonexistent/cmd"}, code: 127, stderr: `start /nonexistent/cmd`},
		{name: "command not in PATH", args: []string{"run", "--net=host", "--", "no-such-command-ebpfnet"}, code: 127, stderr: `executable file not found`},
		{name: "cannot execute", args: []string{"run", "--net=host", "--", notExecutable}, code: 126, stderr: `permission denied`},
		{name: "killed by a signal", args: []string{"run", "--net=host", "--", "sh", "-c", "kill -TERM $$"}, code: 143},
		{name: "no command", args: []string{"run"}, code: 125, stderr: `requires at least 1 arg`},
	})
	// --rm removed the endpoint and its namespace.
	runCases(t, tp, []cliCase{{name: "rm left nothing", args: []string{"ls", "-o", "json"}, stdout: `^\[\]\n$`}})
}
