/** `vmnet demo` end to end, as the README's install command runs it. */
import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { runDemo } from '../../src/demo/demo.js';

it('vmnet demo shows lease, DNS, HTTP through NAT and a port forward on vmnet\'s own gateway', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const r = await runDemo({ out });
  expect(r.ok, text).toBe(true);
  expect(r.steps.lease).toMatch(/ip=10\.0\.2\.15 .*router=10\.0\.2\.2 dns=10\.0\.2\.3/);
  expect(r.steps.dns).toBe('host.vmnet.internal -> 10.0.2.2');
  expect(r.steps.http).toBe('hello from the vmnet demo host');
  expect(r.steps.forward).toBe('hello from inside the guest');
  expect(text).toContain("on vmnet's own gateway");
  expect(text).toContain('readiness probe');
});
