import { statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { services } from './services.js';

/** The `sh` blocks of each `## Job NAME` section of a recovery kit's README, joined in order. */
export function jobScripts(readme: string): Map<string, string> {
  const scripts = new Map<string, string>();
  for (const section of readme.split(/^## Job /m).slice(1)) {
    const name = /^([^:\n]+):/.exec(section)![1]!;
    const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
    scripts.set(name, blocks.join('\n'));
  }
  return scripts;
}

/** PATH without any directory that holds a `pgbak`. */
export function pathWithoutPgbak(): string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => {
    try {
      statSync(join(d, 'pgbak'));
      return false;
    } catch {
      return true;
    }
  });
  return dirs.join(delimiter);
}

/** Only the placeholders a kit's README documents (bucket key, libpq variables, keys, TARGET_DB): nothing of pgbak's configuration. */
export function kitPlaceholders(target: string, keys: { ageIdentityFile?: string } = {}): NodeJS.ProcessEnv {
  const s = services();
  return {
    PATH: pathWithoutPgbak(),
    HOME: process.env.HOME,
    AWS_ACCESS_KEY_ID: s.s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s.s3.secretKey,
    PGHOST: s.pg.host,
    PGPORT: String(s.pg.port),
    PGUSER: s.pg.user,
    PGPASSWORD: s.pg.password,
    ...(keys.ageIdentityFile ? { AGE_IDENTITY_FILE: keys.ageIdentityFile } : {}),
    GNUPGHOME: s.gpg.home,
    TARGET_DB: target,
  };
}
