// Package unixsock makes the Unix sockets ebpfnet serves on (the daemon's
// API, the Docker plugin): owner-only from the start, replacing a socket a
// killed server left behind but never one a live server answers on, and
// never a file that is no socket.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrInUse is what Listen's error is when another process serves path.
var ErrInUse = errors.New("another process serves it")

// Listen listens on path, creating its directory.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is no socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// The umask makes the socket 0600 from the start: a chmod after bind
	// leaves a moment in which anyone may connect. The umask is the
	// process's: call Listen before other goroutines create files.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	return ln, err
}
