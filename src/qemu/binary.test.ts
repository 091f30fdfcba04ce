import { describe, expect, it } from 'vitest';
import { kvmStartFailure } from './binary.js';

describe('kvmStartFailure', () => {
  it("recognises QEMU's KVM start-up errors", () => {
    for (const s of [
      'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs\' failed.',
      'Could not access KVM kernel module: Permission denied\nqemu-system-x86_64: failed to initialize kvm: Permission denied',
      'kvm_init_vcpu: kvm_arch_init_vcpu failed (-22): Invalid argument',
      'KVM internal error. Suberror: 1',
    ]) expect(kvmStartFailure(s), s).toBe(true);
  });
  it('does not blame KVM for other failures, even with "kvm" in a path', () => {
    for (const s of [
      "qemu-system-x86_64: -drive file=/srv/kvm-images/a.img,format=raw,if=virtio: Could not open '/srv/kvm-images/a.img': No such file or directory",
      "qemu-system-x86_64: -device nonexistent: 'nonexistent' is not a valid device model name",
      '',
    ]) expect(kvmStartFailure(s), s).toBe(false);
  });
});
