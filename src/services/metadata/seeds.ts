/**
 * Theory of operation: the cloud-init NoCloud seeds a gateway serves, and who
 * may read which. cloud-init's NoCloud datasource, told a seed URL by the
 * SMBIOS system serial (`ds=nocloud-net;s=URL`, cloud-init docs
 * "datasources/nocloud"), GETs `URL` + `meta-data`, `user-data` and
 * `vendor-data` (22.4.2: `sources/DataSourceNoCloud.py`, `read_seeded`); the
 * HTTP side is seed-http.ts, reached through the gateway's TCP NAT at the DNS
 * address, port 80. A seed holds a VM's SSH host private key, so it is served
 * only to that VM:
 *
 *  - Its path holds a token of 128 random bits (`/vmnet/TOKEN/`), given to
 *    the VM alone (its SMBIOS serial). An unknown token is 404.
 *  - The request must come from the link that holds the VM's MAC, using that
 *    MAC (the gateway's neighbour table answers `owns(mac)` for the
 *    connection): on a switch segment, where many VMs share one gateway, a
 *    guest that learnt another VM's token still gets 403 (counted, per seed).
 *
 * Each seed counts its fetches (served documents, first and last time, which
 * documents) so `vmnet wait --ssh` can say whether the guest got it. Bounds:
 * MAX_SEEDS seeds, MAX_SEED_BYTES each (its three documents), MAX_TOTAL_BYTES
 * in all; beyond, add() throws. Sans-IO: time and the token source are
 * injected.
 */
import { VmnetError } from '../../errors.js';

/** The documents of a seed, by the name cloud-init asks for. */
export const SEED_DOCUMENTS = ['meta-data', 'user-data', 'vendor-data'] as const;
export type SeedDocument = (typeof SEED_DOCUMENTS)[number];

export type SeedFiles = Record<SeedDocument, Uint8Array>;

/** Where seed paths start (`/vmnet/TOKEN/DOCUMENT`). */
export const PATH_PREFIX = '/vmnet/';
/** Seeds one gateway holds at most. */
export const MAX_SEEDS = 256;
/** One seed's documents together, at most (user-data is most of it). */
export const MAX_SEED_BYTES = 4 * 1024 * 1024;
/** All seeds of one gateway together, at most. */
export const MAX_TOTAL_BYTES = 64 * 1024 * 1024;

/** What the gateway saw of a seed being fetched. */
export interface SeedFetches {
  /** Documents served (200 to a GET). */
  count: number;
  /** Wall-clock ms of the first and the last, or null. */
  firstAt: number | null;
  lastAt: number | null;
  /** Which documents were served at least once, in the order first served. */
  documents: SeedDocument[];
  /** Requests for this seed refused because they came from another guest (403). */
  refused: number;
}

export interface SeedAnswer {
  status: 200 | 400 | 403 | 404 | 405;
  /** The document (status 200), else null. */
  body: Uint8Array | null;
}

interface Seed {
  token: string;
  /** Lower-case `52:54:00:…`. */
  mac: string;
  files: SeedFiles;
  bytes: number;
  fetches: SeedFetches;
}

export interface SeedRegistryDeps {
  /** Wall-clock ms. */
  now(): number;
  /** A fresh unguessable token (32 lower-case hex digits in production). */
  token(): string;
}

const TOKEN_RE = /^[0-9a-f]{32}$/;

export class SeedRegistry {
  readonly counters = { served: 0, notFound: 0, forbidden: 0, badMethod: 0 };
  readonly #byToken = new Map<string, Seed>();
  readonly #byMac = new Map<string, Seed>();
  #bytes = 0;

  constructor(private readonly deps: SeedRegistryDeps) {}

  /** Seeds held. */
  get size(): number {
    return this.#byToken.size;
  }

  /**
   * Adds the seed of the VM with MAC `mac`, replacing one it had.
   * @returns the seed's path (`/vmnet/TOKEN/`, ends with `/`)
   * @throws VmnetError E_USAGE when a bound would be passed
   */
  add(mac: string, files: SeedFiles): string {
    const key = mac.toLowerCase();
    this.removeMac(key);
    const bytes = SEED_DOCUMENTS.reduce((a, d) => a + files[d].length, 0);
    if (bytes > MAX_SEED_BYTES) throw new VmnetError('E_USAGE', `the cloud-init seed is ${bytes} bytes; at most ${MAX_SEED_BYTES} (4 MiB) are served: make --user-data smaller`);
    if (this.#byToken.size >= MAX_SEEDS) throw new VmnetError('E_USAGE', `this gateway already serves ${MAX_SEEDS} cloud-init seeds (one per VM); stop a VM first`);
    if (this.#bytes + bytes > MAX_TOTAL_BYTES) throw new VmnetError('E_USAGE', `this gateway's cloud-init seeds would pass ${MAX_TOTAL_BYTES >> 20} MiB in all; stop a VM or make --user-data smaller`);
    const token = this.deps.token();
    if (!TOKEN_RE.test(token) || this.#byToken.has(token)) throw new Error('seed token source gave a bad or repeated token');
    const seed: Seed = { token, mac: key, files, bytes, fetches: { count: 0, firstAt: null, lastAt: null, documents: [], refused: 0 } };
    this.#byToken.set(token, seed);
    this.#byMac.set(key, seed);
    this.#bytes += bytes;
    return `${PATH_PREFIX}${token}/`;
  }

  /** Forgets the seed of `mac` (its VM ended). */
  removeMac(mac: string): void {
    const seed = this.#byMac.get(mac.toLowerCase());
    if (seed === undefined) return;
    this.#byMac.delete(seed.mac);
    this.#byToken.delete(seed.token);
    this.#bytes -= seed.bytes;
  }

  /** What was fetched of `mac`'s seed (a copy), or null when it has none. */
  fetches(mac: string): SeedFetches | null {
    const f = this.#byMac.get(mac.toLowerCase())?.fetches;
    return f === undefined ? null : { ...f, documents: [...f.documents] };
  }

  /**
   * Answers one HTTP request.
   * @param method the request method
   * @param url the request target (path)
   * @param owns whether the requesting guest holds a MAC (its link holds it and it sends with it)
   */
  answer(method: string, url: string, owns: (mac: string) => boolean): SeedAnswer {
    if (method !== 'GET' && method !== 'HEAD') {
      this.counters.badMethod++;
      return { status: 405, body: null };
    }
    const rest = url.startsWith(PATH_PREFIX) ? url.slice(PATH_PREFIX.length) : '';
    const slash = rest.indexOf('/');
    const seed = slash > 0 ? this.#byToken.get(rest.slice(0, slash)) : undefined;
    const doc = rest.slice(slash + 1) as SeedDocument;
    if (seed === undefined || !SEED_DOCUMENTS.includes(doc)) {
      this.counters.notFound++;
      return { status: 404, body: null };
    }
    if (!owns(seed.mac)) {
      this.counters.forbidden++;
      seed.fetches.refused++;
      return { status: 403, body: null };
    }
    if (method === 'GET') {
      const f = seed.fetches;
      const now = this.deps.now();
      f.count++;
      f.firstAt ??= now;
      f.lastAt = now;
      if (!f.documents.includes(doc)) f.documents.push(doc);
    }
    this.counters.served++;
    return { status: 200, body: seed.files[doc] };
  }
}
