/**
 * Theory of operation: one guest TCP connection's NAT record (nat.ts). A
 * Flow pairs the gateway's TCP endpoint toward the guest (`conn`) with the
 * host end (`host`: a socket, or a local service's stream) and holds what
 * the relay between them needs: host bytes the send buffer has not taken
 * (`pending`, bounded by nat.ts's PENDING_MAX), the FINs to pass on, the
 * dial's fair-share slot (../fair-slots.ts), the drain deadline and the
 * flow's timer-heap entry.
 *
 * Memory. Thousands of idle flows are the common case, so a flow is one
 * object with no closures of its own: it is its host stream's
 * HostStreamEvents and forwards each event to the handlers its TcpNat
 * made once, and its times are whole milliseconds (Smis, ../../tcp/deadline.ts),
 * never boxed numbers.
 */
import type { Ip4 } from '../../wire/addr.js';
import type { TcpConn } from '../../tcp/conn.js';
import { OFF } from '../../tcp/deadline.js';
import type { HostStream, HostStreamEvents } from './host-stream.js';
import type { Slot } from '../fair-slots.js';

export type ProbeResult = 'open' | 'closed' | 'timeout';

/**
 * The NAT's handlers of host stream events, made once per TcpNat: each flow
 * passes itself as the HostStreamEvents of its host stream and forwards to
 * these, so an idle flow holds no closures of its own.
 */
export interface HostHandlers {
  connected(f: Flow): void;
  refused(f: Flow): void;
  failed(f: Flow): void;
  readInto(f: Flow): Uint8Array | null;
  data(f: Flow, chunk: Uint8Array): void;
  end(f: Flow): void;
  reset(f: Flow): void;
  drain(f: Flow): void;
}

export class Flow implements HostStreamEvents {
  host: HostStream | null = null;
  /** Host bytes the connection's send buffer has not taken yet. */
  pending: Uint8Array[] = [];
  /** Bytes in `pending` (at most PENDING_MAX). */
  pendingBytes = 0;
  /** The host end asked us to stop writing (write() returned false). */
  hostBlocked = false;
  /** The guest's FIN is to be passed on once its data is written. */
  finToHost = false;
  /** The host's FIN is to be passed on once `pending` is taken. */
  finToGuest = false;
  /** Until the host (or local service) end connected or failed. */
  dialing = false;
  /** The slot of a host dial in flight. */
  dial: Slot<Flow> | null = null;
  /** Gone: out of every table, host released. */
  closed = false;
  /** The connection closed cleanly; the host half is still writing (see "Teardown"). */
  draining = false;
  /** When a draining flow without progress is reset (whole ms; set when it starts draining). */
  drainAt = 0;
  /** A guest → host pump is queued for this microtask checkpoint. */
  pumpQueued = false;
  /** The host socket is paused for lack of room in the send buffer. */
  hostPaused = false;
  /** Waiting in TcpNat.congested for the guest's link to drain. */
  linkWait = false;
  /** Bytes lent to the host socket and not yet written (consumed when they are). */
  toHost = 0;
  /** The host's end() completed: every byte and the FIN were handed over. */
  hostEnded = false;
  /** The deadline of the flow's current timer-heap entry (whole ms), or OFF: none. Smis, see tcp/deadline.ts. */
  scheduledAt = OFF;
  probe: ((r: ProbeResult) => void) | null = null;
  constructor(
    readonly conn: TcpConn,
    readonly guestIp: Ip4,
    readonly guestPort: number,
    readonly remoteIp: Ip4,
    readonly remotePort: number,
    /** The guest's key in perGuest (see guestOf). */
    readonly guest: number,
    readonly handlers: HostHandlers,
  ) {}

  connected(): void {
    this.handlers.connected(this);
  }
  refused(): void {
    this.handlers.refused(this);
  }
  failed(): void {
    this.handlers.failed(this);
  }
  readInto(): Uint8Array | null {
    return this.handlers.readInto(this);
  }
  data(chunk: Uint8Array): void {
    this.handlers.data(this, chunk);
  }
  end(): void {
    this.handlers.end(this);
  }
  reset(): void {
    this.handlers.reset(this);
  }
  drain(): void {
    this.handlers.drain(this);
  }
}
