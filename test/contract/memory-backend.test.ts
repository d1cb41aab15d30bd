import { MemoryBackend } from '../../src/storage/memory-backend.js';
import { runStorageContract } from './storage-contract.js';

runStorageContract('memory', async () => new MemoryBackend());
