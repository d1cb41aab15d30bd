/** The package's entry point (`import … from 'pgbak'`): the library API with its errors and exit codes. */
export * from './api/index.js';
export { TOOL_VERSION } from './version.js';
