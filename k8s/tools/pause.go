//go:build ignore

// pause is the harness's sandbox ("pause") image: it sleeps until SIGINT or
// SIGTERM and then exits 0, as registry.k8s.io/pause does. Built static by
// k8s/images.sh (go build k8s/tools/pause.go).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	// Reap zombies of processes that joined the sandbox's PID namespace.
	signal.Ignore(syscall.SIGCHLD)
	<-c
}
