//! Why a datagram was rejected, and the error reply a malformed query must get.

use std::fmt;

use super::{ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, Message};

/// Why an incoming datagram was not accepted as a message. Each reason is a counter in the
/// node's statistics ([`RejectReason::ALL`] lists them in a fixed order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Larger than one UDP datagram.
    TooLarge,
    /// Not valid bencode (syntax error or truncated).
    Bencode,
    /// Nested deeper than the decoder's limit.
    TooDeep,
    /// Bytes after the top-level dictionary.
    TrailingData,
    /// The top-level value is not a dictionary.
    NotADict,
    /// `t` missing or not a byte string.
    MissingTransactionId,
    /// `y` missing or not a byte string.
    MissingType,
    /// `y` is not `q`, `r` or `e`.
    UnknownType,
    /// A query without a method name `q`.
    MissingMethod,
    /// A query without an argument dictionary `a`.
    MissingArguments,
    /// A query whose method btdht does not know (answered with 204).
    UnknownMethod,
    /// `id` missing, or not 20 bytes.
    BadId,
    /// `target` missing, or not 20 bytes.
    BadTarget,
    /// `info_hash` missing, or not 20 bytes.
    BadInfoHash,
    /// `token` missing or not a byte string.
    BadToken,
    /// `port` missing, not an integer, or outside 1-65535.
    BadPort,
    /// A BEP 44 field (`v`, `k`, `sig`, `salt`, `seq`, `cas`) missing or malformed.
    BadItem,
    /// A response without a dictionary `r`.
    MissingReply,
    /// `nodes` / `nodes6` not a byte string.
    BadNodes,
    /// `values` not a list.
    BadValues,
    /// BEP 51 fields (`samples`, `interval`, `num`) of the wrong type.
    BadSamples,
    /// An error message whose `e` is not `[code, message]`.
    BadError,
    /// Another known field has the wrong type (`want`, flags).
    BadField,
}

impl RejectReason {
    /// Every reason, in the order statistics report them.
    pub const ALL: [RejectReason; 23] = [
        RejectReason::TooLarge,
        RejectReason::Bencode,
        RejectReason::TooDeep,
        RejectReason::TrailingData,
        RejectReason::NotADict,
        RejectReason::MissingTransactionId,
        RejectReason::MissingType,
        RejectReason::UnknownType,
        RejectReason::MissingMethod,
        RejectReason::MissingArguments,
        RejectReason::UnknownMethod,
        RejectReason::BadId,
        RejectReason::BadTarget,
        RejectReason::BadInfoHash,
        RejectReason::BadToken,
        RejectReason::BadPort,
        RejectReason::BadItem,
        RejectReason::MissingReply,
        RejectReason::BadNodes,
        RejectReason::BadValues,
        RejectReason::BadSamples,
        RejectReason::BadError,
        RejectReason::BadField,
    ];

    /// The position of this reason in [`RejectReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for statistics and logs.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::Bencode => "bencode",
            RejectReason::TooDeep => "too_deep",
            RejectReason::TrailingData => "trailing_data",
            RejectReason::NotADict => "not_a_dict",
            RejectReason::MissingTransactionId => "missing_transaction_id",
            RejectReason::MissingType => "missing_type",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::MissingMethod => "missing_method",
            RejectReason::MissingArguments => "missing_arguments",
            RejectReason::UnknownMethod => "unknown_method",
            RejectReason::BadId => "bad_id",
            RejectReason::BadTarget => "bad_target",
            RejectReason::BadInfoHash => "bad_info_hash",
            RejectReason::BadToken => "bad_token",
            RejectReason::BadPort => "bad_port",
            RejectReason::BadItem => "bad_item",
            RejectReason::MissingReply => "missing_reply",
            RejectReason::BadNodes => "bad_nodes",
            RejectReason::BadValues => "bad_values",
            RejectReason::BadSamples => "bad_samples",
            RejectReason::BadError => "bad_error",
            RejectReason::BadField => "bad_field",
        }
    }

    /// The short reason sent in a 203 reply to a query rejected for this reason.
    pub fn protocol_message(self) -> &'static str {
        match self {
            RejectReason::MissingMethod => "missing method",
            RejectReason::MissingArguments => "missing arguments",
            RejectReason::UnknownMethod => "method unknown",
            RejectReason::BadId => "invalid id",
            RejectReason::BadTarget => "invalid target",
            RejectReason::BadInfoHash => "invalid info_hash",
            RejectReason::BadToken => "missing token",
            RejectReason::BadPort => "invalid port",
            RejectReason::BadItem => "invalid item",
            RejectReason::BadField => "invalid argument",
            _ => "malformed message",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error a malformed query must be answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// The query's transaction id, echoed.
    pub transaction_id: Vec<u8>,
    /// 203 (protocol error) or 204 (method unknown).
    pub code: i64,
    /// A short reason.
    pub message: &'static str,
}

impl ErrorReply {
    pub(crate) fn for_query(transaction_id: &[u8], reason: RejectReason) -> Self {
        let code = if reason == RejectReason::UnknownMethod {
            ERROR_METHOD_UNKNOWN
        } else {
            ERROR_PROTOCOL
        };
        ErrorReply {
            transaction_id: transaction_id.to_vec(),
            code,
            message: reason.protocol_message(),
        }
    }

    /// The reply as a message, ready to encode.
    pub fn to_message(&self) -> Message {
        Message::error(self.transaction_id.clone(), self.code, self.message)
    }
}

/// A datagram that did not decode to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Why it was rejected.
    pub reason: RejectReason,
    /// For a malformed query that carried a transaction id: the error to answer with.
    pub reply: Option<ErrorReply>,
}

impl DecodeError {
    pub(crate) fn drop(reason: RejectReason) -> Self {
        DecodeError {
            reason,
            reply: None,
        }
    }

    pub(crate) fn answer(reason: RejectReason, transaction_id: &[u8]) -> Self {
        DecodeError {
            reason,
            reply: Some(ErrorReply::for_query(transaction_id, reason)),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reply {
            Some(reply) => write!(
                f,
                "rejected ({}), answer {} {}",
                self.reason, reply.code, reply.message
            ),
            None => write!(f, "rejected ({})", self.reason),
        }
    }
}

impl std::error::Error for DecodeError {}
