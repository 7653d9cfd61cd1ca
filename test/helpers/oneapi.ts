// One-API / New-API tables as GORM creates them (songquanpeng/one-api and QuantumNous/new-api
// model/channel.go, model/ability.go), trimmed to their real column names and types, with the
// reserved words `key` and `group` as column names.
import { sql } from 'kysely';
import type { OneApiFlavor } from '../../src/config.js';
import { openTarget } from '../../src/db/connect.js';
import { profiles } from '../../src/db/dialect.js';
import { parseDatabaseUrl } from '../../src/db/url.js';
import type { Dialect } from './databases.js';

const DDL: Record<Dialect, (flavor: OneApiFlavor) => string[]> = {
  sqlite: (flavor) => [
    `CREATE TABLE \`channels\` (\`id\` integer PRIMARY KEY AUTOINCREMENT, \`type\` integer DEFAULT 0, \`key\` text NOT NULL, \`status\` integer DEFAULT 1, \`name\` text, \`weight\` integer DEFAULT 0, \`created_time\` integer, \`test_time\` integer, \`response_time\` integer, \`base_url\` text DEFAULT '', \`other\` text, \`balance\` real, \`models\` text, \`group\` varchar(32) DEFAULT 'default', \`used_quota\` integer DEFAULT 0, \`priority\` integer DEFAULT 0${flavor === 'new-api' ? ', `other_info` text, `channel_info` JSON' : ''})`,
    'CREATE TABLE `abilities` (`group` varchar(32), `model` text, `channel_id` integer, `enabled` numeric, `priority` integer DEFAULT 0, PRIMARY KEY (`group`, `model`, `channel_id`))',
  ],
  mysql: (flavor) => [
    `CREATE TABLE \`channels\` (\`id\` bigint AUTO_INCREMENT, \`type\` bigint DEFAULT 0, \`key\` longtext NOT NULL, \`status\` bigint DEFAULT 1, \`name\` varchar(191), \`weight\` bigint unsigned DEFAULT 0, \`created_time\` bigint, \`test_time\` bigint, \`response_time\` bigint, \`base_url\` varchar(191) DEFAULT '', \`other\` longtext, \`balance\` double, \`models\` longtext, \`group\` varchar(32) DEFAULT 'default', \`used_quota\` bigint DEFAULT 0, \`priority\` bigint DEFAULT 0${flavor === 'new-api' ? ', `other_info` longtext, `channel_info` JSON' : ''}, PRIMARY KEY (\`id\`), INDEX \`idx_channels_name\` (\`name\`))`,
    'CREATE TABLE `abilities` (`group` varchar(32), `model` varchar(191), `channel_id` bigint, `enabled` boolean, `priority` bigint DEFAULT 0, PRIMARY KEY (`group`, `model`, `channel_id`), INDEX `idx_abilities_channel_id` (`channel_id`))',
  ],
  postgres: (flavor) => [
    `CREATE TABLE "channels" ("id" bigserial, "type" bigint DEFAULT 0, "key" text NOT NULL, "status" bigint DEFAULT 1, "name" text, "weight" bigint DEFAULT 0, "created_time" bigint, "test_time" bigint, "response_time" bigint, "base_url" text DEFAULT '', "other" text, "balance" decimal, "models" text, "group" varchar(32) DEFAULT 'default', "used_quota" bigint DEFAULT 0, "priority" bigint DEFAULT 0${flavor === 'new-api' ? ', "other_info" text, "channel_info" json' : ''}, PRIMARY KEY ("id"))`,
    'CREATE TABLE "abilities" ("group" varchar(32), "model" text, "channel_id" bigint, "enabled" boolean, "priority" bigint DEFAULT 0, PRIMARY KEY ("group", "model", "channel_id"))',
  ],
};

export interface ChannelSeed {
  key: string;
  baseUrl: string | null;
  status?: number;
  name?: string;
  models?: string;
  group?: string;
  otherInfo?: string;
}

export interface OneApiFixture {
  addChannel(c: ChannelSeed): Promise<number>;
  channel(
    id: number,
  ): Promise<{ key: string; status: number; test_time: number | null; response_time: number | null; other_info?: string | null }>;
  /** `enabled` of each abilities row of the channel, as booleans. */
  abilities(id: number): Promise<boolean[]>;
  setKey(id: number, key: string): Promise<void>;
  setStatus(id: number, status: number): Promise<void>;
  close(): Promise<void>;
}

/** Creates One-API's tables in an empty database and gives a way to seed and read them. */
export async function createOneApi(url: string, flavor: OneApiFlavor): Promise<OneApiFixture> {
  const target = parseDatabaseUrl(url)!;
  const { kysely, close } = openTarget<any>(target);
  const db = kysely;
  const dialect = target.dialect;
  for (const ddl of DDL[dialect](flavor)) await sql.raw(ddl).execute(db);
  const bool = profiles[dialect].bool;
  return {
    async addChannel(c) {
      const status = c.status ?? 1;
      const values = {
        type: 1,
        key: c.key,
        status,
        name: c.name ?? 'free-api',
        base_url: c.baseUrl,
        models: c.models ?? 'deepseek-chat,deepseek-reasoner',
        group: c.group ?? 'default,vip',
        created_time: 1_700_000_000,
        test_time: 0,
        response_time: 0,
        ...(flavor === 'new-api' ? { other_info: c.otherInfo ?? '{"source":"admin"}' } : {}),
      };
      const id = await profiles[dialect].insertId(db, 'channels', values);
      for (const group of values.group.split(',')) {
        for (const model of values.models.split(',')) {
          await db
            .insertInto('abilities')
            .values({ group, model, channel_id: id, enabled: bool(status === 1), priority: 0 })
            .execute();
        }
      }
      return id;
    },
    async channel(id) {
      const cols = ['key', 'status', 'test_time', 'response_time', ...(flavor === 'new-api' ? ['other_info'] : [])];
      const r = await db.selectFrom('channels').select(cols).where('id', '=', id).executeTakeFirstOrThrow();
      return {
        ...r,
        key: String(r.key),
        status: Number(r.status),
        test_time: r.test_time === null ? null : Number(r.test_time),
        response_time: r.response_time === null ? null : Number(r.response_time),
      };
    },
    async abilities(id) {
      const rows = await db
        .selectFrom('abilities')
        .select('enabled')
        .where('channel_id', '=', id)
        .orderBy('group')
        .orderBy('model')
        .execute();
      return rows.map((r: { enabled: unknown }) => r.enabled === true || Number(r.enabled) === 1);
    },
    async setKey(id, key) {
      await db.updateTable('channels').set({ key }).where('id', '=', id).execute();
    },
    async setStatus(id, status) {
      await db.updateTable('channels').set({ status }).where('id', '=', id).execute();
    },
    close,
  };
}
