/**
 * Theory of operation: where a booting guest stands on its way to SSH, told
 * from what vmnet's gateway saw of it (the answer to "why is it stuck
 * waiting for SSH?"), pure. The milestones, in order:
 *
 *   no frame yet → frames, no DHCP lease → DHCP lease → seed fetched
 *   → port 22 answers → vmnet's key accepted (ready)
 *
 * A guest with no frame has no network driver up, or (a cloud image with no
 * seed) a cloud-init that disabled itself and brought no network up; a lease
 * without a seed fetch is a cloud-init that did not find or could not read
 * its seed; a fetched seed with port 22 closed is sshd not up yet (or not
 * installed); port 22 open with the key refused is a seed that did not set
 * up vmnet's user (user-data that replaced it, a disk seeded before with
 * other keys under the same instance id).
 *
 * Times are shown in seconds after the VM started.
 */
import type { SeedFetches } from '../services/metadata/seeds.js';
import type { SshFailure } from './ssh.js';

/** What vmnet knows of a VM's boot (`vmnet wait --ssh`, the control socket's `boot-status`). */
export interface BootStatus {
  name: string;
  /** Wall-clock ms the VM started. */
  startedAt: number;
  /** How it was seeded, or null. */
  seed: 'net' | 'disk' | null;
  /** Wall-clock ms of its first frame at its gateway, or null (or unknown: no `--net user`). */
  firstFrameAt: number | null;
  /** Its latest lease, or null. */
  lease: { at: number; address: string } | null;
  /** Its network seed's fetches (net seeds only). */
  seedFetch: SeedFetches | null;
  /** The guest's port 22 as the gateway's own SYN found it; null when not probed (no lease yet). */
  port22: 'open' | 'closed' | 'timeout' | 'no-guest' | null;
}

/** One stage: a key that changes when the guest moves on, and the line that says it. */
export interface Stage {
  key: string;
  text: string;
}

const at = (status: BootStatus, ms: number): string => `${Math.max(0, (ms - status.startedAt) / 1000).toFixed(1)} s after start`;

const SSH_WORDS: Record<SshFailure, string> = {
  'key-refused': "key refused (vmnet's user or key is not set up in the guest)",
  'host-key': "host key is not the one vmnet gave the guest",
  refused: 'SSH forward refused',
  timeout: 'SSH did not answer in time',
  closed: 'sshd closed the connection (starting?)',
  other: 'ssh failed',
};

/**
 * Where the boot stands.
 * @param ssh why the last SSH attempt failed, when port 22 answered
 */
export function bootStage(s: BootStatus, ssh: SshFailure | null = null): Stage {
  const parts: string[] = [];
  let key: string;
  if (s.firstFrameAt === null && s.lease === null) {
    key = 'no-frame';
    parts.push('no frame yet (the guest has not brought its network up)');
  } else if (s.lease === null) {
    key = 'frames';
    parts.push(`frames seen ${at(s, s.firstFrameAt!)}, no DHCP lease yet`);
  } else {
    key = 'lease';
    parts.push(`DHCP lease ${s.lease.address} ${at(s, s.lease.at)}`);
  }
  if (s.seed === 'net' && s.lease !== null) {
    const f = s.seedFetch;
    if (f === null || f.count === 0) {
      parts.push(f !== null && f.refused > 0 ? `seed not fetched (${f.refused} request(s) from another guest refused)` : 'seed not fetched yet');
    } else {
      key = 'seed';
      parts.push(`seed fetched ${at(s, f.lastAt!)} (${f.documents.join(', ')})`);
    }
  }
  if (s.port22 !== null) {
    if (s.port22 === 'open') {
      key += '+22';
      parts.push(ssh === null ? 'port 22 open' : `port 22 open; ${SSH_WORDS[ssh]}`);
      if (ssh !== null) key += `:${ssh}`;
    } else {
      parts.push(s.port22 === 'closed' ? 'port 22 closed (nothing listens yet)' : s.port22 === 'timeout' ? 'port 22 does not answer' : 'no address to probe port 22');
    }
  }
  return { key, text: parts.join('; ') };
}
