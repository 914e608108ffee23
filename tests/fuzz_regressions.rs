//! Replays every input under `tests/fuzz_regressions/<target>/` through the same checks as the
//! fuzz target of that name (`tests/support/fuzz_checks.rs`), on stable, in `cargo test`.
//!
//! Crashes found by `cargo fuzz` land here as files once fixed; so do a few interesting inputs
//! from the minimized corpus, so that the checks run on real fuzzer finds without nightly.

#[path = "support/fuzz_checks.rs"]
mod fuzz_checks;
#[path = "support/node_sequence.rs"]
mod node_sequence;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file() && path.extension().is_none_or(|ext| ext != "md"))
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let files = inputs(target);
    for path in &files {
        let bytes = std::fs::read(path).expect("regression input is readable");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(panic) = std::panic::catch_unwind(|| check(&bytes)) {
            eprintln!("{target}/{name} failed");
            std::panic::resume_unwind(panic);
        }
    }
    files.len()
}

#[test]
fn krpc_decode_regressions() {
    let n = replay("krpc_decode", fuzz_checks::check_krpc_decode);
    assert!(n > 0, "tests/fuzz_regressions/krpc_decode holds inputs");
}

#[test]
fn compact_regressions() {
    let n = replay("compact", fuzz_checks::check_compact);
    assert!(n > 0, "tests/fuzz_regressions/compact holds inputs");
}

#[test]
fn node_sequence_regressions() {
    let n = replay("node_sequence", node_sequence::check_node_sequence);
    assert!(n > 0, "tests/fuzz_regressions/node_sequence holds inputs");
}
