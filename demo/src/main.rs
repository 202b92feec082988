//! `freeim-demo`: parses the settings and serves the demo until killed.

use std::process::ExitCode;

use clap::Parser;
use freeim_demo::{Config, Demo};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("FREEIM_LOG", "info")).init();
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            eprintln!("freeim-demo: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let settings = match config.validate() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("freeim-demo: {e}");
            return ExitCode::from(2);
        }
    };
    let demo = match Demo::start(settings) {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("freeim-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!("chat page and API on {}", demo.url());
    demo.wait();
    ExitCode::SUCCESS
}
