import { get, post, query } from './api.js';
import type { PageContext } from './app.js';
import { clear, h, link } from './dom.js';
import { formatNumber, formatTime, t } from './i18n.js';
import { confirmDialog, importDialog } from './actions.js';
import type { MessageKey } from './messages-en.js';
import type { PoolPage, PoolRow } from './types.js';
import { errorText, labelled, latency, notice, reason, stateTag, strip, verdictTag } from './widgets.js';

const FILTERS = ['state', 'verdict', 'reason', 'q'] as const;

export async function poolPage(ctx: PageContext): Promise<void> {
  const { provider, pool } = ctx.params as { provider: string; pool: string };
  const q = ctx.query;
  const base = `/pools/${encodeURIComponent(provider)}/${encodeURIComponent(pool)}`;
  const filter = Object.fromEntries(FILTERS.map((f) => [f, q.get(f) ?? ''])) as Record<(typeof FILTERS)[number], string>;
  const sort = q.get('sort') ?? 'position';
  const dir = q.get('dir') === 'desc' ? 'desc' : 'asc';
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const go = (changes: Record<string, string | number | undefined>) => {
    const next = { ...filter, sort, dir, page, ...changes };
    history.replaceState(null, '', `${base}${query(next)}`);
    ctx.refresh();
  };

  const status = h('div', { 'aria-live': 'polite' });
  ctx.root.append(
    h('p', { class: 'crumbs' }, link('/', {}, t('nav.overview')), ' › ', `${provider} / ${pool}`),
    h(
      'div',
      { class: 'title-row' },
      h('h1', {}, t('pool.title', { pool: `${provider} / ${pool}` })),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', onclick: () => void checkPool(provider, pool, false, status, ctx) }, t('action.check_pool')),
        h(
          'button',
          { type: 'button', class: 'secondary', onclick: () => void checkPool(provider, pool, true, status, ctx) },
          t('action.check_pool_forced'),
        ),
        h(
          'button',
          { type: 'button', class: 'secondary', onclick: () => importDialog({ provider, pool }, ctx.refresh) },
          t('action.import'),
        ),
      ),
    ),
    status,
  );

  let data: PoolPage;
  try {
    data = await get<PoolPage>(`${base}/tokens${query({ ...filter, sort, dir, page, size: 50 })}`);
  } catch (err) {
    ctx.root.append(notice('error', errorText(err)));
    return;
  }

  const stateSelect = h(
    'select',
    { name: 'state' },
    h('option', { value: '' }, t('filter.any')),
    ...(['active', 'suspect', 'invalid', 'disabled'] as const).map((s) =>
      h('option', { value: s, selected: filter.state === s }, t(`state.${s}`)),
    ),
  );
  const verdictSelect = h(
    'select',
    { name: 'verdict' },
    h('option', { value: '' }, t('filter.any')),
    ...(['live', 'dead', 'exhausted', 'unknown', 'unchecked'] as const).map((v) =>
      h('option', { value: v, selected: filter.verdict === v }, t(`verdict.${v}`)),
    ),
  );
  const reasonSelect = h(
    'select',
    { name: 'reason' },
    h('option', { value: '' }, t('filter.any')),
    ...data.reasons.map((r) =>
      h('option', { value: r.reason, selected: filter.reason === r.reason }, `${r.reason} (${formatNumber(r.tokens)})`),
    ),
  );
  if (filter.reason && !data.reasons.some((r) => r.reason === filter.reason))
    reasonSelect.append(h('option', { value: filter.reason, selected: true }, filter.reason));
  const text = h('input', { type: 'search', name: 'q', value: filter.q, autocomplete: 'off' });
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e: Event) => {
        e.preventDefault();
        go({ state: stateSelect.value, verdict: verdictSelect.value, reason: reasonSelect.value, q: text.value.trim(), page: 1 });
      },
    },
    labelled(t('filter.state'), stateSelect),
    labelled(t('filter.verdict'), verdictSelect),
    labelled(t('filter.reason'), reasonSelect),
    labelled(t('filter.text'), text),
    h('button', { type: 'submit' }, t('action.filter')),
    h(
      'button',
      { type: 'button', class: 'secondary', onclick: () => go({ state: '', verdict: '', reason: '', q: '', page: 1 }) },
      t('action.clear_filter'),
    ),
  );
  for (const s of [stateSelect, verdictSelect, reasonSelect]) s.addEventListener('change', () => form.requestSubmit());

  const pages = Math.max(1, Math.ceil(data.total / data.size));
  const bulk = h(
    'div',
    { class: 'bulk' },
    h('span', { 'data-total': data.total }, t('pool.matching', { n: formatNumber(data.total) })),
    h(
      'button',
      { type: 'button', disabled: data.total === 0, onclick: () => void bulkAction('recheck', base, filter, status, ctx) },
      t('action.bulk_recheck'),
    ),
    h(
      'button',
      { type: 'button', class: 'danger', disabled: data.total === 0, onclick: () => void bulkAction('remove', base, filter, status, ctx) },
      t('action.bulk_remove'),
    ),
  );

  const header = (key: string, label: MessageKey) => {
    const active = sort === key;
    const nextDir = active && dir === 'asc' ? 'desc' : 'asc';
    return h(
      'th',
      { scope: 'col', 'aria-sort': active ? (dir === 'asc' ? 'ascending' : 'descending') : null },
      h(
        'button',
        { type: 'button', class: 'sort', onclick: () => go({ sort: key, dir: nextDir, page: 1 }) },
        t(label),
        active ? (dir === 'asc' ? ' ▲' : ' ▼') : '',
      ),
    );
  };
  const plain = (label: MessageKey) => h('th', { scope: 'col' }, t(label));
  const table = h(
    'table',
    { class: 'tokens' },
    h('caption', { class: 'visually-hidden' }, t('pool.caption', { pool: `${provider}/${pool}` })),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        plain('pool.col.token'),
        header('fingerprint', 'pool.col.fingerprint'),
        header('label', 'pool.col.label'),
        header('state', 'pool.col.state'),
        header('last_verdict', 'pool.col.verdict'),
        header('last_reason', 'pool.col.reason'),
        plain('pool.col.http'),
        plain('pool.col.latency'),
        header('last_checked_at', 'pool.col.checked'),
        header('last_live_at', 'pool.col.live'),
        plain('pool.col.balance'),
        plain('pool.col.recent'),
      ),
    ),
    h('tbody', {}, ...data.tokens.map(row)),
  );
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': t('pager.label') },
    h('button', { type: 'button', class: 'secondary', disabled: page <= 1, onclick: () => go({ page: page - 1 }) }, t('pager.previous')),
    h('span', {}, t('pager.page', { page: formatNumber(page), pages: formatNumber(pages) })),
    h('button', { type: 'button', class: 'secondary', disabled: page >= pages, onclick: () => go({ page: page + 1 }) }, t('pager.next')),
  );
  ctx.root.append(form, bulk, data.tokens.length === 0 ? notice('info', t('pool.empty')) : h('div', { class: 'table-wrap' }, table), pager);
  document.body.dataset.ready = 'pool';
}

function row(tok: PoolRow): HTMLElement {
  return h(
    'tr',
    { 'data-token': tok.id },
    h(
      'td',
      {},
      link(`/tokens/${tok.id}`, {}, h('code', {}, tok.mask)),
      tok.expect ? h('span', { class: 'tag canary', title: t('token.canary_hint') }, t('token.canary')) : '',
    ),
    h('td', {}, h('code', {}, tok.fingerprint)),
    h('td', {}, tok.label ?? ''),
    h('td', {}, stateTag(tok.state)),
    h('td', {}, verdictTag(tok.last_verdict)),
    h('td', {}, reason(tok.last_reason)),
    h('td', {}, tok.last_http_status === null ? '—' : String(tok.last_http_status)),
    h('td', {}, latency(tok.last_latency_ms)),
    h('td', {}, formatTime(tok.last_checked_at)),
    h('td', {}, formatTime(tok.last_live_at)),
    h('td', {}, tok.balance === null ? '—' : `${tok.balance} ${tok.currency ?? ''}`.trim()),
    h('td', {}, strip(tok.checks)),
  );
}

async function checkPool(provider: string, pool: string, force: boolean, status: HTMLElement, ctx: PageContext): Promise<void> {
  try {
    const r = await post<{ run_id: number }>('/runs', { provider, pool, force });
    clear(status, notice('ok', t('run.started', { id: r.run_id })), link(`/runs/${r.run_id}`, {}, t('run.label', { id: r.run_id })));
    watchRun(r.run_id, ctx);
  } catch (err) {
    clear(status, notice('error', errorText(err)));
  }
}

/** Every token matching the filter, not only this page: counted first, then confirmed, then done up to the highest id counted. */
async function bulkAction(
  action: 'recheck' | 'remove',
  base: string,
  filter: Record<string, string>,
  status: HTMLElement,
  ctx: PageContext,
): Promise<void> {
  let counted: { count: number; max_id: number | null };
  try {
    counted = await get(`${base}/match${query(filter)}`);
  } catch (err) {
    clear(status, notice('error', errorText(err)));
    return;
  }
  if (counted.count === 0 || counted.max_id === null) {
    clear(status, notice('info', t('pool.empty')));
    return;
  }
  const n = formatNumber(counted.count);
  confirmDialog(
    t(action === 'remove' ? 'bulk.remove_title' : 'bulk.recheck_title'),
    t(action === 'remove' ? 'bulk.remove_text' : 'bulk.recheck_text', { n }),
    t(action === 'remove' ? 'action.bulk_remove_confirm' : 'action.bulk_recheck_confirm', { n }),
    async () => {
      const r = await post<{ run_id?: number; removed?: number; kept?: number }>(`${base}/bulk`, {
        action,
        filter,
        max_id: counted.max_id,
        expected: counted.count,
      });
      if (action === 'remove') {
        ctx.refresh();
        return t('bulk.removed', { n: formatNumber(r.removed ?? 0), kept: formatNumber(r.kept ?? 0) });
      }
      clear(
        status,
        notice('ok', t('bulk.rechecking', { n, id: r.run_id ?? 0 })),
        link(`/runs/${r.run_id}`, {}, t('run.label', { id: r.run_id ?? 0 })),
      );
      watchRun(r.run_id!, ctx);
      return t('bulk.rechecking', { n, id: r.run_id ?? 0 });
    },
  );
}

/** Redraws the table once the run is done, so the new verdicts show. */
function watchRun(id: number, ctx: PageContext): void {
  let alive = true;
  ctx.onLeave(() => (alive = false));
  const tick = async () => {
    if (!alive) return;
    try {
      const r = await get<{ run: { status: string } }>(`/runs/${id}`);
      if (r.run.status !== 'running') {
        document.querySelector('dialog')?.close();
        ctx.refresh();
        return;
      }
    } catch {
      // try again
    }
    setTimeout(tick, 500);
  };
  setTimeout(tick, 300);
}
