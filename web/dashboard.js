// pgbak dashboard: read-only. Every value goes into the page as text (textContent, attributes),
// never as HTML. Served at /assets/dashboard.js by `pgbak daemon` (CSP script-src 'self'), or
// inlined by `pgbak report --html`, which embeds the data as JSON in #pgbak-data.
(() => {
  'use strict';
  const POLL_MS = 15000;
  const embedded = document.getElementById('pgbak-data');
  const offline = embedded ? JSON.parse(embedded.textContent) : null;
  const wanted = new URLSearchParams(window.location.search);
  const state = { job: wanted.get('job'), filter: { state: '', where: '', from: '', to: '' }, page: 1, limit: Number(wanted.get('limit')) || 25 };
  const app = document.getElementById('app');

  // ---- data: the API, or the embedded report data ----
  function matches(b, f) {
    if (f.state && b.state !== f.state) return false;
    if (f.where === 'both' && b.locations.length < 2) return false;
    if ((f.where === 'local' || f.where === 'remote') && b.locations.indexOf(f.where) < 0) return false;
    const t = Date.parse(b.time);
    if (f.from && t < Date.parse(f.from)) return false;
    if (f.to && t > Date.parse(f.to) + 86400000 - 1) return false;
    return true;
  }
  function offlineAnswer(path, params) {
    const snap = offline.data.jobs.find((j) => j.overview.job === params.get('job'));
    if (path === 'status') return offline.status;
    if (path === 'notifications') {
      const d = [].concat(...offline.data.jobs.map((j) => j.deliveries));
      return { deliveries: d.sort((a, b) => Date.parse(b.at) - Date.parse(a.at)) };
    }
    if (path === 'config') return { jobs: offline.data.jobs.map((j) => ({ job: j.overview.job, settings: j.settings })) };
    if (!snap) throw new Error('no such job');
    if (path === 'series') return snap.series;
    if (path === 'restore-tests') return snap.restoreTests;
    const f = { state: params.get('state'), where: params.get('where'), from: params.get('from'), to: params.get('to') };
    const rows = snap.backups.filter((b) => matches(b, f));
    const limit = Number(params.get('limit')) || 25;
    const page = Number(params.get('page')) || 1;
    const pages = Math.max(1, Math.ceil(rows.length / limit));
    return { job: snap.overview.job, total: rows.length, page, limit, pages, backups: rows.slice((page - 1) * limit, page * limit) };
  }
  async function api(path, params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== '' && v !== null && v !== undefined) p.set(k, String(v));
    if (offline) return offlineAnswer(path, p);
    const res = await fetch('/api/v1/' + path + (p.toString() ? '?' + p.toString() : ''), { credentials: 'same-origin' });
    if (res.status === 401) {
      window.location.assign('/login');
      throw new Error('sign in needed');
    }
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || 'HTTP ' + res.status);
    return body;
  }

  // ---- DOM helpers: text only ----
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function bytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < u.length - 1) {
      v /= 1024;
      i++;
    }
    return i === 0 ? n + ' B' : v.toFixed(1) + ' ' + u[i];
  }
  function duration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
    if (ms < 1000) return Math.round(ms) + 'ms';
    const s = Math.round(ms / 1000);
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }
  function when(iso) {
    return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—';
  }
  function table(id, headers, rows) {
    const head = el('tr', null, ...headers.map((h) => el('th', { text: h })));
    return el('table', { id }, el('thead', null, head), el('tbody', null, ...rows));
  }

  // ---- overview ----
  function lastRunCell(r) {
    if (!r) return el('td', { text: 'never ran' });
    const td = el('td', null, el('span', { class: 'run run-' + r.status, text: r.status }), ' ' + when(r.finishedAt));
    if (r.error) {
      td.append(el('div', { class: 'cause', text: r.error.message }));
      if (r.error.hint) td.append(el('div', { class: 'hint', text: 'hint: ' + r.error.hint }));
    }
    return td;
  }
  function walPill(w) {
    const gap = w.chain.state !== 'complete';
    return el('div', null, el('span', { class: 'pill wal ' + (gap ? 'red' : w.freshness), text: 'WAL ' + (gap ? w.chain.state : w.freshness) }));
  }
  function overviewRow(j) {
    const good = j.newestGood;
    const pick = el('button', { type: 'button', class: 'link', 'data-job': j.job, text: j.job });
    pick.addEventListener('click', () => selectJob(j.job));
    const tr = el(
      'tr',
      { class: 'job' + (j.job === state.job ? ' selected' : ''), 'data-job': j.job },
      el('td', null, pick),
      el('td', { text: j.database }),
      el('td', null, el('span', { class: 'pill ' + j.freshness, text: j.freshness }), j.wal ? walPill(j.wal) : null),
      el(
        'td',
        null,
        good ? el('div', { text: good.name }) : el('div', { text: 'no good backup' }),
        el('div', { class: 'muted', text: good ? duration(good.ageMs) + ' old · RPO ' + duration(j.rpoMs) : 'RPO ' + duration(j.rpoMs) }),
      ),
      lastRunCell(j.lastRun),
      el('td', { text: j.nextRunAt ? when(j.nextRunAt) : '—' }),
      el('td', { text: j.schedule ? j.schedule.cron + ' (' + j.schedule.timezone + ')' : 'not configured here' }),
      el('td', { text: j.destination }),
      el('td', { text: j.encryption.enabled ? j.encryption.method + ': ' + j.encryption.recipient : 'off' }),
    );
    return tr;
  }

  // ---- backups ----
  function restoreButton(b) {
    if (!b.restoreCommand) return el('td', { text: '—' });
    const code = el('code', { text: b.restoreCommand });
    const btn = el('button', { type: 'button', class: 'copy', 'data-command': b.restoreCommand, text: 'copy restore command' });
    btn.addEventListener('click', () => {
      const done = () => (btn.textContent = 'copied');
      if (navigator.clipboard) navigator.clipboard.writeText(b.restoreCommand).then(done, () => selectText(code));
      else selectText(code);
    });
    return el('td', null, btn, el('div', { class: 'cmd' }, code));
  }
  function selectText(node) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  function backupRow(b) {
    const v = b.verified;
    return el(
      'tr',
      { class: 'backup state-' + b.state, 'data-name': b.name },
      el('td', { class: 'name', text: b.name }),
      el('td', { text: when(b.time) }),
      el('td', { text: bytes(b.sizeBytes) }),
      el('td', { text: duration(b.durationMs) }),
      el('td', { text: b.compression || '—' }),
      el('td', { text: b.encrypted ? 'yes' : 'no' }),
      el('td', { text: b.locations.join(' + ') || '—' }),
      el('td', { title: b.problems.join('\n') }, el('span', { class: 'state ' + b.state, text: b.state })),
      el('td', { text: v ? (v.ok ? 'ok' : 'FAILED') + ' (' + v.kind + ') ' + when(v.at) : 'never' }),
      restoreButton(b),
    );
  }
  function select(name, options, value) {
    const s = el('select', { name, id: 'filter-' + name });
    for (const [v, label] of options) s.append(el('option', { value: v, text: label, selected: v === value ? 'selected' : null }));
    return s;
  }
  function filterForm() {
    const f = state.filter;
    const form = el(
      'form',
      { id: 'filters', class: 'filters' },
      el('label', null, 'state ', select('state', [['', 'any'], ['good', 'good'], ['incomplete', 'incomplete'], ['corrupt', 'corrupt']], f.state)),
      el('label', null, 'where ', select('where', [['', 'any'], ['local', 'local'], ['remote', 'remote'], ['both', 'both']], f.where)),
      el('label', null, 'from ', el('input', { type: 'date', name: 'from', id: 'filter-from', value: f.from })),
      el('label', null, 'to ', el('input', { type: 'date', name: 'to', id: 'filter-to', value: f.to })),
      el('button', { type: 'submit', text: 'filter' }),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const d = new FormData(form);
      state.filter = { state: d.get('state') || '', where: d.get('where') || '', from: d.get('from') || '', to: d.get('to') || '' };
      state.page = 1;
      renderJob();
    });
    return form;
  }
  function pager(p) {
    const prev = el('button', { type: 'button', id: 'prev', disabled: p.page <= 1 ? 'disabled' : null, text: '‹ newer' });
    const next = el('button', { type: 'button', id: 'next', disabled: p.page >= p.pages ? 'disabled' : null, text: 'older ›' });
    prev.addEventListener('click', () => {
      state.page = Math.max(1, state.page - 1);
      renderJob();
    });
    next.addEventListener('click', () => {
      state.page += 1;
      renderJob();
    });
    const info = el('span', { id: 'page-info', text: 'page ' + p.page + ' of ' + p.pages + ' · ' + p.total + ' backups' });
    return el('div', { class: 'pager' }, prev, info, next);
  }

  // ---- chart: size (line, dots) and duration (bars) per good backup ----
  function chart(series) {
    const pts = series.points;
    const W = 760;
    const H = 240;
    const L = 70;
    const R = 60;
    const T = 16;
    const B = 36;
    const root = svg('svg', { id: 'size-chart', viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    root.append(svg('title', {}, 'size and duration of the good backups of ' + series.job));
    if (pts.length === 0) {
      root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'no good backup yet'));
      return root;
    }
    const maxSize = Math.max(...pts.map((p) => p.sizeBytes), 1);
    const maxDur = Math.max(...pts.map((p) => p.durationMs || 0), 1);
    const x = (i) => (pts.length === 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (pts.length - 1));
    const ys = (v) => T + (H - T - B) * (1 - v / maxSize);
    const yd = (v) => T + (H - T - B) * (1 - v / maxDur);
    root.append(svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis-line' }));
    root.append(svg('text', { x: L - 6, y: T + 4, 'text-anchor': 'end', class: 'axis size' }, bytes(maxSize)));
    root.append(svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'axis size' }, '0'));
    root.append(svg('text', { x: W - R + 6, y: T + 4, class: 'axis duration' }, duration(maxDur)));
    root.append(svg('text', { x: L, y: H - 8, class: 'axis' }, when(pts[0].time)));
    root.append(svg('text', { x: W - R, y: H - 8, 'text-anchor': 'end', class: 'axis' }, when(pts[pts.length - 1].time)));
    const bw = Math.max(2, Math.min(14, (W - L - R) / pts.length / 2));
    pts.forEach((p, i) => {
      if (p.durationMs === null) return;
      const r = svg('rect', { x: x(i) - bw / 2, y: yd(p.durationMs), width: bw, height: H - B - yd(p.durationMs), class: 'duration-bar' });
      r.append(svg('title', {}, p.name + ': ' + duration(p.durationMs)));
      root.append(r);
    });
    root.append(svg('polyline', { points: pts.map((p, i) => x(i) + ',' + ys(p.sizeBytes)).join(' '), class: 'size-line' }));
    pts.forEach((p, i) => {
      const c = svg('circle', {
        cx: x(i),
        cy: ys(p.sizeBytes),
        r: p.anomalous ? 6 : 4,
        class: 'size-point' + (p.anomalous ? ' anomaly' : ''),
        'data-name': p.name,
      });
      c.append(svg('title', {}, p.name + ': ' + bytes(p.sizeBytes) + (p.anomalous ? ' — size anomaly: ' + p.reason : '')));
      root.append(c);
    });
    return root;
  }
  function legend() {
    return el(
      'p',
      { class: 'legend muted' },
      el('span', { class: 'key size' }),
      ' size ',
      el('span', { class: 'key duration' }),
      ' duration ',
      el('span', { class: 'key anomaly' }),
      ' size anomaly',
    );
  }

  // ---- restore tests, notifications, config ----
  function restoreTests(view) {
    const rows = view.tests.map((t) =>
      el(
        'tr',
        { class: 'restore-test' },
        el('td', { text: t.backup }),
        el('td', { text: when(t.at) }),
        el('td', null, el('span', { class: 'state ' + (t.ok ? 'good' : 'corrupt'), text: t.ok ? 'passed' : 'FAILED' })),
        el('td', { text: duration(t.durationMs) }),
        el('td', {
          class: t.durationMs <= view.rtoTargetMs ? 'within' : 'over',
          text: (t.durationMs <= view.rtoTargetMs ? 'within' : 'OVER') + ' RTO ' + duration(view.rtoTargetMs),
        }),
      ),
    );
    if (rows.length === 0) return el('p', { class: 'muted', text: 'No restore test yet (BACKUP_VERIFY=restore-test, or pgbak verify --restore-test).' });
    return table('restore-tests', ['backup', 'tested', 'result', 'duration (measured RTO)', 'target'], rows);
  }
  function deliveries(view, job) {
    const rows = view.deliveries
      .filter((d) => d.job === job)
      .map((d) =>
        el(
          'tr',
          null,
          el('td', { text: d.channel }),
          el('td', { text: when(d.at) }),
          el('td', null, el('span', { class: 'state ' + (d.ok ? 'good' : 'corrupt'), text: d.ok ? 'delivered' : 'failed' })),
          el('td', { text: d.error || '' }),
        ),
      );
    if (rows.length === 0) return el('p', { class: 'muted', text: 'No notification sent by the last run (none configured, or not due).' });
    return table('deliveries', ['channel', 'at', 'result', 'error'], rows);
  }
  function config(view, job) {
    const mine = view.jobs.find((j) => j.job === job);
    const rows = Object.entries(mine ? mine.settings : {}).map(([k, v]) => el('tr', null, el('th', { text: k }), el('td', { text: v })));
    return table('config', ['variable', 'value'], rows);
  }

  // ---- WAL archive (point-in-time recovery): only for a job whose storage holds one ----
  function walSection(w) {
    const c = w.chain;
    const chain = { complete: 'complete', gap: 'GAP', conflict: 'CONFLICT', 'no-base-backup': 'no base backup', unreadable: 'unreadable' };
    const b = w.newestBase;
    const age = (w.ageMs === null ? '' : duration(w.ageMs) + ' old · ') + 'WAL_RPO ' + duration(w.rpoMs);
    const rows = [
      ['newest segment', el('span', { class: 'pill ' + w.freshness, text: w.freshness }), ' ' + (w.newestSegment || 'none archived'), el('div', { class: 'muted', text: age })],
      ['newest base backup', b ? b.name + ' · ' + when(b.time) + ' · ' + bytes(b.sizeBytes) : 'none (pgbak basebackup)'],
      [
        'chain',
        el('span', { class: 'state ' + (c.state === 'complete' ? 'good' : 'corrupt'), text: chain[c.state] }),
        c.from ? ' from ' + c.from + ' · ' + c.segments + ' segments' : '',
        c.problem ? el('div', { class: 'cause', text: c.problem }) : null,
      ],
      ['archive', w.location],
    ];
    const tr = ([k, ...v]) => el('tr', { 'data-row': k }, el('th', { text: k }), el('td', null, ...v));
    return el('table', { id: 'wal' }, el('tbody', null, ...rows.map(tr)));
  }

  // ---- rendering ----
  let status = null;
  async function renderOverview() {
    status = await api('status');
    if (!status.jobs.some((j) => j.job === state.job)) state.job = status.jobs.length > 0 ? status.jobs[0].job : null;
    const rows = status.jobs.map(overviewRow);
    const box = document.getElementById('overview');
    box.replaceChildren(
      table('jobs', ['job', 'database', 'state', 'newest good backup', 'last run', 'next run', 'schedule', 'where', 'encryption'], rows),
      ...status.problems.map((p) => el('p', { class: 'error', text: p })),
    );
    document.getElementById('refreshed').textContent =
      (offline ? 'report of ' : 'data read ') + when(status.refreshedAt) + (offline ? '' : ' · refreshes every ' + POLL_MS / 1000 + 's');
  }
  async function renderJob() {
    const job = state.job;
    const box = document.getElementById('job');
    if (!job) {
      box.replaceChildren(el('p', { class: 'muted', text: 'No job.' }));
      return;
    }
    const q = Object.assign({ job, page: state.page, limit: state.limit }, state.filter);
    const [page, series, tests, notes, conf] = await Promise.all([
      api('backups', q),
      api('series', { job }),
      api('restore-tests', { job }),
      api('notifications'),
      api('config'),
    ]);
    const overview = status ? status.jobs.find((j) => j.job === job) : null;
    const reasons = overview ? overview.reasons.map((r) => el('li', { text: r })) : [];
    box.replaceChildren(
      el('h2', { id: 'job-title', text: 'Job ' + job }),
      reasons.length ? el('ul', { class: 'reasons' }, ...reasons) : el('p', { class: 'ok', text: 'All well.' }),
      ...(overview && overview.wal ? [el('h3', { text: 'WAL archive (point-in-time recovery)' }), walSection(overview.wal)] : []),
      el('h3', { text: 'Backups' }),
      filterForm(),
      table(
        'backups',
        ['name', 'time', 'size', 'duration', 'compression', 'encrypted', 'where', 'state', 'last verification', 'restore'],
        page.backups.map(backupRow),
      ),
      pager(page),
      el('h3', { text: 'Size and duration' }),
      chart(series),
      legend(),
      el('h3', { text: 'Restore tests' }),
      restoreTests(tests),
      el('h3', { text: 'Last notification deliveries' }),
      deliveries(notes, job),
      el('h3', { text: 'Effective configuration (secrets masked)' }),
      config(conf, job),
    );
  }
  function selectJob(job) {
    state.job = job;
    state.page = 1;
    state.filter = { state: '', where: '', from: '', to: '' };
    for (const tr of document.querySelectorAll('#jobs tr.job')) tr.classList.toggle('selected', tr.getAttribute('data-job') === job);
    renderJob().catch(showError);
  }
  function showError(err) {
    document.getElementById('error').textContent = String(err && err.message ? err.message : err);
  }
  async function refresh() {
    try {
      await renderOverview();
      await renderJob();
      document.getElementById('error').textContent = '';
    } catch (err) {
      showError(err);
    }
  }

  app.replaceChildren(
    el(
      'header',
      null,
      el('h1', { text: 'pgbak' }),
      el('span', { class: 'muted', text: 'read-only: restores stay in the CLI' }),
      el('span', { id: 'refreshed', class: 'muted' }),
    ),
    el('p', { id: 'error', class: 'error', role: 'alert' }),
    el('section', { id: 'overview' }),
    el('section', { id: 'job' }),
  );
  refresh().then(() => document.body.setAttribute('data-ready', 'true'));
  if (!offline) setInterval(refresh, POLL_MS);
})();
