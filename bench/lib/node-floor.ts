/**
 * Theory of operation: the floor under vmnet's latency and connection rate —
 * the least a Node program must do to carry a guest's TCP connection to a
 * host socket through the same relay. `node --import bench/lib/ts-loader.mjs
 * bench/lib/node-floor.ts SOCKET` serves QEMU's stream framing on a unix
 * socket, like the gateway, and answers only what the bench's guest sends:
 *
 *   ARP   who-has 10.0.2.2 → is-at a fixed MAC
 *   TCP   to 10.0.2.2:PORT, relayed to 127.0.0.1:PORT, one Node socket per
 *         connection (net.connect, TCP_NODELAY, as the gateway dials):
 *         SYN → dial; connected → SYN-ACK; data → socket.write; socket data →
 *         one segment carrying it (and the ACK); guest FIN → socket.end();
 *         socket end → FIN; the guest's last ACK → forget the connection.
 *
 * Nothing else: no retransmission, no window management beyond a fixed
 * 64 KiB window, no options but MSS, no checks beyond what routing the frame
 * needs, one `socket.write` per frame sent. It is not a network: the relay
 * path here loses nothing, and a frame this program does not expect is
 * dropped. Each round trip costs it what it costs the gateway in system
 * calls (a read from the stream socket, a write to the host socket, a read
 * from it, a write to the stream socket) and in Node's event loop and
 * net.Socket machinery, so `bench/floor.ts` measured side by side says how
 * much of vmnet's time is its own and how much is Node's and the relay's.
 * Prints "listening" once it serves the socket.
 */
import net from 'node:net';
import { unlinkSync } from 'node:fs';
import { fold, sum } from '../../src/wire/checksum.js';
import { StreamFramer } from '../../src/link/stream-framer.js';

const GW_IP = 0x0a000202; // 10.0.2.2
const MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;
const FIN = 0x01;

interface Conn {
  sock: net.Socket;
  guestIp: number;
  guestPort: number;
  hostPort: number;
  guestMac: Uint8Array;
  /** Our next sequence number, and the guest's. */
  snd: number;
  rcv: number;
  finSent: boolean;
}

/** One frame out, built in `out` (4-byte prefix, Ethernet, IPv4, TCP): one write per frame. */
function sendTcp(port: net.Socket, c: Conn, flags: number, payload: Uint8Array | null, mss: boolean): void {
  const plen = payload?.length ?? 0;
  const optLen = mss ? 4 : 0;
  const tcpLen = 20 + optLen + plen;
  const ipLen = 20 + tcpLen;
  const out = Buffer.allocUnsafe(4 + 14 + ipLen);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, 14 + ipLen);
  out.set(c.guestMac, 4);
  out.set(MAC, 10);
  v.setUint16(16, 0x0800);
  const ip = 18;
  v.setUint32(ip, 0x45000000 | ipLen);
  v.setUint32(ip + 4, 0x40000000); // DF
  v.setUint32(ip + 8, 0x40060000); // TTL 64, TCP, checksum 0
  v.setUint32(ip + 12, GW_IP);
  v.setUint32(ip + 16, c.guestIp);
  v.setUint16(ip + 10, ~fold(sum(v, ip, 20)) & 0xffff);
  const t = ip + 20;
  v.setUint16(t, c.hostPort);
  v.setUint16(t + 2, c.guestPort);
  v.setUint32(t + 4, c.snd);
  v.setUint32(t + 8, c.rcv);
  v.setUint16(t + 12, (((20 + optLen) >>> 2) << 12) | flags);
  v.setUint32(t + 14, 0xffff0000); // window 65535, checksum 0
  v.setUint16(t + 18, 0);
  if (mss) v.setUint32(t + 20, 0x020405b4); // MSS 1460
  if (payload !== null) out.set(payload, t + 20 + optLen);
  const pseudo = (GW_IP >>> 16) + (GW_IP & 0xffff) + (c.guestIp >>> 16) + (c.guestIp & 0xffff) + 6 + tcpLen;
  v.setUint16(t + 16, ~fold(sum(v, t, tcpLen, pseudo)) & 0xffff);
  port.write(out);
}

function serve(port: net.Socket): void {
  const conns = new Map<number, Conn>();
  const framer = new StreamFramer(65536 + 14, (buf, v, o, len) => {
    if (len < 14) return;
    const type = v.getUint16(o + 12);
    if (type === 0x0806 && len >= 42 && v.getUint16(o + 20) === 1 && v.getUint32(o + 38) === GW_IP) {
      const out = Buffer.allocUnsafe(4 + 42);
      out.writeUInt32BE(42, 0);
      out.set(buf.subarray(o + 6, o + 12), 4); // to the asker
      out.set(MAC, 10);
      out.writeUInt16BE(0x0806, 16);
      out.set(buf.subarray(o + 14, o + 20), 18); // htype, ptype, hlen, plen
      out.writeUInt16BE(2, 24); // reply
      out.set(MAC, 26);
      out.writeUInt32BE(GW_IP, 32);
      out.set(buf.subarray(o + 22, o + 32), 36); // the asker's MAC and IP
      port.write(out);
      return;
    }
    if (type !== 0x0800 || buf[o + 14 + 9] !== 6 || v.getUint32(o + 14 + 16) !== GW_IP) return;
    const ip = o + 14;
    const ihl = (buf[ip]! & 0x0f) * 4;
    const t = ip + ihl;
    const tcpEnd = ip + v.getUint16(ip + 2);
    const guestIp = v.getUint32(ip + 12);
    const guestPort = v.getUint16(t);
    const hostPort = v.getUint16(t + 2);
    const seq = v.getUint32(t + 4);
    const flags = buf[t + 13]!;
    const data = t + (buf[t + 12]! >>> 4) * 4;
    const c = conns.get(guestPort);
    if ((flags & RST) !== 0) {
      c?.sock.destroy();
      conns.delete(guestPort);
      return;
    }
    if ((flags & SYN) !== 0) {
      if (c !== undefined) return; // a retransmitted SYN while dialing
      const conn: Conn = {
        sock: net.connect({ host: '127.0.0.1', port: hostPort, noDelay: true, allowHalfOpen: true }),
        guestIp,
        guestPort,
        hostPort,
        guestMac: buf.slice(o + 6, o + 12),
        snd: (Math.random() * 0x100000000) >>> 0,
        rcv: (seq + 1) >>> 0,
        finSent: false,
      };
      conns.set(guestPort, conn);
      conn.sock.on('connect', () => {
        sendTcp(port, conn, SYN | ACK, null, true);
        conn.snd = (conn.snd + 1) >>> 0;
      });
      conn.sock.on('data', (b: Buffer) => {
        sendTcp(port, conn, ACK | PSH, b, false);
        conn.snd = (conn.snd + b.length) >>> 0;
      });
      conn.sock.on('end', () => {
        sendTcp(port, conn, FIN | ACK, null, false);
        conn.snd = (conn.snd + 1) >>> 0;
        conn.finSent = true;
      });
      conn.sock.on('error', () => conns.delete(guestPort));
      return;
    }
    if (c === undefined) return;
    if (tcpEnd > data) {
      c.rcv = (seq + tcpEnd - data) >>> 0;
      c.sock.write(buf.slice(data, tcpEnd)); // copied: the frame is lent
    }
    if ((flags & FIN) !== 0) {
      c.rcv = (c.rcv + 1) >>> 0;
      c.sock.end();
      if (c.finSent) sendTcp(port, c, ACK, null, false); // simultaneous close: nothing else will carry it
    } else if (c.finSent && (flags & ACK) !== 0 && v.getUint32(t + 8) === c.snd) {
      conns.delete(guestPort); // the guest acknowledged our FIN
      c.sock.destroy();
    }
  });
  port.on('data', (b: Buffer) => {
    if (framer.push(b) !== 'ok') port.destroy();
  });
  port.on('error', () => {});
  port.on('close', () => {
    for (const c of conns.values()) c.sock.destroy();
  });
}

const path = process.argv[2];
if (path === undefined) {
  process.stderr.write('usage: node-floor.ts SOCKET\n');
  process.exit(2);
}
try {
  unlinkSync(path);
} catch {}
const server = net.createServer(serve);
server.listen(path, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
