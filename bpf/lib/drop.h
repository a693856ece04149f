/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Drop reasons: the one definition. Go reads the names from this enum's BTF
 * (maps.DropReasonNames), so a new reason needs no Go change. */
#pragma once

enum drop_reason {
	DROP_NONE = 0,
	DROP_MALFORMED = 1,          /* truncated or invalid L2/L3/L4 header */
	DROP_UNKNOWN_ENDPOINT = 2,   /* program on an interface with no endpoint */
	DROP_SPOOFED_MAC = 3,        /* source MAC is not the endpoint's */
	DROP_SPOOFED_IP = 4,         /* source IP is not the endpoint's */
	DROP_NETWORK_ISOLATION = 5,  /* destination is on another network */
	DROP_ICC_DISABLED = 6,       /* container-to-container with --icc=false */
	DROP_INTERNAL_NETWORK = 7,   /* --internal network talking to the outside */
	DROP_NAT_EXHAUSTED = 8,      /* no free source port for a new SNAT flow */
	DROP_CT_MAP_FULL = 9,        /* conntrack insert failed */
	DROP_TTL_EXCEEDED = 10,      /* TTL would reach zero on forward */
	DROP_FRAGMENT = 11,          /* IPv4 fragment of a NATed flow */
	DROP_FIB_FAILED = 12,        /* no route to the destination */
	DROP_CSUM_FAILED = 13,       /* checksum rewrite helper failed */
	DROP_REDIRECT_FAILED = 14,   /* redirect helper failed */
	DROP_CT_CONFLICT = 15,       /* a new DNAT flow's reply tuple belongs to another flow */
	DROP_FRAG_NEEDED = 16,       /* too big for the egress MTU and DF unset: we do not fragment */
	__DROP_MAX,
};

enum direction {
	DIR_FROM_CONTAINER = 0,
	DIR_FROM_UPLINK = 1,
	__DIR_MAX,
};

enum verdict {
	VERDICT_FORWARD = 0, /* redirected to another endpoint unchanged */
	VERDICT_SNAT = 1,    /* source translated, sent out */
	VERDICT_DNAT = 2,    /* destination translated, sent in */
	VERDICT_PASS = 3,    /* handed to the kernel stack */
	VERDICT_DROP = 4,
	__VERDICT_MAX,
};

/* Unreferenced enums get no BTF; these anchors keep them in the object so
 * bpf2go can mirror them to Go and the collector can read the names. */
const volatile enum drop_reason btf_anchor_drop_reason __attribute__((unused));
const volatile enum direction btf_anchor_direction __attribute__((unused));
const volatile enum verdict btf_anchor_verdict __attribute__((unused));
