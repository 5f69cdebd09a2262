//! The config store: where the resource set survives restarts, and the rule that joins it with
//! the config file.
//!
//! - [`Store`]: load the latest saved resource set, save a new one atomically, append and read
//!   the audit log. [`DirStore`] (a directory, `server.state_dir`) is the embedded default; an
//!   etcd store shared by a cluster implements the same trait plus [`Store::watch`].
//! - [`kinds`]: the resource kinds and references as data.
//! - [`join`]: the start-up rule (docs/admin.md): the store, once it holds a snapshot, is the
//!   source of truth for resources; the file only seeds an empty store, and `[server]`,
//!   `[limits]`, `[admin]` and `[store]` always come from the file.
//!
//! The store sees resources as JSON values (the serde form of the model), never as Rust types,
//! so a new kind needs no change here.

pub mod audit;
pub mod dir;
pub mod kinds;

pub use audit::{now_rfc3339, rfc3339, AuditRecord};
pub use dir::DirStore;
pub use kinds::Resources;

use crate::error::ConfigError;
use crate::model::{Config, StoreKind};
use serde_json::Value;
use std::fmt;

/// A saved resource set and the version it was published as.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub version: u64,
    pub resources: Resources,
}

/// A store failure, with what was being done and on which file or endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Durable home of the resource set and the audit log. Shared by the admin API's threads:
/// callers serialize `save`s (one writer at a time keeps versions increasing); reads may run
/// beside a write.
pub trait Store: Send + Sync {
    /// Where it lives, for messages: `state dir /var/lib/gatehouse`.
    fn describe(&self) -> String;

    /// The latest saved set; `None` for a store that was never written.
    fn load(&self) -> Result<Option<Saved>, StoreError>;

    /// Makes `saved` the latest, durably and atomically: once this returns `Ok`, a crash
    /// leaves `saved`; if it fails or a crash interrupts it, the previous set remains whole.
    fn save(&self, saved: &Saved) -> Result<(), StoreError>;

    /// Appends one record to the audit log, durably.
    fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;

    /// The newest `limit` audit records, oldest first.
    fn read_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// Sets saved by someone else (another gateway of an etcd cluster), for the caller to
    /// publish as they arrive. A store only this process writes has none.
    fn watch(&self) -> Option<std::sync::mpsc::Receiver<Saved>> {
        None
    }

    /// The descriptor whose lock makes this process the store's only writer, if the store
    /// has one: an upgrade passes it to the new process (docs/upgrade.md).
    fn lock_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// Opens the store `config.store` names.
pub fn open(config: &Config) -> Result<Box<dyn Store>, StoreError> {
    open_adopting(config, None)
}

/// Like [`open`], but a file store takes `lock` (the lock descriptor a running gateway
/// passed over during an upgrade) as its lock instead of locking anew.
pub fn open_adopting(
    config: &Config,
    lock: Option<std::fs::File>,
) -> Result<Box<dyn Store>, StoreError> {
    match config.store.kind {
        StoreKind::File => Ok(Box::new(DirStore::open_with(
            &config.server.state_dir,
            config.admin.audit_max_bytes,
            lock,
        )?)),
        StoreKind::Etcd => Err(StoreError(
            "store.kind = \"etcd\" is not available in this build yet; use \"file\"".into(),
        )),
    }
}

/// What start-up serves: the built config, its version, and what the log should say.
#[derive(Debug)]
pub struct Joined<T> {
    /// What `build` made of the joined config.
    pub built: T,
    pub version: u64,
    /// The store was empty and has just been seeded from the file.
    pub seeded: bool,
    /// File resources that are not what is served (the store wins), for the log.
    pub notes: Vec<String>,
}

/// Why the start-up config could not be formed.
#[derive(Debug)]
pub enum JoinError {
    Store(StoreError),
    /// The file's config does not build (the store was empty and is left so).
    File(Vec<ConfigError>),
    /// The store's resources do not build with the file's tables.
    Stored(Vec<ConfigError>),
}

/// Most file-vs-store differences listed one by one at start; the rest are counted.
const MAX_NOTES: usize = 10;

/// Applies the start-up rule to `file` (already parsed) and `store`; `build` validates and
/// derives what will be served (the business layer's snapshot) from a config and a version.
///
/// An empty store is seeded with the file's resources as version 1, but only once they
/// build, so a bad first file never becomes the store's truth. A store holding a snapshot wins
/// for every resource kind; the file's `[server]`, `[limits]`, `[admin]` and `[store]` are
/// kept. File resources that differ from the store's are listed in `notes`, so an operator
/// who edited the file learns that the edit is not served.
pub fn join<T>(
    file: Config,
    store: &dyn Store,
    build: impl FnOnce(Config, u64) -> Result<T, Vec<ConfigError>>,
) -> Result<Joined<T>, JoinError> {
    let Some(saved) = store.load().map_err(JoinError::Store)? else {
        let resources = kinds::resources_of(&file);
        let built = build(file, 1).map_err(JoinError::File)?;
        store
            .save(&Saved {
                version: 1,
                resources,
            })
            .map_err(JoinError::Store)?;
        return Ok(Joined {
            built,
            version: 1,
            seeded: true,
            notes: Vec::new(),
        });
    };
    let file_res = kinds::resources_of(&file);
    let config =
        kinds::with_resources(&file, &saved.resources).map_err(|e| JoinError::Stored(vec![e]))?;
    let version = saved.version.max(1);
    let built = build(config, version).map_err(JoinError::Stored)?;
    let notes = differences(&file_res, &saved.resources, store, version);
    Ok(Joined {
        built,
        version,
        seeded: false,
        notes,
    })
}

/// One line per file resource that the store does not serve as written.
fn differences(file: &Resources, stored: &Resources, store: &dyn Store, v: u64) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for kind in kinds::active_kinds() {
        for item in kinds::items(file, kind) {
            let id = kinds::id_of(item).unwrap_or("");
            let served: Option<&Value> = kinds::find(stored, kind, id).map(|(_, v)| v);
            match served {
                Some(s) if s == item => {}
                Some(_) => found.push(format!("{kind}/{id} differs")),
                None => found.push(format!("{kind}/{id} is absent")),
            }
        }
    }
    let mut notes = Vec::new();
    let total = found.len();
    for f in found.into_iter().take(MAX_NOTES) {
        notes.push(format!(
            "note: {f} in the {} (version {v}); the store wins over the config file \
             (see docs/admin.md)",
            store.describe()
        ));
    }
    if total > MAX_NOTES {
        notes.push(format!(
            "note: {} more file resources are not served as written",
            total - MAX_NOTES
        ));
    }
    notes
}

#[cfg(test)]
mod tests;
