/** The storage opener for the CLI (cli may import api, not storage): one job's backends, released with `await using`. */
export { openStorage, type JobStorage, type OpenStorageOptions } from '../storage/job-storage.js';
