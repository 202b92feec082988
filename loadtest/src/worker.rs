//! A worker process (`freeim-loadtest worker`, started by the coordinator):
//! reads its [`WorkerConfig`] and then [`Command`]s from stdin, runs the
//! [`Engine`], and writes [`Report`]s to stdout, one JSON value per line.
//! It exits when told to or when its stdin closes (the coordinator is gone).

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use imhelper::{ImHelper, ImHelperOptions};
use mio::{Poll, Waker};

use crate::control::{Command, Report, WorkerConfig};
use crate::engine::{Engine, WAKER};
use crate::tokens::TokenPool;

/// Runs a worker until `Exit`; its stdout carries only reports.
pub fn run() -> Result<()> {
    let limit = crate::sys::raise_nofile_limit();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let first = lines
        .next()
        .ok_or_else(|| anyhow!("no configuration on stdin"))?
        .context("reading the configuration")?;
    let cfg: WorkerConfig = serde_json::from_str(&first).context("parsing the configuration")?;
    drop(lines);
    let needed = cfg.count as u64 + 64;
    if needed > limit {
        return Err(anyhow!(
            "worker {} must hold {} sockets but the open-file limit is {limit}: use more --procs",
            cfg.index,
            cfg.count
        ));
    }

    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut options = ImHelperOptions::new(cfg.redis_url.clone(), cfg.servers.clone());
    options.path = cfg.path.clone();
    let helper = Arc::new(ImHelper::new(options)?);
    let tokens = TokenPool::start(helper, cfg.token_threads, cfg.meta.clone(), waker.clone())?;

    let (command_tx, commands) = crossbeam_channel::unbounded();
    let stdin_waker = waker.clone();
    std::thread::Builder::new()
        .name("commands".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Command>(&line) {
                    Ok(command) => {
                        if command_tx.send(command).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("worker: ignored a command: {e}"),
                }
                let _ = stdin_waker.wake();
            }
            let _ = command_tx.send(Command::Exit);
            let _ = stdin_waker.wake();
        })?;

    let report = Box::new(|report: &Report| {
        let mut out = std::io::stdout().lock();
        let line = serde_json::to_string(report).expect("reports serialise");
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    report(&Report::Ready {
        pid: std::process::id(),
    });
    Engine::new(cfg, poll, commands, tokens, report).run()?;
    Ok(())
}
