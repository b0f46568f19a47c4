//! How the pages call the server functions: reads through [`RefreshGate`], writes through
//! [`Write`], and the one place that notices a lost session ([`error_message`]) and sends the
//! browser to the login page.

use std::future::Future;

use leptos::prelude::*;

use crate::api::ApiError;
use crate::browser::go_to_login;
use crate::components::ErrorNote;

/// The sentence to show for a failed call. A lost session also sends the browser to the login
/// page (the sentence stays on screen until that page has loaded).
pub fn error_message(error: ApiError) -> String {
    if error.login_required {
        go_to_login();
    }
    error.message
}

/// Shows an API error; a lost session sends the visitor to the login page.
pub fn api_error_view(error: ApiError) -> AnyView {
    view! { <ErrorNote message=error_message(error)/> }.into_any()
}

/// What a [`Write`] may fail with: the server's answer, or a reason found in the browser
/// before anything was sent (a file that cannot be read).
pub trait Failure {
    fn into_message(self) -> String;
}

impl Failure for ApiError {
    fn into_message(self) -> String {
        error_message(self)
    }
}

impl Failure for String {
    fn into_message(self) -> String {
        self
    }
}

/// One kind of write a page starts from a button or a form: busy while the server answers
/// (the page disables the control), and the sentence of the last failure until the next try;
/// a lost session goes to the login page. The write counterpart of [`RefreshGate`].
#[derive(Clone, Copy)]
pub struct Write {
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
}

impl Write {
    pub fn new() -> Self {
        Self {
            busy: RwSignal::new(false),
            error: RwSignal::new(None),
        }
    }

    /// Whether a call is under way (tracked).
    pub fn busy(self) -> bool {
        self.busy.get()
    }

    /// Why the last call failed (tracked).
    pub fn error(self) -> Option<String> {
        self.error.get()
    }

    /// Shows a sentence of the page's own (input refused before any call), or clears it.
    pub fn set_error(self, message: Option<String>) {
        self.error.set(message);
    }

    /// Starts `call` now: busy until it answers, the previous error cleared. A success goes to
    /// `on_ok`; a failure is kept as the error. The answer of a page that is gone meanwhile is
    /// dropped.
    pub fn run<T, E, Fut, F>(self, call: Fut, on_ok: F)
    where
        Fut: Future<Output = Result<T, E>> + 'static,
        E: Failure,
        T: 'static,
        F: FnOnce(T) + 'static,
    {
        self.busy.set(true);
        self.error.set(None);
        leptos::task::spawn_local(async move {
            match call.await {
                Ok(value) => on_ok(value),
                Err(e) => {
                    self.error.try_set(Some(e.into_message()));
                }
            }
            self.busy.try_set(false);
        });
    }
}

impl Default for Write {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a page's refresh one at a time: a refresh asked for while one is under way is folded
/// into a single further run after it, so bursts of live events cost at most two fetches.
#[derive(Clone, Copy)]
pub struct RefreshGate {
    running: StoredValue<bool>,
    again: StoredValue<bool>,
    /// Why the last refresh failed; cleared by the next one that works.
    error: RwSignal<Option<String>>,
}

impl RefreshGate {
    pub fn new() -> Self {
        Self {
            running: StoredValue::new(false),
            again: StoredValue::new(false),
            error: RwSignal::new(None),
        }
    }

    /// Why the last refresh failed (tracked).
    pub fn error(self) -> Option<String> {
        self.error.get()
    }

    /// Refreshes through the gate: `fetch`'s answer goes to `apply`; a failure is kept as
    /// "Could not refresh {what}: …", and a lost session goes to the login page.
    pub fn reload<T, F, Fut, A>(self, what: &'static str, fetch: F, apply: A)
    where
        F: Fn() -> Fut + Copy + 'static,
        Fut: std::future::Future<Output = Result<T, ApiError>> + 'static,
        A: Fn(T) + Copy + 'static,
    {
        let error = self.error;
        self.run(move || async move {
            let result = fetch().await;
            // The page is gone: nothing to show the answer in.
            if error.is_disposed() {
                return false;
            }
            match result {
                Ok(value) => {
                    apply(value);
                    error.set(None);
                }
                Err(e) => {
                    error.set(Some(format!(
                        "Could not refresh {what}: {}",
                        error_message(e)
                    )));
                }
            }
            true
        });
    }

    /// Starts `fetch` unless one is running (then it runs once more after it). `fetch` returns
    /// `false` when the page is gone, which ends the loop.
    fn run<F, Fut>(self, fetch: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: std::future::Future<Output = bool> + 'static,
    {
        match self.running.try_get_value() {
            Some(false) => {}
            Some(true) => {
                self.again.try_set_value(true);
                return;
            }
            None => return,
        }
        self.running.set_value(true);
        leptos::task::spawn_local(async move {
            loop {
                self.again.try_set_value(false);
                if !fetch().await {
                    return;
                }
                if !self.again.try_get_value().unwrap_or(false) {
                    break;
                }
            }
            self.running.try_set_value(false);
        });
    }
}

impl Default for RefreshGate {
    fn default() -> Self {
        Self::new()
    }
}
