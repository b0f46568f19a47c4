//! Home: the pod at a glance — CPU, memory, disk, GPUs, ComfyUI and recent activity, updated
//! live without reloading.

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::get_status;
use crate::components::{Card, Meter};
use crate::layout::Session;
use crate::live::Live;
use crate::server_calls::api_error_view;

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct HomeRoute;

#[lazy_route]
impl LazyRoute for HomeRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <HomePage/> }.into_any()
    }
}

#[component]
pub fn HomePage() -> impl IntoView {
    let status = Resource::new(|| (), |_| get_status());
    let session = Session::get();
    view! {
        <Title text="Home · comfydeck"/>
        <h1 class="mb-4 text-xl font-semibold">"Pod status"</h1>
        <Suspense fallback=|| view! { <p class="text-muted">"Reading the pod's status…"</p> }>
            {move || Suspend::new(async move {
                let caller = session.caller().await;
                match status.await {
                    Ok(initial) => view! { <StatusGrid initial caller/> }.into_any(),
                    Err(e) => api_error_view(e),
                }
            })}
        </Suspense>
    }
}

/// `caller`: who is looking; a user may not restart ComfyUI and sees only their own activity.
#[component]
fn StatusGrid(initial: HomeStatus, caller: Option<Caller>) -> impl IntoView {
    let admin = caller.as_ref().is_some_and(|c| c.is_admin());
    let my_id = caller.map(|c| c.user_id);
    let live = Live::get();
    // Live values replace the server-rendered ones as soon as they arrive.
    let stats = {
        let initial = initial.stats.clone();
        Signal::derive(move || live.stats.get().unwrap_or_else(|| initial.clone()))
    };
    let comfy = {
        let initial = initial.comfy.clone();
        Signal::derive(move || live.comfy.get().unwrap_or_else(|| initial.clone()))
    };
    let process = {
        let initial = initial.comfy_process.clone();
        Signal::derive(move || live.comfy_process.get().unwrap_or_else(|| initial.clone()))
    };
    let recent = RwSignal::new(initial.recent_activity);
    Effect::new(move |_| {
        if let Some(entry) = live.activity.get() {
            // The server sends a user only their own entries; the page keeps to that as well.
            if !admin && entry.user_id != my_id {
                return;
            }
            recent.update(|list| {
                if !list.iter().any(|e| e.id == entry.id) {
                    list.insert(0, entry);
                    list.truncate(8);
                }
            });
        }
    });

    view! {
        <div class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
            <CpuCard stats/>
            <MemoryCard stats/>
            <DiskCard stats/>
            <GpuCard stats/>
            <ComfyCard comfy process admin/>
            <RecentActivity recent/>
        </div>
        <p class="mt-4 text-xs text-muted">
            "Sampled "
            <span
                data-testid="stats-sampled-at"
                data-sampled-at=move || stats.get().sampled_at_ms.to_string()
            >
                {move || format_utc(stats.get().sampled_at_ms)}
            </span>
        </p>
    }
}

#[component]
fn CpuCard(stats: Signal<SystemStats>) -> impl IntoView {
    let percent = Signal::derive(move || stats.get().cpu.percent);
    view! {
        <Card title="CPU" testid="cpu-card">
            <p class="mb-2 text-3xl font-semibold tabular-nums" data-testid="cpu-percent">
                {move || format!("{:.1}%", percent.get())}
            </p>
            <Meter percent label="CPU busy"/>
            <p class="mt-2 text-xs text-muted">
                {move || format!("of {} CPU{}", trim_float(stats.get().cpu.cores), if stats.get().cpu.cores == 1.0 { "" } else { "s" })}
            </p>
        </Card>
    }
}

#[component]
fn MemoryCard(stats: Signal<SystemStats>) -> impl IntoView {
    let memory = Signal::derive(move || stats.get().memory);
    let percent = Signal::derive(move || {
        let m = memory.get();
        percent_of(m.used_bytes, m.limit_bytes)
    });
    view! {
        <Card title="Memory" testid="memory-card">
            <p class="mb-2 text-2xl font-semibold tabular-nums" data-testid="memory-used">
                {move || format_bytes(memory.get().used_bytes)}
                <span class="text-base font-normal text-muted">
                    {move || format!(" / {}", format_bytes(memory.get().limit_bytes))}
                </span>
            </p>
            <Meter percent label="Memory used"/>
            <p class="mt-2 text-xs text-muted">{move || memory.get().source.label()}</p>
        </Card>
    }
}

#[component]
fn DiskCard(stats: Signal<SystemStats>) -> impl IntoView {
    let disk = Signal::derive(move || stats.get().disk);
    let percent = Signal::derive(move || {
        let d = disk.get();
        percent_of(d.used_bytes, d.total_bytes)
    });
    view! {
        <Card title="Workspace volume" testid="disk-card">
            <p class="mb-2 text-2xl font-semibold tabular-nums" data-testid="disk-free">
                {move || format_bytes(disk.get().free_bytes)}
                <span class="text-base font-normal text-muted">" free"</span>
            </p>
            <Meter percent label="Volume used"/>
            <p class="mt-2 text-xs text-muted">
                {move || {
                    let d = disk.get();
                    format!(
                        "{} used of {}{}",
                        format_bytes(d.used_bytes),
                        format_bytes(d.total_bytes),
                        if d.quota_from_env { " (RUNPOD_VOLUME_GB)" } else { "" },
                    )
                }}
            </p>
            <p class="mt-1 truncate font-mono text-xs text-muted" title=move || disk.get().path>
                {move || disk.get().path}
            </p>
        </Card>
    }
}

#[component]
fn GpuCard(stats: Signal<SystemStats>) -> impl IntoView {
    view! {
        <Card title="GPU" testid="gpu-card">
            {move || match stats.get().gpus {
                GpuReport::Unavailable { reason } => view! {
                    <p class="text-lg font-medium">"No NVIDIA GPU detected"</p>
                    <p class="mt-1 text-xs text-muted">{reason}</p>
                }.into_any(),
                GpuReport::Available { gpus } => view! {
                    <ul class="space-y-4">
                        {gpus.into_iter().map(|gpu| view! { <GpuRow gpu/> }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </Card>
    }
}

#[component]
fn GpuRow(gpu: GpuStats) -> impl IntoView {
    let vram = percent_of(gpu.memory_used_bytes, gpu.memory_total_bytes);
    let util = gpu.utilization_percent.map(|u| u as f32);
    let power = match (gpu.power_watts, gpu.power_limit_watts) {
        (Some(w), Some(limit)) => Some(format!("{w:.0} / {limit:.0} W")),
        (Some(w), None) => Some(format!("{w:.0} W")),
        _ => None,
    };
    view! {
        <li data-testid="gpu-row">
            <p class="font-medium">{format!("#{} {}", gpu.index, gpu.name)}</p>
            <div class="mt-2 space-y-2 text-xs text-muted">
                {util.map(|u| view! {
                    <div>
                        <div class="mb-1 flex justify-between"><span>"Utilisation"</span><span class="tabular-nums">{format!("{u:.0}%")}</span></div>
                        <Meter percent=Signal::derive(move || u) label="GPU utilisation"/>
                    </div>
                })}
                <div>
                    <div class="mb-1 flex justify-between">
                        <span>"VRAM"</span>
                        <span class="tabular-nums">{format!("{} / {}", format_bytes(gpu.memory_used_bytes), format_bytes(gpu.memory_total_bytes))}</span>
                    </div>
                    <Meter percent=Signal::derive(move || vram) label="VRAM used"/>
                </div>
                <p class="flex gap-4 tabular-nums">
                    {gpu.temperature_c.map(|t| view! { <span>{format!("{t} °C")}</span> })}
                    {power.map(|p| view! { <span>{p}</span> })}
                </p>
            </div>
        </li>
    }
}

/// `admin`: whether the visitor may restart ComfyUI.
#[component]
fn ComfyCard(
    comfy: Signal<ComfyStatus>,
    process: Signal<ComfyProcess>,
    admin: bool,
) -> impl IntoView {
    view! {
        <Card title="ComfyUI" testid="comfy-card">
            {move || {
                let p = process.get();
                (!matches!(p.state, ComfyProcessState::External { .. }))
                    .then(|| view! { <ProcessPanel process=p admin/> })
            }}
            {move || {
                let c = comfy.get();
                if c.reachable {
                    view! {
                        <p class="flex items-center gap-2 text-lg font-medium">
                            <span class="h-2.5 w-2.5 rounded-full bg-ok"></span>"Running"
                        </p>
                        <dl class="mt-2 grid grid-cols-2 gap-y-1 text-sm">
                            <dt class="text-muted">"Version"</dt>
                            <dd>{c.version.unwrap_or_else(|| "unknown".into())}</dd>
                            <dt class="text-muted">"Queue"</dt>
                            <dd class="tabular-nums">
                                {c.queue_remaining.map(|q| match q {
                                    0 => "idle".to_string(),
                                    1 => "1 prompt".to_string(),
                                    n => format!("{n} prompts"),
                                }).unwrap_or_else(|| "unknown".into())}
                            </dd>
                        </dl>
                        <p class="mt-2 truncate font-mono text-xs text-muted">{c.url}</p>
                    }.into_any()
                } else {
                    view! {
                        <p class="flex items-center gap-2 text-lg font-medium">
                            <span class="h-2.5 w-2.5 rounded-full bg-bad"></span>"Unreachable"
                        </p>
                        <p class="mt-1 text-sm text-muted">{c.error.unwrap_or_default()}</p>
                        <p class="mt-2 truncate font-mono text-xs text-muted">{c.url}</p>
                    }.into_any()
                }
            }}
        </Card>
    }
}

/// A ComfyUI that comfydeck runs: its state, a restart button (administrators) and the end of
/// its log.
#[component]
fn ProcessPanel(process: ComfyProcess, admin: bool) -> impl IntoView {
    let restart = Action::new(|_: &()| crate::api::restart_comfyui());
    let pending = restart.pending();
    let (dot, label, detail) = match &process.state {
        ComfyProcessState::Starting { pid } => {
            ("bg-warn", "Starting".to_string(), format!("pid {pid}"))
        }
        ComfyProcessState::Ready { pid, since_ms } => (
            "bg-ok",
            "Ready".to_string(),
            format!("pid {pid}, up since {}", format_utc(*since_ms)),
        ),
        ComfyProcessState::Crashed { exit, .. } => {
            ("bg-bad", "Crashed".to_string(), exit.to_string())
        }
        ComfyProcessState::Restarting {
            delay_ms,
            attempt,
            last_exit,
            ..
        } => (
            "bg-warn",
            "Restarting".to_string(),
            format!(
                "after {last_exit}; attempt {attempt} in {}",
                format_duration_secs(delay_ms.div_ceil(1000))
            ),
        ),
        ComfyProcessState::Failed { error } => {
            ("bg-bad", "Cannot start".to_string(), error.clone())
        }
        ComfyProcessState::Stopped => ("bg-muted", "Stopped".to_string(), String::new()),
        ComfyProcessState::External { .. } => ("bg-muted", String::new(), String::new()),
    };
    let restarts = process.restarts;
    let tail = process.log_tail.join("\n");
    let has_tail = !tail.is_empty();
    view! {
        <div class="mb-3 border-b border-line pb-3" data-testid="comfy-process">
            <p class="flex items-center gap-2 text-sm font-medium">
                <span class=format!("h-2 w-2 rounded-full {dot}")></span>
                {format!("Process: {label}")}
            </p>
            <p class="mt-0.5 break-words text-xs text-muted">{detail}</p>
            {(restarts > 0).then(|| view! {
                <p class="text-xs text-muted">{format!("Restarted {restarts} time{}", if restarts == 1 { "" } else { "s" })}</p>
            })}
            {admin.then(|| view! {
                <button
                    class="btn-secondary mt-2"
                    data-testid="comfy-restart"
                    disabled=move || pending.get()
                    on:click=move |_| {
                        restart.dispatch(());
                    }
                >
                    {move || if pending.get() { "Restarting…" } else { "Restart ComfyUI" }}
                </button>
                {move || restart.value().get().and_then(|r| r.err()).map(|e| view! {
                    <p class="mt-1 text-xs text-bad">{e.message}</p>
                })}
            })}
            {has_tail.then(|| view! {
                <details class="mt-2">
                    <summary class="cursor-pointer text-xs text-muted">"Log tail"</summary>
                    <pre class="mt-1 max-h-64 overflow-auto whitespace-pre-wrap break-all rounded bg-surface-2 p-2 font-mono text-[11px] leading-snug">{tail}</pre>
                </details>
            })}
        </div>
    }
}

#[component]
fn RecentActivity(recent: RwSignal<Vec<ActivityEntry>>) -> impl IntoView {
    view! {
        <Card title="Recent activity" testid="recent-activity">
            <Show
                when=move || !recent.get().is_empty()
                fallback=|| view! { <p class="text-sm text-muted">"Nothing has happened yet."</p> }
            >
                <ul class="space-y-2 text-sm">
                    <For each=move || recent.get() key=|e| e.id let:entry>
                        <li>
                            <p class="leading-snug">{entry.message}</p>
                            <p class="text-xs text-muted">{format!("{} · {}", entry.kind.label(), format_utc(entry.at_ms))}</p>
                        </li>
                    </For>
                </ul>
            </Show>
            <a href="/activity" class="mt-3 inline-block text-xs text-accent hover:underline">"All activity →"</a>
        </Card>
    }
}

/// `2` rather than `2.0`, `2.5` stays.
fn trim_float(v: f32) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}
