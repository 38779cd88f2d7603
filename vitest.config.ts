import { defaultClientConditions, defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // `import … from 'stackline'` in tests and fixtures resolves to the TypeScript sources the tests
  // import directly (one copy of each module), not to the compiled dist/.
  resolve: { conditions: ['stackline-source', ...defaultClientConditions] },
  ssr: { resolve: { conditions: ['stackline-source', ...defaultServerConditions] } },
  test: {
    include: ['test/**/*.test.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
