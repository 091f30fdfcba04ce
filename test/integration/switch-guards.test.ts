/**
 * The switch's ingress rules over real sockets (QEMU stream framing on unix
 * sockets, switches served in this process, raw clients as guests):
 *  - VLAN hopping through a priority tag or a native-VID tag, with one switch
 *    and with two switches joined by a trunk (native 10, allowed 20) through
 *    a relay, as labs will cable them;
 *  - an honest oversize frame (right length prefix, too big for the port) is
 *    skipped and counted while the port stays up, on a switch port and on the
 *    gateway's own listener (the same framer);
 *  - the gateway's MAC on a segment cannot be taken over by a guest.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway } from '../../src/gateway/server.js';
import { startSegment } from '../../src/switch/segment.js';
import { startSwitch, type RunningSwitch } from '../../src/switch/server.js';
import * as eth from '../../src/wire/ethernet.js';
import { fakeGuest } from '../helpers/fake-guest.js';
import { GW_IP, GW_MAC, GUEST_IP, ip, mac as macText, pingFrame } from '../helpers/frames.js';
import { BCAST, frame, markOf, marked, streamClient, until, vlanOf } from '../helpers/switch-kit.js';
import { privateTmp } from '../helpers/tmp.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mac = (n: number) => Uint8Array.of(0x52, 0x54, 0, 0x10, 0, n);

async function start(extra: { mtu?: number } = {}): Promise<RunningSwitch> {
  const sw = await startSwitch({ dir: privateTmp(), ...extra });
  cleanups.push(() => sw.close());
  return sw;
}

/** A cable between two switch sockets: bytes copied both ways. */
function cable(pathA: string, pathB: string): void {
  const a: Socket = connect(pathA);
  const b: Socket = connect(pathB);
  for (const s of [a, b]) s.on('error', () => {});
  a.pipe(b);
  b.pipe(a);
  cleanups.push(() => {
    a.destroy();
    b.destroy();
  });
}

/** The crafted frames: an ARP behind a priority tag and a second tag of each TPID. */
const crafted = (outerVid: number, src: Uint8Array) =>
  [0x8100, 0x88a8, 0x9100].map((tpid) => frame({ dst: BCAST, src, vlan: outerVid, inner: [{ tpid, vid: 20 }], type: eth.ETHERTYPE_ARP, mark: 0x66 }));

describe('VLAN hopping over real sockets', () => {
  it('one switch: a priority tag or a native tag in front of a VLAN 20 tag reaches neither VLAN 20 nor the trunk', async () => {
    const sw = await start();
    const [p10, p20, pt] = await Promise.all([sw.socketFor({ vlan: 10 }), sw.socketFor({ vlan: 20 }), sw.socketFor({ trunk: [20], native: 10 })]);
    const [attacker, victim, trunk] = await Promise.all([streamClient(p10, cleanups), streamClient(p20, cleanups), streamClient(pt, cleanups)]);
    await until(() => sw.switch.ports().length === 3);
    for (const f of crafted(0, mac(1))) attacker.send(f);
    // A host process on the trunk (another switch, say) tries the native-VID form.
    for (const f of crafted(10, mac(3))) trunk.send(f);
    // A plain broadcast behind it, to know everything before it was handled.
    attacker.send(marked(BCAST, mac(1), 7));
    await until(() => trunk.got.length >= 1);
    await sleep(100);
    expect(trunk.got.map((f) => [vlanOf(f), markOf(f)])).toEqual([[-1, 7]]); // untagged: native 10
    expect(victim.got).toEqual([]);
    expect(sw.snapshot().counters.drops.nestedTag).toBe(6);
  });

  it('two switches joined by a trunk (native 10, allowed 20): nothing crafted on A reaches access 20 on B', async () => {
    const A = await start();
    const B = await start();
    const role = { trunk: [20], native: 10 };
    cable(await A.socketFor(role), await B.socketFor(role));
    const [attacker, aTrunk] = await Promise.all([streamClient(await A.socketFor({ vlan: 10 }), cleanups), streamClient(await A.socketFor({ trunk: [20], native: 10 }), cleanups)]);
    const [victim, peer10] = await Promise.all([streamClient(await B.socketFor({ vlan: 20 }), cleanups), streamClient(await B.socketFor({ vlan: 10 }), cleanups)]);
    await until(() => A.switch.ports().length === 3 && B.switch.ports().length === 3);
    for (const f of crafted(0, mac(1))) attacker.send(f);
    for (const f of crafted(10, mac(2))) aTrunk.send(f);
    // The cable works: VLAN 10 reaches B's VLAN 10, tagged 20 reaches B's VLAN 20.
    attacker.send(marked(BCAST, mac(1), 10));
    aTrunk.send(marked(BCAST, mac(2), 20, 20));
    await until(() => peer10.got.length >= 1 && victim.got.length >= 1);
    await sleep(200);
    expect(peer10.got.map(markOf)).toEqual([10]);
    expect(victim.got.map((f) => [vlanOf(f), markOf(f)])).toEqual([[-1, 20]]);
    expect(A.snapshot().counters.drops.nestedTag).toBe(6);
  });
});

describe('honest oversize frames', () => {
  it('a 2,000-byte frame on an MTU-1500 switch port is dropped and counted; the port stays up and later frames pass', async () => {
    const sw = await start({ mtu: 1500 });
    const a = await streamClient(sw.socket, cleanups);
    const b = await streamClient(sw.socket, cleanups);
    await until(() => sw.switch.ports().length === 2);
    const big = frame({ dst: BCAST, src: mac(1), payload: 2000 - 14 });
    a.send(big); // a length prefix of 2000 (StreamPort sends up to its own maxFrame: QEMU's)
    a.send(frame({ dst: BCAST, src: mac(1), payload: 1505 })); // 1519 bytes: over the MTU, not the max frame
    a.send(marked(BCAST, mac(1), 1));
    await until(() => b.got.length === 1);
    expect(b.got.map(markOf)).toEqual([1]);
    expect(a.port.closed).toBe(false);
    const port = sw.snapshot().ports.find((p) => p.counters.rxFrames > 0)!;
    expect(port.framer).toMatchObject({ tooLong: 1, oversize: 0 });
    expect(port.counters.drops.oversize).toBe(1);
    expect(sw.snapshot().connectionsClosed).toEqual({});
    // Q-in-Q at full size crosses trunk to trunk.
    const [t1, t2] = await Promise.all([streamClient(await sw.socketFor({ trunk: [10] }), cleanups), streamClient(await sw.socketFor({ trunk: [10] }), cleanups)]);
    await until(() => sw.switch.ports().length === 4);
    const qinq = frame({ dst: BCAST, src: mac(5), vlan: 10, inner: [{ tpid: 0x8100, vid: 30 }], payload: 1500 });
    t1.send(qinq);
    await until(() => t2.got.length === 1);
    expect(t2.got[0]!.length).toBe(1522);
  });

  it("the gateway's listener: a 2,000-byte frame is skipped, the guest is still served", async () => {
    const sock = join(privateTmp(), 'gw.sock');
    const gw = await startGateway({ socket: sock, mtu: 1500, dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] });
    cleanups.push(() => gw.close());
    const g = await fakeGuest(sock);
    cleanups.push(() => g.close());
    const big = new Uint8Array(2000);
    big.set(pingFrame({ dstIp: GW_IP }));
    g.send(big);
    g.send(pingFrame({ dstIp: GW_IP, seq: 2 }));
    const reply = await g.next((f) => f.icmp !== null && f.icmp.type === 0);
    expect(reply.ip?.dst).toBe(GUEST_IP);
    const port = [...gw.listener!.ports][0]!;
    expect(port.rx.tooLong).toBe(1);
    expect(port.closed).toBe(false);
    expect(gw.snapshot()).toMatchObject({ connectionsClosed: {}, linkTooLong: 1 });
  });
});

describe("the gateway's MAC on a segment", () => {
  it('a guest sending with the gateway MAC as its source is dropped, and the gateway still answers the right guest', async () => {
    const seg = await startSegment({ dir: privateTmp(), gateway: { subnet: '10.0.2.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] } });
    cleanups.push(() => seg.close());
    const spoofer = await fakeGuest(seg.socket);
    const guest = await fakeGuest(seg.socket);
    cleanups.push(() => spoofer.close(), () => guest.close());
    await until(() => seg.switch.switch.ports().length === 3);
    spoofer.send(pingFrame({ src: GW_MAC, dst: BCAST, srcIp: ip('10.0.2.2'), dstIp: ip('10.0.2.16') }));
    guest.send(pingFrame({ src: macText('52:54:00:12:34:56'), dstIp: GW_IP, seq: 9 }));
    const reply = await guest.next((f) => f.icmp !== null && f.icmp.type === 0);
    expect(reply.eth.src).toEqual(GW_MAC);
    const snap = seg.snapshot().switch;
    expect(snap.counters.drops.staticSource).toBe(1);
    const gwPort = snap.ports.find((p) => p.kind === 'internal')!;
    expect(gwPort.macs).toEqual([{ vlan: 1, mac: '52:55:0a:00:02:02', ageMs: 0, static: true }]);
    await expect(spoofer.next((f) => f.icmp !== null, 300)).rejects.toThrow();
  });
});
