// A configuration tschk cannot use stops start-up with one line naming the variable, exit 2, and no
// secret: never a hang, a crash loop on SQLite's "unable to open database file", or an echoed key.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tschk } from './helpers/cli.js';
import { spawnTschk } from './helpers/spawn.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tschk-startup-'));
  // Another uid must reach the folders below (the permission tests run tschk as uid 1000).
  await chmod(dir, 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Exit 2 and exactly one line on stderr that starts with `tschk: VARIABLE: `. */
function expectConfigError(r: { code: number | null; stdout: string; stderr: string }, variable: string) {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.startsWith(`tschk: ${variable}: `), r.stderr).toBe(true);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
}

describe('TSCHK_DATABASE_URL naming an SQLite file tschk cannot use', () => {
  it('says a file that is not an SQLite database is not one, with its path', async () => {
    const file = join(dir, 'notes.txt');
    await writeFile(file, 'hello, this is a text file and not a database at all\n');
    const r = await tschk(['status'], { TSCHK_DATABASE_URL: `sqlite:${file}` });
    expectConfigError(r, 'TSCHK_DATABASE_URL');
    expect(r.stderr).toBe(`tschk: TSCHK_DATABASE_URL: ${file} is not an SQLite database (file is not a database)\n`);
  });

  it('says a folder is a folder, and a file in the way of the folders is not a folder', async () => {
    const folder = await tschk(['status'], { TSCHK_DATABASE_URL: `sqlite:${dir}` });
    expectConfigError(folder, 'TSCHK_DATABASE_URL');
    expect(folder.stderr).toContain(`${dir} is a folder; name a file in it, e.g. sqlite:${join(dir, 'tschk.db')}`);

    await writeFile(join(dir, 'plain'), 'x');
    const inTheWay = await tschk(['status'], { TSCHK_DATABASE_URL: `sqlite:${join(dir, 'plain', 'sub', 't.db')}` });
    expectConfigError(inTheWay, 'TSCHK_DATABASE_URL');
    expect(inTheWay.stderr).toContain(`${join(dir, 'plain')} is not a folder`);
  });

  it('creates the missing folders of a new database, several levels deep', async () => {
    const file = join(dir, 'a', 'b', 'c', 'tschk.db');
    const r = await tschk(['status'], { TSCHK_DATABASE_URL: `sqlite:${file}` });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect((await stat(file)).isFile()).toBe(true);
  });

  // The kernel answers ENOENT for a folder under /proc although /proc exists: Node 20's recursive
  // mkdirSync then loops at full CPU and ignores SIGTERM. A real process, killed if it hangs.
  it.runIf(existsSync('/proc/self'))('stops at once for a path under /proc instead of spinning', async () => {
    const r = await spawnTschk(['status'], { TSCHK_DATABASE_URL: 'sqlite:/proc/nope/t.db' }, { killAfterMs: 20_000 });
    expect(r.signal, 'still running after 20 s, so it was killed').toBeNull();
    expectConfigError(r, 'TSCHK_DATABASE_URL');
    expect(r.stderr).toBe('tschk: TSCHK_DATABASE_URL: cannot create the folder /proc/nope for the SQLite file (ENOENT)\n');
  });

  // In Docker: ./data created by `docker compose up` is root's, tschk runs as uid 1000. As root the
  // test runs tschk as uid 1000 in a root-owned folder; otherwise in a folder its own uid may not write.
  const asRoot = process.getuid?.() === 0;
  const runAs = asRoot ? { uid: 1000, gid: 1000 } : {};
  const uid = asRoot ? 1000 : process.getuid!();
  const gid = asRoot ? 1000 : process.getgid!();
  const readOnlyFolder = async () => {
    const data = join(dir, 'data');
    await mkdir(data);
    await chmod(data, asRoot ? 0o755 : 0o555);
    return data;
  };

  it.runIf(process.platform !== 'win32')('names the folder, the uid tschk runs as and the chown to run', async () => {
    const data = await readOnlyFolder();
    const r = await spawnTschk(['status'], { TSCHK_DATABASE_URL: `sqlite:${data}/tschk.db` }, runAs);
    expectConfigError(r, 'TSCHK_DATABASE_URL');
    expect(r.stderr).toContain(`tschk runs as uid ${uid} and cannot write to ${data} (the folder of the database)`);
    expect(r.stderr).toContain(`chown ${uid}:${gid} ${data}`);
    expect(r.stderr).toContain(`sudo chown ${uid}:${gid} ./data`);
  });

  it.runIf(process.platform !== 'win32')('names the folder it cannot create a missing folder in', async () => {
    const data = await readOnlyFolder();
    const r = await spawnTschk(['status'], { TSCHK_DATABASE_URL: `sqlite:${data}/sub/tschk.db` }, runAs);
    expectConfigError(r, 'TSCHK_DATABASE_URL');
    expect(r.stderr).toContain(`tschk runs as uid ${uid} and cannot write to ${data} (needed to create ${data}/sub in it)`);
    expect(r.stderr).toContain(`chown ${uid}:${gid} ${data}`);
  });
});

describe('a database password that is not URL-encoded', () => {
  it.each([
    ['postgres://tschk:Sx/9q+Lw@postgres:5432/tschk', 'Sx/9q+Lw'],
    ['postgresql://tschk:Sx#9qLw@postgres/tschk', 'Sx#9qLw'],
    ['mysql://tschk:Sx?9qLw@db:3306/tschk', 'Sx?9qLw'],
    ['mariadb://tschk:Sx%9qLw@db/tschk', 'Sx%9qLw'],
    // Parses as a URL, as port 12 of host `tschk`: the password's tail is the path.
    ['postgres://tschk:12/Sx9qLw@postgres/tschk', 'Sx9qLw'],
  ])('%s: says the password must be URL-encoded, without showing it', async (url, password) => {
    const r = await tschk(['status'], { TSCHK_DATABASE_URL: url });
    expectConfigError(r, 'TSCHK_DATABASE_URL');
    expect(r.stderr).toContain('password in the URL must be URL-encoded');
    expect(r.stderr).toContain('openssl rand -hex 24');
    expect(r.stderr).not.toContain(password);
  });

  it("names the One-API database's variable too", async () => {
    const r = await tschk(['status'], {
      TSCHK_DATABASE_URL: `sqlite:${join(dir, 't.db')}`,
      TSCHK_ONEAPI_DATABASE_URL: 'mysql://root:Sx/9qLw@oneapi-db/one-api',
    });
    expectConfigError(r, 'TSCHK_ONEAPI_DATABASE_URL');
    expect(r.stderr).toContain('password in the URL must be URL-encoded');
    expect(r.stderr).not.toContain('9qLw');
  });
});

describe('a malformed TSCHK_UPTIME_KUMA_PUSH', () => {
  const KEY = 'Xk3pPushTok';
  it.each([
    // A bare push key where an entry should be.
    [`deep=https://kuma.example/api/push/A1;${KEY}`, "entry 2 of 2 (entries are separated by ';') is neither"],
    // A key where the URL should be.
    [`deep=${KEY}`, 'deep=…: expected an http(s) URL, got a value that is not a URL'],
    [`deep=https://kuma.example/api/push/A1;qwen/free=${KEY}`, 'entry 2 of 2 (qwen/free=…): expected an http(s) URL'],
    [
      `qwen=kuma.example/api/push/${KEY};deep=https://kuma.example/api/push/A1`,
      "entry 1 of 2 (qwen=…): expected an http(s) URL, got 'kuma.example/…'",
    ],
    [`deep=https://kuma.example/api/push/${KEY} status=up`, 'the value is neither'],
  ])('%s: names the entry, never its key', async (value, message) => {
    const r = await tschk(['status'], { TSCHK_UPTIME_KUMA_PUSH: value });
    expectConfigError(r, 'TSCHK_UPTIME_KUMA_PUSH');
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toContain(KEY);
  });
});
