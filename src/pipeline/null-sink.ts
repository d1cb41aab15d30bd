import { Writable } from 'node:stream';

/** A writable that discards everything: the end of a pipeline read only for its checks. */
export function nullSink(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
