// supaworker's client for TypeScript and JavaScript: enqueue and follow jobs and briefs.
//
// Every call is one of supaworker's SQL functions (migration 0008), reached either over supabase-js
// (`.rpc`, with a client made from the service-role key, on the server) or over node-postgres (a Client, a
// PoolClient inside the application's own transaction, or a Pool). The database checks every field, with
// the same rules and messages as the Python API; this module only translates names and errors.

export const JOB_STATUSES = Object.freeze(["waiting", "pending", "processing", "completed", "failed", "cancelled"]);
export const BRIEF_STATUSES = Object.freeze(["failed", "cancelled", "completed", "processing", "pending"]);
const FINAL_JOB_STATUSES = new Set(["completed", "failed", "cancelled"]);
const FINAL_BRIEF_STATUSES = new Set(["completed", "failed", "cancelled"]);

export const DEFAULT_SCHEMA = "supaworker";
export const DEFAULT_WAIT_TIMEOUT_MS = 60_000;
export const DEFAULT_POLL_INTERVAL_MS = 500;
const FIRST_POLL_MS = 20;

// -- errors ------------------------------------------------------------------------------------------------

/** Base of every error this client throws on purpose. `code` is the SQLSTATE or PostgREST code, if any. */
export class SupaworkerError extends Error {
  constructor(message, { code = null, field = null, details = null, hint = null, cause = undefined } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
    this.field = field;
    this.details = details;
    this.hint = hint;
  }
}

/** A job's fields were rejected; nothing was written. `field` names the rejected field when known. */
export class InvalidJob extends SupaworkerError {}
/** A brief's fields were rejected; nothing was written. */
export class InvalidBrief extends InvalidJob {}
export class JobNotFound extends SupaworkerError {}
export class BriefNotFound extends SupaworkerError {}
/** The job or brief is not in a state that allows the action (e.g. retrying a completed job). */
export class InvalidTransition extends SupaworkerError {}
/** The key or role may not call supaworker (anon and authenticated never may enqueue). */
export class PermissionDenied extends SupaworkerError {}
/** supaworker's SQL API is missing: the schema is not migrated, not exposed, or the cache is stale. */
export class NotInstalled extends SupaworkerError {}
/** waitForJob: the job ended failed or cancelled. */
export class JobFailed extends SupaworkerError {
  constructor(job) {
    super(`job ${job.id} ${job.status}: ${job.last_error ?? "no error recorded"}`);
    this.job = job;
    this.jobId = job.id;
    this.status = job.status;
    this.error = job.last_error ?? null;
  }
}
/** waitForJob / followBrief: the timeout passed first (the job may still finish later). */
export class WaitTimeout extends SupaworkerError {
  constructor(what, timeoutMs, status) {
    super(`${what} still ${status} after waiting ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
    this.status = status;
  }
}

const INVALID_INPUT = new Set([
  "22023", // invalid_parameter_value: supaworker's own checks
  "23514", // check_violation: a dependency the database refused (cycle, dead parent)
  "22P02", // invalid_text_representation: e.g. a uuid or number PostgreSQL cannot read
  "22003", // numeric_value_out_of_range
  "22P05", // untranslatable_character: \u0000 in JSON
  "22007", // invalid_datetime_format
  "22008", // datetime_field_overflow
  "2202E", // array_subscript_error
  "22004", // null_value_not_allowed
]);

function fieldOf(details, column) {
  if (column) return column;
  const match = typeof details === "string" ? /^field: (\S+)$/.exec(details) : null;
  return match ? match[1] : null;
}

function translate(error, { brief = false } = {}) {
  const code = error.code || null;
  const details = error.details ?? error.detail ?? null;
  const hint = error.hint ?? null;
  const message = error.message || String(error);
  const base = { code, details, hint, field: fieldOf(details, error.column), cause: error };
  if (INVALID_INPUT.has(code)) return new (brief ? InvalidBrief : InvalidJob)(message, base);
  if (code === "42501") {
    return new PermissionDenied(
      `${message}: supaworker's functions are for the service role (a supabase-js client made with the ` +
        "service-role key, on the server) or the database owner; anon and authenticated may not call them",
      base,
    );
  }
  if (code === "PGRST202" || code === "42883" || code === "3F000") {
    return new NotInstalled(
      `${message}: run \`supaworker migrate\` (and reload PostgREST's schema cache: NOTIFY pgrst, 'reload schema')`,
      base,
    );
  }
  if (code === "PGRST106") {
    return new NotInstalled(
      `${message}: add supaworker's schema to the exposed schemas (Supabase: Project Settings > API)`,
      base,
    );
  }
  return new SupaworkerError(message, base);
}

// -- transports --------------------------------------------------------------------------------------------

// Each SQL function's arguments and their types: node-postgres sends text, so each gets its cast.
const SIGNATURES = {
  create_job: {
    type: "text",
    payload: "jsonb",
    priority: "bigint",
    run_at: "timestamptz",
    delay: "float8",
    max_attempts: "bigint",
    timeout: "float8",
    brief_id: "uuid",
    queue: "text",
    unique_key: "text",
    unique_for: "float8",
    depends_on: "bigint[]",
    fairness_key: "text",
  },
  create_jobs: { jobs: "jsonb" },
  create_brief_with_job: {
    user_id: "text",
    title: "text",
    description: "text",
    query: "text",
    media_type: "text",
    use_pipeline: "boolean",
    steps: "text[]",
    options: "jsonb",
    priority: "bigint",
    max_attempts: "bigint",
    queue: "text",
    fairness_key: "text",
  },
  get_job: { job_id: "bigint" },
  get_brief: { brief_id: "uuid" },
  list_briefs: { user_id: "text", status: "text", before: "timestamptz", limit: "integer" },
  retry_job: { p_job_id: "bigint" },
  cancel_job: { p_job_id: "bigint", p_reason: "text" },
  retry_brief: { p_brief_id: "uuid" },
  cancel_brief: { p_brief_id: "uuid", p_reason: "text" },
};

function quoteIdent(name) {
  return `"${String(name).replace(/"/g, '""')}"`;
}

function isSupabase(db) {
  return db && typeof db.rpc === "function" && typeof db.schema === "function";
}

function isPg(db) {
  return db && typeof db.query === "function";
}

function supabaseTransport(db, schema) {
  return async (fn, args, options) => {
    let response;
    try {
      response = await db.schema(schema).rpc(fn, args);
    } catch (error) {
      throw translate(error, options);
    }
    if (response.error) throw translate(response.error, options);
    return response.data;
  };
}

function pgTransport(db, schema) {
  return async (fn, args, options) => {
    const signature = SIGNATURES[fn];
    const names = Object.keys(args);
    const values = names.map((name) => {
      const value = args[name];
      // jsonb goes as JSON text: node-postgres would write a JS array as a PostgreSQL array.
      if (signature[name] === "jsonb" && value !== null) return JSON.stringify(value);
      return value;
    });
    const list = names.map((name, i) => `${quoteIdent(name)} => $${i + 1}::${signature[name]}`).join(", ");
    const text = `SELECT ${quoteIdent(schema)}.${quoteIdent(fn)}(${list}) AS r`;
    let result;
    try {
      result = await db.query({ text, values });
    } catch (error) {
      throw translate(error, options);
    }
    return result.rows[0]?.r ?? null;
  };
}

// -- arguments ---------------------------------------------------------------------------------------------

function only(fn, fields) {
  const known = SIGNATURES[fn];
  const args = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (!(name in known)) throw new InvalidJob(`unknown field ${JSON.stringify(name)}`, { field: name });
    args[name] = value instanceof Date ? value.toISOString() : value;
  }
  return args;
}

/** The seed's `metadata` is the payload's old name: either may be given, not both. */
function withPayload(input, label = "") {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new InvalidJob(`${label}a job must be an object with a 'type'`);
  }
  if (!("metadata" in input) || input.metadata === undefined) return input;
  const { metadata, ...rest } = input;
  if ("payload" in rest && rest.payload !== undefined) {
    throw new InvalidJob(`${label}give payload or metadata (its old name), not both`, { field: "metadata" });
  }
  return { ...rest, payload: metadata };
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function briefId(id) {
  if (typeof id !== "string" || !UUID.test(id)) {
    throw new BriefNotFound(`no brief with id ${JSON.stringify(id)} (not a UUID)`);
  }
  return id;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// What a brief's follower compares: anything a progress page would show.
function briefFingerprint(brief) {
  return JSON.stringify([
    brief.status,
    brief.steps_completed,
    brief.error,
    (brief.steps ?? []).map((s) => [s.id, s.status, s.progress, s.progress_message, s.attempts]),
  ]);
}

// -- the client --------------------------------------------------------------------------------------------

/**
 * A supaworker client over `db`: a supabase-js client (made with the service-role key, on the server) or a
 * node-postgres Client, PoolClient or Pool. With a Client or PoolClient inside `BEGIN`, every write joins
 * that transaction: the job exists only if it commits. Methods are bound, so they can be destructured.
 */
export function createSupaworker(db, { schema = DEFAULT_SCHEMA } = {}) {
  let call;
  if (isSupabase(db)) call = supabaseTransport(db, schema);
  else if (isPg(db)) call = pgTransport(db, schema);
  else {
    throw new TypeError("createSupaworker needs a supabase-js client or a node-postgres Client, PoolClient or Pool");
  }

  async function createJob(input) {
    const fields = withPayload(input);
    return call("create_job", only("create_job", fields));
  }

  async function createJobs(jobs) {
    if (!Array.isArray(jobs)) throw new InvalidJob("jobs must be a list of jobs", { field: "jobs" });
    const items = jobs.map((job, index) => {
      const item = withPayload(job, `job #${index}: `);
      const out = {};
      for (const [name, value] of Object.entries(item)) {
        if (value !== undefined) out[name] = value instanceof Date ? value.toISOString() : value;
      }
      return out;
    });
    return call("create_jobs", { jobs: items });
  }

  async function createBriefWithJob(input) {
    if (input === null || typeof input !== "object") throw new InvalidBrief("a brief must be an object");
    return call("create_brief_with_job", only("create_brief_with_job", input), { brief: true });
  }

  async function getJob(jobId) {
    const job = await call("get_job", { job_id: jobId });
    if (job === null) throw new JobNotFound(`no job with id ${jobId}`);
    return job;
  }

  async function getBrief(id) {
    const brief = await call("get_brief", { brief_id: briefId(id) });
    if (brief === null) throw new BriefNotFound(`no brief with id ${id}`);
    return brief;
  }

  async function listBriefs(filters = {}) {
    return call("list_briefs", only("list_briefs", filters), { brief: true });
  }

  async function retryJob(jobId) {
    const status = await call("retry_job", { p_job_id: jobId });
    const job = await getJob(jobId);
    if (status === null) {
      throw new InvalidTransition(
        FINAL_JOB_STATUSES.has(job.status) && job.status !== "completed"
          ? `job ${jobId} is ${job.status} because a job it depends on is; retry that job instead`
          : `job ${jobId} is ${job.status}; only failed or cancelled jobs can be retried`,
      );
    }
    return job;
  }

  async function cancelJob(jobId, reason = "cancelled by request") {
    const status = await call("cancel_job", { p_job_id: jobId, p_reason: reason });
    const job = await getJob(jobId);
    if (status === null) throw new InvalidTransition(`job ${jobId} is already ${job.status}`);
    return job;
  }

  async function cancelBrief(id, reason = "brief cancelled by request") {
    const cancelled = await call("cancel_brief", { p_brief_id: briefId(id), p_reason: reason });
    const brief = await getBrief(id);
    if (!cancelled) {
      throw new InvalidTransition(`brief ${id} is ${brief.status}; it has no unfinished step to cancel`);
    }
    return brief;
  }

  async function retryBrief(id) {
    const retried = await call("retry_brief", { p_brief_id: briefId(id) });
    const brief = await getBrief(id);
    if (!retried) {
      throw new InvalidTransition(`brief ${id} is ${brief.status}; only failed or cancelled briefs can be retried`);
    }
    return brief;
  }

  /** Resolves with the job once it completed; rejects with JobFailed, JobNotFound or WaitTimeout. */
  async function waitForJob(
    jobId,
    { timeoutMs = DEFAULT_WAIT_TIMEOUT_MS, intervalMs = DEFAULT_POLL_INTERVAL_MS, signal } = {},
  ) {
    const deadline = timeoutMs == null ? Infinity : Date.now() + timeoutMs;
    let interval = Math.min(FIRST_POLL_MS, intervalMs);
    for (;;) {
      const job = await getJob(jobId);
      if (job.status === "completed") return job;
      if (job.status === "failed" || job.status === "cancelled") throw new JobFailed(job);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new WaitTimeout(`job ${jobId}`, timeoutMs, job.status);
      await sleep(Math.min(interval, remaining), signal);
      interval = Math.min(interval * 1.5, intervalMs);
    }
  }

  /**
   * Follows a brief: yields it (with its steps) at once, then each time its status or a step's status or
   * progress changes, and returns after yielding it completed, failed or cancelled. Stops with WaitTimeout
   * after `timeoutMs` (none by default) or when `signal` aborts.
   */
  async function* followBrief(id, { intervalMs = DEFAULT_POLL_INTERVAL_MS, timeoutMs = null, signal } = {}) {
    const deadline = timeoutMs == null ? Infinity : Date.now() + timeoutMs;
    let last = null;
    for (;;) {
      const brief = await getBrief(id);
      const seen = briefFingerprint(brief);
      if (seen !== last) {
        last = seen;
        yield brief;
      }
      if (FINAL_BRIEF_STATUSES.has(brief.status)) return;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new WaitTimeout(`brief ${id}`, timeoutMs, brief.status);
      await sleep(Math.min(intervalMs, remaining), signal);
    }
  }

  /** Resolves with the brief once it reached completed, failed or cancelled (see followBrief). */
  async function waitForBrief(id, options = {}) {
    let latest = null;
    for await (const brief of followBrief(id, { timeoutMs: DEFAULT_WAIT_TIMEOUT_MS, ...options })) {
      latest = brief;
      options.onProgress?.(brief);
    }
    return latest;
  }

  return Object.freeze({
    schema,
    createJob,
    createJobs,
    createBriefWithJob,
    getJob,
    getBrief,
    listBriefs,
    retryJob,
    cancelJob,
    cancelBrief,
    retryBrief,
    waitForJob,
    followBrief,
    waitForBrief,
  });
}
