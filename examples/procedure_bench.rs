//! Measures one delivery procedure on real files, without a server or database: the time,
//! the output size and the process's peak RSS (run one procedure per process so the peak is
//! that procedure's). Used for docs/benchmarks.md, "Procedures".
//!
//! ```sh
//! cargo run --example procedure_bench -- '[{"type":"delta"}]' BASE TARGET [--devices N]
//! ```
//! With `--devices N` the procedure should end in a per-device step (`encrypt`): after the
//! first run, N more devices each get their own output of the shared prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use devicehub::error::Result;
use devicehub::pipeline::{self, Base, Cache, DeviceKeys, Output, SignKey, Work};
use devicehub::storage::Storage;
use futures_util::future::BoxFuture;
use serde_json::Map;
use tokio::io::AsyncReadExt;

/// The output cache in memory: enough for one process.
#[derive(Default)]
struct MemoryCache(Mutex<HashMap<String, Output>>);

impl Cache for MemoryCache {
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Output>>> {
        Box::pin(async move { Ok(self.0.lock().unwrap().get(key).cloned()) })
    }
    fn record<'a>(&'a self, key: &'a str, output: Output) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move { Ok(self.0.lock().unwrap().entry(key.to_owned()).or_insert(output).clone()) })
    }
    fn claim<'a>(&'a self, _key: &'a str, _holder: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(true) })
    }
    fn renew<'a>(&'a self, _key: &'a str, _holder: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn release<'a>(&'a self, _key: &'a str, _holder: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn claim_lease(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// The process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    kib / 1024.0
}

/// Streams a file into the store (so the upload itself does not raise the peak).
async fn put(storage: &Storage, key: &str, path: &str) -> Output {
    let mut file = tokio::fs::File::open(path).await.expect("open");
    let mut writer = storage.writer(key, u64::MAX).await.unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]).await.unwrap();
    }
    let stored = writer.finish().await.unwrap();
    let filename = std::path::Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
    Output { key: stored.key, filename, digests: stored.digests, extras: Map::new() }
}

fn device(n: usize) -> DeviceKeys {
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    DeviceKeys { device_id: format!("bench-{n}"), age_recipient: Some(recipient) }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, steps, base, target, rest @ ..] = &args[..] else {
        panic!("usage: procedure_bench STEPS_JSON BASE TARGET [--devices N]");
    };
    let devices: usize = match rest {
        [flag, n] if flag == "--devices" => n.parse().expect("a number of devices"),
        _ => 0,
    };
    let steps = pipeline::steps::parse_steps(&serde_json::from_str(steps).expect("steps JSON")).expect("valid steps");
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::from_url(dir.path().to_str().unwrap()).unwrap();
    let base = put(&storage, "images/base/1", base).await;
    let image = put(&storage, "images/target/1", target).await;
    let baseline = peak_rss_mib();
    let sign_key = pipeline::steps::signing_keys(&steps).first().map(|id| SignKey {
        id: (*id).to_owned(),
        secret: minisign::KeyPair::generate_unencrypted_keypair().unwrap().sk.to_bytes(),
    });
    let mut work = Work {
        session_id: "bench".into(),
        steps,
        model: "BENCH".into(),
        version: "2.0.0".into(),
        firmware_id: "bench-target".into(),
        image: image.clone(),
        base: Base::Stored { version: "1.0.0".into(), image: base },
        device: Some(device(0)),
        sign_key,
    };
    let cache = MemoryCache::default();
    let started = Instant::now();
    let out = pipeline::run(&storage, &cache, &work).await.expect("the procedure runs");
    let took = started.elapsed();
    let mut size_note = format!(
        "{} bytes ({:.2} % of the target's {})",
        out.digests.size,
        100.0 * out.digests.size as f64 / image.digests.size as f64,
        image.digests.size
    );
    if let Some(delta) = out.extras.get("delta") {
        size_note.push_str(&format!("; delta applied: {}", delta["applied"]));
    }
    println!("output: {size_note}");
    println!("time: {:.2} s", took.as_secs_f64());
    println!("peak RSS: {:.0} MiB (before the run: {:.0} MiB)", peak_rss_mib(), baseline);
    if devices > 0 {
        let started = Instant::now();
        for n in 1..=devices {
            work.device = Some(device(n));
            pipeline::run(&storage, &cache, &work).await.expect("a device's run");
        }
        let took = started.elapsed().as_secs_f64();
        println!("{devices} more devices: {took:.2} s ({:.1} ms each)", 1000.0 * took / devices as f64);
    }
}
