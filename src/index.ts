/**
 * vmnet's public API. The CLI (src/cli) imports the library only through
 * modules re-exported here.
 */
export { VmnetError, isVmnetError, type VmnetErrorCode } from './errors.js';
export { parseForward, formatForward, type ForwardSpec } from './config/forward.js';
export { planRun, runVm, parseMemory, type RunOptions, type RunPlan } from './vm/run.js';
export { qemuArgs, macFromName, type QemuSpec, type NicSpec, type NicBackend } from './qemu/args.js';
export { runTestGuest, type TestGuestOptions, type TestGuestResult } from './guest/boot.js';
export { findBundledGuest, type BundledGuest } from './guest/bundled.js';
export { runDemo, type DemoResult } from './demo/demo.js';
