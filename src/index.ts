/**
 * vmnet's public API. The CLI (src/cli) imports the library only through
 * modules re-exported here.
 */
export { VmnetError, isVmnetError, type VmnetErrorCode } from './errors.js';
export { parseForward, formatForward, type ForwardSpec } from './config/forward.js';
export { parseMemory } from './vm/run.js';
export { launch, Vm, type VmExit, type VmEvent, type VmForwards, type StopOptions, type WaitOptions, type LaunchHooks } from './vm/launch.js';
export { planLaunch, parseNet, type LaunchOptions, type LaunchPlan, type NetSpec } from './vm/plan.js';
export { listVms, stopVm, removeVm, addForward, removeForward, listForwards, waitForVmPort, waitForVmSsh, sshTargetOf, bootStatusOf, consoleSocket, type VmListing, type CleanedVm } from './vm/manage.js';
export type { VmStatus } from './vm/control.js';
export type { VmSsh } from './vm/vm.js';
export type { BootStatus, Stage } from './vm/boot-stage.js';
export type { ExecOptions, ExecResult, WaitForSshOptions } from './vm/guest-session.js';
export type { SshTarget } from './vm/ssh.js';
export { startDetached } from './vm/supervisor.js';
export { fetchImage, type FetchOptions, type FetchedImage, type DownloadEvent } from './images/download.js';
export { qemuArgs, macFromName, type QemuSpec, type NicSpec, type NicBackend } from './qemu/args.js';
export { runTestGuest, type TestGuestOptions, type TestGuestResult } from './guest/boot.js';
export { findBundledGuest, ensureBundledGuest, type BundledGuest, type EnsureGuestOptions } from './guest/bundled.js';
export { buildGuest, type BuildGuestOptions, type BuildGuestResult, type GuestManifest } from './guest/build.js';
export { runDoctor, type DoctorOptions } from './doctor/doctor.js';
export type { DoctorReport, Check, Verdict } from './doctor/report.js';
export { runDemo, type DemoResult } from './demo/demo.js';
export { pingStatus, type PingStatus } from './services/ping/status.js';
export { loadLab, parseLab, labUp, labDown, labStatus, labDot, LabInvalid, formatIssue, LAB_SCHEMA, type LabSpec, type LabIssue, type LabOptions, type LabStatus, type Action as LabAction } from './lab/index.js';
export { setLink, showLink, setSwitchLink, type VmLink, type LinkOptions } from './switch/vm-link.js';
export { parseLinkWords, type LinkPatch, type LinkDirection } from './config/link.js';
export type { ImpairSettings, ImpairCounters } from './switch/impair.js';
export type { LinkSnapshot, LinkDirectionSnapshot } from './switch/impair-port.js';
