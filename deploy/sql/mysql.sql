-- Firn schema for MySQL 8 / MariaDB 10.6+ — GENERATED from packages/core/src/migrations by
-- `npm run gen:sql`; do not edit by hand (a test checks it matches the migrations).
-- Create the database first: CREATE DATABASE firn CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
SET FOREIGN_KEY_CHECKS = 0;

CREATE TABLE `user` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `username` varchar(190) NOT NULL,
  `password_hash` varchar(255) DEFAULT NULL,
  `role` varchar(16) NOT NULL,
  `source` varchar(16) NOT NULL DEFAULT 'local',
  `disabled` tinyint(1) NOT NULL DEFAULT 0,
  `created_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `user_username_unique` (`username`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `token` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `user_id` int(10) unsigned NOT NULL,
  `token_hash` varchar(64) NOT NULL,
  `expires_at` bigint(20) NOT NULL,
  `created_at` bigint(20) NOT NULL,
  `last_used_at` bigint(20) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `token_token_hash_unique` (`token_hash`),
  KEY `token_user_id_foreign` (`user_id`),
  KEY `token_expires_idx` (`expires_at`),
  CONSTRAINT `token_user_id_foreign` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `grid` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(190) NOT NULL,
  `plugin` varchar(32) NOT NULL,
  `capabilities` text NOT NULL,
  `status` varchar(16) NOT NULL DEFAULT 'enabled',
  `connection` text DEFAULT NULL,
  `last_seen_at` bigint(20) DEFAULT NULL,
  `last_cycle` text DEFAULT NULL,
  `created_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `grid_name_unique` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `dataset` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `description` varchar(1024) NOT NULL DEFAULT '',
  `type` varchar(16) NOT NULL DEFAULT 'simulation',
  `status` varchar(16) NOT NULL,
  `priority` int(11) NOT NULL DEFAULT 0,
  `owner_id` int(10) unsigned DEFAULT NULL,
  `jobs_submitted` int(11) NOT NULL DEFAULT 0,
  `tasks_per_job` int(11) NOT NULL,
  `config` longtext DEFAULT NULL,
  `config_hash` varchar(64) NOT NULL,
  `retry` text DEFAULT NULL,
  `created_at` bigint(20) NOT NULL,
  `updated_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `dataset_status_priority_idx` (`status`,`priority`),
  KEY `dataset_owner_idx` (`owner_id`),
  CONSTRAINT `dataset_owner_id_foreign` FOREIGN KEY (`owner_id`) REFERENCES `user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `steering_parameter` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `name` varchar(190) NOT NULL,
  `type` varchar(16) NOT NULL,
  `value` text NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `steering_parameter_dataset_name_uq` (`dataset_id`,`name`),
  CONSTRAINT `steering_parameter_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `metaproject` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `name` varchar(190) NOT NULL,
  `url` varchar(2048) NOT NULL,
  `md5` varchar(32) DEFAULT NULL,
  `sha256` varchar(64) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `metaproject_dataset_name_uq` (`dataset_id`,`name`),
  CONSTRAINT `metaproject_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task_rel` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `task_index` int(11) NOT NULL,
  `name` varchar(190) NOT NULL,
  `requirements` text NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `task_rel_dataset_index_uq` (`dataset_id`,`task_index`),
  UNIQUE KEY `task_rel_dataset_name_uq` (`dataset_id`,`name`),
  CONSTRAINT `task_rel_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task_rel_dep` (
  `task_rel_id` int(10) unsigned NOT NULL,
  `depends_on_id` int(10) unsigned NOT NULL,
  PRIMARY KEY (`task_rel_id`,`depends_on_id`),
  KEY `task_rel_dep_depends_on_id_foreign` (`depends_on_id`),
  CONSTRAINT `task_rel_dep_depends_on_id_foreign` FOREIGN KEY (`depends_on_id`) REFERENCES `task_rel` (`id`) ON DELETE CASCADE,
  CONSTRAINT `task_rel_dep_task_rel_id_foreign` FOREIGN KEY (`task_rel_id`) REFERENCES `task_rel` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `tray` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `task_rel_id` int(10) unsigned NOT NULL,
  `tray_index` int(11) NOT NULL,
  `name` varchar(190) NOT NULL,
  `iterations` int(11) NOT NULL DEFAULT 1,
  `metaproject` varchar(190) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `tray_task_rel_index_uq` (`task_rel_id`,`tray_index`),
  KEY `tray_dataset_id_foreign` (`dataset_id`),
  CONSTRAINT `tray_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `tray_task_rel_id_foreign` FOREIGN KEY (`task_rel_id`) REFERENCES `task_rel` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `module` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `tray_id` int(10) unsigned NOT NULL,
  `module_index` int(11) NOT NULL,
  `name` varchar(190) NOT NULL,
  `class` varchar(190) NOT NULL,
  `src` varchar(2048) DEFAULT NULL,
  `src_sha256` varchar(64) DEFAULT NULL,
  `src_md5` varchar(32) DEFAULT NULL,
  `src_content` longtext DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `module_tray_index_uq` (`tray_id`,`module_index`),
  KEY `module_dataset_id_foreign` (`dataset_id`),
  CONSTRAINT `module_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `module_tray_id_foreign` FOREIGN KEY (`tray_id`) REFERENCES `tray` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `cparameter` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `module_id` int(10) unsigned NOT NULL,
  `name` varchar(190) NOT NULL,
  `value` text NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `cparameter_module_name_uq` (`module_id`,`name`),
  KEY `cparameter_dataset_id_foreign` (`dataset_id`),
  CONSTRAINT `cparameter_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `cparameter_module_id_foreign` FOREIGN KEY (`module_id`) REFERENCES `module` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `dataset_grid` (
  `dataset_id` int(10) unsigned NOT NULL,
  `grid_id` int(10) unsigned NOT NULL,
  PRIMARY KEY (`dataset_id`,`grid_id`),
  KEY `dataset_grid_grid_idx` (`grid_id`),
  CONSTRAINT `dataset_grid_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `dataset_grid_grid_id_foreign` FOREIGN KEY (`grid_id`) REFERENCES `grid` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `run` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `run_number` int(11) NOT NULL,
  `date` varchar(10) NOT NULL,
  `created_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `run_dataset_number_uq` (`dataset_id`,`run_number`),
  KEY `run_date_idx` (`date`),
  CONSTRAINT `run_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `job` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `job_index` int(11) NOT NULL,
  `status` varchar(16) NOT NULL,
  `run_id` int(10) unsigned DEFAULT NULL,
  `args` text DEFAULT NULL,
  `status_changed_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `job_dataset_index_uq` (`dataset_id`,`job_index`),
  KEY `job_dataset_status_idx` (`dataset_id`,`status`),
  KEY `job_run_idx` (`run_id`),
  CONSTRAINT `job_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `job_run_id_foreign` FOREIGN KEY (`run_id`) REFERENCES `run` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `job_id` int(10) unsigned NOT NULL,
  `task_rel_id` int(10) unsigned NOT NULL,
  `task_index` int(11) NOT NULL,
  `name` varchar(190) NOT NULL,
  `status` varchar(16) NOT NULL,
  `status_changed_at` bigint(20) NOT NULL,
  `transition_token` varchar(32) DEFAULT NULL,
  `req_cpu` int(11) NOT NULL DEFAULT 1,
  `req_gpu` int(11) NOT NULL DEFAULT 0,
  `req_memory` int(11) NOT NULL DEFAULT 2000,
  `req_disk` int(11) NOT NULL DEFAULT 10000,
  `req_time` int(11) NOT NULL DEFAULT 60,
  `req_site` varchar(190) DEFAULT NULL,
  `grid_id` int(10) unsigned DEFAULT NULL,
  `batch_id` varchar(190) DEFAULT NULL,
  `passkey_hash` varchar(64) DEFAULT NULL,
  `lease_until` bigint(20) DEFAULT NULL,
  `next_retry_at` bigint(20) DEFAULT NULL,
  `failures` int(11) NOT NULL DEFAULT 0,
  `evictions` int(11) NOT NULL DEFAULT 0,
  `submit_errors` int(11) NOT NULL DEFAULT 0,
  `error_summary` text DEFAULT NULL,
  `host` varchar(255) DEFAULT NULL,
  `started_at` bigint(20) DEFAULT NULL,
  `finished_at` bigint(20) DEFAULT NULL,
  `last_heartbeat_at` bigint(20) DEFAULT NULL,
  `cpu_seconds` double DEFAULT NULL,
  `rss_mb` double DEFAULT NULL,
  `disk_mb` double DEFAULT NULL,
  `wall_seconds` double DEFAULT NULL,
  `gpu_util` double DEFAULT NULL,
  `attempt` varchar(64) DEFAULT NULL,
  `claimed_by` varchar(255) DEFAULT NULL,
  `batch_reason` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `task_job_index_uq` (`job_id`,`task_index`),
  KEY `task_task_rel_id_foreign` (`task_rel_id`),
  KEY `task_status_dataset_idx` (`status`,`dataset_id`),
  KEY `task_dataset_status_idx` (`dataset_id`,`status`),
  KEY `task_grid_status_idx` (`grid_id`,`status`),
  KEY `task_dataset_grid_status_idx` (`dataset_id`,`grid_id`,`status`),
  CONSTRAINT `task_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `task_grid_id_foreign` FOREIGN KEY (`grid_id`) REFERENCES `grid` (`id`),
  CONSTRAINT `task_job_id_foreign` FOREIGN KEY (`job_id`) REFERENCES `job` (`id`) ON DELETE CASCADE,
  CONSTRAINT `task_task_rel_id_foreign` FOREIGN KEY (`task_rel_id`) REFERENCES `task_rel` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `file` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `dataset_id` int(10) unsigned NOT NULL,
  `job_id` int(10) unsigned DEFAULT NULL,
  `task_id` int(10) unsigned DEFAULT NULL,
  `kind` varchar(16) NOT NULL,
  `local_name` varchar(1024) NOT NULL,
  `url` varchar(2048) NOT NULL,
  `temp_url` varchar(2048) DEFAULT NULL,
  `type` varchar(16) NOT NULL DEFAULT 'permanent',
  `size` bigint(20) DEFAULT NULL,
  `md5` varchar(32) DEFAULT NULL,
  `sha256` varchar(64) DEFAULT NULL,
  `state` varchar(16) NOT NULL,
  `error` text DEFAULT NULL,
  `created_at` bigint(20) NOT NULL,
  `updated_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `file_task_idx` (`task_id`),
  KEY `file_job_idx` (`job_id`),
  KEY `file_dataset_kind_idx` (`dataset_id`,`kind`),
  CONSTRAINT `file_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `file_job_id_foreign` FOREIGN KEY (`job_id`) REFERENCES `job` (`id`) ON DELETE CASCADE,
  CONSTRAINT `file_task_id_foreign` FOREIGN KEY (`task_id`) REFERENCES `task` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task_stat` (
  `task_id` int(10) unsigned NOT NULL,
  `dataset_id` int(10) unsigned NOT NULL,
  `name` varchar(190) NOT NULL,
  `value` double NOT NULL,
  PRIMARY KEY (`task_id`,`name`),
  KEY `task_stat_dataset_name_idx` (`dataset_id`,`name`),
  CONSTRAINT `task_stat_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE,
  CONSTRAINT `task_stat_task_id_foreign` FOREIGN KEY (`task_id`) REFERENCES `task` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `dataset_stat` (
  `dataset_id` int(10) unsigned NOT NULL,
  `name` varchar(190) NOT NULL,
  `n` bigint(20) NOT NULL,
  `sum` double NOT NULL,
  `sum_sq` double NOT NULL,
  `min` double NOT NULL,
  `max` double NOT NULL,
  PRIMARY KEY (`dataset_id`,`name`),
  CONSTRAINT `dataset_stat_dataset_id_foreign` FOREIGN KEY (`dataset_id`) REFERENCES `dataset` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task_log` (
  `task_id` int(10) unsigned NOT NULL,
  `name` varchar(64) NOT NULL,
  `data` longtext DEFAULT NULL,
  `updated_at` bigint(20) NOT NULL,
  PRIMARY KEY (`task_id`,`name`),
  CONSTRAINT `task_log_task_id_foreign` FOREIGN KEY (`task_id`) REFERENCES `task` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `node` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `hostname` varchar(255) NOT NULL,
  `grid_id` int(10) unsigned DEFAULT NULL,
  `ok_count` int(11) NOT NULL DEFAULT 0,
  `fail_count` int(11) NOT NULL DEFAULT 0,
  `recent` varchar(64) NOT NULL DEFAULT '',
  `blackholed_until` bigint(20) DEFAULT NULL,
  `updated_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `node_hostname_uq` (`hostname`),
  KEY `node_grid_id_foreign` (`grid_id`),
  CONSTRAINT `node_grid_id_foreign` FOREIGN KEY (`grid_id`) REFERENCES `grid` (`id`) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `history` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `entity` varchar(16) NOT NULL,
  `entity_id` int(11) NOT NULL,
  `dataset_id` int(11) DEFAULT NULL,
  `action` varchar(32) NOT NULL,
  `from_status` varchar(16) DEFAULT NULL,
  `to_status` varchar(16) DEFAULT NULL,
  `actor` varchar(255) NOT NULL,
  `reason` text DEFAULT NULL,
  `created_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `history_entity_idx` (`entity`,`entity_id`),
  KEY `history_dataset_idx` (`dataset_id`,`created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task_flow` (
  `dataset_id` int(11) NOT NULL,
  `span_ms` int(10) unsigned NOT NULL,
  `bucket_start` bigint(20) NOT NULL,
  `from_status` varchar(16) NOT NULL,
  `to_status` varchar(16) NOT NULL,
  `n` bigint(20) NOT NULL,
  PRIMARY KEY (`dataset_id`,`span_ms`,`bucket_start`,`from_status`,`to_status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `task_flow_state` (
  `id` int(10) unsigned NOT NULL,
  `history_id` bigint(20) NOT NULL,
  `seen_id` bigint(20) NOT NULL,
  `seen_at` bigint(20) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `knex_migrations` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) DEFAULT NULL,
  `batch` int(11) DEFAULT NULL,
  `migration_time` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `knex_migrations_lock` (
  `index` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `is_locked` int(11) DEFAULT NULL,
  PRIMARY KEY (`index`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO `task_flow_state` (`id`, `history_id`, `seen_id`, `seen_at`) VALUES (1, 0, 0, 0);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0001_initial', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0002_web_indexes', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0003_history_flow_index', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0004_task_flow', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0005_task_attempt', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0006_transition_token_unindexed', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations` (`name`, `batch`, `migration_time`) VALUES ('0007_task_batch_reason', 1, CURRENT_TIMESTAMP);
INSERT INTO `knex_migrations_lock` (`index`, `is_locked`) VALUES (1, 0);
SET FOREIGN_KEY_CHECKS = 1;
