/**
 * The pilot ↔ firn-mon protocol (params and results by name). Every call also carries
 * `task_id` and `passkey`; the Reporter adds them, so nothing else in the pilot touches the
 * passkey.
 */
import type { DatasetConfig } from './core-pure';
import type { ExpectedChecksums } from './staging';

/** The dataset config as mon delivers it (validated at submission; the pilot reads these parts). */
export type { DatasetConfig, TaskConfig, TrayConfig, ModuleConfig, DataEntry, Metaproject, Checksum } from './core-pure';

/** A task's requirements as mon hands them out: numbers (already resolved, maybe bumped by a retry rule). */
export interface Requirements {
  cpu?: number | null;
  gpu?: number | null;
  /** MB */
  memory?: number | null;
  /** MB */
  disk?: number | null;
  /** minutes (wall) */
  time?: number | null;
  site?: string | null;
}

export interface InputFile extends ExpectedChecksums {
  url: string;
  local_name: string;
}

export interface ExternalModuleCopy {
  tray: string;
  module: string;
  src: string | null;
  md5?: string | null;
  sha256?: string | null;
  content_base64: string;
}

export interface StartTask {
  id: number;
  name: string;
  task_index: number;
  dataset_id: number;
  job_id: number;
  job_index: number;
  jobs_total: number;
  requirements: Requirements;
}

export interface StartResult {
  task: StartTask;
  config: DatasetConfig;
  args: Record<string, unknown>;
  inputs: InputFile[];
  external_modules: ExternalModuleCopy[];
  system: { site_temp?: string | null; heartbeat_seconds?: number; [k: string]: unknown };
}

export interface HostResources {
  cpus?: number;
  memory_mb?: number;
  gpus?: number;
}

export interface Heartbeat {
  cpu_seconds?: number;
  rss_mb?: number;
  disk_mb?: number;
  wall_seconds?: number;
  gpu_util?: number;
}

export interface OutputFile {
  local_name: string;
  url: string;
  temp_url: string;
  type: string;
  size: number;
  md5: string;
  sha256: string;
}

/** What the task used, sent with pilot.finish (peaks for rss, disk and GPU). */
export interface ResourceSummary {
  cpu_seconds: number;
  wall_seconds: number;
  /** peak RSS of a module's process tree, MB */
  rss_mb: number;
  /** peak disk use of the task's scratch area, MB */
  disk_mb: number;
  /** peak GPU utilisation, percent (nodes with nvidia-smi) */
  gpu_util?: number;
}

export type Stats = Record<string, number>;
