import type { Knex } from 'knex';

/**
 * 0001 — every table of ARCHITECTURE.md "Storage". Forward-only: never edit once landed;
 * add 0002_… instead. The same file builds SQLite and MySQL/MariaDB. Times are epoch
 * milliseconds (BIGINT) so both engines order and compare them identically.
 */
export async function up(knex: Knex): Promise<void> {
  const mysql = knex.client.config.client === 'mysql2';
  const long = (t: Knex.CreateTableBuilder, name: string) => (mysql ? t.text(name, 'longtext') : t.text(name));
  const engine = (t: Knex.CreateTableBuilder) => {
    if (mysql) {
      t.engine('InnoDB');
      t.charset('utf8mb4');
      t.collate('utf8mb4_bin');
    }
  };

  await knex.schema.createTable('user', (t) => {
    engine(t);
    t.increments('id').primary();
    t.string('username', 190).notNullable().unique();
    t.string('password_hash', 255).nullable(); // null for LDAP users
    t.string('role', 16).notNullable(); // admin | manager | viewer
    t.string('source', 16).notNullable().defaultTo('local'); // local | ldap
    t.boolean('disabled').notNullable().defaultTo(false);
    t.bigInteger('created_at').notNullable();
  });

  await knex.schema.createTable('token', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('user_id').unsigned().notNullable().references('id').inTable('user').onDelete('CASCADE');
    t.string('token_hash', 64).notNullable().unique(); // sha256 hex of the bearer token
    t.bigInteger('expires_at').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_used_at').nullable();
    t.index(['expires_at'], 'token_expires_idx');
  });

  await knex.schema.createTable('grid', (t) => {
    engine(t);
    t.increments('id').primary();
    t.string('name', 190).notNullable().unique();
    t.string('plugin', 32).notNullable();
    t.text('capabilities').notNullable(); // JSON {cpu, gpu, memory, disk, time, site}
    t.string('status', 16).notNullable().defaultTo('enabled'); // enabled | disabled
    t.text('connection').nullable(); // JSON {ssh_host, ssh_port, ssh_user, ssh_key, remote_dir} for managed sites
    t.bigInteger('last_seen_at').nullable();
    t.text('last_cycle').nullable(); // JSON summary of the queue daemon's last cycle
    t.bigInteger('created_at').notNullable();
  });

  await knex.schema.createTable('dataset', (t) => {
    engine(t);
    t.increments('id').primary();
    t.string('description', 1024).notNullable().defaultTo('');
    t.string('type', 16).notNullable().defaultTo('simulation'); // simulation | offline
    t.string('status', 16).notNullable();
    t.integer('priority').notNullable().defaultTo(0);
    t.integer('owner_id').unsigned().nullable().references('id').inTable('user');
    t.integer('jobs_submitted').notNullable().defaultTo(0);
    t.integer('tasks_per_job').notNullable();
    long(t, 'config');
    t.string('config_hash', 64).notNullable();
    t.text('retry').nullable(); // JSON retry policy (defaults applied)
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['status', 'priority'], 'dataset_status_priority_idx');
    t.index(['owner_id'], 'dataset_owner_idx');
  });

  await knex.schema.createTable('steering_parameter', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.string('name', 190).notNullable();
    t.string('type', 16).notNullable(); // string | number | boolean
    t.text('value').notNullable();
    t.unique(['dataset_id', 'name'], { indexName: 'steering_parameter_dataset_name_uq' });
  });

  await knex.schema.createTable('metaproject', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.string('name', 190).notNullable();
    t.string('url', 2048).notNullable();
    t.string('md5', 32).nullable();
    t.string('sha256', 64).nullable();
    t.unique(['dataset_id', 'name'], { indexName: 'metaproject_dataset_name_uq' });
  });

  await knex.schema.createTable('task_rel', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('task_index').notNullable();
    t.string('name', 190).notNullable();
    t.text('requirements').notNullable(); // JSON, expressions unevaluated
    t.unique(['dataset_id', 'task_index'], { indexName: 'task_rel_dataset_index_uq' });
    t.unique(['dataset_id', 'name'], { indexName: 'task_rel_dataset_name_uq' });
  });

  await knex.schema.createTable('task_rel_dep', (t) => {
    engine(t);
    t.integer('task_rel_id').unsigned().notNullable().references('id').inTable('task_rel').onDelete('CASCADE');
    t.integer('depends_on_id').unsigned().notNullable().references('id').inTable('task_rel').onDelete('CASCADE');
    t.primary(['task_rel_id', 'depends_on_id']);
  });

  await knex.schema.createTable('tray', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('task_rel_id').unsigned().notNullable().references('id').inTable('task_rel').onDelete('CASCADE');
    t.integer('tray_index').notNullable();
    t.string('name', 190).notNullable();
    t.integer('iterations').notNullable().defaultTo(1);
    t.string('metaproject', 190).nullable();
    t.unique(['task_rel_id', 'tray_index'], { indexName: 'tray_task_rel_index_uq' });
  });

  await knex.schema.createTable('module', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('tray_id').unsigned().notNullable().references('id').inTable('tray').onDelete('CASCADE');
    t.integer('module_index').notNullable();
    t.string('name', 190).notNullable();
    t.string('class', 190).notNullable();
    t.string('src', 2048).nullable();
    t.string('src_sha256', 64).nullable(); // checksum of the copy cached at submission
    t.string('src_md5', 32).nullable();
    long(t, 'src_content'); // the cached copy itself (external modules only)
    t.unique(['tray_id', 'module_index'], { indexName: 'module_tray_index_uq' });
  });

  await knex.schema.createTable('cparameter', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('module_id').unsigned().notNullable().references('id').inTable('module').onDelete('CASCADE');
    t.string('name', 190).notNullable();
    t.text('value').notNullable(); // JSON
    t.unique(['module_id', 'name'], { indexName: 'cparameter_module_name_uq' });
  });

  await knex.schema.createTable('dataset_grid', (t) => {
    engine(t);
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('grid_id').unsigned().notNullable().references('id').inTable('grid').onDelete('CASCADE');
    t.primary(['dataset_id', 'grid_id']);
    t.index(['grid_id'], 'dataset_grid_grid_idx');
  });

  await knex.schema.createTable('run', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('run_number').notNullable();
    t.string('date', 10).notNullable(); // YYYY-MM-DD of data taking
    t.bigInteger('created_at').notNullable();
    t.unique(['dataset_id', 'run_number'], { indexName: 'run_dataset_number_uq' });
    t.index(['date'], 'run_date_idx');
  });

  await knex.schema.createTable('job', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('job_index').notNullable();
    t.string('status', 16).notNullable();
    t.integer('run_id').unsigned().nullable().references('id').inTable('run');
    t.text('args').nullable(); // JSON: $args(...) values of this job (offline: its input)
    t.bigInteger('status_changed_at').notNullable();
    t.unique(['dataset_id', 'job_index'], { indexName: 'job_dataset_index_uq' });
    t.index(['dataset_id', 'status'], 'job_dataset_status_idx');
    t.index(['run_id'], 'job_run_idx');
  });

  await knex.schema.createTable('task', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('job_id').unsigned().notNullable().references('id').inTable('job').onDelete('CASCADE');
    t.integer('task_rel_id').unsigned().notNullable().references('id').inTable('task_rel').onDelete('CASCADE');
    t.integer('task_index').notNullable();
    t.string('name', 190).notNullable();
    t.string('status', 16).notNullable();
    t.bigInteger('status_changed_at').notNullable();
    t.string('transition_token', 32).nullable(); // marks the rows changed by one transition() call
    // current requirements (bumped by retry rules); memory/disk MB, time minutes
    t.integer('req_cpu').notNullable().defaultTo(1);
    t.integer('req_gpu').notNullable().defaultTo(0);
    t.integer('req_memory').notNullable().defaultTo(2000);
    t.integer('req_disk').notNullable().defaultTo(10000);
    t.integer('req_time').notNullable().defaultTo(60);
    t.string('req_site', 190).nullable();
    // claim / batch
    t.integer('grid_id').unsigned().nullable().references('id').inTable('grid');
    t.string('batch_id', 190).nullable();
    t.string('passkey_hash', 64).nullable();
    t.bigInteger('lease_until').nullable();
    t.bigInteger('next_retry_at').nullable();
    t.integer('failures').notNullable().defaultTo(0);
    t.integer('evictions').notNullable().defaultTo(0);
    t.integer('submit_errors').notNullable().defaultTo(0);
    t.text('error_summary').nullable();
    // execution
    t.string('host', 255).nullable();
    t.bigInteger('started_at').nullable();
    t.bigInteger('finished_at').nullable();
    t.bigInteger('last_heartbeat_at').nullable();
    t.double('cpu_seconds').nullable();
    t.double('rss_mb').nullable();
    t.double('disk_mb').nullable();
    t.double('wall_seconds').nullable();
    t.double('gpu_util').nullable();
    t.unique(['job_id', 'task_index'], { indexName: 'task_job_index_uq' });
    t.index(['status', 'dataset_id'], 'task_status_dataset_idx');
    t.index(['dataset_id', 'status'], 'task_dataset_status_idx');
    t.index(['grid_id', 'status'], 'task_grid_status_idx');
    t.index(['transition_token'], 'task_transition_token_idx');
  });

  await knex.schema.createTable('file', (t) => {
    engine(t);
    t.increments('id').primary();
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.integer('job_id').unsigned().nullable().references('id').inTable('job').onDelete('CASCADE');
    t.integer('task_id').unsigned().nullable().references('id').inTable('task').onDelete('CASCADE');
    t.string('kind', 16).notNullable(); // input | output | log
    t.string('local_name', 1024).notNullable();
    t.string('url', 2048).notNullable(); // destination (outputs) or source (inputs)
    t.string('temp_url', 2048).nullable(); // where the pilot staged it (site temp)
    t.string('type', 16).notNullable().defaultTo('permanent'); // permanent | job_temp | dataset_temp
    t.bigInteger('size').nullable();
    t.string('md5', 32).nullable();
    t.string('sha256', 64).nullable();
    t.string('state', 16).notNullable(); // STAGED | COPIED | VERIFIED | FAILED | DELETED | INPUT
    t.text('error').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['task_id'], 'file_task_idx');
    t.index(['job_id'], 'file_job_idx');
    t.index(['dataset_id', 'kind'], 'file_dataset_kind_idx');
  });

  await knex.schema.createTable('task_stat', (t) => {
    engine(t);
    t.integer('task_id').unsigned().notNullable().references('id').inTable('task').onDelete('CASCADE');
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.string('name', 190).notNullable();
    t.double('value').notNullable();
    t.primary(['task_id', 'name']);
    t.index(['dataset_id', 'name'], 'task_stat_dataset_name_idx');
  });

  await knex.schema.createTable('dataset_stat', (t) => {
    engine(t);
    t.integer('dataset_id').unsigned().notNullable().references('id').inTable('dataset').onDelete('CASCADE');
    t.string('name', 190).notNullable();
    t.bigInteger('n').notNullable();
    t.double('sum').notNullable();
    t.double('sum_sq').notNullable();
    t.double('min').notNullable();
    t.double('max').notNullable();
    t.primary(['dataset_id', 'name']);
  });

  await knex.schema.createTable('task_log', (t) => {
    engine(t);
    t.integer('task_id').unsigned().notNullable().references('id').inTable('task').onDelete('CASCADE');
    t.string('name', 64).notNullable(); // stdout | stderr | pilot | <module>
    long(t, 'data');
    t.bigInteger('updated_at').notNullable();
    t.primary(['task_id', 'name']);
  });

  await knex.schema.createTable('node', (t) => {
    engine(t);
    t.increments('id').primary();
    t.string('hostname', 255).notNullable();
    t.integer('grid_id').unsigned().nullable().references('id').inTable('grid').onDelete('SET NULL');
    t.integer('ok_count').notNullable().defaultTo(0);
    t.integer('fail_count').notNullable().defaultTo(0);
    t.string('recent', 64).notNullable().defaultTo(''); // last outcomes, newest last: O = ok, F = failed
    t.bigInteger('blackholed_until').nullable();
    t.bigInteger('updated_at').notNullable();
    t.unique(['hostname'], { indexName: 'node_hostname_uq' });
  });

  await knex.schema.createTable('history', (t) => {
    engine(t);
    t.bigIncrements('id').primary();
    t.string('entity', 16).notNullable(); // task | job | dataset | grid | user
    t.integer('entity_id').notNullable();
    t.integer('dataset_id').nullable();
    t.string('action', 32).notNullable(); // transition | submit | suspend | priority | …
    t.string('from_status', 16).nullable();
    t.string('to_status', 16).nullable();
    t.string('actor', 255).notNullable(); // user:alice | queue:gridname | dh | mon | core
    t.text('reason').nullable();
    t.bigInteger('created_at').notNullable();
    t.index(['entity', 'entity_id'], 'history_entity_idx');
    t.index(['dataset_id', 'created_at'], 'history_dataset_idx');
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
