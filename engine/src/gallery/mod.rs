//! The gallery: an index (SQLite) of the files under ComfyUI's output folder, kept current by
//! a start-up scan, file-system events and finished runs; pages of it, newest first; the
//! metadata of one file; thumbnails; and deletes.
//!
//! Listing never touches the folder: it is a query. The folder is walked once at start-up
//! (unchanged files, by size and mtime, are not read again) and after that only the paths
//! that file-system events name are looked at.

pub(crate) mod meta;
mod service;
mod thumbs;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::model::{
    ActivityKind, Event, GalleryChange, GalleryItem, GalleryItemDetail, GalleryMeta, GalleryPage,
    GalleryQuery, MediaKind, RunEvent, RunEventKind,
};
use crate::store::{Store, StoreError};
use crate::workspace::{check_relative_path, resolve_inside, UnsafePath};

pub use service::GalleryService;
pub use thumbs::THUMB_SIZE;

/// Items per page when the query does not say, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Files read and written per transaction during a scan.
const SCAN_BATCH: usize = 128;
/// Thumbnails decoded at once (each holds a full image in memory).
const THUMBNAIL_SLOTS: usize = 2;
/// Removed ids listed in one change event; more than this and viewers just reload.
const MAX_REMOVED_IN_EVENT: usize = 500;
/// How deep the scan goes into sub-folders.
const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("unsafe output path: {0}")]
    UnsafePath(#[from] UnsafePath),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// Videos and audio have no raster thumbnail; the page shows a kind tile instead.
    #[error("{0}")]
    NoThumbnail(String),
    #[error("cannot make a thumbnail of {path}: {reason}")]
    Thumbnail { path: String, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A worker thread stopped or the index holds what this version cannot read.
    #[error("{0}")]
    Internal(String),
}

impl crate::error::Classify for GalleryError {
    fn kind(&self) -> crate::model::ErrorKind {
        use crate::model::ErrorKind;
        match self {
            GalleryError::UnsafePath(_) | GalleryError::Invalid(_) => ErrorKind::Invalid,
            // A file that cannot be decoded has no thumbnail: the page shows its kind's tile.
            GalleryError::NotFound(_)
            | GalleryError::NoThumbnail(_)
            | GalleryError::Thumbnail { .. } => ErrorKind::NotFound,
            GalleryError::Io { .. } | GalleryError::Store(_) | GalleryError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }
}

impl From<sqlx::Error> for GalleryError {
    fn from(e: sqlx::Error) -> Self {
        GalleryError::Store(StoreError::Query(e))
    }
}

type Result<T> = std::result::Result<T, GalleryError>;

/// What a scan changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files seen in the folder (media files only).
    pub seen: usize,
    pub added: usize,
    pub updated: usize,
    /// Rows whose file is gone.
    pub removed: usize,
}

/// A media file found on disk, before its metadata is read.
struct Found {
    rel: String,
    kind: MediaKind,
    size: u64,
    mtime_ms: i64,
}

pub struct Gallery {
    store: Store,
    events: EventBus,
    root: PathBuf,
    thumbs: PathBuf,
    thumb_slots: Semaphore,
    indexing: AtomicBool,
    cancel: CancellationToken,
}

impl Gallery {
    /// `root` is ComfyUI's output folder; `thumbs` is where thumbnails are cached.
    pub fn new(store: Store, events: EventBus, root: PathBuf, thumbs: PathBuf) -> Arc<Gallery> {
        Arc::new(Gallery {
            store,
            events,
            root,
            thumbs,
            thumb_slots: Semaphore::new(THUMBNAIL_SLOTS),
            indexing: AtomicBool::new(false),
            cancel: CancellationToken::new(),
        })
    }

    /// The output folder this gallery indexes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts the background work: the file-system watcher (first, so nothing written during
    /// the scan is missed), the start-up scan, then event handling; and the listener that
    /// indexes the outputs of finished runs.
    pub fn start(self: &Arc<Self>) {
        self.indexing.store(true, Ordering::SeqCst);
        let gallery = Arc::clone(self);
        tokio::spawn(async move { watch::run(gallery).await });
        let gallery = Arc::clone(self);
        tokio::spawn(async move { gallery.index_run_outputs().await });
    }

    /// Stops the background work.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Whether the start-up scan is still running.
    pub fn is_indexing(&self) -> bool {
        self.indexing.load(Ordering::SeqCst)
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        self.store.pool()
    }

    // -- indexing --------------------------------------------------------------------------

    /// Brings the whole index in line with the folder (the start-up scan).
    pub async fn scan(&self) -> Result<ScanReport> {
        let report = self.sync_subtree("").await;
        self.indexing.store(false, Ordering::SeqCst);
        let report = report?;
        tracing::info!(
            seen = report.seen,
            added = report.added,
            updated = report.updated,
            removed = report.removed,
            root = %self.root.display(),
            "gallery index is current"
        );
        Ok(report)
    }

    /// Looks at one path under the output folder (a file, a folder, or something that is
    /// gone) and updates the index to match. `prompt_id` is recorded when a run made it.
    pub async fn index_path(&self, rel: &str, prompt_id: Option<&str>) -> Result<ScanReport> {
        check_relative_path(rel)?;
        let abs = self.root.join(rel);
        let meta = tokio::fs::symlink_metadata(&abs).await;
        match meta {
            Ok(m) if m.is_dir() => self.sync_subtree(rel).await,
            Ok(m) if m.is_file() => {
                let Some(kind) = indexable(rel) else {
                    return Ok(ScanReport::default());
                };
                let found = Found {
                    rel: rel.to_string(),
                    kind,
                    size: m.len(),
                    mtime_ms: mtime_ms(&m),
                };
                let existing: Option<(i64, i64, i64, Option<String>)> = sqlx::query_as(
                    "SELECT id, size_bytes, mtime_ms, prompt_id FROM gallery_items WHERE path = ?",
                )
                .bind(rel)
                .fetch_optional(self.pool())
                .await?;
                let mut report = ScanReport {
                    seen: 1,
                    ..ScanReport::default()
                };
                match &existing {
                    Some((_, size, mtime, known_prompt))
                        if *size as u64 == found.size
                            && *mtime == found.mtime_ms
                            && (prompt_id.is_none() || known_prompt.as_deref() == prompt_id) =>
                    {
                        return Ok(report)
                    }
                    Some(_) => report.updated = 1,
                    None => report.added = 1,
                }
                self.read_and_store(vec![found], prompt_id).await?;
                let owner = self.item_by_path(rel).await?.map(|item| item.user_id);
                self.publish(report.added as u32, Vec::new(), owner);
                Ok(report)
            }
            // Gone, or a symlink (never followed: it could lead out of the folder).
            _ => {
                let removed = self.remove_rows_under(rel).await?;
                Ok(ScanReport {
                    removed,
                    ..ScanReport::default()
                })
            }
        }
    }

    /// Walks `prefix` ("" for the whole folder) and makes its rows match what is there.
    async fn sync_subtree(&self, prefix: &str) -> Result<ScanReport> {
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix)
        };
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || walk(&root, &start))
            .await
            .map_err(|e| GalleryError::Internal(format!("the output scan stopped: {e}")))??;
        let known = self.rows_under(prefix).await?;
        let mut report = ScanReport {
            seen: found.len(),
            ..ScanReport::default()
        };
        let mut seen_ids = std::collections::HashSet::with_capacity(found.len());
        let mut changed = Vec::new();
        for file in found {
            match known.get(&file.rel) {
                Some(&(id, size, mtime)) => {
                    seen_ids.insert(id);
                    if size as u64 != file.size || mtime != file.mtime_ms {
                        report.updated += 1;
                        changed.push(file);
                    }
                }
                None => {
                    report.added += 1;
                    changed.push(file);
                }
            }
        }
        let gone: Vec<i64> = known
            .values()
            .map(|&(id, _, _)| id)
            .filter(|id| !seen_ids.contains(id))
            .collect();
        report.removed = gone.len();
        let mut batch = Vec::with_capacity(SCAN_BATCH);
        for file in changed {
            batch.push(file);
            if batch.len() == SCAN_BATCH {
                self.read_and_store(std::mem::take(&mut batch), None)
                    .await?;
            }
        }
        if !batch.is_empty() {
            self.read_and_store(batch, None).await?;
        }
        self.delete_rows(&gone).await?;
        if report.added + report.updated + report.removed > 0 {
            self.publish(report.added as u32, gone, None);
        }
        Ok(report)
    }

    /// Reads the metadata of `files` (off the async workers) and writes their rows in one
    /// transaction.
    async fn read_and_store(&self, files: Vec<Found>, prompt_id: Option<&str>) -> Result<()> {
        let root = self.root.clone();
        let read = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .filter_map(|file| {
                    match meta::read_meta(&root.join(&file.rel), file.kind) {
                        Ok(meta) => Some((file, meta)),
                        // Vanished between the walk and now; the next event removes its row.
                        Err(e) => {
                            tracing::debug!(path = %file.rel, error = %e, "output not readable");
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| GalleryError::Internal(format!("reading output metadata stopped: {e}")))?;
        let now = crate::clock::now_ms();
        let mut tx = self.store.write_tx().await?;
        for (file, meta) in read {
            let search = search_text(&file.rel, &meta);
            sqlx::query(
                "INSERT INTO gallery_items (path, kind, size_bytes, mtime_ms, width, height,
                     positive, negative, seed, model, has_workflow, search_text, prompt_id,
                     indexed_ms, user_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                     COALESCE((SELECT user_id FROM prompt_owners WHERE prompt_id = ?), 1))
                 ON CONFLICT(path) DO UPDATE SET
                     kind = excluded.kind, size_bytes = excluded.size_bytes,
                     mtime_ms = excluded.mtime_ms, width = excluded.width,
                     height = excluded.height, positive = excluded.positive,
                     negative = excluded.negative, seed = excluded.seed, model = excluded.model,
                     has_workflow = excluded.has_workflow, search_text = excluded.search_text,
                     prompt_id = COALESCE(excluded.prompt_id, gallery_items.prompt_id),
                     user_id = CASE WHEN excluded.prompt_id IS NULL THEN gallery_items.user_id
                                    ELSE excluded.user_id END,
                     indexed_ms = excluded.indexed_ms",
            )
            .bind(&file.rel)
            .bind(file.kind.as_str())
            .bind(file.size as i64)
            .bind(file.mtime_ms)
            .bind(meta.width.map(i64::from))
            .bind(meta.height.map(i64::from))
            .bind(&meta.positive)
            .bind(&meta.negative)
            .bind(meta.seed)
            .bind(&meta.model)
            .bind(meta.workflow.is_some() || meta.prompt.is_some())
            .bind(search)
            .bind(prompt_id)
            .bind(now)
            .bind(prompt_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `path -> (id, size, mtime)` of the rows at or under `prefix`.
    async fn rows_under(&self, prefix: &str) -> Result<HashMap<String, (i64, i64, i64)>> {
        let rows: Vec<(String, i64, i64, i64)> = if prefix.is_empty() {
            sqlx::query_as("SELECT path, id, size_bytes, mtime_ms FROM gallery_items")
                .fetch_all(self.pool())
                .await?
        } else {
            // substr, not LIKE: file names may hold `%` and `_`.
            sqlx::query_as(
                "SELECT path, id, size_bytes, mtime_ms FROM gallery_items
                 WHERE path = ?1 OR substr(path, 1, length(?1) + 1) = ?1 || '/'",
            )
            .bind(prefix)
            .fetch_all(self.pool())
            .await?
        };
        Ok(rows
            .into_iter()
            .map(|(path, id, size, mtime)| (path, (id, size, mtime)))
            .collect())
    }

    async fn remove_rows_under(&self, rel: &str) -> Result<usize> {
        let ids: Vec<i64> = self.rows_under(rel).await?.values().map(|r| r.0).collect();
        self.delete_rows(&ids).await?;
        if !ids.is_empty() {
            self.publish(0, ids.clone(), None);
        }
        Ok(ids.len())
    }

    async fn delete_rows(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write_tx().await?;
        for id in ids {
            sqlx::query("DELETE FROM gallery_items WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let dir = self.thumbs.clone();
        let ids = ids.to_vec();
        let _ = tokio::task::spawn_blocking(move || {
            for id in ids {
                thumbs::remove_thumbnails(&dir, id);
            }
        })
        .await;
        Ok(())
    }

    fn publish(&self, added: u32, mut removed_ids: Vec<i64>, user_id: Option<i64>) {
        if removed_ids.len() > MAX_REMOVED_IN_EVENT {
            // Viewers reload their first page on any change; ids beyond it do not matter.
            removed_ids.truncate(MAX_REMOVED_IN_EVENT);
        }
        self.events.publish(Event::Gallery(GalleryChange {
            added,
            removed_ids,
            user_id,
        }));
    }

    /// Indexes the files finished runs report, as soon as each output node is done (before
    /// the watcher's debounce), and remembers which prompt made them.
    async fn index_run_outputs(self: Arc<Self>) {
        let mut rx = self.events.subscribe();
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                event = rx.recv() => event,
            };
            let (prompt_id, files) = match event {
                Ok(Event::Run(RunEvent {
                    prompt_id,
                    event: RunEventKind::Output { files, .. },
                })) => (prompt_id, files),
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            for file in files.iter().filter(|f| f.kind == "output") {
                let rel = if file.subfolder.is_empty() {
                    file.filename.clone()
                } else {
                    format!("{}/{}", file.subfolder.trim_matches('/'), file.filename)
                };
                if let Err(e) = self.index_path(&rel, Some(&prompt_id)).await {
                    tracing::warn!(path = %rel, error = %e, "cannot index a run's output");
                }
            }
        }
    }

    // -- reading ---------------------------------------------------------------------------

    /// One page, newest first, with the filters of `query`.
    pub async fn page(&self, query: &GalleryQuery) -> Result<GalleryPage> {
        self.page_of(query, None).await
    }

    /// [`page`](Self::page) of one person's outputs (`None`: everyone's).
    pub async fn page_of(&self, query: &GalleryQuery, owner: Option<i64>) -> Result<GalleryPage> {
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(GalleryError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
            )));
        }
        if let (Some(from), Some(to)) = (query.from_ms, query.to_ms) {
            if from > to {
                return Err(GalleryError::Invalid(
                    "the start date is after the end date".into(),
                ));
            }
        }
        let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let words: Vec<String> = query
            .text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();

        let filters = |builder: &mut QueryBuilder<'_, Sqlite>| {
            builder.push(" WHERE 1 = 1");
            if let Some(owner) = owner {
                builder.push(" AND user_id = ").push_bind(owner);
            }
            if let Some(kind) = query.kind {
                builder.push(" AND kind = ").push_bind(kind.as_str());
            }
            if let Some(from) = query.from_ms {
                builder.push(" AND mtime_ms >= ").push_bind(from);
            }
            if let Some(to) = query.to_ms {
                builder.push(" AND mtime_ms < ").push_bind(to);
            }
            for word in &words {
                builder
                    .push(" AND instr(search_text, ")
                    .push_bind(word.clone())
                    .push(") > 0");
            }
        };

        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM gallery_items");
        filters(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(self.pool()).await?;

        let mut select =
            QueryBuilder::<Sqlite>::new(format!("SELECT {ITEM_COLUMNS} FROM gallery_items"));
        filters(&mut select);
        if let Some((mtime, id)) = cursor {
            select
                .push(" AND (mtime_ms < ")
                .push_bind(mtime)
                .push(" OR (mtime_ms = ")
                .push_bind(mtime)
                .push(" AND id < ")
                .push_bind(id)
                .push("))");
        }
        select
            .push(" ORDER BY mtime_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = select.build().fetch_all(self.pool()).await?;
        let mut items = rows.iter().map(item_from_row).collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|i| format!("{}:{}", i.modified_ms, i.id))
        } else {
            None
        };
        Ok(GalleryPage {
            items,
            total: total as u64,
            next_cursor,
            indexing: self.is_indexing(),
            folder: self.root.display().to_string(),
        })
    }

    /// The row of item `id`.
    pub async fn item(&self, id: i64) -> Result<GalleryItem> {
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM gallery_items WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| GalleryError::NotFound(format!("no output with id {id}")))?;
        item_from_row(&row)
    }

    /// The row of the file at `rel`, when it is indexed.
    pub async fn item_by_path(&self, rel: &str) -> Result<Option<GalleryItem>> {
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM gallery_items WHERE path = ?"
        ))
        .bind(rel)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// One item with the metadata its file holds (workflow and prompt JSON included).
    pub async fn detail(&self, id: i64) -> Result<GalleryItemDetail> {
        let item = self.item(id).await?;
        let path = resolve_inside(&self.root, &item.path)?;
        let kind = item.kind;
        let read = tokio::task::spawn_blocking(move || meta::read_meta(&path, kind))
            .await
            .map_err(|e| GalleryError::Internal(format!("reading metadata stopped: {e}")))?;
        let meta = match read {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Deleted behind our back: drop the row now rather than show a broken item.
                self.remove_rows_under(&item.path).await?;
                return Err(GalleryError::NotFound(format!(
                    "{} is no longer in the output folder",
                    item.path
                )));
            }
            Err(e) => GalleryMeta {
                note: Some(format!("the file cannot be read: {e}")),
                ..GalleryMeta::default()
            },
        };
        Ok(GalleryItemDetail { item, meta })
    }

    /// The file behind `rel`, checked: inside the output folder (no `..`, no absolute path,
    /// no symlink out), a media file, and there.
    pub async fn original(&self, rel: &str) -> Result<PathBuf> {
        let path = resolve_inside(&self.root, rel)?;
        if indexable(rel).is_none() {
            return Err(GalleryError::NotFound(format!(
                "{rel} is not an image, video or audio file of the gallery"
            )));
        }
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(path),
            _ => Err(GalleryError::NotFound(format!(
                "{rel} is not in the output folder"
            ))),
        }
    }

    /// The cached thumbnail of `rel`, made now when there is none yet.
    pub async fn thumbnail(&self, rel: &str) -> Result<PathBuf> {
        let source = self.original(rel).await?;
        let item = self.item_by_path(rel).await?.ok_or_else(|| {
            GalleryError::NotFound(format!("{rel} is not indexed (yet); try again shortly"))
        })?;
        if item.kind != MediaKind::Image {
            return Err(GalleryError::NoThumbnail(format!(
                "{rel} is a {} file; only images have thumbnails",
                item.kind.as_str()
            )));
        }
        let dest = thumbs::thumb_path(&self.thumbs, item.id, item.modified_ms);
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Ok(dest);
        }
        let _slot = self
            .thumb_slots
            .acquire()
            .await
            .map_err(|_| GalleryError::Internal("the gallery is shutting down".into()))?;
        // Another request may have made it while this one waited.
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Ok(dest);
        }
        let (dir, id, out) = (self.thumbs.clone(), item.id, dest.clone());
        tokio::task::spawn_blocking(move || {
            // Thumbnails of an older version of the file are stale now.
            thumbs::remove_thumbnails(&dir, id);
            thumbs::make_thumbnail(&source, &out)
        })
        .await
        .map_err(|e| GalleryError::Internal(format!("thumbnailing stopped: {e}")))?
        .map_err(|reason| GalleryError::Thumbnail {
            path: rel.to_string(),
            reason,
        })?;
        Ok(dest)
    }

    // -- deleting --------------------------------------------------------------------------

    /// Deletes the file, its thumbnails and its row; records it and tells viewers.
    pub async fn delete(&self, id: i64) -> Result<GalleryItem> {
        let item = self.item(id).await?;
        let path = resolve_inside(&self.root, &item.path)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(GalleryError::Io {
                    action: "delete",
                    path: item.path.clone(),
                    source,
                })
            }
        }
        self.delete_rows(&[id]).await?;
        self.publish(0, vec![id], Some(item.user_id));
        crate::events::record_activity_as(
            &self.store,
            &self.events,
            Some(item.user_id),
            ActivityKind::System,
            format!("Deleted output {}", item.path),
        )
        .await;
        Ok(item)
    }
}

const ITEM_COLUMNS: &str = "id, path, kind, size_bytes, mtime_ms, width, height, positive, \
                            seed, model, has_workflow, prompt_id, user_id, \
                            (SELECT username FROM users WHERE users.id = gallery_items.user_id) \
                            AS owner";

fn item_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<GalleryItem> {
    let kind: String = row.try_get("kind")?;
    Ok(GalleryItem {
        id: row.try_get("id")?,
        path: row.try_get("path")?,
        kind: MediaKind::parse(&kind).ok_or_else(|| {
            GalleryError::Internal(format!("the gallery index holds an unknown kind {kind:?}"))
        })?,
        size_bytes: row.try_get::<i64, _>("size_bytes")? as u64,
        modified_ms: row.try_get("mtime_ms")?,
        width: row.try_get::<Option<i64>, _>("width")?.map(|w| w as u32),
        height: row.try_get::<Option<i64>, _>("height")?.map(|h| h as u32),
        positive: row.try_get("positive")?,
        seed: row.try_get("seed")?,
        model: row.try_get("model")?,
        has_workflow: row.try_get("has_workflow")?,
        prompt_id: row.try_get("prompt_id")?,
        user_id: row.try_get("user_id")?,
        owner: row.try_get("owner")?,
    })
}

/// `"<mtime>:<id>"`, as [`GalleryPage::next_cursor`] hands it out.
fn parse_cursor(cursor: &str) -> Result<(i64, i64)> {
    let bad = || GalleryError::Invalid(format!("cursor {cursor:?} is not one this API gave out"));
    let (mtime, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((
        mtime.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

/// The kind of a relative path the gallery shows; hidden files and folders (temporary files
/// being written, `.thumbs` of other tools) are left out.
fn indexable(rel: &str) -> Option<MediaKind> {
    if rel.split('/').any(|segment| segment.starts_with('.')) {
        return None;
    }
    MediaKind::of_file_name(rel)
}

fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

fn search_text(rel: &str, meta: &GalleryMeta) -> String {
    [
        Some(rel),
        meta.positive.as_deref(),
        meta.negative.as_deref(),
        meta.model.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n")
    .to_lowercase()
}

/// The media files under `start` (inside `root`), with paths relative to `root`. Symlinks are
/// not followed.
fn walk(root: &Path, start: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let walker = walkdir::WalkDir::new(start)
        .max_depth(MAX_DEPTH)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.depth() == 0 => {
                return match e.io_error().map(|io| io.kind()) {
                    // A folder that does not exist (yet) holds nothing.
                    Some(std::io::ErrorKind::NotFound) => Ok(found),
                    _ => Err(GalleryError::Io {
                        action: "read the folder",
                        path: start.display().to_string(),
                        source: e
                            .into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("walk failed")),
                    }),
                };
            }
            Err(e) => {
                tracing::debug!(error = %e, "skipped an unreadable output entry");
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel
            .to_str()
            .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            tracing::debug!(path = %entry.path().display(), "skipped a non-UTF-8 file name");
            continue;
        };
        let Some(kind) = indexable(&rel) else {
            continue;
        };
        if check_relative_path(&rel).is_err() {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        found.push(Found {
            rel,
            kind,
            size: meta.len(),
            mtime_ms: mtime_ms(&meta),
        });
    }
    Ok(found)
}
