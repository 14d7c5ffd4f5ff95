// Shared scaffolding for the Node runners; mirrors common.py (same CLI, same scenarios, same JSON).
// A runner describes its system with a peer object; main(makePeer) runs one scenario and prints one JSON
// object. Measurement helpers live in measure.mjs.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import {
  logCounter, newLogDir, now, onceCheck, pct, poll, rate, readLog, sleep, startWorkers, stopWorkers,
  workerErrors,
} from "./measure.mjs";

export const SCENARIOS = ["setup", "enqueue_single", "enqueue_bulk", "drain", "latency", "backlog", "soak"];
const CHUNK = 10_000;

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
  if (!["default", "equal", "fast"].includes(values.mode)) throw new Error("--mode default|equal|fast");
  return { dsn: values.dsn, scenario: values.scenario, mode: values.mode, jobs: num("jobs"),
    processes: num("processes"), concurrency: num("concurrency"), rate: num("rate"),
    duration: num("duration"), sample: num("sample"), timeout: num("timeout") };
}

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
      // The clock starts when the workers are launched (start-up is also reported as startup_s).
      const secs = tEnd - tLaunch;
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
      await sleep(500); // let it go idle again
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
