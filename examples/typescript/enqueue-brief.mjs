// Enqueues a brief from Node and follows it until its last step is done, as a Next.js route or a script
// would. Run a worker first (`supaworker worker`, or `supaworker up`), then:
//
//   npm install
//   DATABASE_URL=postgresql://... node enqueue-brief.mjs "Make a video about Lisbon trams" video
//   # or, on a Supabase project, over HTTPS with the service-role key (server side only):
//   SUPABASE_URL=https://<ref>.supabase.co SUPABASE_SERVICE_ROLE_KEY=... node enqueue-brief.mjs "..." text
//
// It prints each change of the brief's steps and exits 0 when the brief completed, 1 when it failed or was
// cancelled, 2 on a bad argument or setting.

import { createClient } from "@supabase/supabase-js";
import pg from "pg";

import { InvalidJob, SupaworkerError, createSupaworker } from "@supaworker/client";

const [query = "Write a short text about the sea", mediaType = "text"] = process.argv.slice(2);
const schema = process.env.SUPAWORKER_SCHEMA || "supaworker";
const timeoutMs = Number(process.env.WAIT_TIMEOUT_MS || 120_000);

let db;
let done = async () => {};
if (process.env.DATABASE_URL) {
  db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  done = () => db.end();
} else if (process.env.SUPABASE_URL && process.env.SUPABASE_SERVICE_ROLE_KEY) {
  db = createClient(process.env.SUPABASE_URL, process.env.SUPABASE_SERVICE_ROLE_KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
} else {
  console.error("set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY");
  process.exit(2);
}

const { createBriefWithJob, followBrief } = createSupaworker(db, { schema });

let code = 1;
try {
  // The old system's call, unchanged.
  const { brief, job } = await createBriefWithJob({
    user_id: process.env.USER_ID || "example-user",
    title: "Example",
    description: "Enqueued by examples/typescript/enqueue-brief.mjs",
    query,
    media_type: mediaType,
    use_pipeline: true,
  });
  console.log(`brief ${brief.id}: ${brief.pipeline.join(" -> ")} (first job ${job.id})`);
  for await (const snapshot of followBrief(brief.id, { timeoutMs, intervalMs: 250 })) {
    const steps = snapshot.steps
      .map((s) => `${s.type}=${s.status}${s.progress != null && s.status === "processing" ? ` ${s.progress}%` : ""}`)
      .join(" ");
    console.log(`${snapshot.status.padEnd(10)} ${snapshot.steps_completed}/${snapshot.steps_total}  ${steps}`);
    if (snapshot.status === "completed") {
      console.log(`result: ${JSON.stringify(snapshot.result)}`);
      code = 0;
    } else if (snapshot.status === "failed" || snapshot.status === "cancelled") {
      console.log(`${snapshot.failed_step ?? "brief"}: ${snapshot.error}`);
    }
  }
} catch (error) {
  if (!(error instanceof SupaworkerError)) throw error;
  console.error(`${error.name}${error.field ? ` (${error.field})` : ""}: ${error.message}`);
  code = error instanceof InvalidJob ? 2 : 1;
} finally {
  await done();
}
process.exit(code);
