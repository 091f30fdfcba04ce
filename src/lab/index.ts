/**
 * Labs: topology files (validate.ts, schema.ts), what they mean (model.ts),
 * plans (plan.ts), doing them (apply.ts, state.ts) and drawing them (dot.ts).
 * The CLI and the public API import labs from here.
 */
export { LAB_SCHEMA } from './schema.js';
export { parseLab, labName, formatIssue, LabInvalid, type LabIssue } from './validate.js';
export type { LabSpec, LabSwitch, LabVm, LabNic, LabLink, LabBoot } from './model.js';
export { planUp, planDown, actionText, type Action, type Plan, type LabRecord, type Observed, type ImpairTarget } from './plan.js';
export { loadLab, labUp, labDown, labStatus, type LabOptions, type LabStatus, type LabSwitchStatus, type LabVmStatus } from './apply.js';
export { labDot } from './dot.js';
