import { describe, expect, it } from 'vitest';
import { formatForward, parseForward } from './forward.js';

describe('parseForward', () => {
  it('defaults to tcp on 127.0.0.1', () => {
    expect(parseForward('2222:22')).toEqual({ proto: 'tcp', bindAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 });
  });
  it('takes a bind address and protocol', () => {
    expect(parseForward('0.0.0.0:8080:80/udp')).toEqual({ proto: 'udp', bindAddress: '0.0.0.0', hostPort: 8080, guestPort: 80 });
    expect(parseForward('[::1]:5353:53/UDP')).toEqual({ proto: 'udp', bindAddress: '::1', hostPort: 5353, guestPort: 53 });
  });
  it.each(['', '22', 'a:b', '0:22', '70000:22', '22:0', '1.2.3:22:22', '22:22/sctp', 'x:22:22', '2222:22/', '[::1:22:22'])('rejects %j with a usage error', (s) => {
    expect(() => parseForward(s)).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
  });
  it('round-trips through formatForward', () => {
    for (const s of ['127.0.0.1:2222:22/tcp', '[::1]:8080:80/udp']) expect(formatForward(parseForward(s))).toBe(s);
  });
});
