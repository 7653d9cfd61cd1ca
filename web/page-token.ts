import { del, get, post } from './api.js';
import type { PageContext } from './app.js';
import { clear, h, link } from './dom.js';
import { archiveReason, explainReason, formatDay, formatNumber, formatTime, knownReason, t } from './i18n.js';
import { confirmDialog } from './actions.js';
import type { MessageKey } from './messages-en.js';
import type { TokenPage } from './types.js';
import { errorText, latency, notice, reason, stateTag, verdictTag } from './widgets.js';

export async function tokenPage(ctx: PageContext): Promise<void> {
  const id = Number(ctx.params.id);
  const status = h('div', { 'aria-live': 'polite' });
  let data: TokenPage;
  try {
    data = await get<TokenPage>(`/tokens/${id}`);
  } catch (err) {
    ctx.root.append(notice('error', errorText(err)));
    return;
  }
  const tok = data.token;
  const arch = data.archived;
  const provider = tok?.provider ?? arch?.provider ?? '';
  const pool = tok?.pool ?? arch?.pool ?? '';
  const poolHref = `/pools/${encodeURIComponent(provider)}/${encodeURIComponent(pool)}`;
  const facts: Array<[MessageKey, Node | string]> = tok
    ? [
        ['token.fingerprint', h('code', {}, tok.fingerprint)],
        ['token.state', stateTag(tok.state)],
        ['token.last_verdict', verdictTag(tok.last_verdict)],
        ['token.last_reason', reason(tok.last_reason)],
        ['token.consecutive_dead', formatNumber(tok.consecutive_dead)],
        ['token.last_checked', formatTime(tok.last_checked_at)],
        ['token.last_live', formatTime(tok.last_live_at)],
        ['token.invalid_since', formatTime(tok.invalid_since)],
        ['token.balance', tok.balance === null ? '—' : `${tok.balance} ${tok.currency ?? ''}`.trim()],
        ['token.label', tok.label ?? '—'],
        ['token.source', tok.source],
        ['token.added', formatTime(tok.created_at)],
      ]
    : [
        ['token.fingerprint', h('code', {}, arch!.fingerprint)],
        ['token.last_verdict', arch!.last_verdict ?? '—'],
        ['token.last_reason', reason(arch!.last_reason)],
        ['token.label', arch!.label ?? '—'],
      ];
  ctx.root.append(
    h(
      'p',
      { class: 'crumbs' },
      link('/', {}, t('nav.overview')),
      ' › ',
      link(poolHref, {}, `${provider} / ${pool}`),
      ' › ',
      tok?.mask ?? arch!.mask,
    ),
    h(
      'h1',
      {},
      t('token.title'),
      ' ',
      h('code', {}, tok?.mask ?? arch!.mask),
      tok?.expect ? h('span', { class: 'tag canary', title: t('token.canary_hint') }, t('token.canary')) : '',
    ),
    status,
  );
  if (!tok && arch) {
    const restore = h(
      'button',
      {
        type: 'button',
        disabled: arch.restored_at !== null,
        onclick: async () => {
          try {
            const r = await post<{ restored: { provider: string; pool: string } }>(`/archive/${arch.id}/restore`);
            clear(
              status,
              notice('ok', t('archive.restored', { pool: `${r.restored.provider}/${r.restored.pool}` })),
              link(poolHref, {}, t('archive.to_pool')),
            );
          } catch (err) {
            clear(status, notice('error', errorText(err)));
          }
        },
      },
      t('action.restore'),
    );
    ctx.root.append(
      h(
        'div',
        { class: 'notice info', role: 'status' },
        t(arch.restored_at ? 'token.archived_restored' : 'token.archived', {
          when: formatTime(arch.archived_at),
          reason: archiveReason(arch.reason),
          restored: formatTime(arch.restored_at),
        }),
        ' ',
        restore,
      ),
    );
  }
  if (tok) {
    ctx.root.append(
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                const r = await post<{ run_id: number }>('/runs', { provider, pool, force: true });
                clear(
                  status,
                  notice('ok', t('run.started', { id: r.run_id })),
                  link(`/runs/${r.run_id}`, {}, t('run.label', { id: r.run_id })),
                );
              } catch (err) {
                clear(status, notice('error', errorText(err)));
              }
            },
          },
          t('action.check_pool_forced'),
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: () =>
              confirmDialog(t('token.remove_title'), t('token.remove_text', { mask: tok.mask }), t('action.remove'), async () => {
                await del(`/tokens/${tok.id}`);
                setTimeout(ctx.refresh, 600);
                return t('token.removed');
              }),
          },
          t('action.remove'),
        ),
      ),
    );
  }
  ctx.root.append(h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, t(k)), h('dd', {}, v)])));

  ctx.root.append(
    h('h2', {}, t('token.events')),
    data.events.length === 0
      ? h('p', { class: 'muted' }, t('token.no_events'))
      : h(
          'ol',
          { class: 'events' },
          ...data.events.map((e) =>
            h(
              'li',
              { class: `event ${e.kind}`, 'data-event': e.kind },
              h('strong', {}, t(`event.${e.kind}` as MessageKey)),
              ' · ',
              formatTime(e.at),
              e.run_id !== null ? h('span', {}, ' · ', link(`/runs/${e.run_id}`, {}, t('run.label', { id: e.run_id }))) : '',
              e.actor && e.actor !== 'run' ? ` · ${t(`event.by_${e.actor}`)}` : '',
              e.reason
                ? h('span', { class: 'muted' }, ` · ${knownReason(e.reason) ? `${e.reason}: ${explainReason(e.reason)}` : e.reason}`)
                : '',
            ),
          ),
        ),
    h('p', { class: 'muted' }, t('token.events_note')),
  );

  ctx.root.append(
    h('h2', {}, t('token.days')),
    data.days.length === 0
      ? h('p', { class: 'muted' }, t('token.no_checks'))
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
                ...(['day', 'checks', 'live', 'dead', 'exhausted', 'unknown', 'latency', 'reason', 'balance'] as const).map((c) =>
                  h('th', { scope: 'col' }, t(`days.${c}`)),
                ),
              ),
            ),
            h(
              'tbody',
              {},
              ...data.days.map((d) =>
                h(
                  'tr',
                  {},
                  h('td', {}, formatDay(d.day)),
                  h('td', {}, formatNumber(d.checks)),
                  h('td', {}, formatNumber(d.live)),
                  h('td', {}, formatNumber(d.dead)),
                  h('td', {}, formatNumber(d.exhausted)),
                  h('td', {}, formatNumber(d.unknown)),
                  h(
                    'td',
                    {},
                    d.latency_avg === null
                      ? '—'
                      : t('days.latency_range', {
                          min: formatNumber(d.latency_min ?? 0),
                          avg: formatNumber(d.latency_avg),
                          max: formatNumber(d.latency_max ?? 0),
                        }),
                  ),
                  h('td', {}, d.last_reason ?? '—'),
                  h('td', {}, d.last_balance ?? '—'),
                ),
              ),
            ),
          ),
        ),
  );

  ctx.root.append(
    h('h2', {}, t('token.checks')),
    data.checks.length === 0
      ? h('p', { class: 'muted' }, t('token.no_checks'))
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'checks' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ...(['time', 'verdict', 'reason', 'http', 'latency', 'balance', 'evidence', 'run'] as const).map((c) =>
                  h('th', { scope: 'col' }, t(`checks.${c}`)),
                ),
              ),
            ),
            h(
              'tbody',
              {},
              ...data.checks.map((c) =>
                h(
                  'tr',
                  {},
                  h('td', {}, formatTime(c.checked_at)),
                  h('td', {}, verdictTag(c.verdict)),
                  h('td', {}, reason(c.reason)),
                  h('td', {}, c.http_status === null ? '—' : String(c.http_status)),
                  h('td', {}, latency(c.latency_ms)),
                  h('td', {}, c.balance === null ? '—' : `${c.balance} ${c.currency ?? ''}`.trim()),
                  h('td', { class: 'evidence' }, c.detail ?? '—'),
                  h('td', {}, c.run_id === null ? '—' : link(`/runs/${c.run_id}`, {}, `#${c.run_id}`)),
                ),
              ),
            ),
          ),
        ),
  );
  document.body.dataset.ready = 'token';
}
