import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors/index.js';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/processes.js';
import { jobScripts, kitPlaceholders } from '../helpers/recovery-kit.js';
import { parseEnvelope } from '../helpers/json-schemas.js';
import { type PgCluster, psql, startCluster } from '../helpers/postgres-cluster.js';
import { createBucket, execFileAsync, tempDir } from '../helpers/services.js';

/**
 * Whole-server backups (BACKUP_DATABASES=all) on a cluster of their own (the shared one holds
 * every other test's databases): 20 small databases, one the backup role may not connect to,
 * a template and a database that refuses connections (never backed up), one excluded, one
 * created between two runs; then `restore --all-databases` into a second, fresh cluster.
 */

let source: PgCluster;
let target: PgCluster;
let bucket: string;
const dir = tempDir('pgbak-alldb-');
const BAK_PASSWORD = 'bak-pw-x9';
const DATABASES = [...Array.from({ length: 19 }, (_, i) => `d${String(i + 1).padStart(2, '0')}`), 'secret'];

beforeAll(async () => {
  [source, target] = await Promise.all([startCluster(), startCluster()]);
  bucket = await createBucket('alldb');
  await psql(
    source,
    'postgres',
    `CREATE ROLE bak LOGIN PASSWORD '${BAK_PASSWORD}' IN ROLE pg_read_all_data;
     CREATE ROLE app_owner NOLOGIN;
     CREATE DATABASE seed;`,
  );
  await psql(
    source,
    'seed',
    `CREATE TABLE t (id int PRIMARY KEY, v text);
     INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200) g;
     ALTER TABLE t OWNER TO app_owner;`,
  );
  await psql(
    source,
    'postgres',
    `ALTER DATABASE seed IS_TEMPLATE true;
     CREATE DATABASE noconn; ALTER DATABASE noconn ALLOW_CONNECTIONS false;
     ${DATABASES.map((d) => `CREATE DATABASE ${d} TEMPLATE seed;`).join('\n')}
     CREATE DATABASE skipme TEMPLATE seed;
     REVOKE CONNECT ON DATABASE secret FROM PUBLIC;`,
  );
  await psql(source, 'd01', `INSERT INTO t SELECT g, 'only in d01' FROM generate_series(1001, 1500) g;`);
  await psql(source, 'd07', `CREATE TABLE extra AS SELECT g AS n FROM generate_series(1, 300) g;`);
}, 180_000);

afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const url = new URL(source.url('postgres'));
  url.username = 'bak';
  url.password = BAK_PASSWORD;
  return backupEnv({
    database: 'postgres',
    dir,
    bucket,
    extra: {
      DATABASE_URL: url.toString(),
      BACKUP_DATABASES: 'all',
      BACKUP_EXCLUDE_DATABASES: 'skipme',
      BACKUP_CONCURRENCY: '4',
      ...extra,
    },
  });
}

const backupsDir = () => join(dir, 'backups');
const files = (suffix: string) => readdirSync(backupsDir()).filter((f) => f.endsWith(suffix));

interface Server {
  job: string;
  status: string;
  databases: number;
  failed: string[];
  globalsIn: string | null;
  excluded: string[];
}

async function backupRun(): Promise<{
  code: number | null;
  stderr: string;
  servers: Server[];
  results: { database: string; status: string }[];
}> {
  const r = await runCli(['backup', '--json'], { env: env(), timeoutMs: 300_000 });
  const doc = parseEnvelope<{ database: string; status: string }>(r.stdout) as unknown as {
    servers: Server[];
    results: { database: string; status: string }[];
  };
  return { code: r.code, stderr: r.stderr, servers: doc.servers, results: doc.results };
}

describe('BACKUP_DATABASES=all: every database of a server', () => {
  it('backs up each database on its own, skips templates and the excluded, fails only the unreadable one (exit 3), stores the globals once a run; a database created later is backed up on the next run', async () => {
    const first = await backupRun();
    expect(first.code, first.stderr).toBe(ExitCode.partial);
    const names = first.results.map((r) => r.database);
    expect(names).toEqual(['d01', ...DATABASES.slice(1, 19), 'postgres', 'secret'].sort());
    for (const never of ['seed', 'noconn', 'skipme', 'template0', 'template1']) expect(names).not.toContain(never);
    expect(first.results.filter((r) => r.status === 'ok')).toHaveLength(20);
    expect(first.results.find((r) => r.database === 'secret')?.status).toBe('failed');
    expect(first.servers).toHaveLength(1);
    expect(first.servers[0]).toMatchObject({ status: 'partial', databases: 21, failed: ['secret'], excluded: ['skipme'] });
    // The one line naming every failed database, with the database's own cause.
    expect(first.stderr).toMatch(/1 of 21 databases not fully backed up: secret \(.*permission denied for database "secret"/);
    // One globals file, in the backup of DATABASE_URL's database; every manifest of the run names it.
    expect(files('.globals.sql')).toHaveLength(1);
    expect(first.servers[0]!.globalsIn).toMatch(/^postgres_\d{8}_\d{6}$/);
    const manifests = files('.manifest.json').map((f) => JSON.parse(readFileSync(join(backupsDir(), f), 'utf8')));
    expect(manifests).toHaveLength(20);
    expect(new Set(manifests.map((m) => m.serverRun.id)).size).toBe(1);
    expect(new Set(manifests.map((m) => m.serverRun.globalsIn))).toEqual(new Set([first.servers[0]!.globalsIn]));
    expect(manifests.filter((m) => m.globals !== null).map((m) => m.database)).toEqual(['postgres']);
    // The catalog is per database, as for one-database jobs.
    expect(
      files('.dump')
        .map((f) => f.replace(/_\d{8}_\d{6}\.dump$/, ''))
        .sort(),
    ).toEqual(names.filter((n) => n !== 'secret'));

    // A database created between two runs is backed up by the next one.
    await psql(source, 'postgres', 'CREATE DATABASE newdb TEMPLATE seed;');
    const second = await backupRun();
    expect(second.code, second.stderr).toBe(ExitCode.partial);
    expect(second.results.find((r) => r.database === 'newdb')?.status).toBe('ok');
    expect(second.results.filter((r) => r.status === 'ok')).toHaveLength(21);
    expect(files('.globals.sql')).toHaveLength(2);
    expect(second.servers[0]!.globalsIn).not.toBe(first.servers[0]!.globalsIn);

    // status, prune and verify act on each database, as for one-database jobs.
    const status = await runCli(['status', '--json'], { env: env(), timeoutMs: 180_000 });
    expect(status.code, status.stderr).toBe(ExitCode.stale);
    const report = parseEnvelope<{ database: string; ok: boolean; lastRun: { status: string } | null; backups: { good: number } }>(
      status.stdout,
    ).results;
    expect(report.map((d) => d.database)).toEqual([...names, 'newdb'].sort());
    expect(report.filter((d) => !d.ok).map((d) => d.database)).toEqual(['secret']);
    expect(report.find((d) => d.database === 'secret')?.lastRun?.status).toBe('failed');
    expect(report.find((d) => d.database === 'd05')?.backups.good).toBe(2);
    expect(report.find((d) => d.database === 'newdb')?.backups.good).toBe(1);
    const prune = await runCli(['prune', '--dry-run', '--json'], { env: env(), timeoutMs: 180_000 });
    expect(prune.code, prune.stderr).toBe(0);
    expect(parseEnvelope<{ job: string }>(prune.stdout).results).toHaveLength(21);
    const d05 = second.results.find((r) => r.database === 'd05') as { name?: string } | undefined;
    const verify = await runCli(['verify', d05!.name!, '--json'], { env: env(), timeoutMs: 180_000 });
    expect(verify.code, verify.stderr).toBe(0);
    expect(parseEnvelope<{ name: string; ok: boolean }>(verify.stdout).results).toMatchObject([{ name: d05!.name, ok: true }]);
    // The dashboard's report shows each database.
    const html = join(dir, 'report.html');
    const report2 = await runCli(['report', '--html', html], { env: env(), timeoutMs: 180_000 });
    expect(report2.code, report2.stderr).toBe(0);
    const page = readFileSync(html, 'utf8');
    for (const db of ['d05', 'newdb', 'secret', 'postgres']) expect(page).toContain(`"database":"${db}"`);
  }, 600_000);

  it('restore --all-databases --target-server: the plan, the globals first, then every database into a fresh cluster', async () => {
    const targetUrl = target.url('postgres');
    const restoreEnv = { ...env(), TARGET_URL: targetUrl };
    const plan = await runCli(['restore', '--all-databases', '--target-env', 'TARGET_URL', '--dry-run'], { env: restoreEnv });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/1\. globals \(roles, tablespaces\) from postgres_\d{8}_\d{6}/);
    expect(plan.stdout).toMatch(/newdb ← newdb_\d{8}_\d{6}/);
    expect(plan.stdout).not.toContain('secret');
    expect(plan.stdout + plan.stderr).not.toContain(target.password);
    expect(await psql(target, 'postgres', "SELECT count(*) FROM pg_database WHERE datname = 'd01'")).toBe('0');

    const r = await runCli(['restore', '--all-databases', '--target-env', 'TARGET_URL', '--yes', '--parallel', '2', '--json'], {
      env: restoreEnv,
      timeoutMs: 300_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(target.password);
    const doc = parseEnvelope<{ database: string; ok: boolean; target: { created: boolean } }>(r.stdout);
    expect(doc.results.map((x) => x.database)).toEqual([...DATABASES.slice(0, 19), 'newdb', 'postgres'].sort());
    expect(doc.results.every((x) => x.ok)).toBe(true);
    // Roles first: the owner of the tables exists, and owns them.
    expect(
      await psql(
        target,
        'postgres',
        "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('app_owner', 'bak')",
      ),
    ).toBe('app_owner,bak');
    for (const db of ['d01', 'd07', 'd13', 'newdb']) {
      const q = `SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) || ':' || (SELECT tableowner FROM pg_tables WHERE tablename = 't') FROM t`;
      expect(await psql(target, db, q), db).toBe(await psql(source, db, q));
    }
    expect(await psql(target, 'd07', 'SELECT sum(n) FROM extra')).toBe('45150');
    expect(await psql(target, 'd01', "SELECT count(*) FROM t WHERE v = 'only in d01'")).toBe('500');
  }, 600_000);

  it('restore --latest --database NAME, list and verify --database: one database of the server job; an unknown name or no choice lists the databases', async () => {
    const restoreEnv = { ...env(), TARGET_URL: target.url('one_d07') };
    // --latest alone on a whole-server job: which database is the operator's choice.
    const none = await runCli(['restore', '--latest', '--target-env', 'TARGET_URL', '--create'], { env: restoreEnv });
    expect(none.code, none.stderr).toBe(ExitCode.usage);
    expect(none.stderr).toMatch(/backs up \d+ databases \(BACKUP_DATABASES\): choose one with --database NAME/);
    expect(none.stderr).toMatch(/its databases: d01, d02, .*d07.*newdb.*postgres/);
    const typo = await runCli(['restore', '--latest', '--database', 'd007', '--target-env', 'TARGET_URL', '--create'], { env: restoreEnv });
    expect(typo.code, typo.stderr).toBe(ExitCode.usage);
    expect(typo.stderr).toMatch(/--database d007: no such database/);
    expect(typo.stderr).toMatch(/did you mean d07\?/);
    expect(await psql(target, 'postgres', "SELECT count(*) FROM pg_database WHERE datname = 'one_d07'")).toBe('0');

    const r = await runCli(['restore', '--latest', '--database', 'd07', '--target-env', 'TARGET_URL', '--create', '--json'], {
      env: restoreEnv,
      timeoutMs: 180_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const restored = parseEnvelope<{ name: string; database: string; warnings: string[] }>(r.stdout).results[0]!;
    expect(restored.database).toBe('d07');
    expect(restored.name).toMatch(/^d07_\d{8}_\d{6}$/);
    expect(restored.warnings).toEqual([]);
    expect(await psql(target, 'one_d07', 'SELECT sum(n) FROM extra')).toBe('45150');

    // list --database: that database's backups only (two runs: two backups); an unknown name is an error.
    const listed = await runCli(['list', '--database', 'd07', '--json'], { env: env(), timeoutMs: 180_000 });
    expect(listed.code, listed.stderr).toBe(0);
    const backups = parseEnvelope<{ name: string; database: string }>(listed.stdout).results;
    expect(backups.map((b) => b.database)).toEqual(['d07', 'd07']);
    expect(backups[0]!.name).toBe(restored.name);
    const unknown = await runCli(['list', '--database', 'nosuch'], { env: env(), timeoutMs: 180_000 });
    expect(unknown.code).toBe(ExitCode.usage);
    expect(unknown.stderr).toMatch(/--database nosuch: no backups of that database here.*d01, d02/s);

    // verify --latest --database: the newest backup of that database, and no other.
    const verified = await runCli(['verify', '--latest', '--database', 'd07', '--json'], { env: env(), timeoutMs: 180_000 });
    expect(verified.code, verified.stderr).toBe(0);
    expect(parseEnvelope<{ name: string; ok: boolean }>(verified.stdout).results).toMatchObject([{ name: restored.name, ok: true }]);
  }, 600_000);

  it("the daemon's /readyz judges the server job per database: one line a database, the job not ready naming the failing one", async () => {
    const { child, done } = spawnCli(['daemon'], {
      env: { ...env(), BACKUP_SCHEDULE: '0 0 1 1 *', METRICS_ADDR: '127.0.0.1:0' },
      timeoutMs: 300_000,
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const base = await waitFor(
        () => /metrics served at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr)?.[1],
        180_000,
        'the metrics URL',
      );
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as {
        ok: boolean;
        detail: { job: string; ok: boolean; problems: string[]; databases: { database: string; ok: boolean; problems: string[] }[] }[];
      };
      expect(body.ok).toBe(false);
      expect(body.detail).toHaveLength(1);
      const job = body.detail[0]!;
      expect(job.databases.map((d) => d.database)).toEqual([...DATABASES.slice(0, 19), 'newdb', 'postgres', 'secret'].sort());
      expect(job.problems).toEqual(['1 of 22 databases not ready: secret']);
      expect(job.databases.find((d) => d.database === 'secret')).toMatchObject({
        ok: false,
        problems: ['no good backup', 'last run failed'],
      });
      expect(job.databases.filter((d) => d.ok)).toHaveLength(21);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await done;
    expect(r.code, stderr.slice(-3000)).toBe(0);
  }, 400_000);

  it('recovery-kit: a section per database, the one holding the globals first, the database without a good backup named; followed literally for one database', async () => {
    const kit = join(dir, 'kit');
    const r = await runCli(['recovery-kit', kit], { env: env(), timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(10);
    expect(r.stdout).toMatch(/secret: NO good backup/);
    const readme = readFileSync(join(kit, 'README.md'), 'utf8');
    const sections = [...readme.matchAll(/^## Job ([^:\n]+): database (\S+)$/gm)].map((m) => m[1]);
    expect(sections[0]).toBe('postgres');
    expect(sections.slice(1)).toEqual([...DATABASES.slice(0, 19), 'newdb'].sort());
    expect(readme).toMatch(/^## Jobs without a good backup\n\n- \*\*secret\*\*/m);
    expect(readme.split('### 3. Roles and tablespaces').length).toBe(2);
    // d07 into the second cluster (its roles restored above), with only the kit's placeholders.
    const script = jobScripts(readme).get('d07')!;
    const { stderr } = await execFileAsync('bash', ['-c', `if command -v pgbak; then exit 99; fi\n${script}`], {
      cwd: kit,
      env: {
        ...kitPlaceholders('kit_d07'),
        PGHOST: target.host,
        PGPORT: String(target.port),
        PGUSER: target.user,
        PGPASSWORD: target.password,
        AWS_ACCESS_KEY_ID: env().STORAGE_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: env().STORAGE_SECRET_KEY,
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(stderr).not.toMatch(/FAILED/);
    expect(await psql(target, 'kit_d07', 'SELECT sum(n) FROM extra')).toBe('45150');
    expect(await psql(target, 'kit_d07', "SELECT tableowner FROM pg_tables WHERE tablename = 't'")).toBe('app_owner');
  }, 400_000);

  it("a named list: --dry-run says what a run would back up and what it cannot (a typo, a template), the globals with the first when DATABASE_URL's database is not named, an excluded typo a warning; the run agrees", async () => {
    const namedDir = join(dir, 'named');
    const named = env({ BACKUP_DATABASES: 'd03,d155,seed,d04', BACKUP_EXCLUDE_DATABASES: 'd04,skipme,d0O', BACKUP_DIR: namedDir });
    const plan = await runCli(['backup', '--dry-run', '--no-upload'], { env: named, timeoutMs: 180_000 });
    expect(plan.code, plan.stderr).toBe(ExitCode.database);
    expect(plan.stdout).toContain(
      [
        'pgbak backup --dry-run: whole server, job postgres (BACKUP_DATABASES=d03,d155,seed,d04): 1 database to back up',
        '  back up: d03',
        '  globals: with d03',
        '  left out (BACKUP_EXCLUDE_DATABASES): d04',
        '  FAIL: d155: database "d155" named in BACKUP_DATABASES is not on the server',
        '  FAIL: seed: database "seed" named in BACKUP_DATABASES is a template or refuses connections: such databases are never backed up',
        '  warning: BACKUP_EXCLUDE_DATABASES names "d0O", which is not on the server (a typo leaves out nothing)',
      ].join('\n'),
    );
    // One plan, d03's, with the run's globals; nothing written.
    expect(plan.stdout.match(/^pgbak backup --dry-run: job /gm)).toHaveLength(1);
    expect(plan.stdout).toMatch(/^pgbak backup --dry-run: job d03, database d03 [^\n]*\n[\s\S]*pg_dumpall --globals-only/m);
    // The close name is looked for among all the server's databases, not only those named.
    expect(plan.stderr).toMatch(/\[d155\] database "d155" named in BACKUP_DATABASES is not on the server\nhint: did you mean d15\?/);
    expect(plan.stderr).toMatch(/\[seed\] .*never backed up\nhint: remove seed from BACKUP_DATABASES/);
    expect(existsSync(namedDir)).toBe(false);

    const run = await runCli(['backup', '--no-upload', '--json'], { env: named, timeoutMs: 300_000 });
    expect(run.code, run.stderr).toBe(ExitCode.partial);
    const doc = parseEnvelope<{ database: string; status: string }>(run.stdout) as unknown as {
      servers: (Server & { warnings: string[] })[];
    };
    expect(doc.servers[0]).toMatchObject({ status: 'partial', databases: 3, failed: ['d155', 'seed'], excluded: ['d04'] });
    expect(doc.servers[0]!.globalsIn).toMatch(/^d03_\d{8}_\d{6}$/);
    expect(doc.servers[0]!.warnings).toEqual([
      'BACKUP_EXCLUDE_DATABASES names "d0O", which is not on the server (a typo leaves out nothing)',
    ]);
    expect(run.stderr).toMatch(/hint: the other databases were backed up;/);
    expect(readdirSync(namedDir).filter((f) => f.endsWith('.dump'))).toEqual([expect.stringMatching(/^d03_\d{8}_\d{6}\.dump$/)]);

    // Nothing a run could back up: the dry-run plans no database (not DATABASE_URL's), and the run fails with the same cause.
    const only = env({ BACKUP_DATABASES: 'seed', BACKUP_EXCLUDE_DATABASES: '', BACKUP_DIR: namedDir });
    const none = await runCli(['backup', '--dry-run', '--no-upload'], { env: only, timeoutMs: 180_000 });
    expect(none.code, none.stderr).toBe(ExitCode.database);
    expect(none.stdout).toContain(': 0 databases to back up\n  back up: none\n  FAIL: seed: ');
    expect(none.stdout).not.toMatch(/^pgbak backup --dry-run: job /m);
    const failed = await runCli(['backup', '--no-upload'], { env: only, timeoutMs: 180_000 });
    expect(failed.code, failed.stderr).toBe(ExitCode.database);
    expect(failed.stderr).toMatch(/1 of 1 databases not fully backed up: seed \(.*template.*\)\nhint: no database was backed up;/);
  }, 400_000);
});
