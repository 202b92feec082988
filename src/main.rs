//! `freeim-server`: parses the settings and runs one ImServer node.

use std::process::ExitCode;

use clap::Parser;
use freeim_server::config::Config;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("FREEIM_LOG", "info")).init();
    let settings = match Config::parse().validate() {
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
