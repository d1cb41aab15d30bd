import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, PgToolError } from '../../src/errors/index.js';
import { findPgTool } from '../../src/postgres/pg-tools.js';
import { tempDir } from '../helpers/services.js';

/** A directory with a fake `pg_dump` that answers --version like the real one. */
function fakeBin(version: string): string {
  const dir = tempDir('pgbak-fakebin-');
  const file = join(dir, 'pg_dump');
  writeFileSync(file, `#!/bin/sh\necho "pg_dump (PostgreSQL) ${version} (Debian ${version}-1)"\n`);
  chmodSync(file, 0o755);
  return dir;
}

describe('findPgTool: a pg_dump at least as new as the server', () => {
  const emptyRoot = tempDir('pgbak-noroot-');

  it('takes PG_DUMP_PATH first, then PATH, then /usr/lib/postgresql/*/bin newest first', async () => {
    const root = tempDir('pgbak-root-');
    for (const v of ['13', '16']) {
      mkdirSync(join(root, v, 'bin'), { recursive: true });
      writeFileSync(join(root, v, 'bin', 'pg_dump'), `#!/bin/sh\necho "pg_dump (PostgreSQL) ${v}.2"\n`);
      chmodSync(join(root, v, 'bin', 'pg_dump'), 0o755);
    }
    const onPath = fakeBin('14.9');
    const explicit = fakeBin('17.1');
    expect((await findPgTool('pg_dump', 15, explicit, { path: onPath, versionsRoot: root })).version).toBe('17.1');
    expect((await findPgTool('pg_dump', 14, undefined, { path: onPath, versionsRoot: root })).path).toBe(join(onPath, 'pg_dump'));
    // PATH's 14 is too old for a 15 server: the newest versioned one is used.
    expect((await findPgTool('pg_dump', 15, undefined, { path: onPath, versionsRoot: root })).path).toBe(
      join(root, '16', 'bin', 'pg_dump'),
    );
  });

  it('runs the first candidate’s --version while the server’s version is still on its way, then chooses by it', async () => {
    const dir = tempDir('pgbak-fakebin-');
    const ran = join(dir, 'ran');
    writeFileSync(join(dir, 'pg_dump'), `#!/bin/sh\ntouch "${ran}"\necho "pg_dump (PostgreSQL) 14.9"\n`);
    chmodSync(join(dir, 'pg_dump'), 0o755);
    const root = tempDir('pgbak-root-');
    mkdirSync(join(root, '16', 'bin'), { recursive: true });
    writeFileSync(join(root, '16', 'bin', 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 16.2"\n');
    chmodSync(join(root, '16', 'bin', 'pg_dump'), 0o755);
    let serverMajor: (major: number) => void = () => undefined;
    const finding = findPgTool('pg_dump', new Promise<number>((resolve) => (serverMajor = resolve)), undefined, {
      path: dir,
      versionsRoot: root,
    });
    // The first candidate (PATH's) runs before the server's version is known …
    const deadline = Date.now() + 10_000;
    while (!existsSync(ran) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(ran)).toBe(true);
    // … and is still judged by it: 14 is too old for a 15 server, the versioned 16 is taken.
    serverMajor(15);
    expect((await finding).path).toBe(join(root, '16', 'bin', 'pg_dump'));
  });

  it('fails before dumping and lists the versions found when all are older than the server', async () => {
    const old = fakeBin('12.4');
    const err = await findPgTool('pg_dump', 15, undefined, { path: old, versionsRoot: emptyRoot }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgToolError);
    expect((err as PgToolError).exitCode).toBe(ExitCode.pgDumpMissing);
    expect((err as PgToolError).message).toBe(
      `no pg_dump of version 15 or newer (the server's) was found; found: ${join(old, 'pg_dump')} (12.4)`,
    );
  });

  it('says "pg_dump not found" with the apt hint when there is none at all', async () => {
    const err = await findPgTool('pg_dump', 15, undefined, { path: tempDir(), versionsRoot: emptyRoot }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgToolError);
    expect((err as PgToolError).message).toBe('pg_dump not found');
    expect((err as PgToolError).hint).toMatch(/apt install postgresql-client/);
  });

  it("for a 16, 17 or 18 server with only pg_dump 15, names the client of the server's own version (proven with real servers in test/integration/server-versions.test.ts)", async () => {
    const fifteen = fakeBin('15.18');
    for (const server of [16, 17, 18]) {
      const err = (await findPgTool('pg_dump', server, undefined, { path: fifteen, versionsRoot: emptyRoot }).catch(
        (e: unknown) => e,
      )) as PgToolError;
      expect(err.exitCode).toBe(ExitCode.pgDumpMissing);
      expect(err.message).toBe(
        `no pg_dump of version ${server} or newer (the server's) was found; found: ${join(fifteen, 'pg_dump')} (15.18)`,
      );
      expect(err.hint).toBe(`install postgresql-client-${server} or newer, or point PG_DUMP_PATH at its bin directory`);
    }
    // A newer pg_dump given in PG_DUMP_PATH is taken for a 13 … 18 server alike.
    const eighteen = fakeBin('18.1');
    for (const server of [13, 15, 18]) {
      expect((await findPgTool('pg_dump', server, eighteen, { path: fifteen, versionsRoot: emptyRoot })).version).toBe('18.1');
    }
  });
});
