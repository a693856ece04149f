module github.com/ebpfnet/ebpfnet

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	github.com/google/gopacket v1.1.19
	golang.org/x/sys v0.48.0
)

require golang.org/x/net v0.59.0 // indirect
