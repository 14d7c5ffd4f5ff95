// BullMQ runner (bench/node_modules), a Redis reference point: Redis on 127.0.0.1:6379, keys under the
// prefix "supaworker-bench" only (Queue.obliterate clears just this queue before each scenario).
// Library defaults throughout (jobs kept after completion, no rate limits); Worker concurrency C.
// --dsn is accepted for the common CLI and ignored. "Server CPU" for BullMQ is the redis-server process.
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { main } from "./common.mjs";
import { ProcCpu } from "./measure.mjs";

const connection = { host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null };
const PREFIX = "supaworker-bench";
const QUEUE = "noop";

function makePeer(args) {
  let queue = null;
  const openQueue = async () => {
    queue = new Queue(QUEUE, { connection, prefix: PREFIX });
    await queue.waitUntilReady();
    return queue;
  };
  return {
    serverCpu: null,
    settings: () => ({ concurrency: args.concurrency, redis: "127.0.0.1:6379", prefix: PREFIX,
      api: "Queue.add / Queue.addBulk, Worker" }),
    async setup() {
      await (await openQueue()).obliterate({ force: true });
      await queue.close();
    },
    async open() {
      await (await openQueue()).obliterate({ force: true });
      const redis = new Redis(connection);
      const redisPid = Number(/process_id:(\d+)/.exec(await redis.info("server"))[1]);
      this.serverCpu = new ProcCpu({ candidates: () => [String(redisPid)], match: () => true });
      await redis.quit();
    },
    close: () => queue?.close(),
    enqueueOne: (i, t) => queue.add("noop", { i, t }),
    enqueueMany: (items) => queue.addBulk(items.map(([i, t]) => ({ name: "noop", data: { i, t } }))),
    async remaining() {
      const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "paused");
      return Object.values(c).reduce((a, b) => a + b, 0);
    },
    async worker() {
      const { record } = await import("./measure.mjs");
      const worker = new Worker(QUEUE, async (job) => record(job.data.i, job.data.t),
        { connection, prefix: PREFIX, concurrency: args.concurrency });
      process.on("SIGTERM", async () => {
        await worker.close();
        process.exit(0);
      });
    },
  };
}

await main(makePeer, import.meta.url);
