// graphile-worker runner (bench/node_modules). Workers use the library's run() with concurrency C.
//   --mode default: library defaults (no local queue, completions not batched).
//   --mode fast:    the batching settings from graphile-worker's performance docs:
//                   localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0.
//   --mode equal:   the same, with localQueue.size = concurrency + 1 (the prefetch supaworker's equal mode uses).
// Worker logging is limited to warnings and errors, as for every other system.
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import pg from "pg";
import { main } from "./common.mjs";
import { pgProcesses, ProcCpu, record } from "./measure.mjs";

const FAST = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };
function modeSettings(args) {
  if (args.mode === "fast") return FAST;
  if (args.mode === "equal") return { ...FAST, localQueue: { size: args.concurrency + 1 } };
  return {};
}
const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[${level}] ${message}`);
});

function makePeer(args) {
  const base = { connectionString: args.dsn, logger: quietLogger };
  let utils = null, client = null;
  return {
    serverCpu: null,
    settings: () => ({ concurrency: args.concurrency, ...modeSettings(args),
      api: "run() / makeWorkerUtils().addJob / addJobs" }),
    setup: () => runMigrations(base),
    async open() {
      utils = await makeWorkerUtils(base);
      client = new pg.Client({ connectionString: args.dsn });
      await client.connect();
      const { rows } = await client.query("SELECT pg_backend_pid() AS pid, current_database() AS db");
      this.serverCpu = new ProcCpu(pgProcesses(rows[0].pid, rows[0].db));
    },
    async close() {
      await utils?.release();
      await client?.end();
    },
    enqueueOne: (i, t) => utils.addJob("noop", { i, t }),
    enqueueMany: (items) => utils.addJobs(items.map(([i, t]) => ({ identifier: "noop", payload: { i, t } }))),
    async remaining() {
      const { rows } = await client.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs");
      return rows[0].n;
    },
    async worker() {
      const runner = await run({
        ...base,
        concurrency: args.concurrency,
        preset: args.mode === "default" ? undefined : { worker: modeSettings(args) },
        taskList: { noop: async (payload) => record(payload.i, payload.t) },
      });
      await runner.promise; // graphile-worker handles SIGTERM itself (graceful shutdown)
    },
  };
}

await main(makePeer, import.meta.url);
