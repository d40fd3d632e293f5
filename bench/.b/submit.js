var __create = Object.create;
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getProtoOf = Object.getPrototypeOf;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
  // If the importer is in node compatibility mode or this is not an ESM
  // file that has been converted to a CommonJS file using a Babel-
  // compatible transform (i.e. "__esModule" has not been set), then set
  // "default" to the CommonJS "module.exports" for node compatibility.
  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target,
  mod
));
var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);

// bench/submit.ts
var submit_exports = {};
__export(submit_exports, {
  run: () => run2
});
module.exports = __toCommonJS(submit_exports);
var import_node_fs11 = __toESM(require("node:fs"));
var import_node_path7 = __toESM(require("node:path"));
var import_promise = __toESM(require("/work/main/node_modules/mysql2/promise.js"));

// packages/core/src/errors.ts
var RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  UNAUTHENTICATED: -32001,
  FORBIDDEN: -32003,
  NOT_FOUND: -32004,
  CONFLICT: -32009,
  RATE_LIMITED: -32029
};
var FirnError = class extends Error {
  /** JSON-RPC code this error maps to when it crosses the wire. */
  code = RpcErrorCode.INTERNAL_ERROR;
  /** Extra machine-readable detail (e.g. a list of failing JSON paths). */
  data;
  constructor(message, data) {
    super(message);
    this.name = new.target.name;
    if (data !== void 0) this.data = data;
  }
};
var ValidationError = class extends FirnError {
  code = RpcErrorCode.INVALID_PARAMS;
  issues;
  constructor(message, issues = []) {
    super(
      issues.length ? `${message}: ${issues.map((i) => `${i.path || "/"} ${i.message}`).join("; ")}` : message,
      { issues }
    );
    this.issues = issues;
  }
};
var ConfigError = class extends FirnError {
  code = RpcErrorCode.INVALID_PARAMS;
};
var ExpressionError = class extends FirnError {
  constructor(message, expression, position) {
    super(`${message} at position ${position} in ${JSON.stringify(expression.length > 200 ? expression.slice(0, 200) + "\u2026" : expression)}`, {
      position
    });
    this.expression = expression;
    this.position = position;
  }
  code = RpcErrorCode.INVALID_PARAMS;
};
var UnauthenticatedError = class extends FirnError {
  code = RpcErrorCode.UNAUTHENTICATED;
};
var ForbiddenError = class extends FirnError {
  code = RpcErrorCode.FORBIDDEN;
};
var NotFoundError = class extends FirnError {
  code = RpcErrorCode.NOT_FOUND;
};
var ConflictError = class extends FirnError {
  code = RpcErrorCode.CONFLICT;
};
var IllegalTransitionError = class extends ConflictError {
};
var LostRaceError = class extends ConflictError {
};
var RateLimitedError = class extends FirnError {
  code = RpcErrorCode.RATE_LIMITED;
};
function coerceError(e) {
  if (e instanceof Error) return e;
  if (typeof e === "string") return new Error(e);
  try {
    return new Error(JSON.stringify(e));
  } catch {
    return new Error(String(e));
  }
}

// packages/core/src/states.ts
var TaskStatus = {
  IDLE: "IDLE",
  WAITING: "WAITING",
  QUEUEING: "QUEUEING",
  QUEUED: "QUEUED",
  PROCESSING: "PROCESSING",
  READYTOCOPY: "READYTOCOPY",
  COPYING: "COPYING",
  COPIED: "COPIED",
  OK: "OK",
  ERROR: "ERROR",
  EVICTED: "EVICTED",
  RESET: "RESET",
  FAILED: "FAILED",
  SUSPENDED: "SUSPENDED"
};
var TASK_STATUSES = Object.values(TaskStatus);
var JobStatus = {
  PROCESSING: "PROCESSING",
  OK: "OK",
  FAILED: "FAILED",
  SUSPENDED: "SUSPENDED"
};
var DatasetStatus = {
  PROCESSING: "PROCESSING",
  SUSPENDED: "SUSPENDED",
  COMPLETE: "COMPLETE",
  ERRORS: "ERRORS",
  OBSOLETE: "OBSOLETE",
  DELETED: "DELETED"
};
var S = TaskStatus;
var SUSPENDABLE = TASK_STATUSES.filter(
  (s) => s !== S.OK && s !== S.FAILED && s !== S.SUSPENDED
);
var TRANSITIONS = [
  { from: [S.IDLE], to: S.WAITING, by: ["core"] },
  { from: [S.WAITING], to: S.QUEUEING, by: ["queue"] },
  { from: [S.QUEUEING], to: S.QUEUED, by: ["queue"] },
  { from: [S.QUEUEING], to: S.WAITING, by: ["queue"] },
  { from: [S.QUEUED], to: S.PROCESSING, by: ["mon"] },
  { from: [S.QUEUED, S.PROCESSING], to: S.EVICTED, by: ["queue", "dh"] },
  { from: [S.PROCESSING], to: S.READYTOCOPY, by: ["mon"] },
  { from: [S.PROCESSING], to: S.ERROR, by: ["mon", "queue"] },
  { from: [S.READYTOCOPY], to: S.COPYING, by: ["dh"] },
  { from: [S.COPYING], to: S.COPIED, by: ["dh"] },
  { from: [S.COPYING], to: S.ERROR, by: ["dh"] },
  { from: [S.COPIED], to: S.OK, by: ["dh"] },
  { from: [S.ERROR, S.EVICTED], to: S.RESET, by: ["core"] },
  // EVICTED → FAILED is not in the paper's table: a task evicted max_evictions times fails
  // (without it EVICTED could only ever be reset). Documented in docs/architecture.md.
  { from: [S.ERROR, S.EVICTED], to: S.FAILED, by: ["core"] },
  { from: [S.RESET], to: S.WAITING, by: ["core"] },
  // Not in the paper's table: a reset task whose dependencies are not all OK waits in IDLE
  // (e.g. a whole job reset). Documented in docs/architecture.md.
  { from: [S.RESET], to: S.IDLE, by: ["core"] },
  { from: SUSPENDABLE, to: S.SUSPENDED, by: ["tray"] },
  { from: [S.SUSPENDED, S.FAILED], to: S.RESET, by: ["tray"] },
  { from: [S.OK], to: S.RESET, by: ["tray"], adminOnly: true }
];
function isLegal(from, to, by, isAdmin = false) {
  return TRANSITIONS.some(
    (r) => r.to === to && r.from.includes(from) && (by === void 0 || r.by.includes(by)) && (!r.adminOnly || isAdmin)
  );
}
var ACTIVE_STATUSES = [S.QUEUEING, S.QUEUED, S.PROCESSING];
var IN_PROGRESS_STATUSES = [
  S.IDLE,
  S.WAITING,
  S.QUEUEING,
  S.QUEUED,
  S.PROCESSING,
  S.READYTOCOPY,
  S.COPYING,
  S.COPIED,
  S.ERROR,
  S.EVICTED,
  S.RESET
];
function deriveJobStatus(taskStatuses) {
  if (taskStatuses.length > 0 && taskStatuses.every((s) => s === S.OK)) return JobStatus.OK;
  const active = taskStatuses.some((s) => IN_PROGRESS_STATUSES.includes(s));
  if (!active && taskStatuses.some((s) => s === S.FAILED)) return JobStatus.FAILED;
  if (!active && taskStatuses.some((s) => s === S.SUSPENDED)) return JobStatus.SUSPENDED;
  return JobStatus.PROCESSING;
}
function deriveDatasetStatus(jobStatuses, current) {
  if (current === DatasetStatus.OBSOLETE || current === DatasetStatus.DELETED) return current;
  const n = (k) => jobStatuses[k] ?? 0;
  const total = n("OK") + n("FAILED") + n("SUSPENDED") + n("PROCESSING");
  if (n("PROCESSING") > 0) return DatasetStatus.PROCESSING;
  if (total === 0) return current ?? DatasetStatus.PROCESSING;
  if (n("OK") === total) return DatasetStatus.COMPLETE;
  if (n("SUSPENDED") > 0) return DatasetStatus.SUSPENDED;
  return DatasetStatus.ERRORS;
}

// packages/core/src/db.ts
var import_node_fs = __toESM(require("node:fs"));
var import_node_path = __toESM(require("node:path"));
var import_knex = __toESM(require("/work/main/node_modules/knex/knex.js"));

// packages/core/src/migrations/0001_initial.ts
var initial_exports = {};
__export(initial_exports, {
  down: () => down,
  up: () => up
});
async function up(knex) {
  const mysql2 = knex.client.config.client === "mysql2";
  const long = (t, name) => mysql2 ? t.text(name, "longtext") : t.text(name);
  const engine = (t) => {
    if (mysql2) {
      t.engine("InnoDB");
      t.charset("utf8mb4");
      t.collate("utf8mb4_bin");
    }
  };
  await knex.schema.createTable("user", (t) => {
    engine(t);
    t.increments("id").primary();
    t.string("username", 190).notNullable().unique();
    t.string("password_hash", 255).nullable();
    t.string("role", 16).notNullable();
    t.string("source", 16).notNullable().defaultTo("local");
    t.boolean("disabled").notNullable().defaultTo(false);
    t.bigInteger("created_at").notNullable();
  });
  await knex.schema.createTable("token", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("user_id").unsigned().notNullable().references("id").inTable("user").onDelete("CASCADE");
    t.string("token_hash", 64).notNullable().unique();
    t.bigInteger("expires_at").notNullable();
    t.bigInteger("created_at").notNullable();
    t.bigInteger("last_used_at").nullable();
    t.index(["expires_at"], "token_expires_idx");
  });
  await knex.schema.createTable("grid", (t) => {
    engine(t);
    t.increments("id").primary();
    t.string("name", 190).notNullable().unique();
    t.string("plugin", 32).notNullable();
    t.text("capabilities").notNullable();
    t.string("status", 16).notNullable().defaultTo("enabled");
    t.text("connection").nullable();
    t.bigInteger("last_seen_at").nullable();
    t.text("last_cycle").nullable();
    t.bigInteger("created_at").notNullable();
  });
  await knex.schema.createTable("dataset", (t) => {
    engine(t);
    t.increments("id").primary();
    t.string("description", 1024).notNullable().defaultTo("");
    t.string("type", 16).notNullable().defaultTo("simulation");
    t.string("status", 16).notNullable();
    t.integer("priority").notNullable().defaultTo(0);
    t.integer("owner_id").unsigned().nullable().references("id").inTable("user");
    t.integer("jobs_submitted").notNullable().defaultTo(0);
    t.integer("tasks_per_job").notNullable();
    long(t, "config");
    t.string("config_hash", 64).notNullable();
    t.text("retry").nullable();
    t.bigInteger("created_at").notNullable();
    t.bigInteger("updated_at").notNullable();
    t.index(["status", "priority"], "dataset_status_priority_idx");
    t.index(["owner_id"], "dataset_owner_idx");
  });
  await knex.schema.createTable("steering_parameter", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.string("name", 190).notNullable();
    t.string("type", 16).notNullable();
    t.text("value").notNullable();
    t.unique(["dataset_id", "name"], { indexName: "steering_parameter_dataset_name_uq" });
  });
  await knex.schema.createTable("metaproject", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.string("name", 190).notNullable();
    t.string("url", 2048).notNullable();
    t.string("md5", 32).nullable();
    t.string("sha256", 64).nullable();
    t.unique(["dataset_id", "name"], { indexName: "metaproject_dataset_name_uq" });
  });
  await knex.schema.createTable("task_rel", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("task_index").notNullable();
    t.string("name", 190).notNullable();
    t.text("requirements").notNullable();
    t.unique(["dataset_id", "task_index"], { indexName: "task_rel_dataset_index_uq" });
    t.unique(["dataset_id", "name"], { indexName: "task_rel_dataset_name_uq" });
  });
  await knex.schema.createTable("task_rel_dep", (t) => {
    engine(t);
    t.integer("task_rel_id").unsigned().notNullable().references("id").inTable("task_rel").onDelete("CASCADE");
    t.integer("depends_on_id").unsigned().notNullable().references("id").inTable("task_rel").onDelete("CASCADE");
    t.primary(["task_rel_id", "depends_on_id"]);
  });
  await knex.schema.createTable("tray", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("task_rel_id").unsigned().notNullable().references("id").inTable("task_rel").onDelete("CASCADE");
    t.integer("tray_index").notNullable();
    t.string("name", 190).notNullable();
    t.integer("iterations").notNullable().defaultTo(1);
    t.string("metaproject", 190).nullable();
    t.unique(["task_rel_id", "tray_index"], { indexName: "tray_task_rel_index_uq" });
  });
  await knex.schema.createTable("module", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("tray_id").unsigned().notNullable().references("id").inTable("tray").onDelete("CASCADE");
    t.integer("module_index").notNullable();
    t.string("name", 190).notNullable();
    t.string("class", 190).notNullable();
    t.string("src", 2048).nullable();
    t.string("src_sha256", 64).nullable();
    t.string("src_md5", 32).nullable();
    long(t, "src_content");
    t.unique(["tray_id", "module_index"], { indexName: "module_tray_index_uq" });
  });
  await knex.schema.createTable("cparameter", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("module_id").unsigned().notNullable().references("id").inTable("module").onDelete("CASCADE");
    t.string("name", 190).notNullable();
    t.text("value").notNullable();
    t.unique(["module_id", "name"], { indexName: "cparameter_module_name_uq" });
  });
  await knex.schema.createTable("dataset_grid", (t) => {
    engine(t);
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("grid_id").unsigned().notNullable().references("id").inTable("grid").onDelete("CASCADE");
    t.primary(["dataset_id", "grid_id"]);
    t.index(["grid_id"], "dataset_grid_grid_idx");
  });
  await knex.schema.createTable("run", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("run_number").notNullable();
    t.string("date", 10).notNullable();
    t.bigInteger("created_at").notNullable();
    t.unique(["dataset_id", "run_number"], { indexName: "run_dataset_number_uq" });
    t.index(["date"], "run_date_idx");
  });
  await knex.schema.createTable("job", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("job_index").notNullable();
    t.string("status", 16).notNullable();
    t.integer("run_id").unsigned().nullable().references("id").inTable("run");
    t.text("args").nullable();
    t.bigInteger("status_changed_at").notNullable();
    t.unique(["dataset_id", "job_index"], { indexName: "job_dataset_index_uq" });
    t.index(["dataset_id", "status"], "job_dataset_status_idx");
    t.index(["run_id"], "job_run_idx");
  });
  await knex.schema.createTable("task", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("job_id").unsigned().notNullable().references("id").inTable("job").onDelete("CASCADE");
    t.integer("task_rel_id").unsigned().notNullable().references("id").inTable("task_rel").onDelete("CASCADE");
    t.integer("task_index").notNullable();
    t.string("name", 190).notNullable();
    t.string("status", 16).notNullable();
    t.bigInteger("status_changed_at").notNullable();
    t.string("transition_token", 32).nullable();
    t.integer("req_cpu").notNullable().defaultTo(1);
    t.integer("req_gpu").notNullable().defaultTo(0);
    t.integer("req_memory").notNullable().defaultTo(2e3);
    t.integer("req_disk").notNullable().defaultTo(1e4);
    t.integer("req_time").notNullable().defaultTo(60);
    t.string("req_site", 190).nullable();
    t.integer("grid_id").unsigned().nullable().references("id").inTable("grid");
    t.string("batch_id", 190).nullable();
    t.string("passkey_hash", 64).nullable();
    t.bigInteger("lease_until").nullable();
    t.bigInteger("next_retry_at").nullable();
    t.integer("failures").notNullable().defaultTo(0);
    t.integer("evictions").notNullable().defaultTo(0);
    t.integer("submit_errors").notNullable().defaultTo(0);
    t.text("error_summary").nullable();
    t.string("host", 255).nullable();
    t.bigInteger("started_at").nullable();
    t.bigInteger("finished_at").nullable();
    t.bigInteger("last_heartbeat_at").nullable();
    t.double("cpu_seconds").nullable();
    t.double("rss_mb").nullable();
    t.double("disk_mb").nullable();
    t.double("wall_seconds").nullable();
    t.double("gpu_util").nullable();
    t.unique(["job_id", "task_index"], { indexName: "task_job_index_uq" });
    t.index(["status", "dataset_id"], "task_status_dataset_idx");
    t.index(["dataset_id", "status"], "task_dataset_status_idx");
    t.index(["grid_id", "status"], "task_grid_status_idx");
    t.index(["transition_token"], "task_transition_token_idx");
  });
  await knex.schema.createTable("file", (t) => {
    engine(t);
    t.increments("id").primary();
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.integer("job_id").unsigned().nullable().references("id").inTable("job").onDelete("CASCADE");
    t.integer("task_id").unsigned().nullable().references("id").inTable("task").onDelete("CASCADE");
    t.string("kind", 16).notNullable();
    t.string("local_name", 1024).notNullable();
    t.string("url", 2048).notNullable();
    t.string("temp_url", 2048).nullable();
    t.string("type", 16).notNullable().defaultTo("permanent");
    t.bigInteger("size").nullable();
    t.string("md5", 32).nullable();
    t.string("sha256", 64).nullable();
    t.string("state", 16).notNullable();
    t.text("error").nullable();
    t.bigInteger("created_at").notNullable();
    t.bigInteger("updated_at").notNullable();
    t.index(["task_id"], "file_task_idx");
    t.index(["job_id"], "file_job_idx");
    t.index(["dataset_id", "kind"], "file_dataset_kind_idx");
  });
  await knex.schema.createTable("task_stat", (t) => {
    engine(t);
    t.integer("task_id").unsigned().notNullable().references("id").inTable("task").onDelete("CASCADE");
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.string("name", 190).notNullable();
    t.double("value").notNullable();
    t.primary(["task_id", "name"]);
    t.index(["dataset_id", "name"], "task_stat_dataset_name_idx");
  });
  await knex.schema.createTable("dataset_stat", (t) => {
    engine(t);
    t.integer("dataset_id").unsigned().notNullable().references("id").inTable("dataset").onDelete("CASCADE");
    t.string("name", 190).notNullable();
    t.bigInteger("n").notNullable();
    t.double("sum").notNullable();
    t.double("sum_sq").notNullable();
    t.double("min").notNullable();
    t.double("max").notNullable();
    t.primary(["dataset_id", "name"]);
  });
  await knex.schema.createTable("task_log", (t) => {
    engine(t);
    t.integer("task_id").unsigned().notNullable().references("id").inTable("task").onDelete("CASCADE");
    t.string("name", 64).notNullable();
    long(t, "data");
    t.bigInteger("updated_at").notNullable();
    t.primary(["task_id", "name"]);
  });
  await knex.schema.createTable("node", (t) => {
    engine(t);
    t.increments("id").primary();
    t.string("hostname", 255).notNullable();
    t.integer("grid_id").unsigned().nullable().references("id").inTable("grid").onDelete("SET NULL");
    t.integer("ok_count").notNullable().defaultTo(0);
    t.integer("fail_count").notNullable().defaultTo(0);
    t.string("recent", 64).notNullable().defaultTo("");
    t.bigInteger("blackholed_until").nullable();
    t.bigInteger("updated_at").notNullable();
    t.unique(["hostname"], { indexName: "node_hostname_uq" });
  });
  await knex.schema.createTable("history", (t) => {
    engine(t);
    t.bigIncrements("id").primary();
    t.string("entity", 16).notNullable();
    t.integer("entity_id").notNullable();
    t.integer("dataset_id").nullable();
    t.string("action", 32).notNullable();
    t.string("from_status", 16).nullable();
    t.string("to_status", 16).nullable();
    t.string("actor", 255).notNullable();
    t.text("reason").nullable();
    t.bigInteger("created_at").notNullable();
    t.index(["entity", "entity_id"], "history_entity_idx");
    t.index(["dataset_id", "created_at"], "history_dataset_idx");
  });
}
async function down() {
  throw new Error("migrations are forward-only");
}

// packages/core/src/db.ts
var MIGRATIONS = [["0001_initial", initial_exports]];
var migrationSource = {
  getMigrations: async () => MIGRATIONS.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = MIGRATIONS.find(([n]) => n === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return { up: found[1].up, down: async () => {
      throw new Error("migrations are forward-only");
    } };
  }
};
function parseDbUrl(url) {
  if (url === "sqlite::memory:" || url === "sqlite://:memory:") return { kind: "sqlite", filename: ":memory:" };
  if (url.startsWith("sqlite://")) {
    const rest = url.slice("sqlite://".length);
    if (!rest) throw new ConfigError("[db] url: sqlite URL has no path (use sqlite:///abs/path/firn.sqlite)");
    return { kind: "sqlite", filename: decodeURIComponent(rest) };
  }
  if (url.startsWith("mysql://") || url.startsWith("mariadb://")) {
    let u;
    try {
      u = new URL(url.replace(/^mariadb:/, "mysql:"));
    } catch {
      throw new ConfigError(`[db] url: not a valid URL`);
    }
    const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
    const params = {};
    u.searchParams.forEach((v, k) => params[k] = v);
    return {
      kind: "mysql",
      host: u.hostname || "127.0.0.1",
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username || "root"),
      password: decodeURIComponent(u.password || ""),
      database: database || void 0,
      params
    };
  }
  throw new ConfigError(`[db] url must start with sqlite:// or mysql://, got ${JSON.stringify(url.split(":")[0] + ":\u2026")}`);
}
function redactDbUrl(url) {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, "$1***@");
}
function openDb(url, options = {}) {
  const p = parseDbUrl(url);
  if (p.kind === "sqlite") {
    const filename = p.filename;
    if (filename !== ":memory:") import_node_fs.default.mkdirSync(import_node_path.default.dirname(import_node_path.default.resolve(filename)), { recursive: true });
    return (0, import_knex.default)({
      client: "better-sqlite3",
      connection: { filename },
      useNullAsDefault: true,
      // One connection: better-sqlite3 is synchronous, and a single writer avoids SQLITE_BUSY
      // between transactions of the same process. Other processes wait on busy_timeout.
      pool: {
        min: 1,
        max: 1,
        afterCreate: (conn, done) => {
          try {
            conn.pragma("journal_mode = WAL");
            conn.pragma("busy_timeout = 15000");
            conn.pragma("synchronous = NORMAL");
            conn.pragma("foreign_keys = ON");
            done(null, conn);
          } catch (e) {
            done(e, conn);
          }
        }
      }
    });
  }
  if (!p.database) throw new ConfigError("[db] url: a mysql URL must name the database (mysql://user:pw@host:port/DB)");
  return (0, import_knex.default)({
    client: "mysql2",
    connection: {
      host: p.host,
      port: p.port,
      user: p.user,
      password: p.password,
      database: p.database,
      charset: "utf8mb4",
      supportBigNumbers: true,
      bigNumberStrings: false,
      timezone: "Z",
      ...p.params?.ssl === "true" ? { ssl: {} } : {}
    },
    pool: { min: 0, max: options.poolMax ?? 10 }
  });
}
function isMysql(db) {
  return db.client.config.client === "mysql2";
}
async function ensureDatabase(url) {
  const p = parseDbUrl(url);
  if (p.kind !== "mysql") return;
  const admin = (0, import_knex.default)({
    client: "mysql2",
    connection: { host: p.host, port: p.port, user: p.user, password: p.password },
    pool: { min: 0, max: 1 }
  });
  try {
    await admin.raw("CREATE DATABASE IF NOT EXISTS ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", [p.database]);
  } finally {
    await admin.destroy();
  }
}
async function migrate(db, timeoutMs = 6e4) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const [, applied] = await db.migrate.latest({ migrationSource, tableName: "knex_migrations" });
      return applied;
    } catch (e) {
      const err = e;
      const locked = err.name === "MigrationLocked" || err.code === "SQLITE_BUSY" || /database is locked|ER_LOCK_DEADLOCK|ER_TABLE_EXISTS|already exists/.test(err.message ?? "");
      if (!locked || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, Math.min(1e3, 25 * attempt) + Math.random() * 50));
    }
  }
}
async function migrationStatus(db) {
  const [completed, pending] = await db.migrate.list({ migrationSource, tableName: "knex_migrations" });
  const name = (x) => typeof x === "string" ? x : x.name ?? x.file;
  return { applied: completed.map(name), pending: pending.map(name) };
}
async function connect(url, options = {}) {
  await ensureDatabase(url);
  const db = openDb(url, options);
  try {
    await migrate(db);
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return db;
}
var now = () => Date.now();
function chunk(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
async function withTransaction(db, fn, attempts = 5) {
  for (let i = 1; ; i++) {
    try {
      return await db.transaction(fn);
    } catch (e) {
      const code = e.code;
      const retryable = code === "ER_LOCK_DEADLOCK" || code === "ER_LOCK_WAIT_TIMEOUT" || code === "SQLITE_BUSY";
      if (!retryable || i >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 10 * i + Math.random() * 20));
    }
  }
}

// packages/core/src/transition.ts
var import_node_crypto = __toESM(require("node:crypto"));
var CHUNK = 500;
async function transition(db, req) {
  if (!isLegal(req.from, req.to, req.by, req.isAdmin ?? false)) {
    throw new IllegalTransitionError(
      `illegal transition ${req.from} \u2192 ${req.to} by ${req.by}${req.isAdmin ? " (admin)" : ""}`,
      { from: req.from, to: req.to, by: req.by }
    );
  }
  if (req.taskIds.length === 0) return [];
  const strict = req.strict ?? req.taskIds.length === 1;
  const run3 = async (trx) => {
    const changed = [];
    const t = now();
    for (const ids of chunk(req.taskIds, CHUNK)) {
      const token = import_node_crypto.default.randomBytes(12).toString("hex");
      const n = await trx("task").whereIn("id", ids).andWhere("status", req.from).update({ ...req.set, status: req.to, status_changed_at: t, transition_token: token });
      if (strict && n !== ids.length) {
        throw new LostRaceError(
          ids.length === 1 ? `task ${ids[0]} is no longer ${req.from} (another actor changed it)` : `${ids.length - n} of ${ids.length} tasks are no longer ${req.from}`,
          { from: req.from, to: req.to }
        );
      }
      if (n === 0) continue;
      const rows = await trx("task").select("id").whereIn("id", ids).andWhere("transition_token", token);
      changed.push(...rows.map((r) => Number(r.id)));
      await trx.raw(
        `INSERT INTO history (entity, entity_id, dataset_id, action, from_status, to_status, actor, reason, created_at)
         SELECT 'task', id, dataset_id, 'transition', ?, ?, ?, ?, ? FROM task WHERE transition_token = ? AND id IN (${ids.map(() => "?").join(",")})`,
        [req.from, req.to, req.actor, req.reason ?? null, t, token, ...ids]
      );
    }
    return changed;
  };
  if (isTransaction(db)) return run3(db);
  return withTransaction(db, run3);
}
function isTransaction(db) {
  return db.isTransaction === true;
}
async function recordHistory(db, row) {
  await db("history").insert({
    entity: row.entity,
    entity_id: row.entityId,
    dataset_id: row.datasetId ?? null,
    action: row.action,
    from_status: row.from ?? null,
    to_status: row.to ?? null,
    actor: row.actor,
    reason: row.reason ?? null,
    created_at: now()
  });
}

// packages/core/src/config.ts
var import_node_fs3 = __toESM(require("node:fs"));
var import_node_path3 = __toESM(require("node:path"));
var import_ini = __toESM(require("/work/main/node_modules/ini/lib/ini.js"));

// packages/core/src/schemas.ts
var import_node_fs2 = __toESM(require("node:fs"));
var import_node_path2 = __toESM(require("node:path"));
var import__ = __toESM(require("/work/main/packages/core/node_modules/ajv/dist/2020.js"));
var import_ajv_formats = __toESM(require("/work/main/node_modules/ajv-formats/dist/index.js"));
var cachedDir;
function findSchemasDir() {
  if (process.env.FIRN_SCHEMAS_DIR) return process.env.FIRN_SCHEMAS_DIR;
  if (cachedDir) return cachedDir;
  let dir = __dirname;
  for (; ; ) {
    const candidate = import_node_path2.default.join(dir, "schemas");
    if (import_node_fs2.default.existsSync(import_node_path2.default.join(candidate, "config.schema.json"))) return cachedDir = candidate;
    const parent = import_node_path2.default.dirname(dir);
    if (parent === dir) throw new Error(`schemas/ not found above ${__dirname}; set FIRN_SCHEMAS_DIR`);
    dir = parent;
  }
}
var ajvs = /* @__PURE__ */ new Map();
function ajvFor(mode) {
  let ajv = ajvs.get(mode);
  if (!ajv) {
    ajv = new import__.default({ allErrors: true, strict: false, useDefaults: mode === "coerce", coerceTypes: mode === "coerce" });
    (0, import_ajv_formats.default)(ajv);
    ajvs.set(mode, ajv);
  }
  return ajv;
}
var compiled = /* @__PURE__ */ new Map();
function schemaValidator(relPath, mode = "strict") {
  const key = `${mode}:${relPath}`;
  let v = compiled.get(key);
  if (!v) {
    const file = import_node_path2.default.join(findSchemasDir(), relPath);
    const schema = JSON.parse(import_node_fs2.default.readFileSync(file, "utf8"));
    delete schema.$id;
    v = ajvFor(mode).compile(schema);
    compiled.set(key, v);
  }
  return v;
}
function hasSchema(relPath) {
  return import_node_fs2.default.existsSync(import_node_path2.default.join(findSchemasDir(), relPath));
}
function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "\u2026" : value);
  if (typeof value === "object") return "an object";
  return String(value);
}
function valueAt(root, pointer) {
  if (!pointer) return root;
  let cur = root;
  for (const raw of pointer.split("/").slice(1)) {
    const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (cur === null || typeof cur !== "object") return void 0;
    cur = cur[k];
  }
  return cur;
}
function ajvIssues(errors, data, prefix = "") {
  const out = [];
  const seen = /* @__PURE__ */ new Set();
  for (const e of errors ?? []) {
    let p = prefix + e.instancePath;
    let message;
    switch (e.keyword) {
      case "required":
        p = `${p}/${e.params.missingProperty}`;
        message = "is required";
        break;
      case "additionalProperties":
        p = `${p}/${e.params.additionalProperty}`;
        message = "is not an allowed property";
        break;
      case "type":
        message = `must be ${[].concat(e.params.type).join(" or ").replace(",", " or ")}, got ${describe(valueAt(data, e.instancePath))}`;
        break;
      case "enum":
        message = `must be one of ${e.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}, got ${describe(valueAt(data, e.instancePath))}`;
        break;
      case "anyOf":
      case "oneOf":
        continue;
      // the branch errors say more
      default:
        message = `${e.message ?? "is invalid"}, got ${describe(valueAt(data, e.instancePath))}`;
    }
    const key = `${p}|${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: p || "/", message });
  }
  return out;
}

// packages/core/src/config.ts
var SECTIONS = ["db", "tray", "mon", "queue", "dh", "system", "environment", "log"];
function readIni(file) {
  let text;
  try {
    text = import_node_fs3.default.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${e.message}`);
  }
  const parsed = import_ini.default.parse(text);
  const out = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (v === null || typeof v !== "object") {
      throw new ConfigError(`${file}: key ${JSON.stringify(k)} is outside any [section]`);
    }
    out[k] = { ...v };
  }
  return out;
}
function envOverrides(env) {
  const out = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === void 0 || !name.startsWith("FIRN_")) continue;
    const rest = name.slice(5).toLowerCase();
    const section = SECTIONS.find((s) => rest.startsWith(s + "_"));
    if (!section) continue;
    const key = rest.slice(section.length + 1);
    if (!key) continue;
    const finalKey = section === "environment" ? name.slice(5 + "environment_".length) : key;
    (out[section] ??= {})[finalKey] = value;
  }
  return out;
}
function merge(...layers) {
  const out = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [section, values] of Object.entries(layer)) {
      if (values === void 0) continue;
      const target = out[section] ??= {};
      for (const [k, v] of Object.entries(values)) if (v !== void 0) target[k] = v;
    }
  }
  return out;
}
function sectionKey(p) {
  const parts = p.split("/").filter(Boolean);
  if (parts.length === 0) return "config";
  if (parts.length === 1) return `[${parts[0]}]`;
  return `[${parts[0]}] ${parts.slice(1).join(".")}`;
}
function validateConfig(raw) {
  const data = JSON.parse(JSON.stringify(raw));
  for (const s of SECTIONS) data[s] ??= {};
  const validate = schemaValidator("config.schema.json", "coerce");
  if (!validate(data)) {
    const issues = ajvIssues(validate.errors, data).map((i) => ({
      path: i.path,
      message: `${sectionKey(i.path)} ${i.message}`
    }));
    throw new ConfigError(`invalid configuration: ${issues.map((i) => i.message).join("; ")}`, { issues });
  }
  const cfg = data;
  if (!cfg.db.url) cfg.db.url = `sqlite://${import_node_path3.default.resolve(cfg.system.data ?? "firn-data", "firn.sqlite")}`;
  if (cfg.tray.tls_cert && !cfg.tray.tls_key) throw new ConfigError("[tray] tls_key is required when tls_cert is set");
  if (cfg.tray.tls_key && !cfg.tray.tls_cert) throw new ConfigError("[tray] tls_cert is required when tls_key is set");
  if (cfg.mon.tls_cert && !cfg.mon.tls_key) throw new ConfigError("[mon] tls_key is required when tls_cert is set");
  if (cfg.mon.tls_key && !cfg.mon.tls_cert) throw new ConfigError("[mon] tls_cert is required when tls_key is set");
  if (cfg.queue.capabilities !== void 0) {
    try {
      const c = JSON.parse(cfg.queue.capabilities);
      if (c === null || typeof c !== "object" || Array.isArray(c)) throw new Error("not an object");
    } catch (e) {
      throw new ConfigError(`[queue] capabilities must be a JSON object, ${e.message}`);
    }
  }
  return cfg;
}
function loadConfig(options = {}) {
  const fileLayer = options.file ? readIni(options.file) : void 0;
  const envLayer = envOverrides(options.env ?? {});
  const cfg = validateConfig(merge(options.defaults, fileLayer, envLayer, options.overrides));
  if (options.file) {
    const base = import_node_path3.default.dirname(import_node_path3.default.resolve(options.file));
    const resolve = (p) => p && !import_node_path3.default.isAbsolute(p) && !p.includes("://") ? import_node_path3.default.resolve(base, p) : p;
    cfg.tray.tls_cert = resolve(cfg.tray.tls_cert);
    cfg.tray.tls_key = resolve(cfg.tray.tls_key);
    cfg.mon.tls_cert = resolve(cfg.mon.tls_cert);
    cfg.mon.tls_key = resolve(cfg.mon.tls_key);
    cfg.queue.ssh_key = resolve(cfg.queue.ssh_key);
    cfg.dh.ssh_key = resolve(cfg.dh.ssh_key);
    cfg.dh.ssh_known_hosts = resolve(cfg.dh.ssh_known_hosts);
    if (cfg.db.url.startsWith("sqlite://") && !cfg.db.url.startsWith("sqlite:///") && !cfg.db.url.includes(":memory:")) {
      cfg.db.url = `sqlite://${import_node_path3.default.resolve(base, cfg.db.url.slice("sqlite://".length))}`;
    }
  }
  return cfg;
}
function serverUrl(s) {
  if (s.url) return s.url;
  const host = s.host === "0.0.0.0" || s.host === "::" ? "127.0.0.1" : s.host;
  return `${s.tls_cert ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${s.port}`;
}

// packages/core/src/logger.ts
var import_winston = __toESM(require("/work/main/node_modules/winston/lib/winston.js"));
var SECRET_KEY = /pass(word|key|wd)?|token|secret|authorization|cookie|private|credential|api[_-]?key/i;
var SECRET_TEXT = [
  /(Bearer\s+)[A-Za-z0-9._~+/=-]+/g,
  /(\/\/[^:/@\s]*:)[^@\s]+@/g,
  // user:password@ in URLs
  /((?:password|passkey|token|secret)["']?\s*[:=]\s*["']?)[^"'\s,}]+/gi
];
function redactText(s) {
  let out = s;
  for (const re of SECRET_TEXT) out = out.replace(re, "$1[REDACTED]");
  return out;
}
function redact(value, depth = 0) {
  if (depth > 8) return "[\u2026]";
  if (typeof value === "string") return redactText(value);
  if (value instanceof Error) return { name: value.name, message: redactText(value.message) };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_KEY.test(k) && (typeof v === "string" || typeof v === "number") ? "[REDACTED]" : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}
var redactFormat = import_winston.default.format((info) => {
  const out = info;
  for (const k of Object.keys(out)) {
    if (k === "level" || k === "timestamp") continue;
    out[k] = SECRET_KEY.test(k) && k !== "message" ? "[REDACTED]" : redact(out[k]);
  }
  return info;
});
var WinstonLogger = class _WinstonLogger {
  constructor(w, fields) {
    this.w = w;
    this.fields = fields;
  }
  log(level, message, meta) {
    this.w.log(level, message, { ...this.fields, ...meta });
  }
  error(m, meta) {
    this.log("error", m, meta);
  }
  warn(m, meta) {
    this.log("warn", m, meta);
  }
  info(m, meta) {
    this.log("info", m, meta);
  }
  debug(m, meta) {
    this.log("debug", m, meta);
  }
  scope(fields) {
    return new _WinstonLogger(this.w, { ...this.fields, ...fields });
  }
};
function createLogger(options = {}) {
  const fmt = options.format ?? "auto";
  const text = fmt === "text" || fmt === "auto" && process.stderr.isTTY;
  const lineFormat = text ? import_winston.default.format.printf((info) => {
    const { level, message, timestamp, ...rest } = info;
    const extra = Object.entries(rest).filter(([k]) => typeof k === "string").map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
    return `${String(timestamp)} ${String(level).padEnd(5)} ${String(message)}${extra ? " " + extra : ""}`;
  }) : import_winston.default.format.json();
  const transports = [];
  if (options.stream) transports.push(new import_winston.default.transports.Stream({ stream: options.stream }));
  else if (options.file) transports.push(new import_winston.default.transports.File({ filename: options.file }));
  else transports.push(new import_winston.default.transports.Stream({ stream: process.stderr }));
  const w = import_winston.default.createLogger({
    level: options.level ?? "info",
    silent: options.silent ?? false,
    format: import_winston.default.format.combine(import_winston.default.format.timestamp(), redactFormat(), lineFormat),
    transports
  });
  return new WinstonLogger(w, options.scope ?? {});
}
var nullLogger = {
  error() {
  },
  warn() {
  },
  info() {
  },
  debug() {
  },
  scope() {
    return nullLogger;
  }
};

// packages/core/src/checksums.ts
var import_node_crypto2 = __toESM(require("node:crypto"));
var import_node_fs4 = __toESM(require("node:fs"));
function checksumBuffer(data) {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  return {
    md5: import_node_crypto2.default.createHash("md5").update(buf).digest("hex"),
    sha256: import_node_crypto2.default.createHash("sha256").update(buf).digest("hex"),
    size: buf.length
  };
}
function sha256Hex(s) {
  return import_node_crypto2.default.createHash("sha256").update(s).digest("hex");
}
function randomSecret(bytes = 32) {
  return import_node_crypto2.default.randomBytes(bytes).toString("base64url");
}

// packages/core/src/local-executor.ts
var import_node_child_process = require("node:child_process");
var import_promises = __toESM(require("node:fs/promises"));
var import_node_path4 = __toESM(require("node:path"));

// packages/core/src/ssh-executor.ts
var import_node_fs5 = __toESM(require("node:fs"));
var import_node_path5 = __toESM(require("node:path"));
var import_ssh2 = require("/work/main/node_modules/ssh2/lib/index.js");

// packages/core/src/rpc-server.ts
var import_node_fs6 = __toESM(require("node:fs"));
var import_fastify = __toESM(require("/work/main/node_modules/fastify/fastify.js"));
var import_json_rpc_2 = require("/work/main/node_modules/json-rpc-2.0/dist/index.js");
var import_prom_client = __toESM(require("/work/main/node_modules/prom-client/index.js"));
function toException(e) {
  if (e instanceof import_json_rpc_2.JSONRPCErrorException) return e;
  if (e instanceof FirnError) return new import_json_rpc_2.JSONRPCErrorException(e.message, e.code, e.data);
  const err = coerceError(e);
  return new import_json_rpc_2.JSONRPCErrorException("internal error", RpcErrorCode.INTERNAL_ERROR, { name: err.name });
}
async function createRpcServer(options) {
  const logger = options.logger ?? nullLogger;
  const registry = options.registry ?? new import_prom_client.default.Registry();
  const calls = new import_prom_client.default.Counter({
    name: `firn_${options.name}_rpc_calls_total`,
    help: "JSON-RPC calls by method and outcome",
    labelNames: ["method", "outcome"],
    registers: [registry]
  });
  const duration = new import_prom_client.default.Histogram({
    name: `firn_${options.name}_rpc_duration_seconds`,
    help: "JSON-RPC call duration",
    labelNames: ["method"],
    buckets: [1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry]
  });
  const server = new import_json_rpc_2.JSONRPCServer();
  for (const [name, method] of Object.entries(options.methods)) {
    const schemaFile = `rpc/${name}.json`;
    const validate = method.noSchema ? null : hasSchema(schemaFile) ? schemaValidator(schemaFile) : null;
    if (!method.noSchema && !validate) throw new Error(`no schema ${schemaFile} for RPC method ${name}`);
    server.addMethodAdvanced(name, async (request, ctx) => {
      const started = process.hrtime.bigint();
      const params = request.params ?? {};
      try {
        if (validate && !validate(params)) {
          const issues = ajvIssues(validate.errors, params, "/params");
          throw new ValidationError(`invalid params for ${name}`, issues);
        }
        const result = await method.handler(params, { ...ctx, method: name });
        calls.inc({ method: name, outcome: "ok" });
        return { jsonrpc: "2.0", id: request.id ?? null, result: result === void 0 ? null : result };
      } catch (e) {
        const ex = toException(e);
        calls.inc({ method: name, outcome: String(ex.code) });
        if (ex.code === RpcErrorCode.INTERNAL_ERROR) {
          logger.error("rpc method failed", { method: name, error: coerceError(e).stack ?? String(e) });
        } else {
          logger.debug("rpc method refused", { method: name, code: ex.code, error: ex.message });
        }
        return { jsonrpc: "2.0", id: request.id ?? null, error: { code: ex.code, message: ex.message, ...ex.data !== void 0 ? { data: ex.data } : {} } };
      } finally {
        duration.observe({ method: name }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    });
  }
  const https3 = options.tls ? { https: { cert: import_node_fs6.default.readFileSync(options.tls.cert), key: import_node_fs6.default.readFileSync(options.tls.key) } } : {};
  const app = (0, import_fastify.default)({
    bodyLimit: options.bodyLimit ?? 10 * 1024 * 1024,
    logger: false,
    keepAliveTimeout: 65e3,
    ...https3
  });
  app.addContentTypeParser(["application/json", "text/plain", "application/json-rpc"], { parseAs: "string" }, (_req, body, done) => {
    done(null, body);
  });
  app.setErrorHandler((err, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 413 || err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      void reply.code(413).send({ jsonrpc: "2.0", id: null, error: { code: RpcErrorCode.INVALID_REQUEST, message: `request body too large (limit ${options.bodyLimit ?? 10485760} bytes)` } });
      return;
    }
    if (status >= 500) logger.error("http error", { error: err.message });
    void reply.code(status).send({ jsonrpc: "2.0", id: null, error: { code: status >= 500 ? RpcErrorCode.INTERNAL_ERROR : RpcErrorCode.INVALID_REQUEST, message: err.message } });
  });
  const receive = async (body, ctx) => {
    return server.receive(body, { ...ctx, method: "" });
  };
  const contextOf = (req) => {
    const auth = req.headers.authorization;
    const token = auth && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, "").trim() : null;
    return { token, ip: req.ip };
  };
  app.post("/rpc", async (req, reply) => {
    let body;
    try {
      body = JSON.parse(typeof req.body === "string" ? req.body : "");
    } catch {
      return reply.send({ jsonrpc: "2.0", id: null, error: { code: RpcErrorCode.PARSE_ERROR, message: "parse error: body is not valid JSON" } });
    }
    if (Array.isArray(body) && body.length === 0) {
      return reply.send({ jsonrpc: "2.0", id: null, error: { code: RpcErrorCode.INVALID_REQUEST, message: "invalid request: empty batch" } });
    }
    const ctx = contextOf(req);
    const result = Array.isArray(body) ? await server.receive(body, { ...ctx, method: "" }) : await server.receive(body, { ...ctx, method: "" });
    if (result === null || Array.isArray(result) && result.length === 0) return reply.code(204).send();
    return reply.send(result);
  });
  app.get("/healthz", async () => ({ status: "ok", daemon: options.name, ...options.health ? await options.health() : {} }));
  app.get("/metrics", async (_req, reply) => {
    void reply.header("content-type", registry.contentType);
    return registry.metrics();
  });
  return {
    app,
    registry,
    receive,
    async listen(port, host) {
      return app.listen({ port, host });
    },
    async close() {
      await app.close();
    }
  };
}

// packages/core/src/rpc-client.ts
var import_node_http = __toESM(require("node:http"));
var import_node_https = __toESM(require("node:https"));
var RpcError = class extends FirnError {
  code;
  constructor(code, message, data) {
    super(message, data);
    this.code = code;
  }
};
var RpcTransportError = class extends FirnError {
  code = RpcErrorCode.INTERNAL_ERROR;
};
var RpcClient = class {
  constructor(url, options = {}) {
    this.options = options;
    const base = url.replace(/\/+$/, "");
    this.endpoint = new URL(base.endsWith("/rpc") ? base : `${base}/rpc`);
    this.token = options.token ?? null;
    this.agent = this.endpoint.protocol === "https:" ? new import_node_https.default.Agent({ keepAlive: true, maxSockets: 64, ca: options.ca, rejectUnauthorized: !options.insecure }) : new import_node_http.default.Agent({ keepAlive: true, maxSockets: 64 });
  }
  nextId = 1;
  agent;
  endpoint;
  token;
  /** POST a raw body and return the parsed response (or null for 204). */
  async post(body) {
    const data = Buffer.from(JSON.stringify(body));
    const mod = this.endpoint.protocol === "https:" ? import_node_https.default : import_node_http.default;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        this.endpoint,
        {
          method: "POST",
          agent: this.agent,
          headers: {
            "content-type": "application/json",
            "content-length": data.length,
            ...this.token ? { authorization: `Bearer ${this.token}` } : {}
          },
          timeout: this.options.timeoutMs ?? 6e4
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if (res.statusCode === 204 || text === "") return resolve(null);
            try {
              resolve(JSON.parse(text));
            } catch {
              reject(new RpcTransportError(`HTTP ${res.statusCode}: response is not JSON`));
            }
          });
          res.on("error", (e) => reject(new RpcTransportError(e.message)));
        }
      );
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", (e) => reject(new RpcTransportError(`cannot reach ${this.endpoint.origin}: ${e.message}`)));
      req.end(data);
    });
  }
  /** Call one method; throws RpcError with the server's code on an error answer. */
  async call(method, params = {}) {
    const id = this.nextId++;
    const res = await this.post({ jsonrpc: "2.0", id, method, params });
    if (!res) throw new RpcTransportError("empty response");
    if (res.error) throw new RpcError(res.error.code, res.error.message, res.error.data);
    return res.result;
  }
  /** Several calls in one JSON-RPC batch; each entry is the result or an RpcError. */
  async batch(calls) {
    const ids = calls.map(() => this.nextId++);
    const res = await this.post(calls.map((c, i) => ({ jsonrpc: "2.0", id: ids[i], method: c.method, params: c.params ?? {} })));
    const byId = new Map((res ?? []).map((r) => [r.id, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      if (!r) return new RpcError(RpcErrorCode.INTERNAL_ERROR, "no response for this call");
      return r.error ? new RpcError(r.error.code, r.error.message, r.error.data) : r.result;
    });
  }
  close() {
    this.agent.destroy();
  }
};

// packages/core/src/dependencies.ts
async function tasksWithUnfinishedDeps(db, taskIds) {
  const out = /* @__PURE__ */ new Set();
  for (let i = 0; i < taskIds.length; i += 500) {
    const part = taskIds.slice(i, i + 500);
    const rows = await db("task as t").distinct("t.id").join("task_rel_dep as d", "d.task_rel_id", "t.task_rel_id").join("task as dt", function() {
      this.on("dt.job_id", "=", "t.job_id").andOn("dt.task_rel_id", "=", "d.depends_on_id");
    }).whereIn("t.id", part).andWhereNot("dt.status", TaskStatus.OK);
    for (const r of rows) out.add(Number(r.id));
  }
  return out;
}
async function settleResetTasks(db, taskIds, actor = "core", reason = null) {
  if (taskIds.length === 0) return { waiting: [], idle: [] };
  const blocked = await tasksWithUnfinishedDeps(db, taskIds);
  const set = { passkey_hash: null, batch_id: null, grid_id: null, lease_until: null, host: null };
  const toIdle = taskIds.filter((id) => blocked.has(id));
  const toWaiting = taskIds.filter((id) => !blocked.has(id));
  const idle = await transition(db, { taskIds: toIdle, from: TaskStatus.RESET, to: TaskStatus.IDLE, by: "core", actor, reason, set, strict: false });
  const waiting = await transition(db, { taskIds: toWaiting, from: TaskStatus.RESET, to: TaskStatus.WAITING, by: "core", actor, reason, set, strict: false });
  return { waiting, idle };
}

// packages/core/src/auth.ts
var import_node_crypto3 = __toESM(require("node:crypto"));
var import_node_util = require("node:util");
var ROLES = ["viewer", "manager", "admin"];
function isRole(x) {
  return typeof x === "string" && ROLES.includes(x);
}
function roleRank(role) {
  return ROLES.indexOf(role);
}
function hasRole(role, required) {
  const r = roleRank(role);
  return r >= 0 && r >= roleRank(required);
}
function requireRole(user, required, what = "this action") {
  if (!hasRole(user.role, required)) {
    throw new ForbiddenError(`${what} needs role ${required}; user ${user.username} is ${user.role}`);
  }
}
function actorOf(user) {
  return `user:${user.username}`;
}
var scrypt = (0, import_node_util.promisify)(import_node_crypto3.default.scrypt);
var SCRYPT = { N: 16384, r: 8, p: 1, keylen: 64 };
var MIN_PASSWORD_LENGTH = 8;
var MAX_PASSWORD_LENGTH = 1024;
async function hashPassword(password) {
  const salt = import_node_crypto3.default.randomBytes(16);
  const hash = await scrypt(password.normalize("NFC"), salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64")}$${hash.toString("base64")}`;
}
async function verifyPassword(password, stored) {
  const parts = (stored ?? "").split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") {
    await hashPassword(password);
    return false;
  }
  const [, n, r, p, saltB64, hashB64] = parts;
  const expected = Buffer.from(hashB64, "base64");
  const N = Number(n), R = Number(r), P = Number(p);
  if (!Number.isInteger(N) || !Number.isInteger(R) || !Number.isInteger(P) || expected.length === 0 || N > 1 << 20) return false;
  const actual = await scrypt(password.normalize("NFC"), Buffer.from(saltB64, "base64"), expected.length, { N, r: R, p: P, maxmem: 256 * 1024 * 1024 });
  return import_node_crypto3.default.timingSafeEqual(actual, expected);
}
function checkPasswordPolicy(password, field = "password") {
  if (typeof password !== "string") throw new ValidationError("invalid password", [{ path: field, message: "must be a string" }]);
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new ValidationError("invalid password", [{ path: field, message: `must be at least ${MIN_PASSWORD_LENGTH} characters, got ${password.length}` }]);
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new ValidationError("invalid password", [{ path: field, message: `must be at most ${MAX_PASSWORD_LENGTH} characters` }]);
  }
  return password;
}
function userInfo(row) {
  return {
    id: Number(row.id),
    username: row.username,
    role: row.role,
    source: row.source === "ldap" ? "ldap" : "local",
    disabled: Boolean(row.disabled),
    created_at: Number(row.created_at)
  };
}
async function findUser(db, username) {
  return await db("user").where({ username }).first();
}
async function listUsers(db) {
  const rows = await db("user").select("*").orderBy("username");
  return rows.map(userInfo);
}
function checkUsername(username, field = "username") {
  if (typeof username !== "string" || username.length === 0 || username.length > 190) {
    throw new ValidationError("invalid username", [{ path: field, message: "must be a string of 1 to 190 characters" }]);
  }
  if (/[\u0000-\u001f\u007f]/.test(username)) {
    throw new ValidationError("invalid username", [{ path: field, message: "must not contain control characters" }]);
  }
  return username;
}
async function createUser(db, input) {
  const username = checkUsername(input.username);
  if (!isRole(input.role)) throw new ValidationError("invalid role", [{ path: "role", message: `must be one of ${ROLES.join(", ")}` }]);
  const source = input.source ?? "local";
  const password_hash = source === "local" ? await hashPassword(checkPasswordPolicy(input.password)) : null;
  if (await findUser(db, username)) throw new ConflictError(`user ${JSON.stringify(username)} already exists`);
  const row = { username, password_hash, role: input.role, source, disabled: false, created_at: now() };
  try {
    await db("user").insert(row);
  } catch (e) {
    const code = e.code ?? "";
    if (code === "ER_DUP_ENTRY" || code.startsWith("SQLITE_CONSTRAINT")) throw new ConflictError(`user ${JSON.stringify(username)} already exists`);
    throw e;
  }
  const created = await findUser(db, username);
  return userInfo(created);
}
async function setUserRole(db, username, role) {
  if (!isRole(role)) throw new ValidationError("invalid role", [{ path: "role", message: `must be one of ${ROLES.join(", ")}` }]);
  const n = await db("user").where({ username }).update({ role });
  if (n === 0) throw new NotFoundError(`no user ${JSON.stringify(username)}`);
  return userInfo(await findUser(db, username));
}
async function issueToken(db, userId, ttlSeconds) {
  const token = randomSecret(32);
  const t = now();
  const expiresAt = t + ttlSeconds * 1e3;
  await db("token").insert({ user_id: userId, token_hash: sha256Hex(token), expires_at: expiresAt, created_at: t, last_used_at: t });
  return { token, expiresAt };
}
var TOKEN_SHAPE = /^[A-Za-z0-9_-]{20,200}$/;
async function verifyToken(db, token) {
  if (!token || !TOKEN_SHAPE.test(token)) return null;
  const row = await db("token as t").join("user as u", "u.id", "t.user_id").select("t.id as token_id", "t.expires_at", "t.last_used_at", "u.id", "u.username", "u.role", "u.source", "u.disabled").where("t.token_hash", sha256Hex(token)).first();
  const t = now();
  if (!row || Number(row.expires_at) <= t || Boolean(row.disabled) || !isRole(row.role)) return null;
  if (row.last_used_at === null || t - Number(row.last_used_at) > 6e4) {
    await db("token").where({ id: row.token_id }).update({ last_used_at: t });
  }
  return { id: Number(row.id), username: row.username, role: row.role, source: row.source === "ldap" ? "ldap" : "local" };
}
async function authenticate(db, token) {
  if (!token) throw new UnauthenticatedError("authentication required: log in and send Authorization: Bearer <token>");
  const user = await verifyToken(db, token);
  if (!user) throw new UnauthenticatedError("invalid or expired token: log in again");
  return user;
}
async function revokeToken(db, token) {
  if (!TOKEN_SHAPE.test(token)) return false;
  return await db("token").where({ token_hash: sha256Hex(token) }).delete() > 0;
}

// packages/core/src/dataset-queries.ts
var DATASET_COLUMNS = [
  "d.id",
  "d.description",
  "d.type",
  "d.status",
  "d.priority",
  "d.owner_id",
  "u.username as owner",
  "d.jobs_submitted",
  "d.tasks_per_job",
  "d.config_hash",
  "d.retry",
  "d.created_at",
  "d.updated_at"
];
function datasetInfo(r) {
  return {
    id: Number(r.id),
    description: r.description,
    type: r.type === "offline" ? "offline" : "simulation",
    status: r.status,
    priority: Number(r.priority),
    owner: r.owner ?? null,
    jobs_submitted: Number(r.jobs_submitted),
    tasks_per_job: Number(r.tasks_per_job),
    config_hash: r.config_hash,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at)
  };
}
function parseJson(text) {
  if (text === null || text === void 0 || text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
async function getDatasetOwner(db, datasetId) {
  const row = await db("dataset").select("id", "owner_id", "status", "type").where({ id: datasetId }).first();
  if (!row) throw new NotFoundError(`no dataset ${datasetId}`);
  return { id: Number(row.id), owner_id: row.owner_id === null ? null : Number(row.owner_id), status: row.status, type: row.type };
}
async function getDataset(db, datasetId) {
  const row = await db("dataset as d").leftJoin("user as u", "u.id", "d.owner_id").select(DATASET_COLUMNS).where("d.id", datasetId).first();
  if (!row) throw new NotFoundError(`no dataset ${datasetId}`);
  const grids = await db("dataset_grid as dg").join("grid as g", "g.id", "dg.grid_id").where("dg.dataset_id", datasetId).orderBy("g.name").select("g.name");
  return { ...datasetInfo(row), grids: grids.map((g) => g.name), retry: parseJson(row.retry) };
}
async function listDatasets(db, options = {}) {
  const q = db("dataset as d").leftJoin("user as u", "u.id", "d.owner_id").select(DATASET_COLUMNS).orderBy("d.id", "desc");
  if (options.status !== void 0) q.whereIn("d.status", Array.isArray(options.status) ? options.status : [options.status]);
  if (options.owner !== void 0) q.where("u.username", options.owner);
  q.limit(options.limit ?? 1e3).offset(options.offset ?? 0);
  return (await q).map(datasetInfo);
}
async function getDatasetConfig(db, datasetId) {
  const row = await db("dataset").select("config", "config_hash").where({ id: datasetId }).first();
  if (!row) throw new NotFoundError(`no dataset ${datasetId}`);
  return { config: JSON.parse(row.config), config_hash: row.config_hash };
}
async function taskStatusCounts(db, datasetId) {
  const rows = await db("task").select("status").count({ n: "*" }).where({ dataset_id: datasetId }).groupBy("status");
  const out = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0]));
  for (const r of rows) if (r.status in out) out[r.status] = Number(r.n);
  return out;
}
function jobStatusCase(alias) {
  const inProgress = IN_PROGRESS_STATUSES.map(() => "?").join(", ");
  return {
    sql: `CASE WHEN SUM(CASE WHEN ${alias}.status = ? THEN 1 ELSE 0 END) = COUNT(*) THEN ?
      WHEN SUM(CASE WHEN ${alias}.status IN (${inProgress}) THEN 1 ELSE 0 END) > 0 THEN ?
      WHEN SUM(CASE WHEN ${alias}.status = ? THEN 1 ELSE 0 END) > 0 THEN ?
      WHEN SUM(CASE WHEN ${alias}.status = ? THEN 1 ELSE 0 END) > 0 THEN ?
      ELSE ? END`,
    bindings: [
      TaskStatus.OK,
      JobStatus.OK,
      ...IN_PROGRESS_STATUSES,
      JobStatus.PROCESSING,
      TaskStatus.FAILED,
      JobStatus.FAILED,
      TaskStatus.SUSPENDED,
      JobStatus.SUSPENDED,
      JobStatus.PROCESSING
    ]
  };
}
function jobStatusSql(db, alias = "t") {
  const c = jobStatusCase(alias);
  return db.raw(c.sql, c.bindings);
}
async function jobStatusCounts(db, datasetId) {
  const perJob = db("task as t").select("t.job_id").select(db.raw("? as ??", [jobStatusSql(db), "status"])).where("t.dataset_id", datasetId).groupBy("t.job_id").as("j");
  const rows = await db.from(perJob).select("j.status").count({ n: "*" }).groupBy("j.status");
  const out = Object.fromEntries(Object.values(JobStatus).map((s) => [s, 0]));
  for (const r of rows) if (r.status in out) out[r.status] = Number(r.n);
  return out;
}
async function datasetStatus(db, datasetId) {
  const ds = await getDatasetOwner(db, datasetId);
  const [tasks, jobs] = [await taskStatusCounts(db, datasetId), await jobStatusCounts(db, datasetId)];
  return { status: deriveDatasetStatus(jobs, ds.status), tasks, jobs };
}
function statsFromSums(r) {
  const n = Number(r.n);
  const sum = Number(r.sum);
  const sumSq = Number(r.sum_sq);
  const mean = n > 0 ? sum / n : 0;
  const variance = n > 0 ? Math.max(0, (sumSq - sum * sum / n) / n) : 0;
  return { n, sum, mean, stddev: Math.sqrt(variance), min: Number(r.min), max: Number(r.max) };
}
async function datasetStats(db, datasetId) {
  await getDatasetOwner(db, datasetId);
  const rows = await db("dataset_stat").select("name", "n", "sum", "sum_sq", "min", "max").where({ dataset_id: datasetId }).orderBy("name");
  const out = {};
  for (const r of rows) out[r.name] = statsFromSums(r);
  return out;
}
async function listJobs(db, datasetId, options = {}) {
  await getDatasetOwner(db, datasetId);
  const q = db("job as j").join("task as t", "t.job_id", "j.id").select("j.id", "j.job_index", "j.run_id", "j.status_changed_at").select(db.raw("? as ??", [jobStatusSql(db), "status"])).where("j.dataset_id", datasetId).groupBy("j.id", "j.job_index", "j.run_id", "j.status_changed_at").orderBy("j.job_index").limit(options.limit ?? 1e3).offset(options.offset ?? 0);
  if (options.status) {
    const c = jobStatusCase("t");
    q.havingRaw(`${c.sql} = ?`, [...c.bindings, options.status]);
  }
  const rows = await q;
  return rows.map((r) => ({
    id: Number(r.id),
    dataset_id: datasetId,
    job_index: Number(r.job_index),
    status: r.status,
    run_id: r.run_id === null ? null : Number(r.run_id),
    status_changed_at: Number(r.status_changed_at)
  }));
}
var TASK_COLUMNS = [
  "t.id",
  "t.dataset_id",
  "t.job_id",
  "j.job_index",
  "t.task_index",
  "t.name",
  "t.status",
  "t.status_changed_at",
  "t.req_cpu",
  "t.req_gpu",
  "t.req_memory",
  "t.req_disk",
  "t.req_time",
  "t.req_site",
  "g.name as grid",
  "t.batch_id",
  "t.failures",
  "t.evictions",
  "t.submit_errors",
  "t.next_retry_at",
  "t.error_summary",
  "t.host",
  "t.started_at",
  "t.finished_at",
  "t.last_heartbeat_at",
  "t.cpu_seconds",
  "t.rss_mb",
  "t.disk_mb",
  "t.wall_seconds",
  "t.gpu_util"
];
var num = (v) => v === null || v === void 0 ? null : Number(v);
function taskInfo(r) {
  return {
    id: Number(r.id),
    dataset_id: Number(r.dataset_id),
    job_id: Number(r.job_id),
    job_index: Number(r.job_index),
    task_index: Number(r.task_index),
    name: String(r.name),
    status: r.status,
    status_changed_at: Number(r.status_changed_at),
    requirements: {
      cpu: Number(r.req_cpu),
      gpu: Number(r.req_gpu),
      memory: Number(r.req_memory),
      disk: Number(r.req_disk),
      time: Number(r.req_time),
      site: r.req_site ?? null
    },
    grid: r.grid ?? null,
    batch_id: r.batch_id ?? null,
    failures: Number(r.failures),
    evictions: Number(r.evictions),
    submit_errors: Number(r.submit_errors),
    next_retry_at: num(r.next_retry_at),
    error_summary: r.error_summary ?? null,
    host: r.host ?? null,
    started_at: num(r.started_at),
    finished_at: num(r.finished_at),
    last_heartbeat_at: num(r.last_heartbeat_at),
    usage: { cpu_seconds: num(r.cpu_seconds), rss_mb: num(r.rss_mb), disk_mb: num(r.disk_mb), wall_seconds: num(r.wall_seconds), gpu_util: num(r.gpu_util) }
  };
}
function taskQuery(db) {
  return db("task as t").join("job as j", "j.id", "t.job_id").leftJoin("grid as g", "g.id", "t.grid_id").select(TASK_COLUMNS);
}
async function getJob(db, datasetId, jobIndex) {
  const row = await db("job").where({ dataset_id: datasetId, job_index: jobIndex }).first();
  if (!row) throw new NotFoundError(`no job ${jobIndex} in dataset ${datasetId}`);
  const tasks = (await taskQuery(db).where("t.job_id", row.id).orderBy("t.task_index")).map(taskInfo);
  const run3 = row.run_id === null ? null : await db("run").select("run_number", "date").where({ id: row.run_id }).first();
  const files = await db("file").select("url", "local_name", "md5", "sha256", "size").where({ job_id: row.id, kind: "input" }).orderBy("id");
  return {
    job: {
      id: Number(row.id),
      dataset_id: datasetId,
      job_index: Number(row.job_index),
      status: deriveJobStatus(tasks.map((t) => t.status)),
      run_id: row.run_id === null ? null : Number(row.run_id),
      status_changed_at: Number(row.status_changed_at),
      args: parseJson(row.args),
      run: run3 ? { run_number: Number(run3.run_number), date: run3.date } : null,
      input_files: files.map((f) => ({ ...f, size: num(f.size) }))
    },
    tasks
  };
}
async function getTask(db, taskId) {
  const row = await taskQuery(db).where("t.id", taskId).first();
  if (!row) throw new NotFoundError(`no task ${taskId}`);
  return taskInfo(row);
}
async function getTaskLogs(db, taskId, name) {
  const exists = await db("task").select("id").where({ id: taskId }).first();
  if (!exists) throw new NotFoundError(`no task ${taskId}`);
  const q = db("task_log").select("name", "data", "updated_at").where({ task_id: taskId }).orderBy("name");
  if (name !== void 0) q.andWhere({ name });
  const rows = await q;
  return rows.map((r) => ({ name: r.name, data: r.data ?? "", updated_at: Number(r.updated_at) }));
}
function gridInfo(r) {
  const caps = parseJson(r.capabilities);
  return {
    id: Number(r.id),
    name: r.name,
    plugin: r.plugin,
    capabilities: caps && typeof caps === "object" && !Array.isArray(caps) ? caps : {},
    status: r.status === "disabled" ? "disabled" : "enabled",
    last_seen_at: num(r.last_seen_at),
    created_at: Number(r.created_at)
  };
}
var GRID_COLUMNS = ["id", "name", "plugin", "capabilities", "status", "last_seen_at", "created_at"];
async function listGrids(db) {
  return (await db("grid").select(GRID_COLUMNS).orderBy("name")).map(gridInfo);
}
async function getGrid(db, name) {
  const row = await db("grid").select(GRID_COLUMNS).where({ name }).first();
  if (!row) throw new NotFoundError(`no grid ${JSON.stringify(name)}`);
  return gridInfo(row);
}
var GRID_ACTIVE_STATUSES = [TaskStatus.QUEUEING, TaskStatus.QUEUED, TaskStatus.PROCESSING];

// packages/core/src/expression-parser.ts
var EXPRESSION_LIMITS = {
  maxOutput: 65536,
  maxDepth: 20,
  maxInput: 65536,
  /** Parentheses, unary operators, `**` chains and call arguments inside one `$eval`. */
  maxNesting: 200
};
function evaluate(text, ctx, opts = {}) {
  return expandRoot(makeState(ctx, opts), text);
}
function scanReferences(text) {
  return analyze(text).references;
}
function checkExpressions(text) {
  return analyze(text).errors;
}
function hasExpressions(text) {
  const a = analyze(text);
  return a.references.length > 0 || a.errors.length > 0 || a.calls > 0;
}
function choiceIndex(dataset, job, salt, n) {
  if (n <= 0) return 0;
  const r = mulberry32(fnv1a(`${dataset}\0${job}\0${salt}`));
  return Math.min(n - 1, Math.floor(r * n));
}
function formatFloat(x) {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant = "0", expText = "0"] = x.toExponential().split("e");
  const exp = Number(expText);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  let body;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  } else if (exp >= 0) {
    body = digits.length <= exp + 1 ? `${digits}${"0".repeat(exp + 1 - digits.length)}.0` : `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    body = `0.${"0".repeat(-exp - 1)}${digits}`;
  }
  return neg ? `-${body}` : body;
}
function positiveInt(name, v, dflt) {
  if (v === void 0) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new FirnError(`expression option ${name} must be a positive integer, got ${String(v)}`);
  return v;
}
function makeState(ctx, opts) {
  return {
    ctx,
    maxOutput: positiveInt("maxOutput", opts.maxOutput, EXPRESSION_LIMITS.maxOutput),
    maxDepth: positiveInt("maxDepth", opts.maxDepth, EXPRESSION_LIMITS.maxDepth),
    maxInput: positiveInt("maxInput", opts.maxInput, EXPRESSION_LIMITS.maxInput),
    keepUnresolved: opts.keepUnresolved ?? false,
    memo: /* @__PURE__ */ new Map()
  };
}
var Unresolved = class {
};
var rawMessages = /* @__PURE__ */ new WeakMap();
function expressionError(message, text, position) {
  const e = new ExpressionError(message, text, position);
  rawMessages.set(e, message);
  return e;
}
function expandRoot(st, text) {
  if (!text.includes("$")) return text;
  return Expander.create(st, text, void 0, 0).expand(0, text.length, 0, false);
}
var PLACEHOLDER = { t: "int", v: 0 };
var int = (v) => ({ t: "int", v });
var float = (v) => ({ t: "float", v });
var str = (v) => ({ t: "str", v });
var bool = (v) => ({ t: "bool", v });
function display(v) {
  switch (v.t) {
    case "int":
      return String(v.v);
    case "float":
      return formatFloat(v.v);
    case "bool":
      return v.v ? "True" : "False";
    case "str":
      return v.v;
  }
}
function typeName(v) {
  return v.t;
}
function describeValue(v) {
  const s = v.t === "str" ? JSON.stringify(v.v.length > 40 ? `${v.v.slice(0, 40)}\u2026` : v.v) : display(v);
  return `${s} (${typeName(v)})`;
}
function truthy(v) {
  switch (v.t) {
    case "int":
    case "float":
      return v.v !== 0 && !Number.isNaN(v.v);
    case "bool":
      return v.v;
    case "str":
      return v.v.length > 0;
  }
}
function numeric(v) {
  switch (v.t) {
    case "int":
      return { f: false, n: v.v };
    case "float":
      return { f: true, n: v.v };
    case "bool":
      return { f: false, n: v.v ? 1 : 0 };
    case "str":
      return null;
  }
}
var INT_TEXT = /^\s*[+-]?\d+\s*$/;
var FLOAT_TEXT = /^\s*[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?\s*$/;
function autoType(text) {
  if (INT_TEXT.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? int(n) : str(text);
  }
  if (FLOAT_TEXT.test(text)) return float(Number(text));
  const t = text.trim();
  if (t === "True" || t === "true") return bool(true);
  if (t === "False" || t === "false") return bool(false);
  return str(text);
}
function valueToText(v) {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "bigint") return v.toString();
  if (v === void 0) return "";
  try {
    return JSON.stringify(v) ?? "";
  } catch {
    return String(v);
  }
}
var FUNCTIONS = ["args", "steering", "system", "eval", "sprintf", "choice"];
var FUNCTION_SET = new Set(FUNCTIONS);
var VARIABLES = ["dataset", "job", "task", "jobs_total", "iter"];
var LOOKUP_NOUN = { args: "argument", steering: "steering parameter", system: "system value" };
function isIdentStart(c) {
  return c >= 65 && c <= 90 || c >= 97 && c <= 122 || c === 95;
}
function isIdentPart(c) {
  return isIdentStart(c) || c >= 48 && c <= 57;
}
function isDigit(c) {
  return c >= 48 && c <= 57;
}
function isSpace(c) {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
}
function unescapeChar(c) {
  switch (c) {
    case "n":
      return "\n";
    case "t":
      return "	";
    case "r":
      return "\r";
    case "0":
      return "\0";
    default:
      return c;
  }
}
var DOLLAR = 36;
var BACKSLASH = 92;
var Expander = class _Expander {
  constructor(st, text, label) {
    this.st = st;
    this.text = text;
    this.label = label;
  }
  static create(st, text, label, position, parent) {
    if (text.length > st.maxInput) {
      const msg = `expression input too long (${text.length} characters, max ${st.maxInput})`;
      if (parent) parent.fail(`${label ?? "value"}: ${msg}`, position);
      throw expressionError(msg, text, 0);
    }
    return new _Expander(st, text, label);
  }
  get maxOutput() {
    return this.st.maxOutput;
  }
  fail(message, position) {
    throw expressionError(this.label ? `${message} (in ${this.label})` : message, this.text, position);
  }
  checkOutput(length, position) {
    if (length > this.st.maxOutput) {
      this.fail(`expression output too long (more than ${this.st.maxOutput} characters; see maxOutput)`, position);
    }
  }
  /** Index of the next `$` (or `\` when unescaping) in [from, end), or `end`. */
  nextSpecial(from, end, unescape) {
    const t = this.text;
    for (let i = from; i < end; i++) {
      const c = t.charCodeAt(i);
      if (c === DOLLAR || unescape && c === BACKSLASH) return i;
    }
    return end;
  }
  /** Expand the expressions in text[start, end). `depth` is the nesting level of this text. */
  expand(start, end, depth, unescape) {
    const t = this.text;
    let out = "";
    let i = start;
    while (i < end) {
      const j = this.nextSpecial(i, end, unescape);
      if (j > i) out += t.slice(i, j);
      if (j >= end) break;
      if (t.charCodeAt(j) === BACKSLASH) {
        if (j + 1 < end) {
          out += unescapeChar(t.charAt(j + 1));
          i = j + 2;
        } else {
          out += "\\";
          i = j + 1;
        }
        continue;
      }
      const call = this.matchCall(j, end);
      if (!call) {
        out += "$";
        i = j + 1;
        continue;
      }
      if (depth === 0 && this.st.keepUnresolved) {
        try {
          out += this.evalCall(call, depth);
        } catch (e) {
          if (!(e instanceof Unresolved)) throw e;
          out += t.slice(call.start, call.end);
        }
      } else {
        out += this.evalCall(call, depth);
      }
      this.checkOutput(out.length, j);
      i = call.end;
    }
    this.checkOutput(out.length, start);
    return out;
  }
  /** Recognise a call starting at the `$` at `j`, or null when the `$` is plain text. */
  matchCall(j, end) {
    const t = this.text;
    const c1 = t.charCodeAt(j + 1);
    if (j + 1 >= end) return null;
    if (c1 === 40) {
      for (const name2 of VARIABLES) {
        const close2 = j + 2 + name2.length;
        if (close2 < end && t.startsWith(name2, j + 2) && t.charCodeAt(close2) === 41) {
          return { kind: "var", name: name2, start: j, end: close2 + 1 };
        }
      }
      return null;
    }
    if (!isIdentStart(c1)) return null;
    let k = j + 1;
    while (k < end && isIdentPart(t.charCodeAt(k))) k++;
    if (k >= end || t.charCodeAt(k) !== 40) return null;
    const name = t.slice(j + 1, k);
    if (!FUNCTION_SET.has(name)) return null;
    const close = this.findClose(k, end, name);
    return { kind: "func", name, start: j, argStart: k + 1, argEnd: close, end: close + 1 };
  }
  /** The `)` matching the `(` at `open`, skipping quoted strings; an error when there is none. */
  findClose(open, end, name) {
    const t = this.text;
    let depth = 0;
    let quote = 0;
    let quoteAt = -1;
    for (let i = open; i < end; i++) {
      const c = t.charCodeAt(i);
      if (quote) {
        if (c === BACKSLASH) i++;
        else if (c === quote) quote = 0;
        continue;
      }
      if (c === 34 || c === 39) {
        quote = c;
        quoteAt = i;
      } else if (c === 40) depth++;
      else if (c === 41 && --depth === 0) return i;
    }
    if (quote) this.fail(`unterminated string in $${name}(\u2026)`, quoteAt);
    this.fail(`unbalanced parentheses: "$${name}(" is never closed`, open - name.length - 1);
  }
  /** Split text[start, end) at top-level commas into trimmed pieces. */
  splitArgs(start, end) {
    const t = this.text;
    const pieces = [];
    let depth = 0;
    let quote = 0;
    let from = start;
    for (let i = start; i < end; i++) {
      const c = t.charCodeAt(i);
      if (quote) {
        if (c === BACKSLASH) i++;
        else if (c === quote) quote = 0;
        continue;
      }
      if (c === 34 || c === 39) quote = c;
      else if (c === 40) depth++;
      else if (c === 41) depth--;
      else if (c === 44 && depth === 0) {
        pieces.push(this.trim(from, i));
        from = i + 1;
      }
    }
    const last = this.trim(from, end);
    if (pieces.length > 0 || last.end > last.start) pieces.push(last);
    return pieces;
  }
  trim(start, end) {
    const t = this.text;
    while (start < end && isSpace(t.charCodeAt(start))) start++;
    while (end > start && isSpace(t.charCodeAt(end - 1))) end--;
    return { start, end };
  }
  /** When the piece is exactly one quoted string, the range of its content. */
  quotedContent(p) {
    const t = this.text;
    const q = t.charCodeAt(p.start);
    if (p.end - p.start < 2 || q !== 34 && q !== 39) return null;
    for (let i = p.start + 1; i < p.end; i++) {
      const c = t.charCodeAt(i);
      if (c === BACKSLASH) i++;
      else if (c === q) return i === p.end - 1 ? { start: p.start + 1, end: i } : null;
    }
    return null;
  }
  /** The text of a sprintf/choice argument: a quoted string (escapes processed) or raw text. */
  pieceText(p, level) {
    const q = this.quotedContent(p);
    return q ? this.expand(q.start, q.end, level, true) : this.expand(p.start, p.end, level, false);
  }
  // --- evaluation ---------------------------------------------------------------------
  /** Evaluate one call found in text at nesting `depth` (its own level is depth + 1). */
  evalCall(call, depth) {
    const level = depth + 1;
    if (level > this.st.maxDepth) this.fail(`recursion depth exceeded (max ${this.st.maxDepth})`, call.start);
    if (call.kind === "var") return this.variable(call);
    switch (call.name) {
      case "args":
      case "steering":
      case "system":
        return this.lookup(call.name, call, level);
      case "eval":
        return display(new ExprParser(this, call.argStart, call.argEnd, level, null).run());
      case "sprintf":
        return this.sprintf(call, level);
      case "choice":
        return this.choice(call, level);
    }
  }
  variable(call) {
    const ctx = this.st.ctx;
    switch (call.name) {
      case "dataset":
        return String(ctx.dataset);
      case "job":
        return String(ctx.job);
      case "jobs_total":
        return String(ctx.jobs_total);
      case "task":
        if (ctx.task !== void 0) return ctx.task;
        break;
      case "iter":
        if (ctx.iter !== void 0) return String(ctx.iter);
        break;
    }
    if (this.st.keepUnresolved) throw new Unresolved();
    return this.fail(`$(${call.name}) is not defined in this context`, call.start);
  }
  lookupName(call, level) {
    const p = this.trim(call.argStart, call.argEnd);
    const name = this.pieceText(p, level).trim();
    if (!name) this.fail(`$${call.name}() needs a name`, call.start);
    return name;
  }
  lookup(kind, call, level) {
    const name = this.lookupName(call, level);
    const noun = LOOKUP_NOUN[kind];
    const map = this.st.ctx[kind];
    if (map === void 0 || map === null) {
      if (this.st.keepUnresolved) throw new Unresolved();
      this.fail(`unknown ${noun} "${name}" (no ${noun}s in this context)`, call.start);
    }
    if (!Object.hasOwn(map, name)) this.fail(`unknown ${noun} "${name}"`, call.start);
    const key = `${kind}\0${name}`;
    const cached = this.st.memo.get(key);
    if (cached !== void 0) return cached;
    const raw = map[name];
    let text;
    if (typeof raw === "string" && raw.includes("$")) {
      const sub = _Expander.create(this.st, raw, `${noun} "${name}"`, call.start, this);
      text = sub.expand(0, raw.length, level, false);
    } else {
      text = valueToText(raw);
      this.checkOutput(text.length, call.start);
    }
    this.st.memo.set(key, text);
    return text;
  }
  sprintf(call, level) {
    const pieces = this.splitArgs(call.argStart, call.argEnd);
    const [fmtPiece, ...argPieces] = pieces;
    if (!fmtPiece) return this.fail("bad sprintf: missing format string", call.start);
    const fmt = this.pieceText(fmtPiece, level);
    const args = argPieces.map((p) => ({ text: this.pieceText(p, level), position: p.start }));
    return formatSprintf(fmt, args, (msg, position) => this.fail(`bad sprintf: ${msg}`, position ?? call.start), this.st.maxOutput);
  }
  choice(call, level) {
    const pieces = this.splitArgs(call.argStart, call.argEnd);
    if (pieces.length === 0) this.fail("$choice() needs at least one option", call.start);
    const salt = this.text.slice(call.argStart, call.argEnd);
    const idx = choiceIndex(this.st.ctx.dataset, this.st.ctx.job, salt, pieces.length);
    const picked = pieces[idx];
    return picked ? this.pieceText(picked, level) : "";
  }
  // --- static scan ----------------------------------------------------------------------
  scan(start, end, depth, unescape, sink) {
    const t = this.text;
    let i = start;
    while (i < end) {
      const j = this.nextSpecial(i, end, unescape);
      if (j >= end) break;
      if (t.charCodeAt(j) === BACKSLASH) {
        i = j + 2;
        continue;
      }
      let call;
      try {
        call = this.matchCall(j, end);
      } catch (e) {
        if (!(e instanceof ExpressionError)) throw e;
        sink.errors.push(e);
        i = j + 1;
        continue;
      }
      if (!call) {
        i = j + 1;
        continue;
      }
      try {
        this.scanCall(call, depth, sink);
      } catch (e) {
        if (!(e instanceof ExpressionError)) throw e;
        sink.errors.push(e);
      }
      i = call.end;
    }
  }
  scanCall(call, depth, sink) {
    const level = depth + 1;
    sink.calls++;
    if (level > this.st.maxDepth) this.fail(`recursion depth exceeded (max ${this.st.maxDepth})`, call.start);
    if (call.kind === "var") {
      sink.references.push({ kind: "var", name: call.name, position: call.start });
      return;
    }
    switch (call.name) {
      case "args":
      case "steering":
      case "system": {
        const p = this.trim(call.argStart, call.argEnd);
        const q = this.quotedContent(p);
        const r = q ?? p;
        const raw = this.text.slice(r.start, r.end);
        if (raw.includes("$") || q && raw.includes("\\")) {
          this.scan(r.start, r.end, level, q !== null, sink);
        } else if (!raw.trim()) {
          this.fail(`$${call.name}() needs a name`, call.start);
        } else {
          sink.references.push({ kind: call.name, name: raw.trim(), position: call.start });
        }
        return;
      }
      case "eval":
        new ExprParser(this, call.argStart, call.argEnd, level, sink).run();
        return;
      case "sprintf":
      case "choice": {
        const pieces = this.splitArgs(call.argStart, call.argEnd);
        if (pieces.length === 0) {
          this.fail(call.name === "sprintf" ? "bad sprintf: missing format string" : "$choice() needs at least one option", call.start);
        }
        for (const p of pieces) {
          const q = this.quotedContent(p);
          if (q) this.scan(q.start, q.end, level, true, sink);
          else this.scan(p.start, p.end, level, false, sink);
        }
        const fmtPiece = pieces[0];
        if (call.name === "sprintf" && fmtPiece) {
          const q = this.quotedContent(fmtPiece) ?? fmtPiece;
          const fmtRaw = this.text.slice(q.start, q.end);
          if (!fmtRaw.includes("$") && !fmtRaw.includes("\\")) {
            checkSprintfFormat(fmtRaw, pieces.length - 1, (msg) => this.fail(`bad sprintf: ${msg}`, call.start));
          }
        }
        return;
      }
    }
  }
};
function analyze(text) {
  const sink = { references: [], errors: [], calls: 0 };
  if (!text.includes("$")) return sink;
  const st = makeState({ dataset: 0, job: 0, jobs_total: 0 }, { maxInput: Math.max(text.length, 1) });
  Expander.create(st, text, void 0, 0).scan(0, text.length, 0, false, sink);
  return sink;
}
var TWO_CHAR_OPS = /* @__PURE__ */ new Set(["**", "//", "==", "!=", "<=", ">=", "&&", "||"]);
var ONE_CHAR_OPS = /* @__PURE__ */ new Set(["+", "-", "*", "/", "%", "<", ">", "!", "(", ")", ","]);
var COMPARISONS = /* @__PURE__ */ new Set(["==", "!=", "<", "<=", ">", ">="]);
var KEYWORDS = /* @__PURE__ */ new Set(["and", "or", "not", "True", "False", "true", "false"]);
var BUILTINS = /* @__PURE__ */ new Set(["abs", "min", "max", "int", "float", "str", "round"]);
var NUMBER_RE = /(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;
function describeToken(tok, text) {
  switch (tok.k) {
    case "end":
      return "end of expression";
    case "num":
      return `number ${display(tok.value)}`;
    case "str":
      return "string";
    case "name":
      return `name "${tok.name}"`;
    case "call":
      return `"${text.slice(tok.call.start, tok.call.end)}"`;
    case "op":
      return `"${tok.op}"`;
  }
}
var ExprParser = class {
  constructor(ex, start, end, level, sink) {
    this.ex = ex;
    this.start = start;
    this.end = end;
    this.level = level;
    this.sink = sink;
    this.text = ex.text;
    this.i = start;
    this.active = sink === null;
  }
  i;
  tok = { k: "end", pos: 0 };
  active;
  nest = 0;
  text;
  run() {
    this.advance();
    if (this.tok.k === "end") this.ex.fail("empty expression in $eval()", this.start - "$eval(".length);
    const v = this.parseOr();
    if (!this.atEnd()) this.unexpected();
    return v;
  }
  atEnd() {
    return this.tok.k === "end";
  }
  fail(message, position) {
    return this.ex.fail(message, position);
  }
  unexpected() {
    const tok = this.tok;
    if (tok.k === "op" && tok.op === ")") this.fail('unbalanced parentheses: unexpected ")"', tok.pos);
    return this.fail(`unexpected ${describeToken(tok, this.text)}`, tok.pos);
  }
  enter(position) {
    if (++this.nest > EXPRESSION_LIMITS.maxNesting) {
      this.fail(`expression nested too deeply (max ${EXPRESSION_LIMITS.maxNesting} levels)`, position);
    }
  }
  // --- tokenizer --------------------------------------------------------------------------
  advance() {
    const t = this.text;
    const end = this.end;
    let i = this.i;
    while (i < end && isSpace(t.charCodeAt(i))) i++;
    if (i >= end) {
      this.tok = { k: "end", pos: i };
      this.i = i;
      return;
    }
    const c = t.charCodeAt(i);
    if (isDigit(c) || c === 46 && i + 1 < end && isDigit(t.charCodeAt(i + 1))) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(t);
      const lit = m ? m[0] : t.charAt(i);
      const after = i + lit.length;
      if (after < end && (isIdentPart(t.charCodeAt(after)) || t.charCodeAt(after) === 46)) {
        this.fail(`invalid number "${t.slice(i, Math.min(end, after + 1))}"`, i);
      }
      const isFloat = /[.eE]/.test(lit);
      const n = Number(lit);
      if (!isFloat && !Number.isSafeInteger(n)) this.fail(`integer literal too large: ${lit}`, i);
      this.tok = { k: "num", pos: i, value: isFloat ? float(n) : int(n) };
      this.i = after;
      return;
    }
    if (c === 34 || c === 39) {
      for (let k = i + 1; k < end; k++) {
        const d = t.charCodeAt(k);
        if (d === BACKSLASH) k++;
        else if (d === c) {
          this.tok = { k: "str", pos: i, start: i + 1, end: k };
          this.i = k + 1;
          return;
        }
      }
      this.fail("unterminated string", i);
    }
    if (isIdentStart(c)) {
      let k = i + 1;
      while (k < end && isIdentPart(t.charCodeAt(k))) k++;
      this.tok = { k: "name", pos: i, name: t.slice(i, k) };
      this.i = k;
      return;
    }
    if (c === DOLLAR) {
      const call = this.ex.matchCall(i, end);
      if (!call) this.fail('unexpected "$" (not a known expression such as $steering(name) or $(job))', i);
      this.tok = { k: "call", pos: i, call };
      this.i = call.end;
      return;
    }
    const two = t.slice(i, i + 2);
    if (i + 1 < end && TWO_CHAR_OPS.has(two)) {
      this.tok = { k: "op", pos: i, op: two };
      this.i = i + 2;
      return;
    }
    const one = t.charAt(i);
    if (ONE_CHAR_OPS.has(one)) {
      this.tok = { k: "op", pos: i, op: one };
      this.i = i + 1;
      return;
    }
    if (one === "=") this.fail('unexpected "=" (use "==" to compare)', i);
    if (one === "&" || one === "|") this.fail(`unexpected "${one}" (use "${one}${one}" or "${one === "&" ? "and" : "or"}")`, i);
    this.fail(`unexpected character ${JSON.stringify(one)}`, i);
  }
  isOp(...ops) {
    const tok = this.tok;
    if (tok.k === "op") return ops.includes(tok.op);
    if (tok.k === "name") return ops.includes(tok.name);
    return false;
  }
  opText() {
    const tok = this.tok;
    return tok.k === "op" ? tok.op : tok.k === "name" ? tok.name : "";
  }
  // --- grammar (Python precedence) ---------------------------------------------------------
  // or := and (('or'|'||') and)*          and := not (('and'|'&&') not)*
  // not := ('not'|'!') not | comparison    comparison := additive (cmp additive)*   (chained)
  // additive := term (('+'|'-') term)*    term := unary (('*'|'/'|'//'|'%') unary)*
  // unary := ('-'|'+') unary | power       power := primary ('**' unary)?
  parseOr() {
    let left = this.parseAnd();
    while (this.isOp("or", "||")) {
      this.advance();
      const saved = this.active;
      const decided = saved && truthy(left);
      if (decided) this.active = false;
      const right = this.parseAnd();
      this.active = saved;
      if (saved && !decided) left = right;
    }
    return left;
  }
  parseAnd() {
    let left = this.parseNot();
    while (this.isOp("and", "&&")) {
      this.advance();
      const saved = this.active;
      const decided = saved && !truthy(left);
      if (decided) this.active = false;
      const right = this.parseNot();
      this.active = saved;
      if (saved && !decided) left = right;
    }
    return left;
  }
  parseNot() {
    if (this.isOp("not", "!")) {
      const pos = this.tok.pos;
      this.advance();
      this.enter(pos);
      const v = this.parseNot();
      this.nest--;
      return this.active ? bool(!truthy(v)) : PLACEHOLDER;
    }
    return this.parseComparison();
  }
  parseComparison() {
    let left = this.parseAdditive();
    if (!(this.tok.k === "op" && COMPARISONS.has(this.tok.op))) return left;
    const saved = this.active;
    let ok = true;
    while (this.tok.k === "op" && COMPARISONS.has(this.tok.op)) {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      const right = this.parseAdditive();
      if (this.active) {
        ok = this.compare(op, left, right, pos);
        if (!ok) this.active = false;
      }
      left = right;
    }
    this.active = saved;
    return saved ? bool(ok) : PLACEHOLDER;
  }
  parseAdditive() {
    let left = this.parseTerm();
    while (this.isOp("+", "-") && this.tok.k === "op") {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      const right = this.parseTerm();
      left = this.active ? this.binary(op, left, right, pos) : PLACEHOLDER;
    }
    return left;
  }
  parseTerm() {
    let left = this.parseUnary();
    while (this.tok.k === "op" && ["*", "/", "//", "%"].includes(this.tok.op)) {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      const right = this.parseUnary();
      left = this.active ? this.binary(op, left, right, pos) : PLACEHOLDER;
    }
    return left;
  }
  parseUnary() {
    if (this.tok.k === "op" && (this.tok.op === "-" || this.tok.op === "+")) {
      const op = this.tok.op;
      const pos = this.tok.pos;
      this.advance();
      this.enter(pos);
      const v = this.parseUnary();
      this.nest--;
      if (!this.active) return PLACEHOLDER;
      const n = numeric(v);
      if (!n) this.fail(`bad operand for unary ${op}: ${describeValue(v)}`, pos);
      const r = op === "-" ? -n.n : n.n;
      return n.f ? float(r) : int(r);
    }
    return this.parsePower();
  }
  parsePower() {
    const base = this.parsePrimary();
    if (!this.isOp("**")) return base;
    const pos = this.tok.pos;
    this.advance();
    this.enter(pos);
    const exp = this.parseUnary();
    this.nest--;
    return this.active ? this.binary("**", base, exp, pos) : PLACEHOLDER;
  }
  parsePrimary() {
    const tok = this.tok;
    switch (tok.k) {
      case "num":
        this.advance();
        return tok.value;
      case "str": {
        this.advance();
        if (this.sink) this.ex.scan(tok.start, tok.end, this.level, true, this.sink);
        return this.active ? str(this.ex.expand(tok.start, tok.end, this.level, true)) : PLACEHOLDER;
      }
      case "call": {
        this.advance();
        if (this.sink) this.ex.scanCall(tok.call, this.level, this.sink);
        return this.active ? autoType(this.ex.evalCall(tok.call, this.level)) : PLACEHOLDER;
      }
      case "name":
        return this.parseName(tok);
      case "op":
        if (tok.op === "(") {
          this.advance();
          this.enter(tok.pos);
          const v = this.parseOr();
          if (!this.isOp(")")) {
            if (this.atEnd()) this.fail('unbalanced parentheses: "(" is never closed', tok.pos);
            this.unexpected();
          }
          this.advance();
          this.nest--;
          return v;
        }
        return this.unexpected();
      case "end":
        return this.fail("unexpected end of expression", tok.pos);
    }
  }
  parseName(tok) {
    const name = tok.name;
    if (name === "True" || name === "true") {
      this.advance();
      return bool(true);
    }
    if (name === "False" || name === "false") {
      this.advance();
      return bool(false);
    }
    if (KEYWORDS.has(name)) return this.fail(`unexpected keyword "${name}"`, tok.pos);
    let k = this.i;
    while (k < this.end && isSpace(this.text.charCodeAt(k))) k++;
    if (this.text.charCodeAt(k) !== 40 || k >= this.end) {
      return this.fail(
        `unknown name "${name}" ($eval knows numbers, quoted strings, True/False and $-expressions such as $steering(${name}))`,
        tok.pos
      );
    }
    if (!BUILTINS.has(name)) return this.fail(`unknown function "${name}" (known: ${[...BUILTINS].join(", ")})`, tok.pos);
    this.advance();
    const open = this.tok.pos;
    this.advance();
    this.enter(open);
    const args = [];
    if (!this.isOp(")")) {
      for (; ; ) {
        args.push(this.parseOr());
        if (this.isOp(",")) {
          this.advance();
          continue;
        }
        break;
      }
    }
    if (!this.isOp(")")) {
      if (this.atEnd()) this.fail('unbalanced parentheses: "(" is never closed', open);
      this.unexpected();
    }
    this.advance();
    this.nest--;
    return this.active ? this.builtin(name, args, tok.pos) : PLACEHOLDER;
  }
  // --- semantics ----------------------------------------------------------------------------
  makeNumber(r, isFloat, pos) {
    if (isFloat) return float(r);
    if (!Number.isSafeInteger(r)) this.fail(`integer result out of range (beyond \xB1${Number.MAX_SAFE_INTEGER})`, pos);
    return int(r === 0 ? 0 : r);
  }
  binary(op, a, b, pos) {
    if (op === "+" && a.t === "str" && b.t === "str") {
      if (a.v.length + b.v.length > this.ex.maxOutput) this.fail("expression output too long", pos);
      return str(a.v + b.v);
    }
    if (op === "*" && (a.t === "str" || b.t === "str")) {
      const s = a.t === "str" ? a : b;
      const n = a.t === "str" ? b : a;
      if (s.t === "str" && (n.t === "int" || n.t === "bool")) {
        const count2 = n.t === "bool" ? n.v ? 1 : 0 : Math.max(0, n.v);
        if (s.v.length * count2 > this.ex.maxOutput) this.fail("expression output too long", pos);
        return str(s.v.repeat(count2));
      }
    }
    const na = numeric(a);
    const nb = numeric(b);
    if (!na || !nb) {
      const bad = na ? b : a;
      return this.fail(`non-numeric operand for "${op}": ${describeValue(bad)}`, pos);
    }
    const f = na.f || nb.f;
    const x = na.n;
    const y = nb.n;
    switch (op) {
      case "+":
        return this.makeNumber(x + y, f, pos);
      case "-":
        return this.makeNumber(x - y, f, pos);
      case "*":
        return this.makeNumber(x * y, f, pos);
      case "/":
        if (y === 0) this.fail("division by zero", pos);
        return float(x / y);
      case "//": {
        if (y === 0) this.fail("division by zero", pos);
        if (f) return float(Math.floor(x / y));
        let q = Math.trunc(x / y);
        if (x % y !== 0 && x < 0 !== y < 0) q -= 1;
        return this.makeNumber(q, false, pos);
      }
      case "%": {
        if (y === 0) this.fail("modulo by zero", pos);
        let r = x % y;
        if (r !== 0 && r < 0 !== y < 0) r += y;
        return this.makeNumber(r, f, pos);
      }
      case "**": {
        if (x === 0 && y < 0) this.fail("zero raised to a negative power", pos);
        if (x < 0 && !Number.isInteger(y)) this.fail("negative number raised to a fractional power", pos);
        if (!f && y < 0) return float(x ** y);
        return this.makeNumber(x ** y, f, pos);
      }
    }
    return this.fail(`unknown operator "${op}"`, pos);
  }
  compare(op, a, b, pos) {
    const na = numeric(a);
    const nb = numeric(b);
    let cmp;
    if (na && nb) cmp = na.n < nb.n ? -1 : na.n > nb.n ? 1 : na.n === nb.n ? 0 : NaN;
    else if (a.t === "str" && b.t === "str") cmp = a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
    else if (op === "==") return false;
    else if (op === "!=") return true;
    else return this.fail(`cannot compare ${describeValue(a)} and ${describeValue(b)} with "${op}"`, pos);
    switch (op) {
      case "==":
        return cmp === 0;
      case "!=":
        return cmp !== 0;
      case "<":
        return cmp < 0;
      case "<=":
        return cmp <= 0;
      case ">":
        return cmp > 0;
      default:
        return cmp >= 0;
    }
  }
  builtin(name, args, pos) {
    const arity = (min, max) => {
      if (args.length < min || args.length > max) {
        this.fail(`${name}() takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? "" : "s"}, got ${args.length}`, pos);
      }
    };
    const num2 = (v) => {
      const n = numeric(v);
      if (!n) this.fail(`${name}() needs a number, got ${describeValue(v)}`, pos);
      return n;
    };
    switch (name) {
      case "abs": {
        arity(1, 1);
        const n = num2(args[0]);
        return n.f ? float(Math.abs(n.n)) : int(Math.abs(n.n));
      }
      case "min":
      case "max": {
        if (args.length === 0) this.fail(`${name}() needs at least one argument`, pos);
        let best = args[0];
        for (const v of args.slice(1)) {
          const better = name === "min" ? this.compare("<", v, best, pos) : this.compare(">", v, best, pos);
          if (better) best = v;
        }
        return best;
      }
      case "int": {
        arity(1, 1);
        const v = args[0];
        if (v.t === "str") {
          if (!INT_TEXT.test(v.v)) this.fail(`invalid literal for int(): ${JSON.stringify(v.v)}`, pos);
          return this.makeNumber(Number(v.v), false, pos);
        }
        const n = num2(v);
        if (!Number.isFinite(n.n)) this.fail(`cannot convert ${formatFloat(n.n)} to an integer`, pos);
        return this.makeNumber(Math.trunc(n.n), false, pos);
      }
      case "float": {
        arity(1, 1);
        const v = args[0];
        if (v.t === "str") {
          const t = v.v.trim().toLowerCase();
          if (FLOAT_TEXT.test(v.v)) return float(Number(v.v));
          if (t === "inf" || t === "+inf" || t === "infinity") return float(Infinity);
          if (t === "-inf" || t === "-infinity") return float(-Infinity);
          if (t === "nan") return float(NaN);
          return this.fail(`could not convert string to float: ${JSON.stringify(v.v)}`, pos);
        }
        return float(num2(v).n);
      }
      case "str":
        arity(1, 1);
        return str(display(args[0]));
      case "round": {
        arity(1, 1);
        const n = num2(args[0]);
        if (!n.f) return int(n.n);
        if (!Number.isFinite(n.n)) this.fail(`cannot round ${formatFloat(n.n)} to an integer`, pos);
        const fl = Math.floor(n.n);
        const diff = n.n - fl;
        const r = diff > 0.5 ? fl + 1 : diff < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
        return this.makeNumber(r, false, pos);
      }
    }
    return this.fail(`unknown function "${name}"`, pos);
  }
};
var SPEC_RE = /%([-+ 0#]*)(\d+)?(?:\.(\d*))?([diouxXeEfFgGs%])/y;
var MAX_PRECISION = 100;
function parseFormat(fmt, fail) {
  const parts = [];
  let i = 0;
  while (i < fmt.length) {
    const j = fmt.indexOf("%", i);
    if (j < 0) {
      parts.push(fmt.slice(i));
      break;
    }
    if (j > i) parts.push(fmt.slice(i, j));
    SPEC_RE.lastIndex = j;
    const m = SPEC_RE.exec(fmt);
    if (!m) {
      const shown = fmt.slice(j, j + 6);
      fail(j + 1 >= fmt.length ? `incomplete format at end of ${JSON.stringify(fmt)}` : `unsupported format ${JSON.stringify(shown)} in ${JSON.stringify(fmt)} (use %d %i %s %f %.Nf %0Nd %x %o %e %g %%)`);
    }
    const [whole, flags = "", width, precision, conv = ""] = m;
    const w = width === void 0 ? void 0 : Number(width);
    const p = precision === void 0 ? void 0 : precision === "" ? 0 : Number(precision);
    if (p !== void 0 && p > MAX_PRECISION) fail(`precision ${p} too large (max ${MAX_PRECISION})`);
    if (conv === "%") parts.push("%");
    else parts.push({ flags, width: w, precision: p, conv, at: j });
    i = j + whole.length;
  }
  return parts;
}
function checkSprintfFormat(fmt, nargs, fail) {
  const specs = parseFormat(fmt, fail).filter((p) => typeof p !== "string");
  if (specs.length > nargs) fail(`not enough arguments for format string (${specs.length} needed, ${nargs} given)`);
  if (specs.length < nargs) fail(`not all arguments converted (${nargs} given, format uses ${specs.length})`);
}
function isTie(longDigits, keep) {
  return longDigits.charAt(keep) === "5" && /^0*$/.test(longDigits.slice(keep + 1));
}
function toFixedEven(ax, p) {
  const naive = ax.toFixed(p);
  const extra = Math.min(100, p + 25);
  if (extra <= p || ax >= 1e21) return naive;
  const long = ax.toFixed(extra);
  const dot = long.indexOf(".");
  const frac = long.slice(dot + 1);
  if (!isTie(frac, p)) return naive;
  const truncated = p === 0 ? long.slice(0, dot) : long.slice(0, dot + 1 + p);
  const last = Number(truncated.charAt(truncated.length - 1));
  return last % 2 === 0 ? truncated : naive;
}
function toExponentialEven(ax, p) {
  const naive = ax.toExponential(p);
  const extra = Math.min(100, p + 25);
  if (extra <= p) return naive;
  const long = ax.toExponential(extra);
  const [mant = "", exp = ""] = long.split("e");
  const digits = mant.replace(".", "");
  if (!isTie(digits, p + 1)) return naive;
  const kept = digits.slice(0, p + 1);
  if (Number(kept.charAt(kept.length - 1)) % 2 !== 0) return naive;
  return `${kept.charAt(0)}${p > 0 ? `.${kept.slice(1)}` : ""}e${exp}`;
}
function padExponent(s) {
  return s.replace(/e([+-])(\d)$/, "e$10$2");
}
function formatG(x, precision, alt) {
  let p = precision ?? 6;
  if (p === 0) p = 1;
  if (x === 0) return alt ? 0 .toFixed(p - 1) : "0";
  const exp = Number(toExponentialEven(x, p - 1).split("e")[1]);
  let s;
  if (exp >= -4 && exp < p) {
    s = toFixedEven(x, Math.max(0, p - 1 - exp));
    if (!alt && s.includes(".")) s = s.replace(/\.?0+$/, "");
  } else {
    s = toExponentialEven(x, p - 1);
    if (!alt) s = s.replace(/\.?0+e/, "e");
    s = padExponent(s);
  }
  return s;
}
function formatSprintf(fmt, args, fail, maxOutput) {
  const parts = parseFormat(fmt, (m) => fail(m));
  let out = "";
  let next = 0;
  for (const part of parts) {
    if (typeof part === "string") {
      out += part;
      continue;
    }
    const arg = args[next++];
    if (!arg) {
      const needed = parts.filter((p) => typeof p !== "string").length;
      return fail(`not enough arguments for format string (${needed} needed, ${args.length} given)`);
    }
    if (part.width !== void 0 && part.width > maxOutput) fail(`field width ${part.width} too large`);
    out += formatOne(part, arg, fail);
    if (out.length > maxOutput) fail(`expression output too long (more than ${maxOutput} characters; see maxOutput)`);
  }
  if (next < args.length) fail(`not all arguments converted (${args.length} given, format uses ${next})`, args[next]?.position);
  return out;
}
function formatOne(spec, arg, fail) {
  const { flags, conv } = spec;
  const left = flags.includes("-");
  const pad = (body2, sign, zeroOk) => {
    const width = spec.width ?? 0;
    const len = sign.length + body2.length;
    if (len >= width) return sign + body2;
    if (left) return sign + body2 + " ".repeat(width - len);
    if (zeroOk && flags.includes("0")) return sign + "0".repeat(width - len) + body2;
    return " ".repeat(width - len) + sign + body2;
  };
  if (conv === "s") {
    const s = spec.precision === void 0 ? arg.text : arg.text.slice(0, spec.precision);
    return pad(s, "", false);
  }
  const v = autoType(arg.text);
  const n = numeric(v);
  if (!n) return fail(`%${conv} needs a number, got ${JSON.stringify(arg.text)}`, arg.position);
  const signOf = (neg2) => neg2 ? "-" : flags.includes("+") ? "+" : flags.includes(" ") ? " " : "";
  if (conv === "d" || conv === "i" || conv === "u") {
    if (!Number.isFinite(n.n)) return fail(`cannot format ${formatFloat(n.n)} with %${conv}`, arg.position);
    const x2 = Math.trunc(n.n);
    let digits = String(Math.abs(x2));
    if (spec.precision !== void 0) digits = digits.padStart(spec.precision, "0");
    return pad(digits, signOf(x2 < 0), spec.precision === void 0);
  }
  if (conv === "x" || conv === "X" || conv === "o") {
    if (n.f) return fail(`%${conv} needs an integer, got ${JSON.stringify(arg.text)}`, arg.position);
    let digits = Math.abs(n.n).toString(conv === "o" ? 8 : 16);
    if (spec.precision !== void 0) digits = digits.padStart(spec.precision, "0");
    if (flags.includes("#")) digits = (conv === "o" ? "0o" : "0x") + digits;
    if (conv === "X") digits = digits.toUpperCase();
    return pad(digits, signOf(n.n < 0), spec.precision === void 0);
  }
  const x = n.n;
  const upper = conv === "F" || conv === "E" || conv === "G";
  if (!Number.isFinite(x)) {
    const body2 = Number.isNaN(x) ? "nan" : "inf";
    return pad(upper ? body2.toUpperCase() : body2, signOf(x < 0), false);
  }
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  const p = spec.precision ?? 6;
  let body;
  if (conv === "f" || conv === "F") {
    body = toFixedEven(ax, p);
    if (flags.includes("#") && p === 0) body += ".";
  } else if (conv === "e" || conv === "E") {
    body = padExponent(toExponentialEven(ax, p));
    if (flags.includes("#") && p === 0) body = body.replace("e", ".e");
  } else {
    body = formatG(ax, spec.precision, flags.includes("#"));
  }
  if (upper) body = body.toUpperCase();
  return pad(body, signOf(neg), true);
}
function fnv1a(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h >>> 0;
}
function mulberry32(seed) {
  let t = seed + 1831565813 >>> 0;
  t = Math.imul(t ^ t >>> 15, t | 1);
  t ^= t + Math.imul(t ^ t >>> 7, t | 61);
  return ((t ^ t >>> 14) >>> 0) / 4294967296;
}

// packages/core/src/dataset-config.ts
var import_node_crypto4 = require("node:crypto");
var fs8 = __toESM(require("node:fs"));
var path6 = __toESM(require("node:path"));
var import__2 = __toESM(require("/work/main/packages/core/node_modules/ajv/dist/2020.js"));
var BUILTIN_MODULE_CLASSES = ["shell", "transfer", "tarball"];
var defaultRequirements = Object.freeze({
  cpu: 1,
  gpu: 0,
  memory: 2e3,
  disk: 1e4,
  time: 60
});
var defaultRetryPolicy = Object.freeze({
  max_failures: 5,
  max_evictions: 10,
  backoff_seconds: 60,
  backoff_max_seconds: 3600
});
function resolveRetryPolicy(policy) {
  return { ...defaultRetryPolicy, ...policy, rules: policy?.rules ?? [] };
}
function isBuiltinModuleClass(cls) {
  return BUILTIN_MODULE_CLASSES.includes(cls);
}
var SCHEMA_FILE = "dataset.schema.json";
var compiled2;
function datasetSchemaValidator() {
  if (!compiled2) {
    const file = path6.join(findSchemasDir(), SCHEMA_FILE);
    const schema = JSON.parse(fs8.readFileSync(file, "utf8"));
    const ajv = new import__2.default({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    compiled2 = ajv.compile(schema);
  }
  return compiled2;
}
function valueAt2(root, pointer) {
  let cur = root;
  for (const raw of pointer.split("/").slice(1)) {
    if (cur === null || typeof cur !== "object") return void 0;
    const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (!Object.hasOwn(cur, k)) return void 0;
    cur = cur[k];
  }
  return cur;
}
function pointerToken(key) {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}
function describe2(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}\u2026` : value);
  if (typeof value === "object") return "an object";
  return String(value);
}
var PATTERN_MESSAGES = {
  "^[A-Za-z0-9_][A-Za-z0-9_.-]*$": "must be a name of letters, digits, '_', '.' and '-' (not starting with '.' or '-')",
  "^[A-Za-z_][A-Za-z0-9_.-]*$": "is not a valid name: use letters, digits, '_', '.' and '-', starting with a letter or '_'",
  "^[A-Za-z][A-Za-z0-9_-]*$": "is not a valid plugin name: use letters, digits, '_' and '-', starting with a letter",
  "^[0-9a-f]{32}$": "must be an MD5 checksum (32 lowercase hex digits)",
  "^[0-9a-f]{64}$": "must be a SHA-256 checksum (64 lowercase hex digits)"
};
function levenshtein(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] ?? 0;
}
function allowedProperties(e) {
  const parent = e.parentSchema;
  if (parent && typeof parent === "object" && "properties" in parent) {
    const props = parent.properties;
    if (props && typeof props === "object") return Object.keys(props);
  }
  return [];
}
function genericIssue(e, data) {
  const at = e.instancePath;
  const got = describe2(valueAt2(data, at));
  const params = e.params;
  switch (e.keyword) {
    case "required":
      return { path: `${at}/${pointerToken(String(params["missingProperty"]))}`, message: "is required" };
    case "type": {
      const t = params["type"];
      const types = (Array.isArray(t) ? t : String(t).split(",")).map(String);
      return { path: at || "/", message: `must be ${types.join(" or ")}, got ${got}` };
    }
    case "enum": {
      const allowed = Array.isArray(params["allowedValues"]) ? params["allowedValues"] : [];
      return { path: at || "/", message: `must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}, got ${got}` };
    }
    case "minItems":
      return { path: at || "/", message: `must have at least ${String(params["limit"])} item${params["limit"] === 1 ? "" : "s"}` };
    case "minProperties":
      return { path: at || "/", message: `must have at least ${String(params["limit"])} propert${params["limit"] === 1 ? "y" : "ies"}` };
    case "minLength":
      return { path: at || "/", message: params["limit"] === 1 ? "must not be empty" : `must be at least ${String(params["limit"])} characters long` };
    case "uniqueItems":
      return { path: at || "/", message: `must not contain duplicates (items ${String(params["j"])} and ${String(params["i"])} are equal)` };
    default:
      return { path: at || "/", message: `${e.message ?? "is invalid"}, got ${got}` };
  }
}
function schemaIssues(errors, data) {
  const out = [];
  for (const e of errors ?? []) {
    if (e.keyword === "if" || e.keyword === "propertyNames" || e.keyword === "anyOf" || e.keyword === "oneOf") continue;
    const propertyName = e.propertyName;
    if (propertyName !== void 0) {
      const pattern = e.params.pattern;
      const msg = e.keyword === "pattern" && pattern ? PATTERN_MESSAGES[pattern] : void 0;
      out.push({ path: `${e.instancePath}/${pointerToken(propertyName)}`, message: msg ?? `is not a valid name (${e.message ?? "invalid"})` });
      continue;
    }
    if (e.keyword === "additionalProperties") {
      const extra = e.params.additionalProperty;
      const allowed = allowedProperties(e);
      const best = allowed.map((p) => ({ p, d: levenshtein(extra.toLowerCase(), p.toLowerCase()) })).sort((x, y) => x.d - y.d)[0];
      const hint = best && best.d <= Math.max(2, Math.floor(extra.length / 3)) ? ` (did you mean "${best.p}"?)` : allowed.length ? ` (allowed: ${allowed.join(", ")})` : "";
      out.push({ path: `${e.instancePath}/${pointerToken(extra)}`, message: `is not an allowed property${hint}` });
      continue;
    }
    if (e.keyword === "pattern") {
      const msg = PATTERN_MESSAGES[e.params.pattern];
      if (msg) {
        out.push({ path: e.instancePath || "/", message: `${msg}, got ${describe2(valueAt2(data, e.instancePath))}` });
        continue;
      }
    }
    out.push(genericIssue(e, data));
  }
  const seen = /* @__PURE__ */ new Set();
  return out.filter((i) => {
    const key = `${i.path}\0${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function arrayAt(obj, key) {
  if (!isObject(obj) || !Object.hasOwn(obj, key)) return [];
  const v = obj[key];
  return Array.isArray(v) ? v : [];
}
function stringAt(obj, key) {
  if (!isObject(obj) || !Object.hasOwn(obj, key)) return void 0;
  const v = obj[key];
  return typeof v === "string" ? v : void 0;
}
function steeringParameters(config) {
  const steering = isObject(config) && Object.hasOwn(config, "steering") ? config["steering"] : void 0;
  const params = isObject(steering) && Object.hasOwn(steering, "parameters") ? steering["parameters"] : void 0;
  return isObject(params) ? params : {};
}
function staticValue(text, steering) {
  if (!text.includes("$")) return text;
  try {
    const v = evaluate(text, { dataset: 0, job: 0, jobs_total: 1, steering }, { keepUnresolved: true });
    return hasExpressions(v) ? null : v;
  } catch {
    return null;
  }
}
function duplicates(items, basePath, what, issues, scope = "") {
  const first = /* @__PURE__ */ new Map();
  items.forEach((item, i) => {
    const name = stringAt(item, "name");
    if (name === void 0) return;
    const prev = first.get(name);
    if (prev === void 0) first.set(name, i);
    else issues.push({ path: `${basePath}/${i}/name`, message: `duplicate ${what} name "${name}"${scope} (also ${basePath}/${prev}/name)` });
  });
}
var URL_SCHEMES = /* @__PURE__ */ new Set(["file", "http", "https", "sftp"]);
function checkDataEntries(entries, basePath, steering, issues) {
  entries.forEach((entry, i) => {
    const p = `${basePath}/${i}`;
    const local = stringAt(entry, "local");
    if (local !== void 0) {
      const v = staticValue(local, steering) ?? local;
      if (v.startsWith("/") || /(^|\/)\.\.(\/|$)/.test(v)) {
        issues.push({ path: `${p}/local`, message: `must be a relative path inside the task's scratch directory, got ${describe2(local)}` });
      }
    }
    const remote = stringAt(entry, "remote");
    if (remote !== void 0) {
      const v = staticValue(remote, steering);
      const m = v === null ? null : /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(v);
      if (m && !URL_SCHEMES.has((m[1] ?? "").toLowerCase())) {
        issues.push({
          path: `${p}/remote`,
          message: `has unsupported URL scheme "${m[1] ?? ""}" (use file://, http(s)://, sftp:// or a path relative to the site), got ${describe2(remote)}`
        });
      }
    }
  });
}
function checkRequirements(req, basePath, steering, issues) {
  if (!isObject(req)) return;
  const bounds = {
    cpu: { min: 1, integer: true, exclusive: false },
    gpu: { min: 0, integer: true, exclusive: false },
    memory: { min: 0, integer: false, exclusive: true },
    disk: { min: 0, integer: false, exclusive: false },
    time: { min: 0, integer: false, exclusive: true }
  };
  for (const [key, b] of Object.entries(bounds)) {
    const raw = Object.hasOwn(req, key) ? req[key] : void 0;
    if (typeof raw !== "string") continue;
    if (!hasExpressions(raw)) {
      const n2 = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n2)) {
        issues.push({ path: `${basePath}/${key}`, message: `must be a number or an expression such as "$eval(2*1024)", got ${describe2(raw)}` });
        continue;
      }
    }
    const refs = scanReferences(raw);
    if (refs.some((r) => r.kind !== "steering")) continue;
    const v = staticValue(raw, steering);
    if (v === null) continue;
    const n = Number(v);
    const bad = v.trim() === "" || !Number.isFinite(n) || b.integer && !Number.isInteger(n) || (b.exclusive ? n <= b.min : n < b.min);
    if (bad) {
      const want = `${b.integer ? "an integer" : "a number"} ${b.exclusive ? ">" : ">="} ${b.min}`;
      issues.push({ path: `${basePath}/${key}`, message: `must evaluate to ${want}, got ${describe2(v)} from ${describe2(raw)}` });
    }
  }
}
function eachString(root, visit, issues) {
  const stack = [{ v: root, p: "", d: 0 }];
  while (stack.length) {
    const { v, p, d } = stack.pop();
    if (typeof v === "string") visit(v, p);
    else if (v !== null && typeof v === "object") {
      if (d > 100) {
        issues.push({ path: p || "/", message: "is nested too deeply (more than 100 levels)" });
        continue;
      }
      const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i];
        stack.push({ v: x, p: `${p}/${pointerToken(k)}`, d: d + 1 });
      }
    }
  }
}
function checkExpressionsEverywhere(config, steering, issues) {
  eachString(
    config,
    (s, p) => {
      if (!s.includes("$")) return;
      for (const e of checkExpressions(s)) issues.push({ path: p, message: `invalid expression: ${e.message}` });
      const missing = /* @__PURE__ */ new Set();
      for (const r of scanReferences(s)) {
        if (r.kind === "steering" && !Object.hasOwn(steering, r.name) && !missing.has(r.name)) {
          missing.add(r.name);
          issues.push({ path: p, message: `refers to undefined steering parameter "${r.name}" (at position ${r.position})` });
        }
      }
    },
    issues
  );
}
function findCycles(tasks) {
  const index = /* @__PURE__ */ new Map();
  tasks.forEach((t, i) => {
    const name = stringAt(t, "name");
    if (name !== void 0 && !index.has(name)) index.set(name, i);
  });
  const edges = (name) => {
    const i = index.get(name);
    return arrayAt(i === void 0 ? void 0 : tasks[i], "depends").filter((d) => typeof d === "string" && index.has(d));
  };
  const color = /* @__PURE__ */ new Map();
  const found = [];
  const seen = /* @__PURE__ */ new Set();
  for (const start of index.keys()) {
    if (color.get(start)) continue;
    const stack = [{ node: start, next: 0, out: edges(start) }];
    color.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.next >= top.out.length) {
        color.set(top.node, 2);
        stack.pop();
        continue;
      }
      const dep = top.out[top.next++];
      const c = color.get(dep) ?? 0;
      if (c === 0) {
        color.set(dep, 1);
        stack.push({ node: dep, next: 0, out: edges(dep) });
      } else if (c === 1) {
        const from = stack.findIndex((f) => f.node === dep);
        const nodes = stack.slice(from).map((f) => f.node);
        const minAt = nodes.reduce((m, n, i) => nodes[m] <= n ? m : i, 0);
        const rotated = [...nodes.slice(minAt), ...nodes.slice(0, minAt)];
        const key = rotated.join("\0");
        if (!seen.has(key)) {
          seen.add(key);
          found.push({ cycle: [...rotated, rotated[0]], index: index.get(rotated[0]) ?? 0 });
        }
      }
    }
  }
  return found;
}
function semanticIssues(config) {
  const issues = [];
  if (!isObject(config)) return issues;
  const steering = steeringParameters(config);
  const tasks = arrayAt(config, "tasks");
  duplicates(tasks, "/tasks", "task", issues);
  const taskNames = new Set(tasks.map((t) => stringAt(t, "name")).filter((n) => n !== void 0));
  const metaprojects = arrayAt(isObject(config["steering"]) ? config["steering"] : void 0, "metaprojects");
  duplicates(metaprojects, "/steering/metaprojects", "metaproject", issues);
  const metaNames = new Set(metaprojects.map((m) => stringAt(m, "name")).filter((n) => n !== void 0));
  metaprojects.forEach((m, i) => {
    const url = stringAt(m, "url");
    const v = url === void 0 ? null : staticValue(url, steering);
    if (url !== void 0 && v !== null && !/^(https?|file):\/\//i.test(v)) {
      issues.push({ path: `/steering/metaprojects/${i}/url`, message: `must be an https://, http:// or file:// URL, got ${describe2(url)}` });
    }
  });
  checkDataEntries(arrayAt(config["steering"], "data"), "/steering/data", steering, issues);
  tasks.forEach((task, ti) => {
    const tp = `/tasks/${ti}`;
    const name = stringAt(task, "name");
    arrayAt(task, "depends").forEach((dep, di) => {
      if (typeof dep !== "string") return;
      if (!taskNames.has(dep)) issues.push({ path: `${tp}/depends/${di}`, message: `refers to unknown task "${dep}"` });
    });
    if (isObject(task)) checkRequirements(task["requirements"], `${tp}/requirements`, steering, issues);
    checkDataEntries(arrayAt(task, "data"), `${tp}/data`, steering, issues);
    const trays = arrayAt(task, "trays");
    duplicates(trays, `${tp}/trays`, "tray", issues, name ? ` in task "${name}"` : "");
    trays.forEach((tray, yi) => {
      const yp = `${tp}/trays/${yi}`;
      const meta = stringAt(tray, "metaproject");
      if (meta !== void 0 && !meta.includes("$") && !metaNames.has(meta)) {
        issues.push({ path: `${yp}/metaproject`, message: `refers to unknown metaproject "${meta}" (define it in steering.metaprojects)` });
      }
      const modules = arrayAt(tray, "modules");
      const trayName = stringAt(tray, "name");
      duplicates(modules, `${yp}/modules`, "module", issues, trayName ? ` in tray "${trayName}"` : "");
      modules.forEach((mod, mi) => {
        const mp = `${yp}/modules/${mi}`;
        const cls = stringAt(mod, "class");
        const src = stringAt(mod, "src");
        if (cls !== void 0 && isBuiltinModuleClass(cls)) {
          if (src !== void 0) issues.push({ path: `${mp}/src`, message: `is only for external modules; class "${cls}" is built in` });
        } else if (cls !== void 0 && src === void 0) {
          issues.push({ path: `${mp}/src`, message: `is required for external module class "${cls}" (an https:// URL)` });
        }
        if (src !== void 0) {
          const v = staticValue(src, steering);
          if (v !== null && !/^https:\/\/[^/\s]+/i.test(v)) {
            issues.push({ path: `${mp}/src`, message: `must be an https:// URL (external modules are only fetched over https), got ${describe2(src)}` });
          }
        }
      });
    });
  });
  for (const { cycle, index } of findCycles(tasks)) {
    issues.push({ path: `/tasks/${index}/depends`, message: `dependency cycle: ${cycle.join(" \u2192 ")}` });
  }
  const retry = config["retry"];
  arrayAt(retry, "rules").forEach((rule, ri) => {
    const rp = `/retry/rules/${ri}`;
    const match = stringAt(rule, "match");
    if (match !== void 0) {
      try {
        new RegExp(match);
      } catch (e) {
        issues.push({ path: `${rp}/match`, message: `is not a valid regular expression: ${e.message}` });
      }
    }
    const action = stringAt(rule, "action");
    if (isObject(rule) && Object.hasOwn(rule, "bump") && action !== void 0 && action !== "bump") {
      issues.push({ path: `${rp}/bump`, message: `is only used with action "bump", not "${action}"` });
    }
  });
  checkExpressionsEverywhere(config, steering, issues);
  return issues;
}
function summarize(config) {
  let trays = 0;
  let modules = 0;
  for (const t of config.tasks) {
    trays += t.trays.length;
    for (const y of t.trays) modules += y.modules.length;
  }
  return { tasks: config.tasks.length, trays, modules };
}
function validateDatasetConfig(config) {
  const validate = datasetSchemaValidator();
  const schemaOk = validate(config);
  const issues = schemaOk ? [] : schemaIssues(validate.errors, config);
  issues.push(...semanticIssues(config));
  if (issues.length > 0) return { ok: false, issues };
  const valid = config;
  return { ok: true, config: valid, summary: summarize(valid) };
}
function canonicalJson(value) {
  const enc = (v, depth) => {
    if (depth > 1e3) throw new ValidationError("value nested too deeply to hash");
    if (v === null || typeof v !== "object") {
      if (typeof v === "bigint") return v.toString();
      if (v === void 0 || typeof v === "function" || typeof v === "symbol") return "null";
      return JSON.stringify(v);
    }
    if (Array.isArray(v)) return `[${v.map((x) => enc(x, depth + 1)).join(",")}]`;
    const obj = v;
    const keys = Object.keys(obj).filter((k) => obj[k] !== void 0 && typeof obj[k] !== "function" && typeof obj[k] !== "symbol").sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${enc(obj[k], depth + 1)}`).join(",")}}`;
  };
  return enc(value, 0);
}
function configHash(config) {
  return (0, import_node_crypto4.createHash)("sha256").update(canonicalJson(config), "utf8").digest("hex");
}

// packages/tray/src/server.ts
var import_node_fs10 = __toESM(require("node:fs"));

// packages/tray/src/context.ts
var import_node_fs7 = __toESM(require("node:fs"));
var import_node_path6 = __toESM(require("node:path"));
var DEFAULT_FETCH_MAX_BYTES = 16 * 1024 * 1024;
function trayConfigOf(config) {
  const t = config.tray;
  return { ...t, fetch_max_bytes: t.fetch_max_bytes ?? DEFAULT_FETCH_MAX_BYTES };
}
async function caller(ctx, rpc, role) {
  const user = await authenticate(ctx.db, rpc.token);
  requireRole(user, role, rpc.method || "this method");
  return user;
}
async function controllableDataset(db, user, datasetId) {
  requireRole(user, "manager", "controlling a dataset");
  const ds = await getDatasetOwner(db, datasetId);
  if (!hasRole(user.role, "admin") && ds.owner_id !== user.id) {
    throw new ForbiddenError(`dataset ${datasetId} belongs to another user: only its owner or an admin may change it`);
  }
  return ds;
}
function trayVersion() {
  try {
    const pkg = JSON.parse(import_node_fs7.default.readFileSync(import_node_path6.default.join(__dirname, "..", "package.json"), "utf8"));
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

// packages/tray/src/auth.ts
async function checkCredentials(ctx, username, password) {
  const row = await findUser(ctx.db, username);
  if (row && row.source !== "ldap") {
    const ok = await verifyPassword(password, row.password_hash);
    if (!ok || Boolean(row.disabled) || !isRole(row.role)) return null;
    return { id: Number(row.id), username: row.username, role: row.role, source: "local" };
  }
  if (!ctx.ldap) {
    await verifyPassword(password, null);
    return null;
  }
  if (!await ctx.ldap.verify(username, password)) return null;
  if (row) {
    if (Boolean(row.disabled) || !isRole(row.role)) return null;
    return { id: Number(row.id), username: row.username, role: row.role, source: "ldap" };
  }
  let created;
  try {
    created = await createUser(ctx.db, { username, role: ctx.tray.ldap_default_role, source: "ldap" });
    ctx.logger.info("LDAP user created on first login", { username, role: created.role });
  } catch {
    created = await findUser(ctx.db, username);
    if (!created || !isRole(created.role)) return null;
  }
  return { id: Number(created.id), username, role: created.role, source: "ldap" };
}
function authMethods(ctx) {
  return {
    "auth.login": {
      handler: async (p, rpc) => {
        ctx.limiter.check(p.username, rpc.ip);
        const user = await checkCredentials(ctx, p.username, p.password);
        if (!user) {
          ctx.limiter.fail(p.username, rpc.ip);
          ctx.logger.info("login refused", { username: p.username, ip: rpc.ip });
          throw new UnauthenticatedError("invalid user name or password");
        }
        ctx.limiter.succeed(p.username, rpc.ip);
        const t = await issueToken(ctx.db, user.id, ctx.tray.token_ttl);
        ctx.logger.info("login", { username: user.username, role: user.role, source: user.source, ip: rpc.ip });
        return { token: t.token, expires: new Date(t.expiresAt).toISOString(), username: user.username, role: user.role };
      }
    },
    "auth.logout": {
      handler: async (_p, rpc) => {
        const user = await caller(ctx, rpc, "viewer");
        await revokeToken(ctx.db, rpc.token);
        ctx.logger.info("logout", { username: user.username });
        return { ok: true };
      }
    },
    "auth.whoami": {
      handler: async (_p, rpc) => {
        const user = await caller(ctx, rpc, "viewer");
        return { username: user.username, role: user.role, source: user.source };
      }
    }
  };
}

// packages/tray/src/control.ts
async function idsByStatus(trx, scope, statuses) {
  const q = trx("task").select("id", "status").where("dataset_id", scope.datasetId).whereIn("status", statuses).orderBy("id");
  if (scope.jobId !== void 0) q.andWhere("job_id", scope.jobId);
  const rows = await q;
  const out = /* @__PURE__ */ new Map();
  for (const r of rows) {
    let list = out.get(r.status);
    if (!list) out.set(r.status, list = []);
    list.push(Number(r.id));
  }
  return out;
}
async function suspendTasks(trx, scope, actor, reason) {
  let changed = 0;
  for (let round = 0; round < 5; round++) {
    const groups = await idsByStatus(trx, scope, SUSPENDABLE);
    if (groups.size === 0) break;
    for (const [from, ids] of groups) {
      changed += (await transition(trx, { taskIds: ids, from, to: TaskStatus.SUSPENDED, by: "tray", actor, reason, strict: false })).length;
    }
  }
  return changed;
}
async function resetTasks(trx, scope, from, options) {
  const groups = await idsByStatus(trx, scope, from);
  const reset = [];
  for (const [status, ids] of groups) {
    const by = status === TaskStatus.ERROR || status === TaskStatus.EVICTED ? "core" : "tray";
    reset.push(
      ...await transition(trx, {
        taskIds: ids,
        from: status,
        to: TaskStatus.RESET,
        by,
        actor: options.actor,
        reason: options.reason,
        isAdmin: options.isAdmin,
        set: options.set,
        strict: false
      })
    );
  }
  const settled = await settleResetTasks(trx, reset, options.actor, options.reason);
  return { changed: reset.length, waiting: settled.waiting.length, idle: settled.idle.length };
}
var RESET_COUNTERS = { failures: 0, evictions: 0, submit_errors: 0, next_retry_at: null };

// packages/tray/src/datasets.ts
function assertLive(ds) {
  if (ds.status === DatasetStatus.OBSOLETE || ds.status === DatasetStatus.DELETED) {
    throw new ConflictError(`dataset ${ds.id} is ${ds.status}: it can no longer be changed`);
  }
}
async function setDatasetStatus(trx, id, from, to, action, actor, reason) {
  await trx("dataset").where({ id }).update({ status: to, updated_at: now() });
  await recordHistory(trx, { entity: "dataset", entityId: id, datasetId: id, action, from, to, actor, reason });
}
function why(outcome, verb, reason) {
  return `${outcome.changed} tasks ${verb}${reason ? `: ${reason}` : ""}`;
}
async function suspendDataset(ctx, user, datasetId, reason, obsolete = false) {
  const actor = actorOf(user);
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, datasetId);
    assertLive(ds);
    const changed = await suspendTasks(trx, { datasetId }, actor, reason ?? null);
    const outcome = { changed, waiting: 0, idle: 0 };
    const to = obsolete ? DatasetStatus.OBSOLETE : DatasetStatus.SUSPENDED;
    await setDatasetStatus(trx, datasetId, ds.status, to, obsolete ? "obsolete" : "suspend", actor, why(outcome, "suspended", reason));
    ctx.logger.info(`dataset ${obsolete ? "obsoleted" : "suspended"}`, { dataset: datasetId, tasks: changed, by: user.username });
    return { dataset_id: datasetId, status: to, ...outcome };
  });
}
async function resetDataset(ctx, user, datasetId, mode, options = {}) {
  const actor = actorOf(user);
  const isAdmin = hasRole(user.role, "admin");
  if (options.includeOk && !isAdmin) {
    throw new ForbiddenError("resetting OK tasks (include_ok) needs role admin");
  }
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, datasetId);
    assertLive(ds);
    const from = mode === "resume" ? [TaskStatus.SUSPENDED] : [TaskStatus.FAILED, TaskStatus.ERROR, TaskStatus.SUSPENDED, ...options.includeOk ? [TaskStatus.OK] : []];
    if (options.includeOk) await suspendTasks(trx, { datasetId }, actor, options.reason ?? null);
    const outcome = await resetTasks(trx, { datasetId }, from, {
      actor,
      reason: options.reason ?? null,
      isAdmin,
      set: mode === "reset" ? RESET_COUNTERS : void 0
    });
    await setDatasetStatus(trx, datasetId, ds.status, DatasetStatus.PROCESSING, mode, actor, why(outcome, mode === "resume" ? "resumed" : "reset", options.reason));
    ctx.logger.info(`dataset ${mode}`, { dataset: datasetId, tasks: outcome.changed, by: user.username });
    return { dataset_id: datasetId, status: DatasetStatus.PROCESSING, ...outcome };
  });
}
async function gridNames(trx, datasetId) {
  const rows = await trx("dataset_grid as dg").join("grid as g", "g.id", "dg.grid_id").where("dg.dataset_id", datasetId).orderBy("g.name").select("g.name");
  return rows.map((r) => r.name);
}
async function gridId(trx, name) {
  const g = await trx("grid").select("id").where({ name }).first();
  if (!g) throw new NotFoundError(`no grid ${JSON.stringify(name)}`);
  return Number(g.id);
}
function datasetMethods(ctx) {
  return {
    "dataset.list": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { datasets: await listDatasets(ctx.db, p) };
      }
    },
    "dataset.get": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { dataset: await getDataset(ctx.db, p.dataset_id) };
      }
    },
    "dataset.config": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return getDatasetConfig(ctx.db, p.dataset_id);
      }
    },
    "dataset.status": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return datasetStatus(ctx.db, p.dataset_id);
      }
    },
    "dataset.stats": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { stats: await datasetStats(ctx.db, p.dataset_id) };
      }
    },
    "dataset.suspend": {
      handler: async (p, rpc) => suspendDataset(ctx, await caller(ctx, rpc, "manager"), p.dataset_id, p.reason)
    },
    "dataset.obsolete": {
      handler: async (p, rpc) => suspendDataset(ctx, await caller(ctx, rpc, "manager"), p.dataset_id, p.reason, true)
    },
    "dataset.resume": {
      handler: async (p, rpc) => resetDataset(ctx, await caller(ctx, rpc, "manager"), p.dataset_id, "resume", { reason: p.reason })
    },
    "dataset.reset": {
      handler: async (p, rpc) => resetDataset(ctx, await caller(ctx, rpc, "manager"), p.dataset_id, "reset", { includeOk: p.include_ok, reason: p.reason })
    },
    "dataset.set_priority": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "manager");
        return withTransaction(ctx.db, async (trx) => {
          await controllableDataset(trx, user, p.dataset_id);
          const before = await trx("dataset").select("priority").where({ id: p.dataset_id }).first();
          await trx("dataset").where({ id: p.dataset_id }).update({ priority: p.priority, updated_at: now() });
          await recordHistory(trx, {
            entity: "dataset",
            entityId: p.dataset_id,
            datasetId: p.dataset_id,
            action: "priority",
            from: String(before.priority),
            to: String(p.priority),
            actor: actorOf(user),
            reason: p.reason ?? null
          });
          ctx.logger.info("dataset priority changed", { dataset: p.dataset_id, priority: p.priority, by: user.username });
          return { dataset_id: p.dataset_id, priority: p.priority };
        });
      }
    },
    "dataset.add_grid": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "manager");
        return withTransaction(ctx.db, async (trx) => {
          await controllableDataset(trx, user, p.dataset_id);
          const gid = await gridId(trx, p.grid);
          const exists = await trx("dataset_grid").where({ dataset_id: p.dataset_id, grid_id: gid }).first();
          if (!exists) {
            await trx("dataset_grid").insert({ dataset_id: p.dataset_id, grid_id: gid });
            await recordHistory(trx, { entity: "dataset", entityId: p.dataset_id, datasetId: p.dataset_id, action: "add_grid", actor: actorOf(user), reason: p.grid });
          }
          return { dataset_id: p.dataset_id, grids: await gridNames(trx, p.dataset_id) };
        });
      }
    },
    "dataset.remove_grid": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "manager");
        return withTransaction(ctx.db, async (trx) => {
          await controllableDataset(trx, user, p.dataset_id);
          const gid = await gridId(trx, p.grid);
          const n = await trx("dataset_grid").where({ dataset_id: p.dataset_id, grid_id: gid }).delete();
          if (n === 0) throw new NotFoundError(`grid ${JSON.stringify(p.grid)} is not assigned to dataset ${p.dataset_id}`);
          await recordHistory(trx, { entity: "dataset", entityId: p.dataset_id, datasetId: p.dataset_id, action: "remove_grid", actor: actorOf(user), reason: p.grid });
          return { dataset_id: p.dataset_id, grids: await gridNames(trx, p.dataset_id) };
        });
      }
    }
  };
}

// packages/tray/src/grids.ts
function isDuplicate(e) {
  const code = e.code ?? "";
  return code === "ER_DUP_ENTRY" || code.startsWith("SQLITE_CONSTRAINT");
}
function gridMethods(ctx) {
  return {
    "grid.list": {
      handler: async (_p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { grids: await listGrids(ctx.db) };
      }
    },
    "grid.add": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "admin");
        try {
          await ctx.db("grid").insert({
            name: p.name,
            plugin: p.plugin,
            capabilities: JSON.stringify(p.capabilities ?? {}),
            status: p.status ?? "enabled",
            created_at: now()
          });
        } catch (e) {
          if (isDuplicate(e)) throw new ConflictError(`grid ${JSON.stringify(p.name)} already exists`);
          throw e;
        }
        const grid = await getGrid(ctx.db, p.name);
        await recordHistory(ctx.db, { entity: "grid", entityId: grid.id, action: "add", to: grid.status, actor: actorOf(user), reason: `plugin ${grid.plugin}` });
        ctx.logger.info("grid added", { grid: grid.name, plugin: grid.plugin, by: user.username });
        return { grid };
      }
    },
    "grid.set_status": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "admin");
        const before = await getGrid(ctx.db, p.name);
        await ctx.db("grid").where({ id: before.id }).update({ status: p.status });
        await recordHistory(ctx.db, { entity: "grid", entityId: before.id, action: "set_status", from: before.status, to: p.status, actor: actorOf(user) });
        ctx.logger.info("grid status changed", { grid: p.name, status: p.status, by: user.username });
        return { grid: await getGrid(ctx.db, p.name) };
      }
    },
    "grid.remove": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "admin");
        const grid = await getGrid(ctx.db, p.name);
        await withTransaction(ctx.db, async (trx) => {
          const active = await trx("task").where({ grid_id: grid.id }).whereIn("status", GRID_ACTIVE_STATUSES).count({ n: "*" }).first();
          if (Number(active.n) > 0) {
            throw new ConflictError(`grid ${JSON.stringify(p.name)} still has ${Number(active.n)} queued or running tasks: disable it and wait, or suspend them`);
          }
          await trx("task").where({ grid_id: grid.id }).update({ grid_id: null });
          await trx("node").where({ grid_id: grid.id }).update({ grid_id: null });
          await trx("grid").where({ id: grid.id }).delete();
          await recordHistory(trx, { entity: "grid", entityId: grid.id, action: "remove", from: grid.status, actor: actorOf(user) });
        });
        ctx.logger.info("grid removed", { grid: p.name, by: user.username });
        return { removed: p.name };
      }
    }
  };
}

// packages/tray/src/jobs.ts
function requirementColumns(r) {
  if (!r) return {};
  const out = {};
  if (r.cpu !== void 0) out.req_cpu = r.cpu;
  if (r.gpu !== void 0) out.req_gpu = r.gpu;
  if (r.memory !== void 0) out.req_memory = r.memory;
  if (r.disk !== void 0) out.req_disk = r.disk;
  if (r.time !== void 0) out.req_time = r.time;
  if (r.site !== void 0) out.req_site = r.site;
  return out;
}
async function jobRow(trx, datasetId, jobIndex) {
  const row = await trx("job").select("id").where({ dataset_id: datasetId, job_index: jobIndex }).first();
  if (!row) throw new NotFoundError(`no job ${jobIndex} in dataset ${datasetId}`);
  return { id: Number(row.id) };
}
async function jobStatus(trx, jobId) {
  const rows = await trx("task").select("status").where({ job_id: jobId });
  return deriveJobStatus(rows.map((r) => r.status));
}
async function controlJob(ctx, user, p, action) {
  const actor = actorOf(user);
  const isAdmin = hasRole(user.role, "admin");
  if (p.include_ok && !isAdmin) throw new ForbiddenError("resetting OK tasks (include_ok) needs role admin");
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, p.dataset_id);
    assertLive(ds);
    const job = await jobRow(trx, p.dataset_id, p.job_index);
    const scope = { datasetId: p.dataset_id, jobId: job.id };
    const before = await jobStatus(trx, job.id);
    const reason = p.reason ?? null;
    let outcome;
    if (action === "suspend") {
      outcome = { changed: await suspendTasks(trx, scope, actor, reason), waiting: 0, idle: 0 };
    } else {
      const from = action === "resume" ? [TaskStatus.SUSPENDED] : [TaskStatus.FAILED, TaskStatus.ERROR, TaskStatus.SUSPENDED, ...p.include_ok ? [TaskStatus.OK] : []];
      if (p.include_ok) await suspendTasks(trx, scope, actor, reason);
      const set = action === "reset" ? { ...RESET_COUNTERS, ...requirementColumns(p.requirements) } : void 0;
      outcome = await resetTasks(trx, scope, from, { actor, reason, isAdmin, set });
      if (outcome.changed > 0 && [DatasetStatus.SUSPENDED, DatasetStatus.COMPLETE, DatasetStatus.ERRORS].includes(ds.status)) {
        await trx("dataset").where({ id: ds.id }).update({ status: DatasetStatus.PROCESSING, updated_at: now() });
        await recordHistory(trx, { entity: "dataset", entityId: ds.id, datasetId: ds.id, action, from: ds.status, to: DatasetStatus.PROCESSING, actor, reason: `job ${p.job_index} ${action}` });
      }
    }
    const after = await jobStatus(trx, job.id);
    await trx("job").where({ id: job.id }).update({ status: after, status_changed_at: now() });
    const req = p.requirements ? ` requirements ${JSON.stringify(p.requirements)}` : "";
    await recordHistory(trx, {
      entity: "job",
      entityId: job.id,
      datasetId: p.dataset_id,
      action,
      from: before,
      to: after,
      actor,
      reason: `${outcome.changed} tasks${req}${p.reason ? `: ${p.reason}` : ""}`
    });
    ctx.logger.info(`job ${action}`, { dataset: p.dataset_id, job: p.job_index, tasks: outcome.changed, by: user.username });
    return { dataset_id: p.dataset_id, job_index: p.job_index, status: after, ...outcome };
  });
}
function jobMethods(ctx) {
  return {
    "job.list": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { jobs: await listJobs(ctx.db, p.dataset_id, p) };
      }
    },
    "job.get": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return getJob(ctx.db, p.dataset_id, p.job_index);
      }
    },
    "job.suspend": { handler: async (p, rpc) => controlJob(ctx, await caller(ctx, rpc, "manager"), p, "suspend") },
    "job.resume": { handler: async (p, rpc) => controlJob(ctx, await caller(ctx, rpc, "manager"), p, "resume") },
    "job.reset": { handler: async (p, rpc) => controlJob(ctx, await caller(ctx, rpc, "manager"), p, "reset") },
    "task.get": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { task: await getTask(ctx.db, p.task_id) };
      }
    },
    "task.logs": {
      handler: async (p, rpc) => {
        await caller(ctx, rpc, "viewer");
        return { logs: await getTaskLogs(ctx.db, p.task_id, p.name) };
      }
    }
  };
}

// packages/tray/src/ldap.ts
var import_node_fs8 = __toESM(require("node:fs"));
var import_ldapts = require("/work/main/node_modules/ldapts/dist/index.cjs");
function escapeDnValue(value) {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    const code = c.charCodeAt(0);
    if (code === 0) out += "\\00";
    else if (',+"\\<>;='.includes(c)) out += `\\${c}`;
    else if (i === 0 && (c === " " || c === "#") || i === value.length - 1 && c === " ") out += `\\${c}`;
    else if (code < 32 || code === 127) out += `\\${code.toString(16).padStart(2, "0")}`;
    else out += c;
  }
  return out;
}
function bindDn(template, username) {
  return template.split("{username}").join(escapeDnValue(username));
}
var LdapUnavailableError = class extends FirnError {
};
var LdapAuthenticator = class {
  constructor(options) {
    this.options = options;
    if (options.caFile) this.ca = import_node_fs8.default.readFileSync(options.caFile);
  }
  ca;
  /** true when the bind succeeds, false for invalid credentials; LdapUnavailableError otherwise. */
  async verify(username, password) {
    if (!password || !username) return false;
    const client2 = new import_ldapts.Client({
      url: this.options.url,
      timeout: this.options.timeoutMs ?? 1e4,
      connectTimeout: this.options.timeoutMs ?? 1e4,
      ...this.ca ? { tlsOptions: { ca: this.ca } } : {}
    });
    try {
      await client2.bind(bindDn(this.options.bindDnTemplate, username), password);
      return true;
    } catch (e) {
      if (e instanceof import_ldapts.InvalidCredentialsError) return false;
      const err = coerceError(e);
      const code = e.code;
      if (code === 32 || code === 34 || code === 49) return false;
      this.options.logger.warn("LDAP bind failed", { url: this.options.url, error: err.message });
      throw new LdapUnavailableError("LDAP server unavailable: try again later");
    } finally {
      await client2.unbind().catch(() => void 0);
    }
  }
};

// packages/tray/src/login-limiter.ts
var LoginLimiter = class {
  constructor(attempts, windowSeconds, options = {}) {
    this.attempts = attempts;
    this.windowSeconds = windowSeconds;
    this.maxKeys = options.maxKeys ?? 1e5;
    if (options.clock) this.clock = options.clock;
  }
  failures = /* @__PURE__ */ new Map();
  /** Bound on tracked pairs so that a flood of random names cannot grow memory without end. */
  maxKeys;
  clock = () => Date.now();
  key(username, ip) {
    return `${username}\0${ip}`;
  }
  recent(key) {
    const cutoff = this.clock() - this.windowSeconds * 1e3;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }
  /** Throws RateLimitedError when the pair has used up its failures. */
  check(username, ip) {
    const list = this.recent(this.key(username, ip));
    if (list.length >= this.attempts) {
      const retry = Math.max(1, Math.ceil((list[0] + this.windowSeconds * 1e3 - this.clock()) / 1e3));
      throw new RateLimitedError(`too many failed logins for this user from this address: try again in ${retry} s`, { retry_after: retry });
    }
  }
  fail(username, ip) {
    const key = this.key(username, ip);
    const list = this.recent(key);
    list.push(this.clock());
    this.failures.delete(key);
    this.failures.set(key, list);
    while (this.failures.size > this.maxKeys) {
      const oldest = this.failures.keys().next().value;
      this.failures.delete(oldest);
    }
  }
  succeed(username, ip) {
    this.failures.delete(this.key(username, ip));
  }
  /** Pairs currently tracked (for tests and metrics). */
  get size() {
    return this.failures.size;
  }
};

// packages/tray/src/submit.ts
var import_node_fs9 = __toESM(require("node:fs"));

// packages/tray/src/external-modules.ts
var import_node_https2 = __toESM(require("node:https"));
function checkModuleUrl(src, path9) {
  let url;
  try {
    url = new URL(src);
  } catch {
    throw new ValidationError("invalid external module", [{ path: path9, message: `is not a valid URL: ${JSON.stringify(src.slice(0, 200))}` }]);
  }
  if (url.protocol !== "https:") {
    throw new ValidationError("invalid external module", [{ path: path9, message: `must be an https:// URL (got ${url.protocol}//): modules are only fetched over TLS` }]);
  }
  return url;
}
function fetchModule(src, options, path9 = "src", redirects = 0) {
  const url = checkModuleUrl(src, path9);
  const where = `${url.origin}${url.pathname}`;
  return new Promise((resolve, reject) => {
    const fail = (message) => reject(new ValidationError("external module could not be fetched", [{ path: path9, message }]));
    const req = import_node_https2.default.get(url, { timeout: options.timeoutMs, ...options.ca ? { ca: options.ca } : {}, headers: { "user-agent": "firn-tray" } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= 5) return fail(`too many redirects fetching ${where}`);
        const next = new URL(res.headers.location, url).toString();
        fetchModule(next, options, path9, redirects + 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        return fail(`fetching ${where} answered HTTP ${status}`);
      }
      const declared = Number(res.headers["content-length"] ?? NaN);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        res.destroy();
        return fail(`${where} is ${declared} bytes, more than the ${options.maxBytes} allowed ([tray] fetch_max_bytes)`);
      }
      const chunks = [];
      let size = 0;
      res.on("data", (c) => {
        size += c.length;
        if (size > options.maxBytes) {
          res.destroy();
          fail(`${where} is more than the ${options.maxBytes} bytes allowed ([tray] fetch_max_bytes)`);
          return;
        }
        chunks.push(c);
      });
      res.on("error", (e) => fail(`fetching ${where} failed: ${e.message}`));
      res.on("end", () => {
        if (size > options.maxBytes) return;
        const buf = Buffer.concat(chunks);
        const content = buf.toString("utf8");
        if (!Buffer.from(content, "utf8").equals(buf)) return fail(`${where} is not UTF-8 text (external modules are scripts)`);
        const sums = checksumBuffer(buf);
        resolve({ content, md5: sums.md5, sha256: sums.sha256, size: sums.size });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`timed out after ${options.timeoutMs} ms`)));
    req.on("error", (e) => {
      options.logger?.warn("external module fetch failed", { url: where, error: coerceError(e).message });
      fail(`fetching ${where} failed: ${coerceError(e).message}`);
    });
  });
}

// packages/tray/src/submit.ts
var REQ_KEYS = ["cpu", "gpu", "memory", "disk", "time"];
function configPath(...parts) {
  return `/params/config/${parts.join("/")}`;
}
function requirementValue(key, raw, evalText, where) {
  if (raw === void 0) return defaultRequirements[key];
  let n;
  if (typeof raw === "number") n = raw;
  else {
    const text = evalText(raw).trim();
    n = text === "" ? NaN : Number(text);
    if (!Number.isFinite(n)) throw new ValidationError("invalid requirement", [{ path: where, message: `must evaluate to a number, got ${JSON.stringify(text.slice(0, 80))}` }]);
  }
  if (key === "cpu" || key === "gpu") {
    if (!Number.isInteger(n) || n < (key === "cpu" ? 1 : 0)) {
      throw new ValidationError("invalid requirement", [{ path: where, message: `must be an integer \u2265 ${key === "cpu" ? 1 : 0}, got ${n}` }]);
    }
    return n;
  }
  if (n < 0 || n === 0 && key !== "disk" || n > 2e9) {
    throw new ValidationError("invalid requirement", [{ path: where, message: `must be ${key === "disk" ? "\u2265 0" : "> 0"} and at most 2e9, got ${n}` }]);
  }
  return Math.ceil(n);
}
function resolveRequirements(spec, taskIndex, evalText) {
  const ev = evalText ?? ((s) => s);
  const out = { site: null };
  for (const k of REQ_KEYS) out[k] = requirementValue(k, spec[k], ev, configPath("tasks", taskIndex, "requirements", k));
  if (spec.site !== void 0) {
    const site = ev(spec.site);
    if (site.length === 0 || site.length > 190) {
      throw new ValidationError("invalid requirement", [{ path: configPath("tasks", taskIndex, "requirements", "site"), message: "must be 1 to 190 characters" }]);
    }
    out.site = site;
  }
  return out;
}
function isConstant(spec) {
  return REQ_KEYS.every((k) => typeof spec[k] !== "string") && (spec.site === void 0 || !spec.site.includes("$"));
}
function jobEvaluator(env, job, args, task) {
  return (s) => {
    try {
      return evaluate(s, { dataset: env.datasetId, job, jobs_total: env.jobsTotal, steering: env.steering, args: args ?? {}, task: task.name });
    } catch (e) {
      if (e instanceof ExpressionError) {
        throw new ValidationError("invalid requirement", [{ path: configPath("tasks", task.index, "requirements"), message: `job ${job}: ${e.message}` }]);
      }
      throw e;
    }
  };
}
function rowsPerInsert(db, columns) {
  return isMysql(db) ? Math.max(1, Math.floor(6e4 / columns)) : Math.max(1, Math.floor(32e3 / columns));
}
async function insertRows(trx, table, columns, rows, perStatement) {
  if (rows.length === 0) return;
  const size = perStatement ?? rowsPerInsert(trx, columns.length);
  const one = `(${columns.map(() => "?").join(", ")})`;
  const head = `INSERT INTO ${table} (${columns.join(", ")}) VALUES `;
  for (let i = 0; i < rows.length; i += size) {
    const part = rows.slice(i, i + size);
    const bindings = new Array(part.length * columns.length);
    let k = 0;
    for (const r of part) for (const v of r) bindings[k++] = v;
    await trx.raw(head + new Array(part.length).fill(one).join(", "), bindings);
  }
}
var JOB_COLUMNS = ["dataset_id", "job_index", "status", "run_id", "args", "status_changed_at"];
var TASK_COLUMNS2 = [
  "dataset_id",
  "job_id",
  "task_rel_id",
  "task_index",
  "name",
  "status",
  "status_changed_at",
  "req_cpu",
  "req_gpu",
  "req_memory",
  "req_disk",
  "req_time",
  "req_site"
];
async function createJobsAndTasks(trx, env, plans, jobs) {
  if (jobs.length === 0) return /* @__PURE__ */ new Map();
  const t = now();
  const jobRows = jobs.map((j) => [env.datasetId, j.index, JobStatus.PROCESSING, j.runId ?? null, j.args === void 0 ? null : JSON.stringify(j.args), t]);
  await insertRows(trx, "job", JOB_COLUMNS, jobRows);
  let lo = Infinity, hi = -Infinity;
  for (const j of jobs) {
    if (j.index < lo) lo = j.index;
    if (j.index > hi) hi = j.index;
  }
  const idRows = await trx("job").select("id", "job_index").where("dataset_id", env.datasetId).andWhere("job_index", ">=", lo).andWhere("job_index", "<=", hi);
  const ids = /* @__PURE__ */ new Map();
  for (const r of idRows) ids.set(Number(r.job_index), Number(r.id));
  const perStatement = rowsPerInsert(trx, TASK_COLUMNS2.length);
  const one = `(${TASK_COLUMNS2.map(() => "?").join(", ")})`;
  const head = `INSERT INTO task (${TASK_COLUMNS2.join(", ")}) VALUES `;
  let bindings = [];
  let rowsInChunk = 0;
  const flush = async () => {
    if (rowsInChunk === 0) return;
    await trx.raw(head + new Array(rowsInChunk).fill(one).join(", "), bindings);
    bindings = [];
    rowsInChunk = 0;
  };
  for (const job of jobs) {
    const jobId = ids.get(job.index);
    if (jobId === void 0) throw new Error(`job ${job.index} of dataset ${env.datasetId} was not found after insert`);
    for (const p of plans) {
      const r = p.constant ?? resolveRequirements(p.spec, p.index, jobEvaluator(env, job.index, job.args, p));
      bindings.push(
        env.datasetId,
        jobId,
        p.relId,
        p.index,
        p.name,
        p.hasDeps ? TaskStatus.IDLE : TaskStatus.WAITING,
        t,
        r.cpu,
        r.gpu,
        r.memory,
        r.disk,
        r.time,
        r.site
      );
      if (++rowsInChunk >= perStatement) await flush();
    }
  }
  await flush();
  return ids;
}
function isDuplicate2(e) {
  const code = e.code ?? "";
  return code === "ER_DUP_ENTRY" || code.startsWith("SQLITE_CONSTRAINT");
}
async function fetchExternalModules(cfg, options) {
  const fetched = /* @__PURE__ */ new Map();
  const pending = /* @__PURE__ */ new Map();
  cfg.tasks.forEach(
    (task, ti) => task.trays.forEach(
      (tray, yi) => tray.modules.forEach((m, mi) => {
        if (m.src !== void 0 && !pending.has(m.src)) pending.set(m.src, configPath("tasks", ti, "trays", yi, "modules", mi, "src"));
      })
    )
  );
  for (const [url, where] of pending) fetched.set(url, await fetchModule(url, options, where));
  return fetched;
}
async function submitDataset(db, params, options) {
  const validation = validateDatasetConfig(params.config);
  if (!validation.ok) {
    const issues = validation.issues.map((i) => ({ path: `/params/config${i.path === "/" ? "" : i.path}`, message: i.message }));
    throw new ValidationError("invalid dataset config", issues);
  }
  const cfg = validation.config;
  const type = params.type ?? cfg.type ?? (params.jobs === 0 ? "offline" : "simulation");
  const jobsTotal = params.jobs ?? (type === "offline" ? 0 : 1);
  if (type === "offline" && jobsTotal !== 0) {
    throw new ValidationError("invalid params", [{ path: "/params/jobs", message: `must be 0 for an offline dataset (jobs come from dataset.add_jobs), got ${jobsTotal}` }]);
  }
  if (type === "simulation" && jobsTotal === 0) {
    throw new ValidationError("invalid params", [{ path: "/params/jobs", message: "must be at least 1 for a simulation dataset (use type offline for zero jobs)" }]);
  }
  const description = (params.description ?? cfg.description ?? "").slice(0, 1024);
  const steering = { ...cfg.steering?.parameters ?? {} };
  const longNames = [];
  cfg.tasks.forEach(
    (task, ti) => task.trays.forEach(
      (tray, yi) => tray.modules.forEach((m, mi) => {
        if (m.class.length > 190) longNames.push({ path: configPath("tasks", ti, "trays", yi, "modules", mi, "class"), message: "must be at most 190 characters" });
        if (m.src !== void 0 && m.src.length > 2048) longNames.push({ path: configPath("tasks", ti, "trays", yi, "modules", mi, "src"), message: "must be at most 2048 characters" });
        for (const name of Object.keys(m.parameters ?? {})) {
          if (name.length > 190) longNames.push({ path: configPath("tasks", ti, "trays", yi, "modules", mi, "parameters", name.slice(0, 40) + "\u2026"), message: "parameter names must be at most 190 characters" });
        }
      })
    )
  );
  if (longNames.length) throw new ValidationError("invalid dataset config", longNames);
  const plans = cfg.tasks.map((task, index) => {
    const spec = task.requirements ?? {};
    const constant = isConstant(spec) ? resolveRequirements(spec, index, null) : null;
    return { index, name: task.name, hasDeps: (task.depends ?? []).length > 0, spec, constant, relId: 0 };
  });
  const modules = await fetchExternalModules(cfg, options.fetch);
  const actor = actorOf(options.user);
  const hash = configHash(params.config);
  const configText = JSON.stringify(params.config);
  const result = await withTransaction(db, async (trx) => {
    const gridIds = [];
    for (const [i, name] of (params.grids ?? []).entries()) {
      const g = await trx("grid").select("id").where({ name }).first();
      if (!g) throw new ValidationError("invalid params", [{ path: `/params/grids/${i}`, message: `no grid named ${JSON.stringify(name)} (grid.list shows them)` }]);
      gridIds.push(Number(g.id));
    }
    const t = now();
    const [inserted] = await trx("dataset").insert({
      description,
      type,
      status: DatasetStatus.PROCESSING,
      priority: params.priority ?? 0,
      owner_id: options.user.id,
      jobs_submitted: jobsTotal,
      tasks_per_job: cfg.tasks.length,
      config: configText,
      config_hash: hash,
      retry: JSON.stringify(resolveRetryPolicy(cfg.retry)),
      created_at: t,
      updated_at: t
    });
    const datasetId = Number(inserted);
    const env = { datasetId, jobsTotal, steering };
    for (const p of plans) if (!p.constant && jobsTotal > 0) resolveRequirements(p.spec, p.index, jobEvaluator(env, 0, void 0, p));
    await insertRows(
      trx,
      "steering_parameter",
      ["dataset_id", "name", "type", "value"],
      Object.entries(steering).map(([name, v]) => [datasetId, name, typeof v, String(v)])
    );
    await insertRows(
      trx,
      "metaproject",
      ["dataset_id", "name", "url", "md5", "sha256"],
      (cfg.steering?.metaprojects ?? []).map((m) => [datasetId, m.name, m.url, m.checksum?.md5 ?? null, m.checksum?.sha256 ?? null])
    );
    await insertRows(
      trx,
      "task_rel",
      ["dataset_id", "task_index", "name", "requirements"],
      cfg.tasks.map((task, i) => [datasetId, i, task.name, JSON.stringify(task.requirements ?? {})])
    );
    const rels = await trx("task_rel").select("id", "task_index", "name").where({ dataset_id: datasetId });
    const relByName = new Map(rels.map((r) => [r.name, Number(r.id)]));
    for (const p of plans) p.relId = relByName.get(p.name);
    await insertRows(
      trx,
      "task_rel_dep",
      ["task_rel_id", "depends_on_id"],
      cfg.tasks.flatMap((task) => (task.depends ?? []).map((d) => [relByName.get(task.name), relByName.get(d)]))
    );
    await insertRows(
      trx,
      "tray",
      ["dataset_id", "task_rel_id", "tray_index", "name", "iterations", "metaproject"],
      cfg.tasks.flatMap((task) => task.trays.map((tray, yi) => [datasetId, relByName.get(task.name), yi, tray.name, tray.iterations ?? 1, tray.metaproject ?? null]))
    );
    const trayRows = await trx("tray").select("id", "task_rel_id", "tray_index").where({ dataset_id: datasetId });
    const trayId = new Map(trayRows.map((r) => [`${Number(r.task_rel_id)}/${Number(r.tray_index)}`, Number(r.id)]));
    const moduleRows = [];
    const paramsOf = /* @__PURE__ */ new Map();
    for (const task of cfg.tasks) {
      const relId = relByName.get(task.name);
      task.trays.forEach((tray, yi) => {
        const tid = trayId.get(`${relId}/${yi}`);
        tray.modules.forEach((m, mi) => {
          const f = m.src !== void 0 ? modules.get(m.src) : void 0;
          moduleRows.push([datasetId, tid, mi, m.name, m.class, m.src ?? null, f?.sha256 ?? null, f?.md5 ?? null, f?.content ?? null]);
          if (m.parameters && Object.keys(m.parameters).length) paramsOf.set(`${tid}/${mi}`, m.parameters);
        });
      });
    }
    await insertRows(trx, "module", ["dataset_id", "tray_id", "module_index", "name", "class", "src", "src_sha256", "src_md5", "src_content"], moduleRows, 50);
    if (paramsOf.size) {
      const modRows = await trx("module").select("id", "tray_id", "module_index").where({ dataset_id: datasetId });
      const cparams = [];
      for (const r of modRows) {
        const ps = paramsOf.get(`${Number(r.tray_id)}/${Number(r.module_index)}`);
        if (ps) for (const [name, value] of Object.entries(ps)) cparams.push([datasetId, Number(r.id), name, JSON.stringify(value)]);
      }
      await insertRows(trx, "cparameter", ["dataset_id", "module_id", "name", "value"], cparams);
    }
    if (gridIds.length) await insertRows(trx, "dataset_grid", ["dataset_id", "grid_id"], gridIds.map((g) => [datasetId, g]));
    const jobs = Array.from({ length: jobsTotal }, (_, index) => ({ index }));
    await createJobsAndTasks(trx, env, plans, jobs);
    await recordHistory(trx, {
      entity: "dataset",
      entityId: datasetId,
      datasetId,
      action: "submit",
      to: DatasetStatus.PROCESSING,
      actor,
      reason: `${jobsTotal} jobs \xD7 ${plans.length} tasks (${type})`
    });
    return { dataset_id: datasetId, jobs: jobsTotal, tasks: jobsTotal * plans.length };
  });
  options.logger?.info("dataset submitted", { dataset: result.dataset_id, jobs: result.jobs, tasks: result.tasks, by: options.user.username });
  return result;
}
function localNameOf(url) {
  let p = url;
  try {
    p = new URL(url).pathname;
  } catch {
  }
  const base = p.split("/").filter(Boolean).pop() ?? "input";
  return decodeURIComponent(base).slice(0, 1024) || "input";
}
async function addJobs(ctx, user, p) {
  const actor = actorOf(user);
  const dates = /* @__PURE__ */ new Map();
  p.jobs.forEach((j, i) => {
    if (!j.run) return;
    const seen = dates.get(j.run.number);
    if (seen !== void 0 && seen !== j.run.date) {
      throw new ValidationError("invalid params", [{ path: `/params/jobs/${i}/run/date`, message: `run ${j.run.number} was given date ${seen} earlier in this call` }]);
    }
    dates.set(j.run.number, j.run.date);
  });
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, p.dataset_id);
    assertLive(ds);
    const { config } = await getDatasetConfig(trx, p.dataset_id);
    const cfg = config;
    const rels = await trx("task_rel").select("id", "task_index", "name", "requirements").where({ dataset_id: p.dataset_id }).orderBy("task_index");
    const depRows = await trx("task_rel_dep as d").join("task_rel as r", "r.id", "d.task_rel_id").where("r.dataset_id", p.dataset_id).distinct("d.task_rel_id");
    const withDeps = new Set(depRows.map((r) => Number(r.task_rel_id)));
    const plans = rels.map((r) => {
      const spec = JSON.parse(r.requirements);
      const index = Number(r.task_index);
      return { index, name: r.name, hasDeps: withDeps.has(Number(r.id)), spec, constant: isConstant(spec) ? resolveRequirements(spec, index, null) : null, relId: Number(r.id) };
    });
    const runIds = /* @__PURE__ */ new Map();
    if (dates.size) {
      const numbers = [...dates.keys()];
      for (const part of chunk(numbers, 500)) {
        const rows = await trx("run").select("id", "run_number").where("dataset_id", p.dataset_id).whereIn("run_number", part);
        for (const r of rows) runIds.set(Number(r.run_number), Number(r.id));
      }
      const missing = numbers.filter((n) => !runIds.has(n));
      await insertRows(trx, "run", ["dataset_id", "run_number", "date", "created_at"], missing.map((n) => [p.dataset_id, n, dates.get(n), now()]));
      for (const part of chunk(missing, 500)) {
        const rows = await trx("run").select("id", "run_number").where("dataset_id", p.dataset_id).whereIn("run_number", part);
        for (const r of rows) runIds.set(Number(r.run_number), Number(r.id));
      }
    }
    const last = await trx("job").max({ m: "job_index" }).where({ dataset_id: p.dataset_id }).first();
    const first = last?.m === null || last?.m === void 0 ? 0 : Number(last.m) + 1;
    const jobs = p.jobs.map((j, i) => ({ index: first + i, args: j.args ?? {}, runId: j.run ? runIds.get(j.run.number) : null }));
    const jobsTotal = first + jobs.length;
    const env = { datasetId: p.dataset_id, jobsTotal, steering: { ...cfg.steering?.parameters ?? {} } };
    let ids;
    try {
      ids = await createJobsAndTasks(trx, env, plans, jobs);
    } catch (e) {
      if (isDuplicate2(e)) throw new ConflictError("another add_jobs for this dataset ran at the same time: try again");
      throw e;
    }
    const t = now();
    const fileRows = [];
    p.jobs.forEach((j, i) => {
      const jobId = ids.get(first + i);
      for (const f of j.files ?? []) {
        fileRows.push([p.dataset_id, jobId, "input", f.local ?? localNameOf(f.url), f.url, "permanent", f.size ?? null, f.md5.toLowerCase(), f.sha256?.toLowerCase() ?? null, "INPUT", t, t]);
      }
    });
    await insertRows(trx, "file", ["dataset_id", "job_id", "kind", "local_name", "url", "type", "size", "md5", "sha256", "state", "created_at", "updated_at"], fileRows);
    await trx("dataset").where({ id: p.dataset_id }).update({ jobs_submitted: jobsTotal, updated_at: t, ...ds.status === DatasetStatus.COMPLETE ? { status: DatasetStatus.PROCESSING } : {} });
    await recordHistory(trx, {
      entity: "dataset",
      entityId: p.dataset_id,
      datasetId: p.dataset_id,
      action: "add_jobs",
      actor,
      reason: `jobs ${first}\u2013${jobsTotal - 1} (${jobs.length} jobs \xD7 ${plans.length} tasks, ${fileRows.length} input files)`
    });
    ctx.logger.info("jobs added", { dataset: p.dataset_id, jobs: jobs.length, files: fileRows.length, by: user.username });
    return { dataset_id: p.dataset_id, first_job_index: first, jobs: jobs.length, tasks: jobs.length * plans.length, files: fileRows.length };
  });
}
function fetchOptionsOf(ctx) {
  return {
    maxBytes: ctx.tray.fetch_max_bytes,
    timeoutMs: ctx.tray.fetch_timeout * 1e3,
    ca: ctx.tray.fetch_ca ? import_node_fs9.default.readFileSync(ctx.tray.fetch_ca) : void 0,
    logger: ctx.logger
  };
}
function submitMethods(ctx) {
  return {
    "dataset.submit": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "manager");
        return submitDataset(ctx.db, p, { user, fetch: fetchOptionsOf(ctx), logger: ctx.logger });
      }
    },
    "dataset.add_jobs": {
      handler: async (p, rpc) => {
        const user = await caller(ctx, rpc, "manager");
        return addJobs(ctx, user, p);
      }
    }
  };
}

// packages/tray/src/system.ts
async function dbHealthy(ctx) {
  try {
    await ctx.db.raw("SELECT 1");
    return true;
  } catch {
    return false;
  }
}
function systemMethods(ctx) {
  return {
    "system.health": {
      handler: async (_p, _rpc) => {
        const ok = await dbHealthy(ctx);
        return { status: ok ? "ok" : "degraded", db: ok ? "ok" : "error", uptime_seconds: Math.round((Date.now() - ctx.startedAt) / 1e3) };
      }
    },
    "system.version": {
      handler: async (_p, _rpc) => {
        const m = await migrationStatus(ctx.db);
        return { name: "firn-tray", version: ctx.version, node: process.version, migrations: m.applied, db: isMysql(ctx.db) ? "mysql" : "sqlite" };
      }
    }
  };
}

// packages/tray/src/users.ts
function userMethods(ctx) {
  return {
    "user.add": {
      handler: async (p, rpc) => {
        const admin = await caller(ctx, rpc, "admin");
        const user = await createUser(ctx.db, { username: p.username, role: p.role, password: p.password ?? null, source: p.source ?? "local" });
        await recordHistory(ctx.db, { entity: "user", entityId: user.id, action: "add", to: user.role, actor: actorOf(admin), reason: `source ${user.source}` });
        ctx.logger.info("user added", { username: user.username, role: user.role, by: admin.username });
        return { user };
      }
    },
    "user.list": {
      handler: async (_p, rpc) => {
        await caller(ctx, rpc, "admin");
        return { users: await listUsers(ctx.db) };
      }
    },
    "user.set_role": {
      handler: async (p, rpc) => {
        const admin = await caller(ctx, rpc, "admin");
        const before = await ctx.db("user").select("role").where({ username: p.username }).first();
        const user = await setUserRole(ctx.db, p.username, p.role);
        await recordHistory(ctx.db, { entity: "user", entityId: user.id, action: "set_role", from: before?.role ?? null, to: user.role, actor: actorOf(admin) });
        ctx.logger.info("user role changed", { username: user.username, role: user.role, by: admin.username });
        return { user };
      }
    }
  };
}

// packages/tray/src/server.ts
function createTrayContext(config, db, logger) {
  const tray = trayConfigOf(config);
  return {
    db,
    tray,
    logger,
    limiter: new LoginLimiter(tray.login_attempts, tray.login_window),
    ldap: tray.ldap_url ? new LdapAuthenticator({ url: tray.ldap_url, bindDnTemplate: tray.ldap_bind_dn, caFile: tray.ldap_tls_ca, logger }) : null,
    version: trayVersion(),
    startedAt: Date.now()
  };
}
function trayMethods(ctx) {
  return {
    ...authMethods(ctx),
    ...submitMethods(ctx),
    ...datasetMethods(ctx),
    ...jobMethods(ctx),
    ...gridMethods(ctx),
    ...userMethods(ctx),
    ...systemMethods(ctx)
  };
}
async function startTray(options) {
  const logger = (options.logger ?? nullLogger).scope({ daemon: "tray" });
  const { config } = options;
  const fetchCa = trayConfigOf(config).fetch_ca;
  if (fetchCa !== void 0) import_node_fs10.default.accessSync(fetchCa, import_node_fs10.default.constants.R_OK);
  const ownDb = !options.db;
  const db = options.db ?? await connect(config.db.url, { poolMax: config.db.pool_max });
  const ctx = createTrayContext(config, db, logger);
  let server;
  try {
    server = await createRpcServer({
      name: "tray",
      logger,
      bodyLimit: config.tray.body_limit,
      tls: config.tray.tls_cert && config.tray.tls_key ? { cert: config.tray.tls_cert, key: config.tray.tls_key } : void 0,
      methods: trayMethods(ctx),
      health: async () => ({ db: await dbHealthy(ctx) ? "ok" : "error" })
    });
    await server.listen(config.tray.port, config.tray.host);
  } catch (e) {
    if (ownDb) await db.destroy();
    throw e;
  }
  const address = server.app.server.address();
  const port = address && typeof address === "object" ? address.port : config.tray.port;
  const url = serverUrl({ ...config.tray, port, url: void 0 });
  logger.info("firn-tray listening", { url, tls: Boolean(config.tray.tls_cert) });
  let closed = null;
  return {
    url,
    ctx,
    server,
    close() {
      closed ??= (async () => {
        await server.close();
        if (ownDb) await db.destroy();
        logger.info("firn-tray stopped");
      })();
      return closed;
    }
  };
}

// packages/tray/src/cli.ts
var import_commander = require("/work/main/packages/tray/node_modules/commander/index.js");

// packages/tray/src/stdin.ts
async function readSecretLine(stdin, prompt, question) {
  if (stdin.isTTY && typeof stdin.setRawMode === "function") {
    prompt.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    return new Promise((resolve, reject) => {
      let value = "";
      const onData = (buf) => {
        for (const ch of buf.toString("utf8")) {
          if (ch === "\r" || ch === "\n" || ch === "") {
            done();
            prompt.write("\n");
            return resolve(value);
          }
          if (ch === "") {
            done();
            prompt.write("\n");
            return reject(new Error("interrupted"));
          }
          if (ch === "\x7F" || ch === "\b") value = value.slice(0, -1);
          else value += ch;
        }
      };
      const done = () => {
        stdin.off("data", onData);
        stdin.setRawMode(false);
        stdin.pause();
      };
      stdin.on("data", onData);
    });
  }
  return new Promise((resolve, reject) => {
    let text = "";
    const finish = () => {
      cleanup();
      resolve(text.split("\n")[0].replace(/\r$/, ""));
    };
    const onData = (buf) => {
      text += buf.toString();
      if (text.includes("\n")) finish();
    };
    const onError = (e) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      stdin.off("data", onData);
      stdin.off("end", finish);
      stdin.off("error", onError);
      stdin.pause();
    };
    stdin.on("data", onData);
    stdin.on("end", finish);
    stdin.on("error", onError);
    stdin.resume();
  });
}

// packages/tray/src/cli.ts
var defaultIo = () => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });
function configFrom(opts, io) {
  return loadConfig({ file: opts.config, env: io.env });
}
function untilSignal() {
  return new Promise((resolve) => {
    const on = (sig) => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      resolve(sig);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}
function buildProgram(io, result) {
  const program = new import_commander.Command("firn-tray").description("firn-tray: the JSON-RPC API for people \u2014 submit and control datasets").option("-c, --config <file>", "INI config file ([db], [tray], [log]); FIRN_<SECTION>_<KEY> environment variables override it").option("--check-config", "validate the configuration, print a summary and exit").configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) }).exitOverride().action(async (opts) => {
    const config = configFrom(opts, io);
    if (opts.checkConfig) {
      const t = config.tray;
      io.stdout.write(
        `config OK: db ${redactDbUrl(config.db.url)}; tray ${t.tls_cert ? "https" : "http"}://${t.host}:${t.port}${t.ldap_url ? `; ldap ${t.ldap_url}` : ""}
`
      );
      return;
    }
    const logger = createLogger({ level: config.log.level, format: config.log.format, file: config.log.file });
    const tray = await startTray({ config, logger });
    io.stderr.write(`firn-tray listening on ${tray.url}
`);
    const sig = await untilSignal();
    logger.info("shutting down", { signal: sig });
    await tray.close();
  });
  const user = program.command("user").description("manage users in the database");
  user.command("add").description("create a user; the password is read from stdin (a pipe, or typed without echo)").argument("<name>", "user name").addOption(new import_commander.Option("--role <role>", "role").choices([...ROLES]).makeOptionMandatory()).option("-c, --config <file>", "INI config file").action(async (name, opts, cmd) => {
    const config = configFrom(cmd.optsWithGlobals(), io);
    const password = await readSecretLine(io.stdin, io.stderr, `password for ${name}: `);
    const db = await connect(config.db.url, { poolMax: 2 });
    try {
      const created = await createUser(db, { username: name, role: opts.role, password });
      io.stdout.write(`user ${created.username} created with role ${created.role}
`);
    } finally {
      await db.destroy();
    }
  });
  user.command("list").description("list users").option("-c, --config <file>", "INI config file").action(async (_opts, cmd) => {
    const config = configFrom(cmd.optsWithGlobals(), io);
    const db = await connect(config.db.url, { poolMax: 2 });
    try {
      const rows = await db("user").select("username", "role", "source", "disabled").orderBy("username");
      for (const r of rows) io.stdout.write(`${r.username}	${r.role}	${r.source}${r.disabled ? "	disabled" : ""}
`);
    } finally {
      await db.destroy();
    }
  });
  void result;
  return program;
}
async function main(argv = process.argv, io = defaultIo()) {
  const result = { code: 0 };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (e) {
    if (e instanceof import_commander.CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return 0;
      return 2;
    }
    const err = coerceError(e);
    io.stderr.write(`firn-tray: ${err instanceof ConfigError ? "" : ""}${err.message}
`);
    return 1;
  }
}
function run() {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`firn-tray: ${coerceError(e).message}
`);
      process.exitCode = 1;
    }
  );
}
if (require.main === module) run();

// bench/submit.ts
var TASKS = 3;
var CHUNK_ROWS = 5e3;
function benchConfig() {
  const task = (name, depends, memory) => ({
    name,
    depends,
    requirements: { cpu: 1, memory, time: 30 },
    trays: [{ name: "main", modules: [{ name: "run", class: "shell", parameters: { command: `echo ${name} $(job)` } }] }]
  });
  return {
    version: 1,
    description: "bench: 3-task chain",
    tasks: [task("generate", [], 1e3), task("propagate", ["generate"], 2e3), task("detect", ["propagate"], 1500)]
  };
}
function dbUrl(root, name) {
  return `${root.replace(/\/+$/, "")}/${name}`;
}
async function rawInsert(root, database, jobs) {
  const u = new URL(root);
  const conn = await import_promise.default.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || "root"),
    password: decodeURIComponent(u.password),
    database,
    charset: "utf8mb4"
  });
  try {
    const t0 = process.hrtime.bigint();
    await conn.beginTransaction();
    const t = now();
    const [ds] = await conn.query(
      "INSERT INTO dataset (description, type, status, priority, jobs_submitted, tasks_per_job, config, config_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ["raw", "simulation", "PROCESSING", 0, jobs, TASKS, JSON.stringify(benchConfig()), "0".repeat(64), t, t]
    );
    const datasetId = ds.insertId;
    const rels = [];
    for (const [i, name] of ["generate", "propagate", "detect"].entries()) {
      const [r] = await conn.query("INSERT INTO task_rel (dataset_id, task_index, name, requirements) VALUES (?, ?, ?, ?)", [datasetId, i, name, "{}"]);
      rels.push(r.insertId);
    }
    for (let i = 0; i < jobs; i += CHUNK_ROWS) {
      const rows2 = [];
      for (let j = i; j < Math.min(jobs, i + CHUNK_ROWS); j++) rows2.push([datasetId, j, "PROCESSING", null, null, t]);
      await conn.query("INSERT INTO job (dataset_id, job_index, status, run_id, args, status_changed_at) VALUES ?", [rows2]);
    }
    const [ids] = await conn.query("SELECT id, job_index FROM job WHERE dataset_id = ?", [datasetId]);
    const names = ["generate", "propagate", "detect"];
    const memory = [1e3, 2e3, 1500];
    let rows = [];
    for (const j of ids) {
      for (let k = 0; k < TASKS; k++) {
        rows.push([datasetId, j.id, rels[k], k, names[k], k === 0 ? "WAITING" : "IDLE", t, 1, 0, memory[k], 1e4, 30, null]);
        if (rows.length >= CHUNK_ROWS) {
          await conn.query("INSERT INTO task (dataset_id, job_id, task_rel_id, task_index, name, status, status_changed_at, req_cpu, req_gpu, req_memory, req_disk, req_time, req_site) VALUES ?", [rows]);
          rows = [];
        }
      }
    }
    if (rows.length) await conn.query("INSERT INTO task (dataset_id, job_id, task_rel_id, task_index, name, status, status_changed_at, req_cpu, req_gpu, req_memory, req_disk, req_time, req_site) VALUES ?", [rows]);
    await conn.commit();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await conn.end();
  }
}
async function count(db, datasetId) {
  return Number((await db("task").count({ n: "*" }).where({ dataset_id: datasetId }).first()).n);
}
async function run2() {
  const root = process.env.FIRN_BENCH_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";
  const jobs = Number(process.env.FIRN_BENCH_JOBS ?? 1e5);
  const tag = `${process.pid}_${Date.now().toString(36)}`;
  const firnName = `firn_bench_submit_${tag}`;
  const rawName = `firn_bench_raw_${tag}`;
  const firnDb = await connect(dbUrl(root, firnName), { poolMax: 4 });
  const rawDb = await connect(dbUrl(root, rawName), { poolMax: 2 });
  try {
    const u = await createUser(firnDb, { username: "bench", role: "manager", password: "bench-password" });
    const user = { id: u.id, username: u.username };
    const fetch = { maxBytes: 1 << 20, timeoutMs: 1e4 };
    const config = benchConfig();
    await submitDataset(firnDb, { config, jobs: 1e3 }, { user, fetch });
    const rawSeconds = await rawInsert(root, rawName, jobs);
    let t0 = process.hrtime.bigint();
    const direct = await submitDataset(firnDb, { config, jobs }, { user, fetch });
    const submitSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (await count(firnDb, direct.dataset_id) !== jobs * TASKS) throw new Error("dataset.submit wrote the wrong number of tasks");
    let rpcSeconds = NaN;
    if (process.env.FIRN_BENCH_RPC !== "0") {
      const tray = await startTray({
        config: loadConfig({ overrides: { db: { url: dbUrl(root, firnName) }, tray: { host: "127.0.0.1", port: 0 } } }),
        db: firnDb
      });
      const client2 = new RpcClient(tray.url, { timeoutMs: 6e5 });
      try {
        client2.token = (await client2.call("auth.login", { username: "bench", password: "bench-password" })).token;
        t0 = process.hrtime.bigint();
        const viaRpc = await client2.call("dataset.submit", { config, jobs });
        rpcSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
        if (await count(firnDb, viaRpc.dataset_id) !== jobs * TASKS) throw new Error("dataset.submit over RPC wrote the wrong number of tasks");
      } finally {
        client2.close();
        await tray.close();
      }
    }
    const round = (x) => Math.round(x * 1e3) / 1e3;
    return {
      bench: "submit",
      db: "mariadb",
      jobs,
      tasks: jobs * TASKS,
      raw_insert_seconds: round(rawSeconds),
      submit_seconds: round(submitSeconds),
      submit_rpc_seconds: round(rpcSeconds),
      ratio: round(submitSeconds / rawSeconds),
      rpc_ratio: round(rpcSeconds / rawSeconds),
      target: "\u2264 15 s and ratio \u2264 2",
      date: (/* @__PURE__ */ new Date()).toISOString(),
      node: process.version
    };
  } finally {
    for (const [db, name] of [[firnDb, firnName], [rawDb, rawName]]) {
      await db.raw("DROP DATABASE IF EXISTS ??", [name]).catch(() => void 0);
      await db.destroy();
    }
  }
}
function resultsDir() {
  for (let dir = __dirname; ; dir = import_node_path7.default.dirname(dir)) {
    if (import_node_path7.default.basename(dir) === "bench") return import_node_path7.default.join(dir, "results");
    if (import_node_fs11.default.existsSync(import_node_path7.default.join(dir, "bench", "submit.ts"))) return import_node_path7.default.join(dir, "bench", "results");
    if (import_node_path7.default.dirname(dir) === dir) return import_node_path7.default.join(process.cwd(), "bench", "results");
  }
}
if (require.main === module) {
  run2().then(
    (result) => {
      const dir = resultsDir();
      import_node_fs11.default.mkdirSync(dir, { recursive: true });
      import_node_fs11.default.writeFileSync(import_node_path7.default.join(dir, "submit.json"), JSON.stringify(result, null, 2) + "\n");
      process.stdout.write(
        `dataset.submit ${result.jobs} jobs \xD7 ${TASKS} tasks on MariaDB: ${result.submit_seconds} s (via RPC ${result.submit_rpc_seconds} s); raw mysql2 INSERT ${result.raw_insert_seconds} s; ratio ${result.ratio} (RPC ${result.rpc_ratio})
`
      );
    },
    (e) => {
      process.stderr.write(`bench submit failed: ${e.stack ?? String(e)}
`);
      process.exitCode = 1;
    }
  );
}
// Annotate the CommonJS export names for ESM import in node:
0 && (module.exports = {
  run
});
