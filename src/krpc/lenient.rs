//! A lenient bencode reader for input bendy refuses.
//!
//! Real implementations are supposed to send canonical bencode (sorted, unique keys; minimal
//! integers), and all captured traffic is. When a datagram is not, this module parses it with
//! the same size and nesting limits, and rewrites it canonically: keys sorted, the first of
//! duplicate keys kept, integers and lengths without padding. It also tells precisely why
//! input that is not bencode at all was rejected. Its memory use is linear in the input size.

use super::encode::{put_bytes, put_raw_int};
use super::error::RejectReason;

enum Value<'a> {
    /// Sign and digits without leading zeros ("0" for zero).
    Int(bool, &'a [u8]),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

/// Rewrites a bencoded dictionary canonically, or says why it is not one.
pub(crate) fn canonicalize(bytes: &[u8], max_depth: usize) -> Result<Vec<u8>, RejectReason> {
    let mut parser = Parser {
        bytes,
        pos: 0,
        max_depth,
    };
    let value = parser.value(0)?;
    if parser.pos != bytes.len() {
        return Err(RejectReason::TrailingData);
    }
    if !matches!(value, Value::Dict(_)) {
        return Err(RejectReason::NotADict);
    }
    let mut out = Vec::with_capacity(bytes.len());
    write(&value, &mut out);
    Ok(out)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, RejectReason> {
        match self.peek().ok_or(RejectReason::Bencode)? {
            b'i' => {
                self.pos += 1;
                let (negative, digits) = self.digits(b'e', true)?;
                Ok(Value::Int(negative, digits))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.string()?)),
            b'l' => {
                self.enter(depth)?;
                let mut items = Vec::new();
                while self.peek() != Some(b'e') {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.enter(depth)?;
                let mut pairs: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                while self.peek() != Some(b'e') {
                    match self.peek() {
                        Some(b'0'..=b'9') => {}
                        _ => return Err(RejectReason::Bencode),
                    }
                    let key = self.string()?;
                    let value = self.value(depth + 1)?;
                    pairs.push((key, value));
                }
                self.pos += 1;
                // Stable sort, then keep the first of each run of equal keys.
                pairs.sort_by(|a, b| a.0.cmp(b.0));
                pairs.dedup_by(|later, earlier| later.0 == earlier.0);
                Ok(Value::Dict(pairs))
            }
            _ => Err(RejectReason::Bencode),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), RejectReason> {
        if depth + 1 > self.max_depth {
            return Err(RejectReason::TooDeep);
        }
        self.pos += 1;
        Ok(())
    }

    /// Reads `[-]digits` up to `terminator`; returns the sign and the digits with leading
    /// zeros removed.
    fn digits(&mut self, terminator: u8, signed: bool) -> Result<(bool, &'a [u8]), RejectReason> {
        let mut negative = false;
        if signed && self.peek() == Some(b'-') {
            negative = true;
            self.pos += 1;
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.pos += 1;
            } else {
                break;
            }
        }
        let digits = &self.bytes[start..self.pos];
        if digits.is_empty() || self.peek() != Some(terminator) {
            return Err(RejectReason::Bencode);
        }
        self.pos += 1;
        let first_nonzero = digits.iter().position(|&c| c != b'0');
        Ok(match first_nonzero {
            Some(at) => (negative, &digits[at..]),
            None => (false, &b"0"[..]),
        })
    }

    fn string(&mut self) -> Result<&'a [u8], RejectReason> {
        let (_, digits) = self.digits(b':', false)?;
        let mut len: usize = 0;
        for &c in digits {
            len = len
                .checked_mul(10)
                .and_then(|l| l.checked_add(usize::from(c - b'0')))
                .ok_or(RejectReason::Bencode)?;
        }
        let end = self.pos.checked_add(len).ok_or(RejectReason::Bencode)?;
        let payload = self.bytes.get(self.pos..end).ok_or(RejectReason::Bencode)?;
        self.pos = end;
        Ok(payload)
    }
}

fn write(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(negative, digits) => put_raw_int(out, *negative, digits),
        Value::Bytes(bytes) => put_bytes(out, bytes),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                write(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(pairs) => {
            out.push(b'd');
            for (key, value) in pairs {
                put_bytes(out, key);
                write(value, out);
            }
            out.push(b'e');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedups_and_unpads() {
        let out = canonicalize(b"d1:bi007e1:ai-0e1:b1:x03:abci1ee", 8).unwrap();
        // Keys sort bytewise ("a" < "abc" < "b"); the first "b" (7) is kept; integers are minimal.
        assert_eq!(out, b"d1:ai0e3:abci1e1:bi7ee".to_vec());
    }

    #[test]
    fn classifies_failures() {
        assert_eq!(canonicalize(b"", 8), Err(RejectReason::Bencode));
        assert_eq!(canonicalize(b"d1:a", 8), Err(RejectReason::Bencode));
        assert_eq!(canonicalize(b"de1", 8), Err(RejectReason::TrailingData));
        assert_eq!(canonicalize(b"li1ee", 8), Err(RejectReason::NotADict));
        assert_eq!(
            canonicalize(b"d1:alllleeeee", 3),
            Err(RejectReason::TooDeep)
        );
        assert_eq!(
            canonicalize(b"d99999999999999999999999:ae", 8),
            Err(RejectReason::Bencode)
        );
        assert_eq!(canonicalize(b"di1ei2ee", 8), Err(RejectReason::Bencode));
    }
}
