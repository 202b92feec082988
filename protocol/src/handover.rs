//! **[ext]** The markers of a node hand-over (a hot upgrade), published on the
//! node's own command channel `{prefix}Server{server}`.
//!
//! Redis delivers the messages of one channel to every subscriber in publish
//! order, so a marker is seen at the same place in the stream by the process
//! handing its connections over and by the one taking them: the cut is exact.
//! A marker is `freeim-handover:<step>:<id>`, `<id>` the hand-over's
//! lowercase hex id; FreeIM never publishes it, and a node that does not
//! expect it ignores it (it is not a FreeIM command).
//!
//! | step | published by | means |
//! |---|---|---|
//! | `cut` | the old process | commands before it are the old process's to deliver, those after it the new one's |
//! | `abort` | the old process | the hand-over failed: the old process delivers what it held since the cut |
//! | `go` | the new process | the new process holds every connection: it delivers what it held since the cut |

/// A step of a hand-over, see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Where the stream is cut between the two processes.
    Cut,
    /// The old process keeps its connections.
    Abort,
    /// The new process holds the connections.
    Go,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Cut => "cut",
            Step::Abort => "abort",
            Step::Go => "go",
        }
    }
}

const PREFIX: &str = "freeim-handover:";

/// The marker payload of `step` of hand-over `id`.
pub fn marker(step: Step, id: u64) -> String {
    format!("{PREFIX}{}:{id:x}", step.name())
}

/// The step and id a payload marks, or `None` when it is no marker (a
/// command: they start with `{`).
pub fn parse_marker(payload: &[u8]) -> Option<(Step, u64)> {
    let rest = std::str::from_utf8(payload.strip_prefix(PREFIX.as_bytes())?).ok()?;
    let (step, id) = rest.split_once(':')?;
    let step = [Step::Cut, Step::Abort, Step::Go]
        .into_iter()
        .find(|s| s.name() == step)?;
    Some((step, u64::from_str_radix(id, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_commands_are_not_markers() {
        assert_eq!(marker(Step::Cut, 0xbeef), "freeim-handover:cut:beef");
        for step in [Step::Cut, Step::Abort, Step::Go] {
            assert_eq!(parse_marker(marker(step, 7).as_bytes()), Some((step, 7)));
        }
        assert_eq!(parse_marker(br#"{"senderClientId":1}"#), None);
        assert_eq!(parse_marker(b"freeim-handover:later:1"), None);
        assert_eq!(parse_marker(b"freeim-handover:cut:xyz"), None);
    }
}
