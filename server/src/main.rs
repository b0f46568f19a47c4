//! `comfydeck`: parses the command line and runs the command (see [`server::commands`]).

use std::time::Instant;

use clap::Parser;
use server::cli::{Cli, Command};
use server::commands::{self, init_cli_logging};

fn main() {
    let exec_started = Instant::now();
    server::memory::limit_malloc_arenas();
    let runtime = server::memory::runtime().unwrap_or_else(|e| {
        eprintln!("comfydeck: cannot start the async runtime: {e}");
        std::process::exit(1)
    });
    runtime.block_on(run(exec_started));
}

async fn run(exec_started: Instant) {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Presets(args)) => {
            init_cli_logging(&args.action.common().log_level);
            commands::presets(args.action).await
        }
        Some(Command::Download(args)) => {
            init_cli_logging(&args.common.log_level);
            commands::download(args).await
        }
        Some(Command::Users(args)) => {
            init_cli_logging(&args.action.common().log_level);
            commands::users(args.action).await
        }
        Some(Command::Worker(args)) => {
            init_cli_logging(&args.log_level);
            commands::worker(args).await
        }
        Some(Command::Workers(args)) => {
            let crate_action = args.action;
            let server::cli::WorkersAction::Token(action) = crate_action;
            init_cli_logging(&action.common().log_level);
            commands::worker_tokens(action).await
        }
        Some(Command::Nodes(args)) => {
            init_cli_logging(&args.action.options().common.log_level);
            commands::nodes(args.action).await
        }
        Some(Command::Recovery(args)) => {
            init_cli_logging(&args.action.common().log_level);
            commands::recovery(args.action).await
        }
        Some(Command::Workflow(action)) => {
            init_cli_logging("info");
            commands::workflow(action).await
        }
        Some(Command::Serve(args)) => commands::serve(args, exec_started).await.map(|()| 0),
        None => commands::serve(cli.serve, exec_started).await.map(|()| 0),
    };
    commands::exit(result)
}
