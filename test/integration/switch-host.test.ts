/**
 * A switch's gateway with --no-host-loopback: the gateway address no longer
 * reaches the host's 127.0.0.1 (RST), as on `vmnet gateway`; without the
 * flag it does. A switch daemon served in-process, a fake guest on its
 * socket, a real listener on the host's loopback.
 */
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { controlRequest, serveSwitch, switchStatus } from '../../src/switch/daemon.js';
import { readState, switchPaths } from '../../src/switch/runtime.js';
import { ip, ipv4Frame, ipv4Packet, mac, pingFrame, tcpSegment } from '../helpers/frames.js';
import { privateTmp } from '../helpers/tmp.js';
import { fakeGuest } from '../helpers/fake-guest.js';

const G_MAC = mac('52:54:00:00:00:77');
const G_IP = ip('10.7.0.77');
const GW = ip('10.7.0.2');

async function synTo(hostLoopback: boolean, port: number): Promise<{ flags: number; loopback: boolean | undefined }> {
  const runtimeDir = privateTmp();
  const name = hostLoopback ? 'loop' : 'noloop';
  const served = serveSwitch(name, { runtimeDir, subnet: '10.7.0.0/24', hostLoopback, dnsUpstreams: [{ host: '127.0.0.1', port: 9 }] });
  let st = await readState(switchPaths(name, runtimeDir));
  for (let i = 0; st === null && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    st = await readState(switchPaths(name, runtimeDir));
  }
  const g = await fakeGuest(st!.socket);
  try {
    const gwMac = mac((await switchStatus(name, { runtimeDir }))!.snapshot.gateway!.mac);
    g.send(pingFrame({ src: G_MAC, dst: gwMac, srcIp: G_IP, dstIp: GW }));
    await g.next((f) => f.icmp?.type === 0);
    g.send(ipv4Frame(ipv4Packet({ src: G_IP, dst: GW, proto: 6 }, tcpSegment(G_IP, GW, 40000, port, { seq: 1 })), { src: G_MAC, dst: gwMac }));
    const reply = await g.next((f) => f.ip?.proto === 6);
    const loopback = (await switchStatus(name, { runtimeDir }))!.snapshot.gateway!.hostLoopback;
    return { flags: reply.payload[13]!, loopback };
  } finally {
    g.close();
    await controlRequest(st!.control, { op: 'stop' }).catch(() => undefined);
    await served;
  }
}

describe('switch gateways and the host', () => {
  it('--no-host-loopback: 10.7.0.2 no longer reaches the host’s 127.0.0.1; without it, it does', async () => {
    let accepted = 0;
    const server = createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const off = await synTo(false, port);
      expect(off.flags & 0x04).toBe(0x04); // RST
      expect(off.loopback).toBe(false);
      expect(accepted).toBe(0);
      const on = await synTo(true, port);
      expect(on.flags & 0x12).toBe(0x12); // SYN-ACK: the host accepted
      expect(on.loopback).toBe(true);
      expect(accepted).toBe(1);
    } finally {
      server.close();
    }
  });
});
