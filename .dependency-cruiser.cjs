// Import rules of src/ (docs/architecture.md). `npm run lint` fails on any import that points up a
// layer or sideways outside what is listed here, and on any cycle between modules.
//   cli → api → {catalog, pipeline, postgres, storage, retention, notify, metrics, scheduler, dashboard, wal} → {config → logging → errors → model}
const bottom = ['model', 'errors', 'logging', 'config'];
const mayImport = {
  model: [],
  errors: ['model'],
  logging: ['model', 'errors'],
  config: ['model', 'errors', 'logging'],
  storage: bottom,
  pipeline: [...bottom, 'storage'],
  catalog: [...bottom, 'storage'],
  postgres: [...bottom, 'pipeline', 'catalog'],
  retention: [...bottom, 'storage', 'catalog'],
  notify: bottom,
  metrics: bottom,
  scheduler: bottom,
  dashboard: bottom,
  wal: [...bottom, 'storage', 'pipeline', 'postgres'],
  api: [...bottom, 'storage', 'pipeline', 'catalog', 'postgres', 'retention', 'notify', 'metrics', 'scheduler', 'dashboard', 'wal', 'version.ts'],
  cli: [...bottom, 'api', 'version.ts'],
};

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'a module must not import itself back, directly or through others',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      severity: 'error',
      comment: 'every folder of src/ has a place in the layers (add it to .dependency-cruiser.cjs and docs/architecture.md)',
      from: { path: '^src/', pathNot: `^src/(${Object.keys(mayImport).join('|')})/|^src/[^/]+\\.ts$` },
      to: {},
    },
    ...Object.entries(mayImport).map(([folder, allowed]) => ({
      name: `layer-${folder}`,
      severity: 'error',
      comment: `src/${folder}/ may import only ${allowed.length ? allowed.join(', ') : 'node and npm modules'}`,
      from: { path: `^src/${folder}/` },
      to: { path: '^src/', pathNot: `^src/(${[folder, ...allowed].map((a) => a.replace('.', '\\.')).join('|')})(/|$)` },
    })),
    {
      name: 'root-entry',
      severity: 'error',
      comment: 'src/index.ts is the package entry: it re-exports the api',
      from: { path: '^src/index\\.ts$' },
      to: { path: '^src/', pathNot: '^src/(api/|version\\.ts$)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
