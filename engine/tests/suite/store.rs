//! Integration tests for `engine::store::Store` against a real SQLite file in a temp dir.

use engine::model::ActivityKind;
use engine::store::{SessionRow, Store};

/// Opens a fresh store in its own temp dir; the dir lives as long as the returned guard.
async fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("test.db"))
        .await
        .expect("open store");
    (dir, store)
}

#[tokio::test]
async fn journal_mode_is_wal() {
    let (_dir, store) = fresh_store().await;
    assert_eq!(store.journal_mode().await.unwrap().to_lowercase(), "wal");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    {
        let store = Store::open(&path).await.unwrap();
        store
            .write_settings(
                &[("theme", Some("dark".into())), ("other", Some("42".into()))],
                1_000,
            )
            .await
            .unwrap();
        store
            .add_activity(5, None, ActivityKind::System, "before reopen")
            .await
            .unwrap();
        drop(store);
    }
    assert!(path.is_file(), "the database file exists on disk");

    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.journal_mode().await.unwrap().to_lowercase(), "wal");
    assert_eq!(
        store.setting("theme").await.unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(store.setting("other").await.unwrap().as_deref(), Some("42"));
    let all = store.all_settings().await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let page = store.activity_page(None, None, 1, 10).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.entries[0].message, "before reopen");
}

#[tokio::test]
async fn write_settings_applies_a_batch_and_none_deletes() {
    let (_dir, store) = fresh_store().await;
    assert_eq!(store.setting("a").await.unwrap(), None);

    store
        .write_settings(&[("a", Some("1".into())), ("b", Some("2".into()))], 10)
        .await
        .unwrap();
    assert_eq!(store.setting("a").await.unwrap().as_deref(), Some("1"));
    assert_eq!(store.setting("b").await.unwrap().as_deref(), Some("2"));

    // One batch that updates `a` and deletes `b`: both take effect.
    store
        .write_settings(&[("a", Some("updated".into())), ("b", None)], 20)
        .await
        .unwrap();
    assert_eq!(
        store.setting("a").await.unwrap().as_deref(),
        Some("updated")
    );
    assert_eq!(store.setting("b").await.unwrap(), None);
    let all = store.all_settings().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all.get("a").map(String::as_str), Some("updated"));

    // Deleting a key that does not exist is fine.
    store
        .write_settings(&[("never-set", None)], 30)
        .await
        .unwrap();
    // `None` on `a` deletes it too.
    store.write_settings(&[("a", None)], 40).await.unwrap();
    assert!(store.all_settings().await.unwrap().is_empty());

    // An empty batch is a no-op.
    store.write_settings(&[], 50).await.unwrap();
    assert!(store.all_settings().await.unwrap().is_empty());
}

#[tokio::test]
async fn activity_pages_are_newest_first_and_filterable() {
    let (_dir, store) = fresh_store().await;
    let kinds = [
        ActivityKind::Settings,
        ActivityKind::Auth,
        ActivityKind::Error,
        ActivityKind::System,
    ];
    // 30 entries, at_ms 1000, 2000, … 30000, kinds cycling through these four.
    for i in 0..30i64 {
        let kind = kinds[(i as usize) % kinds.len()];
        let entry = store
            .add_activity(1_000 * (i + 1), None, kind, &format!("entry {i}"))
            .await
            .unwrap();
        assert_eq!(entry.at_ms, 1_000 * (i + 1));
        assert_eq!(entry.kind, kind);
        assert!(entry.id > 0);
    }

    let first = store.activity_page(None, None, 1, 10).await.unwrap();
    assert_eq!(first.total, 30);
    assert_eq!(first.page, 1);
    assert_eq!(first.per_page, 10);
    assert_eq!(first.entries.len(), 10);
    assert_eq!(first.page_count(), 3);
    assert_eq!(first.entries[0].message, "entry 29", "newest first");
    assert_eq!(first.entries[0].at_ms, 30_000);
    assert!(
        first.entries.windows(2).all(|w| w[0].at_ms > w[1].at_ms),
        "strictly newest first: {:?}",
        first.entries.iter().map(|e| e.at_ms).collect::<Vec<_>>()
    );

    let second = store.activity_page(None, None, 2, 10).await.unwrap();
    assert_eq!(second.entries.len(), 10);
    assert_eq!(second.entries[0].message, "entry 19");

    let third = store.activity_page(None, None, 3, 10).await.unwrap();
    assert_eq!(third.total, 30);
    assert_eq!(third.entries.len(), 10);
    assert_eq!(third.entries[0].message, "entry 9");
    assert_eq!(third.entries[9].message, "entry 0", "the oldest is last");

    let fourth = store.activity_page(None, None, 4, 10).await.unwrap();
    assert!(fourth.entries.is_empty(), "{:?}", fourth.entries);
    assert_eq!(fourth.total, 30);

    // No entry appears on two pages.
    let mut ids: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p.entries.iter().map(|e| e.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 30);

    // Kind filter: i % 4 == 1 is Auth → i in {1,5,9,13,17,21,25,29} = 8 entries.
    let auth = store
        .activity_page(None, Some(ActivityKind::Auth), 1, 100)
        .await
        .unwrap();
    assert_eq!(auth.total, 8);
    assert_eq!(auth.entries.len(), 8);
    assert!(auth.entries.iter().all(|e| e.kind == ActivityKind::Auth));
    assert_eq!(auth.entries[0].message, "entry 29");
    // Settings: i % 4 == 0 → {0,4,…,28} = 8; System: i % 4 == 3 → {3,…,27} = 7.
    let settings = store
        .activity_page(None, Some(ActivityKind::Settings), 1, 3)
        .await
        .unwrap();
    assert_eq!(settings.total, 8);
    assert_eq!(settings.entries.len(), 3);
    assert!(settings
        .entries
        .iter()
        .all(|e| e.kind == ActivityKind::Settings));
    let system = store
        .activity_page(None, Some(ActivityKind::System), 1, 100)
        .await
        .unwrap();
    assert_eq!(system.total, 7);
    let errors = store
        .activity_page(None, Some(ActivityKind::Error), 1, 100)
        .await
        .unwrap();
    assert_eq!(errors.total, 7);
}

#[tokio::test]
async fn prune_and_clear_activity() {
    let (_dir, store) = fresh_store().await;
    for i in 0..30i64 {
        store
            .add_activity(
                1_000 * (i + 1),
                None,
                ActivityKind::ALL[(i as usize) % 4],
                &format!("entry {i}"),
            )
            .await
            .unwrap();
    }
    // Strictly older than 10_500: at_ms 1000..=10000 → 10 entries.
    let removed = store.prune_activity(10_500).await.unwrap();
    assert_eq!(removed, 10);
    let page = store.activity_page(None, None, 1, 100).await.unwrap();
    assert_eq!(page.total, 20);
    assert!(page.entries.iter().all(|e| e.at_ms >= 10_500));
    assert_eq!(page.entries.last().unwrap().at_ms, 11_000);

    // The cutoff is exclusive: an entry exactly at the cutoff stays.
    let removed = store.prune_activity(11_000).await.unwrap();
    assert_eq!(removed, 0);
    let removed = store.prune_activity(11_001).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        store.activity_page(None, None, 1, 1).await.unwrap().total,
        19
    );

    let cleared = store.clear_activity().await.unwrap();
    assert_eq!(cleared, 19);
    let page = store.activity_page(None, None, 1, 10).await.unwrap();
    assert_eq!(page.total, 0);
    assert!(page.entries.is_empty());
    assert_eq!(store.clear_activity().await.unwrap(), 0);
}

#[tokio::test]
async fn sessions_expire_and_are_pruned() {
    let (_dir, store) = fresh_store().await;
    let now = 1_000_000;
    store
        .create_session("hash-a", 1, now, now + 500)
        .await
        .unwrap();
    store
        .create_session("hash-b", 1, now, now + 5_000)
        .await
        .unwrap();

    let live = store.live_session("hash-a", now + 100).await.unwrap();
    assert_eq!(
        live,
        Some(SessionRow {
            created_ms: now,
            expires_ms: now + 500,
            last_seen_ms: now
        })
    );
    assert_eq!(
        store
            .live_session("hash-a", now + 499)
            .await
            .unwrap()
            .map(|s| s.expires_ms),
        Some(now + 500)
    );
    assert_eq!(
        store.live_session("hash-a", now + 500).await.unwrap(),
        None,
        "expired at expires_ms"
    );
    assert_eq!(
        store.live_session("hash-a", now + 10_000).await.unwrap(),
        None
    );
    assert_eq!(store.live_session("unknown", now).await.unwrap(), None);

    // Touching slides the expiry and records last_seen.
    store
        .touch_session("hash-b", now + 1_000, now + 9_000)
        .await
        .unwrap();
    let b = store
        .live_session("hash-b", now + 6_000)
        .await
        .unwrap()
        .expect("slid expiry");
    assert_eq!(b.last_seen_ms, now + 1_000);
    assert_eq!(b.expires_ms, now + 9_000);
    assert_eq!(b.created_ms, now);

    // Prune at now+600: only hash-a has expired.
    assert_eq!(store.prune_sessions(now + 600).await.unwrap(), 1);
    // Even with a `now` before its expiry, a pruned session is gone.
    assert_eq!(store.live_session("hash-a", now).await.unwrap(), None);
    assert!(store
        .live_session("hash-b", now + 600)
        .await
        .unwrap()
        .is_some());

    store.delete_session("hash-b").await.unwrap();
    assert_eq!(store.live_session("hash-b", now + 600).await.unwrap(), None);
    // Deleting twice is harmless.
    store.delete_session("hash-b").await.unwrap();
    assert_eq!(store.prune_sessions(i64::MAX).await.unwrap(), 0);
}

#[tokio::test]
async fn api_tokens_list_use_and_revoke() {
    let (_dir, store) = fresh_store().await;
    let first = store
        .create_api_token(1, "laptop", "hash-1", "cd_aaaaaa…", 100)
        .await
        .unwrap();
    let second = store
        .create_api_token(1, "ci", "hash-2", "cd_bbbbbb…", 200)
        .await
        .unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(first.name, "laptop");
    assert_eq!(first.hint, "cd_aaaaaa…");
    assert_eq!(first.created_ms, 100);
    assert_eq!(first.last_used_ms, None);

    let list = store.api_tokens(1).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0], second, "newest first");
    assert_eq!(list[1], first);

    assert_eq!(
        store.use_api_token("hash-1", 555).await.unwrap(),
        Some(first.id)
    );
    assert_eq!(
        store.use_api_token("no-such-hash", 556).await.unwrap(),
        None
    );
    let list = store.api_tokens(1).await.unwrap();
    let used = list.iter().find(|t| t.id == first.id).unwrap();
    assert_eq!(used.last_used_ms, Some(555));
    let unused = list.iter().find(|t| t.id == second.id).unwrap();
    assert_eq!(unused.last_used_ms, None);

    assert_eq!(
        store
            .revoke_api_token(1, first.id, 600)
            .await
            .unwrap()
            .as_deref(),
        Some("laptop")
    );
    assert_eq!(
        store.revoke_api_token(1, first.id, 700).await.unwrap(),
        None,
        "revoked only once"
    );
    assert_eq!(
        store.revoke_api_token(1, 9_999, 700).await.unwrap(),
        None,
        "unknown id"
    );
    assert_eq!(
        store.revoke_api_token(2, second.id, 700).await.unwrap(),
        None,
        "another user's token is not theirs to revoke"
    );
    assert!(
        store.api_tokens(2).await.unwrap().is_empty(),
        "lists are per user"
    );
    assert_eq!(
        store.use_api_token("hash-1", 800).await.unwrap(),
        None,
        "revoked no longer validates"
    );

    let list = store.api_tokens(1).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, second.id);
    assert_eq!(
        store.use_api_token("hash-2", 900).await.unwrap(),
        Some(second.id)
    );
}

#[tokio::test]
async fn api_token_hashes_are_unique() {
    let (_dir, store) = fresh_store().await;
    store
        .create_api_token(1, "one", "same-hash", "cd_x…", 1)
        .await
        .unwrap();
    assert!(
        store
            .create_api_token(1, "two", "same-hash", "cd_x…", 2)
            .await
            .is_err(),
        "a token hash may only be stored once"
    );
    assert_eq!(store.api_tokens(1).await.unwrap().len(), 1);
}

/// Failures reported at once, from many tasks, while another connection keeps writing (a busy
/// pod): every one is recorded. A deferred transaction that reads the failure first and writes
/// it after fails with "database is locked" when a write lands in between; Recovery lost the
/// failure that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_reported_at_once_beside_other_writers_are_all_recorded() {
    use engine::model::FailureSource;
    use engine::recovery::store::{RecoveryStore, Report};
    let (dir, store) = fresh_store().await;
    let recovery = std::sync::Arc::new(RecoveryStore::of(&store));
    // Another pool on the same file, as a second process would be.
    let other = Store::open(&dir.path().join("test.db")).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                other
                    .write_settings(&[("counter", Some(n.to_string()))], n as i64)
                    .await
                    .unwrap();
            }
            n
        })
    };
    let reports: Vec<_> = (0..60)
        .map(|i| {
            let recovery = std::sync::Arc::clone(&recovery);
            tokio::spawn(async move {
                let report = Report {
                    source: FailureSource::Job,
                    key: i.to_string(),
                    target: i.to_string(),
                    subject: format!("run {i}"),
                    detail: "ComfyUI is not reachable".into(),
                    user_id: None,
                };
                // Reported twice, as a repeated event would be: still one failure.
                recovery.report(&report, 1_000).await?;
                recovery.report(&report, 2_000_000).await
            })
        })
        .collect();
    let mut refused = Vec::new();
    for report in reports {
        if let Err(e) = report.await.unwrap() {
            refused.push(e.to_string());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0, "the other writer wrote");
    assert!(refused.is_empty(), "reports refused: {refused:?}");
    let open = recovery.open(None).await.unwrap();
    assert_eq!(open.len(), 60);
    assert!(open.iter().all(|f| f.view.count == 2), "{open:?}");
}
