// @firn/mon — firn-mon, the monitoring daemon (JSON-RPC API for pilots). Only what is exported here may be used by others.
export { createMonServer, startMon, defaultHeartbeatSeconds } from './mon-server';
export type { MonServer, MonServerOptions, RunningMon, StartMonOptions } from './mon-server';
export { WriteBatcher, StorageUnavailableError, tailBytes, HEARTBEAT_COLUMNS } from './write-batcher';
export type { WriteBatcherOptions, PendingUpdate, FlushInfo, HeartbeatColumn } from './write-batcher';
export { STALE_PASSKEY_MESSAGE } from './passkey';
export type {
  StartParams, StartResult, HeartbeatParams, StatsParams, LogParams, FilesParams, FinishParams, OutputFile,
} from './pilot-methods';
