/**
 * Loss seen by a guest's busybox ping, checked against a loss setting: the
 * summary line read, and the count lost held to a binomial bound (4
 * standard deviations: a false alarm once in ~16,000 runs).
 */
import { expect } from 'vitest';

/**
 * Reads `N packets transmitted, M packets received` from `output` and
 * expects `count` sent and a loss within 4 standard deviations of `count × p`.
 * @returns the number of replies lost
 */
export function expectBinomialPingLoss(output: string, count: number, p: number): number {
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(output);
  expect(m, output).not.toBeNull();
  const sent = Number(m![1]);
  const lost = sent - Number(m![2]);
  expect(sent).toBe(count);
  expect(Math.abs(lost - count * p)).toBeLessThan(4 * Math.sqrt(count * p * (1 - p)));
  return lost;
}
