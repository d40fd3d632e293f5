export * from './format';
export * from './layout';
export * from './general';
export * from './grid';
export * from './dataset';
export * from './job';
export * from './offline';
export * from './login';
