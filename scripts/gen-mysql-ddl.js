#!/usr/bin/env node
// Regenerate deploy/sql/mysql.sql from the migrations, on a scratch database of the
// MariaDB/MySQL server at $FIRN_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306).
const fs = require('node:fs');
const path = require('node:path');
const { connect, mysqlDdl } = require('../packages/core/dist');

(async () => {
  const root = process.env.FIRN_TEST_MYSQL_URL || 'mysql://root@127.0.0.1:3306';
  const name = `firn_ddl_${process.pid}`;
  const db = await connect(`${root}/${name}`);
  try {
    const sql = await mysqlDdl(db);
    const out = path.join(__dirname, '..', 'deploy', 'sql', 'mysql.sql');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, sql);
    console.log(`wrote ${out}`);
  } finally {
    await db.raw('DROP DATABASE IF EXISTS ??', [name]);
    await db.destroy();
  }
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
