//! `comfydeck`: parse the command line, then serve the dashboard or run a one-shot command.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use engine::Engine;
use server::cli::{Cli, Command, ServeArgs};
use server::{leptos_options, router, AppState};

#[tokio::main]
async fn main() {
    let exec_started = Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Presets(args)) => {
            init_cli_logging(&args.action.common().log_level);
            server::commands::presets(args.action).await
        }
        Some(Command::Download(args)) => {
            init_cli_logging(&args.common.log_level);
            server::commands::download(args).await
        }
        Some(Command::Workflow(action)) => {
            init_cli_logging("info");
            server::commands::workflow(action).await
        }
        Some(Command::Serve(args)) => serve(args, exec_started).await.map(|()| 0),
        None => serve(cli.serve, exec_started).await.map(|()| 0),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("comfydeck: {}", describe(&e));
            std::process::exit(1);
        }
    }
}

fn init_cli_logging(level: &str) {
    if let Err(e) = server::logging::init_cli(level) {
        eprintln!("comfydeck: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: ServeArgs, exec_started: Instant) -> anyhow::Result<()> {
    let config = args.to_config().map_err(anyhow::Error::msg)?;

    let (_log_guard, log_problem) =
        server::logging::init(&args.common.log_level, &config.layout().comfydeck_log())
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

/// The error and its causes in one line, skipping causes the message already quotes (the
/// engine's errors name their cause in their own words).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
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
