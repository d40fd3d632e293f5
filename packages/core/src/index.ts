// @firn/core — what the daemons share. Only what is exported here may be used by others.
export * from './errors';
export * from './states';
export * from './db';
export * from './transition';
export * from './config';
export * from './logger';
export * from './schemas';
export * from './checksums';
export * from './executor';
export * from './local-executor';
export * from './ssh-executor';
export * from './rpc-server';
export * from './rpc-client';
export * from './dependencies';
