import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { PermissionError, fsError } from '../errors/index.js';

/** The nearest existing ancestor of a path must be a writable directory (nothing is created). */
export function checkWritableDir(path: string, what: string, variable: string): string {
  let p = path;
  while (!existsSync(p)) {
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  try {
    if (!statSync(p).isDirectory())
      throw new PermissionError(`${what} ${path}: ${p} is not a directory`, { hint: `set ${variable} to a directory path` });
    accessSync(p, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw fsError(err, `write ${what}`, path, `set ${variable} to a writable directory, or fix the permissions of ${p}`);
  }
  return p === path ? `${path} is writable` : `${path} will be created in ${p} (writable)`;
}
