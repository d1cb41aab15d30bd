import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cron } from 'croner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/parsers.js';
import { variables } from '../../src/config/schema.js';

/** The scheduling files shipped in the repository (the seed's three options + daemon mode). */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (rel: string) => readFileSync(join(repo, rel), 'utf8');
const UNITS = ['db-backup.service', 'db-backup.timer', 'pgbak-daemon.service'] as const;

/** `Key=value` lines of a unit file, by key (a key may repeat). */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

const systemUnitDir = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0 && systemUnitDir !== undefined;

describe.skipIf(!hasSystemdAnalyze)('systemd unit files', () => {
  let root: string;

  /**
   * systemd-analyze verify in a throwaway root: the system's own units (sysinit.target …), ours in
   * /etc/systemd/system, and an executable stub at every path an Exec*= line names, so the shipped
   * files keep their real paths (/opt/pgbak/bin/pgbak, /bin/kill).
   */
  function verify(files: Record<string, string>): { status: number | null; output: string } {
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(root, 'etc/systemd/system', name), text);
      for (const [key, values] of directives(text)) {
        if (!key.startsWith('Exec')) continue;
        for (const value of values) {
          const binary = value.replace(/^[-@:+!]+/, '').split(/\s+/)[0]!;
          mkdirSync(join(root, dirname(binary)), { recursive: true });
          writeFileSync(join(root, binary), '#!/bin/sh\nexit 0\n');
          chmodSync(join(root, binary), 0o755);
        }
      }
    }
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, '--man=no', ...Object.keys(files)], { encoding: 'utf8' });
    return { status: r.status, output: (r.stdout + r.stderr).trim() };
  }

  const shipped = () => Object.fromEntries(UNITS.map((u) => [u, read(`systemd/${u}`)]));

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'pgbak-units-'));
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    cpSync(systemUnitDir!, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('all three pass systemd-analyze verify without a warning', () => {
    expect(verify(shipped())).toEqual({ status: 0, output: '' });
  });

  it('the check catches a bad file (unknown key, bad calendar)', () => {
    const units = shipped();
    const typo = verify({ ...units, 'db-backup.service': units['db-backup.service']!.replace('NoNewPrivileges=', 'NoNewPrivilege=') });
    expect(typo.output).toMatch(/Unknown key 'NoNewPrivilege'/);
    const calendar = verify({
      ...units,
      'db-backup.timer': units['db-backup.timer']!.replace(/^OnCalendar=.*$/m, 'OnCalendar=*-*-* 25:00:00'),
    });
    expect(calendar.status).not.toBe(0);
  });

  it('db-backup.timer fires at 00:00, 06:00, 12:00 and 18:00', () => {
    const [calendar] = directives(read('systemd/db-backup.timer')).get('OnCalendar')!;
    const out = execFileSync('systemd-analyze', ['calendar', '--iterations=5', '--base-time=2025-01-01 01:00:00 UTC', calendar!], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC', SYSTEMD_COLORS: '0' },
    });
    const times = [...out.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+)/g)].map((m) => m[1]);
    expect(times).toEqual([
      '2025-01-01 06:00:00',
      '2025-01-01 12:00:00',
      '2025-01-01 18:00:00',
      '2025-01-02 00:00:00',
      '2025-01-02 06:00:00',
    ]);
  });
});

describe('systemd unit file contents', () => {
  const service = directives(read('systemd/db-backup.service'));
  const timer = directives(read('systemd/db-backup.timer'));
  const daemon = directives(read('systemd/pgbak-daemon.service'));

  it('db-backup.service: oneshot pgbak backup as a dedicated user, hardened, writing only to the backup and log folders', () => {
    expect(service.get('Type')).toEqual(['oneshot']);
    expect(service.get('ExecStart')).toEqual(['/opt/pgbak/bin/pgbak backup']);
    expect(service.get('EnvironmentFile')).toEqual(['/etc/pgbak/pgbak.env']);
    expect([service.get('User'), service.get('Group')]).toEqual([['pgbak'], ['pgbak']]);
    expect(service.get('WorkingDirectory')).toHaveLength(1);
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['PrivateTmp', 'yes'],
      ['ProtectHome', 'yes'],
    ]) {
      expect(service.get(key!), key).toEqual([value]);
    }
    expect(service.get('ReadWritePaths')!.join(' ').split(/\s+/).sort()).toEqual(['/var/backups/pgbak', '/var/log/pgbak']);
    // A hung run must not block the next slots of the 6-hourly timer.
    const startTimeout = parseDuration(service.get('TimeoutStartSec')![0]!);
    expect(startTimeout).toBeGreaterThan(0);
    expect(startTimeout).toBeLessThan(6 * 3600_000);
  });

  it('db-backup.timer: every 6 hours, persistent, with a small random delay', () => {
    expect(timer.get('OnCalendar')).toEqual(['*-*-* 00,06,12,18:00:00']);
    expect(timer.get('Persistent')).toEqual(['true']);
    expect(parseDuration(timer.get('RandomizedDelaySec')![0]!)).toBeLessThanOrEqual(15 * 60_000);
    expect(timer.get('WantedBy')).toEqual(['timers.target']);
  });

  it('pgbak-daemon.service: restarts on failure, reloads with SIGHUP, outlives BACKUP_STOP_TIMEOUT on stop', () => {
    expect(daemon.get('Type')).toEqual(['simple']);
    expect(daemon.get('ExecStart')).toEqual(['/opt/pgbak/bin/pgbak daemon']);
    expect(daemon.get('Restart')).toEqual(['on-failure']);
    expect(daemon.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    const stopTimeout = variables.find((v) => v.name === 'BACKUP_STOP_TIMEOUT')!.default!;
    expect(parseDuration(daemon.get('TimeoutStopSec')![0]!)).toBeGreaterThan(parseDuration(stopTimeout) + 60_000);
    // SIGTERM to pgbak only, so it can let pg_dump finish and clean up itself.
    expect(daemon.get('KillMode')).toEqual(['mixed']);
  });
});

describe('scripts/cron/crontab.example', () => {
  const text = read('scripts/cron/crontab.example');
  const lines = text.split('\n');
  const entries = lines
    .map((line, index) => ({ line: line.trim(), index }))
    .filter(({ line }) => line !== '' && !line.startsWith('#') && !/^[A-Z_]+=/.test(line));

  it('has one /etc/cron.d entry: 5 time fields, a user, the backup script appending to the log file', () => {
    expect(entries).toHaveLength(1);
    const fields = entries[0]!.line.split(/\s+/);
    expect(fields.length).toBeGreaterThanOrEqual(7);
    const [schedule, user, command] = [fields.slice(0, 5).join(' '), fields[5], fields.slice(6).join(' ')];
    expect(schedule).toBe('0 0,6,12,18 * * *');
    expect(user).toBe('pgbak');
    expect(command.split(/\s+/)[0]).toMatch(/\/scripts\/backup-db\.sh$/);
    expect(command).toMatch(/>> \/\S+\.log 2>&1$/);
    expect(command).not.toMatch(/(^|[^\\])%/); // cron turns an unescaped % into a newline
  });

  it('its schedule runs at 00:00, 06:00, 12:00 and 18:00 (croner)', () => {
    const schedule = entries[0]!.line.split(/\s+/).slice(0, 5).join(' ');
    const runs = new Cron(schedule, { paused: true, timezone: 'UTC' }).nextRuns(5, new Date('2025-03-01T01:00:00Z'));
    expect(runs.map((d) => d.toISOString())).toEqual([
      '2025-03-01T06:00:00.000Z',
      '2025-03-01T12:00:00.000Z',
      '2025-03-01T18:00:00.000Z',
      '2025-03-02T00:00:00.000Z',
      '2025-03-02T06:00:00.000Z',
    ]);
  });

  it('has a comment above every line, and only well-formed variable lines', () => {
    for (const [index, line] of lines.entries()) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      expect(lines[index - 1], `comment above: ${line}`).toMatch(/^#/);
      if (/^[A-Z_]+=/.test(line)) expect(line).toMatch(/^(SHELL|PATH|MAILTO)=\S*$/);
    }
  });

  it('shows the user-crontab line of the seed, commented out: 5 fields and the same script, no user', () => {
    const userLine = lines.map((l) => /^#\s*(\d\S* \S+ \S+ \S+ \S+) (\S+)/.exec(l)).find(Boolean);
    expect(userLine?.[1]).toBe('0 0,6,12,18 * * *');
    expect(userLine?.[2]).toMatch(/^\/\S+\/scripts\/backup-db\.sh$/);
  });
});

describe('scripts/register-task.ps1', () => {
  const text = read('scripts/register-task.ps1');
  const code = text.replace(/<#[\s\S]*?#>/g, '').replace(/^\s*#.*$/gm, '');

  it('registers four daily triggers at 00:00, 06:00, 12:00 and 18:00, one per line (no trailing-comma slip)', () => {
    const block = /\$Triggers = @\(\n([\s\S]*?)\n\)/.exec(code);
    expect(block).not.toBeNull();
    const calls = block![1]!
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    expect(calls).toEqual(['00:00', '06:00', '12:00', '18:00'].map((t) => `New-ScheduledTaskTrigger -Daily -At "${t}"`));
    expect(code).toMatch(/Register-ScheduledTask [^\n]*`\n[^\n]*-Trigger \$Triggers /);
  });

  it('runs only when the network is available, as SYSTEM, replacing an earlier registration', () => {
    expect(code).toMatch(/\$Settings = New-ScheduledTaskSettingsSet -RunOnlyIfNetworkAvailable/);
    expect(code).toMatch(/-Settings \$Settings -User "SYSTEM" -Force/);
  });

  it('names backup-db.ps1 in its own folder', () => {
    const m = /\$Script = Join-Path \$PSScriptRoot "([^"]+)"/.exec(code);
    expect(m?.[1]).toBe('backup-db.ps1');
    expect(code).toMatch(/-File `"\$Script`"/);
  });

  it('backup-db.ps1 exists next to it', () => {
    expect(existsSync(join(repo, 'scripts', 'backup-db.ps1'))).toBe(true);
  });

  it('has balanced brackets and every line continuation continues with a parameter', () => {
    expect(code.split('(').length).toBe(code.split(')').length);
    expect(code.split('{').length).toBe(code.split('}').length);
    const lines = code.split('\n');
    for (const [i, line] of lines.entries()) {
      if (line.endsWith(' `')) expect(lines[i + 1], `after: ${line}`).toMatch(/^\s+-\w+/);
    }
  });
});
