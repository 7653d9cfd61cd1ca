// The bench's stand-in free-api, in its own process so that its CPU is not billed to tschk:
// every POST /token/check answers {"live":true} after a fixed latency.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export type UpstreamMessage = { ready: { port: number } } | { calls: number };

const latencyMs = Number(process.argv[2]);
if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new Error(`usage: upstream.js LATENCY_MS, got '${process.argv[2]}'`);

let calls = 0;
const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/token/check') {
    res.writeHead(404).end();
    return;
  }
  req.resume();
  req.on('end', () => {
    calls++;
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"live":true}'), latencyMs);
  });
});
// Keep idle connections longer than tschk's pool does, so the client always closes first.
server.keepAliveTimeout = 60_000;

const send = (m: UpstreamMessage) => process.send?.(m);
process.on('message', (m) => {
  if (m === 'calls') send({ calls });
});
process.on('disconnect', () => process.exit(0));
server.listen(0, '127.0.0.1', () => send({ ready: { port: (server.address() as AddressInfo).port } }));
