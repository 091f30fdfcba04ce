/**
 * The seed's contents (cloud-init.ts): meta-data, vmnet's cloud-config alone
 * or last in a MIME multipart with the user's files byte for byte, the
 * instance id (stable for the same inputs, new when one changes), the login
 * user rules, the user-data checks, the SMBIOS serial.
 *
 * The multipart layout and merge type were also run through cloud-init
 * 22.4.2's own UserDataProcessor and cloud_config handler (the .deb the
 * stand-in image is built from): the user's users list kept and vmnet's user
 * appended, the user's hostname kept, a gzip part and a shell script part
 * recognised. The e2e test checks the same on the booted stand-in.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FALLBACK_USER, guestUser, hostnameOf, instanceId, nocloudSerial, seedDocuments, userDataDocument, userDataType, VMNET_MERGE_TYPE, type SeedInput } from './cloud-init.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const input = (over: Partial<SeedInput> = {}): SeedInput => ({
  name: 'web',
  user: 'alice',
  authorizedKeys: ['ssh-ed25519 AAAAvmnet vmnet@host', 'ssh-ed25519 AAAAmine me@laptop'],
  hostKey: { privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----\n', publicKey: 'ssh-ed25519 AAAAhost vmnet-host' },
  userData: [],
  ...over,
});

/** The parts of a multipart user-data: headers and decoded body each. */
function parts(doc: string): Array<{ headers: Record<string, string>; body: Uint8Array }> {
  const boundary = /boundary="([^"]+)"/.exec(doc)![1]!;
  return doc
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((p) => {
      const [head, ...rest] = p.replace(/^\n/, '').split('\n\n');
      const headers = Object.fromEntries(head!.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const text = rest.join('\n\n').replace(/\n$/, '');
      return { headers, body: headers['content-transfer-encoding'] === 'base64' ? new Uint8Array(Buffer.from(text, 'base64')) : enc(text + '\n') };
    });
}

describe('seed documents', () => {
  it('meta-data names the instance and the host; vmnet-only user-data is one #cloud-config; vendor-data is empty', () => {
    const d = seedDocuments(input());
    expect(JSON.parse(dec(d['meta-data']))).toEqual({ 'instance-id': instanceId(input()), 'local-hostname': 'web' });
    const ud = dec(d['user-data']);
    expect(ud.startsWith('#cloud-config\n')).toBe(true);
    expect(JSON.parse(ud.slice('#cloud-config\n'.length))).toEqual({
      users: [{ name: 'alice', gecos: 'vmnet', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: input().authorizedKeys }],
      ssh_keys: { ed25519_private: input().hostKey.privateKey, ed25519_public: input().hostKey.publicKey },
      ssh_pwauth: false,
    });
    expect(d['vendor-data'].length).toBe(0);
  });

  it("puts the user's files first, byte for byte, and vmnet's cloud-config last with its merge type", () => {
    const gz = new Uint8Array(gzipSync('#cloud-config\nruncmd: [[touch, /x]]\n'));
    const yaml = enc('#cloud-config\nusers: [default]\nhostname: "a,b\\n--x"\n');
    const script = enc('#!/bin/sh\necho "\u00e9t\u00e9"\r\n');
    const doc = userDataDocument(input({ userData: [{ name: '/home/me/my file.yaml', bytes: yaml }, { name: 'run.sh', bytes: script }, { name: 'x.gz', bytes: gz }] }));
    expect(doc.split('\n').slice(0, 2)).toEqual([expect.stringMatching(/^Content-Type: multipart\/mixed; boundary="==vmnet-[0-9a-f]{24}=="$/), 'MIME-Version: 1.0']);
    const p = parts(doc);
    expect(p.map((x) => x.headers['content-type'])).toEqual(['text/x-not-multipart', 'text/x-not-multipart', 'application/gzip', 'text/cloud-config; charset="utf-8"']);
    expect(p.slice(0, 3).map((x) => x.body)).toEqual([yaml, script, gz]);
    expect(p[0]!.headers['content-disposition']).toBe('attachment; filename="1-my_file.yaml"');
    expect(p[3]!.headers['merge-type']).toBe(VMNET_MERGE_TYPE);
    expect(dec(p[3]!.body).startsWith('#cloud-config\n{')).toBe(true);
  });

  it('the instance id is stable for the same inputs and changes with any of them', () => {
    const id = instanceId(input());
    expect(id).toMatch(/^vmnet-web-[0-9a-f]{16}$/);
    expect(instanceId(input())).toBe(id);
    for (const changed of [
      input({ name: 'db' }),
      input({ user: 'bob' }),
      input({ authorizedKeys: ['ssh-ed25519 AAAAvmnet vmnet@host'] }),
      input({ hostKey: { ...input().hostKey, publicKey: 'ssh-ed25519 AAAAother' } }),
      input({ userData: [{ name: 'u', bytes: enc('#!/bin/sh\n') }] }),
    ]) {
      expect(instanceId(changed)).not.toBe(id);
    }
  });

  it('refuses user-data cloud-init would not use, with the reason', () => {
    const t = (s: string | Uint8Array) => userDataType({ name: 'f', bytes: typeof s === 'string' ? enc(s) : s });
    expect(t('#cloud-config\na: 1\n')).toBe('text/x-not-multipart');
    expect(t('#!/bin/bash\n')).toBe('text/x-not-multipart');
    expect(t('## template: jinja\n#cloud-config\n')).toBe('text/x-not-multipart');
    expect(() => t('')).toThrow(/empty/);
    expect(() => t('users: []\n')).toThrow(/does not start with a line cloud-init knows/);
    expect(() => t('Content-Type: multipart/mixed; boundary=x\nMIME-Version: 1.0\n')).toThrow(/MIME multi-part/);
    expect(() => t(Uint8Array.of(0x23, 0x21, 0xff, 0xfe))).toThrow(/not UTF-8/);
  });
});

describe('names', () => {
  it('makes a host name of any VM name', () => {
    expect(hostnameOf('web')).toBe('web');
    expect(hostnameOf('db_1.test')).toBe('db-1-test');
    expect(hostnameOf('---')).toBe('vmnet');
    expect(hostnameOf('a'.repeat(70))).toHaveLength(63);
  });

  it('uses the host user unless it cannot be a login user in the guest; refuses a bad --user', () => {
    expect(guestUser(undefined, 'alice')).toEqual({ user: 'alice', note: null });
    const root = guestUser(undefined, 'root');
    expect(root.user).toBe(FALLBACK_USER);
    expect(root.note).toMatch(/not the host user root: root is a system account/);
    expect(guestUser(undefined, 'Jean Dupont').user).toBe(FALLBACK_USER);
    expect(guestUser('dev', 'root')).toEqual({ user: 'dev', note: null });
    expect(() => guestUser('root', 'alice')).toThrow(/bad --user root/);
    expect(() => guestUser('a;b', 'alice')).toThrow(/bad --user a;b/);
  });

  it('names a network seed nocloud-net, URL ending in /', () => {
    expect(nocloudSerial('http://10.0.2.3/vmnet/abc/')).toBe('ds=nocloud-net;s=http://10.0.2.3/vmnet/abc/');
    expect(() => nocloudSerial('http://10.0.2.3/vmnet/abc')).toThrow();
  });
});
