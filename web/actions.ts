import { get, post } from './api.js';
import { clear, h, link } from './dom.js';
import { formatNumber, t } from './i18n.js';
import type { Held } from './types.js';
import { dialog, errorText, labelled, notice } from './widgets.js';

/** Import from a textarea or a file: the server applies the rules of `tschk tokens import`. */
export function importDialog(scope: { provider: string; pool: string } | undefined, done: () => void): void {
  const provider = h('input', { name: 'provider', required: true, value: scope?.provider ?? '', autocomplete: 'off' });
  const pool = h('input', { name: 'pool', value: scope?.pool ?? 'default', autocomplete: 'off' });
  const text = h('textarea', { name: 'tokens', rows: 8, spellcheck: 'false', autocomplete: 'off' });
  const file = h('input', { type: 'file', accept: '.txt,.json,text/plain' });
  const label = h('input', { name: 'label', autocomplete: 'off' });
  const expect = h(
    'select',
    { name: 'expect' },
    h('option', { value: '' }, t('import.expect_none')),
    h('option', { value: 'live' }, t('import.expect_live')),
    h('option', { value: 'dead' }, t('import.expect_dead')),
  );
  const message = h('div', { 'aria-live': 'polite' });
  file.addEventListener('change', () => {
    const f = file.files?.[0];
    if (f)
      f.text().then(
        (s) => (text.value = s),
        (err: unknown) => clear(message, notice('error', errorText(err))),
      );
  });
  const submit = h(
    'button',
    {
      type: 'button',
      onclick: async () => {
        submit.disabled = true;
        try {
          const r = await post<{ added: number; duplicates: number; provider: string; pool: string }>('/tokens', {
            provider: provider.value.trim(),
            pool: pool.value.trim() || 'default',
            text: text.value,
            label: label.value.trim() || undefined,
            expect: expect.value || undefined,
          });
          text.value = '';
          clear(
            message,
            notice(
              'ok',
              t('import.done', { added: formatNumber(r.added), duplicates: formatNumber(r.duplicates), pool: `${r.provider}/${r.pool}` }),
            ),
          );
          done();
        } catch (err) {
          clear(message, notice('error', errorText(err)));
        } finally {
          submit.disabled = false;
        }
      },
    },
    t('action.import'),
  );
  dialog(
    t('import.title'),
    [
      labelled(t('import.provider'), provider),
      labelled(t('import.pool'), pool),
      labelled(t('import.tokens'), text, t('import.tokens_hint')),
      labelled(t('import.file'), file),
      labelled(t('import.label'), label),
      labelled(t('import.expect'), expect, t('import.expect_hint')),
      message,
    ],
    [submit],
  );
}

/** After a hold: which tokens would go, then a forced prune (`tschk check --force-prune`). */
export async function pruneDialog(provider: string): Promise<void> {
  let held: Held;
  try {
    held = await get<Held>(`/providers/${encodeURIComponent(provider)}/held`);
  } catch (err) {
    dialog(t('prune.title', { provider }), [notice('error', errorText(err))], []);
    return;
  }
  const message = h('div', { 'aria-live': 'polite' });
  const go = h(
    'button',
    {
      type: 'button',
      class: 'danger',
      disabled: held.held_reason === null,
      onclick: async () => {
        go.disabled = true;
        try {
          const r = await post<{ run_id: number }>(`/providers/${encodeURIComponent(provider)}/prune`, { run_id: held.run_id });
          clear(
            message,
            notice('ok', t('prune.started', { id: r.run_id })),
            link(`/runs/${r.run_id}`, {}, t('run.label', { id: r.run_id })),
          );
        } catch (err) {
          clear(message, notice('error', errorText(err)));
          go.disabled = false;
        }
      },
    },
    t('action.prune_now'),
  );
  const list = h(
    'ul',
    { class: 'token-list' },
    ...held.tokens.map((tok) =>
      h(
        'li',
        {},
        link(`/tokens/${tok.id}`, {}, tok.mask),
        ' ',
        h('code', {}, tok.fingerprint),
        ` ${tok.pool}`,
        tok.label ? ` · ${tok.label}` : '',
      ),
    ),
  );
  dialog(
    t('prune.title', { provider }),
    [
      held.held_reason ? h('p', {}, t('prune.reason'), ' ', h('q', {}, held.held_reason)) : notice('info', t('prune.nothing')),
      h('p', {}, t('prune.count', { n: formatNumber(held.count) })),
      list,
      held.count > held.tokens.length
        ? h('p', { class: 'muted' }, t('prune.more', { n: formatNumber(held.count - held.tokens.length) }))
        : '',
      h('p', { class: 'muted' }, t('prune.explain')),
      message,
    ],
    [go],
  );
}

/** Asks before acting, saying exactly what will happen. */
export function confirmDialog(title: string, text: string, button: string, act: () => Promise<string>): void {
  const message = h('div', { 'aria-live': 'polite' });
  const go = h(
    'button',
    {
      type: 'button',
      class: 'danger',
      onclick: async () => {
        go.disabled = true;
        try {
          const done = await act();
          clear(message, notice('ok', done));
        } catch (err) {
          clear(message, notice('error', errorText(err)));
          go.disabled = false;
        }
      },
    },
    button,
  );
  dialog(title, [h('p', {}, text), message], [go]);
}
