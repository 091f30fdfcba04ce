/**
 * Port forwards through a switch's gateway to one named VM on it: a switch
 * daemon served in-process (the control socket ops forward-add/rm/ls), a
 * fake guest on its default socket known by a vmnet name, and a host client
 * whose connection arrives at the guest as a SYN to that guest's address.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { controlRequest, registerSwitchName, serveSwitch, switchForwardAdd, switchForwardList, switchForwardRemove, switchStatus } from '../../src/switch/daemon.js';
import { readState, switchPaths } from '../../src/switch/runtime.js';
import { formatIp4 } from '../../src/wire/addr.js';
import { decodeFrame, ip, ipv4Frame, ipv4Packet, mac, pingFrame, tcpSegment, type DecodedFrame } from '../helpers/frames.js';
import { privateTmp } from '../helpers/tmp.js';
import { fakeGuest } from '../helpers/fake-guest.js';

const DB_MAC = '52:54:00:00:00:db';
const DB_IP = ip('10.7.0.50');


/** A TCP SYN (no ACK) from the guest's point of view: [dstPort, flags]. */
const tcpOf = (f: DecodedFrame) => (f.ip?.proto === 6 ? { dstPort: (f.payload[2]! << 8) | f.payload[3]!, flags: f.payload[13]! } : null);

/** Connects from the host; resolves 'connected' or the way it failed. */
const hostConnect = (port: number) =>
  new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('close', () => resolve('closed'));
    setTimeout(() => {
      s.destroy();
      resolve('pending');
    }, 3000).unref();
  });

describe('port forwards through a switch gateway', () => {
  it('forward-add with a VM name reaches that VM; unknown names reset; ls and rm', async () => {
    const runtimeDir = privateTmp();
    const name = 'fwd';
    const served = serveSwitch(name, { runtimeDir, subnet: '10.7.0.0/24', dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] });
    let st = await readState(switchPaths(name, runtimeDir));
    for (let i = 0; st === null && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      st = await readState(switchPaths(name, runtimeDir));
    }
    expect(st).not.toBeNull();
    const status = await switchStatus(name, { runtimeDir });
    const gwIp = ip(status!.snapshot.gateway!.gatewayIp);
    const gwMac = mac(status!.snapshot.gateway!.mac);
    const g = await fakeGuest(st!.socket);
    try {
      // A static guest the gateway has seen, known by its vmnet name.
      await registerSwitchName(name, DB_MAC, 'db', { runtimeDir });
      g.send(pingFrame({ src: mac(DB_MAC), dst: gwMac, srcIp: DB_IP, dstIp: gwIp }));
      await g.next((f) => f.icmp !== null && f.ip?.dst === DB_IP);

      const hostPort = 20000 + Math.floor(Math.random() * 20000);
      await switchForwardAdd(name, { proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort: 8080, guest: 'db' }, { runtimeDir });
      await expect(switchForwardAdd(name, { proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort: 8080, guest: 'db' }, { runtimeDir })).rejects.toMatchObject({ code: 'E_USAGE' });
      await switchForwardAdd(name, { proto: 'tcp', bindAddress: '127.0.0.1', hostPort: hostPort + 1, guestPort: 8080, guest: 'nobody' }, { runtimeDir });
      expect(await switchForwardList(name, { runtimeDir })).toEqual([
        { proto: 'tcp', bindAddress: '127.0.0.1', hostPort, guestPort: 8080, guest: 'db' },
        { proto: 'tcp', bindAddress: '127.0.0.1', hostPort: hostPort + 1, guestPort: 8080, guest: 'nobody' },
      ]);

      // The host connects; db's side sees a SYN to its own address and port 8080.
      const first = hostConnect(hostPort);
      const syn = await g.next((f) => f.ip?.dst === DB_IP && tcpOf(f)?.dstPort === 8080);
      expect(formatIp4(syn.ip!.dst)).toBe('10.7.0.50');
      expect(tcpOf(syn)!.flags & 0x12).toBe(0x02);
      // db has nothing on 8080: its RST reaches the host client as a reset.
      const v = new DataView(syn.payload.buffer, syn.payload.byteOffset);
      const rst = tcpSegment(DB_IP, syn.ip!.src, 8080, v.getUint16(0), { seq: 0, ack: (v.getUint32(4) + 1) >>> 0, flags: 0x14 });
      g.send(ipv4Frame(ipv4Packet({ src: DB_IP, dst: syn.ip!.src, proto: 6 }, rst), { src: mac(DB_MAC), dst: gwMac }));
      expect(await first).toBe('ECONNRESET');
      // No such VM: the host client is reset.
      expect(await hostConnect(hostPort + 1)).toBe('ECONNRESET');

      expect(await switchForwardRemove(name, { proto: 'tcp', hostPort: hostPort + 1 }, { runtimeDir })).toBe(true);
      expect(await switchForwardRemove(name, { proto: 'tcp', hostPort: hostPort + 1 }, { runtimeDir })).toBe(false);
      await expect(controlRequest(st!.control, { op: 'forward-add', spec: { proto: 'tcp', bindAddress: 'x', hostPort: 1, guestPort: 1 } as never })).rejects.toMatchObject({ code: 'E_USAGE' });
      expect((await switchForwardList(name, { runtimeDir })).map((f) => f.hostPort)).toEqual([hostPort]);
    } finally {
      g.close();
      await controlRequest(st!.control, { op: 'stop' }).catch(() => undefined);
      await served;
    }
  });
});
