import { en, type MessageKey } from './messages-en.js';
import { zhCN } from './messages-zh-cn.js';

export type Language = 'en' | 'zh-CN';
export const LANGUAGES: ReadonlyArray<{ code: Language; name: string }> = [
  { code: 'en', name: 'English' },
  { code: 'zh-CN', name: '简体中文' },
];

const CATALOGS: Record<Language, Record<MessageKey, string>> = { en, 'zh-CN': zhCN };
const STORED = 'tschk.lang';

let current: Language = 'en';

/** The language asked for last in this browser, else the one the server picked from Accept-Language. */
export function initLanguage(): Language {
  let stored: string | null = null;
  try {
    stored = localStorage.getItem(STORED);
  } catch {
    // storage may be disabled; the server's pick stands
  }
  const fromPage = document.documentElement.lang;
  current = stored === 'en' || stored === 'zh-CN' ? stored : fromPage === 'zh-CN' ? 'zh-CN' : 'en';
  document.documentElement.lang = current;
  return current;
}

export function setLanguage(lang: Language): void {
  current = lang;
  document.documentElement.lang = lang;
  try {
    localStorage.setItem(STORED, lang);
  } catch {
    // not remembered, still switched
  }
}

export const language = (): Language => current;

/** A message with `{name}` placeholders filled in. */
export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  const text = CATALOGS[current][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

/** The plain explanation of a reason code (`http_502` and friends share one). */
/** Whether tschk explains this reason code (else it is shown as it was written: a breaker's words, say). */
export function knownReason(reason: string): boolean {
  return `reason.${reason}` in en || /^http_\d{3}$/.test(reason);
}

export function explainReason(reason: string | null | undefined): string {
  if (!reason) return '';
  const key = `reason.${reason}` as MessageKey;
  if (key in en) return t(key);
  const http = /^http_(\d{3})$/.exec(reason);
  if (http) return t('reason.http_other', { status: http[1]! });
  return t('reason.other');
}

/** A known error code's message in the current language, else the server's own (English) message. */
export function explainError(code: string, message: string): string {
  const key = `error.${code}` as MessageKey;
  return key in en ? t(key) : message;
}

const numberFormat = () => new Intl.NumberFormat(current);
export const formatNumber = (n: number): string => numberFormat().format(n);
export const formatPercent = (share: number | null): string =>
  share === null ? '—' : new Intl.NumberFormat(current, { style: 'percent', maximumFractionDigits: 1 }).format(share);

/** A time in the browser's own time zone. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Intl.DateTimeFormat(current, { dateStyle: 'medium', timeStyle: 'medium' }).format(new Date(iso));
}

export function formatDay(day: string): string {
  return new Intl.DateTimeFormat(current, { month: 'short', day: 'numeric', timeZone: 'UTC' }).format(new Date(`${day}T00:00:00Z`));
}

/** "in 12 minutes", "3 hours ago". */
export function formatRelative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.round((new Date(iso).getTime() - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(current, { numeric: 'auto' });
  const abs = Math.abs(s);
  if (abs < 60) return rtf.format(s, 'second');
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 86_400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86_400), 'day');
}

export function timeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** Why a token was archived, in words (`pruned`, `user_removed`, …). */
export function archiveReason(code: string): string {
  const key = `archive.reason.${code}` as MessageKey;
  return key in en ? t(key) : code;
}
