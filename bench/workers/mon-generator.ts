/**
 * The load generator of bench/mon.ts, in its own process: simulated pilots sending
 * pilot.heartbeat over keep-alive HTTP connections.
 *
 * Open loop: arrival j is scheduled at t0 + j / rate, whatever happened to the earlier ones, for
 * pilot j mod pilots (so each pilot heartbeats every pilots / rate seconds, their phases evenly
 * spread). A request is sent at its scheduled time even when earlier ones are unanswered (in
 * flight: unbounded up to `maxInFlight`; an arrival that finds the cap reached is not sent, is
 * counted in skipped_at_cap and sets cap_hit). Its latency is measured from its SCHEDULED time,
 * not from when it went out, so a server (or a generator) that falls behind shows in the
 * percentiles instead of silently lowering the offered rate (coordinated omission). Requests
 * still unanswered `drainMs` after the last scheduled send are counted as unanswered and enter
 * the percentiles with the time they had waited by then (a lower bound).
 * Closed loop: `connections` loops, each sending the next pilot's heartbeat as soon as the last
 * is answered — the most the server can answer; latency from send to answer.
 *
 * Pilots share `connections` keep-alive sockets (one per pilot when there are no more pilots
 * than that): a process may hold at most `ulimit -n` descriptors, and the server needs one per
 * connection too.
 */
import http from 'node:http';

export interface GeneratorJob {
  url: string;
  tasks: Array<{ id: number; passkey: string }>;
  mode: 'closed' | 'open';
  connections: number;
  /** Source address of the sockets (a fresh one per phase keeps TIME_WAIT ports of the last apart). */
  localAddress?: string;
  warmupMs: number;
  durationMs: number;
  /** open loop: offered calls per second over all pilots */
  rate?: number;
  /** open loop: requests in flight at most */
  maxInFlight?: number;
  /** open loop: how long to wait for the last answers after the last scheduled send */
  drainMs?: number;
}

export interface GeneratorResult {
  pilots: number;
  connections: number;
  seconds: number;
  offered_per_s?: number;
  /** calls of the measured window sent (open loop: scheduled in it and not skipped) */
  sent: number;
  /** answered with a result, per second of the window */
  achieved_per_s: number;
  /** answered with an error (e.g. -32029 backpressure) or failed, per second */
  errors_per_s: number;
  unanswered: number;
  skipped_at_cap: number;
  max_in_flight?: number;
  cap_hit: boolean;
  /** most requests in flight at once */
  peak_in_flight: number;
  p50_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
  /** open loop: how late the generator sent, at worst, after the scheduled time */
  max_send_lag_ms?: number;
  /** this process's CPU over the phase, % of one core (near 100: the generator is the limit) */
  generator_cpu_percent: number;
}

const round = (x: number) => Math.round(x * 100) / 100;

export async function generate(job: GeneratorJob): Promise<GeneratorResult> {
  const url = new URL(job.url.replace(/\/+$/, '') + '/rpc');
  const agent = new http.Agent({
    keepAlive: true, maxSockets: job.connections, maxFreeSockets: job.connections, scheduling: 'fifo',
    ...(job.localAddress ? { localAddress: job.localAddress } : {}),
  });
  const n = job.tasks.length;
  const beats = new Uint32Array(n);
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  let sent = 0;
  let inFlight = 0;
  let peak = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now() + 20;
  const measureFrom = start + job.warmupMs;
  const end = measureFrom + job.durationMs;
  /** measured requests not yet answered: their scheduled times */
  const outstanding = new Set<number>();

  const heartbeat = (pilot: number): string => {
    const task = job.tasks[pilot]!;
    const k = ++beats[pilot]!;
    return JSON.stringify({
      jsonrpc: '2.0', id: k, method: 'pilot.heartbeat',
      params: { task_id: task.id, passkey: task.passkey, cpu_seconds: k, rss_mb: 100 + (k % 50), wall_seconds: k * 2 },
    });
  };

  /** Send one call; resolves true when it was answered with a result. */
  const post = (body: string): Promise<boolean> =>
    new Promise((resolve) => {
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(res.statusCode === 200 && text.includes('"result"')));
        res.on('error', () => resolve(false));
      });
      req.on('error', () => resolve(false));
      req.end(body);
    });

  let maxLag = 0;
  let skipped = 0;
  let capHit = false;
  let unanswered = 0;
  if (job.mode === 'open') {
    const interval = 1000 / job.rate!;
    const cap = job.maxInFlight ?? Number.MAX_SAFE_INTEGER;
    let j = 0;
    const fire = (sched: number, measured: boolean) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      if (measured) {
        sent++;
        outstanding.add(sched);
      }
      void post(heartbeat(j % n)).then((good) => {
        inFlight--;
        if (!measured || !outstanding.delete(sched)) return; // not measured, or given up on at the drain
        if (good) {
          ok++;
          latencies.push(performance.now() - sched);
        } else errors++;
      });
    };
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        for (;;) {
          const sched = start + j * interval;
          if (sched > now || sched >= end) break;
          const measured = sched >= measureFrom;
          if (inFlight >= cap) {
            capHit = true;
            if (measured) skipped++;
          } else {
            if (measured) maxLag = Math.max(maxLag, now - sched);
            fire(sched, measured);
          }
          j++;
        }
        const next = start + j * interval;
        if (next >= end) return resolve();
        // no spinning: a timer to the next arrival (≥ 1 ms; a late send is counted, from its schedule)
        setTimeout(tick, Math.min(50, Math.max(1, next - performance.now())));
      };
      tick();
    });
    const drainUntil = performance.now() + (job.drainMs ?? 10_000);
    while (outstanding.size && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
    const now = performance.now();
    for (const sched of outstanding) latencies.push(now - sched); // waited at least this long
    unanswered = outstanding.size;
    outstanding.clear();
  } else {
    let next = 0;
    const loop = async () => {
      for (;;) {
        const sent0 = performance.now();
        if (sent0 >= end) return;
        const measured = sent0 >= measureFrom;
        inFlight++;
        peak = Math.max(peak, inFlight);
        const good = await post(heartbeat(next++ % n));
        inFlight--;
        const done = performance.now();
        if (measured && done <= end) {
          sent++;
          if (good) {
            ok++;
            latencies.push(done - sent0);
          } else errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: job.connections }, loop));
  }
  agent.destroy();
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! : 0);
  const seconds = job.durationMs / 1000;
  return {
    pilots: n,
    connections: job.connections,
    seconds,
    ...(job.rate ? { offered_per_s: job.rate } : {}),
    sent,
    achieved_per_s: Math.round(ok / seconds),
    errors_per_s: Math.round(errors / seconds),
    unanswered,
    skipped_at_cap: skipped,
    ...(job.mode === 'open' ? { max_in_flight: job.maxInFlight ?? Number.MAX_SAFE_INTEGER } : {}),
    cap_hit: capHit,
    peak_in_flight: peak,
    p50_ms: round(q(0.5)),
    p99_ms: round(q(0.99)),
    p999_ms: round(q(0.999)),
    max_ms: round(latencies[latencies.length - 1] ?? 0),
    ...(job.mode === 'open' ? { max_send_lag_ms: round(maxLag) } : {}),
    generator_cpu_percent: Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - start)) * 100),
  };
}

/** Child process entry: one job per process, the result sent back over IPC. */
export function generatorMain(): void {
  process.once('message', (job: GeneratorJob) => {
    generate(job).then(
      (r) => process.send!({ ok: true, result: r }, () => process.exit(0)),
      (e: unknown) => process.send!({ ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) }, () => process.exit(1)),
    );
  });
}
