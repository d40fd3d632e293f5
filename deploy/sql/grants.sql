-- Firn: least-privilege MySQL / MariaDB accounts. See docs/operator.md ("MySQL accounts").
--
-- One account per daemon, each with only the statements it runs on the tables it uses:
--
--   firn_migrate  DDL: creates and upgrades the schema (`firn db migrate`). Used by people
--                 during installs and upgrades, never by a running daemon.
--   firn_tray     firn-tray: submits datasets (config tables, jobs, tasks), controls them,
--                 users, tokens, grids. The only account that can read `user` and `token`.
--   firn_mon      firn-mon: pilots' updates — task usage, statistics, logs, output files.
--   firn_dh       firn-dh: file states, task / job / dataset status, node outcomes.
--   firn_queue    firn-queue (every site may have its own copy of this account): its grid
--                 row, claiming and updating tasks.
--   firn_web      firn-web, the web monitor: SELECT only, and no password hashes or tokens.
--
-- Every status change also writes a `history` row, hence INSERT on history everywhere.
-- No daemon account may DROP, ALTER or CREATE anything, nor DELETE outside the few tables
-- listed; a stolen firn_mon password cannot create datasets or users.
--
-- HOW TO RUN, as a MySQL administrator, AFTER the schema exists (table privileges need
-- the tables):
--   1. mysql -u root -p -e "CREATE DATABASE firn CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
--   2. firn db migrate --db 'mysql://root:ADMIN_PASSWORD@db.example.org:3306/firn'
--      (or: mysql -u root -p firn < deploy/sql/mysql.sql)
--   3. edit the passwords and hosts below, then: mysql -u root -p < deploy/sql/grants.sql
-- The file is idempotent: run it again after each `firn db migrate` that adds tables.
--
-- BEFORE RUNNING: replace every CHANGE_ME_… password (e.g. `openssl rand -base64 24`),
-- and replace the host '%' by the address or subnet each daemon connects from, e.g.
-- 'firn_tray'@'10.1.2.%'. A database not named `firn`: replace `firn.` throughout.
-- To require TLS on the connections add `REQUIRE SSL` to each CREATE USER (and use
-- `?ssl=true` at the end of the daemons' [db] url).

CREATE DATABASE IF NOT EXISTS firn CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE USER IF NOT EXISTS 'firn_migrate'@'%' IDENTIFIED BY 'CHANGE_ME_migrate';
CREATE USER IF NOT EXISTS 'firn_tray'@'%'    IDENTIFIED BY 'CHANGE_ME_tray';
CREATE USER IF NOT EXISTS 'firn_mon'@'%'     IDENTIFIED BY 'CHANGE_ME_mon';
CREATE USER IF NOT EXISTS 'firn_dh'@'%'      IDENTIFIED BY 'CHANGE_ME_dh';
CREATE USER IF NOT EXISTS 'firn_queue'@'%'   IDENTIFIED BY 'CHANGE_ME_queue';
CREATE USER IF NOT EXISTS 'firn_web'@'%'     IDENTIFIED BY 'CHANGE_ME_web';
-- To change a password later: ALTER USER 'firn_mon'@'%' IDENTIFIED BY '…';

-- ---------------------------------------------------------------------------------------
-- firn_migrate: schema changes (forward-only knex migrations, run under knex's lock).
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES,
      CREATE TEMPORARY TABLES, LOCK TABLES
  ON firn.* TO 'firn_migrate'@'%';

-- ---------------------------------------------------------------------------------------
-- Every daemon checks the migration state when it starts (knex takes its migration lock
-- even when nothing is pending): read the list, flip the lock.
GRANT SELECT         ON firn.knex_migrations      TO 'firn_tray'@'%', 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%';
GRANT SELECT, UPDATE ON firn.knex_migrations_lock TO 'firn_tray'@'%', 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%';

-- ---------------------------------------------------------------------------------------
-- firn_tray: reads everything; writes what submission and control need.
GRANT SELECT ON firn.* TO 'firn_tray'@'%';
GRANT INSERT, UPDATE         ON firn.dataset            TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.steering_parameter TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.metaproject        TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.task_rel           TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.task_rel_dep       TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.tray               TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.module             TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.cparameter         TO 'firn_tray'@'%';
GRANT INSERT, DELETE         ON firn.dataset_grid       TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.run                TO 'firn_tray'@'%';
GRANT INSERT, UPDATE         ON firn.job                TO 'firn_tray'@'%';
GRANT INSERT, UPDATE         ON firn.task               TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.file               TO 'firn_tray'@'%';
GRANT INSERT, UPDATE         ON firn.user               TO 'firn_tray'@'%';
GRANT INSERT, UPDATE, DELETE ON firn.token              TO 'firn_tray'@'%';
GRANT INSERT, UPDATE, DELETE ON firn.grid               TO 'firn_tray'@'%';
GRANT UPDATE                 ON firn.node               TO 'firn_tray'@'%';
GRANT INSERT                 ON firn.history            TO 'firn_tray'@'%';

-- ---------------------------------------------------------------------------------------
-- firn_mon, firn_dh, firn_queue and firn_web read every table except `user` and `token`.
GRANT SELECT ON firn.grid               TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.dataset            TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.steering_parameter TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.metaproject        TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task_rel           TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task_rel_dep       TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.tray               TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.module             TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.cparameter         TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.dataset_grid       TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.run                TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.job                TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task               TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.file               TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task_stat          TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.dataset_stat       TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task_log           TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.node               TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.history            TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task_flow          TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';
GRANT SELECT ON firn.task_flow_state    TO 'firn_mon'@'%', 'firn_dh'@'%', 'firn_queue'@'%', 'firn_web'@'%';

-- ---------------------------------------------------------------------------------------
-- firn_mon: pilot.start / heartbeat / stats / log / files / finish.
GRANT UPDATE                 ON firn.task         TO 'firn_mon'@'%';
GRANT INSERT, UPDATE, DELETE ON firn.task_stat    TO 'firn_mon'@'%';
GRANT INSERT, UPDATE         ON firn.dataset_stat TO 'firn_mon'@'%';
GRANT INSERT, UPDATE         ON firn.task_log     TO 'firn_mon'@'%';
GRANT INSERT, DELETE         ON firn.file         TO 'firn_mon'@'%';
GRANT INSERT, UPDATE         ON firn.node         TO 'firn_mon'@'%';
GRANT INSERT                 ON firn.history      TO 'firn_mon'@'%';

-- ---------------------------------------------------------------------------------------
-- firn_dh: copies and verification, retries, lost tasks, roll-up, clean-up, black holes.
GRANT UPDATE         ON firn.task    TO 'firn_dh'@'%';
GRANT UPDATE         ON firn.job     TO 'firn_dh'@'%';
GRANT UPDATE         ON firn.dataset TO 'firn_dh'@'%';
GRANT UPDATE         ON firn.file    TO 'firn_dh'@'%';
GRANT INSERT, UPDATE ON firn.node    TO 'firn_dh'@'%';
GRANT INSERT         ON firn.history TO 'firn_dh'@'%';
-- the web monitor's chart counts (task transitions per dataset and time bucket, see operator.md)
GRANT INSERT, UPDATE ON firn.task_flow       TO 'firn_dh'@'%';
GRANT UPDATE         ON firn.task_flow_state TO 'firn_dh'@'%';
-- PROCESS (server-wide: lets firn_dh see which transactions are open, and other sessions'
-- statements) lets firn-dh count history into task_flow as soon as no transaction that could
-- still commit below it is open. Without it, firn-dh waits 10 minutes after seeing a history
-- row before counting up to it, and the charts read those 10 minutes from history.
GRANT PROCESS ON *.* TO 'firn_dh'@'%';

-- ---------------------------------------------------------------------------------------
-- firn_queue: its grid row (created on first start, heartbeat, last cycle), claims and
-- batch bookkeeping on tasks (SELECT … FOR UPDATE SKIP LOCKED needs UPDATE too).
GRANT INSERT, UPDATE ON firn.grid    TO 'firn_queue'@'%';
GRANT UPDATE         ON firn.task    TO 'firn_queue'@'%';
GRANT INSERT         ON firn.history TO 'firn_queue'@'%';

-- ---------------------------------------------------------------------------------------
-- firn_web: read-only. Of `user` only the columns needed to show who owns what (no
-- password hashes); nothing of `token`.
GRANT SELECT (id, username, role, source, disabled, created_at) ON firn.user TO 'firn_web'@'%';
-- firn-web checks that the schema is current (it never migrates).
GRANT SELECT ON firn.knex_migrations      TO 'firn_web'@'%';
GRANT SELECT ON firn.knex_migrations_lock TO 'firn_web'@'%';
