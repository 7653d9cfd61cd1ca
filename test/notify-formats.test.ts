import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { zeroCounts } from '../src/db/runs.js';
import type { ProviderRunSummary, RunSummary, TokenRef } from '../src/engine/run.js';
import { scrubUrl } from '../src/notify/deliver.js';
import { buildDigest, renderDigest, type Digest } from '../src/notify/digest.js';
import {
  dingtalkSign,
  feishuSign,
  judgeAnswer,
  signBody,
  telegramSendUrl,
  webhookRequest,
  type WebhookSettings,
} from '../src/notify/formats.js';
import { kumaPush, kumaRequest, type PoolCounts } from '../src/notify/uptime-kuma.js';

const ref = (id: number, pool = 'default'): TokenRef => ({ id, pool, mask: `tk${id}a…zz${id}`, fingerprint: String(id).padStart(12, 'f') });

function provider(over: Partial<ProviderRunSummary> = {}): ProviderRunSummary {
  return {
    provider: 'deep',
    kind: 'free-api',
    ...zeroCounts(),
    checked: 3,
    live: 3,
    durationMs: 10,
    unreachable: false,
    unreliable: false,
    medianLatencyMs: 120,
    becameSuspect: [],
    confirmedDead: [],
    recovered: [],
    prunedTokens: [],
    lowBalance: [],
    ...over,
  };
}

function run(providers: ProviderRunSummary[], over: Partial<RunSummary> = {}): RunSummary {
  const totals = zeroCounts();
  for (const p of providers) for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += p[k];
  return {
    runId: 7,
    trigger: 'cron',
    scope: 'all',
    status: 'done',
    startedAt: '2025-01-02T03:04:05.000Z',
    finishedAt: '2025-01-02T03:04:06.000Z',
    durationMs: 1000,
    ...totals,
    providers,
    ...over,
  };
}

describe('the run digest', () => {
  it.each([
    ['nothing changed', run([provider()]), null],
    ['an aborted run without changes', run([provider()], { status: 'aborted' }), null],
    ['a token became suspect', run([provider({ becameSuspect: [ref(1)] })]), ['deep']],
    ['a token was confirmed dead', run([provider({ confirmedDead: [ref(1)] })]), ['deep']],
    ['a token recovered', run([provider({ recovered: [ref(1)] })]), ['deep']],
    ['tokens were pruned', run([provider({ pruned: 1, prunedTokens: [ref(1)] })]), ['deep']],
    ['pruning was held', run([provider({ held: 3, heldReason: 'breaker: 3 of 4 confirmed dead' })]), ['deep']],
    ['the provider was unreachable', run([provider({ unreachable: true, live: 0, unknown: 3 })]), ['deep']],
    ['a canary disagreed', run([provider({ unreliable: true })]), ['deep']],
    ['a balance fell low', run([provider({ lowBalance: [{ ...ref(1), balance: '1.50', currency: 'CNY' }] })]), ['deep']],
    ['a provider could not be checked', run([provider({ error: 'provider has no check URL', checked: 0, live: 0 })]), ['deep']],
    ['the run failed', run([], { status: 'failed', error: 'database unreachable' }), []],
    [
      'only the providers with news are listed',
      run([provider({ provider: 'glm' }), provider({ provider: 'qwen', becameSuspect: [ref(2)] })]),
      ['qwen'],
    ],
  ])('%s', (_name, summary, expected) => {
    const d = buildDigest(summary);
    if (expected === null) expect(d).toBeNull();
    else expect(d?.providers.map((p) => p.provider)).toEqual(expected);
  });

  const busy = run([
    provider({
      provider: 'deep',
      checked: 5,
      live: 1,
      dead: 3,
      unknown: 1,
      pruned: 2,
      held: 0,
      becameSuspect: [ref(1)],
      confirmedDead: [ref(2), ref(3), ref(4, 'free')],
      prunedTokens: [ref(2), ref(3)],
      recovered: [ref(5)],
    }),
    provider({ provider: 'kimi', checked: 2, live: 0, unknown: 2, unreachable: true }),
    provider({
      provider: 'ds-keys',
      lowBalance: [{ ...ref(6), balance: '0.42', currency: 'CNY' }],
      held: 4,
      heldReason: 'breaker: 4 of 5 confirmed dead',
    }),
  ]);

  it('reads as one message: counts first, then each provider with masks and fingerprints', () => {
    const d = buildDigest(busy)!;
    expect(renderDigest(d, { style: 'markdown', pruneMode: 'flag' }).text).toBe(
      [
        '**tschk: run 7 (all)** done, cron: 10 checked — 4 live, 3 dead, 0 exhausted, 3 unknown, 2 pruned',
        '',
        '**deep**',
        '- newly suspect (1): tk1a…zz1 fffffffffff1',
        '- confirmed dead (1): tk4a…zz4 fffffffffff4 (free)',
        '- flagged invalid (2): tk2a…zz2 fffffffffff2, tk3a…zz3 fffffffffff3',
        '- recovered (1): tk5a…zz5 fffffffffff5',
        '',
        '**kimi**',
        '- unreachable: every check was unknown, no token judged',
        '',
        '**ds-keys**',
        '- pruning held for 4 token(s): breaker: 4 of 5 confirmed dead',
        '- low balance (1): tk6a…zz6 fffffffffff6 0.42 CNY',
      ].join('\n'),
    );
    const plain = renderDigest(d, { style: 'plain', pruneMode: 'delete' }).text;
    expect(plain).toContain('tschk: run 7 (all) done');
    expect(plain).toContain('\ndeep:\n');
    expect(plain).toContain('- deleted (kept in token_archive) (2): ');
    expect(plain).not.toContain('**');
  });

  it('names ten tokens per line and counts the rest', () => {
    const many = Array.from({ length: 13 }, (_, i) => ref(i + 1));
    const text = renderDigest(buildDigest(run([provider({ becameSuspect: many })]))!, { style: 'plain', pruneMode: 'flag' }).text;
    expect(text).toContain('- newly suspect (13): tk1a…zz1 fffffffffff1, ');
    expect(text).toContain('tk10a…zz10 ffffffffff10, … +3 more');
    expect(text).not.toContain('tk11a');
  });

  it('stays within the byte limit of a chat and says it was shortened', () => {
    const providers = Array.from({ length: 60 }, (_, i) => provider({ provider: `provider-${i}`, becameSuspect: [ref(i)] }));
    const full = renderDigest(buildDigest(run(providers))!, { style: 'markdown', pruneMode: 'flag' }).text;
    const short = renderDigest(buildDigest(run(providers))!, { style: 'markdown', pruneMode: 'flag', maxBytes: 1000 }).text;
    expect(Buffer.byteLength(full)).toBeGreaterThan(1000);
    expect(Buffer.byteLength(short)).toBeLessThanOrEqual(1000);
    expect(short.startsWith('**tschk: run 7 (all)**')).toBe(true);
    expect(short.endsWith('… (shortened; tschk status shows the rest)')).toBe(true);
  });
});

describe('webhook payloads', () => {
  const digest: Digest = buildDigest(run([provider({ becameSuspect: [ref(1)] })]))!;
  const now = new Date('2025-01-02T03:04:05.678Z');
  const settings = (over: Partial<WebhookSettings>): WebhookSettings => ({
    format: 'json',
    secret: undefined,
    telegramChatId: undefined,
    pruneMode: 'flag',
    ...over,
  });
  const markdown =
    '**tschk: run 7 (all)** done, cron: 3 checked — 3 live, 0 dead, 0 exhausted, 0 unknown\n\n**deep**\n- newly suspect (1): tk1a…zz1 fffffffffff1';
  const plain =
    'tschk: run 7 (all) done, cron: 3 checked — 3 live, 0 dead, 0 exhausted, 0 unknown\n\ndeep:\n- newly suspect (1): tk1a…zz1 fffffffffff1';

  it('json: a stable document, signed with HMAC-SHA256 of the exact body', () => {
    const req = webhookRequest('http://hooks.local/in', digest, settings({ secret: 's3cret-value' }), now);
    expect(req.method).toBe('POST');
    expect(JSON.parse(req.body!)).toEqual({
      type: 'tschk.run',
      run: {
        id: 7,
        scope: 'all',
        trigger: 'cron',
        status: 'done',
        startedAt: '2025-01-02T03:04:05.000Z',
        finishedAt: '2025-01-02T03:04:06.000Z',
        durationMs: 1000,
        checked: 3,
        live: 3,
        dead: 0,
        exhausted: 0,
        unknown: 0,
        pruned: 0,
        held: 0,
      },
      providers: [
        {
          provider: 'deep',
          checked: 3,
          live: 3,
          dead: 0,
          exhausted: 0,
          unknown: 0,
          pruned: 0,
          held: 0,
          unreachable: false,
          unreliable: false,
          becameSuspect: [{ id: 1, pool: 'default', mask: 'tk1a…zz1', fingerprint: 'fffffffffff1' }],
          confirmedDead: [],
          recovered: [],
          prunedTokens: [],
          lowBalance: [],
        },
      ],
      text: plain,
    });
    const expected = 'sha256=' + createHmac('sha256', 's3cret-value').update(req.body!).digest('hex');
    expect(req.headers['X-Tschk-Signature']).toBe(expected);
    expect(req.body).not.toContain('s3cret-value');
    expect(webhookRequest('http://hooks.local/in', digest, settings({}), now).headers['X-Tschk-Signature']).toBeUndefined();
  });

  it('json: the pruned count and the pruned tokens both survive', () => {
    const d = buildDigest(run([provider({ pruned: 2, confirmedDead: [ref(2), ref(3)], prunedTokens: [ref(2), ref(3)] })]))!;
    const body = JSON.parse(webhookRequest('http://hooks.local/in', d, settings({}), now).body!);
    expect(body.run.pruned).toBe(2);
    expect(body.providers[0]).toMatchObject({ pruned: 2, prunedTokens: [{ id: 2 }, { id: 3 }], confirmedDead: [{ id: 2 }, { id: 3 }] });
    expect(body.text).toContain('- flagged invalid (2): tk2a…zz2 fffffffffff2, tk3a…zz3 fffffffffff3');
    expect(body.text).not.toContain('confirmed dead');
  });

  it('wecom: a group-robot markdown message', () => {
    const req = webhookRequest('https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K', digest, settings({ format: 'wecom' }), now);
    expect(req.url).toBe('https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K');
    expect(JSON.parse(req.body!)).toEqual({ msgtype: 'markdown', markdown: { content: markdown } });
  });

  it('dingtalk: a markdown message, signed in the query when a secret is set', () => {
    const url = 'https://oapi.dingtalk.com/robot/send?access_token=T';
    const bare = webhookRequest(url, digest, settings({ format: 'dingtalk' }), now);
    expect(bare.url).toBe(url);
    expect(JSON.parse(bare.body!)).toEqual({ msgtype: 'markdown', markdown: { title: 'tschk: run 7 (all)', text: markdown } });

    const signed = new URL(webhookRequest(url, digest, settings({ format: 'dingtalk', secret: 'SECabc' }), now).url);
    expect(signed.searchParams.get('access_token')).toBe('T');
    expect(signed.searchParams.get('timestamp')).toBe(String(now.getTime()));
    const sign = createHmac('sha256', 'SECabc').update(`${now.getTime()}\nSECabc`).digest('base64');
    expect(signed.searchParams.get('sign')).toBe(sign);
    expect(dingtalkSign('SECabc', now.getTime())).toBe(sign);
  });

  it('feishu: a text message, with timestamp and sign in the body when a secret is set', () => {
    const url = 'https://open.feishu.cn/open-apis/bot/v2/hook/H';
    expect(JSON.parse(webhookRequest(url, digest, settings({ format: 'feishu' }), now).body!)).toEqual({
      msg_type: 'text',
      content: { text: plain },
    });
    const ts = Math.floor(now.getTime() / 1000);
    const sign = createHmac('sha256', `${ts}\nfs-secret`).update('').digest('base64');
    expect(JSON.parse(webhookRequest(url, digest, settings({ format: 'feishu', secret: 'fs-secret' }), now).body!)).toEqual({
      timestamp: String(ts),
      sign,
      msg_type: 'text',
      content: { text: plain },
    });
    expect(feishuSign('fs-secret', ts)).toBe(sign);
  });

  it('telegram: sendMessage to the configured chat, whether or not the URL names the method', () => {
    const req = webhookRequest(
      'https://api.telegram.org/bot123:ABC',
      digest,
      settings({ format: 'telegram', telegramChatId: '-100200' }),
      now,
    );
    expect(req.url).toBe('https://api.telegram.org/bot123:ABC/sendMessage');
    expect(JSON.parse(req.body!)).toEqual({ chat_id: '-100200', text: plain });
    expect(telegramSendUrl('https://api.telegram.org/bot123:ABC/sendMessage')).toBe('https://api.telegram.org/bot123:ABC/sendMessage');
    expect(telegramSendUrl('http://tg-proxy:8081/bot123:ABC/')).toBe('http://tg-proxy:8081/bot123:ABC/sendMessage');
  });

  it('signBody is the documented header value', () => {
    expect(signBody('{}', 'k')).toBe('sha256=' + createHmac('sha256', 'k').update('{}').digest('hex'));
  });
});

describe('whether a receiver took the message', () => {
  it.each([
    ['json', 200, '', { ok: true }],
    ['json', 204, '', { ok: true }],
    ['json', 503, 'busy', { ok: false, retry: true, reason: 'http_503' }],
    ['json', 429, '', { ok: false, retry: true, reason: 'http_429' }],
    ['json', 404, 'no', { ok: false, retry: false, reason: 'http_404' }],
    ['wecom', 200, '{"errcode":0,"errmsg":"ok"}', { ok: true }],
    [
      'wecom',
      200,
      '{"errcode":93000,"errmsg":"invalid webhook url"}',
      { ok: false, retry: false, reason: 'errcode 93000: invalid webhook url' },
    ],
    [
      'dingtalk',
      200,
      '{"errcode":310000,"errmsg":"sign not match"}',
      { ok: false, retry: false, reason: 'errcode 310000: sign not match' },
    ],
    ['feishu', 200, '{"code":0,"msg":"success","data":{}}', { ok: true }],
    [
      'feishu',
      200,
      '{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}',
      { ok: false, retry: false, reason: 'code 19021: sign match fail or timestamp is not within one hour from current time' },
    ],
    ['telegram', 200, '{"ok":true,"result":{}}', { ok: true }],
    [
      'telegram',
      400,
      '{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}',
      { ok: false, retry: false, reason: 'http_400 error 400: Bad Request: chat not found' },
    ],
    ['uptime-kuma', 200, '{"ok":true}', { ok: true }],
    [
      'uptime-kuma',
      404,
      '{"ok":false,"msg":"Monitor not found or not active."}',
      { ok: false, retry: false, reason: 'http_404 Monitor not found or not active.' },
    ],
    ['uptime-kuma', 200, '<html>proxy login</html>', { ok: true }],
  ] as const)('%s answering %i %s', (kind, status, body, expected) => {
    expect(judgeAnswer(kind, status, body)).toEqual(expected);
  });
});

describe('Uptime-Kuma heartbeats', () => {
  const pools: PoolCounts[] = [
    { provider: 'deep', pool: 'default', total: 4, live: 2, dead: 1, exhausted: 0, unknown: 1 },
    { provider: 'deep', pool: 'free', total: 3, live: 1, dead: 2, exhausted: 0, unknown: 0 },
    { provider: 'qwen', pool: 'default', total: 2, live: 2, dead: 0, exhausted: 0, unknown: 0 },
    { provider: 'ds-keys', pool: 'default', total: 2, live: 1, dead: 0, exhausted: 1, unknown: 0 },
  ];
  const summary = run([
    provider({ provider: 'deep', medianLatencyMs: 300 }),
    provider({ provider: 'qwen', medianLatencyMs: 100 }),
    provider({ provider: 'ds-keys', medianLatencyMs: 200 }),
  ]);

  it.each([
    [
      'a half-alive pool is up (the legacy tokentrue rule)',
      { provider: 'deep', pool: 'default' },
      summary,
      { label: 'deep/default', up: true, msg: 'live 2/4, dead 1, unknown 1', pingMs: 300 },
    ],
    [
      'a pool below half alive is down',
      { provider: 'deep', pool: 'free' },
      summary,
      { label: 'deep/free', up: false, msg: 'live 1/3, dead 2, unknown 0', pingMs: 300 },
    ],
    [
      'a provider sums its pools',
      { provider: 'deep', pool: undefined },
      summary,
      { label: 'deep', up: false, msg: 'live 3/7, dead 3, unknown 1', pingMs: 300 },
    ],
    [
      'exhausted keys are named',
      { provider: 'ds-keys', pool: undefined },
      summary,
      { label: 'ds-keys', up: true, msg: 'live 1/2, dead 0, exhausted 1, unknown 0', pingMs: 200 },
    ],
    [
      'the whole-run URL sums everything; ping is the median of the providers',
      { provider: undefined, pool: undefined },
      summary,
      { label: 'all', up: true, msg: 'live 6/11, dead 3, exhausted 1, unknown 1', pingMs: 200 },
    ],
    [
      'an empty or unknown pool is down',
      { provider: 'glm', pool: undefined },
      summary,
      { label: 'glm', up: false, msg: 'no tokens', pingMs: null },
    ],
    [
      'an unreachable provider is down whatever its stored verdicts',
      { provider: 'qwen', pool: undefined },
      run([provider({ provider: 'qwen', unreachable: true, live: 0, unknown: 3, medianLatencyMs: 40000 })]),
      { label: 'qwen', up: false, msg: 'live 2/2, dead 0, unknown 0, unreachable: qwen', pingMs: 40000 },
    ],
    [
      'a pool not in this run keeps its stored counts and sends no ping',
      { provider: 'qwen', pool: 'default' },
      run([provider({ provider: 'deep' })]),
      { label: 'qwen/default', up: true, msg: 'live 2/2, dead 0, unknown 0', pingMs: null },
    ],
  ] as const)('%s', (_name, target, s, expected) => {
    expect(kumaPush(target, s, pools, 0.5)).toEqual(expected);
  });

  it('the push URL keeps its token and gets status, msg and ping in place of the pasted ones', () => {
    const req = kumaRequest('https://kuma.example/api/push/AbC123?status=up&msg=OK&ping=', {
      up: false,
      msg: 'live 1/3, dead 2, unknown 0',
      pingMs: 812.4,
    });
    expect(req.method).toBe('GET');
    const u = new URL(req.url);
    expect(u.pathname).toBe('/api/push/AbC123');
    expect(Object.fromEntries(u.searchParams)).toEqual({ status: 'down', msg: 'live 1/3, dead 2, unknown 0', ping: '812' });
    expect(
      new URL(kumaRequest('https://kuma.example/api/push/AbC123?ping=', { up: true, msg: 'x', pingMs: null }).url).searchParams.has('ping'),
    ).toBe(false);
  });
});

describe('scrubUrl', () => {
  it('removes the key-bearing parts of a URL from a text', () => {
    const wecom = 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4';
    expect(scrubUrl('invalid webhook url key=693a91f6-7xxx-4bc4 at /cgi-bin/webhook/send', wecom)).toBe(
      'invalid webhook url key=… at /cgi-bin/webhook/send',
    );
    const telegram = 'https://api.telegram.org/bot123456:AAE-secret_part/sendMessage';
    expect(scrubUrl('Not Found: /bot123456:AAE-secret_part/sendMessage', telegram)).toBe('Not Found: /…/sendMessage');
    const feishu = 'https://open.feishu.cn/open-apis/bot/v2/hook/2b8f1c9e-4f3a-4d1e-9a7b-0c2d3e4f5a6b';
    expect(scrubUrl('hook 2b8f1c9e-4f3a-4d1e-9a7b-0c2d3e4f5a6b not found', feishu)).toBe('hook … not found');
  });
});
