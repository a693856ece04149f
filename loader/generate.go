package loader

// One bpf2go run per attach point. Types are generated from from_container
// only: both objects share the same headers, and so the same layouts.
//
// The last run is no attach point: bpf/from_overlay_test.c (from_overlay
// with the tunnel key taken from skb->cb, for BPF_PROG_TEST_RUN) goes into
// fromoverlaytest_bpfel_test.go, package loader_test, so only the loader's
// tests embed it (FuzzFromOverlay); the objects Load knows never include it.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -go-package loader -type counter -type endpoint_counters -type network_info -type endpoint_info -type subnet_key -type ip6_key -type network6_info -type subnet6_key -type ct_key -type ct_entry -type port_key -type port6_key -type port_entry -type uplink_info -type monitor_control -type fw_key -type fw_rule -type remote_endpoint -type overlay_host_counters -type overlay_network -type service_cidr_key fromContainer ../bpf/from_container.c -- -I../bpf
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -go-package loader -no-global-types fromUplink ../bpf/from_uplink.c -- -I../bpf
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -go-package loader -no-global-types -type lb_key -type lb_service -type lb_backend_key -type lb_backend -type lb_affinity_key -type lb_affinity -type lb_reverse_key -type lb_scope -type lb_flags -type lb_limits sock ../bpf/sock.c -- -I../bpf
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -go-package loader -no-global-types fromOverlay ../bpf/from_overlay.c -- -I../bpf
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -go-package loader -no-global-types fromHost ../bpf/from_host.c -- -I../bpf
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -go-package loader_test -output-suffix _test -no-global-types fromOverlayTest ../bpf/from_overlay_test.c -- -I../bpf
