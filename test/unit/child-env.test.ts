import { describe, expect, it } from 'vitest';
import { applyDotenvForChildren } from '../../src/config/child-dotenv.js';
import { childEnv } from '../../src/pipeline/child-env.js';

describe('childEnv: what a child process inherits', () => {
  const parent: NodeJS.ProcessEnv = {
    PATH: '/usr/bin',
    HOME: '/home/bak',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TZ: 'UTC',
    TMPDIR: '/tmp/x',
    GNUPGHOME: '/home/bak/.gnupg',
    PGHOST: 'db',
    PGSSLMODE: 'require',
    PGPASSFILE: '/home/bak/.pgpass',
    PGCLUSTER: '16/main',
    PGPASSWORD: 'operator-password',
    PGBAK_CONFIG: '/etc/pgbak.yml',
    DATABASE_URL: 'postgresql://bak:pw@db/shop',
    VERIFY_DATABASE_URL: 'postgresql://bak:pw@db/postgres',
    STORAGE_SECRET_KEY: 'minio-secret',
    STORAGE_ACCESS_KEY: 'minio-access',
    AWS_SECRET_ACCESS_KEY: 'aws-secret',
    AWS_ACCESS_KEY_ID: 'aws-id',
    NOTIFY_SMTP_URL: 'smtp://u:p@mail',
    NOTIFY_WEBHOOK_URL: 'https://hooks.example/t0ken',
    SOME_TOKEN: 'x',
  };

  it('keeps the allow-list and drops every secret and anything unknown', () => {
    expect(childEnv({}, parent)).toEqual({
      PATH: '/usr/bin',
      HOME: '/home/bak',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      TMPDIR: '/tmp/x',
      GNUPGHOME: '/home/bak/.gnupg',
      PGHOST: 'db',
      PGSSLMODE: 'require',
      PGPASSFILE: '/home/bak/.pgpass',
      PGCLUSTER: '16/main',
    });
  });

  it('adds what the stage sets, PGPASSWORD included, and removes what it unsets', () => {
    const env = childEnv({ PGPASSWORD: 'from-the-url', PGAPPNAME: 'pgbak', TZ: undefined }, parent);
    expect(env.PGPASSWORD).toBe('from-the-url');
    expect(env.PGAPPNAME).toBe('pgbak');
    expect(env.TZ).toBeUndefined();
    expect(env.STORAGE_SECRET_KEY).toBeUndefined();
  });

  it('GNUPGHOME of .env, exported by the loader, reaches the child; .env’s other variables do not', () => {
    const env: NodeJS.ProcessEnv = { PATH: '/usr/bin' };
    applyDotenvForChildren({ GNUPGHOME: '/srv/gnupg', STORAGE_SECRET_KEY: 'k', DATABASE_URL: 'postgresql://u:pw@h/db' }, '/srv', env);
    expect(childEnv({}, env)).toEqual({ PATH: '/usr/bin', GNUPGHOME: '/srv/gnupg' });
  });
});
