export * from './app-error.js';
export * from './exit-codes.js';
export * from './result-error.js';
export * from './to-app-error.js';
export * from './error-message.js';
export * from './network-errors.js';
