import { defineConfig } from 'vitest/config';

export default defineConfig({
  // `import … from 'stackline'` in tests and fixtures resolves to the TypeScript sources the tests
  // import directly (one copy of each module), not to the compiled dist/.
  // Only the extra condition: packages resolve as Node resolves them (their `module` builds, e.g. the
  // AWS SDK's dist-es, do not load in Node).
  resolve: { conditions: ['stackline-source', 'node', 'development|production'] },
  ssr: { resolve: { conditions: ['stackline-source', 'node', 'development|production'] } },
  test: {
    include: ['test/**/*.test.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
