import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { cmdlineOf, waitFor } from '../helpers/processes.js';

const run = promisify(execFile);
const CHILD_STAGE = join(REPO_ROOT, 'dist', 'pipeline', 'child-stage.js');

/** pids of the running processes whose command line is exactly `sleep <seconds>`. */
function sleepers(seconds: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => cmdlineOf(pid) === `sleep\u0000${seconds}\u0000`);
}

/**
 * A node process that starts a ChildStage running `sh -c 'sleep N & sleep N; wait'` (a child with a
 * grandchild), prints the pids, then does `action`; returns once it exited.
 */
async function runWithChild(seconds: string, action: string): Promise<{ code: number | null; pid: number }> {
  const script = `
    import { ChildStage } from ${JSON.stringify(CHILD_STAGE)};
    const s = new ChildStage({ label: 'sh', command: 'sh', args: ['-c', 'sleep ${seconds} & sleep ${seconds}; wait'], input: false });
    s.on('error', () => undefined);
    s.resume();
    setTimeout(() => { console.log(s.child.pid); ${action} }, 500);
  `;
  // Bounded: a grandchild that outlived its stage would hold the output pipe open and keep node waiting.
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 15_000 }).then(
    (ok) => ({ code: 0, stdout: ok.stdout }),
    (err: { code: number | null; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
  );
  return { code: r.code, pid: Number(r.stdout.trim()) };
}

describe('children run in their own process group, and never outlive pgbak', () => {
  it('process.exit while a child runs kills its whole group (child and grandchild)', async () => {
    const { code, pid } = await runWithChild('61.5', 'process.exit(3);');
    expect(code).toBe(3);
    expect(pid).toBeGreaterThan(0);
    await waitFor(() => cmdlineOf(pid) === '' && sleepers('61.5').length === 0, 5_000, 'the child and its grandchild to be gone');
  });

  it('destroying the stage kills the group too, and the process then exits on its own', async () => {
    const { code, pid } = await runWithChild('62.5', 's.destroy();');
    expect(code).toBe(0);
    await waitFor(() => cmdlineOf(pid) === '' && sleepers('62.5').length === 0, 5_000, 'the child and its grandchild to be gone');
  });
});
