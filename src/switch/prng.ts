/**
 * Theory of operation: a small seeded pseudo-random generator for link
 * faults (impair.ts), so that a run with the same seed drops, duplicates,
 * corrupts and delays the same frames (smoltcp's fault injector uses a
 * seeded xorshift for the same reason).
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG,
 * from PractRand: 128 bits of state, passes BigCrush), its state filled from
 * the 32-bit seed by splitmix32 and warmed up by 12 rounds, as PractRand
 * seeds it. Numbers come out as doubles in [0, 1) with 32 random bits. Not
 * for cryptography. Pure: no I/O, no global state.
 */

/** A seeded generator of numbers in [0, 1). */
export class Prng {
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;

  /** @param seed any integer; only its low 32 bits count */
  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      // splitmix32
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** The next 32 random bits as an unsigned integer. */
  u32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    const r = (c << 21) | (c >>> 11);
    this.#c = (r + t) | 0;
    return t >>> 0;
  }

  /** The next number in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }
}
