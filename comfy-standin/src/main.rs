//! The ComfyUI stand-in as a process, for tests that run the real binary (browser tests):
//!
//! ```text
//! cargo run -p comfy-standin -- --port 8188 \
//!     [--fixtures DIR] [--time-scale 1.0] [--empty-userdata] [--hold-limit-secs 30]
//!     [--output-dir DIR]
//! ```
//!
//! Without `--fixtures` it replays `COMFYDECK_FIXTURES`, else this crate's `fixtures/comfyui`.
//! It prints `comfy stand-in listening on http://127.0.0.1:PORT` once it accepts connections,
//! and runs until interrupted (Ctrl-C / SIGTERM). Steer it over HTTP:
//! `POST /__standin/play_next` (body: a recording name such as `ws_prompt_execution_error`),
//! `GET /__standin/requests`, `GET /__standin/recordings`.

use std::path::PathBuf;

use comfy_standin::{fixture_dir, ComfyStandin, StandinConfig};

#[tokio::main]
async fn main() {
    // The default folder is looked up only when no `--fixtures` is given, so a stale
    // COMFYDECK_FIXTURES cannot stop a run that names its own.
    let mut fixtures: Option<PathBuf> = None;
    let mut config = StandinConfig::new(PathBuf::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--port" => {
                config.port = value("--port")
                    .parse()
                    .unwrap_or_else(|_| fail("--port takes a port number"))
            }
            "--fixtures" => fixtures = Some(value("--fixtures").into()),
            "--time-scale" => {
                config.time_scale = value("--time-scale")
                    .parse()
                    .unwrap_or_else(|_| fail("--time-scale takes a number"))
            }
            "--hold-limit-secs" => {
                config.hold_limit = std::time::Duration::from_secs_f64(
                    value("--hold-limit-secs")
                        .parse()
                        .unwrap_or_else(|_| fail("--hold-limit-secs takes a number")),
                )
            }
            "--empty-userdata" => config.seed_userdata = false,
            "--output-dir" => config.output_dir = Some(value("--output-dir").into()),
            "-h" | "--help" => {
                println!(
                    "comfy-standin [--port N] [--fixtures DIR] [--time-scale F] [--empty-userdata] [--hold-limit-secs S] [--output-dir DIR]"
                );
                return;
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    config.fixtures = fixtures.unwrap_or_else(fixture_dir);
    let mut standin = ComfyStandin::start(config)
        .await
        .unwrap_or_else(|e| fail(&format!("could not start: {e}")));
    println!("comfy stand-in listening on {}", standin.url());

    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    standin.stop().await;
}

fn fail(message: &str) -> ! {
    eprintln!("comfy-standin: {message}");
    std::process::exit(2)
}
