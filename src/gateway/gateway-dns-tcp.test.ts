/**
 * DNS over TCP at 10.0.2.3 under a guest that pipelines queries and does not
 * read its answers (issue 11, item 8): the gateway must hold a bounded amount
 * (its send buffer of answers, the queries left unread in its receive
 * buffer, which closes the guest's window), keep the connection, take
 * linear time, and once the guest reads, deliver every answer in order.
 * Before the fix the in-process stream ignored pause(), answers piled up in
 * the NAT and each one re-copied the pile (quadratic: 1,000 segments took 10 s).
 */
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { DNS_IP, GatewayRig, ip, settle } from '../../test/helpers/frames.js';
import { GuestConn } from '../../test/helpers/guest-tcp.js';

function pipelined(n: number): Uint8Array {
  const parts: Buffer[] = [];
  for (let id = 0; id < n; id++) {
    const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'db.lab' }] });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(q.length);
    parts.push(len, q);
  }
  return new Uint8Array(Buffer.concat(parts));
}

function answerIds(chunks: Uint8Array[]): number[] {
  const all = Buffer.concat(chunks);
  const ids: number[] = [];
  for (let o = 0; o + 2 <= all.length; ) {
    const n = all.readUInt16BE(o);
    if (o + 2 + n > all.length) break;
    const a = dnsPacket.decode(all.subarray(o + 2, o + 2 + n));
    expect(a.answers?.[0]).toMatchObject({ name: 'db.lab', data: '10.0.2.100' });
    ids.push(a.id!);
    o += 2 + n;
  }
  return ids;
}

describe('DNS over TCP with a guest that does not read', () => {
  it('30,000 pipelined queries against a zero window: bounded, connection kept, every answer delivered in order once the guest reads', async () => {
    const rig = new GatewayRig({ dnsRecords: [{ name: 'db.lab', type: 'A', address: ip('10.0.2.100') }] });
    const g = new GuestConn(rig, { dst: DNS_IP, dstPort: 53, dialed: false, port: 40200 });
    await settle();
    g.establish();
    g.window = 0; // the guest stops reading
    const N = 30_000;
    g.write(pipelined(N), false);
    for (let i = 0; i < 50; i++) await settle();
    const nat = rig.gateway.tcpNat;
    expect(nat.size).toBe(1);
    expect(nat.counters.hostOverruns).toBe(0);
    expect(g.rstSeen).toBe(false);
    // Backpressure reached the parser: not every query was taken while nobody reads.
    const asked = rig.dns.counters.queries;
    expect(asked).toBeLessThan(N);
    g.window = 65535; // the guest reads again
    for (let idle = 0, got = -1; idle < 5; ) {
      g.take();
      g.send({ flags: tcp.ACK });
      await settle(1);
      const now = g.received.reduce((a, c) => a + c.length, 0);
      idle = now === got ? idle + 1 : 0;
      got = now;
    }
    const ids = answerIds(g.received);
    expect(ids.length).toBe(N);
    expect(ids.every((id, i) => id === i)).toBe(true);
  });
});
