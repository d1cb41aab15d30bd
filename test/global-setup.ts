import type { TestProject } from 'vitest/node';
import { createGpgHome } from './helpers/gpg-home.js';
import { startS3Server } from './helpers/minio.js';
import { startCluster } from './helpers/postgres-cluster.js';

export interface TestServices {
  pg: { host: string; port: number; user: string; password: string; bindir: string };
  s3: { endpoint: string; accessKey: string; secretKey: string; region: string; pid: number | undefined };
  gpg: { home: string; email: string; fingerprint: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}

/**
 * Starts the real services once for the whole run: a throwaway PostgreSQL cluster, a MinIO
 * server (built with `go install` on first use) and a temporary GnuPG home with a key.
 */
export default async function setup(project: TestProject) {
  const log = (m: string) => process.stderr.write(`[test services] ${m}\n`);
  const [pg, s3, gpg] = await Promise.all([startCluster({ log }), startS3Server(log), createGpgHome()]);
  project.provide('services', {
    pg: { host: pg.host, port: pg.port, user: pg.user, password: pg.password, bindir: pg.bindir },
    s3: { endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, pid: s3.process?.pid },
    gpg: { home: gpg.home, email: gpg.email, fingerprint: gpg.fingerprint },
  });
  return async () => {
    await Promise.allSettled([pg.stop(), s3.stop(), gpg.remove()]);
  };
}
