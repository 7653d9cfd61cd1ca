/** Polls `condition` until it holds (returns its value) or `timeoutMs` passes (throws `message`). */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  timeoutMs: number,
  message: string,
  everyMs = 20,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
