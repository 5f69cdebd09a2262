//! The embedded store: a directory (`server.state_dir`) holding the latest snapshot and the
//! audit log, written so that `kill -9` (or a power cut) at any moment leaves the old snapshot
//! or the new one, never a torn file.
//!
//! Layout:
//! - `snapshot.json`: `{"format": 1, "version": N, "saved_at": "...", "resources": {...}}`,
//!   replaced by writing `snapshot.json.tmp`, fsyncing it, renaming it over the old one
//!   (atomic on POSIX file systems) and fsyncing the directory so the rename itself is durable.
//! - `audit.log`: one JSON record per line, appended and fdatasync'ed; past
//!   `admin.audit_max_bytes` it becomes `audit.log.1` (replacing the previous one) and a new
//!   file starts, so the log is bounded at about twice that size.
//! - `lock`: held (flock) while the process runs, so two gateways never write one directory.

use super::audit::{now_rfc3339, AuditRecord};
use super::{Saved, Store, StoreError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const SNAPSHOT: &str = "snapshot.json";
const SNAPSHOT_TMP: &str = "snapshot.json.tmp";
const AUDIT: &str = "audit.log";
const AUDIT_OLD: &str = "audit.log.1";
const LOCK: &str = "lock";
/// Version of the snapshot file layout; a newer file is refused rather than misread.
const FORMAT: u32 = 1;
/// Bytes read per step when reading the audit log backwards.
const TAIL_CHUNK: u64 = 64 * 1024;

/// The snapshot file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    format: u32,
    version: u64,
    saved_at: String,
    resources: super::Resources,
}

/// The audit file being appended to, and its size.
struct AuditFile {
    file: Option<File>,
    len: u64,
}

/// A store in one directory of the local file system.
pub struct DirStore {
    dir: PathBuf,
    audit_max_bytes: u64,
    audit: Mutex<AuditFile>,
    /// Holds the directory's flock for the life of the store (an upgrade passes a copy).
    _lock: File,
}

fn err(what: impl std::fmt::Display, path: &Path, e: io::Error) -> StoreError {
    StoreError(format!("{what} {}: {e}", path.display()))
}

impl DirStore {
    /// Opens (creating it if needed) and locks `dir`. Fails when another process holds it.
    pub fn open(dir: &Path, audit_max_bytes: u64) -> Result<DirStore, StoreError> {
        DirStore::open_with(dir, audit_max_bytes, None)
    }

    /// Like [`DirStore::open`], but with `inherited`, the lock file descriptor a running
    /// gateway passed to this one during an upgrade. It shares the running process's open
    /// file description, so its flock is already ours; it must be `dir`'s lock file.
    pub fn open_with(
        dir: &Path,
        audit_max_bytes: u64,
        inherited: Option<File>,
    ) -> Result<DirStore, StoreError> {
        fs::create_dir_all(dir).map_err(|e| err("cannot create state dir", dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = match inherited {
            Some(f) => {
                use std::os::unix::fs::MetadataExt;
                let same = match (f.metadata(), fs::metadata(&lock_path)) {
                    (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                    _ => false,
                };
                if !same {
                    return Err(StoreError(format!(
                        "the lock passed by the running gatehouse is not {}",
                        lock_path.display()
                    )));
                }
                f
            }
            None => OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| err("cannot open", &lock_path, e))?,
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError(format!(
                    "state dir {} is in use by another gatehouse process",
                    dir.display()
                )))
            }
            Err(fs::TryLockError::Error(e)) => return Err(err("cannot lock", &lock_path, e)),
        }
        // A temp file left by a crash mid-save is an unacknowledged change: drop it.
        let _ = fs::remove_file(dir.join(SNAPSHOT_TMP));
        let len = fs::metadata(dir.join(AUDIT)).map_or(0, |m| m.len());
        Ok(DirStore {
            dir: dir.to_path_buf(),
            audit_max_bytes,
            audit: Mutex::new(AuditFile { file: None, len }),
            _lock: lock,
        })
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err("cannot sync state dir", &self.dir, e))
    }
}

impl Store for DirStore {
    fn lock_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self._lock.as_fd())
    }

    fn describe(&self) -> String {
        format!("state dir {}", self.dir.display())
    }

    fn load(&self) -> Result<Option<Saved>, StoreError> {
        let path = self.dir.join(SNAPSHOT);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err("cannot read", &path, e)),
        };
        let f: SnapshotFile = serde_json::from_str(&text)
            .map_err(|e| StoreError(format!("{} is not a valid snapshot: {e}", path.display())))?;
        if f.format != FORMAT {
            return Err(StoreError(format!(
                "{} has format {} (this gatehouse reads {FORMAT})",
                path.display(),
                f.format
            )));
        }
        Ok(Some(Saved {
            version: f.version,
            resources: f.resources,
        }))
    }

    fn save(&self, saved: &Saved) -> Result<(), StoreError> {
        let file = SnapshotFile {
            format: FORMAT,
            version: saved.version,
            saved_at: now_rfc3339(),
            resources: saved.resources.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| StoreError(format!("cannot encode the snapshot: {e}")))?;
        bytes.push(b'\n');
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut f = File::create(&tmp).map_err(|e| err("cannot create", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| err("cannot write", &tmp, e))?;
        drop(f);
        let path = self.dir.join(SNAPSHOT);
        fs::rename(&tmp, &path).map_err(|e| err("cannot replace", &path, e))?;
        self.sync_dir()
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| StoreError(format!("cannot encode an audit record: {e}")))?;
        line.push(b'\n');
        let path = self.dir.join(AUDIT);
        let mut a = self.audit.lock();
        if a.len > 0 && a.len + line.len() as u64 > self.audit_max_bytes {
            a.file = None;
            let old = self.dir.join(AUDIT_OLD);
            fs::rename(&path, &old).map_err(|e| err("cannot rotate", &path, e))?;
            a.len = 0;
        }
        if a.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| err("cannot open", &path, e))?;
            a.file = Some(f);
            if a.len == 0 {
                // A new file: make its directory entry durable too.
                self.sync_dir()?;
            }
        }
        let Some(f) = a.file.as_mut() else {
            return Ok(());
        };
        // One write call per line: a reader never sees two records interleaved.
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(|e| err("cannot append to", &path, e))?;
        a.len += line.len() as u64;
        Ok(())
    }

    fn read_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let mut lines = Vec::new();
        for name in [AUDIT, AUDIT_OLD] {
            if lines.len() >= limit {
                break;
            }
            let path = self.dir.join(name);
            let mut older =
                tail_lines(&path, limit - lines.len()).map_err(|e| err("cannot read", &path, e))?;
            older.append(&mut lines);
            lines = older;
        }
        // A line cut by a crash mid-append is skipped, not an error.
        Ok(lines
            .iter()
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

/// The last `limit` non-empty lines of `path`, oldest first; none for a missing file. Reads
/// backwards in chunks, so the cost follows `limit`, not the file size.
fn tail_lines(path: &Path, limit: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut pos = f.metadata()?.len();
    // Bytes from `pos` to the end of the file not yet split into lines.
    let mut rest: Vec<u8> = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    while lines.len() < limit && pos > 0 {
        let step = TAIL_CHUNK.min(pos);
        pos -= step;
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0u8; step as usize];
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&rest);
        rest = chunk;
        // Every line after the first newline of `rest` is complete.
        while lines.len() < limit {
            let Some(nl) = rest.iter().rposition(|&b| b == b'\n') else {
                break;
            };
            let line = rest.split_off(nl + 1);
            rest.truncate(nl);
            if !line.is_empty() {
                lines.push(line);
            }
        }
        // What is left of `rest` has no newline: a line that may start in an earlier chunk.
    }
    if pos == 0 && lines.len() < limit && !rest.is_empty() {
        lines.push(rest);
    }
    lines.reverse();
    Ok(lines)
}

#[cfg(test)]
pub(crate) mod tests;
