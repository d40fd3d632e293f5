// @firn/queue — the firn-queue daemon and its batch-system plugins.
export * from './queue-daemon';
export * from './queue-settings';
export * from './daemon-setup';
export { createQueueMetrics, type QueueMetrics } from './queue-metrics';
export { main } from './cli';
export * from './plugins';
