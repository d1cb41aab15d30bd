import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/index.js';
import { connect } from '../../src/postgres/connection.js';
import { pgDumpStage } from '../../src/postgres/pg-dump.js';
import { findPgTool } from '../../src/postgres/pg-tools.js';
import { isTransientFailure } from '../../src/scheduler/transient-failure.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { createDatabase, pgUrl, s3Settings, services, sql, uniqueId } from '../helpers/services.js';

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe('transient failures get the codes the daemon retries', () => {
  it('a role over its connection limit: db-too-many-connections, from pg and from pg_dump', async () => {
    const db = await createDatabase('limit');
    const role = `limited_${uniqueId()}`;
    await sql(
      'postgres',
      `CREATE ROLE ${role} LOGIN PASSWORD 'pw-${role}' CONNECTION LIMIT 0; GRANT CONNECT ON DATABASE "${db}" TO ${role};`,
    );
    const { pg } = services();
    const url = `postgresql://${role}:pw-${role}@${pg.host}:${pg.port}/${db}`;

    const viaClient = await rejection(connect(url));
    expect(viaClient.code).toBe('db-too-many-connections');
    expect(isTransientFailure(viaClient)).toBe(true);

    const tool = await findPgTool('pg_dump', 0, pg.bindir);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const viaDump = await rejection(pipeline(pgDumpStage({ tool, url, compressionArgs: [] }), sink));
    expect(viaDump.code).toBe('db-too-many-connections');
    expect(viaDump.message).toContain('too many connections');
    expect(isTransientFailure(viaDump)).toBe(true);
  });

  it('a pg_dump whose server connection is terminated mid-dump: db-connection-lost', async () => {
    const db = await createDatabase('lost', `CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g;`);
    const app = `pgbak_lost_${uniqueId()}`;
    const tool = await findPgTool('pg_dump', 0, services().pg.bindir);
    // A slow reader keeps pg_dump (and its backend) busy inside COPY until the test terminates it
    // (about 30 s of reading if never terminated, so a loaded machine cannot finish it first).
    const slow = new Writable({ highWaterMark: 1024, write: (_c, _e, cb) => void setTimeout(cb, 200) });
    const dump = pipeline(pgDumpStage({ tool, url: `${pgUrl(db)}?application_name=${app}`, compressionArgs: ['--compress=0'] }), slow);
    const failed = rejection(dump);
    for (let i = 0; i < 100; i++) {
      const n = await sql(
        'postgres',
        `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '${app}' AND query ILIKE 'COPY%'`,
      );
      if (n !== '0') break;
      await sleep(100);
    }
    const err = await failed;
    expect(err.code, err.message).toBe('db-connection-lost');
    expect(isTransientFailure(err)).toBe(true);
  });

  describe('an S3 endpoint answering 503 SlowDown', () => {
    let server: Server | undefined;
    afterAll(() => server?.close());

    it('is storage-server-error, transient', async () => {
      let requests = 0;
      server = createServer((req, res) => {
        requests++;
        req.resume();
        res.writeHead(503, { 'Content-Type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
        );
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const s3 = new S3Backend(
        s3Settings('b', { endpoint, accessKeyId: 'k', secretAccessKey: 'secret-key-123', region: 'us-east-1', queueSize: 1 }),
      );
      try {
        const err = await rejection(
          (async () => {
            for await (const _ of s3.list()) {
              /* nothing */
            }
          })(),
        );
        expect(err.code, err.message).toBe('storage-server-error');
        expect(err.message).toContain('503');
        expect(isTransientFailure(err)).toBe(true);
        expect(requests).toBeGreaterThan(0);
      } finally {
        s3.destroy();
      }
    });
  });
});
