package loader

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// openPinnedProgram opens a pinned program like ebpf.LoadPinnedProgram,
// without the library's once-per-process probe for object names, which
// creates and destroys a map and cost 6-7 ms of every command here (a
// short command's whole budget is about 10 ms).
func openPinnedProgram(path string) (*ebpf.Program, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return nil, err
	}
	attr := struct { // union bpf_attr for BPF_OBJ_GET
		pathname  uint64
		bpfFd     uint32
		fileFlags uint32
		pathFd    int32
		_         uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(p)))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if errno != 0 {
		return nil, fmt.Errorf("open pinned program %s: %w", path, errno)
	}
	prog, err := ebpf.NewProgramFromFD(int(fd))
	if err != nil {
		return nil, fmt.Errorf("open pinned program %s: %w", path, err)
	}
	return prog, nil
}
