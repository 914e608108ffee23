//! The `btdht` binary refuses what is wrong at start: a port in use (exit 1, naming the
//! address, before any router name is resolved) and an address that is not local (exit 2);
//! and it waits for a silent node as long as `--timeout` says. A `--state` it cannot keep, or
//! one another node keeps, is refused before the node starts.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::net::UdpSocket;
use std::process::Output;
use std::time::{Duration, Instant};

use btdht::driver::Dht;
use support::{loopback, temp_dir};

fn btdht(args: &[&str]) -> Output {
    support::btdht_command().args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_port_in_use_is_an_error_naming_the_address() {
    let holder = loopback(181).start().unwrap();
    let addr = holder.local_addr();
    let bind = addr.to_string();
    let port = addr.port().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "node",
            "--bind",
            &bind,
            "--allow-private",
            "--bootstrap",
            "127.0.181.9:1",
        ],
        vec![
            "bootstrap",
            "--bind",
            &bind,
            "--allow-private",
            "--bootstrap",
            "127.0.181.9:1",
        ],
        vec![
            "bootstrap",
            "--bind",
            &bind,
            "--threads",
            "2",
            "--bootstrap",
            "127.0.181.9:1",
        ],
        vec![
            "swarm",
            "--nodes",
            "1",
            "--base-ip",
            "127.0.181.1",
            "--port",
            &port,
        ],
        vec![
            "ping",
            "127.0.181.9:1",
            "--bind",
            &bind,
            "--allow-private",
            "--timeout",
            "1",
        ],
        vec![
            "crawl",
            "--bind",
            &bind,
            "--bootstrap",
            "127.0.181.9:1",
            "--allow-private",
        ],
    ];
    for args in cases {
        let out = btdht(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&bind), "{args:?}: {err}");
        assert!(err.contains("in use"), "{args:?}: {err}");
    }
    // The holder still gets the traffic.
    let client = loopback(182).start().unwrap();
    assert_eq!(client.ping(addr).unwrap(), holder.id());
    client.stop().unwrap();
    holder.stop().unwrap();
}

#[test]
fn without_bootstrap_nodes_a_port_in_use_fails_before_the_routers_are_resolved() {
    // The port is taken, so each command fails at the bind, before the public routers would
    // be resolved: nothing is looked up and nothing is sent. -vv shows a resolution if one
    // happened.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bind = holder.local_addr().unwrap().to_string();
    let id = "0123456789abcdef0123456789abcdef01234567";
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["node", "--bind", &bind, "--no-state"], 1),
        (vec!["find-node", id, "--bind", &bind], 1),
        (vec!["crawl", "--bind", &bind], 1),
        (vec!["bootstrap", "--bind", &bind], 1),
        (vec!["metadata", id, "--bind", &bind], 1),
        (
            vec![
                "hathor",
                "discover",
                "--network",
                "testnet",
                "--bind",
                &bind,
            ],
            1,
        ),
    ];
    for (args, code) in cases {
        let out = btdht(&[&["-vv"], &args[..]].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.contains(&bind) && err.contains("in use"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("resolv") && !err.contains("router"),
            "{args:?}: resolved names before the bind: {err}"
        );
    }
}

#[test]
fn an_address_that_is_not_local_exits_2() {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: binding it fails, nothing is sent.
    for args in [
        &[
            "node",
            "--bind",
            "192.0.2.1:7400",
            "--bootstrap",
            "127.0.0.1:1",
        ][..],
        &[
            "ping",
            "127.0.0.1:1",
            "--bind",
            "192.0.2.1:0",
            "--allow-private",
        ][..],
    ] {
        let out = btdht(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("192.0.2.1"), "{args:?}: {err}");
    }
}

#[test]
fn every_client_command_waits_the_timeout_it_is_given() {
    // A socket that never answers.
    let silent = UdpSocket::bind("127.0.183.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let id = "0123456789abcdef0123456789abcdef01234567";
    let cases: Vec<Vec<&str>> = vec![
        vec!["ping", &addr],
        vec!["sample", &addr],
        vec!["find-node", id, "--bootstrap", &addr],
    ];
    for mut args in cases {
        args.extend(["--allow-private", "--timeout", "9"]);
        let started = Instant::now();
        let out = btdht(&args);
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            took >= Duration::from_millis(8_500) && took < Duration::from_secs(15),
            "{args:?} took {took:?}"
        );
    }
}

#[test]
fn a_state_file_it_cannot_keep_is_refused_at_start() {
    // `node` and the Hathor client check their --state alike.
    let dir = temp_dir("cli-state");
    let foreign = dir.join("other.json");
    std::fs::write(&foreign, "{\"name\": \"another program\"}\n").unwrap();
    let random = dir.join("random.bin");
    std::fs::write(&random, [0x8fu8, 0x00, 0xff, 0x13, 0x37]).unwrap();
    let missing_dir = dir.join("no/such/dir/state.json");
    let cases = [
        (missing_dir.to_string_lossy().into_owned(), "does not exist"),
        ("/proc/btdht-state.json".to_string(), "not writable"),
        (dir.to_string_lossy().into_owned(), "directory"),
        (foreign.to_string_lossy().into_owned(), "not a btdht state"),
        (random.to_string_lossy().into_owned(), "not a btdht state"),
    ];
    let commands: [&[&str]; 2] = [&["node"], &["hathor", "discover", "--network", "testnet"]];
    for (state, says) in &cases {
        for command in commands {
            let args = [
                command,
                &[
                    "--bind",
                    "127.0.184.1:0",
                    "--allow-private",
                    "--bootstrap",
                    "127.0.184.9:1",
                    "--state",
                    state,
                ],
            ]
            .concat();
            let out = btdht(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
    // The files that are not ours are left as they were.
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "{\"name\": \"another program\"}\n"
    );
    assert_eq!(
        std::fs::read(&random).unwrap(),
        [0x8f, 0x00, 0xff, 0x13, 0x37]
    );
}

#[test]
fn a_state_file_another_node_keeps_is_refused_at_start() {
    let dir = temp_dir("cli-state-in-use");
    let state = dir.join("state.json");
    let holder = loopback(186).state_file(&state).start().unwrap();
    let out = btdht(&[
        "node",
        "--bind",
        "127.0.186.2:0",
        "--allow-private",
        "--bootstrap",
        "127.0.186.9:1",
        "--state",
        &state.to_string_lossy(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another node"), "{err}");
    assert!(err.contains("--no-state"), "{err}");
    holder.stop().unwrap();
}

#[test]
fn an_isolated_node_keeps_retrying_its_bootstrap_nodes() {
    // The bootstrap node is silent at first, then comes up on the same address.
    let silent = UdpSocket::bind("127.0.185.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let bootstrap = addr.to_string();
    let mut child = support::btdht_command()
        .args([
            "node",
            "--bind",
            "127.0.185.2:0",
            "--allow-private",
            "--bootstrap",
            &bootstrap,
            "--stats",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut said_isolated = false;
    while started.elapsed() < Duration::from_secs(11) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            said_isolated |= line.contains("isolated: bootstrap retry");
        }
    }
    assert!(
        said_isolated,
        "the stats line never said the node is isolated"
    );
    // The first lookup gave up long ago; only a retry can find the node that comes up now.
    drop(silent);
    let node = Dht::builder()
        .bind(addr)
        .allow_private(true)
        .start()
        .unwrap();
    let mut joined = false;
    while started.elapsed() < Duration::from_secs(45) && !joined {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            joined = line.starts_with("nodes 1+0");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    node.stop().unwrap();
    assert!(
        joined,
        "the node never joined through its retried bootstrap node"
    );
}

#[test]
fn every_message_about_an_address_says_what_is_wrong_with_it() {
    let id = "0123456789abcdef0123456789abcdef01234567";
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["ping", "127.0.20.1:7400"],
            1,
            &["loopback", "--allow-private"],
        ),
        (
            &["sample", "10.1.2.3:7400"],
            1,
            &["private", "--allow-private"],
        ),
        (
            &["find-node", id, "--bootstrap", "127.0.186.1:7400"],
            1,
            &["loopback", "--allow-private"],
        ),
        (
            &[
                "crawl",
                "--bootstrap",
                "127.0.186.1:7400",
                "--bind",
                "127.0.186.2:0",
            ],
            1,
            &["loopback", "--allow-private", "no bootstrap node"],
        ),
        (
            &["ping", "127.0.20.1:70000"],
            2,
            &["port 70000 is out of range"],
        ),
        (
            &["ping", "999.0.0.1:6881"],
            2,
            &["999.0.0.1 is not an IP address"],
        ),
        (
            &["node", "--bind", "127.0.0.1:99999"],
            2,
            &["port 99999 is out of range"],
        ),
    ];
    for (args, code, says) in cases {
        let out = btdht(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        for word in *says {
            assert!(err.contains(word), "{args:?}: no {word:?} in {err}");
        }
    }
}

#[test]
fn a_crawl_that_found_nothing_exits_1_and_says_why() {
    let silent = UdpSocket::bind("127.0.187.1:0").unwrap();
    let bootstrap = silent.local_addr().unwrap().to_string();
    let out = btdht(&[
        "crawl",
        "--bootstrap",
        &bootstrap,
        "--allow-private",
        "--bind",
        "127.0.187.2:0",
        "--until-idle",
        "--duration",
        "8",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no bootstrap node answered"), "{err}");
}

#[test]
fn bench_says_why_answers_are_missing() {
    // No server at all.
    let silent = UdpSocket::bind("127.0.188.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let args = [
        "--seconds",
        "1",
        "--warmup",
        "0",
        "--sources",
        "2",
        "--window",
        "8",
    ];
    let mut no_server = vec!["bench", target.as_str()];
    no_server.extend(args);
    let out = btdht(&no_server);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no answer from"), "{err}");
    drop(silent);
    // A node with its default per-IP rate limit drops most of the load.
    let node = loopback(189).start().unwrap();
    let target = node.local_addr().to_string();
    let mut limited = vec!["bench", target.as_str()];
    limited.extend(args);
    let out = btdht(&limited);
    let err = stderr(&out);
    node.stop().unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("rate limit"), "{err}");
    assert!(err.contains("--rate-limit off"), "{err}");
}

#[test]
fn log_lines_have_timestamps_and_a_bad_btdht_log_is_reported() {
    let out = support::btdht_command()
        .args(["ping", "127.0.190.1:1", "--allow-private", "--timeout", "1"])
        .env("BTDHT_LOG", "bogus")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("BTDHT_LOG=\"bogus\" is not a level"), "{err}");
    let out = support::btdht_command()
        .args(["find-node", "0123456789abcdef0123456789abcdef01234567"])
        .args([
            "--bootstrap",
            "127.0.190.1:1",
            "--allow-private",
            "--timeout",
            "1",
            "-v",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains(" btdht: info: "))
        .unwrap_or_else(|| panic!("no info line: {err}"));
    let stamp = line.split(' ').next().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{line}"
    );
}

#[test]
fn version_names_the_git_revision() {
    let out = btdht(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!("btdht {} (git ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let rev = text
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        rev == "unknown" || (rev.len() >= 7 && rev.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
}
