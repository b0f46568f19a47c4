//! The gallery as a service: the index of the output folder shown now, and the move to the
//! folder an attached ComfyUI reports writing to.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use super::{Gallery, GalleryError};
use crate::activity::ActivityLog;
use crate::bridge::Bridge;
use crate::clock::now_ms;
use crate::comfy::ComfyClient;
use crate::config::Config;
use crate::events::EventBus;
use crate::model::*;
use crate::store::{Store, StoreError};

/// Where the attached ComfyUI last said it writes outputs (see
/// [`GalleryService::adopt_reported_output_dir`]).
const REPORTED_OUTPUT_DIR_KEY: &str = "gallery.reported_output_dir";

pub struct GalleryService {
    /// Replaced when an external ComfyUI reports another output folder.
    current: RwLock<Arc<Gallery>>,
    store: Store,
    events: EventBus,
    activity: ActivityLog,
    comfy: ComfyClient,
    thumbnails: PathBuf,
    /// Set by hand, or passed to the ComfyUI comfydeck starts itself: never second-guessed.
    configured: bool,
}

impl GalleryService {
    /// Opens the index of the folder the gallery starts on: the configured one, else the one
    /// ComfyUI reported last time (while it still exists), else the workspace's `output`.
    pub async fn open(
        config: &Config,
        store: Store,
        events: EventBus,
        activity: ActivityLog,
        comfy: ComfyClient,
    ) -> Result<GalleryService, StoreError> {
        let configured = config.comfyui_output_dir.is_some() || config.comfyui_dir.is_some();
        let root = initial_output_dir(config, &store, configured).await?;
        let thumbnails = config.layout().thumbnails();
        let gallery = Gallery::new(store.clone(), events.clone(), root, thumbnails.clone());
        Ok(GalleryService {
            current: RwLock::new(gallery),
            store,
            events,
            activity,
            comfy,
            thumbnails,
            configured,
        })
    }

    /// The index of the folder shown now.
    pub fn current(&self) -> Arc<Gallery> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The output folder shown now.
    pub fn root(&self) -> PathBuf {
        self.current().root().to_path_buf()
    }

    pub fn start(&self) {
        self.current().start();
    }

    pub fn stop(&self) {
        self.current().stop();
    }

    /// A page of outputs, newest first: the caller's own; an administrator's everyone's, or
    /// one person's with `query.owner`.
    pub async fn page(
        &self,
        caller: &Caller,
        query: &GalleryQuery,
    ) -> Result<GalleryPage, GalleryError> {
        let owner = match query
            .owner
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            _ if !caller.is_admin() => Some(caller.user_id),
            None => None,
            Some(name) => Some(self.store.user_id_by_name(name).await?.ok_or_else(|| {
                GalleryError::Invalid(format!("owner: there is no user named {name:?}"))
            })?),
        };
        self.current().page_of(query, owner).await
    }

    /// The item `id`, when the caller may see it (another person's is not found: ids do not
    /// leak).
    async fn item_for(&self, caller: &Caller, id: i64) -> Result<GalleryItem, GalleryError> {
        match self.current().item(id).await {
            Ok(item) if caller.may_access(item.user_id) => Ok(item),
            Ok(_) => Err(GalleryError::NotFound(format!("no output with id {id}"))),
            Err(e) => Err(e),
        }
    }

    /// A file path the caller may fetch: an administrator any file of the folder, a user only
    /// the files indexed as theirs.
    async fn check_path(&self, caller: &Caller, rel: &str) -> Result<(), GalleryError> {
        if caller.is_admin() {
            return Ok(());
        }
        // An unsafe path is refused as such (400), like an administrator's.
        crate::workspace::check_relative_path(rel)?;
        match self.current().item_by_path(rel).await? {
            Some(item) if item.user_id == caller.user_id => Ok(()),
            _ => Err(GalleryError::NotFound(format!(
                "{rel} is not in the output folder"
            ))),
        }
    }

    /// Whose the indexed file at `rel` is (`None`: not indexed).
    pub async fn owner_of_path(&self, rel: &str) -> Result<Option<i64>, GalleryError> {
        Ok(self
            .current()
            .item_by_path(rel)
            .await?
            .map(|item| item.user_id))
    }

    /// One output with the metadata its file holds.
    pub async fn detail(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<GalleryItemDetail, GalleryError> {
        self.item_for(caller, id).await?;
        self.current().detail(id).await
    }

    /// Deletes an output file, its thumbnail and its index entry.
    pub async fn delete(&self, caller: &Caller, id: i64) -> Result<GalleryItem, GalleryError> {
        self.item_for(caller, id).await?;
        self.current().delete(id).await
    }

    /// The file behind `rel`, checked to be inside the output folder (and the caller's).
    pub async fn original(&self, caller: &Caller, rel: &str) -> Result<PathBuf, GalleryError> {
        self.check_path(caller, rel).await?;
        self.current().original(rel).await
    }

    /// The cached thumbnail of `rel`, made on first use.
    pub async fn thumbnail(&self, caller: &Caller, rel: &str) -> Result<PathBuf, GalleryError> {
        self.check_path(caller, rel).await?;
        self.current().thumbnail(rel).await
    }

    /// Without `COMFYUI_OUTPUT_DIR` or a supervised ComfyUI, follows the output folder the
    /// attached ComfyUI reports, re-read at every (re)connect: a pod's ComfyUI often writes to
    /// its own `ComfyUI/output`, not the workspace's. Listens before returning, so the first
    /// connection is not missed.
    pub fn follow_reported_output_dir(
        self: &Arc<Self>,
        bridge: &Bridge,
        stopping: &CancellationToken,
    ) {
        if self.configured {
            return;
        }
        let mut connections = bridge.connections();
        let service = Arc::clone(self);
        crate::background::spawn_until(stopping, async move {
            while connections.changed().await.is_ok() {
                service.adopt_reported_output_dir().await;
            }
        });
    }

    /// Asks ComfyUI where it writes outputs and, when that is another folder this machine can
    /// read, re-roots the gallery there (remembered for the next start).
    pub async fn adopt_reported_output_dir(&self) -> Option<PathBuf> {
        if self.configured {
            return None;
        }
        let (stats, paths) = tokio::join!(self.comfy.system_stats(), self.comfy.folder_paths());
        let argv = stats.map(|s| s.system.argv).unwrap_or_default();
        let paths = paths.unwrap_or_default();
        let dir = crate::comfy::http::reported_output_dir(&argv, &paths)?;
        let current = self.root();
        if same_folder(&dir, &current) {
            return None;
        }
        if !dir.is_dir() {
            tracing::warn!(
                reported = %dir.display(),
                indexed = %current.display(),
                "ComfyUI writes outputs to a folder this machine cannot see; set COMFYUI_OUTPUT_DIR to a shared one"
            );
            return None;
        }
        let gallery = Gallery::new(
            self.store.clone(),
            self.events.clone(),
            dir.clone(),
            self.thumbnails.clone(),
        );
        let previous = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            Arc::clone(&gallery),
        );
        previous.stop();
        // The new scan drops the rows of files that are not in this folder.
        gallery.start();
        let written = self
            .store
            .write_settings(
                &[(REPORTED_OUTPUT_DIR_KEY, Some(dir.display().to_string()))],
                now_ms(),
            )
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot remember ComfyUI's output folder");
        }
        self.activity
            .record(
                ActivityKind::System,
                format!(
                    "The gallery now shows ComfyUI's output folder {} (was {})",
                    dir.display(),
                    previous.root().display()
                ),
            )
            .await;
        Some(dir)
    }
}

/// The same folder under another name (`/workspace` is often a symlink) is no change.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

async fn initial_output_dir(
    config: &Config,
    store: &Store,
    configured: bool,
) -> Result<PathBuf, StoreError> {
    if !configured {
        if let Some(dir) = store.setting(REPORTED_OUTPUT_DIR_KEY).await? {
            let dir = PathBuf::from(dir);
            if dir.is_dir() {
                return Ok(dir);
            }
        }
    }
    let dir = config.output_dir();
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}
