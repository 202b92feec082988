//! RFC 6455 WebSocket framing, sans-io: bytes in, events out; frames out into
//! a caller's `Vec`. Nothing here touches a socket.
//!
//! ## Layout
//! - [`frame`]: opcodes, frame header parsing and encoding
//!   ([`encode_frame`], [`frame_header`], [`encode_masked_frame`]).
//! - [`mask`]: payload masking with a word-at-a-time fast path.
//! - [`utf8`]: incremental UTF-8 validation for fragmented text.
//! - [`close`]: close codes, close payload validation, [`encode_close`].
//! - [`reader`]: [`MessageReader`], the streaming server-side decoder.
//! - [`deflate`], [`inflate`]: permessage-deflate (RFC 7692 §7.2) without
//!   context takeover: a message compressed once for every receiver, a
//!   client's message inflated within the size limit; one compressor and
//!   one inflater per thread, none per connection.
//! - [`error`]: [`ProtocolError`] and the close code each error maps to.
//!
//! ## Reading
//! ```
//! use freeim_server::ws::{Event, MessageReader, ReaderConfig, encode_masked_frame, OpCode};
//!
//! let mut input = Vec::new();
//! encode_masked_frame(&mut input, OpCode::Ping, true, b"hi", [1, 2, 3, 4]);
//! let mut reader = MessageReader::new(ReaderConfig::default());
//! let mut pos = 0;
//! while pos < input.len() {
//!     let (used, event) = reader.read(&mut input[pos..]).unwrap();
//!     pos += used;
//!     if let Some(event) = event {
//!         assert_eq!(event, Event::Ping(b"hi".to_vec()));
//!     }
//! }
//! assert!(reader.is_idle());
//! ```

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod inflate;
pub mod mask;
pub mod reader;
pub mod utf8;

pub use close::{code, encode_close, CloseFrame};
pub use error::ProtocolError;
pub use frame::{encode_frame, encode_masked_frame, frame_header, OpCode, MAX_HEADER_LEN};
pub use mask::apply_mask;
pub use reader::{Event, MessageReader, ReaderConfig};
