// Type declarations of @supaworker/client (written by hand; the package is plain ESM, no build step).

export type JobStatus = "waiting" | "pending" | "processing" | "completed" | "failed" | "cancelled";
export type BriefStatus = "failed" | "cancelled" | "completed" | "processing" | "pending";
export type MediaType = "video" | "image" | "audio" | "text";
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
/** A job's id: a Number, a BigInt, or its decimal digits (as a route's parameter holds it). */
export type JobId = number | bigint | string;

export declare const JOB_STATUSES: readonly JobStatus[];
export declare const BRIEF_STATUSES: readonly BriefStatus[];
export declare const DEFAULT_SCHEMA: "supaworker";
export declare const DEFAULT_WAIT_TIMEOUT_MS: number;
export declare const DEFAULT_POLL_INTERVAL_MS: number;

/** A row of supaworker's jobs table, as the SQL API returns it (times are ISO 8601 text). */
export interface Job {
  id: number;
  type: string;
  queue: string;
  status: JobStatus;
  priority: number;
  payload: Json;
  result: Json | null;
  attempts: number;
  max_attempts: number;
  run_at: string;
  timeout_seconds: number | null;
  last_error: string | null;
  errors: { attempt: number; error: string; at: string; worker_id: string; started_at?: string | null }[];
  worker_id: string | null;
  lease_expires_at: string | null;
  brief_id: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  unique_key: string | null;
  unique_until: string | null;
  progress: number | null;
  progress_message: string | null;
  progress_at: string | null;
  /** The tenant whose share of the workers it uses ("" for the default tenant). */
  fairness_key: string;
  /** The ids of the jobs this one waits for. */
  depends_on: number[];
  /** createJob with a unique_key: true when a live job already held the key and is returned instead. */
  duplicate?: boolean;
  [column: string]: unknown;
}

/** A brief with the status derived from its jobs; `steps` are its jobs in order (getBrief, createBriefWithJob). */
export interface Brief {
  id: string;
  user_id: string;
  title: string;
  description: string;
  query: string;
  media_type: MediaType;
  use_pipeline: boolean;
  pipeline: string[];
  status: BriefStatus;
  result: Json | null;
  failed_step: string | null;
  failed_job_id: number | null;
  error: string | null;
  steps_total: number;
  steps_completed: number;
  created_at: string;
  started_at: string | null;
  updated_at: string;
  completed_at: string | null;
  steps?: Job[];
}

/**
 * The fields of supaworker.create_job, snake_case as in the old system; `metadata` is the payload's old name.
 * Strings must hold no NUL (\u0000) and no lone surrogate; the payload must be JSON as given (no NaN,
 * Infinity, BigInt, Map, function or circular reference, at most 64 levels deep). A value of another type
 * (e.g. "5" as a priority) is refused: InvalidJob naming the field.
 */
export interface CreateJobInput {
  type: string;
  payload?: Json;
  /** The old system's name for `payload`: give one or the other. */
  metadata?: Json;
  /** Lower runs first (32-bit). */
  priority?: number | bigint;
  /** Not before this time: a Date, or ISO 8601 text with a time zone ("2030-01-02T03:04:05Z"). */
  run_at?: Date | string;
  /** Seconds from now before it may run (not with run_at). */
  delay?: number;
  max_attempts?: number | bigint;
  /** Per-attempt timeout in seconds. */
  timeout?: number;
  brief_id?: string;
  queue?: string;
  /** One live job per key: a second createJob returns the holder with `duplicate: true`. */
  unique_key?: string;
  /** Seconds the key is held after the holder was created. */
  unique_for?: number;
  /** Ids of existing jobs this one waits for. */
  depends_on?: (number | bigint)[];
  /** The tenant whose share of the workers the job uses (fair shares; omitted: the default tenant). */
  fairness_key?: string;
}

/** An item of createJobs: createJob's fields (no delay, no unique_key), a batch `key`, and `depends_on`
 * naming existing jobs by id and jobs of the batch by key. */
export interface CreateJobsItem extends Omit<CreateJobInput, "depends_on" | "delay" | "unique_key" | "unique_for"> {
  key?: string;
  depends_on?: (number | bigint | string)[];
}

/** The fields of supaworker.create_brief_with_job, as the old system's createBriefWithJob took them. */
export interface CreateBriefInput {
  user_id: string;
  title?: string;
  description?: string;
  query: string;
  media_type: MediaType;
  /** Run the media type's whole pipeline, not only analysis. */
  use_pipeline?: boolean;
  /** An application's own sequence of job types instead of the pipeline. */
  steps?: string[];
  /** Extra payload fields every step receives. */
  options?: { [key: string]: Json };
  priority?: number | bigint;
  max_attempts?: number | bigint;
  queue?: string;
  /** The tenant whose share of the workers the steps use (omitted: the brief's user_id). */
  fairness_key?: string;
}

export interface BriefWithJob {
  brief: Brief & { steps: Job[] };
  job: Job;
}

export interface ListBriefsFilters {
  user_id?: string;
  status?: BriefStatus;
  /** The created_at of the last brief seen: the next page. */
  before?: Date | string;
  /** 1 to 10000 (50 by default). */
  limit?: number;
}

/** NaN, a negative timeout or an interval <= 0 throws a RangeError naming the option. */
export interface WaitOptions {
  /** Give up after this long (default DEFAULT_WAIT_TIMEOUT_MS; null waits for ever). */
  timeoutMs?: number | null;
  /** The longest pause between two looks (default DEFAULT_POLL_INTERVAL_MS), > 0. */
  intervalMs?: number;
  signal?: AbortSignal;
}

export interface WaitForBriefOptions extends WaitOptions {
  onProgress?: (brief: Brief) => void;
}

export interface Supaworker {
  readonly schema: string;
  createJob(input: CreateJobInput): Promise<Job>;
  /** Their ids, in order. */
  createJobs(jobs: CreateJobsItem[]): Promise<number[]>;
  /** The brief and all its steps in one call, atomically. */
  createBriefWithJob(input: CreateBriefInput): Promise<BriefWithJob>;
  getJob(jobId: JobId): Promise<Job>;
  getBrief(briefId: string): Promise<Brief & { steps: Job[] }>;
  /** Newest first, without steps. */
  listBriefs(filters?: ListBriefsFilters): Promise<Brief[]>;
  retryJob(jobId: JobId): Promise<Job>;
  cancelJob(jobId: JobId, reason?: string): Promise<Job>;
  cancelBrief(briefId: string, reason?: string): Promise<Brief & { steps: Job[] }>;
  retryBrief(briefId: string): Promise<Brief & { steps: Job[] }>;
  /** Resolves with the completed job; rejects with JobFailed, JobNotFound or WaitTimeout. */
  waitForJob(jobId: JobId, options?: WaitOptions): Promise<Job>;
  /** Yields the brief now and at each change of its or its steps' status or progress, until it is final. */
  followBrief(briefId: string, options?: WaitOptions): AsyncGenerator<Brief & { steps: Job[] }, void, void>;
  /** Resolves with the brief once completed, failed or cancelled. */
  waitForBrief(briefId: string, options?: WaitForBriefOptions): Promise<Brief & { steps: Job[] }>;
}

/** What createSupaworker accepts: a supabase-js client (service-role key, server side) ... */
export interface SupabaseLike {
  schema(schema: string): { rpc(fn: string, args?: object): PromiseLike<{ data: unknown; error: unknown }> };
  rpc(fn: string, args?: object): unknown;
}
/** ... or a node-postgres Client, PoolClient or Pool (a Client or PoolClient inside BEGIN joins that transaction). */
export interface PgLike {
  query(config: { text: string; values?: unknown[] }): Promise<{ rows: any[] }>;
}

export interface SupaworkerOptions {
  /** supaworker's schema (SUPAWORKER_SCHEMA on the Python side), "supaworker" by default. */
  schema?: string;
}

export declare function createSupaworker(db: SupabaseLike | PgLike, options?: SupaworkerOptions): Supaworker;

export interface ErrorOptions {
  code?: string | null;
  field?: string | null;
  details?: string | null;
  hint?: string | null;
  cause?: unknown;
}

/** Base of every error the client throws on purpose. */
export declare class SupaworkerError extends Error {
  constructor(message: string, options?: ErrorOptions);
  /** SQLSTATE (e.g. "22023") or PostgREST code (e.g. "PGRST202"), when the database said it. */
  code: string | null;
  /** The rejected field, when known (e.g. "priority"). */
  field: string | null;
  details: string | null;
  hint: string | null;
}
/** A job's fields were rejected; nothing was written. */
export declare class InvalidJob extends SupaworkerError {}
/** A brief's fields were rejected; nothing was written. */
export declare class InvalidBrief extends InvalidJob {}
export declare class JobNotFound extends SupaworkerError {}
export declare class BriefNotFound extends SupaworkerError {}
export declare class InvalidTransition extends SupaworkerError {}
export declare class PermissionDenied extends SupaworkerError {}
export declare class NotInstalled extends SupaworkerError {}
export declare class JobFailed extends SupaworkerError {
  constructor(job: Job);
  job: Job;
  jobId: number;
  status: "failed" | "cancelled";
  error: string | null;
}
export declare class WaitTimeout extends SupaworkerError {
  constructor(what: string, timeoutMs: number, status: string);
  timeoutMs: number;
  status: string;
}
