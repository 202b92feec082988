//! `freeim-server`: parses the settings and runs one ImServer node.

use std::process::ExitCode;

use clap::Parser;
use freeim_server::config::Config;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("FREEIM_LOG", "info")).init();
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            eprintln!("freeim-server: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let settings = match config.validate() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("freeim-server: {e}");
            return ExitCode::from(2);
        }
    };
    match freeim_server::node::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freeim-server: {e}");
            ExitCode::FAILURE
        }
    }
}
