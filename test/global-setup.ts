import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createGpgHome } from './helpers/gpg-home.js';
import { s3ServerKinds, startS3Server, type S3Server } from './helpers/s3-server.js';
import { startCluster } from './helpers/postgres-cluster.js';
import { variableNames } from '../src/config/schema.js';

/**
 * What the developer's shell may hold for their own pgbak (or libpq, or gpg) and the run must not
 * pass on: its servers inherit the environment, and the environment wins over an --env-file, so a
 * STORAGE_ENDPOINT exported in the shell would reach the PITR tests' archive_command instead of
 * the test bucket's (they then hang in their setup until the hook's timeout).
 */
export const OUTSIDE_SETTINGS: readonly string[] = [
  ...variableNames,
  'GNUPGHOME',
  'PGHOST',
  'PGHOSTADDR',
  'PGPORT',
  'PGUSER',
  'PGPASSWORD',
  'PGPASSFILE',
  'PGDATABASE',
  'PGSERVICE',
  'PGSERVICEFILE',
  'PGSSLMODE',
];

/** One S3 server of the run, as the tests see it. */
export interface TestS3Server {
  /** `minio`, `versitygw`, or `external` for S3_TEST_ENDPOINT. */
  kind: S3Server['kind'];
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  pid: number | undefined;
}

export interface TestServices {
  pg: { host: string; port: number; user: string; password: string; bindir: string };
  /** The primary S3 server: every test that does not name one runs against it (MinIO unless S3_TEST_SERVER=versitygw). */
  s3: TestS3Server;
  /** Every S3 server of the run (S3_TEST_SERVER=both: MinIO, then versitygw), the primary first. */
  s3Servers: TestS3Server[];
  gpg: { home: string; email: string; fingerprint: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}

const describeS3 = (s3: S3Server): TestS3Server => ({
  kind: s3.kind,
  endpoint: s3.endpoint,
  accessKey: s3.accessKey,
  secretKey: s3.secretKey,
  region: s3.region,
  pid: s3.process?.pid,
});

/**
 * Starts the real services once for the whole run: a throwaway PostgreSQL cluster, the S3
 * servers S3_TEST_SERVER names (MinIO and versitygw by default, each built with `go install` on
 * first use; S3_TEST_ENDPOINT instead points at an existing S3) and a temporary GnuPG home with a key.
 */
export default async function setup(project: TestProject) {
  const log = (m: string) => process.stderr.write(`[test services] ${m}\n`);
  const dropped = OUTSIDE_SETTINGS.filter((name) => process.env[name] !== undefined);
  for (const name of dropped) delete process.env[name];
  if (dropped.length > 0) log(`left out of the run's environment: ${dropped.join(' ')}`);
  // Every temporary directory of the run (tempDir(), clusters, the PITR tests' archives and spools)
  // goes under one directory, removed when the run ends: the tests do not remove theirs one by one,
  // and CI runs the suite on the same machine again and again (/tmp had 32 GB of them). Mode 1777,
  // as /tmp's: children that run as other users (the postgres server, a probe as nobody) inherit
  // TMPDIR and create their own files there (tsx its cache).
  const runTmp = mkdtempSync(join(tmpdir(), 'pgbak-testrun-'));
  chmodSync(runTmp, 0o1777);
  process.env.TMPDIR = runTmp;
  const kinds = process.env.S3_TEST_ENDPOINT ? [undefined] : s3ServerKinds();
  const [pg, gpg, ...s3Servers] = await Promise.all([
    startCluster({ log }),
    createGpgHome(),
    ...kinds.map((kind) => startS3Server(kind ? { kind, log } : { log })),
  ]);
  const servers = s3Servers.map(describeS3);
  project.provide('services', {
    pg: { host: pg.host, port: pg.port, user: pg.user, password: pg.password, bindir: pg.bindir },
    s3: servers[0]!,
    s3Servers: servers,
    gpg: { home: gpg.home, email: gpg.email, fingerprint: gpg.fingerprint },
  });
  return async () => {
    await Promise.allSettled([pg.stop(), gpg.remove(), ...s3Servers.map((s) => s.stop())]);
    rmSync(runTmp, { recursive: true, force: true });
  };
}
