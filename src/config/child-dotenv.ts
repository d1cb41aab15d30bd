/**
 * `.env` stands in for the environment, also for the programs pgbak starts: GNUPGHOME set there
 * must reach gpg (and gpg's key checks), not only the shell's. pgbak's own settings are read from
 * the loaded layers; these are the variables that only children read.
 */
import { isAbsolute, resolve } from 'node:path';

/** Variables of `.env` exported to the process (and so to the children, see pipeline/child-env.ts). */
export const DOTENV_FOR_CHILDREN = ['GNUPGHOME'] as const;

/** What the last call exported, so a reload can update or remove its own value but never the environment's. */
const applied = new Map<string, string>();

/**
 * Export `.env`'s DOTENV_FOR_CHILDREN into `env` (default: process.env) unless the environment
 * already sets them: the environment wins over `.env`, as for every setting. A relative path
 * resolves against `cwd`, as BACKUP_DIR does. Returns what is now exported from `.env`.
 */
export function applyDotenvForChildren(
  dotenv: Readonly<Record<string, string>>,
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of DOTENV_FOR_CHILDREN) {
    const mine = applied.get(name);
    const current = env[name];
    const fromEnvironment = current !== undefined && current !== '' && current !== mine;
    const raw = dotenv[name]?.trim();
    if (fromEnvironment) {
      applied.delete(name);
      continue;
    }
    if (raw === undefined || raw === '') {
      if (mine !== undefined && current === mine) delete env[name];
      applied.delete(name);
      continue;
    }
    const value = isAbsolute(raw) ? raw : resolve(cwd, raw);
    env[name] = value;
    applied.set(name, value);
    out[name] = value;
  }
  return out;
}
