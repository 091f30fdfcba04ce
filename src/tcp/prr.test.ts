import { describe, expect, it } from 'vitest';
import { Prr } from './prr.js';

const M = 1000;

describe('Proportional Rate Reduction (RFC 6937 §3)', () => {
  it('spreads the reduction: with pipe above ssthresh, sends ssthresh/RecoverFS of what was delivered, in whole segments', () => {
    const p = new Prr();
    p.start(20 * M); // RecoverFS 20 segments, ssthresh 10: one segment out per two delivered
    let sent = 0;
    let pipe = 19 * M; // the lost segment left the pipe
    for (let ack = 0; ack < 10; ack++) {
      const snd = p.onAck(M, pipe, 10 * M, M);
      expect(snd % M).toBe(0);
      p.onSend(snd);
      sent += snd;
      pipe += snd - M;
    }
    expect(sent).toBe(5 * M); // ten delivered, five sent: half the rate
  });

  it('sends the fast retransmission on the first ACK even when the proportional share is zero (RFC 6937bis)', () => {
    const p = new Prr();
    p.start(100 * M);
    expect(p.onAck(0, 99 * M, 50 * M, M)).toBe(M);
    p.onSend(M);
    expect(p.onAck(0, 99 * M, 50 * M, M)).toBe(0);
  });

  it('PRR-SSRB: at or below ssthresh, grows back at most one segment beyond what was delivered', () => {
    const p = new Prr();
    p.start(10 * M);
    p.onSend(M);
    // many losses: the pipe fell to 2 segments, ssthresh is 5
    expect(p.onAck(2 * M, 2 * M, 5 * M, M)).toBe(3 * M); // min(ssthresh - pipe = 3, max(2-1, 2) + 1 = 3)
    p.onSend(3 * M);
    expect(p.onAck(M, 4 * M, 5 * M, M)).toBe(M); // min(1, max(3-4, 1) + 1 = 2)
    expect(p.onAck(0, 5 * M, 5 * M, M)).toBe(0);
  });
});
