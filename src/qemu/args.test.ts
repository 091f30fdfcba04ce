import { describe, expect, it } from 'vitest';
import { macFromName, qemuArgs, shellQuote, type QemuSpec } from './args.js';

const base: QemuSpec = { accel: 'tcg', memoryMiB: 512, cpus: 2, name: 'vm1', serial: { kind: 'stdio' }, nics: [], extra: [] };

describe('qemuArgs', () => {
  it('builds a headless TCG command line with a stream NIC', () => {
    const a = qemuArgs({ ...base, nics: [{ mac: '52:54:00:00:00:01', backend: { kind: 'stream', path: '/run/x,y.sock' } }] });
    expect(a).toEqual([
      '-name', 'vm1', '-nodefaults', '-display', 'none', '-no-user-config', '-accel', 'tcg', '-m', '512M', '-smp', '2',
      '-chardev', 'stdio,id=serial0,signal=off', '-serial', 'chardev:serial0',
      '-netdev', 'stream,id=net0,server=off,addr.type=unix,addr.path=/run/x,,y.sock',
      '-device', 'virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01',
    ]);
  });
  it('adds drives, kernels, QMP, user-net forwards and extra args in order', () => {
    const a = qemuArgs({
      ...base,
      accel: 'kvm',
      drive: { path: 'disk.qcow2', format: 'qcow2', snapshot: true },
      kernel: 'vmlinuz',
      initrd: 'initrd',
      append: 'console=ttyS0',
      serial: { kind: 'file', path: 'serial.log' },
      qmpSocket: 'qmp.sock',
      nics: [{ mac: '52:54:00:00:00:02', backend: { kind: 'qemu-user', forwards: [{ proto: 'tcp', bindAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 }] } }],
      extra: ['-no-reboot'],
    });
    const s = a.join(' ');
    expect(s).toContain('-cpu host');
    expect(s).toContain('-drive file=disk.qcow2,format=qcow2,if=virtio,snapshot=on');
    expect(s).toContain('-kernel vmlinuz -initrd initrd -append console=ttyS0');
    expect(s).toContain('-chardev file,id=serial0,path=serial.log');
    expect(s).toContain('-mon chardev=qmp0,mode=control');
    expect(s).toContain('-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22');
    expect(a.at(-1)).toBe('-no-reboot');
  });
  it("gives a cloud-init seed: the SMBIOS serial (commas doubled) and a read-only raw seed disk after the boot disk", () => {
    const a = qemuArgs({ ...base, drive: { path: 'disk.qcow2', format: 'qcow2', snapshot: false }, seedDisk: '/run/vm,1/seed.img', smbiosSerial: 'ds=nocloud-net;s=http://10.0.2.3/a,b/' });
    const s = a.join(' ');
    expect(s).toContain('-drive file=disk.qcow2,format=qcow2,if=virtio -drive file=/run/vm,,1/seed.img,format=raw,if=virtio,readonly=on');
    expect(a[a.indexOf('-smbios') + 1]).toBe('type=1,serial=ds=nocloud-net;s=http://10.0.2.3/a,,b/');
  });
});

describe('macFromName', () => {
  it('is stable, locally administered under QEMU prefix, and differs per name and index', () => {
    expect(macFromName('web')).toBe(macFromName('web'));
    expect(macFromName('web')).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(new Set([macFromName('web'), macFromName('db'), macFromName('web', 1)]).size).toBe(3);
  });
});

describe('shellQuote', () => {
  it('quotes only what needs it', () => {
    expect(shellQuote(['qemu', '-append', "console=ttyS0 quiet", "it's"])).toBe(`qemu -append 'console=ttyS0 quiet' 'it'\\''s'`);
  });
});
