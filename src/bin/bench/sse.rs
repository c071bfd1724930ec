//! SSE memory: a second server process on the same database, so its RSS is the server's alone.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use repairdesk::startup::Application;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::setup::settings_for;
use crate::Args;

pub async fn serve_only(db_url: &str, args: &Args) -> anyhow::Result<()> {
    let app = Application::build(settings_for(db_url, args)?).await?;
    println!("PORT {}", app.port());
    use std::io::Write;
    std::io::stdout().flush()?;
    app.run_until_stopped().await?;
    Ok(())
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn open_sse(port: u16, token: &str) -> Result<tokio::net::TcpStream, String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let req = format!(
        "GET /api/v1/pool/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .map_err(|_| "no answer in 30 s".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed: {}", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if !text.starts_with("HTTP/1.1 200") && text.contains("\r\n\r\n") {
            return Err(text.lines().next().unwrap_or_default().to_owned());
        }
        if text.contains(": connected") {
            return Ok(s);
        }
    }
}

pub async fn sse_memory(db_url: &str, args: &Args, tokens: &[String]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .arg("--serve")
        .arg(db_url)
        .args(["--pool-size", &args.pool_size.to_string()])
        .args(["--engine", &args.engine])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().context("child stdout")?;
    let port = tokio::task::spawn_blocking(move || -> anyhow::Result<u16> {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if let Some(p) = line?.trim().strip_prefix("PORT ") {
                return Ok(p.parse()?);
            }
        }
        bail!("the SSE server exited before printing its port")
    })
    .await?;
    let port = match port {
        Ok(p) => p,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kb(pid).unwrap_or(0);
    let started = Instant::now();
    let results: Vec<Result<tokio::net::TcpStream, String>> = futures_util::stream::iter(0..args.sse)
        .map(|i| {
            let token = tokens[i % tokens.len()].clone();
            async move { open_sse(port, &token).await }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    let mut streams = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(s) => streams.push(s),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kb(pid).unwrap_or(0);
    let held = streams.len();
    drop(streams);
    let _ = child.kill();
    let _ = child.wait();
    Ok(json!({
        "connections_requested": args.sse, "connections_open": held, "failures": failures,
        "first_error": first_error, "open_seconds": open_secs,
        "server_rss_before_mb": before as f64 / 1024.0, "server_rss_with_connections_mb": after as f64 / 1024.0,
        "per_connection_kb": if held > 0 { after.saturating_sub(before) as f64 / held as f64 } else { f64::NAN },
    }))
}
