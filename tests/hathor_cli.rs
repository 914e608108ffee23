//! `btdht hathor …` end to end: `id new` and `infohash` against the library and the vectors;
//! loopback DHT nodes, two fake Hathor nodes announced by the real `btdht hathor announce`
//! binary (one good, one with a certificate from an unknown CA), and `btdht hathor discover`
//! printing exactly the good one as verified, recording the bad one's failure, backing off,
//! and pushing to an HTTP server inside the test. Every packet goes to 127.0.0.0/8.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use btdht::driver::Dht;
use btdht::hathor::fake::{FakeNode, FakeNodeConfig, TestPki};
use btdht::hathor::identity::{Identity, generate_rsa_key};
use btdht::hathor::network::NetworkProfile;
use btdht::hathor::store::{PeerBook, PeerKey};
use btdht::hathor::tls::CertificateAuthority;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
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
fn id_new_writes_a_loadable_peer_file_and_prints_its_id() {
    let dir = temp_dir("hathor-id");
    let file = dir.join("peer.json");
    let path = file.to_str().unwrap();
    let out = btdht(&["hathor", "id", "new", "--out", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let identity = Identity::load(&file).unwrap();
    assert_eq!(stdout(&out).trim(), identity.id().to_hex());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(json["id"], identity.id().to_hex());
    assert!(json["privKey"].is_string() && json["pubKey"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No silent overwrite.
    let again = btdht(&["hathor", "id", "new", "--out", path]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    assert_eq!(Identity::load(&file).unwrap().id(), identity.id());
    let forced = btdht(&["hathor", "id", "new", "--out", path, "--force"]);
    assert!(forced.status.success());
    assert_ne!(stdout(&forced).trim(), identity.id().to_hex());
}

#[test]
fn infohash_matches_the_vectors_and_the_library() {
    for (net, hash) in [
        ("mainnet", "c578dfdf77f1132b19bb761d5ac70abe1134de0b"),
        ("testnet", "9dea32b97d5070c89e72b3dea3d493229bbfa862"),
        ("testnet-india", "9dea32b97d5070c89e72b3dea3d493229bbfa862"),
        (
            "nano-testnet-bravo",
            "a7e5d2dbdfabfae8e61d1641d32878a2d7e82e91",
        ),
        ("privatenet", "48b85ee80badd9237c7f2021a5312fc963f1fa86"),
        ("localnet", "48b85ee80badd9237c7f2021a5312fc963f1fa86"),
        ("unittests", "7e554ae8152b5531090235c9b874f97ebe1d0ea3"),
    ] {
        let out = btdht(&["hathor", "infohash", "--network", net]);
        assert!(out.status.success(), "{net}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{hash}\n"), "{net}");
    }
    // A secret.
    let out = btdht(&[
        "hathor",
        "infohash",
        "--network",
        "testnet",
        "--secret",
        "s3cret",
    ]);
    let lib = NetworkProfile::testnet_india().rendezvous_info_hash(Some("s3cret"));
    assert_eq!(stdout(&out).trim(), lib.to_hex());

    // Custom networks: genesis digest, genesis hashes, JSON file.
    let digest = "ab".repeat(32);
    let out = btdht(&[
        "hathor",
        "infohash",
        "--network",
        "mynet",
        "--genesis-digest",
        &digest,
    ]);
    let lib = NetworkProfile::custom_with_digest("mynet", [0xab; 32])
        .unwrap()
        .rendezvous_info_hash(None);
    assert_eq!(stdout(&out).trim(), lib.to_hex(), "{}", stderr(&out));
    let hashes = format!(
        "{},{},{}",
        "01".repeat(32),
        "02".repeat(32),
        "03".repeat(32)
    );
    let out = btdht(&[
        "hathor",
        "infohash",
        "--network",
        "mynet",
        "--genesis-hashes",
        &hashes,
    ]);
    let lib = NetworkProfile::custom("mynet", [[1; 32], [2; 32], [3; 32]])
        .unwrap()
        .rendezvous_info_hash(None);
    assert_eq!(stdout(&out).trim(), lib.to_hex(), "{}", stderr(&out));
    let dir = temp_dir("hathor-infohash");
    let file = dir.join("net.json");
    std::fs::write(
        &file,
        format!(r#"{{"network": "mynet", "genesis_digest": "{digest}"}}"#),
    )
    .unwrap();
    let out = btdht(&[
        "hathor",
        "infohash",
        "--network-file",
        file.to_str().unwrap(),
    ]);
    let lib = NetworkProfile::custom_with_digest("mynet", [0xab; 32])
        .unwrap()
        .rendezvous_info_hash(None);
    assert_eq!(stdout(&out).trim(), lib.to_hex(), "{}", stderr(&out));

    // Bad arguments: exit 2 with a message.
    let cases: &[(&[&str], &str)] = &[
        (
            &["hathor", "infohash", "--network", "nosuchnet"],
            "unknown network",
        ),
        (&["hathor", "infohash"], "--network"),
        (
            &[
                "hathor",
                "infohash",
                "--network",
                "x",
                "--genesis-digest",
                "zz",
            ],
            "invalid hex",
        ),
        (
            &[
                "hathor",
                "infohash",
                "--network",
                "x",
                "--genesis-hashes",
                "ab",
            ],
            "three",
        ),
        (
            &["hathor", "infohash", "--network", "testnet", "--secret", ""],
            "empty",
        ),
        (&["hathor", "announce", "--network", "testnet"], "--port"),
        (
            &["hathor", "announce", "--network", "testnet", "--port", "0"],
            "port",
        ),
        (
            &["hathor", "discover", "--network", "testnet", "--verify"],
            "--ca-cert",
        ),
        (
            &[
                "hathor",
                "discover",
                "--network",
                "testnet",
                "--push",
                "http://127.0.0.1:1",
            ],
            "--verify",
        ),
        (
            &[
                "hathor",
                "discover",
                "--network",
                "testnet",
                "--verify",
                "--ca-cert",
                "/nonexistent/ca.crt",
                "--ca-key",
                "/nonexistent/ca.key",
                "--push",
                "https://127.0.0.1:1",
            ],
            "https is not supported",
        ),
        (
            &[
                "hathor",
                "discover",
                "--network",
                "testnet",
                "--verify",
                "--ca-cert",
                "/nonexistent/ca.crt",
                "--ca-key",
                "/nonexistent/ca.key",
            ],
            "/nonexistent/ca.crt",
        ),
    ];
    for (args, needle) in cases {
        let out = btdht(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    for cmd in ["id", "infohash", "announce", "discover"] {
        let out = btdht(&["hathor", cmd, "--help"]);
        assert!(out.status.success(), "{cmd}");
        assert!(stdout(&out).contains("Example:\n  btdht hathor"), "{cmd}");
    }
}

/// A child process killed on drop (if the test fails before terminating it).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl ChildGuard {
    /// SIGTERM, then the exit code within `limit`.
    fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Starts `btdht hathor announce` for `port` and waits (bounded) for its first acknowledged
/// announce; returns the child and a receiver of its further stdout lines.
fn announcer(node: SocketAddr, boot: &str) -> (ChildGuard, mpsc::Receiver<String>) {
    let port = node.port().to_string();
    let bind = SocketAddr::new(node.ip(), 0).to_string();
    let mut child = ChildGuard(
        support::btdht_command()
            .args([
                "hathor",
                "announce",
                "--network",
                "testnet",
                "--port",
                &port,
                "--interval",
                "1",
                "--timeout",
                "5",
                "--bind",
                &bind,
                "--allow-private",
                "--bootstrap",
                boot,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.starts_with("announced "), "{line}");
    assert!(line.contains(&format!("port {port}")), "{line}");
    (child, rx)
}

/// A throwaway CA whose certificate and PKCS#8 key are written to `dir`.
fn ca_on_disk(dir: &Path) -> (CertificateAuthority, String, String) {
    let key = generate_rsa_key(&mut rand::rng()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ca = CertificateAuthority::self_signed(&key, "Hathor Labs", now).unwrap();
    let cert = dir.join("ca.crt");
    let key_file = dir.join("ca.key");
    std::fs::write(&cert, ca.cert_pem()).unwrap();
    std::fs::write(
        &key_file,
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    (
        ca,
        cert.to_str().unwrap().to_string(),
        key_file.to_str().unwrap().to_string(),
    )
}

/// A one-connection HTTP server on 127.0.0.1: returns its address and a receiver of
/// (request head, body); answers with `status` and `body`.
fn http_server(
    status: &'static str,
    body: &'static str,
) -> (SocketAddr, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body_start, len) = loop {
            let Ok(n) = conn.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            data.extend_from_slice(&buf[..n]);
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                break (head, end + 4, len);
            }
        };
        while data.len() < body_start + len {
            let Ok(n) = conn.read(&mut buf) else { return };
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
        }
        let body_in = String::from_utf8_lossy(&data[body_start..]).into_owned();
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(reply.as_bytes());
        let _ = tx.send((head, body_in));
    });
    (addr, rx)
}

#[test]
fn announce_then_discover_verifies_only_the_genuine_node_and_pushes_it() {
    let dir = temp_dir("hathor-e2e");
    let pki = TestPki::shared();
    let (ca, ca_cert, ca_key) = ca_on_disk(&dir);
    let ca = std::sync::Arc::new(ca);

    // A genuine testnet node (certificate from our CA) and an impostor whose certificate comes
    // from a CA nobody trusts.
    let mut good = FakeNodeConfig::new(pki);
    good.ca = ca.clone();
    let good = FakeNode::start(good).unwrap();
    let mut bad = FakeNodeConfig::new(pki);
    bad.identity = pki.stranger.clone();
    bad.ca = ca.clone();
    bad.cert_ca = Some(pki.other_ca.clone());
    // DHT nodes keep one peer per IP: the impostor lives on 127.0.0.2.
    let bad = FakeNode::start_on(bad, std::net::Ipv4Addr::new(127, 0, 0, 2)).unwrap();

    // Loopback DHT.
    let seed = loopback(140).start().unwrap();
    let mut nodes: Vec<Dht> = vec![seed.clone()];
    for n in 141..148u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes.iter().all(|d| d
        .with_timeout(T)
        .routing_table()
        .is_ok_and(|t| t.len() >= 4))));
    let boot = seed.local_addr().to_string();

    // Both addresses announced by the real binary, each from its node's IP (the DHT stores the
    // announce's source IP with the given port); it re-announces every second.
    let (mut good_announcer, good_lines) = announcer(good.addr(), &boot);
    let (mut bad_announcer, _bad_lines) = announcer(bad.addr(), &boot);
    let again = good_lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(again.starts_with("announced "), "{again}");

    let store = dir.join("store.json");
    let store_path = store.to_str().unwrap();
    let discover = |extra: &[&str]| {
        let mut args = vec![
            "hathor",
            "discover",
            "--network",
            "testnet",
            "--bind",
            "127.0.148.1:0",
            "--allow-private",
            "--bootstrap",
            &boot,
            "--timeout",
            "5",
        ];
        args.extend_from_slice(extra);
        btdht(&args)
    };
    let verify = [
        "--verify",
        "--ca-cert",
        &ca_cert,
        "--ca-key",
        &ca_key,
        "--handshake-timeout",
        "3",
        "--store",
        store_path,
    ];

    // Without --verify: both candidates, without ids, said to be unverified.
    let out = discover(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    let mut expected = vec![
        format!("tcp://{}", good.addr()),
        format!("tcp://{}", bad.addr()),
    ];
    expected.sort();
    assert_eq!(lines, expected);
    assert!(stderr(&out).contains("UNVERIFIED"), "{}", stderr(&out));
    // As JSON: the POST /v1a/p2p/peers body (entrypoint strings), never PEERS items without id.
    let out = discover(&["--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut json: Vec<String> = serde_json::from_str(stdout(&out).trim()).unwrap();
    json.sort();
    assert_eq!(json, expected);

    // --verify: exactly the genuine node's entrypoint; the impostor's failure on stderr.
    let out = discover(&verify);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("tcp://{}/?id={}\n", good.addr(), good.id())
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: NOT verified: tls", bad.addr())),
        "{err}"
    );
    assert!(!stdout(&out).contains(&bad.addr().port().to_string()));

    // The store knows the genuine node by id and the impostor's failure by address.
    let saved = PeerBook::load(&store, &NetworkProfile::testnet_india()).unwrap();
    let ok = saved.get(&PeerKey::Id(good.id())).unwrap();
    assert_eq!(ok.dialled, Some(good.addr()));
    assert!(ok.last_success.is_some() && ok.last_error.is_none());
    let failed = saved.get(&PeerKey::Addr(bad.addr())).unwrap();
    assert!(failed.peer_id.is_none() && failed.last_success.is_none());
    assert_eq!(failed.consecutive_failures, 1);
    assert!(
        failed.last_error.as_deref().unwrap().starts_with("tls"),
        "{failed:?}"
    );
    assert!(saved.get(&PeerKey::Id(pki.stranger.id())).is_none());
    assert!(failed.next_retry >= failed.last_attempt.unwrap() + 5);

    // Stretch the impostor's backoff so that the next runs (however slow this machine is)
    // fall inside it.
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    for peer in file["peers"].as_array_mut().unwrap() {
        if peer["dialled"] == bad.addr().to_string() {
            peer["next_retry"] = serde_json::json!(failed.next_retry + 3600);
        }
    }
    std::fs::write(&store, file.to_string()).unwrap();

    // Again, as JSON (PEERS shape) and pushed: the impostor is backing off (not dialled), the
    // genuine node is verified again and pushed.
    let (http, requests) = http_server("200 OK", r#"{"success": true}"#);
    let push = format!("http://{http}");
    let mut args = verify.to_vec();
    args.extend(["--format", "json", "--push", &push]);
    let out = discover(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"id": good.id().to_hex(), "entrypoints": [format!("tcp://{}", good.addr())]}])
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: not tried (backing off", bad.addr())),
        "{err}"
    );
    assert!(err.contains("pushed 1 entrypoints"), "{err}");
    let (head, body) = requests.recv_timeout(T).unwrap();
    assert!(
        head.starts_with("POST /v1a/p2p/peers HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!([format!("tcp://{}/?id={}", good.addr(), good.id())])
    );

    // A node API that refuses: the peers are still printed, the status is 1.
    let (http, requests) = http_server("200 OK", r#"{"success": false, "message": "nope"}"#);
    let push = format!("http://{http}/");
    let mut args = verify.to_vec();
    args.extend(["--push", &push]);
    let out = discover(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("tcp://{}/?id={}\n", good.addr(), good.id())
    );
    requests.recv_timeout(T).unwrap();

    // Announcers stop on SIGTERM with status 0.
    assert_eq!(good_announcer.terminate(T), Some(0));
    assert_eq!(bad_announcer.terminate(T), Some(0));
    for dht in nodes {
        dht.stop().unwrap();
    }
}

#[test]
fn discover_with_nothing_verified_exits_1() {
    let dir = temp_dir("hathor-none");
    let pki = TestPki::shared();
    let (ca, ca_cert, ca_key) = ca_on_disk(&dir);
    // A node on another network.
    let mut other = FakeNodeConfig::new(pki);
    other.ca = std::sync::Arc::new(ca);
    other.network = NetworkProfile::privatenet();
    let other = FakeNode::start(other).unwrap();

    let seed = loopback(150).start().unwrap();
    let mut nodes: Vec<Dht> = vec![seed.clone()];
    for n in 151..155u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes.iter().all(|d| d
        .with_timeout(T)
        .routing_table()
        .is_ok_and(|t| t.len() >= 3))));
    let boot = seed.local_addr().to_string();
    // Announced (with --once) on the testnet key although it is a privatenet node.
    let port = other.addr().port().to_string();
    let common = [
        "--network",
        "testnet",
        "--allow-private",
        "--bootstrap",
        &boot,
        "--timeout",
        "5",
    ];
    let mut args = vec![
        "hathor",
        "announce",
        "--once",
        "--port",
        &port,
        "--bind",
        "127.0.0.1:0",
    ];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut args = vec![
        "hathor",
        "discover",
        "--verify",
        "--ca-cert",
        &ca_cert,
        "--ca-key",
        &ca_key,
        "--handshake-timeout",
        "3",
        "--bind",
        "127.0.155.1:0",
    ];
    args.extend(common);
    let out = btdht(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: NOT verified", other.addr())),
        "{err}"
    );
    assert!(err.contains("network"), "{err}");
    assert!(err.contains("no verified peer"), "{err}");

    // A lookup nobody answers: exit 1.
    let dead = std::net::UdpSocket::bind("127.0.156.1:0").unwrap();
    let dead = dead.local_addr().unwrap().to_string();
    let out = btdht(&[
        "hathor",
        "discover",
        "--network",
        "testnet",
        "--allow-private",
        "--bootstrap",
        &dead,
        "--bind",
        "127.0.156.2:0",
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for dht in nodes {
        dht.stop().unwrap();
    }
}
