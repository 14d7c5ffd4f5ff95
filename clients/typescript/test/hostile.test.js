// What a careless or hostile caller may pass: JavaScript values the database cannot see as they were given
// (a number where a string goes, NaN, a BigInt, a Map, a NUL, a lone surrogate, an invalid Date). Each is
// refused before anything is written, with the same error over supabase-js and over node-postgres, and with
// the Python API's message where it has one.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { InvalidBrief, InvalidJob, JobNotFound, createSupaworker } from "../src/index.js";
import { SKIP, env, pgClient, serviceClient, startGateway, uniqueUser } from "./support.js";

function nested(levels) {
  let value = {};
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

function circular() {
  const value = { name: "loop" };
  value.self = value;
  return value;
}

// [label, input (given a fresh queue name), field, message]
const BAD_JOBS = [
  ["NUL in type", (q) => ({ type: "a\u0000b", queue: q }), "type", "type must not contain a NUL character (\\u0000)"],
  [
    "NUL in queue",
    () => ({ type: "t", queue: "q\u0000" }),
    "queue",
    "queue must not contain a NUL character (\\u0000)",
  ],
  [
    "lone surrogate in type",
    (q) => ({ type: "a\uD800b", queue: q }),
    "type",
    "type must be valid Unicode (it holds a lone surrogate)",
  ],
  [
    "NUL in unique_key",
    (q) => ({ type: "t", queue: q, unique_key: "k\u0000" }),
    "unique_key",
    "unique_key must not contain a NUL character (\\u0000)",
  ],
  [
    "lone surrogate in fairness_key",
    (q) => ({ type: "t", queue: q, fairness_key: "\uDC00" }),
    "fairness_key",
    "fairness_key must be valid Unicode (it holds a lone surrogate)",
  ],
  [
    "NUL in a payload value",
    (q) => ({ type: "t", queue: q, metadata: { a: ["x\u0000"] } }),
    "payload",
    "payload.a[0] must not contain a NUL character (\\u0000)",
  ],
  [
    "NUL in a payload key",
    (q) => ({ type: "t", queue: q, payload: { "k\u0000": 1 } }),
    "payload",
    "payload: key 'k\\u0000' must not contain a NUL character (\\u0000)",
  ],
  [
    "lone surrogate in a payload key",
    (q) => ({ type: "t", queue: q, payload: { ok: { "\uD800": 1 } } }),
    "payload",
    "payload.ok: key '\\ud800' must be valid Unicode (it holds a lone surrogate)",
  ],
  [
    "NaN in the payload",
    (q) => ({ type: "t", queue: q, payload: { n: NaN } }),
    "payload",
    "payload.n must be a finite number, not NaN",
  ],
  [
    "Infinity in the payload",
    (q) => ({ type: "t", queue: q, payload: [1, -Infinity] }),
    "payload",
    "payload[1] must be a finite number, not -Infinity",
  ],
  [
    "a BigInt in the payload",
    (q) => ({ type: "t", queue: q, payload: { n: 2n ** 70n } }),
    "payload",
    "payload.n is a BigInt, which JSON cannot hold: give a Number or a string",
  ],
  [
    "a Map as the payload",
    (q) => ({ type: "t", queue: q, payload: new Map([["a", 1]]) }),
    "payload",
    "payload must be JSON (an object, array, string, number, boolean or null), not Map",
  ],
  [
    "a function in the payload",
    (q) => ({ type: "t", queue: q, payload: { f() {} } }),
    "payload",
    "payload.f must be JSON (an object, array, string, number, boolean or null), not function",
  ],
  [
    "an invalid Date in the payload",
    (q) => ({ type: "t", queue: q, payload: { at: new Date("soon") } }),
    "payload",
    "payload.at is an invalid Date",
  ],
  [
    "a circular payload",
    (q) => ({ type: "t", queue: q, payload: circular() }),
    "payload",
    "payload.self contains itself (a circular structure)",
  ],
  [
    "a payload 5000 levels deep",
    (q) => ({ type: "t", queue: q, payload: nested(5000) }),
    "payload",
    "payload is nested more than 64 levels deep",
  ],
  [
    "65 nested empty arrays",
    (q) => ({ type: "t", queue: q, payload: JSON.parse("[".repeat(65) + "]".repeat(65)) }),
    "payload",
    "payload is nested more than 64 levels deep",
  ],
  ["no type", (q) => ({ queue: q, metadata: {} }), "type", "type must be a string, not undefined"],
  ["a number as type", (q) => ({ type: 5, queue: q }), "type", "type must be a string, not number"],
  ["an array as type", (q) => ({ type: ["a"], queue: q }), "type", "type must be a string, not array"],
  ["a boolean as queue", () => ({ type: "t", queue: true }), "queue", "queue must be a string, not boolean"],
  [
    "a priority as a string",
    (q) => ({ type: "t", queue: q, priority: "5" }),
    "priority",
    "priority must be a 32-bit integer (lower runs first)",
  ],
  [
    "a fractional priority",
    (q) => ({ type: "t", queue: q, priority: -1.5 }),
    "priority",
    "priority must be a 32-bit integer (lower runs first)",
  ],
  [
    "NaN as priority",
    (q) => ({ type: "t", queue: q, priority: NaN }),
    "priority",
    "priority must be a 32-bit integer (lower runs first)",
  ],
  [
    "1e400 as priority",
    (q) => ({ type: "t", queue: q, priority: 1e400 }),
    "priority",
    "priority must be a 32-bit integer (lower runs first)",
  ],
  [
    "1e20 as priority",
    (q) => ({ type: "t", queue: q, priority: 1e20 }),
    "priority",
    "priority must be a 32-bit integer (lower runs first)",
  ],
  [
    "max_attempts as a padded string",
    (q) => ({ type: "t", queue: q, max_attempts: " 3 " }),
    "max_attempts",
    "max_attempts must be an integer >= 1",
  ],
  [
    "a fractional max_attempts",
    (q) => ({ type: "t", queue: q, max_attempts: 2.5 }),
    "max_attempts",
    "max_attempts must be an integer >= 1",
  ],
  [
    "NaN as timeout",
    (q) => ({ type: "t", queue: q, timeout: NaN }),
    "timeout",
    "timeout must be a finite number of seconds > 0, not NaN",
  ],
  [
    "1e400 as timeout",
    (q) => ({ type: "t", queue: q, timeout: 1e400 }),
    "timeout",
    "timeout must be a finite number of seconds > 0, not Infinity",
  ],
  [
    "a timeout as a string",
    (q) => ({ type: "t", queue: q, timeout: "5" }),
    "timeout",
    "timeout must be a finite number of seconds > 0, not '5'",
  ],
  [
    "an invalid Date as run_at",
    (q) => ({ type: "t", queue: q, run_at: new Date("next week") }),
    "run_at",
    "run_at must be a valid Date, not Invalid Date",
  ],
  [
    "the last Date JavaScript has as run_at",
    (q) => ({ type: "t", queue: q, run_at: new Date(8.64e15) }),
    "run_at",
    "run_at must be from 1970-01-01T00:00:00+00:00 to before 9999-01-01T00:00:00+00:00, not " +
      "+275760-09-13T00:00:00.000Z",
  ],
  [
    "a word as run_at",
    (q) => ({ type: "t", queue: q, run_at: "tomorrow" }),
    "run_at",
    "run_at must be a Date or an ISO 8601 time with a time zone (such as 2030-01-02T03:04:05Z), not 'tomorrow'",
  ],
  [
    "a run_at without a time zone",
    (q) => ({ type: "t", queue: q, run_at: "2030-01-01 00:00" }),
    "run_at",
    "run_at must be a Date or an ISO 8601 time with a time zone (such as 2030-01-02T03:04:05Z), not '2030-01-01 00:00'",
  ],
  [
    "milliseconds as run_at",
    (q) => ({ type: "t", queue: q, run_at: 1_900_000_000_000 }),
    "run_at",
    "run_at must be a Date or an ISO 8601 time with a time zone (such as 2030-01-02T03:04:05Z), not 1900000000000",
  ],
  [
    "a number as brief_id",
    (q) => ({ type: "t", queue: q, brief_id: 5 }),
    "brief_id",
    "brief_id must be a UUID, not 5",
  ],
  [
    "an object as depends_on",
    (q) => ({ type: "t", queue: q, depends_on: {} }),
    "depends_on",
    "depends_on must be a list of job ids",
  ],
  [
    "an array in depends_on",
    (q) => ({ type: "t", queue: q, depends_on: [[1]] }),
    "depends_on",
    "depends_on entries must be job ids (integers), not array",
  ],
  [
    "a fractional depends_on entry",
    (q) => ({ type: "t", queue: q, depends_on: [1.5] }),
    "depends_on",
    "depends_on entries must be job ids (integers), not 1.5",
  ],
  [
    "a field named like an Object method",
    (q) => ({ type: "t", queue: q, toString: "x" }),
    "toString",
    'unknown field "toString"',
  ],
  [
    "a __proto__ field from JSON",
    (q) => JSON.parse(`{"type": "t", "queue": "${q}", "__proto__": {"priority": 1}}`),
    "__proto__",
    'unknown field "__proto__"',
  ],
];

const BAD_BRIEFS = [
  ["a number as user_id", { user_id: 42 }, "user_id", "user_id must be a string, not number"],
  ["NUL in query", { query: "q\u0000" }, "query", "query must not contain a NUL character (\\u0000)"],
  [
    "a lone surrogate in the title",
    { title: "\uD83D" },
    "title",
    "title must be valid Unicode (it holds a lone surrogate)",
  ],
  [
    "use_pipeline as a string",
    { use_pipeline: "false" },
    "use_pipeline",
    "use_pipeline must be true or false, not 'false'",
  ],
  ["use_pipeline as 1", { use_pipeline: 1 }, "use_pipeline", "use_pipeline must be true or false, not 1"],
  ["steps as a string", { steps: "analysis" }, "steps", "steps must be a list of job types"],
  [
    "a number in steps",
    { steps: ["analysis", 7] },
    "steps",
    "each step must be a non-empty job type of at most 128 characters, not 7",
  ],
  ["an array as media_type", { media_type: ["text"] }, "media_type", "media_type must be a string, not array"],
  ["NaN in options", { options: { n: NaN } }, "options", "options.n must be a finite number, not NaN"],
  [
    "a NUL key in options",
    { options: { "a\u0000": 1 } },
    "options",
    "options: key 'a\\u0000' must not contain a NUL character (\\u0000)",
  ],
  ["a priority as a string", { priority: "1" }, "priority", "priority must be a 32-bit integer (lower runs first)"],
];

for (const transport of ["supabase-js", "pg"]) {
  describe(`hostile input over ${transport}`, { skip: SKIP }, () => {
    let gateway;
    let owner;
    let db;
    let sw;

    const countQueue = async (queue) =>
      (await owner.query(`SELECT count(*)::int AS n FROM ${env.schema}.jobs WHERE queue = $1`, [queue])).rows[0].n;

    before(async () => {
      owner = await pgClient();
      if (transport === "pg") {
        db = await pgClient();
      } else {
        gateway = await startGateway();
        db = serviceClient(gateway.url);
      }
      sw = createSupaworker(db, { schema: env.schema });
    });

    after(async () => {
      if (transport === "pg") await db.end();
      await gateway?.close();
      await owner.end();
    });

    test("createJob refuses what the database cannot see as given, naming the field; nothing is written", async () => {
      for (const [label, make, field, message] of BAD_JOBS) {
        const queue = `hostile-${randomUUID()}`;
        await assert.rejects(sw.createJob(make(queue)), (error) => {
          assert.ok(error instanceof InvalidJob, `${label}: ${error?.stack}`);
          assert.deepEqual([error.field, error.message], [field, message], label);
          return true;
        });
        assert.equal(await countQueue(queue), 0, `${label}: a job was written`);
      }
    });

    test("createJobs refuses the same values in a batch, naming the job; nothing is written", async () => {
      const queue = `hostile-${randomUUID()}`;
      const cases = [
        [{ timeout: NaN }, "timeout", "job #1: timeout must be a finite number of seconds > 0, not NaN"],
        [{ payload: { n: Infinity } }, "payload", "job #1: payload.n must be a finite number, not Infinity"],
        [{ type: "x\u0000" }, "type", "job #1: type must not contain a NUL character (\\u0000)"],
        [{ run_at: new Date(NaN) }, "run_at", "job #1: run_at must be a valid Date, not Invalid Date"],
        [{ priority: 2n ** 60n }, "priority", "job #1: priority must be a 32-bit integer (lower runs first)"],
        [{ depends_on: ["a", null] }, "depends_on", "job #1: depends_on entries must be job ids, not null"],
        [{ key: "k\u0000" }, "key", "job #1: key must not contain a NUL character (\\u0000)"],
        [
          { depends_on: [2n ** 60n] },
          "depends_on",
          "job #1: depends_on entries must be job ids, not 1152921504606846976n",
        ],
      ];
      for (const [fields, field, message] of cases) {
        await assert.rejects(
          sw.createJobs([{ type: "ok", queue, key: "a" }, { type: "t", queue, ...fields }]),
          (error) => {
            assert.ok(error instanceof InvalidJob, `${message}: ${error?.stack}`);
            assert.deepEqual([error.field, error.message], [field, message]);
            return true;
          },
        );
      }
      assert.equal(await countQueue(queue), 0);
    });

    test("createBriefWithJob refuses wrong types and unstorable text; no brief and no job is written", async () => {
      const user = uniqueUser();
      for (const [label, fields, field, message] of BAD_BRIEFS) {
        await assert.rejects(
          sw.createBriefWithJob({ user_id: user, query: "q", media_type: "text", ...fields }),
          (error) => {
            assert.ok(error instanceof InvalidBrief, `${label}: ${error?.stack}`);
            assert.deepEqual([error.field, error.message], [field, message], label);
            return true;
          },
        );
      }
      const { rows } = await owner.query(`SELECT count(*)::int AS n FROM ${env.schema}.briefs WHERE user_id = $1`, [
        user,
      ]);
      assert.equal(rows[0].n, 0);
    });

    test("job ids: an integer, a BigInt or its digits; anything else is refused naming job_id", async () => {
      const parent = await sw.createJob({ type: "t", priority: 5n });
      assert.equal(parent.priority, 5);
      for (const id of [parent.id, BigInt(parent.id), String(parent.id)]) {
        assert.equal((await sw.getJob(id)).id, parent.id, typeof id);
      }
      const child = await sw.createJob({ type: "t", depends_on: [BigInt(parent.id)] });
      assert.deepEqual(child.depends_on, [parent.id]);
      await assert.rejects(sw.getJob(9_000_000_000_000_000_000n), JobNotFound);
      for (const id of [undefined, null, NaN, -1, 0, 1.5, "abc", "1e3", {}, "9223372036854775808"]) {
        for (const call of [sw.getJob, sw.retryJob, sw.cancelJob, sw.waitForJob]) {
          await assert.rejects(call(id), (error) => {
            assert.ok(error instanceof InvalidJob, `${call.name}(${String(id)}): ${error?.stack}`);
            assert.equal(error.field, "job_id");
            assert.match(error.message, /^job_id must be an integer from 1 to 9223372036854775807, not /);
            return true;
          });
        }
      }
      await assert.rejects(sw.cancelJob(child.id, 5), { name: "InvalidJob", field: "reason" });
      await assert.rejects(sw.cancelJob(child.id, "no\u0000"), { name: "InvalidJob", field: "reason" });
      assert.equal((await sw.getJob(child.id)).status, "waiting");
    });

    test("what JSON keeps is stored as given: times with a zone, a __proto__ key, 64 levels", async () => {
      const runAt = "2031-02-03T04:05:06.123456+02:00";
      const job = await sw.createJob({ type: "t", run_at: runAt });
      assert.equal(job.run_at, "2031-02-03T02:05:06.123456+00:00");
      const payload = JSON.parse('{"__proto__": {"admin": true}, "deep": ' + JSON.stringify(nested(63)) + "}");
      const stored = await sw.createJob({ type: "t", payload });
      assert.deepEqual(Object.keys(stored.payload).sort(), ["__proto__", "deep"]);
      assert.deepEqual(stored.payload, payload);
      const listed = await sw.listBriefs({ before: new Date(), limit: 1 });
      assert.ok(Array.isArray(listed));
      await assert.rejects(sw.listBriefs({ before: "yesterday" }), { name: "InvalidBrief", field: "before" });
      await assert.rejects(sw.listBriefs({ limit: "2" }), { name: "InvalidBrief", field: "limit" });
      await assert.rejects(sw.listBriefs(null), InvalidBrief);
    });

    test("waitForJob and followBrief refuse polling options that would poll without pause", async () => {
      let queries = 0;
      const counted = createSupaworker(
        transport === "pg"
          ? { query: (q) => ((queries += 1), db.query(q)) }
          : { schema: (s) => ({ rpc: (fn, args) => ((queries += 1), db.schema(s).rpc(fn, args)) }), rpc() {} },
        { schema: env.schema },
      );
      const job = await sw.createJob({ type: "t" });
      const { brief } = await sw.createBriefWithJob({ user_id: uniqueUser(), query: "q", media_type: "text" });
      const stop = () => AbortSignal.timeout(300);
      for (const options of [{ timeoutMs: NaN }, { intervalMs: 0 }, { intervalMs: -5 }, { intervalMs: NaN }]) {
        queries = 0;
        await assert.rejects(counted.waitForJob(job.id, { ...options, signal: stop() }), RangeError);
        await assert.rejects(counted.waitForBrief(brief.id, { ...options, signal: stop() }), RangeError);
        assert.equal(queries, 0, JSON.stringify(options));
      }
    });
  });
}
