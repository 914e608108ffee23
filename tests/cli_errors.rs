//! The `btdht` binary refuses what is wrong at start: a port in use (exit 1, naming the
//! address) and an address that is not local (exit 2); and it waits for a silent node as
//! long as `--timeout` says.

mod support;

use std::net::UdpSocket;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::loopback;

const BIN: &str = env!("CARGO_BIN_EXE_btdht");

fn btdht(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
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
