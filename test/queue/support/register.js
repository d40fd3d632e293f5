/**
 * `node -r ./test/queue/support/register.js file.ts`: run TypeScript sources in a child
 * process the way jest does (swc, CommonJS; `@firn/<pkg>` → packages/<pkg>/src/index.ts),
 * so tests and the claim bench can fork daemons and workers without a build.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { transformSync } = require('@swc/core');

const root = path.resolve(__dirname, '..', '..', '..');

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  const m = /^@firn\/([a-z]+)$/.exec(request);
  if (m) {
    const src = path.join(root, 'packages', m[1], 'src', 'index.ts');
    if (fs.existsSync(src)) return src;
  }
  return resolve.call(this, request, parent, ...rest);
};

require.extensions['.ts'] = function (module, filename) {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    sourceMaps: 'inline',
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
