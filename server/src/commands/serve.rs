//! `comfydeck serve` (and `comfydeck` alone): starts the engine and its background jobs,
//! listens, and on SIGINT or SIGTERM stops accepting, then shuts the engine down.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use axum::serve::ListenerExt;
use engine::Engine;

use crate::cli::ServeArgs;
use crate::{leptos_options, router, AppState};

/// Runs the dashboard until a signal; `exec_started` is when the process began, for the
/// start-up time it logs.
pub async fn serve(args: ServeArgs, exec_started: Instant) -> anyhow::Result<()> {
    let config = args.to_config().map_err(anyhow::Error::msg)?;

    let (_log_guard, log_problem) =
        crate::logging::init(&args.common.log_level, &config.layout().comfydeck_log())
            .map_err(anyhow::Error::msg)?;
    if let Some(problem) = log_problem {
        tracing::warn!("logging to stdout only: {problem}");
    }
    tracing::info!(version = engine::VERSION, workspace = %config.workspace_root.display(), "comfydeck starting");

    let (engine, report) = Engine::start(config.clone())
        .await
        .context("start-up failed")?;
    if let Some(password) = &report.generated_password {
        // Printed this one time only; just its hash is stored.
        tracing::warn!(
            "No ACCESS_PASSWORD is set and the dashboard listens on {}: a login is required. \
             Generated password (shown only now): {password}",
            config.host
        );
    }
    engine.spawn_background_jobs();
    engine
        .activity()
        .record(
            engine::model::ActivityKind::System,
            format!("comfydeck {} started", engine::VERSION),
        )
        .await;

    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr}; is another program using port {}?",
            config.port
        )
    })?;
    let app = router(AppState {
        engine: engine.clone(),
        leptos: leptos_options(),
    });

    let shown_host = if config.host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    tracing::info!(
        ms = format!("{:.1}", exec_started.elapsed().as_secs_f64() * 1000.0),
        auth = ?engine.auth().mode(),
        "ready: open http://{shown_host}:{}/",
        config.port
    );
    println!(
        "comfydeck is running at http://{shown_host}:{}/",
        config.port
    );
    // Start-up (the catalog's parse, migrations, the first scans) freed more than it keeps.
    crate::memory::release_free_memory();

    // No Nagle: a page is written in several pieces (head, streamed body chunks), and with
    // Nagle on, the second small write waits for the ACK of the first, which the client delays
    // (~40 ms per request on a kept-alive connection).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on an accepted connection");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the server stopped with an error")?;
    // Transfers flush their part files; they resume at the next start.
    engine.shutdown().await;
    tracing::info!("comfydeck stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
