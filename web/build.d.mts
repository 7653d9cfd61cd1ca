/** Builds the console into `out` (dist/web by default) and returns that folder. */
export function buildConsole(out?: string): string;
