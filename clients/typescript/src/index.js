// supaworker's client for TypeScript and JavaScript: enqueue and follow jobs and briefs.
//
// Every call is one of supaworker's SQL functions (migration 0008), reached either over supabase-js
// (`.rpc`, with a client made from the service-role key, on the server) or over node-postgres (a Client, a
// PoolClient inside the application's own transaction, or a Pool). The database checks every field, with
// the same rules and messages as the Python API. This module checks only what the database cannot see
// (see "checks" below): JavaScript's types, which both transports turn into text or JSON before it looks,
// and values that JSON or UTF-8 would change or refuse on the way (NaN, BigInt, NUL, lone surrogates).

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
  "22009", // invalid_time_zone_displacement_value: e.g. a time zone of +25:00
  "22021", // character_not_in_repertoire: e.g. a NUL byte in text
  "PGRST102", // PostgREST could not read the request's JSON (e.g. a lone surrogate)
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

// -- checks ------------------------------------------------------------------------------------------------
//
// Only what the database cannot check itself, with the Python API's messages. Over node-postgres every value
// reaches PostgreSQL as text and over PostgREST as JSON, so the database would read 5 or ["a"] given as a type
// as the text "5" or '{"a"}', "5" given as a priority as 5, and "tomorrow" as a run_at. On the way,
// JSON.stringify writes NaN and Infinity as null, a Map as {} and throws on a BigInt; PostgreSQL cannot store
// a NUL in text or jsonb; and a lone surrogate is not UTF-8 (node-postgres would store U+FFFD in its place).
// Limits (lengths, ranges, what may combine with what) stay with the database.

const MAX_JSON_DEPTH = 64;
const MAX_BIGINT = 2n ** 63n - 1n;
const RUN_AT_MESSAGE = "run_at must be from 1970-01-01T00:00:00+00:00 to before 9999-01-01T00:00:00+00:00, not ";
const JOB_ID_MESSAGE = `must be an integer from 1 to ${MAX_BIGINT}`;
const STEP_MESSAGE = "each step must be a non-empty job type of at most 128 characters, not ";
const INTEGER_MESSAGES = {
  priority: "priority must be a 32-bit integer (lower runs first)",
  max_attempts: "max_attempts must be an integer >= 1",
  limit: "limit must be an integer between 1 and 10000",
};
const POSITIVE_SECONDS = new Set(["timeout", "unique_for"]);
const ISO_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const NOT_JSON = [Map, Set, WeakMap, WeakSet, Promise];

// Each kind of SQL argument: how a JavaScript value is checked and sent.
const KINDS = {
  text: "text",
  jsonb: "json",
  bigint: "integer",
  integer: "integer",
  float8: "seconds",
  timestamptz: "time",
  uuid: "uuid",
  boolean: "boolean",
  "text[]": "steps",
  "bigint[]": "ids",
};

function kindOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

/** A value as the messages show it: strings quoted, other values as JavaScript writes them. */
function repr(value) {
  if (typeof value === "string") return `'${JSON.stringify(value).slice(1, -1)}'`;
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  return kindOf(value);
}

/** Why PostgreSQL would refuse this string (null when it is fine). */
function textProblem(value) {
  if (value.includes("\u0000")) return "must not contain a NUL character (\\u0000)";
  if (LONE_SURROGATE.test(value)) return "must be valid Unicode (it holds a lone surrogate)";
  return null;
}

/** Throws `error` (InvalidJob or InvalidBrief) with `label` ("job #2: " in a batch) before the message. */
function failer(error, label = "") {
  return (message, field = null) => {
    throw new error(`${label}${message}`, { field });
  };
}

function isInteger(value) {
  return (typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint";
}

function inBigint(value) {
  const big = BigInt(value);
  return big >= -MAX_BIGINT - 1n && big <= MAX_BIGINT;
}

/** A JSON document as JSON.stringify would write it, refused where that would change or lose a value. */
function checkJson(field, value, fail) {
  const ancestors = [];
  const walk = (item, where, depth, key) => {
    if (item !== null && typeof item === "object" && typeof item.toJSON === "function") {
      if (item instanceof Date && Number.isNaN(item.getTime())) fail(`${where} is an invalid Date`, field);
      item = item.toJSON(key);
    }
    switch (typeof item) {
      case "string": {
        const problem = textProblem(item);
        if (problem) fail(`${where} ${problem}`, field);
        return item;
      }
      case "number":
        if (!Number.isFinite(item)) fail(`${where} must be a finite number, not ${item}`, field);
        return item;
      case "boolean":
        return item;
      case "bigint":
        fail(`${where} is a BigInt, which JSON cannot hold: give a Number or a string`, field);
        break;
      case "object":
        if (item === null) return null;
        break;
      default:
        fail(`${where} must be JSON (an object, array, string, number, boolean or null), not ${kindOf(item)}`, field);
    }
    if (depth >= MAX_JSON_DEPTH) fail(`${field} is nested more than ${MAX_JSON_DEPTH} levels deep`, field);
    if (ancestors.includes(item)) fail(`${where} contains itself (a circular structure)`, field);
    if (NOT_JSON.some((type) => item instanceof type)) {
      fail(`${where} must be JSON (an object, array, string, number, boolean or null), not ${kindOf(item)}`, field);
    }
    ancestors.push(item);
    let out;
    if (Array.isArray(item)) {
      out = Array.from(item, (child, i) => walk(child, `${where}[${i}]`, depth + 1, String(i)));
    } else {
      out = Object.create(null); // so that a key "__proto__" stays a key
      for (const name of Object.keys(item)) {
        const problem = textProblem(name);
        if (problem) fail(`${where}: key ${repr(name)} ${problem}`, field);
        if (item[name] !== undefined) out[name] = walk(item[name], `${where}.${name}`, depth + 1, name);
      }
    }
    ancestors.pop();
    return out;
  };
  return walk(value, field, 0, "");
}

/** A BigInt as both transports can send it: a Number while exact, else its digits. A batch is one JSON
 * document, where digits would be a string (in depends_on, a key): there a BigInt past 2^53 is refused. */
function sendable(value, batch, refuse) {
  if (typeof value !== "bigint") return value;
  if (Number.isSafeInteger(Number(value))) return Number(value);
  if (batch) refuse();
  return String(value);
}

/** One argument of kind `kind` (see KINDS), checked; returns the value to send. `name` is the field's. In a
 * `batch` (createJobs' JSON) depends_on may also name the batch's keys. */
function checkValue(kind, name, value, fail, { batch = false } = {}) {
  if (value === null) return null; // the database says what null means for each field
  switch (kind) {
    case "text": {
      if (typeof value !== "string") fail(`${name} must be a string, not ${kindOf(value)}`, name);
      const problem = textProblem(value);
      if (problem) fail(`${name} ${problem}`, name);
      return value;
    }
    case "json":
      return checkJson(name, value, fail);
    case "integer": {
      const message = INTEGER_MESSAGES[name] ?? `${name} must be an integer, not ${repr(value)}`;
      if (!isInteger(value) || !inBigint(value)) fail(message, name);
      return sendable(value, batch, () => fail(message, name));
    }
    case "seconds":
      if (typeof value === "bigint") value = Number(value);
      if (typeof value !== "number" || !Number.isFinite(value)) {
        const bound = POSITIVE_SECONDS.has(name) ? "> 0" : ">= 0";
        fail(`${name} must be a finite number of seconds ${bound}, not ${repr(value)}`, name);
      }
      return value;
    case "time": {
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) fail(`${name} must be a valid Date, not Invalid Date`, name);
        const iso = value.toISOString();
        if (!ISO_TIME.test(iso)) {
          const range = name === "run_at" ? RUN_AT_MESSAGE : `${name} must be a time from year 0 to 9999, not `;
          fail(range + iso, name);
        }
        return iso;
      }
      if (typeof value !== "string" || !ISO_TIME.test(value)) {
        fail(
          `${name} must be a Date or an ISO 8601 time with a time zone (such as 2030-01-02T03:04:05Z), ` +
            `not ${repr(value)}`,
          name,
        );
      }
      return value;
    }
    case "uuid":
      if (typeof value !== "string" || !UUID.test(value)) fail(`${name} must be a UUID, not ${repr(value)}`, name);
      return value;
    case "boolean":
      if (typeof value !== "boolean") fail(`${name} must be true or false, not ${repr(value)}`, name);
      return value;
    case "steps":
      if (!Array.isArray(value)) fail("steps must be a list of job types", name);
      return value.map((step) => {
        if (typeof step !== "string") fail(STEP_MESSAGE + repr(step), name);
        const problem = textProblem(step);
        if (problem) fail(`step ${problem}: ${repr(step)}`, name);
        return step;
      });
    case "ids":
      if (!Array.isArray(value)) fail("depends_on must be a list of job ids", name);
      return value.map((ref) => {
        if (batch && typeof ref === "string") {
          const problem = textProblem(ref);
          if (problem) fail(`depends_on keys ${problem}`, name);
          return ref;
        }
        const message = `depends_on entries must be job ids${batch ? "" : " (integers)"}, not ${repr(ref)}`;
        if (!isInteger(ref) || !inBigint(ref)) fail(message, name);
        return sendable(ref, batch, () => fail(message, name));
      });
    default:
      return value;
  }
}

/** The fields of a call to `fn`, checked: undefined ones left out, unknown ones refused. */
function only(fn, fields, error = InvalidJob) {
  const known = SIGNATURES[fn];
  const fail = failer(error);
  const args = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(known, name)) fail(`unknown field ${JSON.stringify(name)}`, name);
    args[name] = checkValue(KINDS[known[name]], name, value, fail);
  }
  return args;
}

// A batch item's fields are create_job's (create_jobs refuses the ones it does not take).
const BATCH_KINDS = SIGNATURES.create_job;

/** An item of createJobs, checked as createJob's fields are. In JSON the database sees a value's type, so
 * other fields (its `key`, unknown ones) are only checked to reach it as given. */
function batchItem(item, index) {
  const fail = failer(InvalidJob, `job #${index}: `);
  const out = {};
  for (const [name, value] of Object.entries(item)) {
    if (value === undefined) continue;
    out[name] = Object.hasOwn(BATCH_KINDS, name)
      ? checkValue(KINDS[BATCH_KINDS[name]], name, value, fail, { batch: true })
      : checkJson(name, value, fail);
  }
  return out;
}

/** The seed's `metadata` is the payload's old name: either may be given, not both. */
function withPayload(input, label = "") {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new InvalidJob(`${label}a job must be an object with a 'type'`);
  }
  if (!Object.hasOwn(input, "metadata") || input.metadata === undefined) return input;
  const { metadata, ...rest } = input;
  if (rest.payload !== undefined) {
    throw new InvalidJob(`${label}give payload or metadata (its old name), not both`, { field: "metadata" });
  }
  return { ...rest, payload: metadata };
}

/** A job id: an integer (a Number, a BigInt, or its digits as a string, as a route's parameter holds it). */
function jobIdArg(id) {
  const fail = failer(InvalidJob);
  const message = `job_id ${JOB_ID_MESSAGE}, not ${repr(id)}`;
  if (!isInteger(id) && !(typeof id === "string" && /^[0-9]{1,19}$/.test(id))) fail(message, "job_id");
  if (BigInt(id) < 1n || BigInt(id) > MAX_BIGINT) fail(message, "job_id");
  return sendable(id, false);
}

function briefId(id) {
  if (typeof id !== "string" || !UUID.test(id)) {
    throw new BriefNotFound(`no brief with id ${JSON.stringify(id)} (not a UUID)`);
  }
  return id;
}

/** A cancellation's reason: a string (it becomes the job's last_error). */
function reasonArg(reason) {
  const fail = failer(InvalidJob);
  if (typeof reason !== "string") fail(`reason must be a string, not ${kindOf(reason)}`, "reason");
  return checkValue("text", "reason", reason, fail);
}

const MAX_SLEEP_MS = 2 ** 31 - 1; // setTimeout fires at once after a longer delay

/** A polling option, checked: NaN, a negative or a non-number would poll without pausing, or never stop. */
function checkMs(fn, option, value, { positive = false, forever = false } = {}) {
  const ok =
    (forever && (value === null || value === Infinity)) ||
    (typeof value === "number" && Number.isFinite(value) && (positive ? value > 0 : value >= 0));
  if (!ok) {
    const bound = `${positive ? "> 0" : ">= 0"}${forever ? " (or null: no limit)" : ""}`;
    throw new RangeError(`${fn}: ${option} must be a finite number of milliseconds ${bound}, not ${repr(value)}`);
  }
  return value === null ? Infinity : value;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.min(ms, MAX_SLEEP_MS));
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
    // create_job has no default type: without one PostgreSQL (or PostgREST) would look for another function.
    if (fields.type === undefined) throw new InvalidJob("type must be a string, not undefined", { field: "type" });
    return call("create_job", only("create_job", fields));
  }

  async function createJobs(jobs) {
    if (!Array.isArray(jobs)) throw new InvalidJob("jobs must be a list of jobs", { field: "jobs" });
    const items = jobs.map((job, index) => batchItem(withPayload(job, `job #${index}: `), index));
    return call("create_jobs", { jobs: items });
  }

  async function createBriefWithJob(input) {
    if (input === null || typeof input !== "object" || Array.isArray(input)) {
      throw new InvalidBrief("a brief must be an object");
    }
    return call("create_brief_with_job", only("create_brief_with_job", input, InvalidBrief), { brief: true });
  }

  async function getJob(jobId) {
    const job = await call("get_job", { job_id: jobIdArg(jobId) });
    if (job === null) throw new JobNotFound(`no job with id ${jobId}`);
    return job;
  }

  async function getBrief(id) {
    const brief = await call("get_brief", { brief_id: briefId(id) });
    if (brief === null) throw new BriefNotFound(`no brief with id ${id}`);
    return brief;
  }

  async function listBriefs(filters = {}) {
    if (filters === null || typeof filters !== "object" || Array.isArray(filters)) {
      throw new InvalidBrief("listBriefs takes an object of filters (user_id, status, before, limit)");
    }
    return call("list_briefs", only("list_briefs", filters, InvalidBrief), { brief: true });
  }

  async function retryJob(jobId) {
    const status = await call("retry_job", { p_job_id: jobIdArg(jobId) });
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
    const status = await call("cancel_job", { p_job_id: jobIdArg(jobId), p_reason: reasonArg(reason) });
    const job = await getJob(jobId);
    if (status === null) throw new InvalidTransition(`job ${jobId} is already ${job.status}`);
    return job;
  }

  async function cancelBrief(id, reason = "brief cancelled by request") {
    const cancelled = await call("cancel_brief", { p_brief_id: briefId(id), p_reason: reasonArg(reason) });
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
    const deadline = Date.now() + checkMs("waitForJob", "timeoutMs", timeoutMs, { forever: true });
    checkMs("waitForJob", "intervalMs", intervalMs, { positive: true });
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
    const deadline = Date.now() + checkMs("followBrief", "timeoutMs", timeoutMs ?? null, { forever: true });
    checkMs("followBrief", "intervalMs", intervalMs, { positive: true });
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
    const timeoutMs = options.timeoutMs === undefined ? DEFAULT_WAIT_TIMEOUT_MS : options.timeoutMs;
    for await (const brief of followBrief(id, { ...options, timeoutMs })) {
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
