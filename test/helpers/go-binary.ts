import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A tool the tests build from source with `go install` when the machine lacks it (as .ci/run does first). */
export interface GoBinary {
  /** The binary's file name. */
  readonly name: string;
  /** The pinned module version `go install` builds. */
  readonly version: string;
  /** A variable that names the binary's path, taken first. */
  readonly envVar: string;
  /** The Go package path to install (`…/cmd/...` installs every command of the module). */
  readonly module: string;
  /** Take `name` from PATH when there (default true); false when PATH holds an older build of it. */
  readonly fromPath?: boolean;
}

/** Where the build of `bin` is kept: `~/.cache/pgbak/<name>-<version>/` (XDG_CACHE_HOME honoured). */
export function goBinaryCacheDir(bin: Pick<GoBinary, 'name' | 'version'>): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pgbak', `${bin.name}-${bin.version}`);
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/**
 * The binary's path: `envVar`, else `name` on PATH (unless `fromPath` is false), else the cached
 * build, else build it once with `go install` (pinned version) into the cache dir.
 */
export async function ensureGoBinary(bin: GoBinary, log: (msg: string) => void): Promise<string> {
  const { name, version, envVar, module } = bin;
  if (process.env[envVar]) return process.env[envVar];
  const fromPath = bin.fromPath === false ? undefined : onPath(name);
  if (fromPath) return fromPath;
  const dir = goBinaryCacheDir(bin);
  const path = join(dir, name);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  log(`building ${name} ${version} with go install into ${dir} (once)…`);
  const started = Date.now();
  await execFileAsync('go', ['install', `${module}@${version}`], {
    env: { ...process.env, GOBIN: dir, GOFLAGS: '-trimpath' },
    maxBuffer: 64 * 1024 * 1024,
  });
  log(`${name} built in ${Math.round((Date.now() - started) / 1000)} s`);
  return path;
}
