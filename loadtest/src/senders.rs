//! The business-service side of the message scenarios: threads calling
//! `send_message`, `send_chan_message` or `send_broadcast_message`, paced on
//! an absolute schedule or flat out, each message a probe carrying its send
//! time and a sequence number.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imhelper::{DirectMessage, ImHelper};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::hist::Latency;
use crate::sys::now_ns;
use crate::tokens::short_error;

/// Who the messages go to.
#[derive(Debug, Clone)]
pub enum Audience {
    /// `send_message(0, [r], …)` to a receiver picked at random.
    Random(Arc<Vec<i64>>),
    /// `send_chan_message(0, chan, …)`.
    Chan(String),
    /// `send_broadcast_message(…)`.
    Broadcast,
}

/// How much to send.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// Sender threads.
    pub threads: usize,
    /// Messages per second, all threads together; 0 = flat out.
    pub rate: f64,
    /// Sending stops after this long…
    pub duration: Duration,
    /// …or after this many messages, whichever comes first.
    pub limit: Option<u64>,
    /// Padding bytes per message.
    pub padding: usize,
    /// Direct messages per imhelper call: 1 calls `send_message`, more call
    /// `send_messages` with that many (only for [`Audience::Random`]).
    pub batch: usize,
}

/// What the senders did.
#[derive(Debug, Clone, Default)]
pub struct SendResult {
    /// Messages in calls that succeeded.
    pub sent: u64,
    /// Messages in calls that failed, by reason.
    pub errors: BTreeMap<String, u64>,
    /// First and last send (monotonic ns).
    pub first_ns: u64,
    /// When the last call returned.
    pub last_ns: u64,
    /// Time per imhelper call.
    pub call: Latency,
    /// How far the paced schedule fell behind at worst, ms.
    pub max_lag_ms: f64,
}

impl SendResult {
    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        let span = self.last_ns.saturating_sub(self.first_ns);
        if span == 0 {
            0.0
        } else {
            self.sent as f64 * 1e9 / span as f64
        }
    }
}

#[derive(Serialize)]
struct Message<'a> {
    t: u64,
    s: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    p: &'a str,
}

/// Runs the plan and waits for every thread.
pub fn send(helper: &Arc<ImHelper>, audience: &Audience, plan: &SendPlan) -> SendResult {
    let seq = Arc::new(AtomicU64::new(0));
    let threads = plan.threads.max(1);
    let start = now_ns() + 1_000_000;
    let end = start + plan.duration.as_nanos() as u64;
    let padding: Arc<str> = padding_text(plan.padding).into();
    let handles: Vec<_> = (0..threads)
        .map(|n| {
            let (helper, audience, seq, padding) = (
                helper.clone(),
                audience.clone(),
                seq.clone(),
                padding.clone(),
            );
            // Calls per second for this thread.
            let per_thread_rate = plan.rate / threads as f64 / plan.batch as f64;
            let (limit, batch) = (plan.limit, plan.batch);
            std::thread::Builder::new()
                .name(format!("sender-{n}"))
                .spawn(move || {
                    let interval = (per_thread_rate > 0.0).then(|| 1e9 / per_thread_rate);
                    // Threads start staggered over one interval.
                    let offset = interval.map_or(0.0, |i| i * n as f64 / threads as f64);
                    sender_thread(SenderJob {
                        helper: &helper,
                        audience: &audience,
                        seq: &seq,
                        padding: &padding,
                        start: start + offset as u64,
                        end,
                        interval,
                        limit,
                        batch,
                        seed: now_ns() ^ n as u64,
                    })
                })
                .expect("spawn a sender thread")
        })
        .collect();
    let mut total = SendResult::default();
    for handle in handles {
        let r = handle.join().unwrap_or_default();
        total.sent += r.sent;
        for (k, v) in r.errors {
            *total.errors.entry(k).or_insert(0) += v;
        }
        total.first_ns = match (total.first_ns, r.first_ns) {
            (0, x) | (x, 0) => x,
            (a, b) => a.min(b),
        };
        total.last_ns = total.last_ns.max(r.last_ns);
        total.call.add_sparse(&r.call.to_sparse());
        total.max_lag_ms = total.max_lag_ms.max(r.max_lag_ms);
    }
    total
}

/// `len` bytes of chat-like text (words, names and numbers drawn from a
/// fixed seed), so that compressed messages (permessage-deflate) shrink
/// about as real chat JSON does, not a hundredfold as a run of one letter.
pub fn padding_text(len: usize) -> String {
    const WORDS: [&str; 24] = [
        "see", "you", "at", "the", "station", "tomorrow", "morning", "alice", "bob", "meeting",
        "moved", "to", "room", "please", "bring", "tickets", "and", "coffee", "ok", "thanks",
        "running", "late", "lunch", "order",
    ];
    let mut rng = SmallRng::seed_from_u64(7);
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        match rng.random_range(0..8) {
            0 => text.push_str(&rng.random_range(0..100_000u32).to_string()),
            _ => text.push_str(WORDS[rng.random_range(0..WORDS.len())]),
        }
        text.push(' ');
    }
    text.truncate(len);
    text
}

struct SenderJob<'a> {
    helper: &'a ImHelper,
    audience: &'a Audience,
    seq: &'a AtomicU64,
    padding: &'a str,
    start: u64,
    end: u64,
    interval: Option<f64>,
    limit: Option<u64>,
    batch: usize,
    seed: u64,
}

fn sender_thread(job: SenderJob<'_>) -> SendResult {
    let mut rng = SmallRng::seed_from_u64(job.seed);
    let mut result = SendResult::default();
    let mut slot: u64 = 0;
    loop {
        let mut now = now_ns();
        if let Some(interval) = job.interval {
            let due = job.start + (slot as f64 * interval) as u64;
            slot += 1;
            if due >= job.end {
                break;
            }
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
                now = now_ns();
            } else {
                result.max_lag_ms = result.max_lag_ms.max((now - due) as f64 / 1e6);
            }
        } else if now < job.start {
            std::thread::sleep(Duration::from_nanos(job.start - now));
            now = now_ns();
        }
        if now >= job.end {
            break;
        }
        let batch = match job.audience {
            Audience::Random(_) => job.batch.max(1) as u64,
            Audience::Chan(_) | Audience::Broadcast => 1,
        };
        let first = job.seq.fetch_add(batch, Ordering::Relaxed);
        let last = job
            .limit
            .map_or(first + batch, |limit| limit.min(first + batch));
        if first >= last {
            break;
        }
        let t = now_ns();
        let probes: Vec<Message> = (first..last)
            .map(|s| Message {
                t,
                s,
                p: job.padding,
            })
            .collect();
        let outcome = match job.audience {
            Audience::Random(ids) => {
                let receivers: Vec<i64> = probes
                    .iter()
                    .map(|_| ids[rng.random_range(0..ids.len())])
                    .collect();
                match &probes[..] {
                    [probe] => job.helper.send_message(0, &receivers, probe, false),
                    _ => job.helper.send_messages(
                        &probes
                            .iter()
                            .zip(&receivers)
                            .map(|(probe, receiver)| DirectMessage {
                                sender: 0,
                                receivers: std::slice::from_ref(receiver),
                                message: probe,
                                receipt: false,
                            })
                            .collect::<Vec<_>>(),
                    ),
                }
            }
            Audience::Chan(chan) => job.helper.send_chan_message(0, chan, &probes[0]),
            Audience::Broadcast => job.helper.send_broadcast_message(&probes[0]),
        };
        let done = now_ns();
        result.call.record_ns(done - t);
        let count = last - first;
        match outcome {
            Ok(()) => {
                result.sent += count;
                if result.first_ns == 0 {
                    result.first_ns = t;
                }
                result.last_ns = done;
            }
            Err(e) => *result.errors.entry(short_error(&e)).or_insert(0) += count,
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::padding_text;

    #[test]
    fn padding_is_chat_like_text_of_the_length_asked() {
        for len in [0, 1, 100, 1024] {
            assert_eq!(padding_text(len).len(), len);
        }
        assert_eq!(padding_text(1024), padding_text(1024), "the same every run");
        assert!(padding_text(1024).contains(' '));
    }
}
