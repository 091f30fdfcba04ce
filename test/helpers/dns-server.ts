/**
 * A tiny authoritative DNS server for tests, on a loopback address (UDP): answers A queries from a fixed table, NXDOMAIN otherwise, or
 * stays silent when told to (for every name, or for names a pattern matches: a dead zone). It records every query it saw, so tests can
 * prove what reached "the outside" and what did not.
 */
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface TestDnsServer {
  port: number;
  /** Names queried, in order. */
  queries: string[];
  /** When true, queries are recorded and never answered. */
  silent: boolean;
  close(): Promise<void>;
}

export async function startDnsServer(records: Record<string, string>, opts: { silent?: boolean; silentFor?: RegExp; port?: number; host?: string } = {}): Promise<TestDnsServer> {
  const sock: Socket = createSocket('udp4');
  const server: TestDnsServer = {
    port: 0,
    queries: [],
    silent: opts.silent ?? false,
    close: () => new Promise((r) => sock.close(() => r())),
  };
  sock.on('message', (msg, rinfo) => {
    let q;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    server.queries.push(question.name);
    if (server.silent || opts.silentFor?.test(question.name)) return;
    const ip = records[question.name.toLowerCase()];
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (ip ? 0 : 3),
      questions: [question],
      answers: ip && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, data: ip }] : [],
    });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(opts.port ?? 0, opts.host ?? '127.0.0.1', r));
  server.port = sock.address().port;
  return server;
}
