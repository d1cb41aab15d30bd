import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The page's script and style sheet: `web/dashboard.js` and `web/dashboard.css` at the package
 * root (shipped by package.json `files`), the same two files for the daemon's page and for
 * `pgbak report --html`. Read once, on first use.
 */

export type AssetName = 'dashboard.js' | 'dashboard.css';

const cache = new Map<AssetName, string>();

/** The text of a page asset. */
export function asset(name: AssetName): string {
  let text = cache.get(name);
  if (text === undefined) {
    // src/dashboard/ and dist/dashboard/ are both two levels below the package root.
    text = readFileSync(fileURLToPath(new URL(`../../web/${name}`, import.meta.url)), 'utf8');
    cache.set(name, text);
  }
  return text;
}

/** Content-Security-Policy of every dashboard answer: nothing inline, nothing from elsewhere. */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const HEAD = '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>pgbak dashboard</title>';

/** The daemon's page: script and style sheet by path (script-src 'self'), data from /api/v1/. */
export function pageHtml(): string {
  return `<!doctype html>
<html lang="en"><head>${HEAD}<link rel="stylesheet" href="/assets/dashboard.css"></head>
<body><div id="app"><p class="muted">Loading…</p></div><script src="/assets/dashboard.js"></script></body></html>
`;
}

/** The login form (when DASHBOARD_TOKEN is set); `failed` after a wrong token. */
export function loginHtml(failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head>${HEAD}<link rel="stylesheet" href="/assets/dashboard.css"></head>
<body><main class="login"><h1>pgbak</h1>
<form method="post" action="/login"><label for="token">Dashboard token (DASHBOARD_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form>${failed ? '<p class="error">Wrong token.</p>' : ''}
<p class="muted">Read-only: restores stay in the CLI.</p></main></body></html>
`;
}

/** JSON safe inside a `<script>` element: no `<` at all, so never `</script>` or `<!--`. */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * One self-contained HTML file (`pgbak report --html`): the style sheet and script inlined, the
 * data in a `<script type="application/json">` block the script reads instead of the API.
 */
export function reportHtml(data: unknown): string {
  const js = asset('dashboard.js');
  const css = asset('dashboard.css');
  if (/<\/script/i.test(js) || /<\/style/i.test(css)) throw new Error('a dashboard asset closes its own element');
  return `<!doctype html>
<html lang="en"><head>${HEAD}<style>
${css}</style></head>
<body><div id="app"><p class="muted">Loading…</p></div>
<script type="application/json" id="pgbak-data">${scriptSafeJson(data)}</script>
<script>
${js}</script></body></html>
`;
}
