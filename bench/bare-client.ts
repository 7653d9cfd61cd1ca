// The yardstick: N bare undici requests at concurrency C against the same mock upstream, no
// database, no engine. What it reaches is the most this machine allows tschk at that moment.
import { Agent, request } from 'undici';

export interface BareMeasurement {
  durationMs: number;
}

const [url, n, concurrency] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])];
const dispatcher = new Agent({ connections: concurrency, keepAliveTimeout: 10_000 });
const body = JSON.stringify({ token: 'bench-bare-client' });
let started = 0;
const loop = async () => {
  while (started++ < n) {
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, dispatcher });
    await res.body.text();
  }
};
const began = performance.now();
await Promise.all(Array.from({ length: concurrency }, loop));
const measurement: BareMeasurement = { durationMs: performance.now() - began };
await dispatcher.close();
process.send?.(measurement, () => process.disconnect());
