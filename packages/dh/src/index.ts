// @firn/dh — the firn-dh daemon. Only what is exported here may be used by others.
export { DhDaemon, CYCLES, checkDhConfig, type CycleEvent, type CycleName, type CycleResults, type DhDaemonOptions } from './dh-daemon';
export { createDhMetrics, type DhMetrics } from './dh-metrics';
export { DataMover, FileState, FileType, type DataCycleResult, type DataMoverOptions } from './data-mover';
export {
  Transfers, UnrecoverableTransferError, PART_SUFFIX, redactUrl,
  type ExpectedChecksums, type SftpOptions, type TransferOptions, type TransferResult,
} from './transfer';
export { applyRetryPolicy, unitHash, type RetryCycleResult } from './retries';
export { evictLostTasks } from './lost-tasks';
export { rollUp, runHook, type RollupOptions, type RollupResult } from './rollup';
export { rollUpTaskFlow, type TaskFlowOptions, type TaskFlowResult } from './task-flow';
export { collectGarbage, type GcResult } from './gc';
export { detectBlackholes, type BlackholeOptions, type Blackholed } from './blackholes';
export { main } from './cli';
