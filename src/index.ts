/** The package's entry point (`import … from 'pgbak'`): the library API, its errors and exit codes. */
export * from './api/index.js';
export * from './errors/index.js';
