/**
 * The IPv6 side under the fuzzer's IPv6 family (test/helpers/fuzz-frames6.ts),
 * in process: 20,000 mutated NDP, RA, ICMPv6, DHCPv6, DNS, UDP and TCP
 * frames behind extension header chains; nothing throws, every table stays
 * within its bound, and a well-formed guest is served afterwards. The e2e
 * fuzz test (test/e2e/fuzz.test.ts) does the same to a live gateway.
 */
import { describe, expect, it } from 'vitest';
import * as icmpv6 from '../wire/icmpv6.js';
import { GatewayRig, GUEST2_MAC, RecordingPort, settle, viewOf } from '../../test/helpers/frames.js';
import { Rng } from '../../test/helpers/fuzz-frames.js';
import { Ipv6Fuzzer } from '../../test/helpers/fuzz-frames6.js';
import { decodeFrame6, ip6, ping6Frame } from '../../test/helpers/frames6.js';
import { eui64Address } from '../wire/addr.js';

describe('Gateway IPv6 under fuzzing', () => {
  it('survives 20,000 mutated IPv6 frames and serves a guest after', async () => {
    const r = new GatewayRig({ ipv6: true });
    const fz = new Ipv6Fuzzer(new Rng(0x6a6a), [Uint8Array.of(2, 0xfa, 0x22, 0, 0, 1), Uint8Array.of(2, 0xfa, 0x22, 0, 0, 2)], 1518);
    for (let i = 0; i < 20_000; i++) {
      const f = fz.next();
      r.gateway.handleFrame(r.session, viewOf(f), 0, f.length);
      if (i % 1000 === 0) {
        r.clock.t += 1000;
        r.gateway.sweep();
        r.port.take();
      }
    }
    await settle();
    const snap = r.gateway.snapshot();
    expect(snap.neighbors6.length).toBeLessThanOrEqual(8);
    expect(r.gateway.v6!.ids.size).toBeLessThan(20_000);
    const drops = snap.drops;
    for (const reason of ['ipv6-invalid', 'ipv6-src', 'fragment', 'ndp-invalid', 'icmp-invalid', 'udp-invalid', 'tcp-invalid']) expect(drops[reason as keyof typeof drops] ?? 0, reason).toBeGreaterThan(0);
    // A guest on a new link is answered.
    const port = new RecordingPort();
    const s = r.gateway.attach(port);
    const prefix = ip6('fd0d:b4b8:6ba1::');
    r.send(ping6Frame({ src: GUEST2_MAC, srcIp: eui64Address(prefix, GUEST2_MAC), dstIp: ip6('fd0d:b4b8:6ba1::2') }), s);
    const replies = port.take().map(decodeFrame6);
    expect(replies.map((f) => f.icmp?.type)).toEqual([icmpv6.TYPE_ECHO_REPLY]);
  });
});
