import { existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { PgToolError } from '../errors/index.js';
import { childEnv } from '../pipeline/child-env.js';
import { execChild } from '../pipeline/child-stage.js';

/** Tool runs in their own process group, killed on pgbak's exit (see child-stage.ts). */
const execFileAsync = execChild;

export type PgToolName = 'pg_dump' | 'pg_restore' | 'pg_dumpall' | 'psql' | 'pg_basebackup';

export interface PgTool {
  readonly name: PgToolName;
  readonly path: string;
  /** e.g. "15.18" */
  readonly version: string;
  readonly major: number;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Candidate paths of a tool, in order: PG_DUMP_PATH (file or directory), PATH, /usr/lib/postgresql/*\/bin newest first. */
export interface SearchPlaces {
  /** PATH to search (default: the process's). */
  readonly path?: string | undefined;
  /** Where Debian installs versioned binaries (default /usr/lib/postgresql). */
  readonly versionsRoot?: string;
}

function candidatePaths(name: PgToolName, pgDumpPath?: string, places: SearchPlaces = {}): string[] {
  const out: string[] = [];
  if (pgDumpPath) {
    const dir = isFile(pgDumpPath) ? dirname(pgDumpPath) : pgDumpPath;
    out.push(isFile(pgDumpPath) && name === 'pg_dump' ? pgDumpPath : join(dir, name));
  }
  for (const dir of (places.path ?? process.env.PATH ?? '').split(delimiter)) if (dir) out.push(join(dir, name));
  const root = places.versionsRoot ?? '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) out.push(join(root, v, 'bin', name));
  }
  return [...new Set(out)].filter(isFile);
}

async function toolVersion(path: string): Promise<{ version: string; major: number } | undefined> {
  try {
    const { stdout } = await execFileAsync(path, ['--version'], { timeout: 15_000, env: childEnv() });
    const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(stdout);
    if (!m) return undefined;
    const major = Number(m[1]);
    return { version: m[2] === undefined ? m[1]! : `${m[1]}.${m[2]}`, major };
  } catch {
    return undefined;
  }
}

/** The major version of a version string ("16.2" → 16, "9.6.24" → 9); 0 when there is none. */
export function majorOf(version: string): number {
  return Number(/^(\d+)/.exec(version)?.[1] ?? 0);
}

/**
 * Find a PostgreSQL client tool whose major version is at least `minMajor` (pg_dump must be
 * as new as the server). Fails before any work, listing the versions that were found.
 * `minMajor` may still be on its way (the server's version, while pgbak connects): the first
 * candidate's `--version` runs meanwhile, so a backup does not wait for one process after the other.
 */
export async function findPgTool(
  name: PgToolName,
  minMajor: number | PromiseLike<number>,
  pgDumpPath?: string,
  places?: SearchPlaces,
): Promise<PgTool> {
  const found: string[] = [];
  const candidates = candidatePaths(name, pgDumpPath, places);
  const first = candidates[0] === undefined ? undefined : toolVersion(candidates[0]);
  const min = await minMajor;
  for (const [i, path] of candidates.entries()) {
    const v = i === 0 ? await first : await toolVersion(path);
    if (!v) continue;
    if (v.major >= min) return { name, path, version: v.version, major: v.major };
    found.push(`${path} (${v.version})`);
  }
  if (found.length === 0) {
    throw new PgToolError(`${name} not found`, {
      hint: `install the PostgreSQL client: apt install postgresql-client${pgDumpPath ? ` (PG_DUMP_PATH=${pgDumpPath} has no ${name})` : ''}`,
    });
  }
  throw new PgToolError(`no ${name} of version ${min} or newer (the server's) was found; found: ${found.join(', ')}`, {
    hint: `install postgresql-client-${min} or newer, or point PG_DUMP_PATH at its bin directory`,
  });
}

/**
 * The same-version sibling of a tool (pg_restore next to the chosen pg_dump), else a search. With
 * `sameInstall`, a sibling is taken as the same installation's, of `of`'s version, without running
 * it (`--version` costs a backup a process start before its dump).
 */
export async function siblingTool(of: PgTool, name: PgToolName, sameInstall = false): Promise<PgTool> {
  const path = join(dirname(of.path), name);
  if (sameInstall && isFile(path)) return { name, path, version: of.version, major: of.major };
  if (isFile(path)) {
    const v = await toolVersion(path);
    if (v && v.major >= of.major) return { name, path, version: v.version, major: v.major };
  }
  return findPgTool(name, of.major);
}
