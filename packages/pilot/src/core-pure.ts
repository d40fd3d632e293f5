/**
 * The pure pieces of @firn/core the pilot uses, imported by relative path ON PURPOSE.
 *
 * The pilot is bundled into one file that must run with plain `node` on a worker node with
 * nothing installed. `@firn/core`'s barrel also exports the database (knex, mysql2,
 * better-sqlite3), the RPC server (fastify) and the winston logger; importing it would drag
 * all of those into the bundle. These files import nothing but node built-ins and each
 * other. Deep relative imports into another package are forbidden everywhere else (STYLE.md
 * "Layout and boundaries"); this file is the pilot's single, documented exception, and the
 * only place in the pilot that reaches into core.
 */
export { evaluate, expandConfig, type ExpressionContext } from '../../core/src/expression-parser';
export { joinUrl, outputLocation, resolveRemote as resolveRemoteUrl, OutputLocationError } from '../../core/src/output-locations';
export { checksumFile, checksumStream, checksumBuffer, checksumMismatches, type Checksums } from '../../core/src/checksums';
export { RpcClient, RpcError, RpcTransportError, isRetryableRpcFailure, type RpcClientOptions } from '../../core/src/rpc-client';
export { FirnError, TransferError, PermanentTransferError, MissingFileError, ConfigError, RpcErrorCode, coerceError } from '../../core/src/errors';
export { backoffDelay, type BackoffOptions } from '../../core/src/backoff';
// The storage layer (file, sftp, http stores): node built-ins and ssh2, required only when an sftp:// location is used.
export {
  Storage, parseLocation, locationScheme, redactUrl, retryTransfer, writeChecked,
  type Location, type LocationScheme, type StorageOptions, type SftpStoreOptions, type HttpStoreOptions, type ExpectedChecksums,
} from '../../core/src/storage';
// Type-only: erased at build time, so winston (logger) and ajv (dataset-config) never reach the bundle.
export type { Logger, LogMeta } from '../../core/src/logger';
export type {
  DatasetConfig,
  TaskConfig,
  TrayConfig,
  ModuleConfig,
  DataEntry,
  Metaproject,
  Requirements,
  Checksum,
} from '../../core/src/dataset-config';
