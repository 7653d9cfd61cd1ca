import { createHmac } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { listRuns } from '../src/db/runs.js';
import { importTokens } from '../src/db/tokens.js';
import { runChecks, type RunSummary } from '../src/engine/run.js';
import type { DeliveryTiming } from '../src/notify/deliver.js';
import { notificationObserver } from '../src/notify/index.js';
import { describeSecret } from '../src/secret.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { tschk } from './helpers/cli.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { waitFor } from './helpers/wait.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

const LIVE = 'eyJhbGciOiJIUzI1NiJ9.live-aaaa-1111';
const DEAD = 'eyJhbGciOiJIUzI1NiJ9.dead-bbbb-2222';
const WEBHOOK_SECRET = 'whsec-0123456789abcdef';
const FAST: DeliveryTiming = { attempts: 3, attemptTimeoutMs: 100, deadlineMs: 300, backoffBaseMs: 5 };
/** Attempts alone could take 3 × 2 s; the deadline ends everything at 100 ms. */
const DEADLINE_FIRST: DeliveryTiming = { attempts: 3, attemptTimeoutMs: 2_000, deadlineMs: 100, backoffBaseMs: 5 };

async function seed(ctx: Ctx, name: string, checkUrl: string, pools: Record<string, string[]>) {
  const p = await upsertProvider(ctx.db, { name, kind: 'free-api', checkUrl });
  for (const [pool, entries] of Object.entries(pools)) await importTokens(ctx.db, { providerId: p.id, pool, entries, source: 'cli' });
  return p;
}

/** A run whose observers are only a notifier with the given timing (the daemon's own uses the defaults). */
function runWithNotifier(ctx: Ctx, timing: DeliveryTiming, now?: Date): Promise<RunSummary> {
  const app = ctx.daemon.context;
  const observer = notificationObserver({
    db: app.db,
    config: app.config,
    logger: app.logger,
    dispatcher: app.dispatcher,
    timing,
    now: now && (() => now),
  });
  return runChecks({ ...app, observers: [observer] }, { trigger: 'cli', force: true });
}

/** Everything that left tschk: receiver requests and log lines. */
function expectNoSecret(texts: string[], secrets: string[]) {
  for (const text of texts) for (const s of secrets) expect(text).not.toContain(s);
}

const outbound = (...receivers: Receiver[]) =>
  receivers.flatMap((r) => r.requests.flatMap((q) => [q.url, q.body, JSON.stringify({ ...q.headers, 'x-tschk-signature': undefined })]));

describeEachDialect('notifications after a run', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Ctx | undefined;
  const receivers: Receiver[] = [];
  const receiver = async (...a: Parameters<typeof startReceiver>) => {
    const r = await startReceiver(...a);
    receivers.push(r);
    return r;
  };

  beforeEach(async () => {
    mock = await startMockFreeApi({ behaviours: { [LIVE]: 'live', [DEAD]: 'dead' } });
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    for (const r of receivers.splice(0)) await r.close();
    await mock.close();
    await database.drop();
  });

  it('sends one signed digest per run to every webhook, and nothing when nothing changed', async () => {
    const a = await receiver();
    const b = await receiver();
    ctx = await testDaemon(database.url, {
      TSCHK_PRUNE: 'off',
      TSCHK_RETRIES: '0',
      TSCHK_WEBHOOK_URL: `${a.baseUrl}/hooks/in-1, ${b.baseUrl}/hooks/in-2`,
      TSCHK_WEBHOOK_SECRET: WEBHOOK_SECRET,
    });
    await seed(ctx, 'deep', mock.checkUrl, { default: [LIVE, DEAD] });

    const first = await ctx.daemon.runNow({ trigger: 'cli' });
    expect(first).toMatchObject({ checked: 2, live: 1, dead: 1 });
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(1);
    const msg = a.requests[0]!;
    expect(msg).toMatchObject({ method: 'POST', url: '/hooks/in-1' });
    const expected = 'sha256=' + createHmac('sha256', WEBHOOK_SECRET).update(msg.body).digest('hex');
    expect(msg.headers['x-tschk-signature']).toBe(expected);
    const body = JSON.parse(msg.body);
    expect(body.run).toMatchObject({ id: first.runId, status: 'done', checked: 2, live: 1, dead: 1 });
    expect(body.providers).toEqual([
      expect.objectContaining({ provider: 'deep', becameSuspect: [expect.objectContaining({ pool: 'default', ...describeSecret(DEAD) })] }),
    ]);
    expect(body.text).toContain(`newly suspect (1): ${describeSecret(DEAD).mask} ${describeSecret(DEAD).fingerprint}`);

    // The dead token answers live again: suspect → active is no news; nothing is sent.
    mock.setBehaviour(DEAD, 'live');
    const second = await ctx.daemon.runNow({ trigger: 'cli', force: true });
    expect(second).toMatchObject({ checked: 2, live: 2 });
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(1);

    expect(
      ctx.log
        .entries()
        .filter((e) => e.msg === 'notification sent')
        .map((e) => e.host),
    ).toEqual(expect.arrayContaining([a.baseUrl.slice(7), b.baseUrl.slice(7)]));
    expectNoSecret([...outbound(a, b), ctx.log.text], [LIVE, DEAD, WEBHOOK_SECRET]);
    expect(ctx.log.text).not.toContain('/hooks/in-');
  });

  it('pushes one Uptime-Kuma heartbeat per configured pool, from the pools current verdicts', async () => {
    const kuma = await receiver({ status: 200, body: '{"ok":true}' });
    const push = (token: string) => `${kuma.baseUrl}/api/push/${token}?status=up&msg=OK&ping=`;
    ctx = await testDaemon(database.url, {
      TSCHK_PRUNE: 'off',
      TSCHK_RETRIES: '0',
      TSCHK_UPTIME_KUMA_PUSH: `deep/default=${push('pushDeepDefault1')};deep/free=${push('pushDeepFree2')};qwen=${push('pushQwen3')}`,
    });
    const QWEN = ['qwen-token-aaaa-0001', 'qwen-token-bbbb-0002'];
    for (const t of QWEN) mock.setBehaviour(t, 'html_502');
    const free = ['free-live-1111-aaaa', 'free-dead-2222-bbbb', 'free-dead-3333-cccc'];
    mock.setBehaviour(free[0]!, 'live');
    await seed(ctx, 'deep', mock.checkUrl, { default: [LIVE, 'live-2-xxxxxxxxxxxx', 'live-3-xxxxxxxxxxxx', DEAD], free });
    for (const t of ['live-2-xxxxxxxxxxxx', 'live-3-xxxxxxxxxxxx']) mock.setBehaviour(t, 'live');
    await seed(ctx, 'qwen', mock.checkUrl, { default: QWEN });

    await ctx.daemon.runNow({ trigger: 'cli' });
    const beats = () =>
      Object.fromEntries(
        kuma.requests.splice(0).map((r) => {
          const u = new URL(r.url, kuma.baseUrl);
          return [u.pathname.split('/').pop(), Object.fromEntries(u.searchParams)];
        }),
      );
    const first = beats();
    expect(first).toEqual({
      pushDeepDefault1: { status: 'up', msg: 'live 3/4, dead 1, unknown 0', ping: expect.stringMatching(/^\d+$/) },
      pushDeepFree2: { status: 'down', msg: 'live 1/3, dead 2, unknown 0', ping: expect.stringMatching(/^\d+$/) },
      pushQwen3: { status: 'down', msg: 'live 0/2, dead 0, unknown 2, unreachable: qwen', ping: expect.stringMatching(/^\d+$/) },
    });

    // Nothing is due within the minimum interval: the heartbeats still report every token's verdict.
    const idle = await ctx.daemon.runNow({ trigger: 'cli' });
    expect(idle.checked).toBe(0);
    expect(beats()).toEqual({
      pushDeepDefault1: { status: 'up', msg: 'live 3/4, dead 1, unknown 0' },
      pushDeepFree2: { status: 'down', msg: 'live 1/3, dead 2, unknown 0' },
      pushQwen3: { status: 'down', msg: 'live 0/2, dead 0, unknown 2' },
    });
    expect(ctx.log.text).not.toContain('pushDeep');
    expect(ctx.log.text).not.toContain('pushQwen');
  });

  it('pushes the whole run to a single Uptime-Kuma URL, summed over every pool', async () => {
    const kuma = await receiver();
    ctx = await testDaemon(database.url, { TSCHK_PRUNE: 'off', TSCHK_UPTIME_KUMA_PUSH: `${kuma.baseUrl}/api/push/wholeRun42` });
    await seed(ctx, 'deep', mock.checkUrl, { default: [LIVE, DEAD], free: ['free-only-live-0001'] });
    mock.setBehaviour('free-only-live-0001', 'live');
    await seed(ctx, 'glm', mock.checkUrl, { default: ['glm-dead-token-0001'] });

    await ctx.daemon.runNow({ trigger: 'cli' });
    expect(kuma.requests).toHaveLength(1);
    const u = new URL(kuma.requests[0]!.url, kuma.baseUrl);
    expect(u.pathname).toBe('/api/push/wholeRun42');
    expect(Object.fromEntries(u.searchParams)).toMatchObject({ status: 'up', msg: 'live 2/4, dead 2, unknown 0' });
  });

  it('calls a pool down below TSCHK_HEALTHY_RATIO, up at it', async () => {
    const kuma = await receiver();
    ctx = await testDaemon(database.url, {
      TSCHK_PRUNE: 'off',
      TSCHK_HEALTHY_RATIO: '0.75',
      TSCHK_UPTIME_KUMA_PUSH: `deep/default=${kuma.baseUrl}/api/push/pushThree4;deep/half=${kuma.baseUrl}/api/push/pushHalf2`,
    });
    const live = ['ratio-live-0001-aaaa', 'ratio-live-0002-bbbb', 'ratio-live-0003-cccc', 'ratio-live-0004-dddd'];
    for (const t of live) mock.setBehaviour(t, 'live');
    await seed(ctx, 'deep', mock.checkUrl, { default: [...live.slice(0, 3), DEAD], half: [live[3]!, 'ratio-dead-0005-eeee'] });

    await ctx.daemon.runNow({ trigger: 'cli' });

    const status = Object.fromEntries(
      kuma.requests.map((r) => [new URL(r.url, kuma.baseUrl).pathname, new URL(r.url, kuma.baseUrl).searchParams.get('status')]),
    );
    // 3/4 is exactly 0.75; 1/2 would be up at the default 0.5
    expect(status).toEqual({ '/api/push/pushThree4': 'up', '/api/push/pushHalf2': 'down' });
  });

  it('a dead or hanging receiver neither fails the run nor holds it past its deadline', async () => {
    const hanging = await receiver('hang');
    const healthy = await receiver();
    const closed = await startReceiver();
    await closed.close(); // nothing listens there any more: connection refused
    ctx = await testDaemon(database.url, {
      TSCHK_PRUNE: 'off',
      TSCHK_RETRIES: '0',
      TSCHK_WEBHOOK_URL: `${hanging.baseUrl}/slow, ${closed.baseUrl}/gone, ${healthy.baseUrl}/fine`,
      TSCHK_UPTIME_KUMA_PUSH: `${hanging.baseUrl}/api/push/hangingKuma9`,
    });
    await seed(ctx, 'deep', mock.checkUrl, { default: [LIVE, DEAD] });

    const running = runWithNotifier(ctx, DEADLINE_FIRST);
    await waitFor(() => hanging.requests.length > 0, 5_000, 'the hanging receiver to be asked', 5);
    const notifying = performance.now();
    // The run row is closed before anyone is notified.
    expect((await listRuns(ctx.db, 1))[0]).toMatchObject({ status: 'done', checked: 2, dead: 1 });
    const summary = await running;
    const waited = performance.now() - notifying;

    expect(summary.status).toBe('done');
    // Without the deadline this would wait for the receiver at least 6 s; with it, about 100 ms.
    expect(waited).toBeLessThan(DEADLINE_FIRST.deadlineMs * 4);
    expect(healthy.requests).toHaveLength(1);
    const failures = ctx.log.entries().filter((e) => e.msg === 'notification failed');
    expect(failures.map((e) => [e.target, e.host])).toEqual(
      expect.arrayContaining([
        ['webhook json', hanging.baseUrl.slice(7)],
        ['webhook json', closed.baseUrl.slice(7)],
        ['uptime-kuma all', hanging.baseUrl.slice(7)],
      ]),
    );
    expect(failures.find((e) => e.host === closed.baseUrl.slice(7))).toMatchObject({ attempts: 3, reason: 'connect_refused' });
    expect(String(failures.find((e) => e.target === 'webhook json' && e.host === hanging.baseUrl.slice(7))?.reason)).toMatch(/^timeout/);
    expect(ctx.log.text).not.toContain('hangingKuma9');
    expect(ctx.log.text).not.toContain('/slow');
  });

  it('a forced shutdown abandons a delivery still waiting for its receiver', async () => {
    const hanging = await receiver('hang');
    ctx = await testDaemon(database.url, { TSCHK_PRUNE: 'off', TSCHK_RETRIES: '0', TSCHK_WEBHOOK_URL: `${hanging.baseUrl}/hook` });
    await seed(ctx, 'deep', mock.checkUrl, { default: [DEAD] });

    const running = ctx.daemon.runNow({ trigger: 'cli' });
    await waitFor(() => hanging.requests.length > 0, 5_000, 'the hanging receiver to be asked', 5);
    await ctx.daemon.stop(0);
    expect((await running).status).toBe('done');
    expect(hanging.requests).toHaveLength(1);
    expect(ctx.log.entries().find((e) => e.msg === 'notification failed')).toMatchObject({ attempts: 1, reason: 'shutdown' });
  });

  it('retries a busy receiver with backoff and takes a refusal as final', async () => {
    const busy = await receiver({ status: 503, body: 'busy' }, { status: 200, body: '' });
    const refusing = await receiver({ status: 200, body: '{"errcode":93000,"errmsg":"invalid webhook url"}' });
    ctx = await testDaemon(database.url, {
      TSCHK_PRUNE: 'off',
      TSCHK_RETRIES: '0',
      TSCHK_WEBHOOK_URL: `${busy.baseUrl}/a, ${refusing.baseUrl}/b`,
      TSCHK_WEBHOOK_FORMAT: 'wecom',
    });
    await seed(ctx, 'deep', mock.checkUrl, { default: [DEAD] });

    expect((await runWithNotifier(ctx, FAST)).status).toBe('done');
    expect(busy.requests).toHaveLength(2);
    expect(busy.requests[1]!.body).toBe(busy.requests[0]!.body);
    expect(refusing.requests).toHaveLength(1);
    const entries = ctx.log.entries();
    expect(entries.find((e) => e.msg === 'notification sent')).toMatchObject({ host: busy.baseUrl.slice(7), attempts: 2 });
    expect(entries.find((e) => e.msg === 'notification failed')).toMatchObject({
      host: refusing.baseUrl.slice(7),
      attempts: 1,
      reason: 'errcode 93000: invalid webhook url',
    });
  });
});

describe('each chat format on the wire', () => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Ctx | undefined;
  let chat: Receiver;

  beforeEach(async () => {
    mock = await startMockFreeApi({ behaviours: { [LIVE]: 'live', [DEAD]: 'dead' } });
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    await chat.close();
    await mock.close();
    await database.drop();
  });

  const now = new Date('2025-06-01T08:00:00.000Z');
  // What each chat service gets, written out by hand: the run id is 1 in a fresh database, the
  // signatures are those of `now` and the secret (DingTalk's in the URL, Feishu's in the body).
  const headline = 'tschk: run 1 (all) done, cli: 2 checked — 1 live, 1 dead, 0 exhausted, 0 unknown';
  const suspect = `- newly suspect (1): ${describeSecret(DEAD).mask} ${describeSecret(DEAD).fingerprint}`;
  const markdown = `**tschk: run 1 (all)** done, cli: 2 checked — 1 live, 1 dead, 0 exhausted, 0 unknown\n\n**deep**\n${suspect}`;
  const text = `${headline}\n\ndeep:\n${suspect}`;
  it.each([
    [
      'wecom',
      '/cgi-bin/webhook/send?key=wecom-key-0001',
      '{"errcode":0,"errmsg":"ok"}',
      {},
      '/cgi-bin/webhook/send?key=wecom-key-0001',
      { msgtype: 'markdown', markdown: { content: markdown } },
    ],
    [
      'dingtalk',
      '/robot/send?access_token=ding-token-0002',
      '{"errcode":0,"errmsg":"ok"}',
      { TSCHK_WEBHOOK_SECRET: 'SEC-ding-secret-0003' },
      '/robot/send?access_token=ding-token-0002&timestamp=1748764800000&sign=idU3OMfl1aSWJXJImznDFNA25TFKZg%2FI%2BbYc6ekiHv4%3D',
      { msgtype: 'markdown', markdown: { title: 'tschk: run 1 (all)', text: markdown } },
    ],
    [
      'feishu',
      '/open-apis/bot/v2/hook/feishu-hook-0004',
      '{"code":0,"msg":"success","data":{}}',
      { TSCHK_WEBHOOK_SECRET: 'feishu-secret-0005' },
      '/open-apis/bot/v2/hook/feishu-hook-0004',
      { timestamp: '1748764800', sign: 'M0A5CQ/8Jcq9f80rHS4J7aWIjGq9d6RDtnG+arZ3PFw=', msg_type: 'text', content: { text } },
    ],
    [
      'telegram',
      '/bot123456:telegram-token-0006',
      '{"ok":true,"result":{"message_id":1}}',
      { TSCHK_TELEGRAM_CHAT_ID: '-1001234' },
      '/bot123456:telegram-token-0006/sendMessage',
      { chat_id: '-1001234', text },
    ],
  ] as const)('%s', async (format, path, okBody, env, sentPath, sentBody) => {
    chat = await startReceiver({ status: 200, body: okBody });
    const url = chat.baseUrl + path;
    ctx = await testDaemon(database.url, {
      TSCHK_PRUNE: 'off',
      TSCHK_RETRIES: '0',
      TSCHK_WEBHOOK_URL: url,
      TSCHK_WEBHOOK_FORMAT: format,
      ...env,
    });
    await seed(ctx, 'deep', mock.checkUrl, { default: [LIVE, DEAD] });

    await runWithNotifier(ctx, FAST, now);
    expect(chat.requests).toHaveLength(1);
    const sent = chat.requests[0]!;
    expect(sent.url).toBe(sentPath);
    expect(sent.body).toBe(JSON.stringify(sentBody));
    expect(ctx.log.entries().find((e) => e.msg === 'notification sent')).toMatchObject({ target: `webhook ${format}`, attempts: 1 });
    const keys = [path.split(/[=/]/).pop()!, ...Object.values(env)];
    expectNoSecret([ctx.log.text], [LIVE, DEAD, ...keys]);
    expectNoSecret([sent.body], [LIVE, DEAD, ...Object.values(env).filter((v) => v !== '-1001234')]);
  });
});

describe('tschk notify test', () => {
  const receivers: Receiver[] = [];
  afterEach(async () => {
    for (const r of receivers.splice(0)) await r.close();
  });

  it('sends a sample to every target and prints one line each; a failure exits 1', async () => {
    const ok = await startReceiver();
    const gone = await startReceiver({ status: 404, body: 'no such hook' });
    const kuma = await startReceiver({ status: 200, body: '{"ok":true}' });
    receivers.push(ok, gone, kuma);
    const env = {
      TSCHK_WEBHOOK_URL: `${ok.baseUrl}/hook, ${gone.baseUrl}/hook`,
      TSCHK_WEBHOOK_SECRET: WEBHOOK_SECRET,
      TSCHK_UPTIME_KUMA_PUSH: `deep=${kuma.baseUrl}/api/push/kumaTest77`,
    };
    const r = await tschk(['notify', 'test'], env);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n').sort()).toEqual(
      [
        `failed  webhook json  ${gone.baseUrl.slice(7)}  (http_404)`,
        `ok      uptime-kuma deep  ${kuma.baseUrl.slice(7)}`,
        `ok      webhook json  ${ok.baseUrl.slice(7)}`,
      ].sort(),
    );
    const sample = JSON.parse(ok.requests[0]!.body);
    expect(sample).toMatchObject({ type: 'tschk.run', test: true });
    expect(ok.requests[0]!.headers['x-tschk-signature']).toBe(
      'sha256=' + createHmac('sha256', WEBHOOK_SECRET).update(ok.requests[0]!.body).digest('hex'),
    );
    expect(Object.fromEntries(new URL(kuma.requests[0]!.url, kuma.baseUrl).searchParams)).toEqual({
      status: 'up',
      msg: 'tschk notify test',
    });
    expect(r.stdout + r.stderr).not.toContain('kumaTest77');
    expect(r.stdout + r.stderr).not.toContain(WEBHOOK_SECRET);

    gone.answer({ status: 200, body: '' });
    expect((await tschk(['notify', 'test'], env)).code).toBe(0);
  });

  it('says what to set when there is nothing to test, or when Telegram has no chat id', async () => {
    expect(await tschk(['notify', 'test'], {})).toMatchObject({
      code: 2,
      stderr: 'tschk: notify: nothing to test: set TSCHK_WEBHOOK_URL or TSCHK_UPTIME_KUMA_PUSH\n',
    });
    const r = await tschk(['notify', 'test'], { TSCHK_WEBHOOK_URL: 'https://api.telegram.org/bot1:x', TSCHK_WEBHOOK_FORMAT: 'telegram' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('TSCHK_TELEGRAM_CHAT_ID: required with TSCHK_WEBHOOK_FORMAT=telegram');
    expect((await tschk(['notify', 'send'], {})).code).toBe(2);
  });
});
