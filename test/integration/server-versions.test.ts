import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';
import { backupEnv, type CliResult, runCli } from '../helpers/cli.js';
import { type PgCluster, psql, startCluster } from '../helpers/postgres-cluster.js';
import { tempDir } from '../helpers/services.js';

/**
 * Every server version from 13 to 18, for real: 13, 14 and 15 backed up with the machine's
 * pg_dump 15 and restored into 16, 17 and 18 (the upgrade path), restore tests across versions,
 * exit 4 for a server newer than every pg_dump here, and an archive newer than pg_restore reads.
 * Servers: Debian's 15, the pg-server-N devDependencies for the others (test/helpers/postgres-cluster.ts).
 */

const SOURCES = [13, 14, 15] as const;
const TARGETS = [16, 17, 18] as const;
type Major = (typeof SOURCES)[number] | (typeof TARGETS)[number];

/** How each source's backup is made, so each restore path runs across versions. */
const PROFILE: Record<(typeof SOURCES)[number], { what: string; extra: Record<string, string>; encrypt: boolean }> = {
  13: { what: 'gzip inside the archive, gpg-encrypted (restored as a decrypted stream)', extra: {}, encrypt: true },
  14: { what: 'zstd around the archive (restored as a decompressed stream)', extra: { BACKUP_COMPRESSION: 'zstd:3' }, encrypt: false },
  15: { what: 'gzip inside a plain archive (restored from the file)', extra: {}, encrypt: false },
};

/** Types and objects whose dump or restore changed between 13 and 18, small enough to be quick. */
const SEED_SQL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, mood mood, created timestamptz NOT NULL DEFAULT '2026-01-01 00:00+00');
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(12,2),
  tags text[], meta jsonb, blob bytea, at tsrange, total numeric GENERATED ALWAYS AS (amount * 2) STORED);
CREATE TABLE events (id int, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" ("Key" text PRIMARY KEY, v double precision);
INSERT INTO customers (name, email, mood) SELECT 'customer ' || g, 'c' || g || '@example.test', (ARRAY['sad','ok','happy'])[1 + g % 3]::mood FROM generate_series(1, 300) g;
INSERT INTO orders (customer_id, amount, tags, meta, blob, at)
  SELECT 1 + (g % 300), (g * 3.17)::numeric(12,2), ARRAY['a' || (g % 7), 'b'], jsonb_build_object('n', g, 'note', repeat('x', g % 40)),
         decode(md5(g::text), 'hex'), tsrange('2026-01-01'::timestamp + g * interval '1 hour', NULL)
  FROM generate_series(1, 2000) g;
INSERT INTO events SELECT g, DATE '2025-06-01' + g, 'event ' || g FROM generate_series(1, 400) g;
INSERT INTO "Odd Schema"."Mixed Case" SELECT 'k' || g, g / 7.0 FROM generate_series(1, 100) g;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 1000;
CREATE MATERIALIZED VIEW mood_counts AS SELECT mood, count(*) AS n FROM customers GROUP BY mood;
CREATE FUNCTION order_total(c int) RETURNS numeric LANGUAGE sql STABLE AS $$ SELECT sum(amount) FROM orders WHERE customer_id = c $$;
CREATE INDEX orders_meta ON orders USING gin (meta);
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 500), 'UTF8'));
COMMENT ON TABLE customers IS 'people who buy';
`;

/** What "restored exactly" means here: md5 of every table's ordered rows, row counts, and a few objects' results. */
async function fingerprint(c: PgCluster, db: string): Promise<Record<string, string>> {
  const tables = (
    await psql(
      c,
      db,
      `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    )
  )
    .split('\n')
    .filter(Boolean);
  const out: Record<string, string> = {};
  for (const t of tables) {
    out[t] = await psql(
      c,
      db,
      `SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM ${t} t`,
    );
  }
  out['view big_orders'] = await psql(c, db, 'SELECT count(*) FROM big_orders');
  out['matview mood_counts'] = await psql(c, db, `SELECT string_agg(mood || '=' || n, ',' ORDER BY mood) FROM mood_counts`);
  out['function order_total(7)'] = await psql(c, db, 'SELECT order_total(7)');
  out['large objects'] = await psql(
    c,
    db,
    `SELECT count(*) || ' ' || md5(string_agg(lo_get(oid)::text, '|' ORDER BY oid)) FROM pg_largeobject_metadata`,
  );
  out['identity next'] = await psql(
    c,
    db,
    `SELECT pg_get_serial_sequence('orders', 'id') || ' ' || (SELECT last_value FROM orders_id_seq)`,
  );
  out['serial next'] = await psql(c, db, 'SELECT last_value FROM customers_id_seq');
  out['comment'] = await psql(c, db, `SELECT obj_description('customers'::regclass, 'pg_class')`);
  return out;
}

/** Run `fns` at most `n` at a time (2 cores: a few CLI processes at once, not nine). */
async function limited<T>(n: number, fns: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(fns.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, fns.length) }, async () => {
      while (next < fns.length) {
        const i = next++;
        results[i] = await fns[i]!();
      }
    }),
  );
  return results;
}

const exists = async (c: PgCluster, db: string) =>
  (await psql(c, 'postgres', `SELECT count(*) FROM pg_database WHERE datname = '${db.replace(/'/g, "''")}'`)) === '1';

/** Only the machine's PostgreSQL client (pg_dump 15), never a developer's PG_DUMP_PATH. */
const PATH = process.env.PATH;

describe('PostgreSQL servers 13 to 18 with the machine pg_dump 15', () => {
  const servers = {} as Record<Major, PgCluster>;
  const dirs = {} as Record<(typeof SOURCES)[number], string>;
  const envs = {} as Record<(typeof SOURCES)[number], NodeJS.ProcessEnv>;
  const names = {} as Record<(typeof SOURCES)[number], string>;
  const source = {} as Record<(typeof SOURCES)[number], Record<string, string>>;

  beforeAll(async () => {
    const pgDump = execFileSync('pg_dump', ['--version'], { env: { PATH } }).toString();
    // The combinations this file proves assume the machine's client is 15 (Debian postgresql-client-15).
    expect(pgDump).toMatch(/\(PostgreSQL\) 15\./);
    const started = await Promise.all([...SOURCES, ...TARGETS].map((major) => startCluster({ major })));
    for (const c of started) servers[c.major as Major] = c;
    expect(Object.keys(servers).map(Number)).toEqual([13, 14, 15, 16, 17, 18]);
    await Promise.all(
      SOURCES.map(async (v) => {
        const c = servers[v];
        await psql(c, 'postgres', 'CREATE DATABASE shop');
        await psql(c, 'shop', SEED_SQL);
        source[v] = await fingerprint(c, 'shop');
        dirs[v] = tempDir(`pgbak-v${v}-`);
        envs[v] = {
          ...backupEnv({ database: 'shop', dir: dirs[v], encrypt: PROFILE[v].encrypt, extra: PROFILE[v].extra }),
          DATABASE_URL: c.url('shop'),
        };
        const b = await runCli(['backup', '--no-upload', '--json'], { env: envs[v] });
        expect(b.code, b.stderr).toBe(0);
        names[v] = jsonResult(b.stdout).name;
      }),
    );
  });

  afterAll(async () => {
    await Promise.allSettled(Object.values(servers).map((c) => c.stop()));
  });

  it('records in each manifest the server version it dumped and the pg_dump version that dumped it', () => {
    for (const v of SOURCES) {
      const m = JSON.parse(readFileSync(join(dirs[v], 'backups', `${names[v]}.manifest.json`), 'utf8'));
      expect(m.server.version).toMatch(new RegExp(`^${v}\\.\\d+`));
      expect(Math.floor(m.server.versionNum / 10000)).toBe(v);
      expect(m.pgDump.version).toMatch(/^15\.\d+$/);
      expect(m.pgDump.path).toMatch(/pg_dump$/);
      expect(m.compression).toMatchObject(v === 14 ? { method: 'zstd', by: 'stream' } : { method: 'gzip', level: 9, by: 'pg_dump' });
      expect(m.encryption === null).toBe(!PROFILE[v].encrypt);
      // The source's fingerprint is not trivial: every table has rows.
      expect(source[v]['public.orders']).toMatch(/^2000 rows, md5 [0-9a-f]{32}$/);
    }
  });

  it('restores each backup of 13, 14 and 15 into 16, 17 and 18 with the same data', async () => {
    const pairs = SOURCES.flatMap((from) => TARGETS.map((to) => ({ from, to })));
    const runs = await limited(
      3,
      pairs.map(({ from, to }) => async () => {
        const db = `from_${from}`;
        const r = await runCli(['restore', '--latest', '--target-env', 'PGBAK_TARGET', '--create', '--json'], {
          env: { ...envs[from], PGBAK_TARGET: servers[to].url(db) },
        });
        return { from, to, db, r };
      }),
    );
    for (const { from, to, db, r } of runs) {
      expect(r.code, `${from} → ${to}: ${r.stderr}`).toBe(0);
      const out = jsonResult(r.stdout);
      expect(out).toMatchObject({ name: names[from], mode: from === 15 ? 'file' : 'stream', target: { database: db, created: true } });
      expect(out.server.version).toMatch(new RegExp(`^${from}\\.`));
      expect(await psql(servers[to], db, 'SHOW server_version_num').then((n) => Math.floor(Number(n) / 10000))).toBe(to);
      expect(await fingerprint(servers[to], db), `${from} → ${to}`).toEqual(source[from]);
    }
  });

  it('verify --restore-test restores each backup into a 16, 17 and 18 server (VERIFY_DATABASE_URL) and into its own', async () => {
    const cases = SOURCES.flatMap((from) => [...TARGETS.map((to) => ({ from, to: to as Major })), { from, to: from as Major }]);
    const runs = await limited(
      3,
      cases.map(({ from, to }) => async () => {
        const env = { ...envs[from], ...(to === from ? {} : { VERIFY_DATABASE_URL: servers[to].url('postgres') }) };
        return { from, to, r: await runCli(['verify', names[from], '--restore-test', '--json'], { env }) };
      }),
    );
    for (const { from, to, r } of runs) {
      expect(r.code, `${from} → ${to}: ${r.stderr}`).toBe(0);
      const [v] = jsonResults(r.stdout);
      expect(v).toMatchObject({ name: names[from], ok: true, kind: 'restore-test' });
      const checks = Object.fromEntries(v.checks.map((c: { check: string; ok: boolean; detail?: string }) => [c.check, c]));
      expect(checks['pg_restore'].ok, `${from} → ${to}`).toBe(true);
      expect(checks['tables']).toMatchObject({ ok: true, detail: 'all 6 tables of the archive exist' });
      // The partitioned parent (events) holds no rows of its own: the manifest counts the 5 tables that do.
      expect(checks['row counts']).toMatchObject({ ok: true, detail: "5 tables, 2800 rows, all equal to the backup's" });
      // The scratch database was made on the server asked for, and dropped there again.
      expect(v.restoreTest.scratchDatabase).toMatch(/^pgbak_verify_shop_/);
      expect(await exists(servers[to], v.restoreTest.scratchDatabase)).toBe(false);
    }
    // The run's record on disk says so too (the last one written).
    expect(readdirSync(join(dirs[13], 'backups')).filter((f) => f.endsWith('.verify.json'))).toEqual([`${names[13]}.verify.json`]);
  });

  it('a 16, 17 or 18 server with no pg_dump as new: exit 4 before anything is dumped, naming the client to install', async () => {
    const runs = await Promise.all(
      TARGETS.map(async (v) => {
        const dir = tempDir(`pgbak-nodump-${v}-`);
        const env = { ...backupEnv({ database: 'postgres', dir }), DATABASE_URL: servers[v].url('postgres'), PATH };
        return { v, dir, r: await runCli(['backup', '--no-upload'], { env }) };
      }),
    );
    for (const { v, dir, r } of runs) {
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(
        new RegExp(`no pg_dump of version ${v} or newer \\(the server's\\) was found; found: \\S*pg_dump \\(15\\.\\d+\\)`),
      );
      expect(r.stderr).toContain(`install postgresql-client-${v} or newer, or point PG_DUMP_PATH at its bin directory`);
      expect(readdirSync(join(dir, 'backups')).filter((f) => !f.startsWith('.'))).toEqual([]);
    }
  });

  describe('an archive newer than the local pg_restore 15 reads (header patched to format 1.16, as pg_dump 17 writes)', () => {
    /** A copy of a source's BACKUP_DIR whose archive says format 1.16; the manifest's sha256 made to match it again. */
    function newerArchive(from: 14 | 15): NodeJS.ProcessEnv {
      const dir = tempDir(`pgbak-newer-${from}-`);
      // The backup itself, without the verification records the tests above wrote.
      cpSync(join(dirs[from], 'backups'), join(dir, 'backups'), { recursive: true, filter: (f) => !f.endsWith('.verify.json') });
      const manifestFile = join(dir, 'backups', `${names[from]}.manifest.json`);
      const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
      const artifact = join(dir, 'backups', m.artifact.key);
      let archive = from === 14 ? execFileSync('zstd', ['-d', '-c', artifact]) : readFileSync(artifact);
      expect(archive.subarray(0, 8)).toEqual(Buffer.from([0x50, 0x47, 0x44, 0x4d, 0x50, 1, 14, 0])); // PGDMP 1.14.0
      archive[6] = 16;
      if (from === 14) archive = execFileSync('zstd', ['-3', '-c'], { input: archive });
      writeFileSync(artifact, archive);
      m.artifact.size = archive.length;
      m.artifact.sha256 = createHash('sha256').update(archive).digest('hex');
      writeFileSync(manifestFile, JSON.stringify(m, null, 2) + '\n');
      return { ...envs[from], BACKUP_DIR: join(dir, 'backups'), LOG_FILE: join(dir, 'backup-db.log') };
    }

    const expectRefused = (r: CliResult) => {
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/is archive format 1\.16 \(written by pg_dump 17 or newer\), newer than \S*pg_restore 15\.\d+ can read/);
      expect(r.stderr).toContain('install postgresql-client-17 or newer, or point PG_DUMP_PATH at its bin directory');
    };

    it('restore refuses a plain archive before the target is touched: a non-empty target keeps its data, --create creates nothing', async () => {
      const env = newerArchive(15);
      const target = servers[17];
      await psql(target, 'postgres', 'CREATE DATABASE keep_me');
      await psql(target, 'keep_me', `CREATE TABLE customers (id int); INSERT INTO customers VALUES (42);`);
      const [over, created] = await Promise.all([
        runCli(['restore', names[15], '--target-env', 'PGBAK_TARGET', '--yes'], { env: { ...env, PGBAK_TARGET: target.url('keep_me') } }),
        runCli(['restore', names[15], '--target-env', 'PGBAK_TARGET', '--create'], {
          env: { ...env, PGBAK_TARGET: target.url('never_made') },
        }),
      ]);
      expectRefused(over);
      expect(over.stderr).toContain(`backup ${names[15]} is archive format 1.16`);
      expect(await psql(target, 'keep_me', 'SELECT id FROM customers')).toBe('42');
      expectRefused(created);
      expect(await exists(target, 'never_made')).toBe(false);
      // verify --restore-test says the same (an environment problem, not a bad backup): exit 4, nothing left behind.
      const v = await runCli(['verify', names[15], '--restore-test', '--json'], {
        env: { ...env, VERIFY_DATABASE_URL: target.url('postgres') },
      });
      expect(v.code, v.stderr).toBe(4);
      expect(jsonResults(v.stdout)[0]).toMatchObject({
        ok: false,
        exitCode: 4,
        error: {
          code: 'pg-tool-missing',
          message: expect.stringMatching(
            /^backup \S+ is archive format 1\.16 \(written by pg_dump 17 or newer\), newer than \S*pg_restore 15/,
          ),
          hint: 'install postgresql-client-17 or newer, or point PG_DUMP_PATH at its bin directory',
        },
      });
      expect(await psql(target, 'postgres', `SELECT count(*) FROM pg_database WHERE datname LIKE 'pgbak_verify_%'`)).toBe('0');
    });

    it('restore of a stream (zstd layer) stops in pg_restore before it connects, with the same exit 4 and hint', async () => {
      const env = newerArchive(14);
      const target = servers[18];
      await psql(target, 'postgres', 'CREATE DATABASE keep_me_too');
      await psql(target, 'keep_me_too', `CREATE TABLE customers (id int); INSERT INTO customers VALUES (7);`);
      const r = await runCli(['restore', names[14], '--target-env', 'PGBAK_TARGET', '--yes'], {
        env: { ...env, PGBAK_TARGET: target.url('keep_me_too') },
      });
      expectRefused(r);
      expect(await psql(target, 'keep_me_too', 'SELECT id FROM customers')).toBe('7');
      const created = await runCli(['restore', names[14], '--target-env', 'PGBAK_TARGET', '--create'], {
        env: { ...env, PGBAK_TARGET: target.url('dropped_again') },
      });
      expectRefused(created);
      // Streaming, the database is created just before pg_restore starts; the failed run drops it again.
      expect(await exists(target, 'dropped_again')).toBe(false);
    });
  });
});
