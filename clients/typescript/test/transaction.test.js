// Over node-postgres the client joins the application's own transaction: the job exists only if it commits.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import pg from "pg";

import { InvalidBrief, createSupaworker } from "../src/index.js";
import { SKIP, countBriefs, env, pgClient, uniqueUser } from "./support.js";

describe("inside the application's transaction (pg)", { skip: SKIP }, () => {
  let pool;
  let owner;

  before(async () => {
    pool = new pg.Pool({ connectionString: env.databaseUrl, max: 3 });
    owner = await pgClient();
  });

  after(async () => {
    await pool.end();
    await owner.end();
  });

  test("a rolled-back transaction leaves no brief and no job; a committed one leaves both", async () => {
    const user = uniqueUser();
    const client = await pool.connect();
    try {
      const sw = createSupaworker(client, { schema: env.schema });
      await client.query("BEGIN");
      const { brief } = await sw.createBriefWithJob({ user_id: user, query: "q", media_type: "video", use_pipeline: true });
      await sw.createJob({ brief_id: brief.id, type: "analysis", metadata: { extra: true } });
      assert.deepEqual(await countBriefs(owner, user), { briefs: 0, jobs: 0 }); // not visible before COMMIT
      await client.query("ROLLBACK");
      assert.deepEqual(await countBriefs(owner, user), { briefs: 0, jobs: 0 });

      await client.query("BEGIN");
      await sw.createBriefWithJob({ user_id: user, query: "q", media_type: "video", use_pipeline: true });
      await client.query("COMMIT");
      assert.deepEqual(await countBriefs(owner, user), { briefs: 1, jobs: 4 });
    } finally {
      client.release();
    }
  });

  test("a rejected brief inside a transaction wrote nothing, and the rest of the transaction still commits", async () => {
    const user = uniqueUser();
    const client = await pool.connect();
    try {
      const sw = createSupaworker(client, { schema: env.schema });
      await client.query("BEGIN");
      await sw.createBriefWithJob({ user_id: user, query: "kept", media_type: "text" });
      await client.query("SAVEPOINT before_bad");
      await assert.rejects(
        sw.createBriefWithJob({ user_id: user, query: "q", media_type: "text", steps: ["analysis", " "] }),
        InvalidBrief,
      );
      await client.query("ROLLBACK TO SAVEPOINT before_bad");
      await client.query("COMMIT");
      assert.deepEqual(await countBriefs(owner, user), { briefs: 1, jobs: 1 });
    } finally {
      client.release();
    }
  });

  test("a Pool works too (each call its own transaction)", async () => {
    const sw = createSupaworker(pool, { schema: env.schema });
    const job = await sw.createJob({ type: "analysis", metadata: { from: "pool" } });
    assert.deepEqual((await sw.getJob(job.id)).payload, { from: "pool" });
  });
});
