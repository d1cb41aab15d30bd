/** The CLI's signal handling releases the run locks this process holds (cli may import api, not catalog). */
export { releaseHeldLocks } from '../catalog/run-lock.js';
