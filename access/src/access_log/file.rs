//! The file sink: lines appended to one file through a buffer written out at the end of
//! each drain round, rotated to `PATH.1` past a size (one old file kept, like the audit
//! log) and reopened on request (SIGUSR1, after an external tool renamed the file).
//!
//! A file write blocks the logger thread only: while the disk is slow the workers' queues
//! fill and lines are dropped at push, counted; the data plane never waits.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Buffered bytes that trigger a write before the round ends.
const WRITE_AT: usize = 64 * 1024;

pub struct FileSink {
    path: PathBuf,
    rotated: PathBuf,
    file: Option<File>,
    /// Bytes in the file plus bytes buffered.
    size: u64,
    /// 0 = never rotate.
    max_bytes: u64,
    buf: Vec<u8>,
    /// The worker of each line in `buf`, for the drop count if the write fails.
    buffered: Vec<u16>,
    /// After a failed open, when to try again.
    retry_at: Option<Instant>,
    retry: Duration,
    /// Workers of the lines lost since the logger last asked.
    lost: Vec<u16>,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

impl FileSink {
    /// Opens (creating) `path` for appending; fails when it cannot be opened, so a wrong
    /// path stops the start instead of losing every line.
    pub fn open(path: &Path, max_bytes: u64, retry: Duration) -> io::Result<FileSink> {
        let (file, size) =
            open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        Ok(FileSink {
            path: path.to_path_buf(),
            rotated: PathBuf::from(rotated),
            file: Some(file),
            size,
            max_bytes,
            buf: Vec::with_capacity(WRITE_AT * 2),
            buffered: Vec::with_capacity(1024),
            retry_at: None,
            retry,
            lost: Vec::with_capacity(64),
        })
    }

    /// Appends one line (`line` without its newline) from `worker`. Returns false when it
    /// was dropped.
    pub fn write(&mut self, line: &[u8], worker: u16) -> bool {
        if self.file.is_none() && !self.try_reopen() {
            return false;
        }
        let n = line.len() as u64 + 1;
        if self.max_bytes > 0 && self.size > 0 && self.size + n > self.max_bytes {
            self.rotate();
            if self.file.is_none() {
                return false;
            }
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.buffered.push(worker);
        self.size += n;
        if self.buf.len() >= WRITE_AT {
            self.flush();
        }
        true
    }

    /// Writes what is buffered.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let res = match self.file.as_mut() {
            Some(f) => f.write_all(&self.buf),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        };
        if let Err(e) = res {
            eprintln!(
                "gatehouse: access log {}: write failed: {e}",
                self.path.display()
            );
            self.lost.extend_from_slice(&self.buffered);
            self.file = None;
            self.retry_at = Some(Instant::now() + self.retry);
        }
        self.buf.clear();
        self.buffered.clear();
    }

    /// Closes the file and opens `path` again (after an external rename).
    pub fn reopen(&mut self) {
        self.flush();
        self.file = None;
        self.retry_at = None;
        self.try_reopen();
    }

    fn try_reopen(&mut self) -> bool {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        match open(&self.path) {
            Ok((f, size)) => {
                self.file = Some(f);
                self.size = size + self.buf.len() as u64;
                self.retry_at = None;
                true
            }
            Err(e) => {
                eprintln!(
                    "gatehouse: access log {}: cannot open: {e}",
                    self.path.display()
                );
                self.retry_at = Some(Instant::now() + self.retry);
                false
            }
        }
    }

    /// `path` becomes `path.1` (replacing the previous one) and a new `path` is started.
    fn rotate(&mut self) {
        self.flush();
        self.file = None;
        if let Err(e) = std::fs::rename(&self.path, &self.rotated) {
            eprintln!(
                "gatehouse: access log {}: cannot rotate: {e}",
                self.path.display()
            );
        }
        self.retry_at = None;
        self.try_reopen();
    }

    /// Workers of the lines lost to write failures since the last call.
    pub fn take_lost(&mut self, mut f: impl FnMut(u16)) {
        for w in self.lost.drain(..) {
            f(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gh-al-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn appends_rotates_and_reopens() {
        let d = dir("file");
        let p = d.join("a.log");
        std::fs::write(&p, "old\n").unwrap();
        let mut s = FileSink::open(&p, 4096, Duration::from_millis(10)).unwrap();
        let line = [b'x'; 99];
        for _ in 0..50 {
            assert!(s.write(&line, 0));
        }
        s.flush();
        // The 41st line would take the file past 4096 bytes: it starts the new file, and
        // the old one holds whole lines only.
        let rotated = std::fs::read(d.join("a.log.1")).unwrap();
        let current = std::fs::read(&p).unwrap();
        assert!(rotated.starts_with(b"old\n"));
        assert!(rotated.len() <= 4096 && current.len() <= 4096);
        assert_eq!(rotated.len(), 4 + 4000);
        assert_eq!(current.len(), 1000);
        assert!(current.ends_with(b"x\n") && rotated.ends_with(b"x\n"));

        std::fs::rename(&p, d.join("moved.log")).unwrap();
        assert!(s.write(b"before", 0));
        s.reopen();
        assert!(s.write(b"after", 0));
        s.flush();
        assert!(std::fs::read(d.join("moved.log"))
            .unwrap()
            .ends_with(b"before\n"));
        assert_eq!(std::fs::read(&p).unwrap(), b"after\n");
        let mut lost = 0;
        s.take_lost(|_| lost += 1);
        assert_eq!(lost, 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_directory_fails_the_open() {
        let p = std::env::temp_dir().join("gh-al-no-such-dir/x/a.log");
        assert!(FileSink::open(&p, 0, Duration::from_millis(10)).is_err());
    }
}
