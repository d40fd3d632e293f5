export * from './common';
export * from './general';
export * from './grid';
export * from './dataset';
export * from './series';
export * from './job';
export * from './offline';
