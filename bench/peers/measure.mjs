// Measurement helpers shared by the Node runners (mirrors measure.py): the handlers' side-effect log, the
// worker processes, and server CPU from /proc. Handlers call record(i, tEnq) first: one
// "<i> <t_enq> <t_start>" line per execution, one O_APPEND write to a per-process file in $BENCH_LOG_DIR.
import { execSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const CLK_TCK = Number(execSync("getconf CLK_TCK").toString().trim()) || 100;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Wall clock with sub-millisecond resolution (Date.now() only has milliseconds).
export const now = () => (performance.timeOrigin + performance.now()) / 1000;
let fd = null;

export function record(i, tEnq) {
  const tStart = now();
  if (fd === null) fd = fs.openSync(path.join(process.env.BENCH_LOG_DIR, `${process.pid}.log`), "a");
  fs.writeSync(fd, `${i} ${tEnq.toFixed(6)} ${tStart.toFixed(6)}\n`);
}

// ------------------------------------------------------------------ server CPU from /proc

export function stat(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return [Number(f[1]), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])];
}

// CPU time of the server processes picked by `which` (see the constructor), sampled every 100 ms so a process
// that exits still counts up to its last sample. For PostgreSQL: the backends and autovacuum workers whose
// process title names the benchmark's database (the server is shared; see common.py DbCpu).
export class ProcCpu {
  // which = { candidates(): pids to look at, match(pid, ppid, title()): whether to count it }
  constructor(which) {
    this.which = which;
    this.seen = new Map(); // pid -> [ticks when first seen, or 0 if it appeared later; last ticks]
    this.scan(true);
    this.timer = setInterval(() => this.scan(false), 100);
    this.timer.unref();
  }

  scan(baseline) {
    for (const name of this.which.candidates()) {
      try {
        const pid = Number(name), [ppid, ticks] = stat(pid);
        const title = () => fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").split(/[\0 ]+/);
        if (!this.which.match(pid, ppid, title)) continue;
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

// The PostgreSQL processes serving `db`: children of the postmaster (one read of its children file, else a
// scan of /proc) whose title names the database, except `backendPid` (the runner's own polling connection).
export function pgProcesses(backendPid, db) {
  const pm = stat(backendPid)[0];
  const candidates = () => {
    try {
      return fs.readFileSync(`/proc/${pm}/task/${pm}/children`, "latin1").split(/\s+/).filter(Boolean);
    } catch {
      return fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n));
    }
  };
  return { candidates, match: (pid, ppid, title) => ppid === pm && pid !== backendPid && title().includes(db) };
}

// ------------------------------------------------------------------ side-effect log and workers

export function newLogDir() { return fs.mkdtempSync(path.join(os.tmpdir(), "bench-log-")); }

export function logCounter(dir) {
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

export function readLog(dir) {
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

export function onceCheck(rows, n) {
  const seen = new Map();
  for (const [i] of rows) if (i >= 0) seen.set(i, (seen.get(i) ?? 0) + 1);
  let executions = 0, duplicates = 0, missing = 0;
  for (const c of seen.values()) { executions += c; duplicates += c - 1; }
  for (let i = 0; i < n; i++) if (!seen.has(i)) missing++;
  return { executions, duplicates, missing };
}

// Workers are this same script with --scenario worker, one process each.
export function startWorkers(script, args, logDir) {
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

export async function stopWorkers(procs, graceMs = 1500) {
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

export function workerErrors(dir) {
  const files = fs.readdirSync(dir).filter((n) => n.startsWith("worker")).sort();
  return files.map((n) => fs.readFileSync(path.join(dir, n), "utf8")).join("").slice(-2000);
}

export async function poll(done, limitS, intervalMs = 20) {
  const deadline = now() + limitS;
  for (;;) {
    if (done()) return true;
    if (now() > deadline) return false;
    await sleep(intervalMs);
  }
}

export function pct(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))] : null;
}
export const rate = (n, secs) => (secs > 0 ? n / secs : null);
