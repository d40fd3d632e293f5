/** @type {import('jest').Config} */
const common = {
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] },
  moduleNameMapper: { '^@firn/([a-z]+)$': '<rootDir>/packages/$1/src/index.ts' },
  testEnvironment: 'node',
  modulePathIgnorePatterns: ['<rootDir>/packages/.*/dist/'],
};
module.exports = {
  // The database and service tests share one MariaDB and real batch systems: two workers on two cores.
  maxWorkers: 2,
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
  projects: [
    { ...common, displayName: 'unit', rootDir: __dirname, testMatch: ['<rootDir>/packages/*/src/**/*.test.ts'] },
    { ...common, displayName: 'integration', rootDir: __dirname, testMatch: ['<rootDir>/test/**/*.test.ts'] },
  ],
};
