import type { Kysely, Transaction } from 'kysely';
import type { Db } from './connect.js';
import type { Database, RunTrigger } from './schema.js';
import type { TokenMatch } from './tokens.js';

/** The jobs that one process at a time may do, each with its row in `run_leases`. */
export type LeaseName = 'run' | 'trim';

/** Who holds a lease: a process on a host. `id` is unique per process life. */
export interface Holder {
  id: string;
  host: string;
  pid: number;
}

/** What a run lease is taken for, so that another process can tell whether that run covers its request. */
export interface LeaseClaim {
  trigger?: RunTrigger;
  provider?: string;
  pool?: string;
  force?: boolean;
  forcePrune?: boolean;
  /** Only the tokens matching this (a bulk re-check from the console). */
  selection?: TokenMatch;
  /** A cron tick: taken only if no process took this tick (or a later one) yet. */
  tick?: Date;
}

export interface LeaseState {
  holder: string | null;
  host: string | null;
  pid: number | null;
  runId: number | null;
  trigger: RunTrigger | null;
  provider: string | null;
  pool: string | null;
  force: boolean;
  forcePrune: boolean;
  selection: TokenMatch | undefined;
  acquiredAt: Date | null;
  /** Past its expiry by the database's clock: the holder stopped renewing, it is gone. */
  expired: boolean;
}

type Executor = Kysely<Database> | Transaction<Database>;

/**
 * Takes the lease if nobody holds it, its holder stopped renewing it, or it is this holder's
 * own left over from a release that failed. One conditional UPDATE:
 * the database serialises two processes racing for the row (a row lock on PostgreSQL and MySQL,
 * the one writer on SQLite), and the loser's WHERE no longer matches.
 */
export async function tryAcquireLease(db: Db, name: LeaseName, holder: Holder, ttlMs: number, claim: LeaseClaim = {}): Promise<boolean> {
  const { clock, time } = db.dialect;
  let q = db.kysely
    .updateTable('run_leases')
    .set({
      holder: holder.id,
      host: holder.host,
      pid: holder.pid,
      run_id: null,
      trigger: claim.trigger ?? null,
      provider: claim.provider ?? null,
      pool: claim.pool ?? null,
      forced: claim.force ? 1 : 0,
      force_prune: claim.forcePrune ? 1 : 0,
      selection: claim.selection === undefined ? null : JSON.stringify(claim.selection),
      acquired_at: clock(),
      expires_at: clock(ttlMs),
      ...(claim.tick ? { last_tick: time(claim.tick) } : {}),
    })
    .where('name', '=', name)
    // Its own holder id too: a release that failed (the database was away) must not lock this
    // process out until the lease expires. Its coordinator already keeps its own runs apart.
    .where((eb) => eb.or([eb('holder', 'is', null), eb('expires_at', '<', clock()), eb('holder', '=', holder.id)]));
  if (claim.tick) {
    const tick = time(claim.tick);
    q = q.where((eb) => eb.or([eb('last_tick', 'is', null), eb('last_tick', '<', tick)]));
  }
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Whether a tick (or a later one) was already taken by some process. */
export async function tickTaken(db: Db, name: LeaseName, tick: Date): Promise<boolean> {
  const row = await db.kysely
    .selectFrom('run_leases')
    .select('name')
    .where('name', '=', name)
    .where('last_tick', '>=', db.dialect.time(tick))
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Extends the lease; false when this holder no longer has it (another process took it after it
 * expired). Works inside a batch's transaction too: then the batch commits only while the lease is held.
 */
export async function renewLease(db: Db, name: LeaseName, holderId: string, ttlMs: number, trx?: Executor): Promise<boolean> {
  const r = await (trx ?? db.kysely)
    .updateTable('run_leases')
    .set({ expires_at: db.dialect.clock(ttlMs) })
    .where('name', '=', name)
    .where('holder', '=', holderId)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function setLeaseRun(db: Db, name: LeaseName, holderId: string, runId: number): Promise<void> {
  await db.kysely.updateTable('run_leases').set({ run_id: runId }).where('name', '=', name).where('holder', '=', holderId).execute();
}

export async function releaseLease(db: Db, name: LeaseName, holderId: string): Promise<void> {
  await db.kysely
    .updateTable('run_leases')
    .set({ holder: null, host: null, pid: null, run_id: null, expires_at: null })
    .where('name', '=', name)
    .where('holder', '=', holderId)
    .execute();
}

export async function readLease(db: Db, name: LeaseName): Promise<LeaseState | undefined> {
  const row = await db.kysely
    .selectFrom('run_leases')
    .select(['holder', 'host', 'pid', 'run_id', 'trigger', 'provider', 'pool', 'forced', 'force_prune', 'selection', 'acquired_at'])
    .select((eb) => eb.case().when('expires_at', '<', db.dialect.clock()).then(1).else(0).end().as('expired'))
    .where('name', '=', name)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    holder: row.holder,
    host: row.host,
    pid: row.pid === null ? null : Number(row.pid),
    runId: row.run_id === null ? null : Number(row.run_id),
    trigger: row.trigger,
    provider: row.provider,
    pool: row.pool,
    force: Number(row.forced) === 1,
    forcePrune: Number(row.force_prune) === 1,
    selection: row.selection === null ? undefined : (JSON.parse(row.selection) as TokenMatch),
    acquiredAt: db.dialect.readTime(row.acquired_at),
    expired: row.holder !== null && Number(row.expired) === 1,
  };
}

/** Records that a serve process is alive; returns the other serve processes seen within `aliveMs`. */
export async function heartbeat(db: Db, holder: Holder, aliveMs: number, startedAt: Date): Promise<Array<{ host: string; pid: number }>> {
  const { clock, time } = db.dialect;
  const seen = await db.kysely.updateTable('daemons').set({ seen_at: clock() }).where('holder', '=', holder.id).executeTakeFirst();
  if (Number(seen.numUpdatedRows) === 0) {
    await db.kysely
      .insertInto('daemons')
      .values({ holder: holder.id, host: holder.host, pid: holder.pid, started_at: time(startedAt), seen_at: clock() })
      .execute();
  }
  // Rows of processes gone for long are of no use to anyone.
  await db.kysely
    .deleteFrom('daemons')
    .where('seen_at', '<', clock(-10 * aliveMs))
    .execute();
  const others = await db.kysely
    .selectFrom('daemons')
    .select(['host', 'pid'])
    .where('holder', '!=', holder.id)
    .where('seen_at', '>=', clock(-aliveMs))
    .orderBy('started_at')
    .execute();
  return others.map((o) => ({ host: o.host, pid: Number(o.pid) }));
}

export async function forgetDaemon(db: Db, holderId: string): Promise<void> {
  await db.kysely.deleteFrom('daemons').where('holder', '=', holderId).execute();
}
