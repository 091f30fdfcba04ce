import { describe, expect, it } from 'vitest';
import { bindError, unprivilegedPortStart } from './bind.js';

const spec = { proto: 'tcp' as const, bindAddress: '127.0.0.1', hostPort: 80, guestPort: 80 };
const err = (code: string) => Object.assign(new Error(code), { code });

describe('bindError', () => {
  it('names the port in use', () => {
    expect(bindError(err('EADDRINUSE'), spec)).toMatchObject({ code: 'E_PORT_IN_USE', usage: true, message: expect.stringContaining('127.0.0.1:80/tcp is already in use') });
  });
  it('names the sysctl for privileged ports', () => {
    const e = bindError(err('EACCES'), spec);
    expect(e).toMatchObject({ code: 'E_PORT_PRIVILEGED', usage: true });
    expect(e.message).toContain(`net.ipv4.ip_unprivileged_port_start = ${unprivilegedPortStart()}`);
  });
  it('says when the bind address is not local', () => {
    expect(bindError(err('EADDRNOTAVAIL'), { ...spec, bindAddress: '192.0.2.1' })).toMatchObject({ code: 'E_USAGE', message: expect.stringContaining('192.0.2.1 is not an address of this host') });
  });
});
