// What the tests run against, from the environment tests/acceptance/test_typescript_client.py sets up: a
// migrated PostgreSQL with Supabase's roles, and PostgREST 12 serving supaworker's schema behind a gateway
// that answers at /rest/v1 as Supabase does. Without it (plain `npm test`) every test skips, saying why.

import { createHmac, randomUUID } from "node:crypto";
import http from "node:http";

import { createClient } from "@supabase/supabase-js";
import pg from "pg";

export const env = {
  databaseUrl: process.env.SUPAWORKER_TEST_DATABASE_URL,
  postgrestUrl: process.env.SUPAWORKER_TEST_POSTGREST_URL,
  jwtSecret: process.env.SUPAWORKER_TEST_JWT_SECRET,
  schema: process.env.SUPAWORKER_TEST_SCHEMA || "supaworker",
};

export const SKIP =
  env.databaseUrl && env.postgrestUrl && env.jwtSecret
    ? false
    : "needs SUPAWORKER_TEST_DATABASE_URL, SUPAWORKER_TEST_POSTGREST_URL and SUPAWORKER_TEST_JWT_SECRET: " +
      "run the suite with scripts/test (tests/acceptance/test_typescript_client.py starts them)";

function base64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** An HS256 JWT as Supabase issues them: the project's keys ({ role }) and a user's session ({ role, sub }). */
export function jwt(claims) {
  const body = { iss: "supabase", exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  const unsigned = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url(body)}`;
  const signature = createHmac("sha256", env.jwtSecret).update(unsigned).digest("base64url");
  return `${unsigned}.${signature}`;
}

export const keys = {
  get service() {
    return jwt({ role: "service_role" });
  },
  get anon() {
    return jwt({ role: "anon" });
  },
  user(sub) {
    return jwt({ role: "authenticated", sub, aud: "authenticated" });
  },
};

/** Supabase's gateway in miniature: /rest/v1/* goes to PostgREST, which supabase-js expects there. */
export async function startGateway() {
  const target = new URL(env.postgrestUrl);
  const server = http.createServer((req, res) => {
    if (!req.url.startsWith("/rest/v1/")) {
      res.writeHead(404).end();
      return;
    }
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url.slice("/rest/v1".length),
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", (error) => res.writeHead(502).end(String(error)));
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  const close = () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections(); // keep-alive connections of fetch would hold close() for seconds
    });
  return { url: `http://127.0.0.1:${port}`, close };
}

const clientOptions = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } };

/** A supabase-js client as an application's server makes it: with the service-role key. */
export function serviceClient(gatewayUrl) {
  return createClient(gatewayUrl, keys.service, clientOptions);
}

/** A supabase-js client as a browser holds it: the anon key, and optionally a signed-in user's JWT. */
export function browserClient(gatewayUrl, userId = null) {
  const headers = userId ? { Authorization: `Bearer ${keys.user(userId)}` } : {};
  return createClient(gatewayUrl, keys.anon, { ...clientOptions, global: { headers } });
}

export async function pgClient() {
  const client = new pg.Client({ connectionString: env.databaseUrl });
  await client.connect();
  return client;
}

export function uniqueUser(label = "user") {
  return `${label}-${randomUUID()}`;
}

// -- a worker's moves, in SQL, as supaworker's worker makes them -----------------------------------------

async function start(db, jobId) {
  const { rows } = await db.query(
    `UPDATE ${env.schema}.jobs SET status = 'processing', worker_id = 'test-worker', attempts = attempts + 1,
            started_at = now(), lease_expires_at = now() + interval '30 seconds', handler_started = true
      WHERE id = $1 AND status = 'pending' RETURNING attempts`,
    [jobId],
  );
  if (!rows.length) throw new Error(`job ${jobId} is not pending`);
  return rows[0].attempts;
}

export async function completeJob(db, jobId, result = { ok: true }) {
  const attempt = await start(db, jobId);
  await db.query(`SELECT * FROM ${env.schema}.complete_jobs('test-worker', ARRAY[$1::bigint], ARRAY[$2::integer],
                  ARRAY[$3::jsonb])`, [jobId, attempt, JSON.stringify(result)]);
}

// What the leader's archive_finished_jobs() does with history on (migration 0019), for this one job only:
// the other test files share the database and their finished jobs must stay where they are.
export async function moveToHistory(db, jobId) {
  await db.query(`SELECT ${env.schema}.history_partition(completed_at, 86400) FROM ${env.schema}.jobs WHERE id = $1`, [
    jobId,
  ]);
  await db.query(
    `WITH moved AS (DELETE FROM ${env.schema}.jobs WHERE id = $1 RETURNING *)
     INSERT INTO ${env.schema}.job_history SELECT * FROM moved`,
    [jobId],
  );
}

export async function failJob(db, jobId, error = "boom") {
  const attempt = await start(db, jobId);
  await db.query(`SELECT ${env.schema}.fail_job($1, 'test-worker', $2, $3, 5, 3600, false)`, [jobId, error, attempt]);
}

export async function reportProgress(db, jobId, percent, message) {
  const attempt = await start(db, jobId);
  await db.query(
    `SELECT * FROM ${env.schema}.update_job_progress('test-worker', ARRAY[$1::bigint], ARRAY[$2::integer],
            ARRAY[$3::real], ARRAY[$4::text])`,
    [jobId, attempt, percent, message],
  );
  return attempt;
}

export async function finishRunning(db, jobId, attempt, result = { ok: true }) {
  await db.query(`SELECT * FROM ${env.schema}.complete_jobs('test-worker', ARRAY[$1::bigint], ARRAY[$2::integer],
                  ARRAY[$3::jsonb])`, [jobId, attempt, JSON.stringify(result)]);
}

export async function countBriefs(db, userId) {
  const { rows } = await db.query(
    `SELECT (SELECT count(*) FROM ${env.schema}.briefs WHERE user_id = $1)::int AS briefs,
            (SELECT count(*) FROM ${env.schema}.jobs j JOIN ${env.schema}.briefs b ON b.id = j.brief_id
              WHERE b.user_id = $1)::int AS jobs`,
    [userId],
  );
  return rows[0];
}
