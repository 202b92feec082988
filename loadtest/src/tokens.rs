//! Connect tokens, fetched the way a business service does: each one with
//! `imhelper::ImHelper::prev_connect_server`, from several threads at once so
//! that Redis round-trips overlap and token creation does not pace the test.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use imhelper::ImHelper;
use mio::Waker;

/// A token answer: the client, and its URL or why there is none.
pub type TokenAnswer = (i64, Result<String, String>);

/// Threads that turn client ids into connect URLs.
pub struct TokenPool {
    requests: Sender<i64>,
    answers: Receiver<TokenAnswer>,
}

impl TokenPool {
    /// Starts `threads` threads sharing `helper`; each answer wakes `waker`.
    pub fn start(
        helper: Arc<ImHelper>,
        threads: usize,
        meta: String,
        waker: Arc<Waker>,
    ) -> std::io::Result<TokenPool> {
        let (requests, jobs) = crossbeam_channel::unbounded::<i64>();
        let (done, answers) = crossbeam_channel::unbounded();
        for n in 0..threads.max(1) {
            let (helper, jobs, done, waker, meta) = (
                helper.clone(),
                jobs.clone(),
                done.clone(),
                waker.clone(),
                meta.clone(),
            );
            std::thread::Builder::new()
                .name(format!("tokens-{n}"))
                .spawn(move || {
                    for id in jobs {
                        let answer = helper
                            .prev_connect_server(id, &meta)
                            .map_err(|e| short_error(&e));
                        if done.send((id, answer)).is_err() {
                            return;
                        }
                        let _ = waker.wake();
                    }
                })?;
        }
        Ok(TokenPool { requests, answers })
    }

    /// Asks for a token for `id`.
    pub fn request(&self, id: i64) {
        let _ = self.requests.send(id);
    }

    /// The answers that arrived so far.
    pub fn answers(&self) -> &Receiver<TokenAnswer> {
        &self.answers
    }
}

/// A short failure reason for an imhelper error.
pub fn short_error(error: &imhelper::Error) -> String {
    match error {
        imhelper::Error::Redis(e) if e.is_timeout() => "token_redis_timeout".into(),
        imhelper::Error::Redis(_) => "token_redis_error".into(),
        imhelper::Error::Unrouted { .. } => "unrouted".into(),
        imhelper::Error::Config(_) => "config".into(),
        _ => "token_error".into(),
    }
}
