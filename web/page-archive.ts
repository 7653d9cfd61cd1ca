import { get, post, query } from './api.js';
import type { PageContext } from './app.js';
import { clear, h, link } from './dom.js';
import { archiveReason, formatNumber, formatTime, t } from './i18n.js';
import type { ArchiveEntry } from './types.js';
import { errorText, labelled, notice, reason } from './widgets.js';

export async function archivePage(ctx: PageContext): Promise<void> {
  const q = ctx.query.get('q') ?? '';
  const restored = ctx.query.get('restored') === 'true';
  const page = Math.max(1, Number(ctx.query.get('page') ?? 1) || 1);
  const go = (changes: Record<string, string | number | undefined>) => {
    history.replaceState(null, '', `/archive${query({ q, restored: restored ? 'true' : undefined, page, ...changes })}`);
    ctx.refresh();
  };
  const status = h('div', { 'aria-live': 'polite' });
  const search = h('input', { type: 'search', value: q, name: 'q', autocomplete: 'off' });
  const showRestored = h('input', { type: 'checkbox', checked: restored });
  ctx.root.append(
    h('h1', {}, t('archive.title')),
    h('p', {}, t('archive.intro')),
    h(
      'form',
      {
        class: 'filters',
        role: 'search',
        onsubmit: (e: Event) => {
          e.preventDefault();
          go({ q: search.value.trim(), restored: showRestored.checked ? 'true' : undefined, page: 1 });
        },
      },
      labelled(t('archive.search'), search),
      h('label', { class: 'inline' }, showRestored, ' ', t('archive.show_restored')),
      h('button', { type: 'submit' }, t('action.filter')),
    ),
    status,
  );
  let data: { total: number; size: number; entries: ArchiveEntry[] };
  try {
    data = await get(`/archive${query({ q, restored: restored ? 'true' : undefined, page, size: 50 })}`);
  } catch (err) {
    ctx.root.append(notice('error', errorText(err)));
    return;
  }
  if (data.entries.length === 0) {
    ctx.root.append(notice('info', t('archive.empty')));
    document.body.dataset.ready = 'archive';
    return;
  }
  const row = (a: ArchiveEntry) => {
    const button = h(
      'button',
      {
        type: 'button',
        disabled: a.restored_at !== null,
        'aria-label': t('archive.restore_label', { mask: a.mask }),
        onclick: async () => {
          button.disabled = true;
          try {
            const r = await post<{ restored: { provider: string; pool: string; into: string } }>(`/archive/${a.id}/restore`);
            clear(status, notice('ok', t('archive.restored', { pool: `${r.restored.provider}/${r.restored.pool}` })));
            setTimeout(ctx.refresh, 800);
          } catch (err) {
            clear(status, notice('error', errorText(err)));
            button.disabled = false;
          }
        },
      },
      a.restored_at ? t('archive.was_restored') : t('action.restore'),
    );
    return h(
      'tr',
      { 'data-archive': a.id },
      h('td', {}, a.token_id === null ? h('code', {}, a.mask) : link(`/tokens/${a.token_id}`, {}, h('code', {}, a.mask))),
      h('td', {}, h('code', {}, a.fingerprint)),
      h('td', {}, `${a.provider} / ${a.pool}`),
      h('td', {}, a.label ?? ''),
      h('td', {}, archiveReason(a.reason)),
      h('td', {}, reason(a.last_reason)),
      h('td', {}, formatTime(a.archived_at)),
      h('td', {}, formatTime(a.restored_at)),
      h('td', {}, button),
    );
  };
  const pages = Math.max(1, Math.ceil(data.total / data.size));
  ctx.root.append(
    h('p', {}, t('archive.count', { n: formatNumber(data.total) })),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, t('archive.title')),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...(['token', 'fingerprint', 'pool', 'label', 'why', 'last_reason', 'archived', 'restored', 'action'] as const).map((c) =>
              h('th', { scope: 'col' }, t(`archive.col.${c}`)),
            ),
          ),
        ),
        h('tbody', {}, ...data.entries.map(row)),
      ),
    ),
    h(
      'nav',
      { class: 'pager', 'aria-label': t('pager.label') },
      h('button', { type: 'button', class: 'secondary', disabled: page <= 1, onclick: () => go({ page: page - 1 }) }, t('pager.previous')),
      h('span', {}, t('pager.page', { page: formatNumber(page), pages: formatNumber(pages) })),
      h('button', { type: 'button', class: 'secondary', disabled: page >= pages, onclick: () => go({ page: page + 1 }) }, t('pager.next')),
    ),
  );
  document.body.dataset.ready = 'archive';
}
