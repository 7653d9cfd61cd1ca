import { get } from './api.js';
import type { PageContext } from './app.js';
import { clear, h, link } from './dom.js';
import { formatNumber, formatTime, t } from './i18n.js';
import type { MessageKey } from './messages-en.js';
import type { Run, RunDetail, TokenBrief } from './types.js';
import { errorText, notice, progress } from './widgets.js';

const COUNTS = ['checked', 'live', 'dead', 'exhausted', 'unknown', 'pruned', 'held'] as const;

const statusText = (s: Run['status']) => t(`run.status.${s}` as MessageKey);
const triggerText = (s: string) => {
  const key = `run.trigger.${s}` as MessageKey;
  return t(key);
};

export async function runsPage(ctx: PageContext): Promise<void> {
  ctx.root.append(h('h1', {}, t('runs.title')));
  const before = ctx.query.get('before');
  let runs: Run[];
  try {
    runs = (await get<{ runs: Run[] }>(`/runs?limit=50${before ? `&before=${encodeURIComponent(before)}` : ''}`)).runs;
  } catch (err) {
    ctx.root.append(notice('error', errorText(err)));
    return;
  }
  if (runs.length === 0) {
    ctx.root.append(notice('info', t('runs.none')));
    return;
  }
  const table = h(
    'table',
    { class: 'runs' },
    h('caption', { class: 'visually-hidden' }, t('runs.title')),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...(['id', 'trigger', 'scope', 'status', 'started', 'finished'] as const).map((c) => h('th', { scope: 'col' }, t(`runs.col.${c}`))),
        ...COUNTS.map((c) => h('th', { scope: 'col' }, t(`count.${c}`))),
      ),
    ),
    h(
      'tbody',
      {},
      ...runs.map((r) =>
        h(
          'tr',
          { 'data-run': r.id },
          h('td', {}, link(`/runs/${r.id}`, {}, `#${r.id}`)),
          h('td', {}, triggerText(r.trigger)),
          h('td', {}, h('code', {}, r.scope)),
          h('td', {}, h('span', { class: `tag run-${r.status}` }, statusText(r.status))),
          h('td', {}, formatTime(r.started_at)),
          h('td', {}, formatTime(r.finished_at)),
          ...COUNTS.map((c) => h('td', { class: 'num' }, formatNumber(r[c]))),
        ),
      ),
    ),
  );
  const oldest = runs[runs.length - 1]!.id;
  ctx.root.append(h('div', { class: 'table-wrap' }, table), runs.length === 50 ? link(`/runs?before=${oldest}`, {}, t('runs.older')) : '');
  document.body.dataset.ready = 'runs';
}

export async function runPage(ctx: PageContext): Promise<void> {
  const id = Number(ctx.params.id);
  const body = h('div', {});
  ctx.root.append(
    h('p', { class: 'crumbs' }, link('/runs', {}, t('nav.runs')), ' › ', `#${id}`),
    h('h1', {}, t('run.label', { id })),
    body,
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  let alive = true;
  ctx.onLeave(() => {
    alive = false;
    clearTimeout(timer);
  });
  const load = async () => {
    try {
      const d = await get<RunDetail>(`/runs/${id}`);
      if (!alive) return;
      clear(body, ...drawRun(d));
      document.body.dataset.ready = 'run';
      if (d.run.status === 'running') timer = setTimeout(load, 1_000);
    } catch (err) {
      clear(body, notice('error', errorText(err)));
    }
  };
  await load();
}

function tokens(list: { count: number; tokens: TokenBrief[] }): HTMLElement {
  if (list.count === 0) return h('p', { class: 'muted' }, t('run.nobody'));
  return h(
    'div',
    {},
    h(
      'ul',
      { class: 'token-list' },
      ...list.tokens.map((tok) =>
        h(
          'li',
          {},
          link(`/tokens/${tok.id}`, {}, h('code', {}, tok.mask ?? tok.fingerprint)),
          ' ',
          h('code', { class: 'muted' }, tok.fingerprint),
          tok.pool ? ` ${tok.pool}` : '',
        ),
      ),
    ),
    list.count > list.tokens.length
      ? h('p', { class: 'muted' }, t('prune.more', { n: formatNumber(list.count - list.tokens.length) }))
      : '',
  );
}

function drawRun(d: RunDetail): HTMLElement[] {
  const r = d.run;
  const out: HTMLElement[] = [
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, t('runs.col.status')),
      h('dd', {}, h('span', { class: `tag run-${r.status}`, 'data-status': r.status }, statusText(r.status))),
      h('dt', {}, t('runs.col.trigger')),
      h('dd', {}, triggerText(r.trigger)),
      h('dt', {}, t('runs.col.scope')),
      h('dd', {}, h('code', {}, r.scope)),
      h('dt', {}, t('runs.col.started')),
      h('dd', {}, formatTime(r.started_at)),
      h('dt', {}, t('runs.col.finished')),
      h('dd', {}, formatTime(r.finished_at)),
      ...(r.error ? [h('dt', {}, t('run.error')), h('dd', {}, r.error)] : []),
    ),
  ];
  if (r.status === 'running') out.push(progress(r));
  out.push(
    h(
      'ul',
      { class: 'counts' },
      ...COUNTS.map((c) => h('li', { 'data-count': c }, h('strong', {}, formatNumber(r[c])), ' ', t(`count.${c}`))),
    ),
  );
  out.push(
    h('h2', {}, t('run.providers')),
    d.providers.length === 0
      ? h('p', { class: 'muted' }, r.status === 'running' ? t('run.providers_later') : t('run.nobody'))
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, t('run.provider')),
                ...COUNTS.map((c) => h('th', { scope: 'col' }, t(`count.${c}`))),
                h('th', { scope: 'col' }, t('run.notes')),
              ),
            ),
            h(
              'tbody',
              {},
              ...d.providers.map((p) =>
                h(
                  'tr',
                  { 'data-provider': p.provider },
                  h('th', { scope: 'row' }, p.provider),
                  ...COUNTS.map((c) => h('td', { class: 'num' }, formatNumber(p[c]))),
                  h(
                    'td',
                    {},
                    [
                      p.held_reason ? t('run.held_because', { reason: p.held_reason }) : '',
                      p.unreachable ? t('run.unreachable') : '',
                      p.unreliable ? t('run.canary') : '',
                      p.error ?? '',
                    ]
                      .filter(Boolean)
                      .join(' · ') || '—',
                  ),
                ),
              ),
            ),
          ),
        ),
  );
  for (const [key, label] of [
    ['became_suspect', 'run.became_suspect'],
    ['confirmed_dead', 'run.confirmed_dead'],
    ['recovered', 'run.recovered'],
    ['pruned', 'run.pruned'],
  ] as const) {
    const list = d.changes[key];
    out.push(h('section', { 'data-change': key }, h('h2', {}, t(label, { n: formatNumber(list.count) })), tokens(list)));
  }
  return out;
}
