import { describe, expect, it } from 'vitest';
import type { PruneMode } from '../src/config.js';
import type { Provider } from '../src/db/providers.js';
import type { TokenState } from '../src/db/schema.js';
import { decidePruning, nextTokenState, type PruneDecision, type PruneFacts } from '../src/engine/policy.js';
import { channelAction, freeApiBase, keyWithout, matchChannels, normalizeBaseUrl, type Channel } from '../src/sources/oneapi/channels.js';
import { parseTokenFile, removeFromTokenFile } from '../src/sources/token-file.js';

const base: PruneFacts = {
  mode: 'flag',
  maxRatio: 0.5,
  forcePrune: false,
  unreachable: false,
  unreliable: false,
  confirmed: 0,
  judged: 10,
};

describe('decidePruning', () => {
  it.each<[string, Partial<PruneFacts>, PruneDecision['action'], string?]>([
    ['off records only', { mode: 'off', confirmed: 2 }, 'none'],
    ['flag acts on a few confirmations', { confirmed: 2 }, 'flag'],
    ['delete acts the same way', { mode: 'delete', confirmed: 2 }, 'delete'],
    ['nothing confirmed still acts (delete also takes flagged tokens answering dead)', { mode: 'delete', confirmed: 0 }, 'delete'],
    ['an unreachable provider changes nothing', { unreachable: true, confirmed: 5 }, 'none'],
    ['an unreachable provider changes nothing, forced or not', { unreachable: true, forcePrune: true }, 'none'],
    ['a disagreeing canary holds', { unreliable: true, confirmed: 1 }, 'hold', 'canary'],
    ['a disagreeing canary holds even with nothing confirmed', { unreliable: true }, 'hold', 'canary'],
    ['--force-prune overrides the canary', { unreliable: true, forcePrune: true, confirmed: 1 }, 'flag'],
    ['breaker: 6 of 10 confirmed is more than half', { confirmed: 6 }, 'hold', 'breaker'],
    ['breaker: exactly half is not more than half', { confirmed: 5 }, 'flag'],
    ['breaker: 3 of 3 holds', { confirmed: 3, judged: 3 }, 'hold', 'breaker'],
    ['breaker: 2 of 2 is below the minimum of 3', { confirmed: 2, judged: 2 }, 'flag'],
    ['breaker: ratio 0 holds from the third confirmation', { confirmed: 3, judged: 100, maxRatio: 0 }, 'hold', 'breaker'],
    ['breaker: ratio 1 never holds', { confirmed: 10, judged: 10, maxRatio: 1 }, 'flag'],
    ['--force-prune overrides the breaker', { confirmed: 10, judged: 10, forcePrune: true }, 'flag'],
    ['breaker in delete mode', { mode: 'delete', confirmed: 4, judged: 4 }, 'hold', 'breaker'],
    ['off beats every rule', { mode: 'off', unreliable: true, confirmed: 9, judged: 9 }, 'none'],
  ])('%s', (_title, facts, action, rule) => {
    const d = decidePruning({ ...base, ...facts });
    expect(d.action).toBe(action);
    if (rule) expect(d).toMatchObject({ rule });
  });

  it('says why it holds, in numbers a user can check', () => {
    const d = decidePruning({ ...base, confirmed: 7, judged: 8 });
    expect(d).toMatchObject({ action: 'hold', rule: 'breaker' });
    expect(d.action === 'hold' && d.reason).toContain('7 of 8');
    expect(d.action === 'hold' && d.reason).toContain('TSCHK_PRUNE_MAX_RATIO=0.5');
  });

  it('tells which rule --force-prune overrode', () => {
    expect(decidePruning({ ...base, confirmed: 9, judged: 9, forcePrune: true })).toEqual({ action: 'flag', overrode: 'breaker' });
    expect(decidePruning({ ...base, unreliable: true, forcePrune: true, mode: 'delete' })).toEqual({
      action: 'delete',
      overrode: 'canary',
    });
    expect(decidePruning({ ...base, confirmed: 1, forcePrune: true })).toEqual({ action: 'flag' });
  });
});

describe('nextTokenState with TSCHK_PRUNE_EXHAUSTED', () => {
  it.each<[boolean, TokenState, number, TokenState, number, boolean]>([
    [false, 'active', 0, 'active', 0, false],
    [false, 'suspect', 1, 'active', 0, false],
    [true, 'active', 0, 'suspect', 1, false],
    [true, 'suspect', 1, 'suspect', 2, true],
    [true, 'invalid', 2, 'invalid', 3, false],
  ])('prune exhausted %s: %s (%i) + exhausted → %s (%i), confirmed %s', (pruneExhausted, state, dead, nextState, nextDead, confirmed) => {
    const t = nextTokenState({ state, consecutiveDead: dead }, 'exhausted', { pruneAfter: 2, recover: true, pruneExhausted });
    expect([t.state, t.consecutiveDead, t.confirmedDead]).toEqual([nextState, nextDead, confirmed]);
  });
});

describe('channelAction', () => {
  const a = (status: number, states: TokenState[], mode: PruneMode = 'flag', disabledByTschk = false, multiKey = false) =>
    channelAction({ status, states, mode, disabledByTschk, multiKey });
  it.each<[string, ReturnType<typeof a>, ReturnType<typeof a>]>([
    ['all flagged → disable', a(1, ['invalid', 'invalid']), 'disable'],
    ['one still active → keep', a(1, ['invalid', 'active']), 'none'],
    ['one suspect (held) → keep', a(1, ['invalid', 'suspect']), 'none'],
    ['no tokens → keep', a(1, []), 'none'],
    ['status 2 is a human decision → never', a(2, ['invalid']), 'none'],
    ['status 2 is never enabled either', a(2, ['active'], 'flag', true), 'none'],
    ['already off → nothing more', a(3, ['invalid'], 'flag', true), 'none'],
    ['ours and live again → enable', a(3, ['active', 'invalid'], 'flag', true), 'enable'],
    ['One-API disabled it, not us → leave it', a(3, ['active'], 'flag', false), 'none'],
    ['off mode records only', a(1, ['invalid'], 'off'), 'none'],
    ['off mode does not enable either', a(3, ['active'], 'off', true), 'none'],
    ['delete: multi-key with a flagged key → disable', a(1, ['invalid', 'active'], 'delete', false, true), 'disable'],
    ['flag: multi-key with a flagged key → keep', a(1, ['invalid', 'active'], 'flag', false, true), 'none'],
    ['delete: ours, multi-key, still a flagged key → stay off', a(3, ['invalid', 'active'], 'delete', true, true), 'none'],
    ['delete: ours, multi-key, the dead key gone → enable', a(3, ['active', 'active'], 'delete', true, true), 'enable'],
    ['a human-disabled token in tschk keeps the channel on', a(1, ['invalid', 'disabled']), 'none'],
  ])('%s', (_t, got, want) => expect(got).toBe(want));
});

describe('keyWithout', () => {
  const dead = new Set(['T2', 'T4']);
  it.each<[string, string | undefined]>([
    ['T1,T2,T3', 'T1,T3'],
    ['T1, T2 ,T3', 'T1,T3'],
    ['T1,T3', 'T1,T3'],
    ['T2', undefined],
    ['T2,T4', undefined],
    ['T1\nT2', undefined],
    ['T1,T2\nT3', undefined],
    ['T1,T2\n', 'T1'],
  ])('%j → %j', (key, want) => expect(keyWithout(key, dead)).toBe(want));

  it('returns the key untouched when nothing in it is dead', () => {
    expect(keyWithout(' T1 , T3 ', dead)).toBe(' T1 , T3 ');
  });
});

describe('channel matching', () => {
  it.each<[string | null, string | undefined]>([
    ['http://deep:8000', 'http://deep:8000'],
    ['http://deep:8000/', 'http://deep:8000'],
    ['http://deep:8000/v1', 'http://deep:8000'],
    ['http://deep:8000/v1/', 'http://deep:8000'],
    ['http://DEEP:8000/V1', 'http://deep:8000'],
    ['http://deep:80/', 'http://deep'],
    ['', undefined],
    [null, undefined],
  ])('base URL %j → %j', (raw, want) => expect(normalizeBaseUrl(raw)).toBe(want));

  it('takes a free-api base from its check URL', () => {
    expect(freeApiBase('http://deep:8000/token/check')).toBe('http://deep:8000');
    expect(freeApiBase('http://deep:8000/token/check/')).toBe('http://deep:8000');
    expect(freeApiBase('https://api.deepseek.com')).toBeUndefined();
  });

  const provider = (name: string, checkUrl: string | null, kind = 'free-api'): Provider => ({
    id: 1,
    name,
    kind,
    checkUrl,
    enabled: true,
    concurrency: null,
  });
  const channel = (id: number, baseUrl: string | null, status = 1): Channel => ({ id, key: `k${id}`, status, name: `c${id}`, baseUrl });
  const channels = [
    channel(1, 'http://deep:8000/v1'),
    channel(2, 'http://deep:8000/'),
    channel(3, 'http://qwen:8000'),
    channel(4, 'http://deep:8000', 2),
    channel(5, ''),
    channel(6, 'http://deep:8000'),
    channel(7, 'https://api.deepseek.com'),
  ];
  const ids = (m: Map<string, Channel[]>, name: string) => m.get(name)?.map((c) => c.id);

  it('matches by base URL and never hands out status 2', () => {
    const m = matchChannels(
      channels,
      [
        provider('deep', 'http://deep:8000/token/check'),
        provider('qwen', 'http://qwen:8000/token/check'),
        provider('ds', 'https://api.deepseek.com', 'deepseek-key'),
      ],
      new Map(),
    );
    expect(ids(m, 'deep')).toEqual([1, 2, 6]);
    expect(ids(m, 'qwen')).toEqual([3]);
    expect(ids(m, 'ds')).toEqual([]);
  });

  it('lets TSCHK_ONEAPI_CHANNELS name a provider’s channels and take them from URL matching', () => {
    const m = matchChannels(
      channels,
      [provider('deep', 'http://deep:8000/token/check'), provider('kimi', 'http://kimi:8000/token/check')],
      new Map([['kimi', [5, 6, 4]]]),
    );
    expect(ids(m, 'kimi')).toEqual([5, 6]);
    expect(ids(m, 'deep')).toEqual([1, 2]);
  });
});

describe('token files', () => {
  it('reads entries with their line numbers through a BOM, CRLF, blanks and spaces', () => {
    const text = '\uFEFFT1  \r\n\r\n  T2,T3 \r\n,\r\nT4';
    expect(parseTokenFile(text, 'commas')).toEqual([
      { secret: 'T1', line: 1 },
      { secret: 'T2', line: 3 },
      { secret: 'T3', line: 3 },
      { secret: 'T4', line: 5 },
    ]);
  });

  it('keeps an account line whole: a password may hold commas and dashes', () => {
    expect(parseTokenFile('13800000000-pa,ss-word\nuser@example.com-x,y\n', 'whole-line')).toEqual([
      { secret: '13800000000-pa,ss-word', line: 1 },
      { secret: 'user@example.com-x,y', line: 2 },
    ]);
  });

  it.each<[string, string[], string, string[]]>([
    ['T1\nT2\nT3\n', ['T2'], 'T1\nT3\n', ['T2']],
    ['T1\r\nT2\r\nT3', ['T3'], 'T1\r\nT2\r\n', ['T3']],
    ['\uFEFFT1\nT2\n', ['T1'], '\uFEFFT2\n', ['T1']],
    ['T1,T2\nT3\n', ['T2'], 'T1\nT3\n', ['T2']],
    ['T1, T2 ,T3\n', ['T2'], 'T1,T3\n', ['T2']],
    ['T1,T2\n', ['T1', 'T2'], '', ['T1', 'T2']],
    ['  T1  \n\nT2 \n', ['T2'], '  T1  \n\n', ['T2']],
    ['T1\nT2\nT1\n', ['T1'], 'T2\n', ['T1', 'T1']],
    ['T1\nT2\n', ['T9'], 'T1\nT2\n', []],
  ])('%j without %j → %j', (text, dead, want, removed) => {
    expect(removeFromTokenFile(text, new Set(dead), 'commas')).toEqual({ text: want, removed });
  });

  it('removes an account line only as a whole', () => {
    const text = 'a@x.com-p,1\nb@x.com-q\n';
    expect(removeFromTokenFile(text, new Set(['a@x.com-p']), 'whole-line').text).toBe(text);
    expect(removeFromTokenFile(text, new Set(['a@x.com-p,1']), 'whole-line')).toEqual({ text: 'b@x.com-q\n', removed: ['a@x.com-p,1'] });
  });
});
