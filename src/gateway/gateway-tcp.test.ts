/**
 * The gateway's TCP NAT driven with crafted guest segments and a fake host
 * dialer: dial first (SYN-ACK only once the host connected, RST on refusal,
 * silence on timeout), stray segments answered with RST, policy (isolated,
 * no host loopback), DNS over TCP at 10.0.2.3, relaying both ways with FIN,
 * and the per-guest connection cap.
 */
import { createHash } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import * as ipv4 from '../wire/ipv4.js';
import * as tcp from '../wire/tcp.js';
import { DNS_IP, GUEST2_MAC, GUEST_IP, GW_IP, GatewayRig, RecordingPort, ip, ipv4Frame, ipv4Packet, settle, tcpSegment, viewOf, type DecodedFrame } from '../../test/helpers/frames.js';
import { GuestConn } from '../../test/helpers/guest-tcp.js';

const OUTSIDE = ip('198.51.100.1');

function seg(rig: GatewayRig, dst: number, srcPort: number, dstPort: number, o: { seq?: number; ack?: number; flags?: number; window?: number } = {}, payload?: Uint8Array) {
  return rig.exchange(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst, proto: ipv4.PROTO_TCP }, tcpSegment(GUEST_IP, dst, srcPort, dstPort, o, payload))));
}

function tcpOf(f: DecodedFrame): { h: tcp.Header; payload: Uint8Array } {
  expect(f.ip?.proto).toBe(ipv4.PROTO_TCP);
  const h = tcp.blank();
  const v = viewOf(f.payload);
  expect(tcp.parse(v, 0, f.payload.length, h)).toBe(true);
  expect(tcp.verify4(v, 0, f.payload.length, f.ip!.src, f.ip!.dst)).toBe(true);
  return { h, payload: f.payload.subarray(h.payloadOffset, h.payloadOffset + h.payloadLength) };
}

/** Makes the guest known (neighbour table), as any real guest is after ARP or DHCP. */
function rigWithGuest(opts: ConstructorParameters<typeof GatewayRig>[0] = {}): GatewayRig {
  const rig = new GatewayRig(opts);
  rig.exchange(ipv4Frame(ipv4Packet({ src: GUEST_IP, dst: GW_IP, proto: ipv4.PROTO_ICMP }, new Uint8Array([8, 0, 0xf7, 0xff, 0, 0, 0, 0]))));
  return rig;
}

describe('Gateway TCP NAT', () => {
  it('dials first: SYN-ACK only after the host connected, with MSS from the MTU', () => {
    const rig = rigWithGuest();
    expect(seg(rig, GW_IP, 40000, 22, { seq: 5000 })).toEqual([]);
    expect(rig.tcp.dials).toHaveLength(1);
    expect(rig.tcp.dials[0]).toMatchObject({ host: '127.0.0.1', port: 22 });
    // A retransmitted SYN while dialing is absorbed.
    expect(seg(rig, GW_IP, 40000, 22, { seq: 5000 })).toEqual([]);
    expect(rig.tcp.dials).toHaveLength(1);
    rig.tcp.dials[0]!.ev.connected();
    const out = rig.port.takeDecoded();
    expect(out).toHaveLength(1);
    const { h } = tcpOf(out[0]!);
    expect(out[0]!.ip).toMatchObject({ src: GW_IP, dst: GUEST_IP });
    expect(h.flags & (tcp.SYN | tcp.ACK)).toBe(tcp.SYN | tcp.ACK);
    expect(h.ack).toBe(5001);
    expect(h.mss).toBe(1460);
  });

  it('answers RST when the host refuses, and nothing when the dial times out', () => {
    const rig = rigWithGuest();
    seg(rig, GW_IP, 40001, 23, { seq: 7 });
    rig.tcp.dials[0]!.ev.refused();
    const [rst] = rig.port.takeDecoded();
    const { h } = tcpOf(rst!);
    expect(h.flags & tcp.RST).toBe(tcp.RST);
    expect(h.ack).toBe(8);
    seg(rig, OUTSIDE, 40002, 80);
    expect(rig.tcp.dials[1]).toMatchObject({ host: '198.51.100.1', port: 80 });
    rig.tcp.dials[1]!.ev.failed();
    expect(rig.port.takeDecoded()).toEqual([]);
    expect(rig.gateway.tcpNat.size).toBe(0);
    expect(rig.gateway.tcpNat.counters).toMatchObject({ refused: 1, dialTimeouts: 1 });
  });

  it('resets segments that match no connection', () => {
    const rig = rigWithGuest();
    const out = seg(rig, OUTSIDE, 40003, 80, { flags: tcp.ACK, seq: 1, ack: 99 });
    expect(tcpOf(out[0]!).h).toMatchObject({ flags: tcp.RST, seq: 99 });
    expect(seg(rig, OUTSIDE, 40003, 80, { flags: tcp.RST })).toEqual([]);
  });

  it('refuses by policy without dialing: isolated mode, and 10.0.2.2 without host loopback', () => {
    for (const opts of [{ isolated: true }, { hostLoopback: false }]) {
      const rig = rigWithGuest(opts);
      const out = seg(rig, opts.isolated ? OUTSIDE : GW_IP, 40004, 80);
      expect(tcpOf(out[0]!).h.flags & tcp.RST).toBe(tcp.RST);
      expect(rig.tcp.dials).toEqual([]);
    }
  });

  it('keeps one timer entry per connection however often its deadline moves earlier', () => {
    const rig = rigWithGuest();
    seg(rig, GW_IP, 40006, 8080, { seq: 100 });
    const host = rig.tcp.dials[0]!;
    host.ev.connected();
    const iss = tcpOf(rig.port.takeDecoded()[0]!).h.seq;
    seg(rig, GW_IP, 40006, 8080, { seq: 101, ack: iss + 1, flags: tcp.ACK });
    const heap = (rig.gateway.tcpNat as unknown as { timers: { size: number } }).timers;
    for (let i = 1; i <= 50; i++) {
      host.ev.data(new Uint8Array([i])); // arms the RTO: the deadline moves earlier (a push)
      rig.port.takeDecoded();
      seg(rig, GW_IP, 40006, 8080, { seq: 101, ack: iss + 1 + i, flags: tcp.ACK }); // acked: that entry is stale
      rig.clock.t += 61_000; // past the RTO and the 60 s horizon of far deadlines
      rig.gateway.tcpNat.runTimers();
    }
    expect(heap.size).toBeLessThanOrEqual(2);
    expect(rig.gateway.tcpNat.size).toBe(1);
  });

  it('holds new data back while the guest link is congested and resumes on drain', () => {
    const rig = rigWithGuest();
    seg(rig, GW_IP, 40007, 8080, { seq: 100, window: 65535 });
    const host = rig.tcp.dials[0]!;
    host.ev.connected();
    const iss = tcpOf(rig.port.takeDecoded()[0]!).h.seq;
    seg(rig, GW_IP, 40007, 8080, { seq: 101, ack: iss + 1, flags: tcp.ACK, window: 65535 });
    rig.port.congested = true;
    host.ev.data(new Uint8Array(8 * 1460));
    const held = rig.port.takeDecoded().map(tcpOf);
    expect(held).toHaveLength(1); // the frame that found the link full, then nothing
    expect(held[0]!.payload.length).toBeGreaterThan(0);
    rig.clock.t += 5000;
    rig.gateway.tcpNat.runTimers(); // only the RTO for the frame in flight: no zero-window probing
    const rtx = rig.port.takeDecoded().map(tcpOf);
    expect(rtx.every((s) => s.h.seq === held[0]!.h.seq)).toBe(true);
    // the guest ACKs it: the window opens, but the link is still full
    const acked = (held[0]!.h.seq + held[0]!.payload.length) >>> 0;
    const onAck = seg(rig, GW_IP, 40007, 8080, { seq: 101, ack: acked, flags: tcp.ACK, window: 65535 }).map(tcpOf);
    expect(onAck.filter((s) => s.payload.length > 0)).toEqual([]);
    rig.port.congested = false;
    rig.gateway.linkDrained(rig.session);
    const resumed = rig.port.takeDecoded().map(tcpOf).filter((s) => s.payload.length > 0);
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed[0]!.h.seq).toBe((held[0]!.h.seq + held[0]!.payload.length) >>> 0);
  });

  it('resumes held-back connections in turn when the link keeps filling up, so none starves', () => {
    const rig = rigWithGuest();
    const open = (port: number) => {
      seg(rig, GW_IP, port, 8080, { seq: 100, window: 65535 });
      const host = rig.tcp.dials.at(-1)!;
      host.ev.connected();
      const iss = tcpOf(rig.port.takeDecoded()[0]!).h.seq;
      seg(rig, GW_IP, port, 8080, { seq: 101, ack: iss + 1, flags: tcp.ACK, window: 65535 });
      return host;
    };
    const a = open(40010);
    const b = open(40011);
    rig.port.congested = true; // and it stays full: each drain lets one frame out before it fills again
    a.ev.data(new Uint8Array(8000)); // one frame goes, then a waits
    b.ev.data(new Uint8Array(8000)); // b waits at once
    const dstPorts = () => rig.port.takeDecoded().map(tcpOf).filter((x) => x.payload.length > 0).map((x) => x.h.dstPort);
    expect(dstPorts()).toEqual([40010]);
    const turns: number[][] = [];
    for (let i = 0; i < 4; i++) {
      rig.gateway.linkDrained(rig.session);
      turns.push(dstPorts());
    }
    expect(turns).toEqual([[40010], [40011], [40010], [40011]]);
  });

  it('relays data both ways and passes FIN on each side', async () => {
    const rig = rigWithGuest();
    seg(rig, GW_IP, 40005, 8080, { seq: 100 });
    const host = rig.tcp.dials[0]!;
    host.ev.connected();
    const synack = tcpOf(rig.port.takeDecoded()[0]!).h;
    const iss = synack.seq;
    seg(rig, GW_IP, 40005, 8080, { seq: 101, ack: iss + 1, flags: tcp.ACK });
    seg(rig, GW_IP, 40005, 8080, { seq: 101, ack: iss + 1, flags: tcp.ACK | tcp.PSH }, new TextEncoder().encode('GET /'));
    await Promise.resolve(); // guest bytes reach the host once per batch of frames (a microtask)
    expect(Buffer.concat(host.written).toString()).toBe('GET /');
    rig.port.takeDecoded();
    host.ev.data(new TextEncoder().encode('200 OK'));
    const data = rig.port.takeDecoded().map(tcpOf).find((s) => s.payload.length > 0)!;
    expect(new TextDecoder().decode(data.payload)).toBe('200 OK');
    host.ev.end();
    const fin = rig.port.takeDecoded().map(tcpOf).find((s) => s.h.flags & tcp.FIN);
    expect(fin).toBeDefined();
    seg(rig, GW_IP, 40005, 8080, { seq: 106, ack: iss + 1 + 6 + 1, flags: tcp.ACK | tcp.FIN });
    await Promise.resolve();
    expect(host.ended).toBe(true);
  });

  it('serves DNS over TCP at the DNS address without dialing', async () => {
    const rig = rigWithGuest({ dnsRecords: [{ name: 'db.lab', type: 'A', address: ip('10.0.2.100') }] });
    seg(rig, DNS_IP, 40006, 53, { seq: 1 });
    await new Promise((r) => setImmediate(r));
    const synack = tcpOf(rig.port.takeDecoded()[0]!).h;
    expect(rig.tcp.dials).toEqual([]);
    const q = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'db.lab' }] });
    const framed = new Uint8Array(2 + q.length);
    framed[1] = q.length;
    framed.set(q, 2);
    seg(rig, DNS_IP, 40006, 53, { seq: 2, ack: synack.seq + 1, flags: tcp.ACK | tcp.PSH }, framed);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    const reply = rig.port.takeDecoded().map(tcpOf).find((s) => s.payload.length > 2)!;
    const answer = dnsPacket.decode(Buffer.from(reply.payload.subarray(2)));
    expect(answer.answers?.[0]).toMatchObject({ name: 'db.lab', data: '10.0.2.100' });
  });

  it('gives one guest at most its share of the dials in flight; another guest still connects', () => {
    const rig = rigWithGuest({ tcpLimits: { maxDialing: 8, maxDialingPerGuest: 2 } });
    for (let p = 0; p < 5; p++) seg(rig, OUTSIDE, 42000 + p, 80); // five SYNs to silent places
    expect(rig.tcp.dials).toHaveLength(2);
    expect(rig.gateway.tcpNat.counters.dialQueueFull).toBe(3);
    const other = ip('10.0.2.16'); // a guest on a link of its own
    const s2 = rig.gateway.attach(new RecordingPort());
    rig.send(ipv4Frame(ipv4Packet({ src: other, dst: OUTSIDE, proto: ipv4.PROTO_TCP }, tcpSegment(other, OUTSIDE, 43000, 80, { seq: 1 })), { src: GUEST2_MAC }), s2);
    expect(rig.tcp.dials).toHaveLength(3);
    rig.tcp.dials[0]!.ev.failed(); // a slot frees up
    seg(rig, OUTSIDE, 42010, 80);
    expect(rig.tcp.dials).toHaveLength(4);
  });

  it('caps connections per guest and counts the refusals', () => {
    const rig = rigWithGuest({ tcpLimits: { maxPerGuest: 3 } });
    for (let p = 0; p < 5; p++) seg(rig, OUTSIDE, 41000 + p, 80);
    expect(rig.tcp.dials).toHaveLength(3);
    expect(rig.gateway.tcpNat.counters.capped).toBe(2);
  });
});

describe('Gateway TCP NAT data path: a batch of guest segments (one read from the link)', () => {
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >>> 9)) & 255);
  const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  /** Pure ACKs (no payload, no SYN/FIN/RST) among segments toward the guest. */
  const pureAcks = (segs: Array<{ h: tcp.Header; payload: Uint8Array }>) => segs.filter((x) => x.payload.length === 0 && (x.h.flags & (tcp.SYN | tcp.FIN | tcp.RST)) === 0);

  it('goes to the host in one write and is acknowledged by one ACK, at the end of the batch', async () => {
    const rig = rigWithGuest();
    const g = new GuestConn(rig, { port: 40200 }).establish();
    const data = bytes(10 * 1460);
    for (let o = 0; o < data.length; o += 1460) {
      g.send({ flags: tcp.ACK | tcp.PSH, seq: (g.seq + o) >>> 0 }, data.subarray(o, o + 1460));
    }
    expect(rig.port.takeDecoded()).toEqual([]); // nothing during the batch: no ACK every second segment
    expect(g.host.written).toEqual([]);
    await Promise.resolve(); // the batch's end (a microtask)
    expect(g.host.written.map((c) => c.length)).toEqual([data.length]);
    expect(sha(g.host.written[0]!)).toBe(sha(data));
    const acks = pureAcks(rig.port.takeDecoded().map(tcpOf));
    expect(acks.map((a) => a.h.ack)).toEqual([(g.seq + data.length) >>> 0]);
    // a lone segment is not acknowledged at the batch's end: its ACK is delayed (40 ms), or rides on data
    g.seq = (g.seq + data.length) >>> 0;
    g.send({ flags: tcp.ACK | tcp.PSH }, data.subarray(0, 100));
    await settle();
    expect(pureAcks(rig.port.takeDecoded().map(tcpOf))).toEqual([]);
    rig.clock.t += 40;
    rig.gateway.tcpNat.runTimers();
    expect(pureAcks(rig.port.takeDecoded().map(tcpOf)).map((a) => a.h.ack)).toEqual([(g.seq + 100) >>> 0]);
  });

  it('reads the clock once per guest segment, not once more for the timer heap (performance.now() costs 0.1-0.2 µs)', async () => {
    const rig = rigWithGuest();
    const g = new GuestConn(rig, { port: 40201 }).establish();
    await settle();
    let t = rig.clock.t;
    let reads = 0;
    Object.defineProperty(rig.clock, 't', {
      get: () => (reads++, t),
      set: (v: number) => void (t = v),
    });
    const data = bytes(64 * 1460);
    for (let o = 0; o < data.length; o += 1460) g.send({ flags: tcp.ACK | tcp.PSH, seq: (g.seq + o) >>> 0 }, data.subarray(o, o + 1460));
    await Promise.resolve(); // the batch's end
    expect(g.host.written.map((c) => c.length)).toEqual([data.length]);
    // One read per segment (its handling), a few per batch (its end, the host write); main read two per segment.
    expect(reads).toBeLessThanOrEqual(64 + 8);
  });

  it('a slow host reader: every byte in order (SHA-256), and the guest is never acknowledged more than the receive buffer beyond what the host took', async () => {
    const rig = rigWithGuest();
    const g = new GuestConn(rig, { port: 40201 }).establish();
    const host = g.host;
    host.hold = true; // the host reads only when the test releases its writes
    const data = bytes(3 * 1024 * 1024 + 77);
    const base = g.seq;
    const bufMax = 1024 * 1024; // the gateway's receive buffer at MTU 1500 (gateway.ts)
    let acked = 0; // bytes the gateway acknowledged
    let edge = 65535; // right edge it advertised, relative to base (no window scaling: the guest offered none)
    let acks = 0;
    let batches = 0;
    let windowShut = 0; // rounds in which the guest could send nothing: the backpressure reached it
    const hostTook = (): number => host.written.reduce((a, c) => a + c.length, 0) - host.queued();
    for (let round = 0; acked < data.length && round < 10_000; round++) {
      // One batch: go-back-N from the last ACK up to the advertised edge, at most 64 KiB.
      const end = Math.min(data.length, edge, acked + 64 * 1024);
      for (let o = acked; o < end; o += 1460) g.send({ flags: tcp.ACK | tcp.PSH, seq: (base + o) >>> 0 }, data.subarray(o, Math.min(end, o + 1460)));
      if (end > acked) batches++;
      else windowShut++;
      await Promise.resolve();
      if (round % 24 === 23) host.release(); // a slow reader: takes what was written every 24 rounds (1.5 MiB sent meanwhile at most)
      await settle(1);
      for (const x of rig.port.takeDecoded().map(tcpOf)) {
        if (x.payload.length === 0) acks++;
        const a = (x.h.ack - base) | 0;
        if (a > acked) acked = a;
        edge = Math.max(edge, a + x.h.window);
        // Exact bound: what the gateway acknowledged and the host has not taken fits its receive buffer.
        expect(acked - hostTook()).toBeLessThanOrEqual(bufMax);
        expect(edge - hostTook()).toBeLessThanOrEqual(bufMax);
      }
    }
    expect(acked).toBe(data.length);
    expect(windowShut).toBeGreaterThan(0);
    for (let i = 0; i < 5 && host.queued() > 0; i++) {
      host.release();
      await settle(1);
    }
    expect(sha(new Uint8Array(Buffer.concat(host.written)))).toBe(sha(data));
    expect(acks).toBeLessThanOrEqual(2 * batches); // one ACK per batch, plus window updates as the host reads
    expect(host.wasReset).toBe(false);
  });
});

