// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TEST ONLY: from_overlay.c compiled for BPF_PROG_TEST_RUN, which cannot
 * attach tunnel metadata (every frame it runs through the real program is
 * dropped as malformed). Here the one helper that reads the metadata,
 * bpf_skb_get_tunnel_key, is replaced by a stub that takes the tunnel key
 * from skb->cb[], which a test run's context sets:
 *
 *   cb[0] the VNI, cb[1] the outer source IPv4 (host byte order, as the
 *   helper's remote_ipv4), cb[2] nonzero if the frame has tunnel metadata
 *   at all (else the stub fails as the helper does without any).
 *
 * Everything else is from_overlay.c's own text, so FuzzFromOverlay and
 * TestFromOverlay* (loader/fromoverlay_test.go) run every check and the
 * delivery as the VXLAN device runs them, the no-metadata drop included.
 *
 * Why a stub rather than a second entry point: splitting from_overlay into
 * a wrapper and an inline function shifts the production program's stack
 * layout and instructions, and a test entry in the production object would
 * be verified and loaded by every Load and could be attached. This way the
 * production source and object owe nothing to the test, and this object is
 * no attach point: loader/generate.go compiles it into a _test.go file of
 * package loader_test, so no binary but the loader's tests embeds it and
 * the loader's object list cannot name it. */

/* The helper declarations first (bpf_helpers.h is include-guarded, the lib
 * headers are #pragma once), so the macro below renames only the call in
 * from_overlay.c, not the declaration. */
#include "lib/common.h"

static __always_inline long test_skb_get_tunnel_key(struct __sk_buff *skb, struct bpf_tunnel_key *key, __u32 size,
						    __u64 flags)
{
	/* Only the use from_overlay.c makes: an IPv4 key, no flags. */
	if (size != sizeof(*key) || flags || !skb->cb[2])
		return -22; /* -EINVAL, as the helper without metadata */
	__builtin_memset(key, 0, sizeof(*key));
	key->tunnel_id = skb->cb[0];
	key->remote_ipv4 = skb->cb[1];
	return 0;
}

#define bpf_skb_get_tunnel_key test_skb_get_tunnel_key
#include "from_overlay.c"
