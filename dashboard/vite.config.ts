import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * The dashboard builds into dist/dashboard. `base: './'`: every asset URL is relative, so the same
 * files work at `/` under `stackline serve` and under an API Gateway stage path (`/api/`).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [react()],
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    // Text assets only (JS, CSS): API Gateway then passes them through without binary media types.
    assetsInlineLimit: 100_000,
    chunkSizeWarningLimit: 2000,
    reportCompressedSize: false,
  },
});
