import type { Kysely } from 'kysely';
import type { Config, OneApiFlavor } from '../../config.js';
import { openTarget } from '../../db/connect.js';
import type { DialectProfile } from '../../db/dialect.js';
import { num } from '../../db/dialect.js';
import { dbErrorCode, describeDbError } from '../../db/errors.js';
import { redactDatabaseUrl } from '../../db/url.js';
import type { Logger } from '../../logger.js';
import { CHANNEL_ENABLED, type Channel } from './channels.js';

/** The columns tschk uses of One-API's tables (GORM names, docs/one-api.md). */
interface OneApiTables {
  channels: {
    id: number;
    key: string;
    status: number;
    name: string | null;
    base_url: string | null;
    test_time: number | null;
    response_time: number | null;
    other_info: string | null;
  };
  abilities: {
    group: string;
    model: string;
    channel_id: number;
    enabled: boolean | number;
  };
}

export interface OneApiDb {
  kysely: Kysely<OneApiTables>;
  dialect: DialectProfile;
  flavor: OneApiFlavor;
  /** The URL without its password: names this database in tschk's own tables. */
  name: string;
  close(): Promise<void>;
}

/** `onError`: a pooled connection failed (One-API's server restarted); the pool opens another. */
export function openOneApi(config: NonNullable<Config['oneApi']>, onError?: (err: unknown) => void): OneApiDb {
  const { kysely, dialect, close } = openTarget<OneApiTables>(config.database, { poolSize: 2, foreign: true, onError });
  return { kysely, dialect, flavor: config.flavor, name: redactDatabaseUrl(config.database.url).slice(0, 255), close };
}

/**
 * One-API's database for the life of the daemon: opened at its first use (not at start-up: a
 * One-API that is not there yet must not stop tschk), then kept until `close`. An open that
 * fails is thrown to that use and tried again at the next.
 */
export class OneApiConnection {
  private db: OneApiDb | undefined;

  constructor(
    private readonly config: NonNullable<Config['oneApi']>,
    private readonly logger: Logger,
  ) {}

  get(): OneApiDb {
    this.db ??= openOneApi(this.config, (err) =>
      this.logger.warn(
        { area: 'oneapi', code: dbErrorCode(err), err: describeDbError(err) },
        'One-API database connection lost; the next query opens a new one',
      ),
    );
    return this.db;
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    await db?.close();
  }
}

function toChannel(r: {
  id: unknown;
  key: string | null;
  status: unknown;
  name: string | null;
  base_url: string | null;
  other_info?: string | null;
}): Channel {
  return { id: num(r.id), key: r.key ?? '', status: num(r.status), name: r.name, baseUrl: r.base_url, otherInfo: r.other_info ?? null };
}

export async function listChannels(db: OneApiDb): Promise<Channel[]> {
  const rows = await db.kysely.selectFrom('channels').select(['id', 'key', 'status', 'name', 'base_url']).orderBy('id').execute();
  return rows.map(toChannel);
}

export async function findChannel(db: OneApiDb, id: number): Promise<Channel | undefined> {
  const row = await db.kysely
    .selectFrom('channels')
    .select(['id', 'key', 'status', 'name', 'base_url'])
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toChannel(row);
}

/**
 * Moves a channel from `from` to `to` together with its `abilities` rows (routing reads those),
 * in one transaction; new-api also gets `other_info.status_reason`/`status_time`, as its own
 * status changes write them (QuantumNous/new-api model/channel.go, UpdateChannelStatus).
 * False when the channel was no longer in `from`: someone else changed it, leave it be.
 */
export async function setChannelStatus(
  db: OneApiDb,
  id: number,
  from: number,
  to: number,
  reason: string,
  now = new Date(),
): Promise<boolean> {
  return db.kysely.transaction().execute(async (trx) => {
    let otherInfo: string | undefined;
    if (db.flavor === 'new-api') {
      const row = await trx.selectFrom('channels').select('other_info').where('id', '=', id).executeTakeFirst();
      otherInfo = JSON.stringify({ ...parseObject(row?.other_info), status_reason: reason, status_time: Math.floor(now.getTime() / 1000) });
    }
    const r = await trx
      .updateTable('channels')
      .set({ status: to, ...(otherInfo !== undefined ? { other_info: otherInfo } : {}) })
      .where('id', '=', id)
      .where('status', '=', from)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return false;
    await trx
      .updateTable('abilities')
      .set({ enabled: db.dialect.bool(to === CHANNEL_ENABLED) })
      .where('channel_id', '=', id)
      .execute();
    return true;
  });
}

/** Compare-and-set: replaces the key only if it is still `from` (the admin UI may have edited it). */
export async function replaceKey(db: Kysely<OneApiTables>, id: number, from: string, to: string): Promise<boolean> {
  const r = await db.updateTable('channels').set({ key: to }).where('id', '=', id).where('key', '=', from).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function recordChannelTest(db: OneApiDb, id: number, at: Date, responseTimeMs: number): Promise<void> {
  await db.kysely
    .updateTable('channels')
    .set({ test_time: Math.floor(at.getTime() / 1000), response_time: Math.round(responseTimeMs) })
    .where('id', '=', id)
    .execute();
}

function parseObject(text: string | null | undefined): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text ?? '');
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
