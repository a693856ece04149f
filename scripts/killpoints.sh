#!/usr/bin/env bash
# Reruns the crash experiments of issue 9 (items 6, 7, 9) and issue 21
# (item 7) on sandbox namespaces: attach, network create, detach and network
# rm SIGKILLed at every kill point (EBPFNET_TEST_KILL=<point>), then the
# next command or a daemon pass must leave no orphan veth, bridge, route,
# map entry or link pin (a detach or rm is finished, an attach or create
# rolled back) and traffic must work; orphans no intent names are removed
# by the daemon, a network that lost its bridge gets it back; a firewall
# change killed between store and kernel is applied by the daemon; subnets
# overlapping host routes are refused; conntrack GC's memory stays flat
# with the table's size. The integration tests build ebpfnet with the test
# hooks (-tags ebpfnet_testhooks, internal/testing/testutil.Build); a production
# build ignores those variables (TestProductionBuildIgnoresTestHooks, run
# here too). Needs root. Usage: scripts/killpoints.sh [-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
go test -count=1 -v -run 'TestKillPoints|TestNetworkCreateRefusesRoutedSubnet|TestDaemonRemovesOrphans|TestDaemonRepairsNetworkWithoutBridge|TestFirewallFailedChangeAndRepair|TestProductionBuildIgnoresTestHooks' ./integration/ | grep -E '^(=== RUN|\s*--- |ok|FAIL|\s+\w+_test.go)'
go test -count=1 -v -run 'TestGCMemoryDoesNotGrowWithTheTable|TestGCAcrossBatches' ./maps/ | grep -E '^(\s*--- |ok|FAIL|\s+\w+_test.go)'
if [ "${1:-}" = -bench ]; then
	# One GC over a full default-size table (524288 live entries).
	go test -count=1 -run XXX -bench BenchmarkGCFullTable -benchmem -benchtime 3x ./maps/ | grep -E 'Benchmark|ok'
fi
