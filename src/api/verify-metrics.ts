import type { Logger } from '../logging/logger.js';
import { messageOf } from '../errors/index.js';
import type { BackupVerification } from './verify.js';

/**
 * METRICS_TEXTFILE: record the restore tests among `results` for the alert rules. Never throws:
 * a metrics file that cannot be written is a warning, not a failed verification.
 */
export async function recordRestoreTests(
  path: string | undefined,
  labels: { job: string; database: string },
  results: readonly BackupVerification[],
  logger: Pick<Logger, 'warn'>,
): Promise<void> {
  const tests = results.flatMap((r) => (r.restoreTest ? [{ ok: r.ok, durationMs: r.restoreTest.durationMs }] : []));
  if (!path || tests.length === 0) return;
  try {
    const { updateMetricsTextfile } = await import('../metrics/textfile.js'); // prom-client only when used
    await updateMetricsTextfile(path, (m) => {
      for (const t of tests) m.recordRestoreTest({ ...labels, ...t, at: new Date() });
    });
  } catch (err) {
    logger.warn('could not update METRICS_TEXTFILE', { error: messageOf(err) });
  }
}
