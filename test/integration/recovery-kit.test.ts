import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { parseEnvelope } from '../helpers/json-schemas.js';
import { jobScripts, kitPlaceholders } from '../helpers/recovery-kit.js';
import { richSql, snapshot } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, execFileAsync, pgUrl, services, sql, tempDir, uniqueId } from '../helpers/services.js';

/**
 * `pgbak recovery-kit DIR`, then a person with no pgbak: the README's `sh` blocks of each job run
 * as written (bash, from the kit's directory) with only the README's documented placeholders set
 * in the environment — aws, sha256sum, age / gpg, zstd, psql, pg_restore — and the data is back.
 */

describe('pgbak recovery-kit', () => {
  let shopDb: string;
  let crmDb: string;
  let bucket: string;
  let work: string;
  let identity: string;
  let recipient: string;
  let env: NodeJS.ProcessEnv;
  let kit: string;
  let readme: string;

  beforeAll(async () => {
    const s = services();
    [shopDb, crmDb] = await Promise.all([
      createDatabase('kitshop', richSql(`kitowner_${uniqueId()}`)),
      createDatabase('kitcrm', richSql(`kitcrm_${uniqueId()}`)),
    ]);
    bucket = await createBucket();
    work = tempDir('pgbak-kit-');
    identity = join(work, 'age-key.txt');
    await execFileAsync('age-keygen', ['-o', identity]);
    recipient = (await execFileAsync('age-keygen', ['-y', identity])).stdout.trim();
    writeFileSync(
      join(work, 'pgbak.yaml'),
      [
        'defaults:',
        `  storage_endpoint: ${s.s3.endpoint}`,
        `  storage_bucket: ${bucket}`,
        `  backup_dir: ${join(work, 'backups')}`,
        `  log_file: ""`,
        'jobs:',
        '  - name: shop',
        '    database_url_env: SHOP_URL',
        `    age_recipients: ${recipient}`,
        `    age_identity_file: ${identity}`,
        '    backup_compression: zstd:3',
        '    storage_prefix: shop/',
        '  - name: crm',
        '    database_url_env: CRM_URL',
        `    gpg_recipient: ${s.gpg.email}`,
        '    storage_prefix: crm/',
        '',
      ].join('\n'),
    );
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GNUPGHOME: s.gpg.home,
      SHOP_URL: pgUrl(shopDb),
      CRM_URL: pgUrl(crmDb),
      STORAGE_ACCESS_KEY: s.s3.accessKey,
      STORAGE_SECRET_KEY: s.s3.secretKey,
    };
    const b = await runCli(['backup', '--all', '--no-prune'], { env, cwd: work });
    expect(b.code, b.stderr).toBe(0);
    kit = join(work, 'kit');
    const r = await runCli(['recovery-kit', kit], { env, cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`recovery kit written to ${kit}`);
    readme = readFileSync(join(kit, 'README.md'), 'utf8');
  });

  it('names the newest good backup of each job, the keys and where they are expected, and holds no secret', () => {
    const s = services();
    expect(readme).toMatch(/^## Job shop: database kitshop_/m);
    expect(readme).toMatch(/^## Job crm: database kitcrm_/m);
    expect(readme).toContain(`\`${recipient}\``);
    expect(readme).toContain(identity);
    expect(readme).toMatch(/gpg, to `.*`, key fingerprint `[0-9A-F]{40}`/);
    expect(readme).toContain(`--endpoint-url ${s.s3.endpoint}`);
    const sums = readFileSync(join(kit, 'SHA256SUMS'), 'utf8');
    for (const text of [readme, sums]) {
      expect(text).not.toContain(s.s3.secretKey);
      expect(text).not.toContain(s.s3.accessKey);
      expect(text).not.toContain(s.pg.password);
      expect(text).not.toContain('AGE-SECRET-KEY');
    }
    const lines = sums.trim().split('\n');
    expect(lines).toHaveLength(6);
    for (const l of lines)
      expect(l).toMatch(
        /^[0-9a-f]{64} {2}(shop|crm)\/kit(shop|crm)_[0-9a-f]+_\d{8}_\d{6}\.(dump\.zst\.age|globals\.sql\.age|dump\.gpg|globals\.sql\.gpg|manifest\.json)$/,
      );
  });

  it("--json lists each job's backup and the files of SHA256SUMS", async () => {
    const r = await runCli(['recovery-kit', join(work, 'kit-json'), '--json'], { env, cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const doc = parseEnvelope(r.stdout) as unknown as {
      dir: string;
      sha256sums: string;
      results: { job: string; source: string; files: { path: string; sha256: string }[] }[];
    };
    expect(doc.dir).toBe(join(work, 'kit-json'));
    expect(doc.results.map((j) => [j.job, j.source, j.files.length])).toEqual([
      ['shop', 'remote', 3],
      ['crm', 'remote', 3],
    ]);
    const sums = readFileSync(doc.sha256sums, 'utf8');
    for (const f of doc.results.flatMap((j) => j.files)) expect(sums).toContain(`${f.sha256}  ${f.path}\n`);
  });

  it('followed literally, with no pgbak on PATH, the README restores both databases', async () => {
    const scripts = jobScripts(readme);
    expect([...scripts.keys()]).toEqual(['shop', 'crm']);
    for (const [job, script] of scripts) {
      const original = job === 'shop' ? shopDb : crmDb;
      const expected = await snapshot(original);
      const target = `kitrestored_${job}_${uniqueId()}`;
      // Only the placeholders the README documents; nothing of pgbak's configuration.
      const placeholders = kitPlaceholders(target, { ageIdentityFile: identity });
      const { stderr } = await execFileAsync('bash', ['-c', `if command -v pgbak; then exit 99; fi\n${script}`], {
        cwd: kit,
        env: placeholders,
        maxBuffer: 64 * 1024 * 1024,
      });
      expect(stderr).not.toMatch(/FAILED/);
      expect(await snapshot(target)).toEqual(expected);
      expect(await sql(target, 'SELECT count(*) FROM sales.orders')).toBe('3000');
    }
  }, 300_000);

  it("a tampered download fails the README's check step (sha256sum -c)", async () => {
    const s = services();
    const scripts = jobScripts(readme);
    const script = scripts.get('crm')!;
    // The fetch block, then one flipped byte in the dump, then the check block.
    const [fetch, check] = [...readme.split(/^## Job crm/m)[1]!.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
    expect(script.startsWith(fetch!)).toBe(true);
    const dir = tempDir('pgbak-kit-copy-');
    await execFileAsync('cp', [join(kit, 'SHA256SUMS'), dir]);
    const tamper = 'f=$(ls crm/*.dump.gpg); printf "\\x00" | dd of="$f" bs=1 seek=100 conv=notrunc status=none';
    const r = await execFileAsync('bash', ['-c', `${fetch}\n${tamper}\n${check}`], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_ACCESS_KEY_ID: s.s3.accessKey, AWS_SECRET_ACCESS_KEY: s.s3.secretKey },
    }).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/crm\/.*\.dump\.gpg: FAILED/);
  });

  it('a job without a good backup is named in the kit, and the command fails', async () => {
    const empty = await createDatabase('kitempty');
    const r = await runCli(['recovery-kit', join(work, 'kit2')], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: pgUrl(empty), LOG_FILE: '' },
      cwd: tempDir(),
    });
    expect(r.code, r.stderr).toBe(10);
    expect(r.stderr).toMatch(/error: no good backup of kitempty_/);
    expect(r.stdout).toMatch(/NO good backup/);
    expect(readFileSync(join(work, 'kit2', 'README.md'), 'utf8')).toContain('## Jobs without a good backup');
  });
});
