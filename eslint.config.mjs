// ESLint flat config: type-aware rules where they catch real bugs (floating promises),
// and the layout rules of ARCHITECTURE.md (no deep imports, daemons never import daemons).
import tseslint from 'typescript-eslint';

const daemons = ['tray', 'queue', 'mon', 'dh'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', 'test/artifacts/**', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['packages/*/src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['warn', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: [{ group: ['@firn/*/src/*', '@firn/*/dist/*'], message: 'import a package through its barrel (@firn/<pkg>)' }] }],
      'no-eval': 'error',
      'no-new-func': 'error',
    },
  },
  ...daemons.map((d) => ({
    files: [`packages/${d}/src/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['@firn/*/src/*', '@firn/*/dist/*'], message: 'import a package through its barrel' },
          { group: daemons.filter((x) => x !== d).map((x) => `@firn/${x}`), message: 'daemons never import each other; share through @firn/core' },
        ],
      }],
    },
  })),
);
