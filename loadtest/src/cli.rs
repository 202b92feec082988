//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator for FreeIM ImServer nodes.
///
/// Real WebSocket clients, authorised through `imhelper` exactly as a
/// business service would, spread over worker processes and source
/// addresses 127.0.0.x by themselves. Every scenario is bounded in count and
/// time and stops by itself; traffic goes only to the `--servers` given.
#[derive(Debug, Parser)]
#[command(
    name = "freeim-loadtest",
    version,
    after_help = "Durations are written as on the node: 500ms, 10s, 1m30s, 1.5s, 2h \
                  (humantime's units) or as bare seconds, at most a year (1y)."
)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub command: Scenario,
}

/// The scenarios, plus the tools around them.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Open N connections at --rate per second and hold them: handshakes/s,
    /// node RSS per connection, kernel socket memory, idle CPU.
    Idle(IdleArgs),
    /// N clients; --senders threads send to random receivers with
    /// `send_message`: delivered msgs/s, latency, losses, CPU per message.
    P2p(MessageArgs),
    /// One channel with N members (`join_chan`), messages with
    /// `send_chan_message`: deliveries/s, latency per delivery, losses.
    Fanout(MessageArgs),
    /// `send_broadcast_message` to N clients: deliveries/s, latency, losses.
    Broadcast(MessageArgs),
    /// Connect N as fast as possible: handshakes/s and time until all are online.
    Storm(StormArgs),
    /// Clients connect and disconnect in a loop; then presence (Online hash,
    /// online/offline events) is compared with the sockets really open.
    Churn(ChurnArgs),
    /// Medians of the figures in JSON-lines result files, grouped by label.
    Summary(SummaryArgs),
    /// SVG charts from JSON-lines result files.
    Chart(ChartArgs),
    /// (internal) A worker process; started by the scenarios themselves.
    #[command(hide = true)]
    Worker,
}

/// Where the cluster is, and which processes to measure.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Redis URL shared with the nodes.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis: String,
    /// The cluster's servers exactly as the nodes list them (`;` or `,` separated).
    #[arg(long, default_value = "127.0.0.1:6001")]
    pub servers: String,
    /// WebSocket path.
    #[arg(long, default_value = "/ws")]
    pub path: String,
    /// A node process to measure (RSS, CPU); repeat for a cluster.
    #[arg(long = "node-pid")]
    pub node_pids: Vec<u32>,
    /// The redis-server process, to report its CPU too.
    #[arg(long)]
    pub redis_pid: Option<u32>,
}

/// How many clients, and how they connect.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Number of client connections.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: usize,
    /// Worker processes (default: one per 15,000 connections).
    #[arg(long)]
    pub procs: Option<usize>,
    /// Source addresses 127.0.0.1.. to spread over (default: one per
    /// 10,000 connections per server, four times more for churn).
    #[arg(long)]
    pub src_addrs: Option<usize>,
    /// New connections per second, all workers together; 0 = no pacing.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Most handshakes in flight at once, all workers together.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Time a connect + upgrade may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Threads per worker calling `prev_connect_server`.
    #[arg(long, default_value_t = 4)]
    pub token_threads: usize,
    /// First client id (default: derived from the clock, so consecutive runs
    /// use fresh ids).
    #[arg(long)]
    pub id_base: Option<i64>,
    /// Offer permessage-deflate in every upgrade, as browsers do
    /// (`permessage-deflate; client_max_window_bits`), and inflate the
    /// compressed messages the node then sends.
    #[arg(long)]
    pub deflate: bool,
}

/// Output and limits shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print one JSON line with every figure to stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Append the JSON line to this file too.
    #[arg(long)]
    pub append: Option<PathBuf>,
    /// A name for this run in the JSON line (default: scenario and sizes).
    #[arg(long)]
    pub label: Option<String>,
    /// Hard limit on the whole run; workers are killed after it.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: TargetArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub clients: ClientArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// How long to hold the connections open once all are up.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Pause between the last handshake and the first memory reading.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub settle: Duration,
}

/// `p2p`, `fanout` and `broadcast`.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: TargetArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub clients: ClientArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// Threads calling imhelper.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Messages per second, all senders together; 0 = flat out.
    #[arg(long, default_value_t = 1000.0)]
    pub msg_rate: f64,
    /// Send exactly this many messages flat out instead of for --duration.
    #[arg(long)]
    pub burst: Option<u64>,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Most time to wait for deliveries after the last send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Padding added to each message, in bytes: chat-like words and numbers,
    /// compressing (permessage-deflate) about as chat text does.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// `p2p` only: messages per imhelper call. 1 calls `send_message` per
    /// message; N calls `send_messages` with N, one Redis round trip each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch: u64,
    /// Channel name for `fanout` (default: a fresh one per run).
    #[arg(long)]
    pub chan: Option<String>,
    /// Slow-reader mode: most bytes per second each client connection reads
    /// from its socket (WebSocket frame headers included), paced by a token
    /// bucket of 200 ms per connection; 0 = unlimited. Unread data fills
    /// the kernel's buffers and then queues on the node.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub read_rate: u64,
    /// SO_RCVBUF in bytes, set on each client socket before it connects so
    /// the receive window stays small (Linux doubles the value and caps it
    /// at net.core.rmem_max); default: the kernel's, autotuned.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub recv_buffer: Option<u64>,
    /// After the drain, hold the connections open and idle this long, then
    /// read the node's memory again (`node_rss_settled_bytes`); 0 = skip.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub settle: Duration,
}

impl MessageArgs {
    /// How the clients' sockets read, from `--read-rate` and `--recv-buffer`.
    pub fn reader(&self) -> crate::control::ReaderConfig {
        crate::control::ReaderConfig {
            read_rate: self.read_rate,
            recv_buffer: self.recv_buffer.map(|b| b as usize),
        }
    }
}

/// `storm`.
#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: TargetArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub clients: ClientArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// Most time to wait until every opened client is listed online.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub online_timeout: Duration,
}

/// `churn`.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: TargetArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub clients: ClientArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    /// How long clients come and go.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Mean life of a connection (each lives 0.5× to 1.5× of it).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub life: Duration,
    /// Most time between a close and the reconnect.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub pause: Duration,
    /// Share of closes that just drop the socket (no close frame).
    #[arg(long, default_value_t = 0.3)]
    pub abrupt_ratio: f64,
    /// Share of connects abandoned right after sending the upgrade request.
    #[arg(long, default_value_t = 0.05)]
    pub abort_ratio: f64,
    /// Most time for presence to agree with the open sockets afterwards.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub settle: Duration,
}

/// `summary`.
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// JSON-lines result files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the medians as Markdown instead of plain text.
    #[arg(long)]
    pub markdown: bool,
}

/// `chart`.
#[derive(Debug, Clone, Args)]
pub struct ChartArgs {
    /// JSON-lines result files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory for the SVG files (default: next to the first input).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// The longest duration an option takes: a year (`1y`), as on the node.
const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// Parses a duration the way the node does (`src/config.rs`): as
/// `humantime` writes one (`250ms`, `10s`, `1m30s`, `1.5s`, `2h`) or a bare
/// number of seconds (`3`), up to a year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bare_seconds = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = if bare_seconds {
        humantime::parse_duration(&format!("{text}s"))
    } else {
        humantime::parse_duration(text)
    };
    let too_long =
        || format!("{text:?} is longer than a year, the longest duration an option takes");
    match parsed {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        Ok(_) => Err(too_long()),
        Err(humantime::DurationError::NumberOverflow) if !text.contains('.') => Err(too_long()),
        Err(e) => Err(format!(
            "{text:?} is not a duration like 500ms, 10s, 1m30s or 2h: {e}"
        )),
    }
}

impl TargetArgs {
    /// The `--servers` list.
    pub fn server_list(&self) -> Vec<String> {
        self.servers
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1y"), Ok(MAX_DURATION));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        for text in ["1y 1s", "99999999999999999999"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("longer than a year"), "{text}: {error}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn servers_split_on_both_separators() {
        let cli = Cli::parse_from([
            "freeim-loadtest",
            "idle",
            "--servers",
            "127.0.0.1:1;127.0.0.1:2, 127.0.0.1:3",
        ]);
        let Scenario::Idle(args) = cli.command else {
            panic!("not idle")
        };
        assert_eq!(args.target.server_list().len(), 3);
    }

    #[test]
    fn slow_reader_options_parse_and_default_off() {
        let parse = |extra: &[&str]| {
            let cli = Cli::parse_from(["freeim-loadtest", "fanout"].iter().chain(extra));
            let Scenario::Fanout(args) = cli.command else {
                panic!("not fanout")
            };
            args
        };
        let plain = parse(&[]);
        assert_eq!(plain.reader(), crate::control::ReaderConfig::default());
        assert_eq!(plain.settle, Duration::ZERO);
        let slow = parse(&[
            "--read-rate",
            "16384",
            "--recv-buffer",
            "4096",
            "--settle",
            "30s",
        ]);
        assert_eq!(slow.reader().read_rate, 16_384);
        assert_eq!(slow.reader().recv_buffer, Some(4096));
        assert_eq!(slow.settle, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["freeim-loadtest", "p2p", "--recv-buffer", "0"]).is_err());
    }
}
