import { createHmac } from 'node:crypto';
import type { PruneMode, WebhookFormat } from '../config.js';
import { parseJson } from '../checkers/http.js';
import type { TokenRef } from '../engine/types.js';
import { renderDigest, type Digest, type LowBalanceRef } from './digest.js';

export interface OutgoingRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface WebhookSettings {
  format: WebhookFormat;
  /** TSCHK_WEBHOOK_SECRET: signs `json` bodies, and DingTalk/Feishu robots that ask for a signature. */
  secret: string | undefined;
  telegramChatId: string | undefined;
  pruneMode: PruneMode;
}

export const SIGNATURE_HEADER = 'X-Tschk-Signature';

/**
 * WeCom markdown content stops at 4096 bytes, Telegram text at 4096 characters; the other chats
 * take more, but a digest longer than a screen is not read anyway.
 */
const CHAT_MAX_BYTES = 4000;

const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8' };

/** `sha256=<hex HMAC-SHA256 of the exact body>`: a receiver recomputes it with the shared secret. */
export function signBody(body: string, secret: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body, 'utf8').digest('hex');
}

/**
 * DingTalk custom robot "加签": HMAC-SHA256 keyed by the secret over `timestamp + "\n" + secret`,
 * base64, sent as the `timestamp` (ms) and `sign` query parameters.
 * https://help.dingtalk.io/open/dingstart/customize-robot-security-settings
 */
export function dingtalkSign(secret: string, timestampMs: number): string {
  return createHmac('sha256', secret).update(`${timestampMs}\n${secret}`, 'utf8').digest('base64');
}

/**
 * Feishu/Lark custom bot signature check: HMAC-SHA256 keyed by `timestamp + "\n" + secret` over an
 * empty message, base64; `timestamp` (seconds, a string) and `sign` go in the body.
 * https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
 */
export function feishuSign(secret: string, timestampS: number): string {
  return createHmac('sha256', `${timestampS}\n${secret}`).update('').digest('base64');
}

const ref = (t: TokenRef) => ({ id: t.id, pool: t.pool, mask: t.mask, fingerprint: t.fingerprint });
const balanceRef = (t: LowBalanceRef) => ({ ...ref(t), balance: t.balance, currency: t.currency });

/** The `json` format's document: stable field names, masks and fingerprints only. */
function jsonPayload(d: Digest, pruneMode: PruneMode) {
  return {
    type: 'tschk.run',
    ...(d.test ? { test: true } : {}),
    run: {
      id: d.runId,
      scope: d.scope,
      trigger: d.trigger,
      status: d.status,
      startedAt: d.startedAt,
      finishedAt: d.finishedAt,
      durationMs: d.durationMs,
      ...d.counts,
      ...(d.error ? { error: d.error } : {}),
    },
    providers: d.providers.map((p) => ({
      provider: p.provider,
      ...p.counts,
      unreachable: p.unreachable,
      unreliable: p.unreliable,
      ...(p.error ? { error: p.error } : {}),
      ...(p.heldReason ? { heldReason: p.heldReason } : {}),
      becameSuspect: p.becameSuspect.map(ref),
      confirmedDead: p.confirmedDead.map(ref),
      recovered: p.recovered.map(ref),
      prunedTokens: p.prunedTokens.map(ref),
      lowBalance: p.lowBalance.map(balanceRef),
    })),
    text: renderDigest(d, { style: 'plain', pruneMode }).text,
  };
}

/** Telegram takes the bot API URL, with or without the method: `https://api.telegram.org/bot<TOKEN>[/sendMessage]`. */
export function telegramSendUrl(url: string): string {
  const u = new URL(url);
  if (!/\/sendMessage\/?$/i.test(u.pathname)) u.pathname = u.pathname.replace(/\/?$/, '/sendMessage');
  return u.href;
}

/** Pure: the HTTP request that delivers the digest to one webhook URL in the configured format. */
export function webhookRequest(url: string, d: Digest, s: WebhookSettings, now: Date): OutgoingRequest {
  const chat = (style: 'markdown' | 'plain') => renderDigest(d, { style, pruneMode: s.pruneMode, maxBytes: CHAT_MAX_BYTES });
  switch (s.format) {
    case 'json': {
      const body = JSON.stringify(jsonPayload(d, s.pruneMode));
      const headers: Record<string, string> = { ...JSON_HEADERS };
      if (s.secret) headers[SIGNATURE_HEADER] = signBody(body, s.secret);
      return { method: 'POST', url, headers, body };
    }
    case 'wecom': {
      // Group robot: https://developer.work.weixin.qq.com/document/path/91770 (markdown ≤ 4096 bytes).
      const { text } = chat('markdown');
      return { method: 'POST', url, headers: JSON_HEADERS, body: JSON.stringify({ msgtype: 'markdown', markdown: { content: text } }) };
    }
    case 'dingtalk': {
      // Custom robot markdown message: https://open.dingtalk.com/document/development/robot-message-type
      const { title, text } = chat('markdown');
      let target = url;
      if (s.secret) {
        const u = new URL(url);
        const ts = now.getTime();
        u.searchParams.set('timestamp', String(ts));
        u.searchParams.set('sign', dingtalkSign(s.secret, ts));
        target = u.href;
      }
      return {
        method: 'POST',
        url: target,
        headers: JSON_HEADERS,
        body: JSON.stringify({ msgtype: 'markdown', markdown: { title, text } }),
      };
    }
    case 'feishu': {
      const { text } = chat('plain');
      const ts = Math.floor(now.getTime() / 1000);
      const signed = s.secret ? { timestamp: String(ts), sign: feishuSign(s.secret, ts) } : {};
      return { method: 'POST', url, headers: JSON_HEADERS, body: JSON.stringify({ ...signed, msg_type: 'text', content: { text } }) };
    }
    case 'telegram': {
      // https://core.telegram.org/bots/api#sendmessage: text of 1-4096 characters; plain text needs no escaping.
      const { text } = chat('plain');
      return {
        method: 'POST',
        url: telegramSendUrl(url),
        headers: JSON_HEADERS,
        body: JSON.stringify({ chat_id: s.telegramChatId, text }),
      };
    }
  }
}

export type Answer = { ok: true } | { ok: false; retry: boolean; reason: string };

/** A field of a receiver's JSON answer as text: a string as it is, anything else as JSON. */
function fieldText(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? '');
}

/**
 * Pure: whether the receiver took the message. Chat APIs refuse with HTTP 200 and an error code in
 * the body (WeCom/DingTalk `errcode`, Feishu `code`, Telegram and Uptime-Kuma `ok: false`); such a
 * refusal is final. Timeouts (408), 429 and 5xx are worth another try.
 */
export function judgeAnswer(kind: WebhookFormat | 'uptime-kuma', status: number, body: string): Answer {
  const json = parseJson(body);
  const o = json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : {};
  let refusal: string | undefined;
  switch (kind) {
    case 'wecom':
    case 'dingtalk':
      if (o.errcode !== undefined && o.errcode !== 0) refusal = `errcode ${fieldText(o.errcode)}: ${fieldText(o.errmsg ?? '')}`;
      break;
    case 'feishu':
      if (o.code !== undefined && o.code !== 0) refusal = `code ${fieldText(o.code)}: ${fieldText(o.msg ?? '')}`;
      break;
    case 'telegram':
      if (o.ok === false) refusal = `error ${fieldText(o.error_code ?? '')}: ${fieldText(o.description ?? '')}`;
      break;
    case 'uptime-kuma':
      if (o.ok === false) refusal = fieldText(o.msg ?? 'refused');
      break;
    case 'json':
      break;
  }
  const reason = (refusal ?? `http_${status}`).slice(0, 200);
  if (status === 408 || status === 429 || status >= 500)
    return { ok: false, retry: true, reason: refusal ? `http_${status} ${reason}` : reason };
  if (status < 200 || status >= 300) return { ok: false, retry: false, reason: refusal ? `http_${status} ${reason}` : reason };
  return refusal ? { ok: false, retry: false, reason } : { ok: true };
}
