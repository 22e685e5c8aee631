// The node-postgres (npm "pg") client of proxy/pooled_clients_test.go.
//
// A pg.Pool of WORKERS clients (more than the proxy's pool size), all
// busy at once: named queries ({name, text, values}), which pg parses
// once per connection and then only binds and executes, run many times
// with different parameters; a plain query; a transaction committed and
// one rolled back on a checked-out client. It checks every result,
// prints "ok TAG WORKERS workers" and exits 0, or says what went wrong and
// exits 1.
//
// Run: NODE_PATH=<node_modules with pg> node node_client.js HOST PORT USER PASSWORD DATABASE TAG WORKERS
'use strict';

const { Pool } = require('pg');

const ROUNDS = 3, CALLS = 10, ROWS = 5;
const INSERT = 'INSERT INTO clients_kv (tag, worker, i, v) VALUES ($1, $2, $3, $4)';
const COUNT = 'SELECT count(*)::int AS n FROM clients_kv WHERE tag = $1 AND worker = $2';

function expect(what, got, want) {
  if (got !== want) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

async function one(c, q) {
  const res = await c.query(q);
  if (res.rows.length !== 1) {
    throw new Error(`${q.text || q}: ${res.rows.length} rows, want 1`);
  }
  return res.rows[0];
}

// barrier is where n workers meet: arrive() once each (also on
// failure, so that the others do not wait), and meet() to arrive and wait.
function barrier(n) {
  let left = n, open;
  const all = new Promise((resolve) => { open = resolve; });
  return () => {
    let arrived = false;
    const arrive = () => { if (!arrived) { arrived = true; if (--left === 0) open(); } };
    const meet = () => {
      arrive();
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the other workers did not get there in 60 s')), 60000);
      });
      return Promise.race([all, late]).finally(() => clearTimeout(timer));
    };
    return { arrive, meet };
  };
}

// work is one worker's share, on a client of its own for the whole run,
// so its named statements are reused on every transaction. After its
// first round it waits for all the others, so that all go on at once,
// more than the proxy's pool has servers.
async function work(pool, tag, w, { meet }) {
  const c = await pool.connect();
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < CALLS; i++) {
        const row = await one(c, { name: 'add', text: 'SELECT $1::int + $2::int AS s', values: [w, r * CALLS + i] });
        expect('sum', row.s, w + r * CALLS + i);
      }
      expect('plain', (await one(c, 'SELECT 40 + 2 AS n')).n, 42);
      await c.query('BEGIN');
      for (let k = 0; k < ROWS; k++) {
        await c.query({ name: 'ins', text: INSERT, values: [tag, w, r * ROWS + k, 'node'] });
      }
      expect('count in transaction', (await one(c, { name: 'count', text: COUNT, values: [tag, w] })).n, (r + 1) * ROWS);
      await c.query('COMMIT');
      await c.query('BEGIN');
      await c.query({ name: 'ins', text: INSERT, values: [tag, w, 1000 + r, 'rolled back'] });
      await c.query('ROLLBACK');
      expect('count after rollback', (await one(c, { name: 'count', text: COUNT, values: [tag, w] })).n, (r + 1) * ROWS);
      if (r === 0) {
        await meet();
      }
    }
  } finally {
    c.release();
  }
}

// shared runs named queries on whichever pooled client is free, so each
// connection meets them at different times.
async function shared(pool, w) {
  for (let i = 0; i < CALLS; i++) {
    const row = await one(pool, { name: 'mul', text: 'SELECT $1::int * $2::int AS p', values: [w, i] });
    expect('product', row.p, w * i);
  }
}

async function main() {
  if (process.argv.length !== 9) {
    console.error('usage: node node_client.js HOST PORT USER PASSWORD DATABASE TAG WORKERS');
    process.exit(2);
  }
  const [host, port, user, password, database, tag, workers] = process.argv.slice(2);
  const n = Number(workers);
  const pool = new Pool({
    host, port: Number(port), user, password, database, ssl: false,
    max: n, connectionTimeoutMillis: 10000, query_timeout: 60000,
  });
  pool.on('error', (err) => { console.error('node: idle client:', err.message); process.exitCode = 1; });
  const jobs = [];
  const place = barrier(n);
  for (let w = 0; w < n; w++) {
    const p = place();
    jobs.push(work(pool, tag, w, p).catch((e) => { throw new Error(`worker ${w}: ${e.message}`); }).finally(p.arrive));
  }
  let failed = (await Promise.allSettled(jobs)).filter((r) => r.status === 'rejected');
  const more = [];
  for (let w = 0; w < 2 * n; w++) {
    more.push(shared(pool, w).catch((e) => { throw new Error(`shared ${w}: ${e.message}`); }));
  }
  failed = failed.concat((await Promise.allSettled(more)).filter((r) => r.status === 'rejected'));
  await pool.end();
  for (const f of failed) {
    console.error('node:', f.reason.message);
  }
  if (failed.length > 0 || process.exitCode) {
    process.exit(1);
  }
  console.log(`ok ${tag} ${n} workers`);
}

main().catch((e) => { console.error('node:', e.stack || e.message); process.exit(1); });
