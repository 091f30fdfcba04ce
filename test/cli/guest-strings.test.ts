/**
 * Strings a guest sets are data: a fake guest on a switch's socket (and on a
 * `vmnet gateway`'s) sends DHCP DISCOVER and REQUEST with a host name full
 * of terminal escape sequences, a newline and C1 controls; the built
 * binary's output — `vmnet switch ls`, `vmnet switch ls --json`, and the
 * gateway's counters line — must carry no raw control byte, while JSON
 * still decodes to the very name the guest sent.
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as dhcp from '../../src/wire/dhcpv4.js';
import { GW_IP, decodeDhcp, dhcpFrame, mac } from '../helpers/frames.js';
import { fakeGuest } from '../helpers/fake-guest.js';
import { privateTmp } from '../helpers/tmp.js';

const BIN = join(import.meta.dirname, '../../dist/cli/bin.js');
/** Clears the screen, sets the window title, rings the bell, breaks the line, and a C1 CSI (U+009B) for good measure. */
const EVIL = 'web\u001b[2J\u001b]0;pwned\u0007\nfake line\u009b31m\u007f';
const GUEST_MAC = mac('52:54:00:00:0e:11');

function vmnet(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, VMNET_DEBUG: '', VMNET_RUNTIME_DIR: '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Control characters a terminal acts on: C0 other than newline, DEL, C1. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

async function leaseWithEvilName(sock: string, gwIp: number): Promise<void> {
  const g = await fakeGuest(sock);
  try {
    g.send(dhcpFrame({ type: dhcp.DISCOVER, chaddr: GUEST_MAC, hostname: EVIL, xid: 1 }, { src: GUEST_MAC }));
    const offer = decodeDhcp(await g.next((f) => f.udp?.srcPort === 67));
    g.send(dhcpFrame({ type: dhcp.REQUEST, chaddr: GUEST_MAC, hostname: EVIL, xid: 2, requestedIp: offer.yiaddr, serverId: gwIp }, { src: GUEST_MAC }));
    expect(decodeDhcp(await g.next((f) => f.udp?.srcPort === 67)).messageType).toBe(dhcp.ACK);
  } finally {
    g.close();
  }
}

describe('guest-provided strings in CLI output', () => {
  it('vmnet switch ls shows a hostile DHCP host name escaped; --json keeps it exactly, with no raw control byte', async () => {
    const env = { XDG_RUNTIME_DIR: privateTmp() };
    const created = await vmnet(env, 'switch', 'create', 'esc', '--subnet', '10.9.0.0/24', '--dns-upstream', '127.0.0.1:9');
    expect(created.code, created.stderr).toBe(0);
    try {
      const sock = /socket \(access VLAN 1\): (\S+)/.exec(created.stdout)![1]!;
      await leaseWithEvilName(sock, 0x0a090002);
      const text = await vmnet(env, 'switch', 'ls');
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain('lease 10.9.0.15  52:54:00:00:0e:11  web\\x1b[2J\\x1b]0;pwned\\x07\\x0afake line\\x9b31m\\x7f\n');
      expect(text.stdout).not.toMatch(RAW_CONTROL);
      const json = await vmnet(env, 'switch', 'ls', '--json');
      expect(json.stdout).not.toMatch(RAW_CONTROL);
      const all = JSON.parse(json.stdout) as Array<{ snapshot: { gateway: { leases: Array<{ hostname: string }> } } }>;
      expect(all[0]!.snapshot.gateway.leases.map((l) => l.hostname)).toEqual([EVIL]);
    } finally {
      await vmnet(env, 'switch', 'rm', 'esc', '--force');
    }
  });

  it('vmnet gateway prints its counters (with the lease) without raw control bytes', async () => {
    const dir = privateTmp();
    const sock = join(dir, 'gw.sock');
    const child = spawn(process.execPath, [BIN, 'gateway', '--socket', sock, '--dns-upstream', '127.0.0.1:9'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      for (let i = 0; i < 100 && !out.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
      await leaseWithEvilName(sock, GW_IP);
      child.kill('SIGUSR1');
      for (let i = 0; i < 100 && !out.includes('counters (SIGUSR1)'); i++) await new Promise((r) => setTimeout(r, 50));
      const line = out.split('\n').find((l) => l.startsWith('vmnet gateway: counters (SIGUSR1) '))!;
      expect(line).toBeDefined();
      expect(out).not.toMatch(RAW_CONTROL);
      const snap = JSON.parse(line.slice('vmnet gateway: counters (SIGUSR1) '.length)) as { leases: Array<{ hostname: string }> };
      expect(snap.leases.map((l) => l.hostname)).toEqual([EVIL]);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
