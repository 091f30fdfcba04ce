/**
 * What an idle relayed connection costs the NAT: the JS heap held per flow
 * (TCP endpoint, flow entry, its place in the tables, its host events),
 * measured after a full garbage collection with the host end a shared fake
 * (a real socket's own cost is Node's: bench/socket-floor.ts). The bound is
 * the guard against per-connection closures, a Map per flow, a header per
 * connection creeping back.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { tcpConfig } from '../../tcp/conn.js';
import * as tcp from '../../wire/tcp.js';
import type { HostStream, HostStreamEvents } from './host-stream.js';
import { TcpNat } from './nat.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const GUEST = 0x0a00020f; // 10.0.2.15
const REMOTE = 0x0a000202; // 10.0.2.2
const N = 5000;

/** One host stream for every flow: it holds nothing per connection. */
const host: HostStream = { write: () => true, end() {}, reset() {}, destroy() {}, pause() {}, resume() {} };

describe('memory per idle NAT flow', () => {
  it(`${N} idle established flows hold at most 2.3 KB of JS heap each`, () => {
    let now = 1e7 + 0.25;
    const events: HostStreamEvents[] = [];
    const nat = new TcpNat(
      tcpConfig(),
      {
        now: () => now,
        random32: () => 0x9e3779b9,
        transmit: () => true,
        route: () => ({ host: '127.0.0.1', port: 80 }),
        dial: (_h, _p, _t, ev) => {
          events.push(ev);
          return host;
        },
        local: () => host,
        schedule: () => {},
      },
      { maxPerGuest: 2 * N, maxDialing: 2 * N, maxDialingPerGuest: 2 * N },
    );
    const h = tcp.blank();
    const none = new Uint8Array(0);
    const open = (port: number): void => {
      events.length = 0;
      Object.assign(h, { srcPort: port, dstPort: 80, seq: 0x80000000 + port, ack: 0, flags: tcp.SYN, window: 65535, mss: 1460, wscale: 7, sackPermitted: true, hasTimestamps: true, tsVal: 1, tsEcr: 0 });
      nat.fromGuest(GUEST, REMOTE, h, none);
      events[0]!.connected();
      tcp.clearOptions(h);
      Object.assign(h, { seq: 0x80000001 + port, ack: 0x9e3779ba, flags: tcp.ACK, hasTimestamps: true, tsVal: 2, tsEcr: 0 });
      nat.fromGuest(GUEST, REMOTE, h, none);
      now += 0.5;
    };
    for (let p = 1024; p < 1024 + 500; p++) open(p); // warm up: code compiled, tables grown
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let p = 2000; p < 2000 + N; p++) open(p);
    nat.runTimers();
    gc();
    gc();
    const perFlow = (process.memoryUsage().heapUsed - before) / N;
    expect(nat.size).toBe(N + 500);
    console.log(`~${Math.round(perFlow)} bytes of JS heap per idle flow`);
    expect(perFlow).toBeLessThan(2300); // 2611 before the closures, Map per flow and header per connection went
    expect(perFlow).toBeGreaterThan(500); // the measurement saw the flows at all
  });
});
