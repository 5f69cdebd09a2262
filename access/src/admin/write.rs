//! The write path: one change at a time, validated whole, persisted, audited, then published
//! to every worker, and answered only once every worker serves it.
//!
//! The writer lock is held from reading the current version to swapping in the new one, so
//! versions are strictly increasing and no change is built on a stale base. A change that
//! fails at any step before the save leaves everything as it was; once saved, it is the
//! truth (a restart would serve it), so it is published even if the audit append fails.

use super::answer::Answer;
use super::handlers::{absent, with_version};
use super::router::Req;
use super::{State, Writer};
use business::Snapshot;
use conf::store::{kinds, now_rfc3339, AuditRecord, Resources, Saved};
use conf::ConfigError;
use parking_lot::MutexGuard;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What a request asks to change.
pub enum Edit {
    /// Create or replace with this stored form (defaults filled, id set).
    Put(Value),
    Delete,
}

/// Referrers named in a 409 message; the rest are counted.
const MAX_NAMED: usize = 5;

/// The error most useful to the sender of a PUT: the first one inside the resource sent
/// (its field relative to the body), else the first one (its field a config path).
fn put_error(errors: &[ConfigError], kind: &str, index: usize) -> Answer {
    let prefix = format!("{kind}[{index}]");
    let inside = errors
        .iter()
        .find_map(|e| kinds::relative_path(&e.path, &prefix).map(|rel| (e, rel)));
    match (inside, errors.first()) {
        (Some((e, rel)), _) => Answer::error(400, "invalid", e.message.clone(), &rel),
        (None, Some(e)) => Answer::error(400, "invalid", e.message.clone(), &e.path),
        (None, None) => Answer::error(400, "invalid", "invalid config", ""),
    }
}

/// Who asked for a change, for its audit record.
pub struct Origin {
    pub who: String,
    pub client: String,
    pub method: String,
    pub path: String,
}

impl Origin {
    /// The origin of an admin request: `who` is the API key's label when a key is set, else
    /// the client's address.
    pub fn of(req: &Req, settings: &conf::Admin) -> Origin {
        Origin {
            who: if settings.api_key.is_empty() {
                req.peer.to_string()
            } else {
                "api_key".to_string()
            },
            client: req.peer.to_string(),
            method: req.method.to_string(),
            path: req.path.to_string(),
        }
    }
}

impl Writer {
    /// Why a change cannot be made now, as the answer to give.
    fn refusal(&self) -> Option<Answer> {
        if self.stopped {
            return Some(Answer::error(
                503,
                "stopping",
                "the gateway is shutting down",
                "",
            ));
        }
        if self.frozen {
            // The connection closes: the retry lands on whichever process then accepts,
            // the new one once the upgrade is through (docs/upgrade.md).
            return Some(
                Answer::error(
                    503,
                    "upgrading",
                    "the gateway is handing over to a new process; retry",
                    "",
                )
                .closing(),
            );
        }
        None
    }
}

impl State {
    /// Applies `edit` to `kind/id` as one new version.
    pub fn change(&self, req: &Req, kind: &'static str, id: &str, edit: Edit) -> Answer {
        let writer = self.writer.lock();
        if let Some(refused) = writer.refusal() {
            return refused;
        }
        let base = self.current();
        let mut res = kinds::resources_of(&base.config);
        let (status, index, stored) = match edit {
            Edit::Put(item) => {
                if let Some((_, old)) = kinds::find(&res, kind, id) {
                    if *old == item {
                        // Nothing changes: no new version, nothing to persist or publish.
                        return Answer::json(200, &with_version(&item, base.version))
                            .with_version(base.version);
                    }
                }
                if let Some(d) = kinds::dangling(&res, kind, &item) {
                    return Answer::error(
                        409,
                        "dangling_reference",
                        format!("no {} named {:?}", d.to, d.id),
                        d.field,
                    );
                }
                let (index, existed) = kinds::upsert(&mut res, kind, item.clone());
                (if existed { 200 } else { 201 }, index, Some(item))
            }
            Edit::Delete => {
                let Some((index, _)) = kinds::find(&res, kind, id) else {
                    return absent(kind, id);
                };
                let who = kinds::referrers(&res, kind, id);
                if let Some(first) = who.first() {
                    let mut names: Vec<String> = who
                        .iter()
                        .take(MAX_NAMED)
                        .map(|r| format!("{}/{}", r.kind, r.id))
                        .collect();
                    if who.len() > MAX_NAMED {
                        names.push(format!("{} more", who.len() - MAX_NAMED));
                    }
                    return Answer::error(
                        409,
                        "in_use",
                        format!("{kind}/{id} is still referred to by {}", names.join(", ")),
                        &first.path,
                    );
                }
                kinds::remove(&mut res, kind, id);
                (204, index, None)
            }
        };
        let origin = Origin::of(req, &self.settings);
        let put = stored.is_some();
        let invalid = |errors: Vec<ConfigError>| {
            if put {
                return put_error(&errors, kind, index);
            }
            let (msg, field) = errors.first().map_or((String::new(), ""), |e| {
                (e.message.clone(), e.path.as_str())
            });
            Answer::error(
                409,
                "conflict",
                format!("deleting {kind}/{id} would leave the config invalid: {msg}"),
                field,
            )
        };
        match self.commit(writer, &base, res, &origin, (kind, id, status), invalid) {
            Ok(version) => match stored {
                Some(item) => Answer::json(status, &with_version(&item, version)),
                None => Answer::empty(204),
            }
            .with_version(version),
            Err(answer) => answer,
        }
    }

    /// Runs `edit` on the published snapshot's resources under the writer lock and commits
    /// the result as one version: for changes of several resources at once (a release's
    /// promotion replaces its target and drops the release). `edit` may refuse with an
    /// answer; `invalid` answers for a result that does not build. Returns the snapshot the
    /// change was made on and the new version.
    pub(super) fn change_with(
        &self,
        origin: &Origin,
        what: (&str, &str, u16),
        edit: impl FnOnce(&Snapshot, &mut Resources) -> Result<(), Answer>,
        invalid: impl FnOnce(Vec<ConfigError>) -> Answer,
    ) -> Result<(Arc<Snapshot>, u64), Answer> {
        let writer = self.writer.lock();
        if let Some(refused) = writer.refusal() {
            return Err(refused);
        }
        let base = self.current();
        let mut res = kinds::resources_of(&base.config);
        edit(&base, &mut res)?;
        let version = self.commit(writer, &base, res, origin, what, invalid)?;
        Ok((base, version))
    }

    /// Builds `res` into the version after `base`, saves it, audits it as `what` (kind, id,
    /// status) by `origin`, and publishes it; `writer` is held throughout. Returns the new
    /// version once every worker serves it, or the answer saying what went wrong.
    fn commit(
        &self,
        writer: MutexGuard<'_, Writer>,
        base: &Snapshot,
        res: Resources,
        origin: &Origin,
        what: (&str, &str, u16),
        invalid: impl FnOnce(Vec<ConfigError>) -> Answer,
    ) -> Result<u64, Answer> {
        let (kind, id, status) = what;
        let config = match kinds::with_resources(&base.config, &res) {
            Ok(c) => c,
            Err(e) => return Err(invalid(vec![e])),
        };
        let version = base.version + 1;
        // The previous version hands over state a change must not reset (rate-limit
        // tables, replay caches, release counters).
        let snap = Snapshot::build_next(config, version, Some(base)).map_err(invalid)?;
        if let Err(e) = self.store.save(&Saved {
            version,
            resources: res,
        }) {
            return Err(Answer::error(500, "store_failed", e.to_string(), ""));
        }
        let record = AuditRecord {
            time: now_rfc3339(),
            who: origin.who.clone(),
            client: origin.client.clone(),
            method: origin.method.clone(),
            path: origin.path.clone(),
            kind: kind.to_string(),
            id: id.to_string(),
            version,
            status,
        };
        if let Err(e) = self.store.append_audit(&record) {
            eprintln!("gatehouse: admin: version {version} saved but not audited: {e}");
        }
        let timeout = Duration::from_millis(self.settings.publish_timeout_ms);
        let live = (writer.publish)(snap.clone(), timeout);
        *self.current.lock() = snap;
        drop(writer);
        if !live {
            return Err(Answer::error(
                503,
                "publish_timeout",
                format!(
                    "version {version} is saved but not every worker confirmed it within \
                     {timeout:?}; they will serve it once they catch up"
                ),
                "",
            )
            .with_version(version));
        }
        Ok(version)
    }
}
