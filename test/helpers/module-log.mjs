// Records every module a Node process loads, one URL or path a line, in the file named by
// PGBAK_MODULE_LOG. Use: node --import ./test/helpers/module-log.mjs bin/pgbak --version
// ESM: a resolve hook (module.register; it runs in the loader's own thread) appends each resolved URL.
// CommonJS: require() inside a CJS package bypasses ESM hooks, so at exit every key of
// require.cache (Module._cache, every CJS module loaded by either loader) is appended too, and
// node's internal modules as node-internal:<id>.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isMainThread, workerData } from 'node:worker_threads';

let logFile = process.env.PGBAK_MODULE_LOG;

/** Loader thread: receives the log file from register(). */
export async function initialize(data) {
  logFile = data?.logFile ?? logFile;
}

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (logFile) appendFileSync(logFile, `${resolved.url}\n`);
  return resolved;
}

if (isMainThread && workerData === null && logFile) {
  const file = logFile;
  register(import.meta.url, { data: { logFile: file } });
  const cache = createRequire(import.meta.url).cache;
  // And node's own internal modules, as `node-internal:<id>` (process.moduleLoadList): which of
  // node's parts a command started (internal/deps/undici/undici is its fetch).
  process.on('exit', () =>
    appendFileSync(
      file,
      [
        ...Object.keys(cache),
        ...process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => `node-internal:${m.slice(13)}`),
      ]
        .map((k) => `${k}\n`)
        .join(''),
    ),
  );
}
