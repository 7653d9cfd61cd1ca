// A loopback stand-in for a webhook receiver or an Uptime-Kuma push endpoint: records every request
// and answers with what the test scripted, including the ugly cases (a hang, a reset, a 5xx).
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ReceiverAnswer = { status: number; body?: string } | 'hang' | 'reset';

export interface ReceivedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  baseUrl: string;
  requests: ReceivedRequest[];
  /** Answers in order; the last one repeats. */
  answer(...answers: ReceiverAnswer[]): void;
  close(): Promise<void>;
}

export async function startReceiver(...initial: ReceiverAnswer[]): Promise<Receiver> {
  let answers: ReceiverAnswer[] = initial.length ? initial : [{ status: 200, body: '{"ok":true}' }];
  const requests: ReceivedRequest[] = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const a = answers.length > 1 ? answers.shift()! : answers[0]!;
      if (a === 'hang') hanging.add(res);
      else if (a === 'reset') req.socket.destroy();
      else res.writeHead(a.status, { 'Content-Type': 'application/json' }).end(a.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    answer: (...a) => {
      answers = a;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
