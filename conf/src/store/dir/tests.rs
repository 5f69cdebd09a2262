//! The directory store against a real temp directory: round trips, the lock, leftovers of a
//! crash, a damaged snapshot, and the audit log's tail reading and rotation.

use super::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory, removed on drop.
pub(crate) struct Tmp(pub(crate) PathBuf);

impl Tmp {
    pub(crate) fn new(tag: &str) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "gatehouse-conf-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn saved(version: u64, route: &str) -> Saved {
    let mut resources = super::super::Resources::new();
    resources.insert(
        "routes".into(),
        json!([{"id": route, "paths": ["/"], "upstream": "u"}]),
    );
    Saved { version, resources }
}

fn record(version: u64, id: &str) -> AuditRecord {
    AuditRecord {
        time: now_rfc3339(),
        who: "127.0.0.1:1".into(),
        client: "127.0.0.1:1".into(),
        method: "PUT".into(),
        path: format!("/admin/v1/routes/{id}"),
        kind: "routes".into(),
        id: id.into(),
        version,
        status: 201,
    }
}

#[test]
fn empty_dir_loads_nothing_then_round_trips() {
    let t = Tmp::new("rt");
    let s = DirStore::open(&t.0.join("nested/state"), 1 << 20).unwrap();
    assert_eq!(s.load().unwrap(), None);
    s.save(&saved(3, "a")).unwrap();
    assert_eq!(s.load().unwrap(), Some(saved(3, "a")));
    s.save(&saved(4, "b")).unwrap();
    assert_eq!(s.load().unwrap(), Some(saved(4, "b")));
    assert!(!t.0.join("nested/state").join(SNAPSHOT_TMP).exists());
    drop(s);
    let again = DirStore::open(&t.0.join("nested/state"), 1 << 20).unwrap();
    assert_eq!(again.load().unwrap(), Some(saved(4, "b")));
}

#[test]
fn a_second_store_on_the_same_dir_is_refused_while_the_first_lives() {
    let t = Tmp::new("lock");
    let first = DirStore::open(&t.0, 1 << 20).unwrap();
    let Err(e) = DirStore::open(&t.0, 1 << 20) else {
        panic!("second open succeeded");
    };
    assert!(e.0.contains("in use by another gatehouse"), "{e}");
    drop(first);
    assert!(DirStore::open(&t.0, 1 << 20).is_ok());
}

#[test]
fn a_temp_file_left_by_a_crash_is_ignored() {
    let t = Tmp::new("tmp");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    s.save(&saved(5, "kept")).unwrap();
    drop(s);
    // A crash between writing the temp file and renaming it.
    fs::write(t.0.join(SNAPSHOT_TMP), b"{\"format\": 1, \"vers").unwrap();
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    assert_eq!(s.load().unwrap(), Some(saved(5, "kept")));
    assert!(!t.0.join(SNAPSHOT_TMP).exists());
}

#[test]
fn a_damaged_snapshot_is_an_error_not_an_empty_store() {
    let t = Tmp::new("bad");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    fs::write(t.0.join(SNAPSHOT), b"{\"format\": 1, \"version\": 2").unwrap();
    let e = s.load().unwrap_err();
    assert!(e.0.contains("not a valid snapshot"), "{e}");
    fs::write(
        t.0.join(SNAPSHOT),
        b"{\"format\": 9, \"version\": 2, \"saved_at\": \"\", \"resources\": {}}",
    )
    .unwrap();
    assert!(s.load().unwrap_err().0.contains("format 9"));
}

#[test]
fn audit_reads_the_newest_records_oldest_first() {
    let t = Tmp::new("audit");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    assert!(s.read_audit(10).unwrap().is_empty());
    for v in 1..=30 {
        s.append_audit(&record(v, &format!("r{v}"))).unwrap();
    }
    let got: Vec<u64> = s.read_audit(5).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(got, vec![26, 27, 28, 29, 30]);
    assert_eq!(s.read_audit(100).unwrap().len(), 30);
    assert!(s.read_audit(0).unwrap().is_empty());
    // A torn last line (power cut mid-append) is skipped.
    let mut f = OpenOptions::new()
        .append(true)
        .open(t.0.join(AUDIT))
        .unwrap();
    f.write_all(b"{\"time\":\"2").unwrap();
    let got = s.read_audit(2).unwrap();
    assert_eq!(got.iter().map(|r| r.version).collect::<Vec<_>>(), vec![30]);
}

#[test]
fn audit_rotates_and_stays_bounded() {
    let t = Tmp::new("rotate");
    let max = 4096;
    let s = DirStore::open(&t.0, max).unwrap();
    for v in 1..=200 {
        s.append_audit(&record(v, "r")).unwrap();
    }
    let cur = fs::metadata(t.0.join(AUDIT)).unwrap().len();
    let old = fs::metadata(t.0.join(AUDIT_OLD)).unwrap().len();
    assert!(cur <= max && old <= max, "{cur} {old}");
    // Reading spans both files, newest last, without gaps.
    let got: Vec<u64> = s
        .read_audit(1000)
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    assert!(got.len() > 20, "{got:?}");
    assert_eq!(got.last(), Some(&200));
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    // The size is carried across a reopen.
    drop(s);
    let s = DirStore::open(&t.0, max).unwrap();
    s.append_audit(&record(201, "r")).unwrap();
    assert!(fs::metadata(t.0.join(AUDIT)).unwrap().len() <= max);
}

#[test]
fn tail_lines_across_chunk_boundaries() {
    let t = Tmp::new("tail");
    fs::create_dir_all(&t.0).unwrap();
    let p = t.0.join("f");
    assert!(tail_lines(&p, 3).unwrap().is_empty());
    // Lines shorter than, equal to and longer than one chunk.
    let lens = [1usize, 70_000, 5, 65_536, 200_000, 3, 65_535];
    let lines: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| vec![b'a' + i as u8; n])
        .collect();
    for trailing_newline in [true, false] {
        let mut text = lines.join(&b'\n');
        if trailing_newline {
            text.push(b'\n');
        }
        fs::write(&p, &text).unwrap();
        for limit in 0..=lines.len() + 1 {
            let got = tail_lines(&p, limit).unwrap();
            let want = &lines[lines.len().saturating_sub(limit)..];
            assert_eq!(got.len(), want.len(), "limit {limit}");
            assert!(got.iter().zip(want).all(|(a, b)| a == b), "limit {limit}");
        }
    }
}

#[test]
fn an_inherited_lock_descriptor_opens_the_locked_dir_and_a_foreign_one_is_refused() {
    let t = Tmp::new("inherit");
    let first = DirStore::open(&t.0, 1 << 20).unwrap();
    first.save(&saved(3, "kept")).unwrap();
    // What an upgrade does: a copy of the running store's lock descriptor (the same open
    // file description, so the same flock) opens the directory beside it.
    let copy = first.lock_fd().unwrap().try_clone_to_owned().unwrap();
    let second = DirStore::open_with(&t.0, 1 << 20, Some(File::from(copy))).unwrap();
    assert_eq!(second.load().unwrap().unwrap().version, 3);
    drop(first);
    // The lock lives on in the second store: a fresh open is still refused.
    assert!(DirStore::open(&t.0, 1 << 20).is_err());
    drop(second);
    assert!(DirStore::open(&t.0, 1 << 20).is_ok());

    let other = Tmp::new("inherit-other");
    std::fs::create_dir_all(&other.0).unwrap();
    let foreign = File::create(other.0.join("lock")).unwrap();
    let Err(e) = DirStore::open_with(&t.0, 1 << 20, Some(foreign)) else {
        panic!("a lock file of another directory was taken");
    };
    assert!(e.0.contains("is not"), "{e}");
}
