// `targets:` in pgbak.yaml: the first target is the job's bucket (STORAGE_*), the others its
// further targets (as STORAGE_2_* makes); secrets only by environment variable or a private file.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { problemsOf } from '../helpers/config-errors.js';
import { loadJobs } from '../../src/config/config-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgbak-config-targets-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

const env = {
  SHOP_URL: 'postgresql://shop@db1/shop',
  MAIN_SECRET: 'main-secret-value',
  STORAGE_2_ACCESS_KEY: 'x',
  STORAGE_2_SECRET_KEY: 'env-2nd',
};

function yaml(targets: string): string {
  return `jobs:\n  - name: shop\n    database_url_env: SHOP_URL\n    targets:\n${targets}`;
}

const THREE = `
      - name: main
        endpoint: http://s3.example:9000
        bucket: main-bucket
        access_key_env: SHOP_URL_UNUSED
        secret_key_env: MAIN_SECRET
      - name: offsite
        endpoint: https://minio.offsite.example
        bucket: offsite-bucket
        prefix: shop/
        region: eu-west-1
        access_key: offsite-ak
        secret_key_file: offsite.secret
        object_lock: governance
      - name: cold
        endpoint: https://cold.example
        bucket: cold-bucket
        access_key: cold-ak
        secret_key_env: MAIN_SECRET
`;

describe('targets: in pgbak.yaml', () => {
  it('maps the first target onto the job bucket and the others onto its further targets; STORAGE_2_* is ignored', () => {
    write('offsite.secret', 'offsite-secret-value\n');
    write('pgbak.yaml', yaml(THREE));
    const { jobs, redactor } = loadJobs({ env: { ...env, SHOP_URL_UNUSED: 'main-ak' }, cwd: dir, envFile: false });
    const job = jobs[0]!;
    expect(job.s3).toMatchObject({
      name: 'main',
      endpoint: 'http://s3.example:9000',
      bucket: 'main-bucket',
      prefix: 'backups/',
      region: 'us-east-1',
      accessKeyId: 'main-ak',
      secretAccessKey: 'main-secret-value',
      objectLock: undefined,
    });
    expect(job.extraTargets).toEqual([
      expect.objectContaining({
        name: 'offsite',
        bucket: 'offsite-bucket',
        prefix: 'shop/',
        region: 'eu-west-1',
        accessKeyId: 'offsite-ak',
        secretAccessKey: 'offsite-secret-value',
        objectLock: 'governance',
      }),
      expect.objectContaining({ name: 'cold', bucket: 'cold-bucket', prefix: 'backups/' }),
    ]);
    // Every secret is masked, the file's too.
    expect(redactor.redact('a offsite-secret-value b main-secret-value')).not.toMatch(/secret-value/);
  });

  it('reports unknown keys, a plain secret key, duplicate names and missing fields, each with its path', () => {
    write(
      'pgbak.yaml',
      yaml(`
      - name: a
        endpoint: http://s3.example
        buckt: one
        access_key: ak
        secret_key: plain
      - name: a
        bucket: two
        access_key: ak
        secret_key_env: NOT_SET_ANYWHERE
`),
    );
    const problems = problemsOf(() => loadJobs({ env, cwd: dir, envFile: false }));
    expect(problems).toEqual(
      expect.arrayContaining([
        'jobs[0].targets[0].buckt: unknown key; did you mean bucket?',
        expect.stringMatching(/^jobs\[0\]\.targets\[0\]\.secret_key: not allowed; .*secret_key_env.*secret_key_file/),
        'jobs[0].targets[0].bucket: is required',
        'jobs[0].targets[1].endpoint: is required',
        'jobs[0].targets[1].secret_key_env: NOT_SET_ANYWHERE is not set (in the environment or .env)',
      ]),
    );
    expect(problems.join('\n')).not.toContain('plain');
  });

  it('duplicate names, a world-readable secret file and a storage_* key beside targets are problems with a hint', () => {
    write('open.secret', 'xyz-secret\n', 0o644);
    write(
      'pgbak.yaml',
      `jobs:
  - name: shop
    database_url_env: SHOP_URL
    storage_bucket: other
    targets:
      - { name: a, endpoint: "http://s3.example", bucket: one, access_key: ak, secret_key_env: MAIN_SECRET }
      - { name: a, endpoint: "http://s3.example", bucket: two, access_key: ak, secret_key_file: open.secret }
`,
    );
    const problems = problemsOf(() => loadJobs({ env, cwd: dir, envFile: false }));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^jobs\[0\]\.targets\[1\]\.secret_key_file: .*open\.secret is readable by every user; chmod 600/),
      ]),
    );
    write('open.secret', 'xyz-secret\n', 0o600);
    const again = problemsOf(() => loadJobs({ env, cwd: dir, envFile: false }));
    expect(again).toEqual(
      expect.arrayContaining(['jobs[0].targets[1].name: "a" is already the name of jobs[0].targets[0]; give each target its own name']),
    );
    write(
      'pgbak.yaml',
      `jobs:
  - name: shop
    database_url_env: SHOP_URL
    storage_bucket: other
    targets:
      - { name: a, endpoint: "http://s3.example", bucket: one, access_key: ak, secret_key_env: MAIN_SECRET }
`,
    );
    expect(problemsOf(() => loadJobs({ env, cwd: dir, envFile: false }))).toEqual([
      'jobs[0].storage_bucket: jobs[0].targets already names the buckets; set it in the target (jobs[0].targets[0]) instead',
    ]);
  });
});
