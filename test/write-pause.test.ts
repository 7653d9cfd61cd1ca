import { describe, expect, it } from 'vitest';
import { WritePause } from '../src/db/write-pause.js';

describe('a pause of the history writes', () => {
  it('holds a write until the work it was asked for ends, and none when there is none', async () => {
    const pause = new WritePause();
    const order: string[] = [];
    await pause.wait();
    let finish!: () => void;
    const work = pause.during(() => new Promise<void>((resolve) => (finish = resolve)), 60_000);
    const write = pause.wait().then(() => order.push('write'));
    await new Promise((r) => setTimeout(r, 10));
    order.push('work done');
    finish();
    await Promise.all([work, write]);
    expect(order).toEqual(['work done', 'write']);
  });

  it('lets writes go on after its longest hold, even when the work never ends', async () => {
    const pause = new WritePause();
    void pause.during(() => new Promise<void>(() => {}), 30);
    let written = false;
    const write = pause.wait().then(() => (written = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(written).toBe(false);
    await write;
    expect(written).toBe(true);
  });

  it("hands the work's failure to its caller, and releases the writes", async () => {
    const pause = new WritePause();
    await expect(pause.during(() => Promise.reject(new Error('checkpoint failed')), 60_000)).rejects.toThrow('checkpoint failed');
    await pause.wait();
  });
});
