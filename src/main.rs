//! `freeim-server`: parses the settings and runs one ImServer node.

use std::process::ExitCode;

use clap::Parser;
use freeim_server::config::Config;

/// jemalloc, for memory that goes back to the system after a burst: its
/// background thread purges pages freed for a second (glibc keeps what a
/// burst's queues freed; see PERFORMANCE.md, "Memory under backlog").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start-up: purge dirty pages after 1 s
/// (default 10 s) from a background thread, and skip the muzzy stage.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
    match freeim_server::server::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freeim-server: {e}");
            ExitCode::FAILURE
        }
    }
}
