import { connect, type Socket } from 'node:net';

/** An answer read off a raw socket: what the server sent, exactly. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
  /** The whole byte stream, status line included (to scan for secrets). */
  raw: string;
  json(): any;
}

/**
 * Parses what a server wrote on a connection: the first response in it. A server that wrote
 * nothing before closing answers status 0.
 */
export function parseAnswer(bytes: Buffer): RawAnswer {
  const raw = bytes.toString('latin1');
  const end = raw.indexOf('\r\n\r\n');
  const head = end < 0 ? raw : raw.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = end < 0 ? Buffer.alloc(0) : bytes.subarray(Buffer.byteLength(raw.slice(0, end + 4), 'latin1'));
  if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  const text = body.toString('utf8');
  return { status, headers, text, raw: bytes.toString('utf8'), json: () => JSON.parse(text) };
}

export interface RawRequest {
  method: string;
  /** Sent as is on the request line: no normalisation of dots, slashes or escapes. */
  target: string;
  /** Header lines, in order; a name may repeat. */
  headers?: Array<[string, string]>;
  body?: string | Buffer;
}

/**
 * One request on a fresh connection (`Connection: close`), written byte for byte: fetch would
 * resolve `..`, fold duplicate headers and refuse some targets before they left the test.
 */
export function rawCall(port: number, r: RawRequest): Promise<RawAnswer> {
  const body = r.body === undefined ? undefined : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8');
  const lines = [`${r.method} ${r.target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [name, value] of r.headers ?? []) lines.push(`${name}: ${value}`);
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8');
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A server may reset a connection it refused after writing its answer.
      if (err.code === 'ECONNRESET' && chunks.length > 0) return;
      reject(err);
    });
    socket.on('close', () => resolve(parseAnswer(Buffer.concat(chunks))));
    socket.write(body === undefined ? head : Buffer.concat([head, body]));
  });
}

/** A connection the test writes to piece by piece, to play a slow client. */
export interface SlowClient {
  socket: Socket;
  /** Resolves when the server has closed the connection, with everything it wrote. */
  closed: Promise<RawAnswer>;
  /** Whether the server has closed the connection yet. */
  isClosed(): boolean;
  write(data: string): void;
  destroy(): void;
}

export async function slowClient(port: number): Promise<SlowClient> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  let isClosed = false;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {}); // a reset after the answer still closes: 'close' follows
  const closed = new Promise<RawAnswer>((resolve) =>
    socket.on('close', () => {
      isClosed = true;
      resolve(parseAnswer(Buffer.concat(chunks)));
    }),
  );
  return {
    socket,
    closed,
    isClosed: () => isClosed,
    write: (data) => {
      if (!socket.destroyed) socket.write(data);
    },
    destroy: () => socket.destroy(),
  };
}
