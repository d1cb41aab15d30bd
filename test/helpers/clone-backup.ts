import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactKey, baseName, globalsKey, manifestKey, parseKey } from '../../src/catalog/backup-name.js';
import { awsPut } from './restore-fixtures.js';
import { awsEnv, execFileAsync, services, tempDir } from './services.js';

/**
 * Copy a real backup under another time, as the fault run's clone.py did: the artifact and
 * globals bytes stay as they are (so their sha256 still matches), the manifest gets the new
 * name, times and keys. No run record is copied (a backup made by pgbak 0.1 had none).
 */
export function clonedManifest(manifestText: string, offsetMs: number): { name: string; text: string; keys: Record<string, string> } {
  const m = JSON.parse(manifestText) as {
    name: string;
    startedAt: string;
    finishedAt: string;
    artifact: { key: string };
    globals: { key: string } | null;
  };
  const parsed = parseKey(m.artifact.key)!;
  const started = new Date(Date.parse(m.startedAt) + offsetMs);
  const name = baseName(parsed.prefix, started);
  const keys: Record<string, string> = {
    [m.artifact.key]: artifactKey(name, { streamCompression: parsed.streamCompression, encrypted: parsed.encrypted }),
    [`${m.name}.manifest.json`]: manifestKey(name),
  };
  if (m.globals) keys[m.globals.key] = globalsKey(name, m.globals.key.endsWith('.gpg'));
  const out = {
    ...m,
    name,
    startedAt: started.toISOString(),
    finishedAt: new Date(Date.parse(m.finishedAt) + offsetMs).toISOString(),
    artifact: { ...m.artifact, key: keys[m.artifact.key]! },
    globals: m.globals ? { ...m.globals, key: keys[m.globals.key]! } : null,
  };
  return { name, text: JSON.stringify(out, null, 2) + '\n', keys };
}

/** Clone backup `name` in BACKUP_DIR `dir` to `offsetMs` later (negative: earlier); returns the new name. */
export function cloneLocal(dir: string, name: string, offsetMs: number): string {
  const c = clonedManifest(readFileSync(join(dir, manifestKey(name)), 'utf8'), offsetMs);
  for (const [from, to] of Object.entries(c.keys)) if (!from.endsWith('.manifest.json')) copyFileSync(join(dir, from), join(dir, to));
  writeFileSync(join(dir, manifestKey(c.name)), c.text, { mode: 0o600 });
  return c.name;
}

/** The same in a bucket prefix, with the aws CLI (server-side copies). */
export async function cloneRemote(bucket: string, prefix: string, name: string, offsetMs: number): Promise<string> {
  const env = awsEnv();
  const endpoint = ['--endpoint-url', services().s3.endpoint];
  const { stdout } = await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${prefix}${manifestKey(name)}`, '-', ...endpoint], { env });
  const c = clonedManifest(stdout, offsetMs);
  for (const [from, to] of Object.entries(c.keys)) {
    if (from.endsWith('.manifest.json')) continue;
    await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${prefix}${from}`, `s3://${bucket}/${prefix}${to}`, ...endpoint], { env });
  }
  const file = join(tempDir('clone-'), manifestKey(c.name));
  writeFileSync(file, c.text);
  await awsPut(file, bucket, `${prefix}${manifestKey(c.name)}`);
  return c.name;
}
