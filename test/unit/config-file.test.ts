import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { problemsOf } from '../helpers/config-errors.js';
import { loadJobs, selectJobs } from '../../src/config/config-file.js';
import { UsageError } from '../../src/errors/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgbak-config-file-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const TWO_JOBS = `
defaults:            # applies to every job
  storage_bucket: sweet-backups
  retention_days: 30
  backup_dir: /var/backups/pgbak
jobs:
  - name: shop
    database_url_env: SHOP_DATABASE_URL
    schedule: "0 0,6,12,18 * * *"
    gpg_recipient: backups@example.com
  - name: crm
    database_url: postgresql://crm@db2/crm
    storage_prefix: crm/
    retention_days: 7
    tz: Europe/Paris
    backup_run_on_start: true
`;

describe('loadJobs with a config file', () => {
  it('reads two jobs, applying defaults, then each job’s keys', () => {
    write('pgbak.yaml', TWO_JOBS);
    // Storage keys, so that each job has its resolved S3 section (bucket, prefix).
    const env = {
      SHOP_DATABASE_URL: 'postgresql://shop:s3cret@db1:5432/shop',
      BACKUP_SCHEDULE: '0 3 * * *',
      STORAGE_ACCESS_KEY: 'ak',
      STORAGE_SECRET_KEY: 'sk-test',
    };
    const { jobs, source, global, warnings } = loadJobs({ env, cwd: dir, envFile: false });

    expect(source).toBe(join(dir, 'pgbak.yaml'));
    expect(warnings).toEqual([]);
    expect(jobs.map((j) => j.name)).toEqual(['shop', 'crm']);
    const [shop, crm] = jobs;
    expect(shop!.databaseUrl).toBe('postgresql://shop:s3cret@db1:5432/shop');
    expect(shop!.database).toBe('shop');
    expect(shop!.gpgRecipient).toBe('backups@example.com');
    expect(shop!.retention.days).toBe(30);
    expect(shop!.schedule.cron).toBe('0 0,6,12,18 * * *');
    expect(shop!.s3?.bucket).toBe('sweet-backups');
    expect(shop!.backupDir).toBe('/var/backups/pgbak');

    expect(crm!.databaseUrl).toBe('postgresql://crm@db2/crm');
    expect(crm!.gpgRecipient).toBeUndefined();
    expect(crm!.retention.days).toBe(7);
    expect(crm!.s3?.prefix).toBe('crm/');
    expect(crm!.schedule.timezone).toBe('Europe/Paris');
    expect(crm!.schedule.runOnStart).toBe(true);
    // Not set by the job: the environment's schedule applies.
    expect(crm!.schedule.cron).toBe('0 3 * * *');

    expect(global.STORAGE_BUCKET).toBe('sweet-backups');
    expect(global.BACKUP_CONCURRENCY).toBe(1);
  });

  it('reports every problem at once, each with its path', () => {
    write(
      'pgbak.yaml',
      `
defaults:
  retention_days: thirty
  colour: blue
jobs:
  - name: shop
    database_url_env: SHOP_DATABASE_URL
    backup_concurrency: 4
  - name: crm
    database_url: postgresql://crm@db2/crm
    schedule: "61 * * * *"
    storage_prefix: /abs
    RETENTION_DAYS: 3
  - name: crm
    database_url: postgresql://crm@db3/crm2
    notify_email: {to: ops}
  - database_url: postgresql://x@db4/x
`,
    );
    const problems = problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }));
    const expected = [
      /^defaults\.retention_days: must be a whole number/,
      /^defaults\.colour: unknown key$/,
      /^jobs\[0\]\.database_url_env: SHOP_DATABASE_URL is not set$/,
      /^jobs\[0\]\.backup_concurrency: applies to the whole daemon/,
      /^jobs\[1\]\.storage_prefix: must be empty or end with "\/"/,
      /^jobs\[1\]\.RETENTION_DAYS: unknown key \(write it in lower case: retention_days\)$/,
      /^jobs\[2\]\.name: "crm" is already the name of jobs\[1\]$/,
      /^jobs\[2\]\.notify_email: must be a single value, not a mapping$/,
      /^jobs\[3\]\.name: is required$/,
      /^jobs\[1\]\.schedule \(job "crm"\): invalid cron expression "61 \* \* \* \*": .*minute/,
    ];
    for (const re of expected)
      expect(
        problems.some((p) => re.test(p)),
        `${re} in\n${problems.join('\n')}`,
      ).toBe(true);
    // No follow-on "no database" for jobs[0]: its database_url_env problem is the cause.
    expect(problems).toHaveLength(expected.length);
  });

  it('reports wrong types, a missing jobs list and unknown top-level keys', () => {
    write('a.yaml', 'defaults: [1, 2]\njobz: []\n');
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false, configPath: 'a.yaml' }))).toEqual([
      'jobz: unknown key (expected defaults and jobs); did you mean jobs?',
      'defaults: must be a mapping of settings (retention_days: 30)',
      'jobs: the config file lists no jobs (add at least one "- name: …" entry)',
    ]);
    write('b.yaml', 'jobs:\n  - name: a\n    database_url: [postgresql://x@h/a]\n  - just-a-string\n');
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false, configPath: 'b.yaml' }))).toEqual([
      'jobs[0].database_url: must be a single value, not a list',
      'jobs[1]: must be a mapping (name: …, database_url_env: …)',
    ]);
    write('c.yaml', 'jobs:\n  - name: a\n    retention_days: 3\n');
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false, configPath: 'c.yaml' }))).toEqual([
      'jobs[0] (job "a"): no database: set database_url_env (or database_url) in the job',
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    const path = write('bad.yaml', 'jobs:\n  - name: a\n  - name: b\n    name: c\n');
    const problems = problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false, configPath: path }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/bad\.yaml: line 4, column 5: Map keys must be unique/);
  });

  it('reads database_url_env from the environment, then from .env, and never echoes the value', () => {
    write('pgbak.yaml', 'jobs:\n  - name: a\n    database_url_env: A_URL\n  - name: b\n    database_url_env: B_URL\n');
    write('.env', 'A_URL=postgresql://a@envfile/a\nB_URL=postgresql://b@envfile/b\n');
    const { jobs } = loadJobs({ env: { B_URL: 'postgresql://b@environment/b' }, cwd: dir });
    expect(jobs.map((j) => j.databaseUrl)).toEqual(['postgresql://a@envfile/a', 'postgresql://b@environment/b']);

    const problems = problemsOf(() => loadJobs({ env: { B_URL: 'mysql://b:hunter22@h/b' }, cwd: dir }));
    expect(problems).toEqual(['jobs[1].database_url_env: the value of B_URL must be a URL starting with postgresql:// or postgres://']);
    expect(problems.join('\n')).not.toContain('hunter22');
  });

  it('warns about a password written in the file', () => {
    write('pgbak.yaml', 'jobs:\n  - name: a\n    database_url: postgresql://a:pw1234@h/a\n');
    const { warnings } = loadJobs({ env: {}, cwd: dir, envFile: false });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^jobs\[0\]\.database_url: contains a password/);
  });

  it('lets flags win over the job, the defaults and the environment', () => {
    write(
      'pgbak.yaml',
      'defaults:\n  retention_days: 30\njobs:\n  - name: a\n    database_url: postgresql://a@h/a\n    retention_days: 7\n',
    );
    const { jobs, global } = loadJobs({ env: { RETENTION_DAYS: '1' }, cwd: dir, envFile: false, flags: { RETENTION_DAYS: '99' } });
    expect(jobs[0]!.retention.days).toBe(99);
    expect(global.RETENTION_DAYS).toBe(99);
  });

  it('layers defaults < environment < file defaults < job', () => {
    write(
      'pgbak.yaml',
      'defaults:\n  backup_keep_min: 5\njobs:\n  - name: a\n    database_url: postgresql://a@h/a\n    backup_keep_daily: 7\n',
    );
    const env = { BACKUP_KEEP_MIN: '9', BACKUP_KEEP_DAILY: '9', BACKUP_KEEP_WEEKLY: '4' };
    const [job] = loadJobs({ env, cwd: dir, envFile: false }).jobs;
    expect(job!.retention).toMatchObject({ keepMin: 5, keepDaily: 7, keepWeekly: 4, keepMonthly: 0 });
  });

  it('finds the file through --config, then PGBAK_CONFIG, then ./pgbak.yaml', () => {
    write('pgbak.yaml', 'jobs:\n  - name: implicit\n    database_url: postgresql://a@h/a\n');
    write('other.yaml', 'jobs:\n  - name: from-env\n    database_url: postgresql://a@h/a\n');
    write('flag.yaml', 'jobs:\n  - name: from-flag\n    database_url: postgresql://a@h/a\n');
    const names = (o: Parameters<typeof loadJobs>[0]) => loadJobs({ cwd: dir, envFile: false, ...o }).jobs.map((j) => j.name);
    expect(names({ env: {} })).toEqual(['implicit']);
    expect(names({ env: { PGBAK_CONFIG: 'other.yaml' } })).toEqual(['from-env']);
    expect(names({ env: { PGBAK_CONFIG: 'other.yaml' }, configPath: join(dir, 'flag.yaml') })).toEqual(['from-flag']);
    expect(() => loadJobs({ env: {}, cwd: dir, envFile: false, configPath: 'missing.yaml' })).toThrow(
      /cannot read the config file .*missing\.yaml/,
    );
  });

  it('rejects an invalid cron expression or time zone, naming the job', () => {
    write(
      'pgbak.yaml',
      `
jobs:
  - name: a
    database_url: postgresql://a@h/a
    schedule: "0 0 30 2 *"
  - name: b
    database_url: postgresql://b@h/b
    tz: Mars/Olympus
  - name: c
    database_url: postgresql://c@h/c
    backup_schedule: "every day"
`,
    );
    const problems = problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }));
    expect(problems).toEqual([
      'jobs[2].backup_schedule: must be a cron expression with 5 or 6 fields',
      'jobs[0].schedule (job "a"): cron expression "0 0 30 2 *" never matches a date',
      'jobs[1].tz (job "b"): unknown time zone "Mars/Olympus" (use an IANA name such as UTC or Europe/Paris)',
    ]);
  });

  it('reports a bad schedule from the defaults once, naming every job that uses it', () => {
    write(
      'pgbak.yaml',
      'defaults:\n  tz: Nowhere/Town\njobs:\n  - {name: a, database_url: "postgresql://a@h/a"}\n  - {name: b, database_url: "postgresql://b@h/b"}\n',
    );
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }))).toEqual([
      'defaults.tz (jobs "a", "b"): unknown time zone "Nowhere/Town" (use an IANA name such as UTC or Europe/Paris)',
    ]);
  });

  it('rejects two jobs that would write backups under the same names', () => {
    write(
      'pgbak.yaml',
      'jobs:\n  - {name: one, database_url: "postgresql://a@h1/app"}\n  - {name: two, database_url: "postgresql://a@h2/app"}\n',
    );
    const problems = problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^jobs\[0\] and jobs\[1\] \(jobs "one" and "two"\) both back up a database named "app"/);

    write(
      'pgbak.yaml',
      'jobs:\n  - {name: one, database_url: "postgresql://a@h1/app"}\n  - {name: two, database_url: "postgresql://a@h2/app", backup_dir: ./two}\n',
    );
    expect(loadJobs({ env: {}, cwd: dir, envFile: false }).jobs).toHaveLength(2);
  });
});

describe('loadJobs without a config file', () => {
  it('makes one job from the environment, named after the database', () => {
    const { jobs, source } = loadJobs({
      env: { DATABASE_URL: 'postgresql://u:p@localhost:5432/sweet_narcisse', RETENTION_DAYS: '14' },
      cwd: dir,
      envFile: false,
    });
    expect(source).toBeUndefined();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.name).toBe('sweet_narcisse');
    expect(jobs[0]!.retention.days).toBe(14);
    expect(jobs[0]!.schedule.cron).toBe('0 0,6,12,18 * * *');
    expect(jobs[0]!.schedule.timezone).toBe('UTC');
  });

  it('requires DATABASE_URL and checks the schedule, naming the job', () => {
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }))).toEqual([
      'DATABASE_URL: is required (e.g. postgresql://user:pass@host:5432/db)',
    ]);
    expect(
      problemsOf(() => loadJobs({ env: { DATABASE_URL: 'postgresql://h/db', BACKUP_SCHEDULE: '0 25 * * *' }, cwd: dir, envFile: false })),
    ).toEqual([expect.stringMatching(/^BACKUP_SCHEDULE \(job "db"\): invalid cron expression "0 25 \* \* \*": .*hour/)]);
  });
});

describe('loadJobs with an injected environment and working directory', () => {
  it('resolves relative paths, .env and pgbak.yaml against cwd and never touches process.env', () => {
    const before = { ...process.env };
    write('.env', 'SHOP_URL=postgresql://shop:dotenv-pass@db1:5432/shop\nLOG_FILE=./logs/pgbak.log\n');
    write('pgbak.yaml', 'defaults:\n  backup_dir: ./backups\njobs:\n  - name: shop\n    database_url_env: SHOP_URL\n');
    const { jobs, source, global } = loadJobs({ env: { BACKUP_RETRIES: '5' }, cwd: dir });
    expect(source).toBe(join(dir, 'pgbak.yaml'));
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.backupDir).toBe(join(dir, 'backups'));
    expect(jobs[0]!.logFile).toBe(join(dir, 'logs', 'pgbak.log'));
    expect(jobs[0]!.databaseUrl).toBe('postgresql://shop:dotenv-pass@db1:5432/shop');
    expect(global.BACKUP_RETRIES).toBe(5);
    expect(process.env).toEqual(before);
  });

  it('finds PGBAK_CONFIG and BACKUP_DIR of the environment-only job relative to cwd', () => {
    write('jobs.yaml', 'jobs:\n  - name: crm\n    database_url: postgresql://h/crm\n    backup_dir: rel/dir\n');
    expect(loadJobs({ env: { PGBAK_CONFIG: 'jobs.yaml' }, cwd: dir, envFile: false }).jobs[0]!.backupDir).toBe(join(dir, 'rel', 'dir'));
    const [job] = loadJobs({
      env: { DATABASE_URL: 'postgresql://h/db', BACKUP_DIR: './backups' },
      cwd: join(dir, 'none'),
      envFile: false,
    }).jobs;
    expect(job!.backupDir).toBe(join(dir, 'none', 'backups'));
  });
});

describe('the typed sections of a job and of the daemon', () => {
  it('match the settings they are built from', () => {
    const env = {
      DATABASE_URL: 'postgresql://h/db',
      BACKUP_VERIFY: 'restore-test',
      VERIFY_DATABASE_URL: 'postgresql://v/scratch',
      NOTIFY_EMAIL: 'a@example.com',
      NOTIFY_PING_URL: 'https://hc.example/ping/x',
      BACKUP_TZ: 'Europe/Paris',
      BACKUP_RUN_ON_START: 'true',
      PG_DUMP_PATH: '/opt/pg/bin',
      METRICS_TEXTFILE: 'metrics/pgbak.prom',
      BACKUP_RPO: '2h',
      BACKUP_GLOBALS: 'false',
      BACKUP_CONCURRENCY: '3',
      BACKUP_STOP_TIMEOUT: '30s',
      LOG_FILE: 'log/pgbak.log',
    };
    const { jobs, daemon } = loadJobs({ env, cwd: dir, envFile: false });
    const job = jobs[0]!;
    expect(job.verify).toEqual({ mode: 'restore-test', databaseUrl: 'postgresql://v/scratch' });
    expect(job.notify).toEqual({
      email: ['a@example.com'],
      on: 'failure',
      smtpUrl: undefined,
      from: 'pgbak@localhost',
      webhookUrl: undefined,
      pingUrl: 'https://hc.example/ping/x',
    });
    expect(job.schedule).toEqual({ cron: '0 0,6,12,18 * * *', timezone: 'Europe/Paris', runOnStart: true });
    expect(job.pgTools).toEqual({ pgDumpPath: '/opt/pg/bin' });
    expect(job.metrics).toEqual({ textfile: join(dir, 'metrics', 'pgbak.prom') });
    expect(job.health).toEqual({ rpoMs: 2 * 3_600_000, sizeTolerance: 0.5 });
    expect(job.backup).toEqual({ globals: false, rowCounts: true, prune: true, jobs: 1 });
    expect(daemon).toEqual({
      concurrency: 3,
      retries: 2,
      stopTimeoutMs: 30_000,
      metricsAddr: undefined,
      logFile: join(dir, 'log', 'pgbak.log'),
      logLevel: 'info',
    });
  });
});

describe('selectJobs', () => {
  const jobs = (() => {
    const d = mkdtempSync(join(tmpdir(), 'pgbak-select-'));
    writeFileSync(
      join(d, 'pgbak.yaml'),
      'jobs:\n  - {name: shop, database_url: "postgresql://h/shop"}\n  - {name: crm, database_url: "postgresql://h/crm"}\n',
    );
    try {
      return loadJobs({ env: {}, cwd: d, envFile: false }).jobs;
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  })();

  it('picks one job by name, all jobs, or the only job', () => {
    expect(selectJobs(jobs, { job: 'crm' }).map((j) => j.name)).toEqual(['crm']);
    expect(selectJobs(jobs, { all: true }).map((j) => j.name)).toEqual(['shop', 'crm']);
    expect(selectJobs(jobs.slice(0, 1)).map((j) => j.name)).toEqual(['shop']);
  });

  it('names the jobs when the choice is unknown or missing', () => {
    expect(() => selectJobs(jobs, { job: 'blog' })).toThrow(new UsageError('no job named "blog"; the jobs are: shop, crm'));
    expect(() => selectJobs(jobs)).toThrow(/there are 2 jobs \(shop, crm\): choose one with --job NAME, or --all/);
    expect(() => selectJobs(jobs, { job: 'shop', all: true })).toThrow(UsageError);
  });
});
