/**
 * For the CLI (cli may import api, not storage): make a one-shot command one run, so a silent S3
 * server is waited for once in it (storage/silent-endpoints.ts). A module of its own, so that
 * a command's start does not bring the storage code with it.
 */
export { silenceThisCommand } from '../storage/silent-endpoints.js';
