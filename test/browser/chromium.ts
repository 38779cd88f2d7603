import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium, installed by `.ci/run` (`apt-get install chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a headless Chromium on a machine with a closed network: no background requests to
 * Google's hosts, no component updates, no sync. Playwright adds its own headless flag and starts
 * every `launch` with a fresh temporary profile (its own `--user-data-dir`, which it will not take
 * from `args`), removed when the browser closes.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}
