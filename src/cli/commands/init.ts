import type { Command } from '@commander-js/extra-typings';
import { ConfigError, ExitCode, StorageError } from '../../errors/index.js';
import { initBucket } from '../../storage/init-bucket.js';
import { S3Backend } from '../../storage/s3-backend.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { stopOnSignals } from '../signals.js';

interface InitFlags extends CommonFlags {
  lifecycle?: boolean;
  json?: boolean;
}

export function registerInit(program: Command): void {
  const cmd = program
    .command('init')
    .description('create the bucket if missing and prove write, read, list and delete there (idempotent)')
    .option('--lifecycle', "also install the seed's lifecycle rule (expire backups/ after RETENTION_DAYS days; abort stale uploads after 1 day)")
    .option('--json', 'print the report as JSON on stdout');
  addCommonOptions(cmd).action(async (flags: InitFlags) => {
    const ctx = loadContext(flags, { openLogFile: true });
    const reports = [];
    let failed = false;
    const stop = stopOnSignals(ctx.logger, 'bucket check');
    for (const job of ctx.jobs) {
      if (!job.s3) {
        throw new ConfigError(['STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY: both must be set for `pgbak init`'], {
          hint: 'set the MinIO/S3 keys in the environment or .env',
        });
      }
      const report = await initBucket(new S3Backend(job.s3, { signal: stop.signal }), { lifecycleDays: flags.lifecycle ? job.retention.days : undefined });
      reports.push({ job: job.name, ...report });
      failed ||= !report.ok;
      for (const w of report.warnings) ctx.logger.warn(w);
      if (!flags.json) {
        process.stdout.write(
          [
            `init ${report.location}: bucket ${report.bucket === 'created' ? 'created' : 'already exists'}`,
            ...report.checks.map((c) => `  [${c.ok ? 'ok' : 'FAIL'}] ${c.name}${c.detail ? `: ${c.detail}` : ''}`),
            ...(report.lifecycle ? [`  lifecycle rule installed: expire ${job.s3.prefix} after ${job.retention.days} days, abort incomplete uploads after 1 day`] : []),
            ...report.warnings.map((w) => `  warning: ${w}`),
          ].join('\n') + '\n',
        );
      }
    }
    stop.dispose();
    if (flags.json) writeJson(reports.length === 1 ? reports[0] : reports);
    if (stop.signal.aborted) {
      process.stderr.write('pgbak: error: interrupted\n');
      process.exitCode = ExitCode.interrupted;
    } else if (failed) {
      const e = new StorageError('storage-access', 'the bucket does not allow every operation pgbak needs (see the failed checks)', {
        hint: 'grant the access key s3:PutObject, GetObject, ListBucket and DeleteObject on the bucket',
      });
      process.stderr.write(`pgbak: error: ${e.message}\nhint: ${e.hint}\n`);
      process.exitCode = e.exitCode;
    } else process.exitCode = ExitCode.ok;
  });
}
