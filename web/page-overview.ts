import { get, post } from './api.js';
import type { PageContext } from './app.js';
import { clear, h, link } from './dom.js';
import { formatNumber, formatPercent, formatRelative, formatTime, t } from './i18n.js';
import { importDialog, pruneDialog } from './actions.js';
import type { DayShare, Overview, PoolCard, Warning } from './types.js';
import { counts, errorText, notice, progress, shareChart } from './widgets.js';

const REFRESH_MS = 10_000;
const REFRESH_RUNNING_MS = 1_000;

export async function overviewPage(ctx: PageContext): Promise<void> {
  const status = h('div', { 'aria-live': 'polite' });
  const body = h('div', {});
  ctx.root.append(
    h(
      'div',
      { class: 'title-row' },
      h('h1', {}, t('overview.title')),
      h(
        'div',
        { class: 'actions' },
        checkButton({}, t('action.check_all')),
        h('button', { type: 'button', class: 'secondary', onclick: () => importDialog(undefined, ctx.refresh) }, t('action.import')),
      ),
    ),
    status,
    body,
  );
  let trend: Record<string, DayShare[]> | undefined;
  let data: Overview | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let alive = true;
  ctx.onLeave(() => {
    alive = false;
    clearTimeout(timer);
  });
  const render = () => {
    if (data) clear(body, ...drawOverview(data, trend, status));
  };
  const load = async () => {
    try {
      data = await get<Overview>('/overview');
      if (!alive) return;
      render();
      if (document.body.dataset.ready !== 'overview') performance.mark('tschk:overview-ready');
      document.body.dataset.ready = 'overview';
    } catch (err) {
      clear(status, notice('error', errorText(err)));
    }
    if (alive) timer = setTimeout(load, data?.running ? REFRESH_RUNNING_MS : REFRESH_MS);
  };
  // The cards first; the 30-day charts (the slow part over raw history) when they come.
  await load();
  void get<{ series: Record<string, DayShare[]> }>('/trend?days=30').then(
    (r) => {
      trend = r.series;
      if (alive) render();
      performance.mark('tschk:trend-ready');
      document.body.dataset.trend = 'ready';
    },
    () => {},
  );
}

function checkButton(scope: { provider?: string; pool?: string }, label: string): HTMLElement {
  const force = h('input', { type: 'checkbox' });
  const message = h('span', { 'aria-live': 'polite', class: 'inline-status' });
  const button = h(
    'button',
    {
      type: 'button',
      onclick: async () => {
        button.disabled = true;
        try {
          const r = await post<{ run_id: number }>('/runs', { ...scope, force: force.checked });
          clear(message, link(`/runs/${r.run_id}`, {}, t('run.started', { id: r.run_id })));
        } catch (err) {
          clear(message, errorText(err));
        } finally {
          button.disabled = false;
        }
      },
    },
    label,
  );
  return h('span', { class: 'check-now' }, button, h('label', { class: 'inline' }, force, ' ', t('action.force')), message);
}

function drawOverview(o: Overview, trend: Record<string, DayShare[]> | undefined, status: HTMLElement): HTMLElement[] {
  clear(status);
  const out: HTMLElement[] = [];
  if (o.running) out.push(progress(o.running));
  const last = o.last_run;
  out.push(
    h(
      'p',
      { class: 'runs-line' },
      last
        ? h(
            'span',
            {},
            link(`/runs/${last.id}`, {}, t('overview.last_run', { id: last.id })),
            ' ',
            t(`run.status.${last.status}`),
            ' · ',
            formatTime(last.finished_at),
            ' · ',
            t('overview.last_run_counts', {
              checked: formatNumber(last.checked),
              live: formatNumber(last.live),
              dead: formatNumber(last.dead),
              unknown: formatNumber(last.unknown),
            }),
          )
        : t('overview.no_run'),
      ' — ',
      o.next_run_at
        ? t('overview.next_run', { when: formatTime(o.next_run_at), relative: formatRelative(o.next_run_at), cron: o.cron })
        : t('overview.no_schedule'),
    ),
  );
  if (o.warnings.length > 0) {
    out.push(
      h(
        'section',
        { class: 'warnings', 'aria-labelledby': 'warnings-h' },
        h('h2', { id: 'warnings-h' }, t('overview.warnings')),
        h('ul', {}, ...o.warnings.map((w) => h('li', { class: `warning ${w.kind}` }, ...warningText(w)))),
      ),
    );
  }
  if (o.pools.length === 0) out.push(notice('info', t('overview.no_providers')));
  out.push(h('div', { class: 'cards' }, ...o.pools.map((c) => card(c, trend))));
  return out;
}

function warningText(w: Warning): Array<Node | string> {
  const run = (id: number) => link(`/runs/${id}`, {}, t('run.label', { id }));
  switch (w.kind) {
    case 'held':
      return [
        t('warning.held', { provider: w.provider, n: formatNumber(w.held) }),
        ' ',
        h('q', {}, w.reason),
        ' (',
        run(w.run_id),
        ') ',
        h('button', { type: 'button', onclick: () => pruneDialog(w.provider) }, t('action.review_prune')),
      ];
    case 'unreachable':
      return [t('warning.unreachable', { provider: w.provider }), ' (', run(w.run_id), ')'];
    case 'canary':
      return [t('warning.canary', { provider: w.provider }), ' (', run(w.run_id), ')'];
    case 'provider_error':
      return [t('warning.provider_error', { provider: w.provider }), ' ', h('q', {}, w.error), ' (', run(w.run_id), ')'];
    case 'low_balance':
      return [
        link(
          `/pools/${encodeURIComponent(w.provider)}/${encodeURIComponent(w.pool)}`,
          {},
          t('warning.low_balance', { provider: w.provider, pool: w.pool, n: formatNumber(w.tokens) }),
        ),
      ];
    case 'run_failed':
      return [
        t('warning.run_failed', { status: t(`run.status.${w.status as 'failed'}`) }),
        ' ',
        w.error ? h('q', {}, w.error) : '',
        ' (',
        run(w.run_id),
        ')',
      ];
  }
}

function card(c: PoolCard, trend: Record<string, DayShare[]> | undefined): HTMLElement {
  const key = `${c.provider}/${c.pool}`;
  const href = `/pools/${encodeURIComponent(c.provider)}/${encodeURIComponent(c.pool)}`;
  const titleId = `card-${key.replace(/[^a-z0-9]/gi, '-')}`;
  return h(
    'article',
    { class: 'card', 'data-pool': key, 'aria-labelledby': titleId },
    h('h2', { id: titleId }, link(href, {}, c.provider, h('span', { class: 'sep' }, ' / '), c.pool)),
    h(
      'p',
      { class: 'kind' },
      c.provider_kind,
      c.canaries > 0 ? ` · ${t('card.canaries', { n: c.canaries })}` : '',
      c.provider_enabled ? '' : ` · ${t('card.disabled')}`,
    ),
    h('p', { class: 'share' }, h('strong', { 'data-share': key }, formatPercent(c.live_share)), ' ', t('card.live_share')),
    counts([
      [t('state.active'), c.states.active, 'active'],
      [t('state.suspect'), c.states.suspect, 'suspect'],
      [t('state.invalid'), c.states.invalid, 'invalid'],
      [t('state.disabled'), c.states.disabled, 'disabled'],
    ]),
    counts([
      [t('verdict.live'), c.verdicts.live, 'live'],
      [t('verdict.dead'), c.verdicts.dead, 'dead'],
      [t('verdict.exhausted'), c.verdicts.exhausted, 'exhausted'],
      [t('verdict.unknown'), c.verdicts.unknown, 'unknown'],
      [t('verdict.unchecked'), c.verdicts.unchecked, 'unchecked'],
    ]),
    shareChart(trend?.[key], t('card.trend_label', { pool: key })),
    h(
      'p',
      { class: 'muted' },
      t('card.tokens', { n: formatNumber(c.tokens) }),
      ' · ',
      t('card.last_checked', { when: formatTime(c.last_checked_at) }),
    ),
    h(
      'div',
      { class: 'actions' },
      checkButton({ provider: c.provider, pool: c.pool }, t('action.check_pool')),
      checkButton({ provider: c.provider }, t('action.check_provider')),
    ),
  );
}
