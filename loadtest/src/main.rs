//! `freeim-loadtest`: parses the command line and runs one scenario.

use std::process::ExitCode;

use clap::Parser;
use freeim_loadtest::cli::{Cli, Scenario};
use freeim_loadtest::scenario::{churn, idle, messages, storm};
use freeim_loadtest::{charts, worker};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Scenario::Idle(args) => idle::run(args),
        Scenario::P2p(args) => messages::run(messages::Kind::P2p, args),
        Scenario::Fanout(args) => messages::run(messages::Kind::Fanout, args),
        Scenario::Broadcast(args) => messages::run(messages::Kind::Broadcast, args),
        Scenario::Storm(args) => storm::run(args),
        Scenario::Churn(args) => churn::run(args),
        Scenario::Summary(args) => charts::summary(args),
        Scenario::Chart(args) => charts::chart(args),
        Scenario::Worker => worker::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freeim-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
