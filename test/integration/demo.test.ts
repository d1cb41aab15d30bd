import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { waitFor } from '../helpers/processes.js';

const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
/** What the user's ./backups holds (the demo must add nothing there). */
const userBackups = () => (existsSync(join(REPO_ROOT, 'backups')) ? readdirSync(join(REPO_ROOT, 'backups'), { recursive: true }) : []);

describe('npm run demo', () => {
  it('runs the whole cycle in its throwaway cluster; the commands it prints work as printed; ./backups is untouched', async () => {
    const before = userBackups();
    const child = spawn(TSX, ['demo/demo.ts', '--wait'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => out.includes('press Enter to stop') || child.exitCode !== null, 240_000, 'the demo to finish its cycle');
      expect(out, err.slice(-2000)).toContain('press Enter to stop');

      // The cycle, each step run exactly as printed.
      expect(out).toMatch(/\$ DATABASE_URL=\S+ BACKUP_DIR=\S+ LOG_FILE= \.\/bin\/pgbak backup --no-upload/);
      expect(out).toMatch(/backup ok: sweet_narcisse_\d{8}_\d{6}/);
      expect(out).toMatch(/sweet_narcisse_\d{8}_\d{6} +sweet_narcisse .* good/);
      expect(out).toContain("row counts: 2 tables, 20012 rows, all equal to the backup's");
      expect(out).toMatch(/restore ok: .* → sweet_narcisse_copy \(created\)/);
      expect(out).toMatch(/sweet_narcisse_copy has 20000 bookings, as the original; RTO \d/);
      const backupDir = /BACKUP_DIR=(\S+)/.exec(out)![1]!;
      expect(backupDir.startsWith(REPO_ROOT)).toBe(false);

      // The follow-up commands, pasted as printed while the cluster is still up.
      const tryBlock = out.slice(out.indexOf('Try, from this directory:'), out.indexOf('Then press Enter'));
      const commands = tryBlock
        .split('\n')
        .slice(1)
        .map((l) => l.trim())
        .filter(Boolean);
      expect(commands).toHaveLength(2);
      for (const line of commands) {
        const r = spawnSync('sh', ['-c', line], {
          cwd: REPO_ROOT,
          env: { PATH: process.env.PATH, HOME: process.env.HOME },
          encoding: 'utf8',
        });
        expect(r.status, `${line}\n${r.stdout}${r.stderr}`).toBe(0);
        if (line.includes(' restore ')) expect(r.stdout).toMatch(/restore ok: .* → sweet_narcisse_copy2 \(created\)[\s\S]*RTO \d/);
        else expect(r.stdout).toMatch(/sweet_narcisse/);
      }

      child.stdin.end('\n');
      expect(await done, err.slice(-2000)).toBe(0);
      expect(out).toContain('throwaway cluster stopped, temporary backups removed');
      expect(existsSync(backupDir)).toBe(false);
      expect(userBackups()).toEqual(before);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
    }
  });
});
