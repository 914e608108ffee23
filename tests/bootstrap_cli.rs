//! `btdht bootstrap` and `btdht bench` on loopback: a real server process answers, fills its
//! pool from a node that joins through it and hands that node out, keeps its pool across a
//! restart, takes a couple of seconds of `btdht bench`; the bench refuses non-loopback targets.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use btdht::driver::Dht;

/// The binary under test (`BTDHT_BIN` overrides it, e.g. for a copy outside a shared
/// target directory).
fn bin() -> String {
    std::env::var("BTDHT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_btdht").to_string())
}

/// Starts `btdht bootstrap` on 127.0.0.1:0 and returns it with its address.
fn start(extra: &[&str]) -> (Child, SocketAddr, String) {
    let mut child = Command::new(bin())
        .args([
            "bootstrap",
            "--bind",
            "127.0.0.1:0",
            "--allow-private",
            "--bootstrap",
            "127.0.0.1:9",
            "--capacity",
            "10000",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let (addr, line) = loop {
        let line = lines.next().expect("a listening line").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break (
                rest.split_whitespace().next().unwrap().parse().unwrap(),
                line,
            );
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr, line)
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn bootstrap_server_answers_verifies_and_persists() {
    let dir = std::env::temp_dir().join(format!("btdht-bootstrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("pool.bin");
    let state_arg = state.to_str().unwrap();
    let (child, server, _) = start(&["--state", state_arg]);
    // A node joins through it: the server pings it back and adds it to the pool.
    let node = Dht::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .allow_private(true)
        .bootstrap(vec![server])
        .start()
        .unwrap();
    assert!(node.ping(server, Duration::from_secs(5)).is_ok());
    // A second node's find_node gets the first one (once verified and indexed, within ~1 s).
    let client = Dht::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .allow_private(true)
        .read_only(true)
        .bootstrap(vec![server])
        .start()
        .unwrap();
    let mut found = false;
    for _ in 0..20 {
        let outcome = client.find_node(node.id(), Duration::from_secs(5)).unwrap();
        if outcome.closest.iter().any(|(n, _)| n.id == node.id()) {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(found, "the verified node is handed out");
    // A couple of seconds of load.
    let out = Command::new(bin())
        .args([
            "bench",
            &server.to_string(),
            "--seconds",
            "2",
            "--warmup",
            "0",
        ])
        .args(["--query", "mix", "--window", "32", "--sources", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["answered"].as_u64().unwrap() > 100, "{report}");
    assert!(report["latency_us"]["p99"].as_u64().is_some());
    stop(child);
    client.stop().unwrap();
    // The pool was saved; a restarted server loads it.
    assert!(std::fs::metadata(&state).unwrap().len() > 24);
    let (child, _, line) = start(&["--state", state_arg]);
    assert!(!line.contains(" 0 nodes loaded"), "{line}");
    stop(child);
    node.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_refuses_targets_outside_loopback() {
    for target in ["192.0.2.1:6881", "10.0.0.1:6881", "[2001:db8::1]:6881"] {
        let out = Command::new(bin())
            .args(["bench", target, "--seconds", "1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{target}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("only 127.0.0.0/8 and ::1"),
            "{target}"
        );
    }
}
