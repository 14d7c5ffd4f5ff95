// Every client function, through supabase-js (service-role key, via PostgREST) and through node-postgres.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  BriefNotFound,
  InvalidBrief,
  InvalidJob,
  InvalidTransition,
  JobFailed,
  JobNotFound,
  SupaworkerError,
  WaitTimeout,
  createSupaworker,
} from "../src/index.js";
import {
  SKIP,
  completeJob,
  countBriefs,
  env,
  failJob,
  finishRunning,
  moveToHistory,
  pgClient,
  reportProgress,
  serviceClient,
  startGateway,
  uniqueUser,
} from "./support.js";

const TRANSPORTS = ["supabase-js", "pg"];

for (const transport of TRANSPORTS) {
  describe(`over ${transport}`, { skip: SKIP }, () => {
    let gateway;
    let owner; // the test's worker: moves jobs as supaworker's worker does
    let db;
    let sw;

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

    test("createJob takes the seed's { brief_id, type, metadata }", async () => {
      const { brief } = await sw.createBriefWithJob({ user_id: uniqueUser(), query: "q", media_type: "video" });
      const job = await sw.createJob({ brief_id: brief.id, type: "analysis", metadata: { video_url: "v.mp4" } });
      assert.equal(job.type, "analysis");
      assert.equal(job.status, "pending");
      assert.equal(job.brief_id, brief.id);
      assert.deepEqual(job.payload, { video_url: "v.mp4" });
      assert.deepEqual((await sw.getJob(job.id)).payload, { video_url: "v.mp4" });
    });

    test("createJob takes every field of supaworker.create_job", async () => {
      const runAt = new Date(Date.UTC(2031, 0, 2, 3, 4, 5));
      const job = await sw.createJob({
        type: "render",
        payload: [1, "two"],
        priority: -5,
        run_at: runAt,
        max_attempts: 7,
        timeout: 90,
        queue: "media",
      });
      assert.deepEqual(
        [job.payload, job.priority, job.max_attempts, job.timeout_seconds, job.queue],
        [[1, "two"], -5, 7, 90, "media"],
      );
      assert.equal(new Date(job.run_at).getTime(), runAt.getTime());
      const delayed = await sw.createJob({ type: "t", delay: 3600 });
      assert.ok(new Date(delayed.run_at) - new Date(delayed.created_at) > 3590_000);
      const child = await sw.createJob({ type: "t", depends_on: [job.id] });
      assert.deepEqual([child.status, child.depends_on], ["waiting", [job.id]]);
      const key = uniqueUser("order");
      const first = await sw.createJob({ type: "t", unique_key: key });
      const again = await sw.createJob({ type: "t", unique_key: key });
      assert.deepEqual([first.duplicate, again.duplicate, again.id], [false, true, first.id]);
    });

    test("createJob and createBriefWithJob name the tenant whose share of the workers a job uses", async () => {
      const job = await sw.createJob({ type: "t", fairness_key: "tenant-a" });
      assert.equal(job.fairness_key, "tenant-a");
      assert.equal((await sw.createJob({ type: "t" })).fairness_key, "");
      const user = uniqueUser();
      const { brief } = await sw.createBriefWithJob({ user_id: user, query: "q", media_type: "text", use_pipeline: true });
      assert.deepEqual(new Set(brief.steps.map((s) => s.fairness_key)), new Set([user]));
      const team = await sw.createBriefWithJob({ user_id: user, query: "q", media_type: "text", fairness_key: "team" });
      assert.equal(team.job.fairness_key, "team");
    });

    test("createJob rejects what the Python API rejects, naming the field", async () => {
      const cases = [
        [{ type: "" }, "type", "type must be a non-empty string"],
        [{ type: "t", priority: 2 ** 31 }, "priority", "priority must be a 32-bit integer (lower runs first)"],
        [{ type: "t", max_attempts: 0 }, "max_attempts", "max_attempts must be an integer >= 1"],
        [{ type: "t", timeout: -1 }, "timeout", "timeout must be a finite number of seconds > 0, not -1"],
        [{ type: "t", delay: 5, run_at: new Date() }, "delay", "give run_at or delay, not both"],
        [{ type: "t", metadata: {}, payload: {} }, "metadata", "give payload or metadata (its old name), not both"],
        [
          { type: "t", brief_id: "00000000-0000-0000-0000-000000000001" },
          "brief_id",
          "brief_id 00000000-0000-0000-0000-000000000001 is no brief's id; create the brief first",
        ],
        [
          { type: "t", depends_on: [987654321] },
          "depends_on",
          "the job depends on unknown job id(s) 987654321 (not in the queue: never made, pruned, or finished and moved to history)",
        ],
      ];
      for (const [input, field, message] of cases) {
        await assert.rejects(sw.createJob(input), (error) => {
          assert.ok(error instanceof InvalidJob, `${JSON.stringify(input)}: ${error}`);
          assert.ok(error instanceof SupaworkerError);
          assert.equal(error.field, field, JSON.stringify(input));
          assert.equal(error.message, message);
          return true;
        });
      }
    });

    test("createJobs makes a batch with keys and depends_on, parents first", async () => {
      const existing = await sw.createJob({ type: "e" });
      const [child, parent, alone] = await sw.createJobs([
        { type: "child", key: "c", depends_on: ["p", existing.id] },
        { type: "parent", key: "p", metadata: { n: 1 } },
        { type: "alone", run_at: new Date(Date.UTC(2030, 0, 1)) },
      ]);
      assert.ok(parent < child);
      const [c, p, a] = await Promise.all([child, parent, alone].map((id) => sw.getJob(id)));
      assert.deepEqual([c.status, c.depends_on], ["waiting", [existing.id, parent].sort((x, y) => x - y)]);
      assert.deepEqual([p.status, p.payload], ["pending", { n: 1 }]);
      assert.equal(a.run_at.slice(0, 4), "2030");
      await assert.rejects(
        sw.createJobs([{ type: "a", key: "a", depends_on: ["b"] }, { type: "b", key: "b", depends_on: ["a"] }]),
        { name: "InvalidJob", message: "dependency cycle: 'a' -> 'b' -> 'a'" },
      );
      await assert.rejects(sw.createJobs([{ type: "a" }, { type: "b", priority: "high" }]), {
        name: "InvalidJob",
        message: "job #1: priority must be a 32-bit integer (lower runs first)",
      });
    });

    test("createBriefWithJob takes the seed's fields and creates every step at once", async () => {
      const user = uniqueUser();
      const { brief, job } = await sw.createBriefWithJob({
        user_id: user,
        title: "My Video Project",
        description: "Create a video about AI",
        query: "Generate a video about artificial intelligence",
        media_type: "video",
        use_pipeline: true,
      });
      assert.deepEqual(brief.pipeline, ["analysis", "asset_prep", "video_generation", "render"]);
      assert.deepEqual(
        brief.steps.map((s) => [s.type, s.status]),
        [["analysis", "pending"], ["asset_prep", "waiting"], ["video_generation", "waiting"], ["render", "waiting"]],
      );
      assert.deepEqual(job, brief.steps[0]);
      assert.equal(brief.status, "pending");
      assert.equal(job.payload.query, "Generate a video about artificial intelligence");
      assert.equal(job.payload.brief_id, brief.id);
      const single = await sw.createBriefWithJob({ user_id: user, query: "q", media_type: "text" });
      assert.deepEqual(single.brief.pipeline, ["analysis"]);
    });

    test("createBriefWithJob is atomic: a failing step definition leaves nothing", async () => {
      const user = uniqueUser();
      for (const bad of [
        { steps: ["analysis", ""] },
        { steps: ["analysis", "x".repeat(129)] },
        { media_type: "film" },
        { queue: "" },
        { options: ["not", "a", "mapping"] },
      ]) {
        await assert.rejects(
          sw.createBriefWithJob({ user_id: user, query: "q", media_type: "video", use_pipeline: true, ...bad }),
          (error) => error instanceof InvalidBrief && error instanceof InvalidJob,
        );
      }
      await assert.rejects(sw.createBriefWithJob({ user_id: "", query: "q", media_type: "video" }), {
        name: "InvalidBrief",
        field: "user_id",
        message: "user_id must be a non-empty string",
      });
      assert.deepEqual(await countBriefs(owner, user), { briefs: 0, jobs: 0 });
    });

    test("getJob, getBrief and listBriefs read jobs and briefs; missing ones are typed errors", async () => {
      const user = uniqueUser();
      const made = await sw.createBriefWithJob({ user_id: user, query: "q", media_type: "image", use_pipeline: true });
      const brief = await sw.getBrief(made.brief.id);
      assert.deepEqual(
        brief.steps.map((s) => s.id),
        made.brief.steps.map((s) => s.id),
      );
      assert.equal((await sw.getJob(made.job.id)).brief_id, made.brief.id);
      const second = await sw.createBriefWithJob({ user_id: user, query: "q2", media_type: "audio" });
      const listed = await sw.listBriefs({ user_id: user });
      assert.deepEqual(
        listed.map((b) => b.id),
        [second.brief.id, made.brief.id],
      );
      assert.deepEqual(
        (await sw.listBriefs({ user_id: user, limit: 1 })).map((b) => b.id),
        [second.brief.id],
      );
      assert.deepEqual(
        (await sw.listBriefs({ user_id: user, before: listed[0].created_at })).map((b) => b.id),
        [made.brief.id],
      );
      await assert.rejects(sw.listBriefs({ status: "done" }), { name: "InvalidBrief" });
      await assert.rejects(sw.getJob(987654321), JobNotFound);
      await assert.rejects(sw.getBrief("00000000-0000-0000-0000-000000000000"), BriefNotFound);
      await assert.rejects(sw.getBrief("not-a-uuid"), BriefNotFound);
    });

    test("getJob, getBrief and waitForJob read a job the leader moved to history", async () => {
      const made = await sw.createBriefWithJob({ user_id: uniqueUser(), query: "q", media_type: "text" });
      await completeJob(owner, made.job.id, { summary: "kept" });
      await moveToHistory(owner, made.job.id);
      const job = await sw.getJob(made.job.id);
      assert.deepEqual([job.status, job.result], ["completed", { summary: "kept" }]);
      assert.deepEqual((await sw.waitForJob(made.job.id, { timeoutMs: 5000 })).result, { summary: "kept" });
      const brief = await sw.getBrief(made.brief.id);
      assert.deepEqual([brief.status, brief.steps.map((s) => s.id)], ["completed", [made.job.id]]);
      await assert.rejects(sw.retryJob(made.job.id), InvalidTransition);
    });

    test("cancelJob and retryJob move a job, and refuse what cannot move", async () => {
      const job = await sw.createJob({ type: "t" });
      const cancelled = await sw.cancelJob(job.id, "not needed");
      assert.deepEqual([cancelled.status, cancelled.last_error], ["cancelled", "not needed"]);
      await assert.rejects(sw.cancelJob(job.id), InvalidTransition);
      assert.equal((await sw.retryJob(job.id)).status, "pending");
      await assert.rejects(sw.retryJob(job.id), InvalidTransition);
      await assert.rejects(sw.retryJob(987654321), JobNotFound);
      await assert.rejects(sw.cancelJob(987654321), JobNotFound);
    });

    test("cancelBrief and retryBrief stop and resume a whole brief", async () => {
      const { brief } = await sw.createBriefWithJob({
        user_id: uniqueUser(),
        query: "q",
        media_type: "text",
        use_pipeline: true,
      });
      const cancelled = await sw.cancelBrief(brief.id);
      assert.equal(cancelled.status, "cancelled");
      assert.ok(cancelled.steps.every((s) => s.status === "cancelled"));
      await assert.rejects(sw.cancelBrief(brief.id), InvalidTransition);
      const resumed = await sw.retryBrief(brief.id);
      assert.deepEqual(
        resumed.steps.map((s) => s.status),
        ["pending", "waiting", "waiting"],
      );
      await assert.rejects(sw.retryBrief(brief.id), InvalidTransition);
      await assert.rejects(sw.cancelBrief("00000000-0000-0000-0000-000000000000"), BriefNotFound);
    });

    test("waitForJob resolves when the job completes, and rejects on failure or timeout", async () => {
      const job = await sw.createJob({ type: "t" });
      const waiting = sw.waitForJob(job.id, { timeoutMs: 10_000, intervalMs: 50 });
      setTimeout(() => completeJob(owner, job.id, { answer: 42 }), 200);
      const done = await waiting;
      assert.deepEqual([done.status, done.result], ["completed", { answer: 42 }]);

      const failing = await sw.createJob({ type: "t" });
      await failJob(owner, failing.id, "no luck");
      await assert.rejects(sw.waitForJob(failing.id), (error) => {
        assert.ok(error instanceof JobFailed);
        assert.deepEqual([error.status, error.error, error.job.id], ["failed", "no luck", failing.id]);
        return true;
      });

      const slow = await sw.createJob({ type: "t" });
      const started = Date.now();
      await assert.rejects(sw.waitForJob(slow.id, { timeoutMs: 300, intervalMs: 50 }), (error) => {
        assert.ok(error instanceof WaitTimeout && error.status === "pending");
        return true;
      });
      assert.ok(Date.now() - started < 3000);
      await assert.rejects(sw.waitForJob(987654321), JobNotFound);
    });

    test("followBrief yields each change of its steps until the brief is final", async () => {
      const { brief } = await sw.createBriefWithJob({
        user_id: uniqueUser(),
        query: "q",
        media_type: "audio",
        use_pipeline: true,
      });
      const seen = [];
      const following = (async () => {
        for await (const snapshot of sw.followBrief(brief.id, { intervalMs: 30, timeoutMs: 20_000 })) {
          seen.push([snapshot.status, snapshot.steps.map((s) => [s.status, s.progress])]);
        }
      })();
      const pause = () => new Promise((resolve) => setTimeout(resolve, 150));
      const [first, second, third] = brief.steps.map((s) => s.id);
      await pause();
      const attempt = await reportProgress(owner, first, 50, "half way");
      await pause();
      await finishRunning(owner, first, attempt);
      await pause();
      await completeJob(owner, second);
      await pause();
      await completeJob(owner, third, { url: "final.mp3" });
      await following;
      assert.deepEqual(seen[0], ["pending", [["pending", null], ["waiting", null], ["waiting", null]]]);
      assert.ok(seen.some(([status, steps]) => status === "processing" && steps[0][1] === 50), JSON.stringify(seen));
      assert.deepEqual(seen.at(-1)[0], "completed");
      const done = await sw.waitForBrief(brief.id);
      assert.deepEqual([done.status, done.result], ["completed", { url: "final.mp3" }]);
    });
  });
}
