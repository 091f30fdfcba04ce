/**
 * Theory of operation: a cloud-init NoCloud seed served over HTTP on the
 * host's 127.0.0.1, for tests that boot a cloud image on vmnet's network,
 * where the gateway address (10.0.2.2 by default) reaches the host's
 * loopback. The guest learns the seed's URL from the SMBIOS system serial
 * number (`-smbios type=1,serial=ds=nocloud-net;s=URL`, cloud-init's
 * "NoCloud" datasource documentation); cloud-init 22.4.2 (Debian 12) wants
 * `nocloud-net` there, a URL ending in `/`, and then GETs `meta-data`,
 * `user-data` and `vendor-data` under it (a 404 on vendor-data costs about
 * ten retries a second apart, so an empty one is served).
 *
 * Every request's path is recorded (bounded), so a test can tell that the
 * guest fetched its seed. Other paths get 404. Meta-data and user-data are
 * written as JSON, which is YAML (YAML 1.2 §1.3), so no YAML writer is
 * needed and no value can break out of its field.
 *
 * To be replaced by the gateway's own seed service (issue 13); until then the
 * seed lives on a host port.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The three documents of a NoCloud seed. */
export interface SeedFiles {
  metaData: string;
  userData: string;
  /** Served empty when absent. */
  vendorData?: string;
}

export interface NoCloudSeed {
  /** The host port on 127.0.0.1. */
  port: number;
  /** The seed URL as the guest sees it (ends with `/`). */
  url: string;
  /** Paths requested so far, in order (at most MAX_RECORDED). */
  requests: string[];
  /** QEMU arguments that announce the seed to the guest. */
  qemuArgs: string[];
  close(): Promise<void>;
}

const MAX_RECORDED = 1000;

/**
 * Serves a NoCloud seed on 127.0.0.1 (a free port).
 * @param files the seed's documents
 * @param guestHost the address the guest reaches the host's loopback at (vmnet's gateway address)
 * @returns the running server; close() it
 */
export async function serveNoCloudSeed(files: SeedFiles, guestHost = '10.0.2.2'): Promise<NoCloudSeed> {
  const docs = new Map([
    ['/meta-data', files.metaData],
    ['/user-data', files.userData],
    ['/vendor-data', files.vendorData ?? ''],
  ]);
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? '';
    if (requests.length < MAX_RECORDED) requests.push(path);
    const body = req.method === 'GET' ? docs.get(path) : undefined;
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain' });
    res.end(body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://${guestHost}:${port}/`;
  return {
    port,
    url,
    requests,
    qemuArgs: ['-smbios', `type=1,serial=ds=nocloud-net;s=${url}`],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * NoCloud meta-data: the instance id (a new one makes cloud-init run its
 * per-instance modules again) and the hostname.
 */
export function metaData(instanceId: string, hostname: string): string {
  return JSON.stringify({ 'instance-id': instanceId, 'local-hostname': hostname }) + '\n';
}

/**
 * Cloud-config user-data creating one user with passwordless sudo who logs
 * in with the given public keys only.
 * @param user the login name
 * @param publicKeys OpenSSH public key lines
 */
export function userDataWithUser(user: string, publicKeys: string[]): string {
  const config = {
    users: [{ name: user, sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: publicKeys }],
  };
  return '#cloud-config\n' + JSON.stringify(config) + '\n';
}
