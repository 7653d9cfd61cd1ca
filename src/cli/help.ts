/** Each command's --help; KINDS is replaced by the checker kinds. Plain text: nothing to load. */
export const HELP: Record<string, string> = {
  main: `tschk — keeps pools of LLM access tokens healthy

Usage: tschk <command> [options]

Commands:
  serve                 run the daemon: schedule, HTTP API (default)
  check                 run one check now and print a summary
  migrate               create or update the database tables
  providers             list | add | remove check targets
  tokens                import | list | remove | export tokens
  history               recent checks, newest first
  status                tokens by state and the last run
  notify test           send a sample notification to every configured target

Every command takes --help. Configuration comes from the environment (see README).
Exit codes: 0 done, 1 the work failed, 2 bad usage or configuration.`,
  serve: `Usage: tschk serve

Runs the daemon: migrates the database, checks on TSCHK_CRON, serves HTTP on TSCHK_HTTP_PORT.
SIGTERM/SIGINT stop it gracefully; a second signal forces the exit.`,
  check: `Usage: tschk check [--provider P] [--pool POOL] [--force] [--force-prune] [--no-wait] [--json]

Checks every due token (or those of one provider/pool) once and prints a per-provider summary.
One run at a time goes on per database: when another process's run covers this one, its summary
is printed once it ends; otherwise this one waits for it, then runs.
  --provider P     only this provider
  --pool POOL      only this pool (default, free, …)
  --force          also tokens checked less than TSCHK_MIN_INTERVAL_S ago
  --force-prune    check again and prune even when a safety rule holds pruning (after a human looked)
  --no-wait        do not wait for another process's run: exit 3 instead
  --json           print the run summary as JSON
Exit: 0 the run completed, 1 it failed or could not run, 2 bad usage, 3 busy (--no-wait).`,
  migrate: `Usage: tschk migrate

Creates or updates tschk's tables in TSCHK_DATABASE_URL.`,
  providers: `Usage: tschk providers list [--json]
       tschk providers add NAME --kind KIND [--url URL] [--concurrency N]
       tschk providers remove NAME

Kinds: KINDS. A free-api's URL is its /token/check endpoint,
e.g. http://deepseek-free-api:8000/token/check. For an official kind --url overrides the API's base
URL (e.g. https://api.moonshot.ai); openai-compatible needs one, e.g. https://api.openai.com.
A deepseek-account token is account-password. Removing a provider archives its tokens.`,
  tokens: `Usage: tschk tokens import --provider P [--pool POOL] [--expect live|dead] [--label L] [FILE|-]
       tschk tokens list [--provider P] [--pool POOL] [--state S] [--json]
       tschk tokens remove (--id N | --fingerprint FP)
       tschk tokens export [--provider P] [--pool POOL] [--state S | --archived]
       tschk tokens restore FINGERPRINT [--provider P] [--pool POOL]

import: one token per line (a BOM, CRLF, blank lines and surrounding spaces are fine; T1,T2 is two
tokens; a line that cannot be a token refuses the import); tokens already in the pool are skipped
and counted. --expect marks a canary.
list shows masks and fingerprints only. export prints full tokens, one per line: mind where it goes;
--archived prints the pruned and removed ones not restored yet.
restore brings an archived token back where it came from (its token file line, its One-API
channel key, or tschk's table), active, at the end of its pool.`,
  history: `Usage: tschk history [--provider P] [--token ID|FINGERPRINT] [--limit N] [--json]

Recent checks, newest first (default limit 50).`,
  status: `Usage: tschk status [--json]

Tokens per provider, pool and state, and the last run.`,
  notify: `Usage: tschk notify test

Sends a sample digest to every TSCHK_WEBHOOK_URL and an "up" heartbeat to every
TSCHK_UPTIME_KUMA_PUSH monitor, and prints one line per target: ok or failed, and why.
Exit: 0 every target took it, 1 one failed, 2 nothing is configured or bad usage.`,
};
