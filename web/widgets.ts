import { ApiError } from './api.js';
import { h, svg } from './dom.js';
import { explainReason, formatDay, formatNumber, formatPercent, formatTime, t } from './i18n.js';
import type { MessageKey } from './messages-en.js';
import type { CheckBrief, DayShare, State, Verdict } from './types.js';

export function verdictTag(v: Verdict | null): HTMLElement {
  const key = v ?? 'unchecked';
  return h('span', { class: `tag verdict-${key}` }, t(`verdict.${key}` as MessageKey));
}

export function stateTag(s: State): HTMLElement {
  return h('span', { class: `tag state-${s}` }, t(`state.${s}` as MessageKey));
}

/** Coloured as New-API does it: up to 1 s green, 3 s yellow, 5 s orange, beyond red; the number says it too. */
export function latencyClass(ms: number): string {
  return ms <= 1000 ? 'fast' : ms <= 3000 ? 'fair' : ms <= 5000 ? 'slow' : 'very-slow';
}

export function latency(ms: number | null): HTMLElement | string {
  if (ms === null) return '—';
  return h('span', { class: `latency ${latencyClass(ms)}` }, t('unit.ms', { n: formatNumber(ms) }));
}

export function reason(code: string | null): HTMLElement | string {
  if (!code) return '—';
  return h('span', { class: 'reason' }, h('code', {}, code), h('small', {}, explainReason(code)));
}

/** The last checks of a token as a strip of coloured beats, oldest on the left, told in words to screen readers. */
export function strip(checks: readonly CheckBrief[]): HTMLElement {
  const counts: Record<string, number> = {};
  for (const c of checks) counts[c.verdict] = (counts[c.verdict] ?? 0) + 1;
  const summary =
    checks.length === 0
      ? t('strip.none')
      : t('strip.summary', {
          n: checks.length,
          detail: (['live', 'dead', 'exhausted', 'unknown'] as const)
            .filter((v) => counts[v])
            .map((v) => `${counts[v]} ${t(`verdict.${v}` as MessageKey)}`)
            .join(', '),
        });
  return h(
    'span',
    { class: 'strip', role: 'img', 'aria-label': summary },
    ...[...checks].reverse().map((c) =>
      h('span', {
        class: `beat verdict-${c.verdict}`,
        title: `${t(`verdict.${c.verdict}` as MessageKey)} · ${c.reason} · ${formatTime(c.checked_at)}`,
      }),
    ),
  );
}

/** A 30-day line of the live share, drawn in SVG; the figure is described in words as well. */
export function shareChart(days: readonly DayShare[] | undefined, label: string): HTMLElement {
  const width = 300;
  const height = 60;
  const series = days ?? [];
  const known = series.filter((d) => d.share !== null);
  const description =
    known.length === 0
      ? t('chart.empty')
      : t('chart.summary', {
          days: series.length,
          first: formatPercent(known[0]!.share),
          last: formatPercent(known[known.length - 1]!.share),
          min: formatPercent(Math.min(...known.map((d) => d.share!))),
        });
  const step = series.length > 1 ? width / (series.length - 1) : width;
  const y = (share: number) => (height - 4 - share * (height - 8)).toFixed(1);
  const segments: string[] = [];
  let pen = false;
  series.forEach((d, i) => {
    if (d.share === null) {
      pen = false;
      return;
    }
    segments.push(`${pen ? 'L' : 'M'}${(i * step).toFixed(1)} ${y(d.share)}`);
    pen = true;
  });
  const chart = svg(
    'svg',
    {
      viewBox: `0 0 ${width} ${height}`,
      class: 'chart',
      role: 'img',
      'aria-label': `${label}: ${description}`,
      preserveAspectRatio: 'none',
    },
    svg('line', { x1: 0, x2: width, y1: y(1), y2: y(1), class: 'grid' }),
    svg('line', { x1: 0, x2: width, y1: y(0.5), y2: y(0.5), class: 'grid' }),
    svg('line', { x1: 0, x2: width, y1: y(0), y2: y(0), class: 'grid' }),
    segments.length > 0 ? svg('path', { d: segments.join(' '), class: 'line' }) : null,
    ...series.map((d, i) =>
      d.share === null
        ? null
        : svg(
            'circle',
            { cx: (i * step).toFixed(1), cy: y(d.share), r: 2, class: 'dot' },
            svg('title', {}, `${formatDay(d.day)}: ${formatPercent(d.share)} (${formatNumber(d.checks)})`),
          ),
    ),
  );
  const first = series[0];
  const last = series[series.length - 1];
  return h(
    'figure',
    { class: 'trend' },
    chart as unknown as HTMLElement,
    h('figcaption', {}, first && last ? `${formatDay(first.day)} – ${formatDay(last.day)}` : label),
  );
}

/** A message for everyone, screen readers included. */
export function notice(kind: 'ok' | 'error' | 'info', text: string): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

export function errorText(err: unknown): string {
  return err instanceof ApiError ? err.shown : err instanceof Error ? err.message : String(err);
}

/** A modal dialog (the browser keeps the focus inside and closes it on Escape). */
export function dialog(title: string, body: Array<Node | string>, actions: HTMLElement[]): HTMLDialogElement {
  const id = `d${Math.random().toString(36).slice(2, 8)}`;
  const d: HTMLDialogElement = h(
    'dialog',
    { 'aria-labelledby': id },
    h('h2', { id }, title),
    ...body,
    h(
      'div',
      { class: 'actions' },
      ...actions,
      h('button', { type: 'button', class: 'secondary', onclick: () => d.close() }, t('action.cancel')),
    ),
  );
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

export function labelled(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f${Math.random().toString(36).slice(2, 8)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null);
}

export function counts(items: Array<[string, number, string]>): HTMLElement {
  return h(
    'ul',
    { class: 'counts' },
    ...items.map(([label, n, cls]) => h('li', { class: cls, 'data-count': cls }, h('strong', {}, formatNumber(n)), ' ', label)),
  );
}

export function progress(run: { progress?: { checked: number; total: number }; id: number }): HTMLElement {
  const p = run.progress ?? { checked: 0, total: 0 };
  const text = t('run.progress', { id: run.id, checked: formatNumber(p.checked), total: formatNumber(p.total) });
  return h(
    'div',
    { class: 'progress', role: 'status', 'data-run': run.id },
    h('span', {}, text),
    h('progress', { max: Math.max(1, p.total), value: p.checked, 'aria-label': text }),
  );
}
