/** Checks of resolved jobs that loadJobs reports with the file's paths: the schedule, and two jobs sharing backups. */
import type { JobConfig } from './job.js';
import type { Section } from './job-file.js';
import type { Settings, VariableName } from './schema.js';
import { isValidTimeZone, scheduleProblem } from './schedule.js';

/** A problem and the key to blame for it. */
export interface BlamedProblem {
  readonly path: string;
  readonly message: string;
}

/** The schedule's problem and the key to blame: the job's, the defaults', a flag or the environment. */
export function checkSchedule(
  settings: Settings,
  origin: (name: VariableName) => string | undefined,
  flags: Readonly<Record<string, string>>,
): BlamedProblem | undefined {
  const blame = (name: VariableName) => origin(name) ?? (flags[name] !== undefined ? `flag ${name}` : name);
  if (!isValidTimeZone(settings.BACKUP_TZ)) {
    return {
      path: blame('BACKUP_TZ'),
      message: `unknown time zone "${settings.BACKUP_TZ}" (use an IANA name such as UTC or Europe/Paris)`,
    };
  }
  const problem = scheduleProblem(settings.BACKUP_SCHEDULE, settings.BACKUP_TZ);
  return problem ? { path: blame('BACKUP_SCHEDULE'), message: problem } : undefined;
}

/** Two jobs writing `<db>_<timestamp>` into the same folder or bucket prefix would prune each other. */
export function sharedNameProblems(jobs: readonly JobConfig[], sections: readonly Section[]): string[] {
  const problems: string[] = [];
  const pathOf = (job: JobConfig) => sections.find((s) => s.name === job.name)?.path ?? job.name;
  for (let i = 0; i < jobs.length; i++) {
    for (let k = i + 1; k < jobs.length; k++) {
      const a = jobs[i]!;
      const b = jobs[k]!;
      if (a.filePrefix !== b.filePrefix) continue;
      const sameDir = a.backupDir === b.backupDir;
      const sameBucket = a.s3 && b.s3 && a.s3.endpoint === b.s3.endpoint && a.s3.bucket === b.s3.bucket && a.s3.prefix === b.s3.prefix;
      if (!sameDir && !sameBucket) continue;
      const where = sameDir ? `backup_dir ${a.backupDir}` : `s3://${a.s3!.bucket}/${a.s3!.prefix}`;
      problems.push(
        `${pathOf(a)} and ${pathOf(b)} (jobs "${a.name}" and "${b.name}") both back up a database named "${a.database}" into ${where}: ` +
          "give one of them its own backup_dir and storage_prefix, or their retention would delete each other's backups",
      );
    }
  }
  return problems;
}
