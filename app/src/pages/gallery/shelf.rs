//! The page's state, shared by its parts: the loaded items, the filters, paging by cursor and
//! merging a fresh first page.

use engine::model::*;
use leptos::prelude::*;

use crate::api::gallery::list_gallery;
use crate::api::ApiError;
use crate::server_calls::error_message;

/// Items per fetch: a few screens of thumbnails on a phone.
pub(super) const PAGE_SIZE: u32 = 60;

/// What the filters ask for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Filters {
    pub(super) kind: Option<MediaKind>,
    pub(super) text: String,
    /// `YYYY-MM-DD` from the date inputs (UTC days, like every date on the deck).
    pub(super) from: String,
    pub(super) to: String,
    /// An administrator's owner filter: a username, or empty for everyone's outputs.
    pub(super) owner: String,
}

impl Filters {
    pub(super) fn is_empty(&self) -> bool {
        self == &Filters::default()
    }
}

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
pub(super) struct Shelf {
    pub(super) items: RwSignal<Vec<GalleryItem>>,
    pub(super) total: RwSignal<u64>,
    pub(super) cursor: RwSignal<Option<String>>,
    pub(super) indexing: RwSignal<bool>,
    /// The output folder indexed (shown when there is nothing yet, so a wrong one is obvious).
    pub(super) folder: RwSignal<String>,
    pub(super) filters: RwSignal<Filters>,
    pub(super) loading: RwSignal<bool>,
    pub(super) error: RwSignal<Option<String>>,
    /// Bumped by every fetch of the first page; an older answer arriving late is dropped.
    pub(super) generation: StoredValue<u64>,
    /// The open item (from the URL).
    pub(super) open: Memo<Option<i64>>,
    pub(super) select: Callback<(Option<i64>, bool)>,
}

impl Shelf {
    /// Fetches the first page for the current filters. `merge` keeps the pages already loaded
    /// (a live change); otherwise the list is replaced (the filters changed).
    pub(super) fn reload(self, merge: bool) {
        let Some(generation) = self.generation.try_update_value(|g| {
            *g += 1;
            *g
        }) else {
            return;
        };
        let filters = self.filters.get_untracked();
        if !merge {
            self.loading.set(true);
        }
        leptos::task::spawn_local(async move {
            let result = fetch(&filters, None).await;
            if self.generation.try_get_value() != Some(generation) {
                return;
            }
            self.loading.try_set(false);
            match result {
                Ok(page) => {
                    self.error.set(None);
                    self.total.set(page.total);
                    self.indexing.set(page.indexing);
                    self.folder.set(page.folder);
                    if merge && !self.items.with_untracked(Vec::is_empty) {
                        self.items.update(|items| merge_page(items, page.items));
                        // The cursor of the loaded pages stays: they continue where they were.
                        if self.cursor.with_untracked(Option::is_none)
                            && self.items.with_untracked(Vec::len) < page.total as usize
                        {
                            self.cursor.set(page.next_cursor);
                        }
                    } else {
                        self.items.set(page.items);
                        self.cursor.set(page.next_cursor);
                    }
                }
                Err(e) => self.fail(e),
            }
        });
    }

    /// Appends the next page; `then` runs after it arrived (the viewer steps on with it).
    pub(super) fn load_more(self, then: Option<Callback<()>>) {
        let Some(cursor) = self.cursor.get_untracked() else {
            return;
        };
        if self.loading.get_untracked() {
            return;
        }
        self.loading.set(true);
        let generation = self.generation.get_value();
        let filters = self.filters.get_untracked();
        leptos::task::spawn_local(async move {
            let result = fetch(&filters, Some(cursor)).await;
            if self.generation.try_get_value() != Some(generation) {
                return;
            }
            self.loading.try_set(false);
            match result {
                Ok(page) => {
                    self.total.set(page.total);
                    self.items.update(|items| {
                        let known: std::collections::HashSet<i64> =
                            items.iter().map(|i| i.id).collect();
                        items.extend(page.items.into_iter().filter(|i| !known.contains(&i.id)));
                    });
                    self.cursor.set(page.next_cursor);
                    if let Some(then) = then {
                        then.run(());
                    }
                }
                Err(e) => self.fail(e),
            }
        });
    }

    fn fail(self, e: ApiError) {
        self.error.try_set(Some(format!(
            "Could not read the gallery: {}",
            error_message(e)
        )));
    }

    /// Takes an item out of the list (deleted here or elsewhere).
    pub(super) fn forget(self, ids: &[i64]) {
        let before = self.items.with_untracked(Vec::len);
        self.items
            .update(|items| items.retain(|i| !ids.contains(&i.id)));
        let gone = before - self.items.with_untracked(Vec::len);
        self.total.update(|t| *t = t.saturating_sub(gone as u64));
    }
}

/// One page of the gallery for `filters`, from `cursor` on.
async fn fetch(filters: &Filters, cursor: Option<String>) -> Result<GalleryPage, ApiError> {
    let from_ms = utc_day_start_ms(&filters.from);
    // The "to" day is included: up to the start of the next day.
    let to_ms = utc_day_start_ms(&filters.to).map(|ms| ms + 86_400_000);
    let text = Some(filters.text.trim().to_string()).filter(|t| !t.is_empty());
    let owner = Some(filters.owner.clone()).filter(|o| !o.is_empty());
    list_gallery(
        filters.kind,
        from_ms,
        to_ms,
        text,
        cursor,
        Some(PAGE_SIZE),
        owner,
    )
    .await
}

/// Lays a fresh first page over the loaded items: new ones come in, changed ones are
/// replaced, and the order stays newest first.
fn merge_page(items: &mut Vec<GalleryItem>, fresh: Vec<GalleryItem>) {
    for item in fresh {
        match items.iter_mut().find(|i| i.id == item.id) {
            Some(known) => *known = item,
            None => items.push(item),
        }
    }
    items.sort_by_key(|i| std::cmp::Reverse((i.modified_ms, i.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, modified_ms: i64) -> GalleryItem {
        GalleryItem {
            id,
            path: format!("{id}.png"),
            kind: MediaKind::Image,
            size_bytes: 1,
            modified_ms,
            width: None,
            height: None,
            positive: None,
            seed: None,
            model: None,
            has_workflow: false,
            prompt_id: None,
            user_id: 1,
            owner: None,
        }
    }

    #[test]
    fn a_fresh_first_page_merges_newest_first() {
        let mut items = vec![item(5, 500), item(4, 400), item(2, 200)];
        let mut changed = item(4, 450);
        changed.path = "changed.png".into();
        merge_page(&mut items, vec![item(6, 600), changed, item(5, 500)]);
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [6, 5, 4, 2]);
        assert_eq!(items[2].path, "changed.png");
    }
}
