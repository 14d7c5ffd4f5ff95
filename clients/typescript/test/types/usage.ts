// Compiled (not run) by types.test.js: the declarations accept the old system's calls and give typed results.
import { createClient } from "@supabase/supabase-js";
import pg from "pg";

import {
  type Brief,
  InvalidJob,
  type Job,
  JobFailed,
  SupaworkerError,
  WaitTimeout,
  createSupaworker,
} from "../../src/index.js";

declare const briefId: string;
declare const videoUrl: string;
declare const userId: string;
declare const userQuery: string;

export async function seedCalls(): Promise<void> {
  const supabase = createClient("https://x.supabase.co", "service-role-key");
  const { createJob, createBriefWithJob, waitForJob, followBrief, listBriefs } = createSupaworker(supabase);
  const job: Job = await createJob({ brief_id: briefId, type: "analysis", metadata: { video_url: videoUrl } });
  const result = await createBriefWithJob({
    user_id: userId,
    title: "Analysis Request",
    description: "Process user query",
    query: userQuery,
    media_type: "text",
  });
  const first: Job = result.job;
  const steps: Job[] = result.brief.steps;
  const done: Job = await waitForJob(job.id, { timeoutMs: 1000 });
  for await (const brief of followBrief(result.brief.id, { intervalMs: 100 })) {
    const status: Brief["status"] = brief.status;
    void status;
  }
  const page: Brief[] = await listBriefs({ user_id: userId, status: "completed", limit: 10 });
  // A job id as a route's parameter holds it, or as a BigInt.
  const fromRoute: Job = await createSupaworker(supabase).getJob("42");
  const fromBigInt: Job = await createSupaworker(supabase).getJob(BigInt(job.id));
  void [first, steps, done, page, fromRoute, fromBigInt];
}

export async function inTransaction(pool: pg.Pool): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const sw = createSupaworker(client, { schema: "supaworker" });
    const ids = await sw.createJobs([
      { type: "fetch", key: "f" },
      { type: "render", depends_on: ["f", 1], run_at: new Date() },
    ]);
    await client.query("COMMIT");
    return ids;
  } catch (error) {
    await client.query("ROLLBACK");
    if (error instanceof InvalidJob) console.log(error.field, error.code);
    if (error instanceof JobFailed) console.log(error.job.last_error, error.status);
    if (error instanceof WaitTimeout) console.log(error.timeoutMs);
    if (error instanceof SupaworkerError) console.log(error.message);
    throw error;
  } finally {
    client.release();
  }
}

// @ts-expect-error: media_type is one of the four media types
createSupaworker(new pg.Pool()).createBriefWithJob({ user_id: "u", query: "q", media_type: "film" });
// @ts-expect-error: a job needs a type
createSupaworker(new pg.Pool()).createJob({ payload: {} });
