import type BetterSqlite3 from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

const REUSED_STATEMENTS = 64;

/**
 * better-sqlite3 compiles a statement at every prepare(), and the statements of a run (a batch of
 * checks, the state updates) are the same texts every time: the last ones used are kept and run
 * again with new values.
 */
export function reusingStatements(sqlite: BetterSqlite3.Database): SqliteDatabase {
  const kept = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text) {
      // Kysely runs one statement of a handle at a time (a stream holds the handle until it ends), so a kept one is never busy.
      const stmt = kept.get(text) ?? sqlite.prepare(text);
      kept.delete(text);
      kept.set(text, stmt);
      if (kept.size > REUSED_STATEMENTS) kept.delete(kept.keys().next().value!);
      return stmt;
    },
  };
}
