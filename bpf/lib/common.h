/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared includes and small helpers for every ebpfnet program. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* bpf_helpers.h's offsetof is no integer constant expression, which
 * _Static_assert and array sizes need. */
#undef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)

#define NSEC_PER_SEC 1000000000ULL

/* The clock of the flow tables' timestamps: CLOCK_MONOTONIC as of the last
 * tick. Their ages are counted in seconds, so a tick's lag (1-10 ms) costs
 * nothing, and it reads no clock source: on a VM's kvm-clock the precise
 * bpf_ktime_get_ns was a tenth of a steady packet's program time. User
 * space stamps and ages entries with the precise clock of the same base. */
static __always_inline __u64 flow_clock(void)
{
	return bpf_ktime_get_coarse_ns();
}

/* now - then, or 0 for a then up to a tick in now's future: user space's
 * stamps (CLOCK_MONOTONIC) run ahead of flow_clock by up to a tick, and an
 * unsigned difference would make such an entry look ages old. */
static __always_inline __u64 flow_age(__u64 now, __u64 then)
{
	return now > then ? now - then : 0;
}

/* Compares two MACs as one 4-byte and one 2-byte word. */
static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return ((const __u32 *)a)[0] == ((const __u32 *)b)[0] && ((const __u16 *)a)[2] == ((const __u16 *)b)[2];
}
