//! The `btdht` binary: help texts, bad arguments (exit 2), client commands against
//! in-process loopback nodes (readable and JSON output, exit 1 when nothing answers), and
//! `btdht node` stopped by SIGTERM (exit 0, state saved).

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use btdht::InfoHash;
use btdht::driver::Dht;
use support::{loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

fn btdht(args: &[&str]) -> Output {
    support::btdht_command().args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_command_has_help_with_an_example() {
    let out = btdht(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Example"));
    for cmd in [
        "node",
        "ping",
        "find-node",
        "get-peers",
        "announce",
        "sample",
    ] {
        let out = btdht(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd}");
        assert!(
            stdout(&out).contains("Example:\n  btdht ")
                || stdout(&out).contains("Examples:\n  btdht "),
            "{cmd}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["find-node", "xyz"], "40-hex-digit"),
        (&["get-peers", "0123"], "40-hex-digit"),
        (
            &["announce", "0123456789abcdef0123456789abcdef01234567"],
            "--port",
        ),
        (
            &[
                "announce",
                "0123456789abcdef0123456789abcdef01234567",
                "--port",
                "0",
            ],
            "--port",
        ),
        (
            &[
                "announce",
                "0123456789abcdef0123456789abcdef01234567",
                "--port",
                "1",
                "--implied-port",
            ],
            "cannot be used",
        ),
        (&["ping", "not-an-address"], "IP:PORT"),
        (&["ping", "127.0.0.1:1", "--bind", "nowhere"], "IP:PORT"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&[], "Usage"),
    ];
    for (args, message) in cases {
        let out = btdht(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn ping_round_trip_readable_and_json() {
    let node = loopback(100).start().unwrap();
    let addr = node.local_addr().to_string();
    let out = btdht(&["ping", &addr, "--allow-private", "--bind", "127.0.101.1:0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&node.id().to_hex()));
    let out = btdht(&["ping", &addr, "--allow-private", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(value["id"], node.id().to_hex());
    assert_eq!(value["addr"], addr);
    // Without --allow-private the loopback address is refused, and nothing answers.
    let out = btdht(&["ping", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--allow-private"), "{}", stderr(&out));
    node.stop().unwrap();
}

#[test]
fn nothing_answering_exits_1() {
    let silent = UdpSocket::bind("127.0.102.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let hash = "0123456789abcdef0123456789abcdef01234567";
    for args in [
        vec!["ping", &addr],
        vec!["find-node", hash, "--bootstrap", &addr],
        vec!["get-peers", hash, "--bootstrap", &addr],
        vec!["announce", hash, "--implied-port", "--bootstrap", &addr],
        vec!["sample", &addr],
    ] {
        let mut args = args.clone();
        args.extend(["--allow-private", "--timeout", "3"]);
        let out = btdht(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn announce_then_get_peers_and_find_node_and_sample() {
    let seed = loopback(110).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 111..118u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes.iter().all(|d| d
        .with_timeout(T)
        .routing_table()
        .is_ok_and(|t| t.len() >= 4))));
    let boot = seed.local_addr().to_string();
    let hash = "00112233445566778899aabbccddeeff00112233";
    let common = [
        "--allow-private",
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.119.1:0",
    ];

    let mut args = vec!["announce", hash, "--port", "6999", "--json"];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(value["acknowledged"].as_u64().unwrap() >= 4, "{value}");

    // The in-process nodes find the announced peer...
    let found = nodes[3]
        .with_timeout(T)
        .get_peers(InfoHash::from_hex(hash).unwrap(), false)
        .and_then(|lookup| lookup.outcome())
        .unwrap();
    let peer: SocketAddr = "127.0.119.1:6999".parse().unwrap();
    assert!(found.peers.contains(&peer), "{:?}", found.peers);

    // ...and so does the CLI, readable and as JSON lines.
    let mut args = vec!["get-peers", hash];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("peer 127.0.119.1:6999"),
        "{}",
        stdout(&out)
    );
    args.push("--json");
    let out = btdht(&args);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "peer" && l["addr"] == "127.0.119.1:6999")
    );
    assert!(lines.iter().filter(|l| l["type"] == "node").count() >= 4);

    let target = nodes[5].id().to_hex();
    let mut args = vec!["find-node", &target, "--json"];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let first: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], target.as_str());

    // BEP 51 from a node that stored the announce.
    let holder = nodes
        .iter()
        .find(|d| d.with_timeout(T).stats().is_ok_and(|s| s.info_hashes > 0))
        .unwrap()
        .local_addr()
        .to_string();
    let out = btdht(&["sample", &holder, "--allow-private", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(value["samples"][0], hash);
    for dht in nodes {
        dht.stop().unwrap();
    }
}

#[test]
fn node_runs_until_sigterm_and_saves_its_state() {
    let dir = temp_dir("cli-node");
    let state = dir.join("state.json");
    let seed: Dht = loopback(120).start().unwrap();
    let mut child = support::btdht_command()
        .args([
            "node",
            "--bind",
            "127.0.121.1:0",
            "--allow-private",
            "--state",
        ])
        .arg(&state)
        .args([
            "--bootstrap",
            &seed.local_addr().to_string(),
            "--stats",
            "1",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let id = seed.with_timeout(T).ping(addr).unwrap();
    // A stats line is printed as JSON.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stats = String::new();
    out.read_line(&mut stats).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["nodes_ipv4"].as_u64().unwrap() >= 1, "{stats}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let saved = btdht::driver::load(&state).unwrap().unwrap();
    assert_eq!(saved.id, id);
    assert!(saved.nodes.iter().any(|n| n.node.addr == seed.local_addr()));
    seed.stop().unwrap();
}

#[test]
fn log_level_comes_from_flags_or_the_environment() {
    // A ping to a closed loopback port: the client node logs "listening" at info level.
    let args = ["ping", "127.0.0.1:9", "--allow-private", "--timeout", "1"];
    let quiet = support::btdht_command()
        .args(args)
        .env_remove("BTDHT_LOG")
        .output()
        .unwrap();
    assert!(!stderr(&quiet).contains("info:"), "{}", stderr(&quiet));
    let env = support::btdht_command()
        .args(args)
        .env("BTDHT_LOG", "info")
        .output()
        .unwrap();
    assert!(stderr(&env).contains("btdht: info:"), "{}", stderr(&env));
    let flag = support::btdht_command()
        .arg("-v")
        .args(args)
        .env_remove("BTDHT_LOG")
        .output()
        .unwrap();
    assert!(stderr(&flag).contains("btdht: info:"), "{}", stderr(&flag));
    let q = support::btdht_command()
        .arg("-q")
        .args(args)
        .env("BTDHT_LOG", "info")
        .output()
        .unwrap();
    assert!(!stderr(&q).contains("info:"), "-q wins: {}", stderr(&q));
}

/// Every key of `value` and of the objects inside it.
fn all_keys(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                out.push(key.clone());
                all_keys(inner, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

#[test]
fn every_json_line_has_a_type_and_one_spelling_of_infohash() {
    let seed = loopback(122).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 123..127u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes.iter().all(|d| d
        .with_timeout(T)
        .routing_table()
        .is_ok_and(|t| t.len() >= 3))));
    let boot = seed.local_addr().to_string();
    let hash = "00112233445566778899aabbccddeeff00112244";
    let lookup = ["--allow-private", "--bootstrap", &boot, "--json"];
    let direct = ["--allow-private", "--json"];
    let runs: Vec<Vec<&str>> = vec![
        [&["announce", hash, "--port", "7001"][..], &lookup].concat(),
        [&["get-peers", hash][..], &lookup].concat(),
        [&["find-node", hash][..], &lookup].concat(),
        [&["put", "vocabulary"][..], &lookup].concat(),
        [&["ping", &boot][..], &direct].concat(),
        [&["sample", &boot][..], &direct].concat(),
        vec![
            "crawl",
            "--bootstrap",
            &boot,
            "--allow-private",
            "--bind",
            "127.0.127.1:0",
            "--duration",
            "3",
        ],
        vec![
            "bench",
            &boot,
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--sources",
            "2",
            "--window",
            "4",
        ],
    ];
    for args in runs {
        let out = btdht(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.trim().is_empty(), "{args:?}: no output");
        for line in text.lines() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: {e}: {line}"));
            assert!(value["type"].is_string(), "{args:?}: no type: {line}");
            let mut keys = Vec::new();
            all_keys(&value, &mut keys);
            assert!(
                !keys.iter().any(|k| k == "info_hash"),
                "{args:?}: info_hash in {line}"
            );
        }
    }
    for dht in nodes {
        dht.stop().unwrap();
    }
}

#[test]
fn ping_and_sample_do_not_list_bootstrap() {
    for cmd in ["ping", "sample"] {
        let out = btdht(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(!stdout(&out).contains("--bootstrap"), "{cmd}");
    }
    let out = btdht(&["find-node", "--help"]);
    assert!(stdout(&out).contains("--bootstrap"));
}

#[test]
fn verbose_node_says_listening_once() {
    let mut child = support::btdht_command()
        .args([
            "-v",
            "node",
            "--bind",
            "127.0.128.1:0",
            "--allow-private",
            "--bootstrap",
            "127.0.128.9:1",
        ])
        .env_remove("BTDHT_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    std::thread::sleep(Duration::from_secs(2));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let _ = child.wait();
    let lines = reader.join().unwrap();
    let listening = lines.iter().filter(|l| l.contains("listening on")).count();
    assert_eq!(listening, 1, "{lines:#?}");
}

#[test]
fn completions_and_man_page() {
    let out = btdht(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("btdht"));
    assert!(stdout(&out).contains("find-node"));
    let out = btdht(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // After the roff definition of the apostrophe string (`.ie`/`.el`), the title macro.
    let page = stdout(&out);
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap_or_default();
    assert!(first.starts_with(".TH btdht 1"), "{page}");
    let out = btdht(&["completions", "no-such-shell"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn progress_shows_the_crawl_progress_without_a_terminal() {
    let silent = UdpSocket::bind("127.0.129.1:0").unwrap();
    let bootstrap = silent.local_addr().unwrap().to_string();
    let args = [
        "crawl",
        "--bootstrap",
        &bootstrap,
        "--allow-private",
        "--bind",
        "127.0.129.2:0",
        "--duration",
        "2",
    ];
    let quiet = btdht(&args);
    assert!(
        !stderr(&quiet).contains("packets out"),
        "{}",
        stderr(&quiet)
    );
    let mut forced = args.to_vec();
    forced.push("--progress");
    let out = btdht(&forced);
    assert!(stderr(&out).contains("packets out"), "{}", stderr(&out));
}

/// Starts `btdht node` on 127.0.`n`.1 with `command`'s environment and `extra` arguments,
/// joining through `bootstrap`; returns it and its address (from its first stderr line).
fn start_node(
    mut command: Command,
    n: u8,
    bootstrap: SocketAddr,
    extra: &[&str],
) -> (std::process::Child, SocketAddr) {
    let mut child = command
        .args(["node", "--allow-private", "--stats", "1", "--json"])
        .args(["--bind", &format!("127.0.{n}.1:0")])
        .args(["--bootstrap", &bootstrap.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    // The rest is drained: a closed stderr would fail the node's last messages.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    (child, addr)
}

/// The node's next `--stats` line.
fn next_stats(child: &mut std::process::Child) -> serde_json::Value {
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// SIGTERM, then the exit status.
fn terminate(mut child: std::process::Child) -> Option<i32> {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait().unwrap().code()
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn a_node_without_state_keeps_it_under_xdg_data_home_and_rejoins_from_it() {
    use std::os::unix::fs::PermissionsExt;
    let home = support::fresh_home();
    let data = home.join("data");
    let state = data.join("btdht/state.json");
    let seed: Dht = loopback(130).start().unwrap();
    let command = || {
        let mut c = support::btdht_command_in(&home);
        c.env("XDG_DATA_HOME", &data);
        c
    };
    let (mut child, addr) = start_node(command(), 131, seed.local_addr(), &[]);
    let id = seed.with_timeout(T).ping(addr).unwrap();
    assert!(next_stats(&mut child)["nodes_ipv4"].as_u64().unwrap() >= 1);
    assert_eq!(terminate(child), Some(0));
    let saved = btdht::driver::load(&state).unwrap().expect("state saved");
    assert_eq!(saved.id, id);
    assert!(saved.nodes.iter().any(|n| n.node.addr == seed.local_addr()));
    let mode = std::fs::metadata(data.join("btdht"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // The state and the lock file beside it (left in place: removing it could let two nodes
    // hold locks on two different files).
    assert_eq!(
        files_under(&home),
        vec![state.clone(), btdht::driver::persist::lock_path(&state)]
    );

    // Restarted with a bootstrap node that never answers: it rejoins through the saved seed,
    // with its saved id.
    let silent = UdpSocket::bind("127.0.132.1:0").unwrap();
    let (mut child, addr) = start_node(command(), 133, silent.local_addr().unwrap(), &[]);
    assert!(next_stats(&mut child)["nodes_ipv4"].as_u64().unwrap() >= 1);
    assert_eq!(seed.with_timeout(T).ping(addr).unwrap(), id);
    assert_eq!(terminate(child), Some(0));
    seed.stop().unwrap();
}

#[test]
fn without_an_absolute_xdg_data_home_the_state_goes_under_home() {
    let home = support::fresh_home();
    let silent = UdpSocket::bind("127.0.134.1:0").unwrap();
    for xdg in [None, Some("relative/data")] {
        let mut command = support::btdht_command_in(&home);
        match xdg {
            Some(value) => command.env("XDG_DATA_HOME", value),
            None => command.env_remove("XDG_DATA_HOME"),
        };
        let (child, _) = start_node(command, 135, silent.local_addr().unwrap(), &[]);
        assert_eq!(terminate(child), Some(0));
        let state = home.join(".local/share/btdht/state.json");
        assert!(
            btdht::driver::load(&state).unwrap().is_some(),
            "XDG_DATA_HOME {xdg:?}"
        );
        assert_eq!(
            files_under(&home),
            vec![state.clone(), btdht::driver::persist::lock_path(&state)]
        );
        std::fs::remove_file(&state).unwrap();
    }
}

#[test]
fn a_node_with_no_state_writes_nothing() {
    let home = support::fresh_home();
    let silent = UdpSocket::bind("127.0.136.1:0").unwrap();
    let command = support::btdht_command_in(&home);
    let (mut child, _) = start_node(command, 137, silent.local_addr().unwrap(), &["--no-state"]);
    next_stats(&mut child);
    assert_eq!(terminate(child), Some(0));
    assert_eq!(files_under(&home), Vec::<std::path::PathBuf>::new());
    let out = btdht(&["node", "--no-state", "--state", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--no-state"), "{}", stderr(&out));
}

#[test]
fn a_foreign_file_at_the_default_state_path_is_refused_and_left_intact() {
    let home = support::fresh_home();
    let state = home.join(".local/share/btdht/state.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, "my notes\n").unwrap();
    let out = support::btdht_command_in(&home)
        .args(["node", "--bind", "127.0.138.1:0", "--allow-private"])
        .args(["--bootstrap", "127.0.138.9:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(err.contains("not a btdht state file"), "{err}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "my notes\n");
}

#[test]
fn node_help_shows_the_default_state_file() {
    let home = support::fresh_home();
    let out = support::btdht_command_in(&home)
        .env("XDG_DATA_HOME", "/srv/data")
        .args(["node", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(
        help.contains("[default: /srv/data/btdht/state.json]"),
        "{help}"
    );
    assert!(help.contains("--no-state"), "{help}");
}
