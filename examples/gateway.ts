/**
 * Example: run vmnet's gateway from TypeScript and print the QEMU arguments
 * that connect a guest to it. Any number of guests may connect; each gets
 * its own DHCP lease. Stop with Ctrl-C.
 *
 *   npx tsx examples/gateway.ts      (or compile with tsc and run with node)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../src/gateway/server.js';

const dir = mkdtempSync(join(tmpdir(), 'vmnet-example-'));
const gw = await startGateway({
  socket: join(dir, 'gateway.sock'),
  dnsRecords: [{ name: 'db.example', type: 'A', address: (10 << 24) | (2 << 8) | 100 }],
});
console.log(`qemu-system-x86_64 ... ${gw.qemuNetdevArgs().join(' ')}`);
process.once('SIGINT', () => {
  void gw.close().then(() => console.log(JSON.stringify(gw.snapshot(), null, 2)));
});
