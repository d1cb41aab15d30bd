import { describe, expect, it } from 'vitest';
import { awsEnv, createBucket, createDatabase, execFileAsync, SAMPLE_SQL, services, sql, tableChecksums } from '../helpers/services.js';

describe('test harness', () => {
  it('runs a real PostgreSQL cluster with password auth', async () => {
    const db = await createDatabase('harness', SAMPLE_SQL);
    expect(await sql(db, 'SELECT count(*) FROM orders')).toBe('5000');
    const sums = await tableChecksums(db);
    expect(Object.keys(sums)).toEqual(['public.customers', 'public.orders']);
  });

  it('runs a real S3 server reachable with the aws CLI', async () => {
    const bucket = await createBucket();
    const { stdout } = await execFileAsync(
      'aws',
      ['s3api', 'list-objects-v2', '--bucket', bucket, '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    expect(stdout.trim() === '' ? 0 : (JSON.parse(stdout).Contents ?? []).length).toBe(0);
  });

  it('has a GnuPG home with an encryption key', async () => {
    const { gpg } = services();
    const { stdout } = await execFileAsync('gpg', ['--batch', '--with-colons', '--list-keys', gpg.email], {
      env: { ...process.env, GNUPGHOME: gpg.home },
    });
    expect(stdout).toMatch(/^sub:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:e/m);
  });
});
