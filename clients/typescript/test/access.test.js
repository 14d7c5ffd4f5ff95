// Who may do what through PostgREST with Supabase's roles: only the service role enqueues; a signed-in user
// reads their own briefs and their steps (schema exposed with expose_briefs()), nobody else's; anon nothing.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { PermissionDenied, createSupaworker } from "../src/index.js";
import {
  SKIP,
  browserClient,
  completeJob,
  env,
  keys,
  pgClient,
  serviceClient,
  startGateway,
  uniqueUser,
} from "./support.js";

describe("Supabase's roles through PostgREST", { skip: SKIP }, () => {
  let gateway;
  let owner;
  let sw;
  let alice;
  let bob;
  let aliceBrief;
  let bobBrief;

  before(async () => {
    gateway = await startGateway();
    owner = await pgClient();
    sw = createSupaworker(serviceClient(gateway.url), { schema: env.schema });
    alice = uniqueUser("alice");
    bob = uniqueUser("bob");
    aliceBrief = (await sw.createBriefWithJob({ user_id: alice, query: "mine", media_type: "text", use_pipeline: true }))
      .brief;
    bobBrief = (await sw.createBriefWithJob({ user_id: bob, query: "secret", media_type: "video" })).brief;
    await completeJob(owner, aliceBrief.steps[0].id, { summary: "done" });
  });

  after(async () => {
    await owner.end();
    await gateway.close();
  });

  test("anon and authenticated keys cannot enqueue or read through the SQL API", async () => {
    for (const client of [browserClient(gateway.url), browserClient(gateway.url, alice)]) {
      const theirs = createSupaworker(client, { schema: env.schema });
      await assert.rejects(theirs.createJob({ type: "analysis" }), PermissionDenied);
      await assert.rejects(
        theirs.createBriefWithJob({ user_id: alice, query: "q", media_type: "text" }),
        PermissionDenied,
      );
      await assert.rejects(theirs.getBrief(aliceBrief.id), PermissionDenied);
    }
  });

  test("a signed-in user reads their own brief, its status and its steps' progress and results", async () => {
    const db = browserClient(gateway.url, alice).schema(env.schema);
    const briefs = await db.from("user_briefs").select("id, status, steps_completed, steps_total");
    assert.equal(briefs.error, null);
    assert.deepEqual(briefs.data, [{ id: aliceBrief.id, status: "processing", steps_completed: 1, steps_total: 3 }]);
    const steps = await db
      .from("user_brief_steps")
      .select("id, type, status, progress, result")
      .eq("brief_id", aliceBrief.id)
      .order("id");
    assert.equal(steps.error, null);
    assert.deepEqual(
      steps.data.map((s) => [s.type, s.status, s.result]),
      [["analysis", "completed", { summary: "done" }], ["text_analysis", "pending", null], ["render", "waiting", null]],
    );
    const table = await db.from("briefs").select("id, user_id, query");
    assert.deepEqual(table.data, [{ id: aliceBrief.id, user_id: alice, query: "mine" }]);
  });

  test("a user sees nothing of another user's briefs", async () => {
    const db = browserClient(gateway.url, alice).schema(env.schema);
    for (const [relation, column] of [["user_briefs", "id"], ["briefs", "id"], ["user_brief_steps", "brief_id"], ["jobs", "brief_id"]]) {
      const answer = await db.from(relation).select("id").eq(column, bobBrief.id);
      assert.equal(answer.error, null, relation);
      assert.deepEqual(answer.data, [], relation);
    }
    const someoneElse = browserClient(gateway.url, uniqueUser("carol")).schema(env.schema);
    assert.deepEqual((await someoneElse.from("user_briefs").select("id")).data, []);
  });

  test("a user may not read steps' payloads or write anything", async () => {
    const db = browserClient(gateway.url, alice).schema(env.schema);
    const payload = await db.from("jobs").select("payload").eq("brief_id", aliceBrief.id);
    assert.equal(payload.error?.code, "42501");
    const insert = await db.from("briefs").insert({ user_id: alice, query: "q", media_type: "text", pipeline: ["analysis"] });
    assert.equal(insert.error?.code, "42501");
    const update = await db.from("briefs").update({ query: "changed" }).eq("id", aliceBrief.id);
    assert.equal(update.error?.code, "42501");
    const remove = await db.from("jobs").delete().eq("brief_id", aliceBrief.id);
    assert.equal(remove.error?.code, "42501");
    assert.equal((await sw.getBrief(aliceBrief.id)).query, "mine");
  });

  test("anon reads nothing at all", async () => {
    const db = browserClient(gateway.url).schema(env.schema);
    for (const relation of ["user_briefs", "briefs", "user_brief_steps", "jobs"]) {
      const answer = await db.from(relation).select("id");
      assert.equal(answer.error?.code, "42501", `${relation}: ${JSON.stringify(answer)}`);
    }
  });

  test("a JWT signed with another secret is refused", async () => {
    const forged = keys.user(alice).split(".").slice(0, 2).join(".") + ".AAAA";
    const response = await fetch(`${gateway.url}/rest/v1/user_briefs`, {
      headers: { Authorization: `Bearer ${forged}`, "Accept-Profile": env.schema, apikey: keys.anon },
    });
    assert.equal(response.status, 401);
  });
});
