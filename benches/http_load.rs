//! The load generator of `make bench`'s API figures: sends REQUESTS HTTP/1.1
//! requests to a plain-HTTP `kubectl nautes serve`, CONCURRENCY connections
//! at once, each kept alive, and prints the latency distribution.
//!
//!     http_load URL TOKEN_FILE REQUESTS CONCURRENCY [METHOD [BODY_FILE]]
//!
//! It speaks just enough HTTP/1.1 for the server it measures (a
//! Content-Length body, or chunked), so that the client costs little next to
//! the server. The token is read from a file, never from the command line.
//! Prints one JSON line: requests, seconds, requests_per_second, p50_ms,
//! p99_ms, max_ms and the count of each status code. Run with other arguments
//! (as `cargo test --all-targets` does), it exits 0 silently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Target {
    host_port: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are measured"))?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok(Target {
        host_port: host_port.to_string(),
        path: path.to_string(),
    })
}

/// Reads one response; returns its status code.
async fn read_response(r: &mut BufReader<TcpStream>) -> Result<u16, String> {
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await.map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            let mut buf = vec![0u8; size + 2];
            r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    }
    Ok(status)
}

async fn worker(
    target: &Target,
    request: &[u8],
    count: usize,
) -> Result<(Vec<Duration>, BTreeMap<u16, usize>), String> {
    let stream = TcpStream::connect(&target.host_port)
        .await
        .map_err(|e| format!("{}: {e}", target.host_port))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut times = Vec::with_capacity(count);
    let mut codes = BTreeMap::new();
    for _ in 0..count {
        let t0 = Instant::now();
        r.get_mut()
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        let code = read_response(&mut r).await?;
        times.push(t0.elapsed());
        *codes.entry(code).or_insert(0) += 1;
    }
    Ok((times, codes))
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn run(args: &[String]) -> Result<String, String> {
    let target = parse_url(&args[0])?;
    let token = std::fs::read_to_string(&args[1])
        .map_err(|e| format!("{}: {e}", args[1]))?
        .trim()
        .to_string();
    let requests: usize = args[2].parse().map_err(|_| "REQUESTS: a number")?;
    let concurrency: usize = args[3].parse().map_err(|_| "CONCURRENCY: a number")?;
    let method = args.get(4).map(String::as_str).unwrap_or("GET");
    let body = match args.get(5) {
        Some(f) => std::fs::read(f).map_err(|e| format!("{f}: {e}"))?,
        None => Vec::new(),
    };
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n",
        target.path, target.host_port
    )
    .into_bytes();
    if !body.is_empty() || method != "GET" {
        request.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&body);
    let concurrency = concurrency.max(1);
    let per = requests.div_ceil(concurrency);
    let start = Instant::now();
    let handles: Vec<_> = (0..concurrency)
        .map(|i| {
            let n = per.min(requests.saturating_sub(i * per));
            let target = Target {
                host_port: target.host_port.clone(),
                path: target.path.clone(),
            };
            let request = request.clone();
            tokio::spawn(async move { worker(&target, &request, n).await })
        })
        .collect();
    let mut times = Vec::with_capacity(requests);
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for h in handles {
        let (t, c) = h.await.map_err(|e| e.to_string())??;
        times.extend(t);
        for (k, v) in c {
            *codes.entry(k).or_insert(0) += v;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    times.sort();
    let codes: BTreeMap<String, usize> =
        codes.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Ok(serde_json::json!({
        "requests": times.len(),
        "concurrency": concurrency,
        "seconds": secs,
        "requests_per_second": if secs > 0.0 { times.len() as f64 / secs } else { 0.0 },
        "p50_ms": quantile(&times, 0.50),
        "p99_ms": quantile(&times, 0.99),
        "max_ms": quantile(&times, 1.0),
        "codes": codes,
    })
    .to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 || !args[0].starts_with("http://") {
        if args.iter().any(|a| a == "-h" || a == "--help") {
            eprintln!("usage: http_load URL TOKEN_FILE REQUESTS CONCURRENCY [METHOD [BODY_FILE]]");
        }
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("http_load: tokio: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(&args)) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("http_load: {e}");
            std::process::exit(1);
        }
    }
}
