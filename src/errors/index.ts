export * from './app-error.js';
export * from './exit-codes.js';
