//! Several connections into one preallocated part.
//!
//! The part is created with its final length; each connection fills a segment with positional
//! writes. The segments' progress goes to a sidecar (`<part>.segments`, JSON, written
//! atomically after an fsync of the part) at most every `sidecar_interval` and on stop, so a
//! restart resumes every segment. The sidecar is written before the part is preallocated: a
//! preallocated part without one is never trusted. A connection that runs out of work takes
//! over half of the largest remaining segment. A hasher follows the contiguous prefix, reading
//! newly completed bytes back from the part (the page cache), so little is left to hash at
//! the end.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use futures_util::StreamExt;
use reqwest::Response;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::disk::{self, Digests, Hashes, Sidecar, SIDECAR_VERSION};
use super::{
    http, if_range_value, AttemptError, Ctx, Failure, FetchError, RemoteValidator, HASH_BLOCK,
};

pub(super) enum SegError {
    Fetch(FetchError),
    /// The remote file changed (or stopped serving ranges): start the whole file over.
    Restart(String),
}

impl From<FetchError> for SegError {
    fn from(e: FetchError) -> Self {
        SegError::Fetch(e)
    }
}

struct Seg {
    start: u64,
    end: u64,
    /// Bytes from `start` that are written.
    done: u64,
    /// A connection works on it.
    active: bool,
}

impl Seg {
    fn pos(&self) -> u64 {
        self.start + self.done
    }

    fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.pos())
    }
}

struct Shared<'c, 'a> {
    ctx: &'c Ctx<'a>,
    file: Arc<File>,
    total: u64,
    /// Never shrinks: ids are indices. Split segments are pushed at the end.
    segs: Mutex<Vec<Seg>>,
    written: AtomicU64,
    /// The contiguous prefix on disk, for the hasher.
    prefix: watch::Sender<u64>,
    remote: RemoteValidator,
    if_range: Option<String>,
    /// Fires on stop, or when one connection fails for good.
    abort: CancellationToken,
}

/// Downloads the missing parts of `0..total` (all of it without `resume`) and returns the
/// digests of the complete, fsynced part. The caller removes the sidecar after the rename.
pub(super) async fn run(
    ctx: &Ctx<'_>,
    total: u64,
    resume: Option<Sidecar>,
    remote: &RemoteValidator,
    stop: &CancellationToken,
) -> Result<Digests, SegError> {
    let tuning = &ctx.inner.tuning;
    let connections = ctx.req.connections.max(1);
    let (file, segs) = match resume {
        Some(sidecar) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&ctx.part)
                .map_err(|e| ctx.io_error(e))?;
            let segs = sidecar
                .segments
                .iter()
                .map(|&[start, end, done]| Seg {
                    start,
                    end,
                    done,
                    active: false,
                })
                .collect::<Vec<_>>();
            tracing::info!(file = %ctx.label, segments = segs.len(), "resuming a segmented download");
            (file, segs)
        }
        None => {
            let n = (connections as u64).min(total).max(1);
            let size = total.div_ceil(n);
            let segs = (0..n)
                .map(|i| Seg {
                    start: i * size,
                    end: ((i + 1) * size).min(total),
                    done: 0,
                    active: false,
                })
                .filter(|s| s.end > s.start)
                .collect::<Vec<_>>();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&ctx.part)
                .map_err(|e| ctx.write_error(e))?;
            // The sidecar first: a preallocated part must never exist without one.
            let sidecar = snapshot(&segs, total, remote);
            let path = ctx.sidecar.clone();
            blocking(move || disk::write_sidecar(&path, &sidecar))
                .await
                .map_err(|e| ctx.write_error(e))?;
            file.set_len(total).map_err(|e| ctx.write_error(e))?;
            (file, segs)
        }
    };
    let written: u64 = segs.iter().map(|s| s.done).sum();
    let (prefix, _) = watch::channel(prefix_of(&segs));
    let shared = Shared {
        ctx,
        file: Arc::new(file),
        total,
        segs: Mutex::new(segs),
        written: AtomicU64::new(written),
        prefix,
        remote: remote.clone(),
        if_range: if_range_value(remote).map(str::to_owned),
        abort: stop.child_token(),
    };
    ctx.observer.progress(written, Some(total));

    let done = CancellationToken::new();
    let workers = async {
        let results = join_all((0..connections).map(|_| shared.worker())).await;
        done.cancel();
        results
    };
    let (results, hashes, ()) = tokio::join!(
        workers,
        shared.hasher(&done),
        shared.persister(&done, tuning.sidecar_interval)
    );

    let complete = shared.segs().iter().all(|s| s.remaining() == 0);
    if complete {
        let file = shared.file.clone();
        blocking(move || file.sync_all())
            .await
            .map_err(|e| ctx.write_error(e))?;
        let hashes = match hashes {
            Some(h) if h.len == total => h,
            _ => shared.rehash_all(stop).await?,
        };
        ctx.observer.progress(total, Some(total));
        return Ok(hashes.finish());
    }
    if let Err(e) = shared.persist().await {
        tracing::warn!(file = %ctx.label, error = %e, "could not save the segment sidecar");
    }
    let mut error = SegError::Fetch(FetchError::Stopped);
    for result in results {
        match result {
            Err(SegError::Fetch(FetchError::Stopped)) | Ok(()) => {}
            Err(e) => {
                error = e;
                break;
            }
        }
    }
    Err(error)
}

impl Shared<'_, '_> {
    fn segs(&self) -> std::sync::MutexGuard<'_, Vec<Seg>> {
        self.segs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One connection: claims segments (or halves of others') until none is left.
    async fn worker(&self) -> Result<(), SegError> {
        let mut failures = 0u32;
        let mut buf = Vec::with_capacity(self.ctx.inner.tuning.segment_buffer);
        loop {
            if self.abort.is_cancelled() {
                return Err(FetchError::Stopped.into());
            }
            let Some(id) = self.claim() else {
                return Ok(());
            };
            let result = self.segment(id, &mut failures, &mut buf).await;
            self.segs()[id].active = false;
            if let Err(e) = result {
                if !matches!(e, SegError::Fetch(FetchError::Stopped)) {
                    self.abort.cancel();
                }
                return Err(e);
            }
        }
    }

    /// An idle unfinished segment, or the upper half of the largest active one.
    fn claim(&self) -> Option<usize> {
        let min_split = self.ctx.inner.tuning.min_split.max(1);
        let mut segs = self.segs();
        if let Some(id) = segs.iter().position(|s| !s.active && s.remaining() > 0) {
            segs[id].active = true;
            return Some(id);
        }
        let (id, left) = segs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active)
            .map(|(i, s)| (i, s.remaining()))
            .max_by_key(|&(_, left)| left)?;
        if left < 2 * min_split {
            return None;
        }
        let cut = segs[id].pos() + left / 2;
        let end = segs[id].end;
        segs[id].end = cut;
        segs.push(Seg {
            start: cut,
            end,
            done: 0,
            active: true,
        });
        Some(segs.len() - 1)
    }

    /// `(next byte to fetch, end)` of a segment; the end moves down when it is split.
    fn cursor(&self, id: usize) -> (u64, u64) {
        let segs = self.segs();
        (segs[id].pos(), segs[id].end)
    }

    /// Fills one segment, retrying (with `Range` from what is written) until it is complete.
    async fn segment(
        &self,
        id: usize,
        failures: &mut u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), SegError> {
        let ctx = self.ctx;
        loop {
            if self.abort.is_cancelled() {
                return Err(FetchError::Stopped.into());
            }
            let (pos, end) = self.cursor(id);
            if pos >= end {
                return Ok(());
            }
            let range = format!("bytes={pos}-{}", end - 1);
            let sent = match ctx
                .send_get(Some(range), self.if_range.as_deref(), &self.abort)
                .await
            {
                Ok(sent) => sent,
                Err(AttemptError::Retry(f)) => {
                    ctx.wait_retry(failures, f, &self.abort).await?;
                    continue;
                }
                Err(AttemptError::Fatal(e)) => return Err(e.into()),
            };
            let headers = sent.response.headers();
            match sent.response.status().as_u16() {
                206 => {}
                416 => return Err(SegError::Restart("the server refused a range".into())),
                _ => {
                    return Err(SegError::Restart(
                        "the server sent the whole file instead of a range (it changed?)".into(),
                    ))
                }
            }
            let etag_changed = matches!(
                (&self.remote.etag, http::header_str(headers, "etag")),
                (Some(old), Some(new)) if !http::etags_match(old, new)
            );
            let range = http::content_range(headers);
            if etag_changed || range.is_some_and(|(_, _, t)| t.is_some_and(|t| t != self.total)) {
                return Err(SegError::Restart("the file changed on the server".into()));
            }
            if range.map(|(start, _, _)| start) != Some(pos) {
                drop(sent);
                let f = Failure::new(format!("the server did not send the range from {pos}"));
                ctx.wait_retry(failures, f, &self.abort).await?;
                continue;
            }
            let (failure, progressed) = self.stream(id, sent.response, pos, buf).await?;
            if progressed {
                *failures = 0;
            }
            let failure = match failure {
                Some(f) => f,
                None => {
                    let (pos, end) = self.cursor(id);
                    if pos >= end {
                        return Ok(());
                    }
                    Failure::new(format!("the connection ended early at byte {pos} of {end}"))
                }
            };
            ctx.wait_retry(failures, failure, &self.abort).await?;
        }
    }

    /// Copies one response into the segment. `Ok((None, _))`: the body ended or the segment
    /// is full; `Ok((Some(failure), _))`: broken or stalled; the flag says bytes were written.
    async fn stream(
        &self,
        id: usize,
        response: Response,
        mut pos: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(Option<Failure>, bool), SegError> {
        let tuning = &self.ctx.inner.tuning;
        let cap = tuning.segment_buffer.max(16 << 10);
        let stall = tuning.stall_timeout;
        let mut body = response.bytes_stream();
        let mut progressed = false;
        buf.clear();
        let ended: Result<Option<Failure>, FetchError> = loop {
            let next = tokio::select! {
                biased;
                _ = self.abort.cancelled() => break Err(FetchError::Stopped),
                next = tokio::time::timeout(stall, body.next()) => next,
            };
            match next {
                Err(_) => {
                    break Ok(Some(Failure::new(format!(
                        "no data for {:.1} s; reconnecting",
                        stall.as_secs_f32()
                    ))))
                }
                Ok(None) => break Ok(None),
                Ok(Some(Err(e))) => break Ok(Some(Failure::new(http::describe(e)))),
                Ok(Some(Ok(chunk))) => {
                    let end = self.cursor(id).1;
                    let room = end.saturating_sub(pos + buf.len() as u64);
                    let take = (chunk.len() as u64).min(room) as usize;
                    buf.extend_from_slice(&chunk[..take]);
                    if buf.len() >= cap || pos + buf.len() as u64 >= end {
                        pos = self.write(id, pos, buf).await?;
                        progressed = true;
                        if pos >= self.cursor(id).1 {
                            break Ok(None);
                        }
                    }
                }
            }
        };
        drop(body);
        if !buf.is_empty() {
            self.write(id, pos, buf).await?;
            progressed = true;
        }
        Ok((ended?, progressed))
    }

    /// Writes `buf` at `pos`, then counts it as done (clamped to the segment, which may have
    /// been split meanwhile) and moves the prefix on. Returns the position after it.
    async fn write(&self, id: usize, pos: u64, buf: &mut Vec<u8>) -> Result<u64, SegError> {
        let data = mem::take(buf);
        let file = self.file.clone();
        let (mut data, result) = tokio::task::spawn_blocking(move || {
            let r = file.write_all_at(&data, pos);
            if r.is_ok() {
                disk::start_writeback(&file, pos, data.len() as u64);
            }
            (data, r)
        })
        .await
        .map_err(|e| self.ctx.io_error(io::Error::other(e)))?;
        let n = data.len() as u64;
        data.clear();
        *buf = data;
        result.map_err(|e| self.ctx.write_error(e))?;
        let (written, prefix) = {
            let mut segs = self.segs();
            let seg = &mut segs[id];
            let done = (pos + n).min(seg.end).saturating_sub(seg.start);
            let delta = done.saturating_sub(seg.done);
            seg.done = seg.done.max(done);
            let written = self.written.fetch_add(delta, Ordering::Relaxed) + delta;
            (written, prefix_of(&segs))
        };
        self.prefix.send_if_modified(|p| {
            let moved = *p != prefix;
            *p = prefix;
            moved
        });
        self.ctx.observer.progress(written, Some(self.total));
        Ok(pos + n)
    }

    /// Hashes the contiguous prefix as it grows. `None` when it stops short (stop, failure).
    async fn hasher(&self, done: &CancellationToken) -> Option<Hashes> {
        let mut rx = self.prefix.subscribe();
        let mut hashes = Hashes::new(self.ctx.want_md5);
        let mut buf = Vec::new();
        loop {
            let target = *rx.borrow_and_update();
            while hashes.len < target {
                if done.is_cancelled() && *rx.borrow() < self.total {
                    return None;
                }
                let file = self.file.clone();
                let (h, b, r) = tokio::task::spawn_blocking(move || {
                    let r = disk::hash_block(&file, &mut hashes, target, &mut buf, HASH_BLOCK);
                    (hashes, buf, r)
                })
                .await
                .ok()?;
                if let Err(e) = r {
                    tracing::warn!(file = %self.ctx.label, error = %e, "could not read the part back for hashing");
                    return None;
                }
                hashes = h;
                buf = b;
            }
            if hashes.len >= self.total {
                return Some(hashes);
            }
            if done.is_cancelled() {
                if *rx.borrow() > hashes.len {
                    continue;
                }
                return None;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = done.cancelled() => {}
            }
        }
    }

    /// Saves the sidecar every `interval` until `done`.
    async fn persister(&self, done: &CancellationToken, interval: std::time::Duration) {
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::sleep(interval) => {
                    if let Err(e) = self.persist().await {
                        tracing::warn!(file = %self.ctx.label, error = %e, "could not save the segment sidecar");
                    }
                }
            }
        }
    }

    /// fsync of the part, then the sidecar (so it never claims bytes that are not durable).
    async fn persist(&self) -> io::Result<()> {
        let sidecar = snapshot(&self.segs(), self.total, &self.remote);
        let file = self.file.clone();
        let path = self.ctx.sidecar.clone();
        blocking(move || {
            file.sync_data()?;
            disk::write_sidecar(&path, &sidecar)
        })
        .await
    }

    /// The whole part hashed again (only if the hasher fell behind or failed).
    async fn rehash_all(&self, stop: &CancellationToken) -> Result<Hashes, SegError> {
        let hashes = Hashes::new(self.ctx.want_md5);
        Ok(self
            .ctx
            .hash_to(&self.file, hashes, self.total, stop)
            .await?)
    }
}

/// The end of the contiguous written prefix from byte 0.
fn prefix_of(segs: &[Seg]) -> u64 {
    let mut order: Vec<&Seg> = segs.iter().collect();
    order.sort_by_key(|s| s.start);
    let mut prefix = 0;
    for s in order {
        if s.start != prefix {
            break;
        }
        prefix = s.pos();
        if s.remaining() > 0 {
            break;
        }
    }
    prefix
}

fn snapshot(segs: &[Seg], total: u64, remote: &RemoteValidator) -> Sidecar {
    let mut segments: Vec<[u64; 3]> = segs.iter().map(|s| [s.start, s.end, s.done]).collect();
    segments.sort_unstable();
    Sidecar {
        version: SIDECAR_VERSION,
        total,
        etag: remote.etag.clone(),
        last_modified: remote.last_modified.clone(),
        linked_sha256: remote.linked_sha256.clone(),
        segments,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: u64, end: u64, done: u64) -> Seg {
        Seg {
            start,
            end,
            done,
            active: false,
        }
    }

    #[test]
    fn prefix_follows_completed_segments_in_order() {
        assert_eq!(prefix_of(&[seg(0, 10, 4), seg(10, 20, 10)]), 4);
        assert_eq!(prefix_of(&[seg(10, 20, 3), seg(0, 10, 10)]), 13);
        assert_eq!(
            prefix_of(&[seg(0, 10, 10), seg(20, 30, 10), seg(10, 20, 10)]),
            30
        );
        assert_eq!(prefix_of(&[seg(0, 10, 0)]), 0);
    }
}
