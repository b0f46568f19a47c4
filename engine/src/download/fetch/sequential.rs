//! One connection into `<dest>.part`: resume with `Range` + `If-Range`, hash while writing.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::mem;
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::Response;
use tokio::task::JoinHandle;

use super::disk::{self, Digests, Hashes};
use super::{http, if_range_value, AttemptError, Failure, FetchError, Transfer, PROGRESS_STEP};

/// How one response's body ended.
enum StreamEnd {
    /// The server closed the body normally; `len` bytes are in the part.
    Complete { len: u64 },
    /// Reset, drop, stall: resume from `len`.
    Broken { failure: Failure, len: u64 },
}

impl Transfer<'_> {
    /// Downloads into the part over one connection until it holds the whole file.
    pub(super) async fn sequential(&mut self) -> Result<Digests, FetchError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.ctx.part)
            .map_err(|e| self.ctx.write_error(e))?;
        let file = Arc::new(file);
        loop {
            self.check_stop()?;
            let mut offset = file.metadata().map_err(|e| self.ctx.io_error(e))?.len();
            match &self.hashes {
                Some(h) if h.len == offset => {}
                // A write failed half-way: drop the bytes the hash did not see.
                Some(h) if h.len < offset => {
                    file.set_len(h.len).map_err(|e| self.ctx.io_error(e))?;
                    offset = h.len;
                }
                Some(_) => self.hashes = None,
                None => {}
            }
            if offset > 0 && self.hashes.is_none() && !self.may_resume(&file, offset) {
                tracing::info!(file = %self.ctx.label, "an existing part cannot be tied to this file; starting over");
                self.restart_part(&file)?;
                offset = 0;
            }
            if offset == 0 && self.hashes.is_none() {
                self.hashes = Some(Hashes::new(self.ctx.want_md5));
            }

            let if_range = match (offset, &self.part_validator) {
                (1.., Some(v)) => if_range_value(v).map(str::to_owned),
                _ => None,
            };
            let range = (offset > 0).then(|| format!("bytes={offset}-"));
            let sent = match self
                .ctx
                .send_get(range, if_range.as_deref(), self.stop)
                .await
            {
                Ok(sent) => sent,
                Err(AttemptError::Retry(f)) => {
                    self.ctx
                        .wait_retry(&mut self.failures, f, self.stop)
                        .await?;
                    continue;
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
            };
            let status = sent.response.status().as_u16();
            let headers = sent.response.headers();

            if status == 416 {
                let total = http::unsatisfied_total(headers).or(self.remote.total_bytes);
                drop(sent);
                if offset > 0 && total == Some(offset) {
                    tracing::info!(file = %self.ctx.label, "the part is already complete");
                    self.remote.total_bytes = Some(offset);
                    self.report_resolved();
                    return self.complete(&file, offset).await;
                }
                if offset == 0 {
                    return Err(FetchError::Http {
                        url: http::redact(&self.ctx.original),
                        status,
                    });
                }
                tracing::info!(file = %self.ctx.label, offset, ?total, "range not satisfiable; starting over");
                self.restart_part(&file)?;
                continue;
            }

            let (start, body_end, total) = if status == 206 {
                match http::content_range(headers) {
                    Some((a, b, t)) => (a, Some(b + 1), t.or(self.remote.total_bytes)),
                    None => {
                        drop(sent);
                        let f = Failure::new("a partial answer without Content-Range");
                        self.ctx
                            .wait_retry(&mut self.failures, f, self.stop)
                            .await?;
                        continue;
                    }
                }
            } else {
                let len = http::content_length(headers);
                (0, len, len.or(self.remote.total_bytes))
            };
            if status == 206 && start != offset {
                drop(sent);
                let f = Failure::new(format!("the server sent bytes from {start}, not {offset}"));
                self.ctx
                    .wait_retry(&mut self.failures, f, self.stop)
                    .await?;
                continue;
            }
            if status == 206 && offset > 0 && self.changed_since_part(headers, total) {
                tracing::info!(file = %self.ctx.label, "the file changed on the server; starting over");
                drop(sent);
                self.restart_part(&file)?;
                continue;
            }
            if status != 206 && offset > 0 {
                tracing::info!(file = %self.ctx.label, offset, "the server sent the whole file (changed, or no ranges); starting over");
                self.restart_part(&file)?;
                offset = 0;
            }
            let total_for_absorb = if status == 206 { total } else { body_end };
            self.absorb(&sent, total_for_absorb);
            self.part_validator = Some(self.remote.clone());
            if self.hashes.as_ref().map(|h| h.len) != Some(offset) {
                let hashes = self
                    .hashes
                    .take()
                    .unwrap_or_else(|| Hashes::new(self.ctx.want_md5));
                let hashes = if hashes.len > offset {
                    Hashes::new(self.ctx.want_md5)
                } else {
                    hashes
                };
                self.hashes = Some(self.rehash(&file, hashes, offset).await?);
            }

            let progress_total = self.ctx.progress_total(self.remote.total_bytes);
            let failure = match self
                .stream(&file, sent.response, offset, progress_total)
                .await?
            {
                StreamEnd::Complete { len } => {
                    let expected = body_end.or(self.remote.total_bytes);
                    match expected {
                        Some(expected) if len < expected => {
                            if len > self.high_water {
                                self.failures = 0;
                            }
                            self.high_water = self.high_water.max(len);
                            Failure::new(format!(
                                "the connection ended early ({len} of {expected} bytes)"
                            ))
                        }
                        _ => return self.complete(&file, len).await,
                    }
                }
                StreamEnd::Broken { failure, len } => {
                    if len > self.high_water {
                        self.failures = 0;
                    }
                    self.high_water = self.high_water.max(len);
                    failure
                }
            };
            self.ctx
                .wait_retry(&mut self.failures, failure, self.stop)
                .await?;
        }
    }

    /// An existing part (from an earlier run) may be continued only when something will catch
    /// a part from another version of the file: a validator for `If-Range`, or a checksum. A
    /// part of exactly the server's size (a file adopted by the manager) is only checked
    /// (416, then verified), which without a checksum is the size check a fresh download gets.
    fn may_resume(&self, file: &File, len: u64) -> bool {
        if disk::has_holes(file, len) {
            return false;
        }
        if self.remote.total_bytes.is_some_and(|t| len > t) {
            return false;
        }
        let validated = self
            .part_validator
            .as_ref()
            .is_some_and(|v| v.etag.is_some() || v.last_modified.is_some());
        validated || self.checksum_known() || self.remote.total_bytes == Some(len)
    }

    /// A 206 for a different file than the part's: a server that ignored `If-Range`.
    fn changed_since_part(&self, headers: &HeaderMap, total: Option<u64>) -> bool {
        let Some(v) = &self.part_validator else {
            return false;
        };
        if let (Some(old), Some(new)) = (&v.etag, http::header_str(headers, "etag")) {
            if !http::etags_match(old, new) {
                return true;
            }
        }
        matches!((v.total_bytes, total), (Some(old), Some(new)) if old != new)
    }

    fn restart_part(&mut self, file: &File) -> Result<(), FetchError> {
        file.set_len(0).map_err(|e| self.ctx.io_error(e))?;
        self.hashes = Some(Hashes::new(self.ctx.want_md5));
        self.part_validator = None;
        Ok(())
    }

    /// The part holds `len` bytes and they are the file: fsync and finish the hashes.
    async fn complete(&mut self, file: &Arc<File>, len: u64) -> Result<Digests, FetchError> {
        let hashes = match self.hashes.take() {
            Some(h) if h.len <= len => h,
            _ => Hashes::new(self.ctx.want_md5),
        };
        let hashes = self.rehash(file, hashes, len).await?;
        let f = file.clone();
        tokio::task::spawn_blocking(move || f.sync_all())
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| self.ctx.write_error(e))?;
        self.ctx.observer.progress(len, Some(len));
        Ok(hashes.finish())
    }

    /// Streams one response body into the part until it ends, breaks, stalls or is stopped.
    async fn stream(
        &mut self,
        file: &Arc<File>,
        response: Response,
        offset: u64,
        total: Option<u64>,
    ) -> Result<StreamEnd, FetchError> {
        let tuning = &self.ctx.inner.tuning;
        let hashes = self
            .hashes
            .take()
            .unwrap_or_else(|| Hashes::new(self.ctx.want_md5));
        let mut sink = Sink::new(file.clone(), hashes, tuning.write_buffer.max(64 << 10));
        let mut body = response.bytes_stream();
        let stall = tuning.stall_timeout;
        let mut reported = offset;
        let ended: Result<Option<Failure>, FetchError> = loop {
            let next = tokio::select! {
                biased;
                _ = self.stop.cancelled() => break Err(FetchError::Stopped),
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
                    if let Err(e) = sink.push(chunk).await {
                        break Err(self.ctx.write_error(e));
                    }
                    if sink.received - reported >= PROGRESS_STEP {
                        reported = sink.received;
                        self.ctx.observer.progress(reported, total);
                    }
                }
            }
        };
        drop(body);
        let (hashes, flushed) = sink.finish().await;
        let len = hashes.len;
        self.hashes = Some(hashes);
        self.ctx.observer.progress(len, total);
        let ended = ended?;
        flushed.map_err(|e| self.ctx.write_error(e))?;
        Ok(match ended {
            None => StreamEnd::Complete { len },
            Some(failure) => StreamEnd::Broken { failure, len },
        })
    }
}

/// One batch of body chunks on its way to disk: written and hashed at the same time on two
/// blocking threads.
struct InFlight {
    write: JoinHandle<io::Result<()>>,
    hash: JoinHandle<Hashes>,
    /// The hashes before this batch, restored if the write fails, so that the hashes never
    /// cover bytes that are not in the file.
    before: Hashes,
}

/// Gathers body chunks (as the HTTP client handed them over, not copied) until they reach
/// `cap` bytes; a full batch is written with one `writev` and hashed, in parallel, on blocking
/// threads while the next one fills, so the network never waits long on the disk or the hash.
struct Sink<C> {
    file: Arc<File>,
    /// `None` while a batch is in flight.
    hashes: Option<Hashes>,
    in_flight: Option<InFlight>,
    batch: Vec<C>,
    batch_len: usize,
    cap: usize,
    /// Position after the last byte handed to the sink.
    received: u64,
}

impl<C: AsRef<[u8]> + Send + Sync + 'static> Sink<C> {
    fn new(file: Arc<File>, hashes: Hashes, cap: usize) -> Sink<C> {
        Sink {
            file,
            received: hashes.len,
            hashes: Some(hashes),
            in_flight: None,
            batch: Vec::new(),
            batch_len: 0,
            cap,
        }
    }

    async fn push(&mut self, chunk: C) -> io::Result<()> {
        let n = chunk.as_ref().len();
        if n == 0 {
            return Ok(());
        }
        self.batch.push(chunk);
        self.batch_len += n;
        self.received += n as u64;
        if self.batch_len >= self.cap {
            self.submit().await?;
        }
        Ok(())
    }

    /// Waits for the previous batch, then starts writing and hashing the current one.
    async fn submit(&mut self) -> io::Result<()> {
        self.wait().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(mut hashes) = self.hashes.take() else {
            return Err(io::Error::other("the part writer was lost"));
        };
        let before = hashes.clone();
        let batch = Arc::new(mem::take(&mut self.batch));
        let (start, len) = (before.len, mem::take(&mut self.batch_len) as u64);
        let write = {
            let (file, batch) = (self.file.clone(), batch.clone());
            tokio::task::spawn_blocking(move || {
                write_all_vectored(&file, &batch)?;
                disk::start_writeback(&file, start, len);
                Ok(())
            })
        };
        let hash = tokio::task::spawn_blocking(move || {
            for chunk in batch.iter() {
                hashes.update(chunk.as_ref());
            }
            hashes
        });
        self.in_flight = Some(InFlight {
            write,
            hash,
            before,
        });
        Ok(())
    }

    async fn wait(&mut self) -> io::Result<()> {
        let Some(f) = self.in_flight.take() else {
            return Ok(());
        };
        let written = f.write.await.map_err(io::Error::other).and_then(|r| r);
        let hashed = f.hash.await;
        match (written, hashed) {
            (Ok(()), Ok(hashes)) => {
                self.hashes = Some(hashes);
                Ok(())
            }
            // A partial write leaves bytes past `before.len`; the next attempt truncates them.
            (Err(e), _) => {
                self.hashes = Some(f.before);
                Err(e)
            }
            (Ok(()), Err(e)) => {
                self.hashes = Some(f.before);
                Err(io::Error::other(e))
            }
        }
    }

    /// Writes what is left; the hashes cover exactly the bytes that reached the file.
    async fn finish(mut self) -> (Hashes, io::Result<()>) {
        let submitted = self.submit().await;
        let waited = self.wait().await;
        // Without hashes (a writer thread panicked) the next attempt truncates to zero.
        let hashes = self.hashes.take().unwrap_or_else(|| Hashes::new(false));
        (hashes, submitted.and(waited))
    }
}

/// Appends every chunk to `file`, as few `writev` calls as the kernel allows. Blocking.
fn write_all_vectored<C: AsRef<[u8]>>(mut file: &File, chunks: &[C]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c.as_ref())).collect();
    let mut left: &mut [IoSlice<'_>] = &mut slices;
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
