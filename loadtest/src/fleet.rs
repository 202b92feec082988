//! The coordinator's side of the workers: starting them (the same binary,
//! re-executed with the hidden `worker` subcommand), sending commands,
//! collecting one report per worker, and killing them on drop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::Receiver;

use crate::control::{Command, Report, WorkerConfig};
use crate::stats::ClientStats;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
}

/// The running workers.
pub struct Fleet {
    workers: Vec<Worker>,
    reports: Receiver<(usize, Option<Report>)>,
}

impl Fleet {
    /// Starts one worker per configuration and waits until each is ready.
    pub fn start(configs: Vec<WorkerConfig>) -> Result<Fleet> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let (tx, reports) = crossbeam_channel::unbounded();
        let mut workers = Vec::with_capacity(configs.len());
        for cfg in configs {
            let index = cfg.index;
            let mut child = Process::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting a worker process")?;
            let mut stdin = child.stdin.take().expect("piped stdin");
            let stdout = child.stdout.take().expect("piped stdout");
            writeln!(stdin, "{}", serde_json::to_string(&cfg)?)?;
            stdin.flush()?;
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("reports-{index}"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        match serde_json::from_str::<Report>(&line) {
                            Ok(report) => {
                                if tx.send((index, Some(report))).is_err() {
                                    return;
                                }
                            }
                            Err(e) => eprintln!("worker {index}: unreadable report: {e}"),
                        }
                    }
                    let _ = tx.send((index, None));
                })?;
            let pid = child.id();
            workers.push(Worker { child, stdin, pid });
        }
        let mut fleet = Fleet { workers, reports };
        let ready = fleet.collect(Duration::from_secs(30), |r| {
            matches!(r, Report::Ready { .. })
        })?;
        for (worker, report) in fleet.workers.iter_mut().zip(ready) {
            if let Report::Ready { pid } = report {
                worker.pid = pid;
            }
        }
        Ok(fleet)
    }

    /// The workers' pids.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// Sends `command` to every worker.
    pub fn send_all(&mut self, command: &Command) -> Result<()> {
        let line = serde_json::to_string(command)?;
        for (index, worker) in self.workers.iter_mut().enumerate() {
            writeln!(worker.stdin, "{line}")
                .and_then(|()| worker.stdin.flush())
                .with_context(|| format!("worker {index} is gone"))?;
        }
        Ok(())
    }

    /// Waits for one report matching `wanted` from every worker, in worker
    /// order; other reports are skipped.
    pub fn collect(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Report) -> bool,
    ) -> Result<Vec<Report>> {
        let deadline = Instant::now() + timeout;
        let mut got: Vec<Option<Report>> = vec![None; self.workers.len()];
        while got.iter().any(Option::is_none) {
            let (index, report) = self
                .reports
                .recv_deadline(deadline)
                .map_err(|_| anyhow!("workers did not answer within {timeout:?}"))?;
            match report {
                None => bail!("worker {index} exited unexpectedly (see its stderr above)"),
                Some(report) if wanted(&report) => got[index] = Some(report),
                Some(_) => {}
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Current counters of every worker.
    pub fn stats(&mut self, full: bool) -> Result<Vec<ClientStats>> {
        self.send_all(&Command::Stats { full })?;
        let reports = self.collect(Duration::from_secs(30), |r| matches!(r, Report::Stats(_)))?;
        Ok(reports
            .into_iter()
            .filter_map(|r| match r {
                Report::Stats(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    /// Tells the workers to exit and waits a little for them; kills the rest.
    pub fn shutdown(mut self) {
        let _ = self.send_all(&Command::Exit);
        let deadline = Instant::now() + Duration::from_secs(5);
        for worker in &mut self.workers {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = worker.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            if let Ok(None) = worker.child.try_wait() {
                let _ = worker.child.kill();
            }
            let _ = worker.child.wait();
        }
    }
}
