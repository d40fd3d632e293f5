// @firn/pilot — the job execution pilot. What tests and other tools may use.
export { main, USAGE, VERSION } from './cli';
export { runWorker, workerBaseArgs, type WorkerIo } from './worker';
export { runPilot, ExitCode, TaskFailedError, findTask, resolveRemote, resolveRequirements, type PilotOptions, type PilotOutcome } from './pilot';
export { RpcReporter, FileReporter, StalePasskeyError, MonUnreachableError, type Reporter, type RunReport, type RpcReporterOptions, type FileReporterOptions } from './reporter';
export { Stager, PermanentTransferError, joinUrl, urlScheme, localPathOf, type StagerOptions, type SftpAuth, type ExpectedChecksums } from './staging';
export { MetaprojectCache, parseChecksum, unpackArchive, type MetaprojectSpec, type CacheResult } from './cache';
export { runProcess, killTree, readTail, ResourceLimitError, type Limits, type RunResult } from './process-runner';
export { treeUsage, readAllProcesses, parseProcStat, diskUsage, gpuUtilization, parseGpuUtilization } from './resources';
export { PilotLogger } from './logger';
export * from './modules';
export type * from './protocol';
