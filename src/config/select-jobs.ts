import { UsageError } from '../errors/index.js';
import type { JobConfig } from './job.js';

/**
 * The jobs a command acts on: `--job NAME` picks one, `--all` every job; without either, the
 * only job (a file with several jobs then needs one of them). Throws a UsageError naming the jobs.
 */
export function selectJobs(
  jobs: readonly JobConfig[],
  selection: { job?: string | undefined; all?: boolean | undefined } = {},
): JobConfig[] {
  const names = jobs.map((j) => j.name);
  if (selection.job !== undefined && selection.all) throw new UsageError('use either --job NAME or --all, not both');
  if (selection.all) return [...jobs];
  if (selection.job !== undefined) {
    const found = jobs.find((j) => j.name === selection.job);
    if (!found) throw new UsageError(`no job named "${selection.job}"; the jobs are: ${names.join(', ')}`);
    return [found];
  }
  if (jobs.length === 1) return [...jobs];
  throw new UsageError(`there are ${jobs.length} jobs (${names.join(', ')}): choose one with --job NAME, or --all`);
}
