/**
 * How the TCP NAT tears flows down (issue 11, "Data integrity"): every byte
 * acknowledged to the guest reaches the host before the host socket is
 * closed, whichever way the guest-side connection ended; what cannot be
 * flushed is reset, never closed with a clean EOF; host data reaches the
 * guest before the host's FIN. Crafted guest segments, a fake host stream
 * whose writes the test holds, a fake clock.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as tcp from '../wire/tcp.js';
import { GatewayRig, settle, type FakeTcpStream } from '../../test/helpers/frames.js';
import { GuestConn, tcpOf } from '../../test/helpers/guest-tcp.js';

function bytes(n: number, salt = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + salt + (i >>> 8)) & 255;
  return b;
}
const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Advances the fake clock and runs the NAT's due timers. */
function advance(rig: GatewayRig, ms: number): void {
  rig.clock.t += ms;
  rig.gateway.tcpNat.runTimers();
}

/**
 * A connection whose host half-closed first and reads nothing (writes held),
 * to which the guest sent `data` and FIN; TIME-WAIT is over, so it drains.
 */
async function drainingConn(rig: GatewayRig, port: number, data: Uint8Array): Promise<GuestConn> {
  const g = new GuestConn(rig, { port }).establish();
  g.host.ev.end();
  g.take();
  g.send({ flags: tcp.ACK }); // ACK of the gateway's FIN: FIN-WAIT-2
  g.host.hold = true;
  g.write(data, true);
  await settle();
  advance(rig, 3_000); // TIME-WAIT (2 s) is over: the guest-side connection is CLOSED
  return g;
}

/**
 * Lets a host that reads slowly take everything, one held write at a time:
 * every byte of `data` must arrive, then the FIN, and the flow must be gone.
 */
async function hostTakesAll(rig: GatewayRig, host: FakeTcpStream, data: Uint8Array): Promise<void> {
  for (let i = 0; i < 100 && !host.ended; i++) {
    host.release();
    await settle();
  }
  expect(sha(concat(host.written))).toBe(sha(data));
  expect(host.ended).toBe(true);
  host.release(); // the FIN is handed over
  await settle();
  expect(rig.gateway.tcpNat.size).toBe(0);
  expect(host.wasReset).toBe(false);
}

describe('TCP NAT teardown', () => {
  it('the host half-closes first and reads slowly: every byte the guest sent reaches it, after TIME-WAIT ended, then FIN', async () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig).establish();
    const host = g.host;
    host.ev.end(); // the host half-closes first
    g.take();
    expect(g.finSeen).toBe(true);
    g.send({ flags: tcp.ACK }); // ACK of the gateway's FIN: FIN-WAIT-2
    host.hold = true; // the host reads slowly: nothing completes
    const data = bytes(200_000);
    g.write(data, true); // all of it is acknowledged by the gateway (its receive buffer holds it), then FIN
    await settle();
    advance(rig, 3_000); // TIME-WAIT (2 s) is over: the guest-side connection is CLOSED
    expect(host.wasReset).toBe(false);
    expect(host.destroyed).toBe(false);
    expect(host.ended).toBe(false);
    await hostTakesAll(rig, host, data);
  });

  it('a host that stops reading for good is reset after the drain bound, never given a clean EOF', async () => {
    const rig = new GatewayRig({ tcpLimits: { drainIdleMs: 30_000 } });
    const g = new GuestConn(rig, { port: 40101 }).establish();
    const host = g.host;
    host.ev.end();
    g.take();
    g.send({ flags: tcp.ACK });
    host.hold = true;
    g.write(bytes(100_000), true);
    await settle();
    advance(rig, 3_000);
    advance(rig, 20_000);
    expect(host.wasReset).toBe(false); // still within the bound
    advance(rig, 20_000);
    expect(host.wasReset).toBe(true);
    expect(host.ended).toBe(false);
    expect(rig.gateway.tcpNat.size).toBe(0);
    expect(rig.gateway.tcpNat.counters.drainResets).toBe(1);
  });

  it('progress keeps a slow drain alive past the bound', async () => {
    const rig = new GatewayRig({ tcpLimits: { drainIdleMs: 30_000 } });
    const g = new GuestConn(rig, { port: 40102 }).establish();
    const host = g.host;
    host.ev.end();
    g.take();
    g.send({ flags: tcp.ACK });
    host.hold = true;
    const data = bytes(300_000, 3);
    g.write(data, true);
    await settle();
    advance(rig, 3_000);
    for (let i = 0; i < 200 && !host.ended; i++) {
      advance(rig, 20_000); // slow, but some progress each time
      host.release();
      await settle();
    }
    expect(host.wasReset).toBe(false);
    expect(sha(concat(host.written))).toBe(sha(data));
    expect(host.ended).toBe(true);
  });

  it('the guest closes first (LAST-ACK) while the host reads slowly: no byte lost', async () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig, { port: 40103 }).establish();
    const host = g.host;
    host.hold = true;
    const data = bytes(150_000, 5);
    g.write(data, true); // guest sends and closes first
    await settle();
    host.ev.end(); // the host closes its side: the gateway's FIN goes out, LAST-ACK
    g.take();
    g.send({ flags: tcp.ACK }); // ACK of our FIN: CLOSED
    expect(host.destroyed || host.wasReset).toBe(false);
    await hostTakesAll(rig, host, data);
  });

  it('gateway shutdown resets live flows both ways and lets finished ones flush within the grace', async () => {
    const rig = new GatewayRig();
    const live = new GuestConn(rig, { port: 40104 }).establish();
    live.write(bytes(5000), false);
    await settle();
    const done = new GuestConn(rig, { port: 40105 }).establish();
    done.host.ev.end();
    done.take();
    done.send({ flags: tcp.ACK });
    done.host.hold = true;
    const data = bytes(80_000, 9);
    done.write(data, true);
    await settle();
    const closing = rig.gateway.tcpNat.closeAll(5_000);
    expect(live.host.wasReset).toBe(true);
    expect(rig.port.takeDecoded().map(tcpOf).some((s) => s.h.dstPort === 40104 && s.h.flags & tcp.RST)).toBe(true);
    expect(done.host.wasReset).toBe(false);
    for (let i = 0; i < 100 && !done.host.ended; i++) {
      done.host.release();
      await settle();
    }
    done.host.release();
    await closing;
    expect(sha(concat(done.host.written))).toBe(sha(data));
    expect(done.host.wasReset).toBe(false);
  });

  it('gateway shutdown resets a drain that cannot finish within the grace', async () => {
    const rig = new GatewayRig();
    const g = await drainingConn(rig, 40106, bytes(50_000));
    const closing = rig.gateway.tcpNat.closeAll(50);
    expect(g.host.wasReset).toBe(false);
    advance(rig, 100);
    await closing;
    expect(g.host.wasReset).toBe(true);
    expect(g.host.ended).toBe(false);
  });

  it('gateway shutdown: a drain that keeps making progress is still reset when the grace is over', async () => {
    const rig = new GatewayRig({ tcpLimits: { drainIdleMs: 30_000 } });
    const g = await drainingConn(rig, 40108, bytes(900_000, 13));
    let resolved = false;
    const closing = rig.gateway.tcpNat.closeAll(1_000).then(() => (resolved = true));
    // The host takes one write (at most 256 KiB) every 400 ms: progress, but too slow to finish within the grace.
    for (let i = 0; i < 10 && !resolved; i++) {
      g.host.release();
      await settle();
      advance(rig, 400);
      await settle();
    }
    expect(resolved).toBe(true); // shutdown is bounded by the grace, progress or not
    await closing;
    expect(g.host.wasReset).toBe(true);
    expect(g.host.ended).toBe(false);
  });

  it('gateway shutdown asked twice: both calls resolve once the drains are over', async () => {
    const rig = new GatewayRig();
    const g = await drainingConn(rig, 40109, bytes(50_000));
    let first = false;
    let second = false;
    void rig.gateway.tcpNat.closeAll(1_000).then(() => (first = true));
    void rig.gateway.tcpNat.closeAll(1_000).then(() => (second = true));
    advance(rig, 1_500);
    await settle();
    expect(g.host.wasReset).toBe(true);
    expect([first, second]).toEqual([true, true]);
  });

  it('a guest that sent everything and its FIN, then went away (its link closed): the host still gets every byte, then FIN', async () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig, { port: 40110 }).establish();
    const host = g.host;
    host.hold = true; // a slow host reader; it has sent nothing and not closed (CLOSE-WAIT here)
    const data = bytes(300_000, 17);
    g.write(data, true); // acknowledged by the gateway, FIN too
    await settle();
    rig.gateway.detach(rig.session); // the VM powers off
    expect(host.wasReset).toBe(false);
    // Nothing more is read from the host: what it still sends has nowhere to go, and left unread
    // it makes the kernel reset the host when the socket closes, instead of vanishing silently.
    expect(host.paused).toBe(true);
    await hostTakesAll(rig, host, data);
  });

  it('a link that closes while host bytes toward its guest are still unacknowledged: the host is reset, never told all is well', async () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig, { port: 40111 }).establish();
    g.write(bytes(1000), true); // the guest's side is complete
    await settle();
    g.host.ev.data(bytes(5000, 1)); // the host answers; the guest never acknowledges it
    rig.gateway.detach(rig.session);
    expect(g.host.wasReset).toBe(true); // (its FIN toward the host went earlier: the guest's half was complete)
  });

  it('after shutdown’s grace nothing drains any more: the last links closing reset what is left at once', async () => {
    const rig = new GatewayRig();
    await rig.gateway.tcpNat.closeAll(0); // nothing to drain: the grace is over at once
    // A guest still connects before its link goes (the server closes its listener after the grace).
    const g = new GuestConn(rig, { port: 40112 }).establish();
    g.host.hold = true;
    g.write(bytes(300_000, 19), true); // complete on the guest's side, not yet taken by the host
    await settle();
    rig.gateway.close(); // the links go
    expect(g.host.wasReset).toBe(true); // no timer runs after this: a drain begun now would keep its socket for good
    expect(rig.gateway.tcpNat.size).toBe(0);
  });

  it('a large host read that was not read in place (a lent region gone stale) is taken, not mistaken for a host ignoring pause', async () => {
    const rig = new GatewayRig({ mtu: 65520 }); // send buffers of 4 MiB: one read can bring 2 MB
    const g = new GuestConn(rig, { port: 40108 }).establish();
    g.host.ev.data(bytes(2_000_000, 13)); // as a read into a lent region that moved: commitLent fails, the bytes are copied
    expect(rig.gateway.tcpNat.counters.hostOverruns).toBe(0);
    expect(g.rstSeen || g.host.wasReset).toBe(false);
    expect(rig.gateway.tcpNat.size).toBe(1);
  });

  it('a host stream that keeps delivering while paused is reset once it passes the bound, counted', () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig, { port: 40109 }).establish();
    g.window = 0;
    for (let i = 0; i < 40 && !g.host.wasReset; i++) g.host.ev.data(bytes(128 * 1024, i)); // ignores pause()
    expect(g.host.paused || g.host.wasReset).toBe(true);
    expect(g.host.wasReset).toBe(true);
    expect(rig.gateway.tcpNat.counters.hostOverruns).toBe(1);
    expect(rig.gateway.tcpNat.size).toBe(0);
    g.take();
    expect(g.rstSeen).toBe(true); // reset both ways
  });

  it('host data reaches the guest before the host FIN, even when the send buffer was full', async () => {
    const rig = new GatewayRig();
    const g = new GuestConn(rig, { port: 40107 }).establish();
    const data = bytes(1_500_000, 11); // more than the send buffer (1 MiB) holds
    let sent = 0;
    const feed = (): void => {
      // as a socket: nothing is delivered while paused; the FIN comes after the last byte
      while (!g.host.paused && sent < data.length) {
        g.host.ev.data(data.subarray(sent, sent + 100_000));
        sent += 100_000;
      }
      if (sent >= data.length && !g.host.paused && !g.host.ended) {
        g.host.ended = true; // (marks the host's FIN as delivered, once)
        g.host.ev.end();
      }
    };
    for (let i = 0; i < 10_000 && !g.finSeen; i++) {
      feed();
      g.take();
      g.send({ flags: tcp.ACK });
      await settle(1);
    }
    expect(g.finSeen).toBe(true);
    expect(sha(concat(g.received))).toBe(sha(data));
  });
});
