// Shared scaffolding for the Node runners; mirrors common.py (same CLI, same side-effect log, same JSON).
// A runner describes its system with a peer object; main(makePeer) runs one scenario and prints one JSON
// object. Handlers call record(i, tEnq) first: one "<i> <t_enq> <t_start>" line per execution, written with
// a single O_APPEND write to a per-process file in $BENCH_LOG_DIR.
import { execSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

export const SCENARIOS = ["setup", "enqueue_single", "enqueue_bulk", "drain", "latency", "backlog", "soak"];
const CHUNK = 10_000;
const CLK_TCK = Number(execSync("getconf CLK_TCK").toString().trim()) || 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Wall clock with sub-millisecond resolution (Date.now() only has milliseconds).
const now = () => (performance.timeOrigin + performance.now()) / 1000;
let fd = null;

export function record(i, tEnq) {
  const tStart = now();
  if (fd === null) fd = fs.openSync(path.join(process.env.BENCH_LOG_DIR, `${process.pid}.log`), "a");
  fs.writeSync(fd, `${i} ${tEnq.toFixed(6)} ${tStart.toFixed(6)}\n`);
}

export function cli(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      dsn: { type: "string" }, scenario: { type: "string" }, jobs: { type: "string", default: "1000" },
      processes: { type: "string", default: "1" }, concurrency: { type: "string", default: "10" },
      mode: { type: "string", default: "default" }, rate: { type: "string", default: "50" },
      duration: { type: "string", default: "600" }, sample: { type: "string", default: "10000" },
      timeout: { type: "string", default: "600" },
    },
  });
  const num = (k) => Number(values[k]);
  if (!values.dsn || ![...SCENARIOS, "worker"].includes(values.scenario)) {
    throw new Error(`usage: --dsn DSN --scenario ${SCENARIOS.join("|")} [--jobs N --processes P ...]`);
  }
  if (!["default", "fast"].includes(values.mode)) throw new Error("--mode default|fast");
  return { dsn: values.dsn, scenario: values.scenario, mode: values.mode, jobs: num("jobs"),
    processes: num("processes"), concurrency: num("concurrency"), rate: num("rate"),
    duration: num("duration"), sample: num("sample"), timeout: num("timeout") };
}

// ------------------------------------------------------------------ server CPU from /proc

function stat(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return [Number(f[1]), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])];
}

// CPU time of the server processes picked by match(pid, ppid, titleWords), sampled every 100 ms so a process
// that exits still counts up to its last sample. For PostgreSQL: the backends and autovacuum workers whose
// process title names the benchmark's database (the server is shared; see common.py DbCpu).
export class ProcCpu {
  constructor(match) {
    this.match = match;
    this.seen = new Map(); // pid -> [ticks when first seen, or 0 if it appeared later; last ticks]
    this.scan(true);
    this.timer = setInterval(() => this.scan(false), 100);
    this.timer.unref();
  }

  scan(baseline) {
    for (const name of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const pid = Number(name), [ppid, ticks] = stat(pid);
        if (!this.match(pid, ppid, () => fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").split(/[\0 ]+/))) continue;
        const first = this.seen.has(pid) ? this.seen.get(pid)[0] : baseline ? ticks : 0;
        this.seen.set(pid, [first, ticks]);
      } catch { /* process exited meanwhile */ }
    }
  }

  read() {
    this.scan(false);
    let total = 0;
    for (const [first, last] of this.seen.values()) total += last - first;
    return total / CLK_TCK;
  }

  close() { clearInterval(this.timer); }
}

// Matcher for the PostgreSQL processes serving `db`, given the pid of one of its backends to exclude.
export function pgMatcher(backendPid, db) {
  const postmaster = stat(backendPid)[0];
  return (pid, ppid, title) => ppid === postmaster && pid !== backendPid && title().includes(db);
}

// ------------------------------------------------------------------ side-effect log and workers

function newLogDir() { return fs.mkdtempSync(path.join(os.tmpdir(), "bench-log-")); }

function logCounter(dir) {
  const offsets = new Map();
  let lines = 0;
  return () => {
    for (const name of fs.readdirSync(dir)) {
      if (!name.endsWith(".log")) continue;
      const file = path.join(dir, name);
      const size = fs.statSync(file).size;
      const from = offsets.get(name) ?? 0;
      if (size <= from) continue;
      const buf = Buffer.alloc(size - from);
      const h = fs.openSync(file, "r");
      fs.readSync(h, buf, 0, buf.length, from);
      fs.closeSync(h);
      offsets.set(name, size);
      for (const b of buf) if (b === 10) lines++;
    }
    return lines;
  };
}

function readLog(dir) {
  const rows = [];
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".log"))) {
    for (const line of fs.readFileSync(path.join(dir, name), "utf8").split("\n")) {
      if (!line) continue;
      const [i, tEnq, tStart] = line.split(" ").map(Number);
      rows.push([i, tEnq, tStart]);
    }
  }
  return rows;
}

function onceCheck(rows, n) {
  const seen = new Map();
  for (const [i] of rows) if (i >= 0) seen.set(i, (seen.get(i) ?? 0) + 1);
  let executions = 0, duplicates = 0, missing = 0;
  for (const c of seen.values()) { executions += c; duplicates += c - 1; }
  for (let i = 0; i < n; i++) if (!seen.has(i)) missing++;
  return { executions, duplicates, missing };
}

// Workers are this same script with --scenario worker, one process each.
function startWorkers(script, args, logDir) {
  const procs = [];
  for (let n = 0; n < args.processes; n++) {
    const err = fs.openSync(path.join(logDir, `worker${n}.err`), "a");
    const argv = [script, "--dsn", args.dsn, "--scenario", "worker", "--concurrency", String(args.concurrency),
      "--mode", args.mode];
    const p = spawn(process.execPath, argv, { env: { ...process.env, BENCH_LOG_DIR: logDir },
      stdio: ["ignore", err, err], detached: true });
    p.exited = new Promise((r) => p.on("exit", () => { p.done = true; r(); }));
    procs.push(p);
  }
  return procs;
}

async function stopWorkers(procs, graceMs = 3000) {
  for (const p of procs) if (!p.done) process.kill(-p.pid, "SIGTERM");
  const all = Promise.all(procs.map((p) => p.exited));
  let timer;
  const grace = new Promise((r) => { timer = setTimeout(() => r(false), graceMs); });
  const clean = await Promise.race([all.then(() => true), grace]);
  clearTimeout(timer);
  if (clean) return;
  for (const p of procs) if (!p.done) process.kill(-p.pid, "SIGKILL");
  await all;
}

function workerErrors(dir) {
  const files = fs.readdirSync(dir).filter((n) => n.startsWith("worker")).sort();
  return files.map((n) => fs.readFileSync(path.join(dir, n), "utf8")).join("").slice(-2000);
}

async function poll(done, limitS, intervalMs = 20) {
  const deadline = now() + limitS;
  for (;;) {
    if (done()) return true;
    if (now() > deadline) return false;
    await sleep(intervalMs);
  }
}

function pct(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))] : null;
}
const rate = (n, secs) => (secs > 0 ? n / secs : null);

// ------------------------------------------------------------------ scenarios

class Bench {
  constructor(peer, args, script) { Object.assign(this, { peer, args, script }); }

  cpu() { return this.peer.serverCpu.read(); }

  async enqueue(bulk) {
    const n = this.args.jobs;
    const items = Array.from({ length: n }, (_, i) => [i, 0]);
    const c0 = this.cpu(), t0 = performance.now();
    if (bulk) await this.peer.enqueueMany(items);
    else for (let i = 0; i < n; i++) await this.peer.enqueueOne(i, 0);
    const secs = (performance.now() - t0) / 1000, cpu = this.cpu() - c0;
    return { jobs: n, seconds: secs, jobs_per_s: rate(n, secs), server_cpu_ms_per_job: (1e3 * cpu) / n,
      queued_after: await this.peer.remaining() };
  }

  async drain(sample = null) {
    const n = this.args.jobs;
    const tPre = performance.now();
    for (let s = 0; s < n; s += CHUNK) {
      await this.peer.enqueueMany(Array.from({ length: Math.min(CHUNK, n - s) }, (_, k) => [s + k, 0]));
    }
    const prefillS = (performance.now() - tPre) / 1000;
    const target = sample ? Math.min(sample, n) : n;
    const logDir = newLogDir(), count = logCounter(logDir);
    const c0 = this.cpu(), tLaunch = now();
    const procs = startWorkers(this.script, this.args, logDir);
    let lastCheck = tLaunch, timedOut = false, tEnd, cpu;
    try {
      for (;;) {
        await sleep(20);
        const t = now(), done = count();
        if (sample && done >= target) break;
        if (done >= target || t - lastCheck > 1) {
          lastCheck = t;
          if ((await this.peer.remaining()) === 0) break;
        }
        if (t - tLaunch > this.args.timeout || procs.some((p) => p.done)) { timedOut = true; break; }
      }
      tEnd = now();
      cpu = this.cpu() - c0;
    } finally {
      await stopWorkers(procs);
    }
    const rows = readLog(logDir), starts = rows.map((r) => r[2]).sort((a, b) => a - b);
    const out = { jobs: n, prefill_s: prefillS, server_cpu_s: cpu };
    if (sample) {
      const win = starts.length >= target ? starts[target - 1] - starts[0] : null;
      Object.assign(out, { sample: target, seconds: win, jobs_per_s: win ? rate(target - 1, win) : null,
        server_cpu_ms_per_job: (1e3 * cpu) / target });
    } else {
      const secs = starts.length ? tEnd - starts[0] : null;
      Object.assign(out, { seconds: secs, jobs_per_s: rate(n, secs),
        startup_s: (starts[0] ?? tEnd) - tLaunch, server_cpu_ms_per_job: (1e3 * cpu) / n,
        ...onceCheck(rows, n), remaining_after: await this.peer.remaining() });
    }
    if (timedOut) Object.assign(out, { error: "timed out or a worker exited", worker_stderr: workerErrors(logDir) });
    fs.rmSync(logDir, { recursive: true, force: true });
    return out;
  }

  async latency() {
    const { jobs: n, rate: r } = this.args;
    const logDir = newLogDir(), count = logCounter(logDir);
    const procs = startWorkers(this.script, this.args, logDir);
    const out = { jobs: n, rate: r };
    let cpu, secs;
    try {
      await this.peer.enqueueOne(-1, now()); // warm-up: wait until the worker is ready
      await poll(() => count() >= 1 || procs.some((p) => p.done), 120);
      if (count() < 1) {
        return Object.assign(out, { error: "worker never picked up the warm-up job",
          worker_stderr: workerErrors(logDir) });
      }
      await sleep(1000); // let it go idle again
      const c0 = this.cpu(), start = now();
      for (let i = 0; i < n; i++) {
        await sleep(Math.max(0, (start + i / r - now()) * 1000));
        await this.peer.enqueueOne(i, now());
      }
      await poll(() => count() >= n + 1, n / r + 30);
      cpu = this.cpu() - c0;
      secs = now() - start;
    } finally {
      await stopWorkers(procs);
    }
    const rows = readLog(logDir).filter((row) => row[0] >= 0);
    const lat = rows.map(([, tEnq, tStart]) => 1e3 * (tStart - tEnq));
    Object.assign(out, { p50_ms: pct(lat, 0.5), p95_ms: pct(lat, 0.95), p99_ms: pct(lat, 0.99),
      max_ms: lat.length ? Math.max(...lat) : null, server_cpu_ms_per_job: (1e3 * cpu) / n,
      server_cpu_s_per_s: cpu / secs, ...onceCheck(rows, n) });
    fs.rmSync(logDir, { recursive: true, force: true });
    return out;
  }

  async soak() {
    const { rate: r, duration } = this.args;
    const logDir = newLogDir(), count = logCounter(logDir);
    const procs = startWorkers(this.script, this.args, logDir);
    const c0 = this.cpu(), start = now();
    let i = 0, cpu;
    try {
      while (now() - start < duration) {
        await sleep(Math.max(0, (start + i / r - now()) * 1000));
        await this.peer.enqueueOne(i, now());
        i++;
      }
      await poll(() => count() >= i, 60, 100);
      cpu = this.cpu() - c0;
    } finally {
      await stopWorkers(procs);
    }
    const rows = readLog(logDir), lat = rows.map(([, tEnq, tStart]) => 1e3 * (tStart - tEnq));
    fs.rmSync(logDir, { recursive: true, force: true });
    return { jobs: i, rate: r, duration_s: duration, p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99),
      server_cpu_ms_per_job: (1e3 * cpu) / Math.max(i, 1), ...onceCheck(rows, i),
      remaining_after: await this.peer.remaining() };
  }
}

// makePeer(args) returns { settings(), setup(), open(), close(), enqueueOne(i, t), enqueueMany(items),
// remaining(), worker() (runs until SIGTERM), serverCpu } where open() sets serverCpu to a ProcCpu.
export async function main(makePeer, scriptUrl) {
  const args = cli();
  const peer = makePeer(args);
  if (args.scenario === "worker") return peer.worker();
  const t0 = now();
  let result = {};
  if (args.scenario === "setup") await peer.setup();
  else {
    const bench = new Bench(peer, args, fileURLToPath(scriptUrl));
    await peer.open();
    try {
      const s = args.scenario;
      if (s === "enqueue_single" || s === "enqueue_bulk") result = await bench.enqueue(s === "enqueue_bulk");
      else if (s === "drain") result = await bench.drain();
      else if (s === "backlog") result = await bench.drain(args.sample);
      else if (s === "latency") result = await bench.latency();
      else if (s === "soak") result = await bench.soak();
    } finally {
      peer.serverCpu?.close();
      await peer.close();
    }
  }
  const out = { scenario: args.scenario, mode: args.mode, processes: args.processes,
    concurrency: args.concurrency, settings: peer.settings(), ...result, runner_wall_s: now() - t0 };
  process.stdout.write(JSON.stringify(out) + "\n");
}
