import { AppError, ExitCode } from '../../errors/index.js';
import type { CommandOutcome } from '../outcome.js';
import { out } from '../style.js';
import type { WalFlags } from './wal-common.js';

/** `pgbak verify --wal`: exit 0 when the chain is complete, 9 naming the first gap. */
export async function runVerifyWal(flags: WalFlags & { json?: boolean | undefined }): Promise<CommandOutcome> {
  const [{ loadWalJob }, { verifyWal }] = await Promise.all([import('./wal-common.js'), import('../../api/verify-wal.js')]);
  const { job, logger } = await loadWalJob(flags);
  const r = await verifyWal({ job, logger });
  if (!flags.json) {
    const lines = [
      `verify --wal ${r.ok ? out().ok('ok') : out().fail('FAILED')}: ${r.location} (cluster ${r.systemIdentifier}), from base backup ${r.baseBackup}`,
      ...r.stretches.map((s) => `  timeline ${s.timeline}: ${s.first} … ${s.last} (${s.segments} segments)`),
      ...(r.newestSegment ? [`  newest segment ${r.newestSegment.name}, stored ${r.newestSegment.storedAt}`] : []),
      ...r.problems.map((p) => `  ${out().fail('FAIL')} ${p}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  const json = { results: [r] };
  if (r.ok) return { exitCode: ExitCode.ok, errors: [], json };
  const jsonError = new AppError(r.firstGap ? 'wal-gap' : 'wal-conflict', r.problems.join('; '), {
    exitCode: ExitCode.integrity,
    hint: 'a restore cannot replay past a gap: take a new base backup now (pgbak basebackup) so recovery starts after it',
  });
  return { exitCode: ExitCode.integrity, errors: [jsonError], json };
}
