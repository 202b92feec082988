//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split across frames and reads at any byte, even in
//! the middle of a code point. [`Utf8Validator`] keeps at most three bytes of
//! an incomplete trailing code point between pieces and reports an invalid
//! sequence as soon as the offending byte is seen ("fail fast"), not only at
//! the end of the message.

use std::str;

/// The input is not valid UTF-8.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("invalid UTF-8")]
pub struct InvalidUtf8;

/// Streaming UTF-8 validator: 4 bytes of state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Utf8Validator {
    /// The start of an incomplete code point left over from the last piece.
    pending: [u8; 3],
    /// How many bytes of `pending` are in use (0–3).
    pending_len: u8,
}

/// The length of the code point that starts with `lead`, for lead bytes that
/// `str::from_utf8` accepts as the start of an incomplete sequence.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            pending: [0; 3],
            pending_len: 0,
        }
    }

    /// Forgets any pending bytes, ready for a new message.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Whether the input so far ends in the middle of a code point.
    pub fn is_incomplete(&self) -> bool {
        self.pending_len != 0
    }

    /// Validates the next piece of the message. Fails as soon as the bytes
    /// seen so far cannot be the start of valid UTF-8.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            input = self.complete_pending(input)?;
            if self.pending_len > 0 {
                // The whole input went into the pending code point.
                return Ok(());
            }
        }
        match str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // A valid but incomplete code point at the end: at most 3 bytes.
                let tail = input.get(e.valid_up_to()..).unwrap_or_default();
                self.store_pending(tail)
            }
        }
    }

    /// Checks that the message does not end in the middle of a code point.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.is_incomplete() {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Moves bytes from `input` into the pending code point until it is
    /// complete or `input` is exhausted; returns the rest of `input`.
    fn complete_pending<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = usize::from(self.pending_len);
        let mut seq = [0u8; 4];
        seq[..have].copy_from_slice(&self.pending[..have]);
        let want = sequence_len(seq[0]);
        let take = want.saturating_sub(have).min(input.len());
        let (head, rest) = input.split_at(take);
        let total = have + take;
        seq[have..total].copy_from_slice(head);
        match str::from_utf8(&seq[..total]) {
            Ok(_) => {
                self.pending_len = 0;
                Ok(rest)
            }
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(_) => {
                // Still a valid prefix; `rest` is empty here.
                self.store_pending(&seq[..total])?;
                Ok(rest)
            }
        }
    }

    fn store_pending(&mut self, tail: &[u8]) -> Result<(), InvalidUtf8> {
        let slot = self.pending.get_mut(..tail.len()).ok_or(InvalidUtf8)?;
        slot.copy_from_slice(tail);
        // `tail.len()` fits: `pending` has 3 bytes.
        self.pending_len = tail.len() as u8;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_split(bytes: &[u8], splits: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &end in splits.iter().chain(std::iter::once(&bytes.len())) {
            v.feed(&bytes[start..end])?;
            start = end;
        }
        v.finish()
    }

    const SAMPLES: &[&[u8]] = &[
        b"",
        b"hello",
        "κόσμε".as_bytes(),
        "héllo wörld €100 𝄞 \u{10FFFF}".as_bytes(),
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
        b"\xf4\x90\x80\x80",                                               // > U+10FFFF
        b"\xc0\xaf",                                                       // overlong
        b"\xe0\x80\xaf",                                                   // overlong
        b"abc\xff",
        b"\xe2\x82",     // truncated at the end
        b"\xf0\x9d\x84", // truncated 4-byte
        b"\x80",
    ];

    #[test]
    fn every_split_agrees_with_std() {
        for sample in SAMPLES {
            let expected = str::from_utf8(sample).is_ok();
            for a in 0..=sample.len() {
                for b in a..=sample.len() {
                    let got = validate_split(sample, &[a, b]).is_ok();
                    assert_eq!(got, expected, "{sample:x?} split at {a},{b}");
                }
            }
        }
    }

    #[test]
    fn byte_at_a_time_agrees_with_std() {
        for sample in SAMPLES {
            let splits: Vec<usize> = (1..sample.len()).collect();
            assert_eq!(
                validate_split(sample, &splits).is_ok(),
                str::from_utf8(sample).is_ok(),
                "{sample:x?}"
            );
        }
    }

    #[test]
    fn fails_fast_before_the_message_ends() {
        // Each case: valid prefix fed first, then the byte that makes it invalid
        // must be rejected by that very `feed`, not only by `finish`.
        let cases: &[(&[u8], &[u8])] = &[
            (b"\xce", b"\x41"),             // lead then ASCII
            (b"\xed", b"\xa0"),             // surrogate start
            (b"\xf4", b"\x90"),             // above U+10FFFF
            (b"\xf0\x9d", b"\x41"),         // 4-byte broken in the middle
            (b"ok", b"\xff"),               // never valid
            (b"\xe0", b"\x80"),             // overlong 3-byte
            (b"partial \xe2\x82", b"\x28"), // broken in the next piece
        ];
        for (good, bad) in cases {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(good), Ok(()), "{good:x?}");
            assert_eq!(v.feed(bad), Err(InvalidUtf8), "{good:x?} + {bad:x?}");
        }
        // Invalid inside a single piece is caught at once as well.
        assert_eq!(
            Utf8Validator::new().feed(b"\xce\xba\xf4\x90\x80\x80 and more"),
            Err(InvalidUtf8)
        );
    }

    #[test]
    fn keeps_at_most_three_bytes() {
        let mut v = Utf8Validator::new();
        v.feed(b"x\xf0\x9d\x84").unwrap();
        assert!(v.is_incomplete());
        v.feed(b"\x9e").unwrap();
        assert!(!v.is_incomplete());
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn reset_forgets_pending_bytes() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2").unwrap();
        v.reset();
        assert_eq!(v.finish(), Ok(()));
        assert_eq!(std::mem::size_of::<Utf8Validator>(), 4);
    }
}
