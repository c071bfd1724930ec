//! Measuring a pass: latencies and errors, their summary, and the closed and open loops that
//! drive a scenario's requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

#[derive(Default)]
pub struct Recorder {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Recorder {
    pub fn add(&mut self, latency: Duration, result: Result<(), String>) {
        match result {
            Ok(()) => self.latencies.push(latency),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub scenario: String,
    pub mode: String,
    pub target_rate: Option<f64>,
    pub ok: usize,
    pub errors: u64,
    pub late_no_slot: u64,
    pub late_sched: u64,
    pub elapsed: f64,
    pub rps: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub first_error: Option<String>,
    pub note: Option<String>,
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn summarise(
    scenario: &str,
    mode: &str,
    target_rate: Option<f64>,
    mut rec: Recorder,
    elapsed: Duration,
) -> Summary {
    rec.latencies.sort();
    let l = &rec.latencies;
    Summary {
        scenario: scenario.to_owned(),
        mode: mode.to_owned(),
        target_rate,
        ok: l.len(),
        errors: rec.errors,
        late_no_slot: 0,
        late_sched: 0,
        elapsed: elapsed.as_secs_f64(),
        rps: l.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: percentile(l, 50.0),
        p95: percentile(l, 95.0),
        p99: percentile(l, 99.0),
        max: l.last().map(|d| ms(*d)).unwrap_or(f64::NAN),
        first_error: rec.first_error,
        note: None,
    }
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario, "mode": self.mode, "target_rate": self.target_rate,
            "ok": self.ok, "errors": self.errors, "late_no_slot": self.late_no_slot,
            "late_sched": self.late_sched, "elapsed_s": self.elapsed, "rps": self.rps,
            "p50_ms": self.p50, "p95_ms": self.p95, "p99_ms": self.p99, "max_ms": self.max,
            "first_error": self.first_error, "note": self.note,
        })
    }
}

/// One request of a scenario: `i` picks its work item. `Err` is an error answer.
pub type Request = Arc<dyn Fn(usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Closed loop: `concurrency` tasks each send the next request as soon as the last one answered,
/// until `duration` is over or the `items` run out. Its throughput is the maximum.
pub async fn closed_loop(name: &str, concurrency: usize, duration: Duration, items: usize, f: Request) -> Summary {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, f) = (next.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items {
                    break;
                }
                let t0 = Instant::now();
                let r = f(i).await;
                rec.add(t0.elapsed(), r);
            }
            rec
        }));
    }
    let mut all = Recorder::default();
    for t in tasks {
        let r = t.await.expect("load task");
        all.latencies.extend(r.latencies);
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
    }
    let elapsed = start.elapsed();
    let mut s = summarise(name, "max (closed loop)", None, all, elapsed);
    if next.load(Ordering::Relaxed) >= items && elapsed < duration {
        s.note = Some(format!("work items ran out after {:.1} s", elapsed.as_secs_f64()));
    }
    s
}

/// Open loop: request `i` is planned at `start + i / rate` and launched then, whether or not earlier
/// ones answered, with at most `concurrency` in flight; latency counts from the planned time.
pub async fn open_loop(
    name: &str,
    rate: f64,
    concurrency: usize,
    duration: Duration,
    items: usize,
    f: Request,
) -> Summary {
    let planned_total = ((rate * duration.as_secs_f64()) as usize).min(items);
    let slots = Arc::new(Semaphore::new(concurrency));
    let start = tokio::time::Instant::now();
    let (mut late_no_slot, mut late_sched) = (0u64, 0u64);
    let mut tasks = Vec::with_capacity(planned_total);
    for i in 0..planned_total {
        let planned = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(planned).await;
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                late_no_slot += 1;
                slots.clone().acquire_owned().await.expect("semaphore open")
            }
        };
        if planned.elapsed() > Duration::from_millis(2) {
            late_sched += 1;
        }
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let r = f(i).await;
            let latency = planned.elapsed();
            drop(permit);
            (latency, r)
        }));
    }
    let mut rec = Recorder::default();
    for t in tasks {
        let (latency, r) = t.await.expect("load task");
        rec.add(latency, r);
    }
    let elapsed = start.elapsed();
    let mut s = summarise(name, "open loop", Some(rate), rec, elapsed);
    s.late_no_slot = late_no_slot;
    s.late_sched = late_sched;
    if planned_total < (rate * duration.as_secs_f64()) as usize {
        s.note = Some(format!("only {planned_total} work items"));
    }
    s
}

pub fn report_line(s: &Summary) {
    eprintln!(
        "  {:<23} {:<28} {:>9.1} req/s  p50 {:>7.2}  p99 {:>8.2} ms  errors {}",
        s.scenario, s.mode, s.rps, s.p50, s.p99, s.errors
    );
}
