import { ProcessError } from '../errors/index.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { unsupportedArchiveError } from './archive-header.js';
import { childConnection } from './connection.js';
import type { PgTool } from './pg-tools.js';

export interface PgRestoreOptions {
  readonly tool: PgTool;
  /** The target database's URL; its password goes to the child's environment only. */
  readonly targetUrl: string;
  /** Parallel jobs (> 1 needs `file`). */
  readonly jobs: number;
  /** All or nothing: needed when the archive is read before its checksum is known. */
  readonly singleTransaction: boolean;
  /** A seekable archive file; undefined: the archive comes on stdin. */
  readonly file?: string | undefined;
  /** More pg_restore arguments (e.g. --no-owner for a restore test on another server). */
  readonly extraArgs?: readonly string[];
  /** Called for each object pg_restore reports (creating …, processing data …, executing …). */
  readonly onObject?: (line: string) => void;
  /** Called for each error line pg_restore prints, so it can be shown at once. */
  readonly onError?: (line: string) => void;
}

const OBJECT_LINE = /^pg_restore: (creating |processing data for table |executing )/;
const ERROR_LINE = /^pg_restore: error: |^(ERROR|DETAIL|HINT|CONTEXT|LINE \d+):|^Command was: /;
const KEEP_LINE = /error|warning|fatal|detail|hint|command was|could not/i;

/**
 * The seed's restore: `pg_restore --clean --if-exists`, plus `--no-password` (never prompt),
 * `--verbose` (for progress), `--jobs N` and `--single-transaction` when asked.
 */
function pgRestoreArgs(o: PgRestoreOptions): string[] {
  if (o.jobs > 1 && !o.file) throw new ProcessError('pg_restore --jobs needs an archive file, not a stream');
  if (o.jobs > 1 && o.singleTransaction) throw new ProcessError('pg_restore cannot combine --jobs with --single-transaction');
  const conn = childConnection(o.targetUrl);
  return [
    '--clean',
    '--if-exists',
    '--no-password',
    '--verbose',
    ...(o.jobs > 1 ? [`--jobs=${o.jobs}`] : []),
    ...(o.singleTransaction ? ['--single-transaction'] : []),
    ...(o.extraArgs ?? []),
    `--dbname=${conn.dbnameArg}`,
    ...(o.file ? [o.file] : []),
  ];
}

/**
 * pg_restore as a stream stage (reading stdin when no file is given). It fails unless pg_restore
 * exits 0; the error names the first error pg_restore printed and how many there were, and
 * every error line was already passed to `onError` (shown, not swallowed).
 */
export function pgRestoreStage(o: PgRestoreOptions): ChildStage {
  const conn = childConnection(o.targetUrl);
  const errors: string[] = [];
  return new ChildStage({
    label: 'pg_restore',
    command: o.tool.path,
    args: pgRestoreArgs(o),
    env: conn.env,
    input: !o.file,
    keepStderr: (line) => KEEP_LINE.test(line) && !OBJECT_LINE.test(line),
    onStderrLine: (line) => {
      if (OBJECT_LINE.test(line)) o.onObject?.(line);
      else if (ERROR_LINE.test(line)) {
        if (errors.length < 1000) errors.push(line);
        o.onError?.(line);
      }
    },
    mapFailure: (info) => {
      // An archive newer than this pg_restore (a stream: the file check could not run first).
      const tooNew = info.code !== null ? unsupportedArchiveError(info.stderr, o.tool) : undefined;
      if (tooNew) return tooNew;
      const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
      const ignored = /errors ignored on restore: (\d+)/.exec(info.stderr)?.[1];
      const first =
        errors.find((l) => l.startsWith('pg_restore: error:'))?.replace(/^pg_restore: error: /, '') ??
        info.stderr.trim().split('\n').slice(-1)[0] ??
        '';
      const count = ignored ? Number(ignored) : errors.filter((l) => l.startsWith('pg_restore: error:')).length;
      return new ProcessError(`pg_restore ${how}${first ? `: ${first}` : ''}`, {
        hint: `${count > 1 ? `${count} errors in all; each` : 'the error'} is in the log above${/role .* does not exist/.test(first) ? '; a missing owner role: restore with --with-globals' : ''}`,
      });
    },
  });
}
