import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseName, manifestKey, parseKey } from '../../src/catalog/backup-name.js';
import { awsPut } from './restore-fixtures.js';
import { awsEnv, execFileAsync, services, tempDir } from './services.js';

/**
 * Copy a real backup under another name, as the fault run's clone.py did: the artifact and
 * globals bytes stay as they are (so their sha256 and size still match), the manifest gets the
 * new name and keys. No run record or verification is copied (a backup made by pgbak 0.1 had none).
 *
 * The new name is either given, with an `edit` of the manifest for anything else (its startedAt,
 * server, host…), or a time offset: the backup `offsetMs` later (negative: earlier), name,
 * startedAt and finishedAt moved by it.
 */

/** Changes made to a cloned manifest (already renamed) before it is written. */
export type ManifestEdit = (m: Record<string, any>) => void;

export interface ClonedManifest {
  /** The clone's name. */
  name: string;
  /** Its manifest, as pgbak writes one. */
  text: string;
  /** Old key → new key of the artifact, the globals (if any) and the manifest. */
  keys: Record<string, string>;
}

/** The manifest of a clone of the backup whose manifest is `manifestText`. */
export function clonedManifest(manifestText: string, offsetMs: number): ClonedManifest;
export function clonedManifest(manifestText: string, newName: string, edit?: ManifestEdit): ClonedManifest;
export function clonedManifest(manifestText: string, to: number | string, edit: ManifestEdit = () => {}): ClonedManifest {
  const m = JSON.parse(manifestText) as Record<string, any>;
  if (typeof to === 'number') {
    const started = new Date(Date.parse(m.startedAt) + to);
    return clonedManifest(manifestText, baseName(parseKey(m.artifact.key)!.prefix, started), (c) => {
      c.startedAt = started.toISOString();
      c.finishedAt = new Date(Date.parse(c.finishedAt) + to).toISOString();
    });
  }
  const oldName = m.name as string;
  const renamed = (key: string) => to + key.slice(oldName.length);
  const keys: Record<string, string> = { [m.artifact.key]: renamed(m.artifact.key) };
  if (m.globals) keys[m.globals.key] = renamed(m.globals.key);
  keys[manifestKey(oldName)] = manifestKey(to);
  m.name = to;
  m.artifact.key = keys[m.artifact.key];
  if (m.globals) m.globals.key = keys[m.globals.key];
  edit(m);
  return { name: to, text: JSON.stringify(m, null, 2) + '\n', keys };
}

/** Clone backup `name` in BACKUP_DIR `dir` (see clonedManifest); returns the clone's name. */
export function cloneLocal(dir: string, name: string, offsetMs: number): string;
export function cloneLocal(dir: string, name: string, newName: string, edit?: ManifestEdit): string;
export function cloneLocal(dir: string, name: string, to: number | string, edit?: ManifestEdit): string {
  const text = readFileSync(join(dir, manifestKey(name)), 'utf8');
  const c = typeof to === 'number' ? clonedManifest(text, to) : clonedManifest(text, to, edit);
  for (const [from, key] of Object.entries(c.keys)) if (!from.endsWith('.manifest.json')) copyFileSync(join(dir, from), join(dir, key));
  writeFileSync(join(dir, manifestKey(c.name)), c.text, { mode: 0o600 });
  return c.name;
}

/** The same in a bucket prefix of the test S3 server, with the aws CLI (server-side copies). */
export async function cloneRemote(bucket: string, prefix: string, name: string, offsetMs: number): Promise<string>;
export async function cloneRemote(bucket: string, prefix: string, name: string, newName: string, edit?: ManifestEdit): Promise<string>;
export async function cloneRemote(bucket: string, prefix: string, name: string, to: number | string, edit?: ManifestEdit): Promise<string> {
  const env = awsEnv();
  const endpoint = ['--endpoint-url', services().s3.endpoint];
  const { stdout } = await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${prefix}${manifestKey(name)}`, '-', ...endpoint], { env });
  const c = typeof to === 'number' ? clonedManifest(stdout, to) : clonedManifest(stdout, to, edit);
  for (const [from, key] of Object.entries(c.keys)) {
    if (from.endsWith('.manifest.json')) continue;
    await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${prefix}${from}`, `s3://${bucket}/${prefix}${key}`, ...endpoint], { env });
  }
  const file = join(tempDir('clone-'), manifestKey(c.name));
  writeFileSync(file, c.text);
  await awsPut(file, bucket, `${prefix}${manifestKey(c.name)}`);
  return c.name;
}
