//! Runs every regression seed of the fuzz targets (`fuzz/seeds/<target>/`) through the same
//! property checks the fuzzers use, at every split, so `cargo test` catches regressions
//! without a fuzzer.

use std::path::PathBuf;

use super::check;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed dir {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn request_head_seeds() {
    for (path, data) in seeds("request_head") {
        eprintln!("seed {}", path.display());
        for split in 0..=data.len() {
            check::request_head(&data, split);
        }
    }
}

#[test]
fn response_head_seeds() {
    for (path, data) in seeds("response_head") {
        eprintln!("seed {}", path.display());
        for split in 0..=data.len() + 2 {
            check::response_head(&data, split);
        }
    }
}

#[test]
fn chunked_seeds() {
    for (path, data) in seeds("chunked") {
        eprintln!("seed {}", path.display());
        for seed in 0..16 {
            check::chunked(&data, seed);
        }
    }
}
