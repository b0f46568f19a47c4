//! Queue: your jobs (place in line, state, live progress, worker, how long they waited, why
//! they failed), cancel and "run again"; for administrators everyone's jobs with a person
//! filter, priority moves, the workers, their tokens and the queue's figures. Follows the
//! queue live over `/ws`.

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

mod tokens;

use crate::api::jobs::{
    cancel_job, list_jobs, list_worker_tokens, list_workers, read_queue_status, rerun_job,
    set_job_priority,
};
use crate::components::{badge, ErrorNote, ProgressBar, Tone};
use crate::layout::Session;
use crate::live::Live;
use crate::pages::run_panel::{fold, RunPhase};
use crate::server_calls::{api_error_view, Write};

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct QueueRoute;

#[lazy_route]
impl LazyRoute for QueueRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <QueuePage/> }.into_any()
    }
}

#[component]
pub fn QueuePage() -> impl IntoView {
    let session = Session::get();
    // Administrators: one person's jobs, or everyone's.
    let person = RwSignal::new(None::<i64>);
    let reload = RwSignal::new(0u32);
    let jobs = Resource::new(
        move || (person.get(), reload.get()),
        |(user, _)| list_jobs(None, user, None),
    );
    let status = Resource::new(move || reload.get(), |_| read_queue_status());
    let workers = Resource::new(
        move || reload.get(),
        move |_| async move {
            if !session.is_admin().await {
                return None;
            }
            let embedded = read_queue_status()
                .await
                .is_ok_and(|s| s.backend == "sqlite");
            let tokens = list_worker_tokens().await.unwrap_or_default();
            list_workers()
                .await
                .ok()
                .map(|list| (list, embedded, tokens))
        },
    );
    // Every job change (here or on another deck) refreshes the lists.
    let live = Live::get();
    Effect::new(move |previous: Option<()>| {
        if live.job.get().is_some() && previous.is_some() {
            reload.update(|n| *n += 1);
        }
    });
    let action = Write::new();
    let refresh = move || reload.update(|n| *n += 1);

    view! {
        <Title text="Queue · comfydeck"/>
        <div class="mb-4 flex flex-wrap items-center gap-3">
            <h1 class="mr-auto text-xl font-semibold">"Queue"</h1>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let admin = session.is_admin().await;
                    let status = status.await.ok();
                    (admin && status.as_ref().is_some_and(|s| !s.per_user.is_empty())).then(|| {
                        let people = status.map(|s| s.per_user).unwrap_or_default();
                        view! {
                            <label class="flex items-center gap-2 text-sm">
                                <span class="text-muted">"Person"</span>
                                <select
                                    data-testid="queue-person"
                                    class="rounded-lg border border-line bg-surface-2 px-3 py-2 text-fg"
                                    on:change=move |ev| person.set(event_target_value(&ev).parse().ok())
                                >
                                    <option value="">"Everyone"</option>
                                    {people.into_iter().map(|p| view! {
                                        <option value=p.user_id.to_string() selected=move || person.get() == Some(p.user_id)>
                                            {format!("{} ({} waiting, {} running)", p.username, p.pending, p.running)}
                                        </option>
                                    }).collect_view()}
                                </select>
                            </label>
                        }
                    })
                })}
            </Transition>
        </div>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                status.await.ok().map(|s| view! { <Figures status=s/> })
            })}
        </Transition>
        {move || action.error().map(|m| view! { <ErrorNote message=m/> })}
        <Transition fallback=|| view! { <p class="text-muted">"Loading the queue…"</p> }>
            {move || Suspend::new(async move {
                let admin = session.is_admin().await;
                match jobs.await {
                    Ok(page) if page.jobs.is_empty() => view! {
                        <p data-testid="queue-empty" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                            "No jobs yet. Runs from Generate, Workflows and the API wait here for a worker."
                        </p>
                    }.into_any(),
                    Ok(page) => view! {
                        <ul data-testid="queue-jobs" class="flex flex-col gap-2">
                            {page.jobs.into_iter().map(|job| view! {
                                <JobCard job admin action refresh/>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => api_error_view(e),
                }
            })}
        </Transition>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                workers.await.map(|(list, embedded, initial)| view! {
                    <Workers workers=list embedded/>
                    <tokens::WorkerTokens initial/>
                })
            })}
        </Transition>
    }
}

#[component]
fn Figures(status: QueueStatus) -> impl IntoView {
    let wait = |ms: Option<i64>| {
        ms.map(|ms| format_duration_secs((ms.max(0) as u64).div_ceil(1000)))
            .unwrap_or_else(|| "—".to_string())
    };
    let figure = |label: &'static str, value: String, testid: &'static str| {
        view! {
            <div class="rounded-lg border border-line bg-surface px-3 py-2">
                <div class="text-xs text-muted">{label}</div>
                <div data-testid=testid class="text-lg font-semibold tabular-nums">{value}</div>
            </div>
        }
    };
    view! {
        <div data-testid="queue-figures" class="mb-4 grid grid-cols-2 gap-2 sm:grid-cols-4">
            {figure("Waiting", status.pending.to_string(), "queue-pending")}
            {figure("Running", status.running.to_string(), "queue-running")}
            {figure("Workers online", status.workers_online.to_string(), "queue-workers-online")}
            {figure("Wait, median / p95 (1 h)", format!("{} / {}", wait(status.wait_p50_ms), wait(status.wait_p95_ms)), "queue-wait")}
        </div>
    }
}

fn state_tone(state: JobState) -> Tone {
    match state {
        JobState::Pending => Tone::Muted,
        JobState::Running => Tone::Accent,
        JobState::Succeeded => Tone::Ok,
        JobState::Failed => Tone::Bad,
        JobState::Cancelled => Tone::Plain,
    }
}

#[component]
fn JobCard<R>(job: JobView, admin: bool, action: Write, refresh: R) -> impl IntoView
where
    R: Fn() + Copy + Send + Sync + 'static,
{
    let id = job.id;
    let active = job.state.is_active();
    let line = match (job.state, job.position, &job.waiting_for) {
        // After a transient failure the next delivery waits (the backoff): say until when.
        (JobState::Pending, ..) if job.retry_at_ms.is_some() => {
            let at = format_utc(job.retry_at_ms.unwrap_or_default());
            format!(
                "delivered again at {} UTC, after a failure",
                at.get(11..19).unwrap_or(&at)
            )
        }
        (JobState::Pending, _, Some(why)) => why.clone(),
        (JobState::Pending, Some(n), None) => format!("{} in line", ordinal(n)),
        (JobState::Pending, None, None) => "waiting".to_string(),
        (JobState::Running, ..) => match &job.worker {
            Some(w) => format!("running on {w}"),
            None => "running".to_string(),
        },
        _ => job
            .worker
            .as_ref()
            .map(|w| format!("ran on {w}"))
            .unwrap_or_default(),
    };
    let waited = job
        .started_ms
        .map(|started| {
            format!(
                "waited {}",
                format_duration_secs(((started - job.created_ms).max(0) as u64).div_ceil(1000))
            )
        })
        .unwrap_or_default();
    let deliveries =
        (job.attempts > 1).then(|| format!("delivery {} of {MAX_DELIVERIES}", job.attempts));
    let outputs = (!job.outputs.is_empty()).then(|| match job.outputs.len() {
        1 => "1 output".to_string(),
        n => format!("{n} outputs"),
    });
    let attempt_errors = job.attempt_errors.clone();
    let cancel = move |_| action.run(cancel_job(id), move |_| refresh());
    let again = move |_| action.run(rerun_job(id), move |_| refresh());
    let priority = job.priority;
    let up = move |_| action.run(set_job_priority(id, priority + 1), move |_| refresh());
    let down = move |_| action.run(set_job_priority(id, priority - 1), move |_| refresh());
    view! {
        <li data-testid="queue-job" data-state=job.state.as_str() class="rounded-xl border border-line bg-surface p-3">
            <div class="flex flex-wrap items-center gap-2">
                <span class=badge(state_tone(job.state))>{job.state.as_str()}</span>
                <span class="min-w-0 flex-1 truncate font-medium">{job.workflow_name.clone()}</span>
                {admin.then(|| view! { <span class="text-xs text-muted">{job.username.clone()}</span> })}
                <span class="text-xs tabular-nums text-muted">{format!("#{id}")}</span>
            </div>
            <div class="mt-1 flex flex-wrap gap-x-3 gap-y-1 text-sm text-muted">
                {(!line.is_empty()).then(|| view! { <span data-testid="queue-job-line">{line.clone()}</span> })}
                {(!waited.is_empty()).then(|| view! { <span>{waited.clone()}</span> })}
                {deliveries.map(|d| view! { <span>{d}</span> })}
                {outputs.map(|o| view! { <span>{o}</span> })}
                {(priority != 0).then(|| view! { <span>{format!("priority {priority}")}</span> })}
                <time class="tabular-nums">{format_utc(job.created_ms)}</time>
            </div>
            {(job.state == JobState::Running).then(|| view! { <JobProgress prompt_id=job.prompt_id.clone()/> })}
            {job.error.clone().map(|e| view! { <p data-testid="queue-job-error" class="mt-1 text-sm text-bad">{e}</p> })}
            {(attempt_errors.len() > 1 || (job.error.is_none() && !attempt_errors.is_empty())).then(|| view! {
                <details class="mt-1 text-xs text-muted">
                    <summary class="cursor-pointer">"Earlier deliveries"</summary>
                    <ul class="mt-1 list-disc pl-5">
                        {attempt_errors.iter().map(|e| view! { <li>{e.clone()}</li> }).collect_view()}
                    </ul>
                </details>
            })}
            <div class="mt-2 flex flex-wrap gap-2">
                {active.then(|| view! {
                    <button type="button" data-testid="queue-cancel" class="btn-secondary" disabled=move || action.busy() on:click=cancel>"Cancel"</button>
                })}
                {(!active).then(|| view! {
                    <button type="button" data-testid="queue-again" class="btn-secondary" disabled=move || action.busy() on:click=again>"Run again"</button>
                })}
                {(admin && job.state == JobState::Pending).then(|| view! {
                    <button type="button" data-testid="queue-up" class="btn-secondary" title="Run before this person's other jobs" disabled=move || action.busy() on:click=up>"Move up"</button>
                    <button type="button" data-testid="queue-down" class="btn-secondary" title="Run after this person's other jobs" disabled=move || action.busy() on:click=down>"Move down"</button>
                })}
            </div>
        </li>
    }
}

/// A running job's live progress, from its run events (the deck's own ComfyUI's, or a
/// remote worker's passed on by the deck).
#[component]
fn JobProgress(prompt_id: String) -> impl IntoView {
    let live = Live::get();
    let line = Memo::new(move |_| {
        live.runs
            .with(|events| fold(&prompt_id, events).card_line())
    });
    view! {
        <div data-testid="queue-job-progress" class="mt-2">
            <ProgressBar
                percent=Signal::derive(move || line.get().0)
                tone=RunPhase::Running.bar()
                label="Progress of the run"
            />
            {move || line.get().1.map(|text| view! {
                <p data-testid="queue-job-progress-text" class="mt-1 truncate text-xs text-muted">{text}</p>
            })}
        </div>
    }
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[component]
fn Workers(workers: Vec<WorkerView>, embedded: bool) -> impl IntoView {
    view! {
        <section class="mt-6">
            <h2 class="mb-2 text-lg font-semibold">"Workers"</h2>
            {if workers.is_empty() {
                view! {
                    <p data-testid="queue-no-workers" class="rounded-xl border border-line bg-surface p-4 text-sm text-muted">
                        {embedded.then_some("This deck's own ComfyUI runs the jobs as soon as it answers. ")}
                        "More GPU pods can help: create a worker token below (or with "
                        <code>"comfydeck workers token create NAME"</code>
                        ") and start "<code>"comfydeck worker"</code>" there."
                    </p>
                }.into_any()
            } else {
                view! {
                    <ul data-testid="queue-workers" class="grid gap-2 sm:grid-cols-2">
                        {workers.into_iter().map(|w| {
                            let tone = match w.state.as_str() {
                                "busy" => Tone::Accent,
                                "idle" => Tone::Ok,
                                _ => Tone::Muted,
                            };
                            let gpu = match (&w.gpu, w.vram_mb) {
                                (Some(g), Some(v)) => format!("{g} · {}", format_bytes(v * 1024 * 1024)),
                                (Some(g), None) => g.clone(),
                                _ => "GPU not reported".to_string(),
                            };
                            view! {
                                <li data-testid="queue-worker" class="rounded-xl border border-line bg-surface p-3 text-sm">
                                    <div class="flex items-center gap-2">
                                        <span class=badge(tone)>{w.state.clone()}</span>
                                        <span class="min-w-0 flex-1 truncate font-medium">{w.name.clone()}</span>
                                        <span class="text-xs text-muted">{format!("{} done", w.jobs_done)}</span>
                                    </div>
                                    <div class="mt-1 text-muted">{gpu}</div>
                                    <div class="mt-1 flex flex-wrap gap-x-3 text-xs text-muted">
                                        {w.current_job.map(|j| view! { <span>{format!("job #{j}")}</span> })}
                                        <span>{format!("{} model files", w.models.len())}</span>
                                        {w.installs_missing.then(|| view! { <span>"installs missing models"</span> })}
                                        <time>{format!("last heartbeat {}", format_utc(w.last_heartbeat_ms))}</time>
                                    </div>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}
