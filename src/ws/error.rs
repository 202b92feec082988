//! Protocol violations detected while decoding frames received from a client.
//!
//! Each variant maps to the close code the server should send before it fails
//! the connection (RFC 6455 §7.4.1), see [`ProtocolError::close_code`].

use super::close::code;

/// A violation of RFC 6455 by the peer. The connection must be failed: send a
/// close frame with [`ProtocolError::close_code`] and stop reading.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A client sent a frame without the mask bit (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// One of RSV1–RSV3 is set although no extension defines it here: RSV2
    /// or RSV3 ever, RSV1 without permessage-deflate or on a frame other
    /// than a data message's first (RFC 7692 §6.1). Holds the three bits as
    /// a number 1–7.
    #[error("reserved bits set ({0:#05b})")]
    ReservedBits(u8),
    /// The opcode is one of the reserved values 0x3–0x7 or 0xB–0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpCode(u8),
    /// A control frame (close, ping, pong) without the FIN bit.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame whose payload is longer than 125 bytes.
    #[error("control frame payload longer than 125 bytes")]
    ControlFrameTooBig,
    /// A 64-bit payload length with its most significant bit set.
    #[error("64-bit payload length has its most significant bit set")]
    InvalidPayloadLength,
    /// A continuation frame arrived while no fragmented message was open.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A text or binary frame arrived while a fragmented message was still open.
    #[error("new data frame while a fragmented message is open")]
    ExpectedContinuation,
    /// A close frame whose payload is one byte long (a code needs two).
    #[error("close payload of one byte")]
    InvalidClosePayload,
    /// A close frame carrying a code that may not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// The reason in a close frame is not valid UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A text message is not valid UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A compressed message (permessage-deflate) whose data is not valid
    /// DEFLATE (RFC 7692 §7.2.2).
    #[error("compressed message is not valid DEFLATE data")]
    InvalidCompressedData,
    /// A compressed message refers back before its own start: the client
    /// kept its compressor's context between messages although the node
    /// answered `client_no_context_takeover` (RFC 7692 §7.1.1.2).
    #[error(
        "compressed message refers back before its start (client_no_context_takeover was agreed)"
    )]
    CompressedContextTakeover,
    /// A frame announced a payload longer than the configured frame limit.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    FrameTooBig {
        /// The payload length announced in the header.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A message grew beyond the configured message limit.
    #[error("message of at least {len} bytes exceeds the limit of {max}")]
    MessageTooBig {
        /// The message length including the frame that broke the limit.
        len: u64,
        /// The configured limit.
        max: u64,
    },
}

impl ProtocolError {
    /// The close code to send when failing the connection because of this
    /// error: 1007 for invalid UTF-8 (in a text message or a close reason)
    /// and for compressed data that does not inflate, 1009 for size limits
    /// (of the inflated message too), 1002 for everything else.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8
            | Self::InvalidCloseReason
            | Self::InvalidCompressedData
            | Self::CompressedContextTakeover => code::INVALID_DATA,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => code::TOO_BIG,
            Self::UnmaskedFrame
            | Self::ReservedBits(_)
            | Self::ReservedOpCode(_)
            | Self::FragmentedControlFrame
            | Self::ControlFrameTooBig
            | Self::InvalidPayloadLength
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::InvalidClosePayload
            | Self::InvalidCloseCode(_) => code::PROTOCOL,
        }
    }
}
