/**
 * Theory of operation: the contents of the cloud-init NoCloud seed vmnet
 * gives a VM (cloud-init docs "datasources/nocloud"; checked against
 * cloud-init 22.4.2, Debian 12's), pure: no I/O.
 *
 * meta-data: `instance-id` and `local-hostname` (the VM name, made a valid
 * host name). The instance id is the VM name plus a hash of everything the
 * seed carries (user, keys, host key, user-data): stable across runs of a
 * name with the same inputs (cloud-init then applies nothing again on a
 * kept disk), new when an input changes (cloud-init runs its per-instance
 * modules again and applies the new keys; a host key kept by vmnet but no
 * longer on the disk can never leave the VM unreachable).
 *
 * user-data: vmnet's `#cloud-config`: one user (by default named as the host
 * user; see `guestUser`) with passwordless sudo, a locked password, bash,
 * and the authorized keys (vmnet's own and each `--ssh-key`); the SSH host
 * key vmnet generated (`ssh_keys`, ed25519 only: cloud-init writes the given
 * keys instead of generating any); `ssh_pwauth: false`. No network-config:
 * the image's fallback (DHCP on the first NIC) is what vmnet's gateway
 * serves. JSON is YAML (YAML 1.2 §1.3), so no YAML writer is needed and no
 * value can break out of its field.
 *
 * The user's `--user-data` files are passed through byte for byte, as
 * further parts of a MIME multipart message (cloud-init's own format for
 * several parts, `user_data.py`): each part `text/x-not-multipart`, base64,
 * so cloud-init finds its type from its first line exactly as for a single
 * file (`#cloud-config`, `#!`, …; gzip as `application/gzip`). vmnet's part
 * comes last, with `Merge-Type: dict(no_replace,recurse_list)+list(append)+str()`
 * (cloud-init's cloud_config handler merges each cloud-config part into what
 * came before, with the part's own merge type; the default,
 * `dict(replace)+list()+str()`, would let a user's `users:` list replace
 * vmnet's user, or vmnet's replace the user's). With that merge type a user's
 * setting wins wherever both set one (`hostname`, `ssh_pwauth`, an
 * `ssh_keys` entry), and lists are joined (`users`, `ssh_authorized_keys`),
 * so vmnet's user is always there. A user file that is itself a MIME message
 * is refused (give its parts as separate files); one whose first line
 * cloud-init does not know is refused too (cloud-init would ignore it with a
 * warning in its log). The YAML inside is not checked here: cloud-init does
 * that (`cloud-init schema`).
 *
 * vendor-data is empty: without it cloud-init 22.4.2 retries the 404 about
 * ten times, a second apart.
 */
import { createHash } from 'node:crypto';
import { VmnetError } from '../errors.js';
import type { SeedFiles } from '../services/metadata/seeds.js';

/** One `--user-data` file: its name (for messages and the MIME part) and its exact bytes. */
export interface UserDataPart {
  name: string;
  bytes: Uint8Array;
}

export interface SeedInput {
  /** The VM name. */
  name: string;
  /** The login user created in the guest. */
  user: string;
  /** OpenSSH public key lines the user logs in with. */
  authorizedKeys: string[];
  /** The guest's SSH host key (ed25519), OpenSSH formats. */
  hostKey: { privateKey: string; publicKey: string };
  userData: UserDataPart[];
}

/** First lines cloud-init 22.4.2 recognises (handlers/__init__.py INCLUSION_TYPES_MAP), longest first. */
const KNOWN_STARTS = ['#cloud-config-archive', '#cloud-config-jsonp', '## template: jinja', '#cloud-boothook', '#include-once', '#part-handler', '#cloud-config', '#include', '#!'];

/** cloud-init's merge type for vmnet's part (see the file comment). */
export const VMNET_MERGE_TYPE = 'dict(no_replace,recurse_list)+list(append)+str()';

const utf8 = new TextEncoder();
const strict = new TextDecoder('utf-8', { fatal: true });

/** The host name a VM name gives (RFC 1123 §2.1 label: letters, digits, inner hyphens, at most 63). */
export function hostnameOf(name: string): string {
  const h = name.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return h || 'vmnet';
}

/** Linux user names vmnet accepts (useradd's portable set, at most 32). */
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
/** Accounts a Debian or Ubuntu cloud image already has (base-passwd, systemd, OpenSSH), never reused for the login user. */
const SYSTEM_USERS = new Set([
  'root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data', 'backup', 'list', 'irc', 'gnats', 'nobody',
  '_apt', 'messagebus', 'sshd', 'syslog', 'systemd-network', 'systemd-resolve', 'systemd-timesync', 'polkitd', 'tss', 'uuidd', 'tcpdump', 'landscape', 'lxd',
]);

/** Why `name` cannot be the guest's login user, or null when it can. */
export function userNameProblem(name: string): string | null {
  if (!USER_RE.test(name)) return 'a login name is 1-32 of a-z, 0-9, _ and -, starting with a letter or _';
  if (SYSTEM_USERS.has(name)) return `${name} is a system account in cloud images`;
  return null;
}

/** The login user when none is asked for: the default fallback. */
export const FALLBACK_USER = 'vmnet';

/**
 * The guest's login user.
 * @param asked `--user`, when given (checked: a bad one is refused)
 * @param hostUser the host user's name
 * @returns the name, and a note when the host user's name could not be used
 * @throws VmnetError E_USAGE for a bad `asked`
 */
export function guestUser(asked: string | undefined, hostUser: string): { user: string; note: string | null } {
  if (asked !== undefined) {
    const why = userNameProblem(asked);
    if (why) throw new VmnetError('E_USAGE', `bad --user ${asked}: ${why}`);
    return { user: asked, note: null };
  }
  const why = userNameProblem(hostUser);
  if (why === null) return { user: hostUser, note: null };
  return { user: FALLBACK_USER, note: `not the host user ${hostUser || '(none)'}: ${why}; --user NAME picks another` };
}

/**
 * Checks one `--user-data` file.
 * @returns the MIME type its part gets
 * @throws VmnetError E_USAGE saying what is wrong with it
 */
export function userDataType(part: UserDataPart): string {
  const b = part.bytes;
  if (b.length === 0) throw new VmnetError('E_USAGE', `--user-data ${part.name} is empty`);
  if (b[0] === 0x1f && b[1] === 0x8b) return 'application/gzip';
  let text: string;
  try {
    text = strict.decode(b.subarray(0, Math.min(b.length, 4096 + 4)));
  } catch {
    if (b.length <= 4096) throw new VmnetError('E_USAGE', `--user-data ${part.name} is not UTF-8 text (cloud-init reads text, or gzip)`);
    text = new TextDecoder().decode(b.subarray(0, 4096));
  }
  if (/mime-version:/i.test(text.slice(0, 4096))) throw new VmnetError('E_USAGE', `--user-data ${part.name} is a MIME multi-part message; give each of its parts as a --user-data file of its own`);
  if (!KNOWN_STARTS.some((s) => text.startsWith(s))) {
    throw new VmnetError('E_USAGE', `--user-data ${part.name} does not start with a line cloud-init knows (#cloud-config, #!, #cloud-boothook, #include, #part-handler, ## template: jinja, …); cloud-init would ignore it`);
  }
  return 'text/x-not-multipart';
}

/** vmnet's own cloud-config (JSON, which is YAML). */
function vmnetConfig(i: SeedInput): string {
  const config = {
    users: [{ name: i.user, gecos: 'vmnet', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: i.authorizedKeys }],
    ssh_keys: { ed25519_private: i.hostKey.privateKey, ed25519_public: i.hostKey.publicKey },
    ssh_pwauth: false,
  };
  return `#cloud-config\n${JSON.stringify(config, null, 1)}\n`;
}

/** The instance id: the VM name and a hash of everything the seed carries (see the file comment). */
export function instanceId(i: SeedInput): string {
  const h = createHash('sha256');
  for (const s of [i.name, i.user, ...i.authorizedKeys, i.hostKey.publicKey, i.hostKey.privateKey]) h.update(s).update('\0');
  for (const p of i.userData) h.update(p.bytes).update('\0');
  return `vmnet-${hostnameOf(i.name)}-${h.digest('hex').slice(0, 16)}`;
}

/** Base64 in lines of 76 (RFC 2045 §6.8). */
function base64Lines(b: Uint8Array): string {
  const s = Buffer.from(b).toString('base64');
  const lines: string[] = [];
  for (let o = 0; o < s.length; o += 76) lines.push(s.slice(o, o + 76));
  return lines.join('\n');
}

/** A file name safe in a MIME header and as cloud-init's script file name. */
const partFileName = (name: string, index: number): string => {
  const base = name.split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '');
  return base ? `${index}-${base}` : `part-${index}`;
};

/**
 * The user-data document: vmnet's cloud-config alone, or a MIME multipart
 * message with the user's parts first and vmnet's last.
 */
export function userDataDocument(i: SeedInput): string {
  const own = vmnetConfig(i);
  if (i.userData.length === 0) return own;
  const types = i.userData.map(userDataType);
  // A boundary that cannot occur in the parts: base64 has no '=' inside a line, and vmnet's part is JSON.
  const boundary = `==vmnet-${createHash('sha256').update(own).digest('hex').slice(0, 24)}==`;
  const out = [`Content-Type: multipart/mixed; boundary="${boundary}"`, 'MIME-Version: 1.0', ''];
  i.userData.forEach((p, n) => {
    out.push(`--${boundary}`, `Content-Type: ${types[n]}`, 'MIME-Version: 1.0', 'Content-Transfer-Encoding: base64', `Content-Disposition: attachment; filename="${partFileName(p.name, n + 1)}"`, '', base64Lines(p.bytes));
  });
  out.push(`--${boundary}`, 'Content-Type: text/cloud-config; charset="utf-8"', 'MIME-Version: 1.0', `Merge-Type: ${VMNET_MERGE_TYPE}`, 'Content-Disposition: attachment; filename="vmnet.cfg"', '', own.replace(/\n$/, ''));
  out.push(`--${boundary}--`, '');
  return out.join('\n');
}

/** The three documents of a VM's seed. */
export function seedDocuments(i: SeedInput): SeedFiles {
  const meta = JSON.stringify({ 'instance-id': instanceId(i), 'local-hostname': hostnameOf(i.name) }) + '\n';
  return { 'meta-data': utf8.encode(meta), 'user-data': utf8.encode(userDataDocument(i)), 'vendor-data': new Uint8Array(0) };
}

/**
 * The SMBIOS system serial that names a network seed to cloud-init
 * (`-smbios type=1,serial=…`): `nocloud-net`, which cloud-init 22.4.2 needs
 * for a URL (plain `nocloud` there means a seed on disk).
 * @param url the seed URL, ending with `/`
 */
export function nocloudSerial(url: string): string {
  if (!url.endsWith('/')) throw new Error('a NoCloud seed URL ends with /');
  return `ds=nocloud-net;s=${url}`;
}
