/** A setting that is wrong, named; apart from config.ts so that catching it loads nothing else. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    /** The message without the variable's name. */
    readonly detail: string,
  ) {
    super(`${variable}: ${detail}`);
    this.name = 'ConfigError';
  }
}
