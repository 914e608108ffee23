//! The DHT-only build (`--no-default-features`) pulls in no TLS / RSA crate and no
//! command-line crate: `cargo tree` of the normal dependencies, run with the cargo that runs
//! this test.

use std::process::Command;

/// Crates that belong to the `hathor` feature (TLS, RSA, certificates).
const TLS_CRATES: [&str; 6] = [
    "rustls",
    "ring",
    "rsa",
    "rcgen",
    "rustls-webpki",
    "x509-parser",
];
/// Crates that belong to the `cli` feature.
const CLI_CRATES: [&str; 3] = ["clap", "indicatif", "signal-hook"];

/// The package names in `cargo tree` of the library's normal dependencies under `features`.
fn dependency_names(features: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(features)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_dht_alone_has_no_tls_and_no_cli_crate() {
    let names = dependency_names(&["--no-default-features"]);
    assert!(names.iter().any(|n| n == "btdht"), "{names:?}");
    assert!(names.iter().any(|n| n == "mio"), "{names:?}");
    for banned in TLS_CRATES.iter().chain(&CLI_CRATES) {
        assert!(!names.iter().any(|n| n == banned), "{banned} in {names:?}");
    }
}

#[test]
fn the_features_add_their_crates() {
    let hathor = dependency_names(&["--no-default-features", "--features", "hathor"]);
    for wanted in ["rustls", "ring", "rsa", "rcgen"] {
        assert!(hathor.iter().any(|n| n == wanted), "{wanted} in {hathor:?}");
    }
    for banned in CLI_CRATES {
        assert!(
            !hathor.iter().any(|n| n == banned),
            "{banned} in {hathor:?}"
        );
    }
    let cli = dependency_names(&["--no-default-features", "--features", "cli"]);
    for wanted in CLI_CRATES {
        assert!(cli.iter().any(|n| n == wanted), "{wanted} in {cli:?}");
    }
    for banned in TLS_CRATES {
        assert!(!cli.iter().any(|n| n == banned), "{banned} in {cli:?}");
    }
}
