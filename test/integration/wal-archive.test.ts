import { execFile } from 'node:child_process';
import { copyFileSync, chownSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql, startCluster, type PgCluster } from '../helpers/postgres-cluster.js';
import { pitrSetup, serverLog, startArchivingCluster, switchAndWaitArchived, type PitrSetup } from '../helpers/pitr.js';
import { HttpSink } from '../helpers/notify-sinks.js';
import { awsKeys } from '../helpers/restore-fixtures.js';
import { awsEnv, services } from '../helpers/services.js';

const execFileAsync = promisify(execFile);

/** Every key of the setup's bucket, listed by a real client (aws s3api). */
const bucketKeys = (setup: PitrSetup): Promise<string[]> => awsKeys(setup.bucket);

const segmentKeys = (keys: string[]) => keys.filter((k) => /\/wal\/\d+\/[0-9A-F]{24}~/.test(k));

describe('wal-push and wal-fetch against a cluster that archives into MinIO (gpg, zstd)', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let sysid: string;

  beforeAll(async () => {
    setup = await pitrSetup();
    pg = await startArchivingCluster(setup);
    sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    await psql(pg, 'postgres', 'CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g');
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('archives each segment encrypted and compressed under wal/<system id>/, with a cluster marker; wal-fetch gives back the same bytes', async () => {
    const name = await switchAndWaitArchived(pg);
    const keys = await bucketKeys(setup);
    expect(keys).toContain('pitr/wal/cluster.json');
    const key = keys.find((k) => k.startsWith(`pitr/wal/${sysid}/${name}~`));
    expect(key, keys.join('\n')).toMatch(/~[0-9a-f]{64}\.zst\.gpg$/);
    // The stored object is an OpenPGP message, not the segment (a segment starts with its page magic).
    const { stdout: head } = await execFileAsync(
      'aws',
      ['s3', 'cp', `s3://${setup.bucket}/${key}`, '-', '--endpoint-url', services().s3.endpoint],
      {
        env: awsEnv(),
        encoding: 'buffer',
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    expect((head as unknown as Buffer)[0]! & 0x80).toBe(0x80);
    expect((head as unknown as Buffer).length).toBeLessThan(16 * 1024 * 1024);

    const out = join(setup.dir, 'fetched');
    const r = await setup.run(['wal-fetch', '--env-file', setup.envFile, '--pgdata', pg.dataDir, name, out]);
    expect(r.code, r.stderr).toBe(0);
    const sha = key!.split('~')[1]!.split('.')[0]!;
    const { stdout: got } = await execFileAsync('sha256sum', [out]);
    expect(got.split(' ')[0]).toBe(sha);
    expect(statSync(out).size).toBe(16 * 1024 * 1024);
    const inPgWal = join(pg.dataDir, 'pg_wal', name);
    if (existsSync(inPgWal)) expect(readFileSync(out).equals(readFileSync(inPgWal))).toBe(true);
  });

  it('pushing a segment that is already archived with the same content exits 0; other content under its name exits 9 and keeps the archived one', async () => {
    await psql(pg, 'postgres', 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g');
    const name = await switchAndWaitArchived(pg);
    const copy = join(setup.dir, name);
    copyFileSync(join(pg.dataDir, 'pg_wal', name), copy);
    chownSync(copy, statSync(setup.dir).uid, statSync(setup.dir).gid);
    const again = await setup.run(['wal-push', '--env-file', setup.envFile, '--pgdata', pg.dataDir, copy]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('already archived with the same content');

    const before = await bucketKeys(setup);
    const bytes = readFileSync(copy);
    bytes[1_000_000] = bytes[1_000_000]! ^ 0xff;
    writeFileSync(copy, bytes);
    const hook = await new HttpSink().start();
    try {
      const other = await setup.run([
        'wal-push',
        '--env-file',
        setup.envFile,
        '--set',
        `NOTIFY_WEBHOOK_URL=${hook.base}/hook`,
        '--pgdata',
        pg.dataDir,
        copy,
      ]);
      expect(other.code).toBe(9);
      expect(other.stderr).toMatch(/already archived with other content/);
      const sent = hook.under('/hook');
      expect(sent).toHaveLength(1);
      expect(JSON.parse(sent[0]!.body)).toMatchObject({ event: 'wal-conflict', file: name, error: { code: 'wal-conflict' } });
    } finally {
      await hook.close();
    }
    // Nothing archived changed; the failure was counted (wal/push-failures.json, for status and the metrics).
    const after = await bucketKeys(setup);
    expect(after).toContain('pitr/wal/push-failures.json');
    const archived = (keys: string[]) => keys.filter((k) => k !== 'pitr/wal/push-failures.json');
    expect(archived(after)).toEqual(archived(before));
  });

  it('a second cluster pushing into the same prefix is refused (exit 2) and nothing of it is stored', async () => {
    const other = await startCluster();
    try {
      const name = await psql(other, 'postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
      const before = await bucketKeys(setup);
      const r = await setup.run(['wal-push', '--env-file', setup.envFile, join('pg_wal', name)], { cwd: other.dataDir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/belongs to the cluster with system identifier \d+, not to this one/);
      expect(r.stderr).toMatch(/hint: .*STORAGE_PREFIX/);
      expect(await bucketKeys(setup)).toEqual(before);
    } finally {
      await other.stop();
    }
  });

  it('the bucket unreachable: archive_command fails, PostgreSQL retries, and once it is back the chain has no gap', async () => {
    const endpoint = setup.vars.STORAGE_ENDPOINT!;
    setup.writeEnv({ STORAGE_ENDPOINT: 'http://127.0.0.1:9', STORAGE_TIMEOUT: '2s' });
    const failedBefore = Number(await psql(pg, 'postgres', 'SELECT failed_count FROM pg_stat_archiver'));
    const first = await psql(pg, 'postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
    for (let i = 0; i < 3; i++) {
      await psql(pg, 'postgres', 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g');
      await psql(pg, 'postgres', 'SELECT pg_switch_wal()');
    }
    const deadline = Date.now() + 60_000;
    while (Number(await psql(pg, 'postgres', 'SELECT failed_count FROM pg_stat_archiver')) === failedBefore) {
      if (Date.now() > deadline) throw new Error('the archiver never failed');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(serverLog(pg)).toMatch(/archive command failed with exit code 7/);
    setup.writeEnv({ STORAGE_ENDPOINT: endpoint, STORAGE_TIMEOUT: '60s' });
    const last = await switchAndWaitArchived(pg, 120_000);
    // The .ready backlog went out at once: the first call pushed the others ahead, their own calls returned from the spool.
    expect(serverLog(pg)).toMatch(/archived ahead by an earlier wal-push file=[0-9A-F]{24}/);
    const names = segmentKeys(await bucketKeys(setup)).map((k) => k.split('/').pop()!.slice(0, 24));
    const n = (s: string) => parseInt(s.slice(16), 16);
    for (let i = n(first); i <= n(last); i++)
      expect(names, `segment ${i}`).toContain(first.slice(0, 16) + i.toString(16).toUpperCase().padStart(8, '0'));
  });

  it('wal-fetch: a missing history file exits 1; a missing segment with later ones archived is a gap (126); a corrupt one is 126', async () => {
    const out = join(setup.dir, 'x');
    const h = await setup.run(['wal-fetch', '--env-file', setup.envFile, '--pgdata', pg.dataDir, '00000009.history', out]);
    expect(h.code, h.stderr).toBe(1);
    const end = await setup.run(['wal-fetch', '--env-file', setup.envFile, '--pgdata', pg.dataDir, '0000000100000000000000F0', out]);
    expect(end.code, end.stderr).toBe(1);

    const keys = segmentKeys(await bucketKeys(setup)).sort();
    const victim = keys[1]!;
    const name = victim.split('/').pop()!.slice(0, 24);
    await execFileAsync(
      'aws',
      ['s3', 'mv', `s3://${setup.bucket}/${victim}`, `s3://${setup.bucket}/moved/${name}`, '--endpoint-url', services().s3.endpoint],
      {
        env: awsEnv(),
      },
    );
    const gap = await setup.run(['wal-fetch', '--env-file', setup.envFile, '--pgdata', pg.dataDir, name, out]);
    expect(gap.code).toBe(126);
    expect(gap.stderr).toMatch(new RegExp(`${name} is missing from the WAL archive .* the archive has a gap`));
    expect(existsSync(out)).toBe(false);

    // The same key with other bytes (a bit flipped in storage): decrypting or the sha256 check fails.
    const local = join(setup.dir, 'obj');
    await execFileAsync('aws', ['s3', 'cp', `s3://${setup.bucket}/moved/${name}`, local, '--endpoint-url', services().s3.endpoint], {
      env: awsEnv(),
    });
    const bytes = readFileSync(local);
    bytes[bytes.length - 40] = bytes[bytes.length - 40]! ^ 0x01;
    writeFileSync(local, bytes);
    await execFileAsync('aws', ['s3', 'cp', local, `s3://${setup.bucket}/${victim}`, '--endpoint-url', services().s3.endpoint], {
      env: awsEnv(),
    });
    const corrupt = await setup.run(['wal-fetch', '--env-file', setup.envFile, '--pgdata', pg.dataDir, name, out]);
    expect(corrupt.code).toBe(126);
    expect(corrupt.stderr).toMatch(/gpg|corrupt|zstd/);
    expect(existsSync(out)).toBe(false);
  });

  it('status reports the newest archived segment against WAL_RPO, and a stale WAL archive as a problem', async () => {
    await switchAndWaitArchived(pg);
    const env = { DATABASE_URL: pg.url('postgres') };
    const fresh = await setup.run(['status', '--env-file', setup.envFile, '--json', '--set', 'WAL_RPO=1h'], { env });
    const doc = JSON.parse(fresh.stdout) as {
      results: { reasons: string[]; wal: { newestSegment: string; ageMs: number; rpoMs: number; ok: boolean } }[];
    };
    const wal = doc.results[0]!.wal;
    expect(wal).toMatchObject({ ok: true, rpoMs: 3_600_000 });
    expect(wal.newestSegment).toMatch(/^[0-9A-F]{24}$/);
    expect(wal.ageMs).toBeLessThan(60_000);
    expect(doc.results[0]!.reasons.join('\n')).not.toContain('WAL archive stale');
    await new Promise((r) => setTimeout(r, 2500));
    const stale = await setup.run(['status', '--env-file', setup.envFile, '--set', 'WAL_RPO=1s'], { env });
    expect(stale.code).toBe(12);
    expect(stale.stdout).toMatch(/WAL archive +newest segment [0-9A-F]{24}, [\d.]+s old; WAL_RPO 1(\.0)?s/);
    expect(stale.stdout).toMatch(/problem +WAL archive stale: newest segment [0-9A-F]{24} was stored [\d.]+s ago \(WAL_RPO 1(\.0)?s\)/);
  });

  it('secrets appear in no postgresql.conf line and no server log line', async () => {
    const secret = services().s3.secretKey;
    const conf = readFileSync(join(pg.dataDir, 'postgresql.conf'), 'utf8') + readFileSync(join(pg.dataDir, 'postgresql.auto.conf'), 'utf8');
    expect(conf).toContain('wal-push --env-file');
    expect(conf).not.toContain(secret);
    expect(serverLog(pg)).not.toContain(secret);
    expect(statSync(setup.envFile).mode & 0o077).toBe(0);
  });
});
