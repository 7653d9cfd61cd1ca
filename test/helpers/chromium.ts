import { existsSync } from 'node:fs';

/** The system's Chromium (Debian's package); browser builds are never downloaded. */
export const CHROMIUM = process.env.TSCHK_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const haveChromium = (): boolean => existsSync(CHROMIUM);
