/**
 * Two segments in one process joined by VXLAN over 127.0.0.1 (real UDP
 * sockets): A has the gateway, B none. A raw client on B gets a DHCP offer
 * from A's gateway carrying the VXLAN MTU (option 26: 1450); tagged frames
 * cross tagged; datagrams from a stranger, with another VNI, or malformed
 * are counted and dropped; a second switch on a taken UDP port fails with
 * E_PORT_IN_USE. A remote that keeps sending with a local guest's MAC gets
 * that MAC blocked on the VXLAN port, not the port (loop-guard.ts, "Shared
 * ports"): the other remote still reaches the guest and back.
 */
import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startSegment, type RunningSegment } from '../../src/switch/segment.js';
import * as vxlan from '../../src/wire/vxlan.js';
import * as dhcp from '../../src/wire/dhcpv4.js';
import { decodeDhcp, decodeFrame, dhcpFrame, mac as macOf } from '../helpers/frames.js';
import { BCAST, frame, mac, marked, markOf, streamClient, until, vlanOf } from '../helpers/switch-kit.js';
import { privateTmp } from '../helpers/tmp.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const base = 20000 + Math.floor(Math.random() * 20000);
const PA = base;
const PB = base + 1;

async function pair(bMtu?: number): Promise<[RunningSegment, RunningSegment]> {
  const a = await startSegment({ dir: privateTmp(), gateway: { subnet: '10.9.0.0/24', isolated: true }, vxlan: { vni: 42, local: { host: '127.0.0.1', port: PA }, remotes: [{ host: '127.0.0.1', port: PB }] } });
  cleanups.push(() => a.close());
  const b = await startSegment({ dir: privateTmp(), mtu: bMtu, vxlan: { vni: 42, local: { host: '127.0.0.1', port: PB }, remotes: [{ host: '127.0.0.1', port: PA }] } });
  cleanups.push(() => b.close());
  return [a, b];
}

describe('VXLAN between two segments on loopback', () => {
  it('a guest behind B gets a lease offer from A’s gateway with option 26 = 1450; frames cross both ways', async () => {
    const [a, b] = await pair();
    expect(a.switch.switch.mtu).toBe(1450);
    expect(b.switch.switch.mtu).toBe(1450);
    const gb = await streamClient(b.socket, cleanups);
    const ga = await streamClient(a.socket, cleanups);
    const chaddr = macOf('52:54:00:00:0b:01');
    gb.send(dhcpFrame({ type: dhcp.DISCOVER, chaddr }));
    await until(() => gb.got.some((f) => decodeFrame(f).udp?.dstPort === 68));
    const offer = decodeDhcp(decodeFrame(gb.got.find((f) => decodeFrame(f).udp?.dstPort === 68)!));
    expect(offer.messageType).toBe(dhcp.OFFER);
    expect(offer.options.mtu).toBe(1450);
    expect(offer.yiaddr >>> 24).toBe(10);
    // Unicast both ways, learned per remote.
    ga.send(marked(mac(0xb01), mac(0xa01), 7));
    await until(() => gb.got.some((f) => f[12] === 0x88 && markOf(f) === 7));
    gb.send(marked(mac(0xa01), mac(0xb01), 8));
    await until(() => ga.got.some((f) => f[12] === 0x88 && markOf(f) === 8));
    const sa = a.snapshot().vxlan!;
    expect(sa.macs.map((m) => m.remote)).toContain(`127.0.0.1:${PB}`);
    expect(sa.gatewaySessions).toBe(1); // the DHCP client behind B
    expect(sa.counters.rxFrames).toBeGreaterThanOrEqual(2);
  });

  it('the gateway keeps a session per remote MAC: six DHCP clients behind B all get offers (a port holds at most 4 leases)', async () => {
    const [a, b] = await pair();
    const gb = await streamClient(b.socket, cleanups);
    const offers = new Set<string>();
    for (let i = 1; i <= 6; i++) {
      const chaddr = macOf(`52:54:00:00:0c:0${i}`);
      gb.send(dhcpFrame({ type: dhcp.DISCOVER, chaddr, xid: 0x1000 + i }));
    }
    await until(() => {
      for (const f of gb.got) {
        const d = decodeFrame(f);
        if (d.udp?.dstPort === 68) offers.add(String(decodeDhcp(d).xid));
      }
      return offers.size === 6;
    });
    expect(a.snapshot().vxlan!.gatewaySessions).toBe(6);
  });

  it('carries 802.1Q-tagged frames tagged (trunk clients on both sides)', async () => {
    const [a, b] = await pair();
    const ta = await streamClient(await a.socketFor({ trunk: [10, 20] }), cleanups);
    const tb = await streamClient(await b.socketFor({ trunk: [20] }), cleanups);
    ta.send(marked(BCAST, mac(0xa02), 20, 20));
    ta.send(marked(BCAST, mac(0xa02), 10, 10)); // VLAN 10: B's trunk does not carry it
    await until(() => tb.got.some((f) => markOf(f) === 20));
    const got = tb.got.filter((f) => f[12] === 0x81);
    expect(got.map((f) => [vlanOf(f), markOf(f)])).toEqual([[20, 20]]);
    // On the wire between the VTEPs the frame was tagged (B's VXLAN port is a trunk: it arrived as VLAN 20).
    const vxPort = b.snapshot().switch.ports.find((p) => p.name === 'vxlan')!;
    expect(vxPort.macs).toEqual(expect.arrayContaining([expect.objectContaining({ vlan: 20 })]));
  });

  it('drops and counts datagrams from strangers, of another VNI and malformed ones; oversize frames are refused, not fragmented', async () => {
    const [a, b] = await pair(1500); // B's MTU set past what the underlay carries: VXLAN must refuse, not fragment
    const ga = await streamClient(a.socket, cleanups);
    const inner = marked(BCAST, mac(0xbad), 1);
    const dg = (vni: number, flags = vxlan.FLAG_I) => {
      const d = new Uint8Array(8 + inner.length);
      vxlan.emit({ vni }, new DataView(d.buffer), 0);
      d[0] = flags;
      d.set(inner, 8);
      return d;
    };
    // Frames from B: 1464 bytes (payload 1450) fit a 1500-byte underlay; 1465 and 1514 do not.
    const gb = await streamClient(b.socket, cleanups);
    const big = (n: number, m: number) => frame({ dst: BCAST, src: mac(0xb03), type: 0x88b5, payload: n, mark: m });
    gb.send(big(1450, 31));
    gb.send(big(1451, 32));
    gb.send(big(1500, 33));
    await until(() => b.vxlan!.vtep.counters.txFrames === 3);
    await until(() => ga.got.some((f) => markOf(f) === 31));
    expect(b.vxlan!.vtep.counters.tooBig).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(ga.got.filter((f) => f[12] === 0x88).map(markOf)).toEqual([31]);
    ga.got.length = 0;
    // A stranger on 127.0.0.2 (an address no remote has).
    const stranger = createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.2', r));
    cleanups.push(() => new Promise<void>((r) => stranger.close(() => r())));
    const send = (s: ReturnType<typeof createSocket>, d: Uint8Array) => new Promise<void>((r) => s.send(d, PA, '127.0.0.1', () => r()));
    await send(stranger, dg(42));
    // Another local user's socket on B's address (127.0.0.1, another port): B is on this host, so only its own port is heard.
    const vtepB = b.vxlan!;
    expect(vtepB.local).toBe(`127.0.0.1:${PB}`);
    const local = createSocket('udp4');
    await new Promise<void>((r) => local.bind(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => local.close(() => r())));
    await send(local, dg(42));
    await until(() => a.vxlan!.vtep.counters.unknownRemote === 2);
    // From B's own port (B closed first, its port taken over): other VNI, no I flag, too short.
    await b.close();
    const fromB = createSocket('udp4');
    await new Promise<void>((r) => fromB.bind(PB, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => fromB.close(() => r())));
    await send(fromB, dg(43));
    await send(fromB, dg(42, 0));
    await send(fromB, dg(42).subarray(0, 12));
    await until(() => {
      const c = a.vxlan!.vtep.counters;
      return c.unknownRemote === 2 && c.badVni === 1 && c.malformed === 2;
    });
    expect(ga.got.filter((f) => f[12] === 0x88)).toHaveLength(0);
  });

  it('a second switch on a taken UDP port fails with E_PORT_IN_USE and leaves nothing behind; a remote that is the switch itself is refused', async () => {
    await pair();
    const dir = privateTmp();
    await expect(startSegment({ dir, gateway: { subnet: '10.9.0.0/24' }, vxlan: { vni: 42, local: { host: '127.0.0.1', port: PA }, remotes: [{ host: '127.0.0.1', port: PB }] } })).rejects.toMatchObject({ code: 'E_PORT_IN_USE' });
    expect(readdirSync(dir)).toEqual([]); // no role sockets left
    await expect(startSegment({ dir, vxlan: { vni: 42, local: { host: '127.0.0.1', port: PB + 7 }, remotes: [{ host: '127.0.0.1', port: PB + 7 }] } })).rejects.toThrow(/own address/);
  });

  it('a remote that keeps sending with a local guest\'s MAC: that MAC is blocked on the VXLAN port, the port stays up for the other remote', async () => {
    const sockets = await Promise.all(
      [PB, PB + 2].map(async (port) => {
        const s = createSocket('udp4');
        await new Promise<void>((r) => s.bind(port, '127.0.0.1', r));
        cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
        return s;
      }),
    );
    const [hostile, honest] = sockets as [ReturnType<typeof createSocket>, ReturnType<typeof createSocket>];
    const a = await startSegment({ dir: privateTmp(), vxlan: { vni: 42, local: { host: '127.0.0.1', port: PA }, remotes: [{ host: '127.0.0.1', port: PB }, { host: '127.0.0.1', port: PB + 2 }] } });
    cleanups.push(() => a.close());
    const heard: Uint8Array[] = [];
    honest.on('message', (m) => heard.push(new Uint8Array(m.subarray(8))));
    const guest = await streamClient(a.socket, cleanups);
    const G = mac(0xa05);
    const toA = (s: ReturnType<typeof createSocket>, inner: Uint8Array) => {
      const d = new Uint8Array(8 + inner.length);
      vxlan.emit({ vni: 42 }, new DataView(d.buffer), 0);
      d.set(inner, 8);
      return new Promise<void>((r) => s.send(d, PA, '127.0.0.1', () => r()));
    };
    guest.send(marked(BCAST, G, 1));
    await until(() => a.snapshot().switch.macs > 0);
    for (let i = 0; i < 60; i++) {
      await toA(hostile, marked(BCAST, G, 2));
      guest.send(marked(BCAST, G, 3));
      await new Promise((r) => setTimeout(r, 5));
    }
    const vxPort = () => a.snapshot().switch.ports.find((p) => p.name === 'vxlan')!;
    await until(() => vxPort().macBlocks.length === 1);
    expect(vxPort().blocked).toBeNull();
    expect(vxPort().macBlocks[0]).toMatchObject({ mac: '52:54:00:00:0a:05', vlan: 1 });
    expect(vxPort().counters.drops.macBlocked).toBeGreaterThan(0);
    // The guest and the honest remote still hear each other, unicast both ways.
    guest.got.length = 0;
    heard.length = 0;
    await toA(honest, marked(G, mac(0xc01), 4));
    await until(() => guest.got.some((f) => f[12] === 0x88 && markOf(f) === 4));
    guest.send(marked(mac(0xc01), G, 5));
    await until(() => heard.some((f) => markOf(f) === 5));
    // And the hostile remote's frames with G go nowhere.
    guest.got.length = 0;
    await toA(hostile, marked(BCAST, G, 6));
    await toA(honest, marked(BCAST, mac(0xc01), 7));
    await until(() => guest.got.some((f) => f[12] === 0x88 && markOf(f) === 7));
    expect(guest.got.filter((f) => f[12] === 0x88).map(markOf)).toEqual([7]);
  });
});
