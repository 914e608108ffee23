//! A strict, zero-copy reader of canonical bencode, for the decoder's hot path.
//!
//! This module owns the token-level reading of one datagram: byte strings, integers and the
//! starts and ends of lists and dictionaries, with the checks of canonical bencode (integers and
//! lengths without padding or `-0`, dictionary keys that are byte strings in strictly
//! increasing order, no missing value) and the nesting limit. It allocates nothing and never
//! panics: every read is bounds-checked, and recursion is bounded by the nesting limit.
//!
//! It accepts exactly what bendy's strict decoder (`bendy::decoding::Decoder` with the same
//! maximum depth) accepts; a differential test of [the decoder](mod@super::decode) holds it to
//! that. It replaces bendy on the decoding path because bendy allocates its state stack (2,048
//! levels of an error-sized enum, over 100 KB) for every datagram whatever the depth limit, and
//! spends several times the parse itself on per-token bookkeeping. Every failure is reported as
//! [`RejectReason::Bencode`]; the lenient pass ([`super::lenient`]) classifies it precisely.

use super::error::RejectReason;

/// One token of bencode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// An integer: its digits, with the sign (`-?[1-9][0-9]*` or `0`).
    Int(&'a [u8]),
    /// A byte string's payload.
    Bytes(&'a [u8]),
    /// `l`: a list starts.
    List,
    /// `d`: a dictionary starts.
    Dict,
    /// `e`: the innermost list or dictionary ends.
    End,
}

type Result<T> = std::result::Result<T, RejectReason>;

const BAD: RejectReason = RejectReason::Bencode;

/// A cursor over one buffer of bencode.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes` that allows `max_depth` nested lists and dictionaries.
    pub(crate) fn new(bytes: &'a [u8], max_depth: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            max_depth,
        }
    }

    /// The offset of the next byte to read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The bytes from `start` to the current position.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    /// Reads the next token.
    pub(crate) fn token(&mut self) -> Result<Token<'a>> {
        let first = *self.bytes.get(self.pos).ok_or(BAD)?;
        match first {
            b'e' => {
                self.pos += 1;
                Ok(Token::End)
            }
            b'l' => {
                self.pos += 1;
                Ok(Token::List)
            }
            b'd' => {
                self.pos += 1;
                Ok(Token::Dict)
            }
            b'i' => {
                self.pos += 1;
                self.integer().map(Token::Int)
            }
            b'0'..=b'9' => {
                // The length: `0` or `[1-9][0-9]*`, then `:` (one pass, checked).
                let mut at = self.pos + 1;
                let mut len = usize::from(first - b'0');
                if first != b'0' {
                    while let Some(&c) = self.bytes.get(at).filter(|c| c.is_ascii_digit()) {
                        len = len
                            .checked_mul(10)
                            .and_then(|l| l.checked_add(usize::from(c - b'0')))
                            .ok_or(BAD)?;
                        at += 1;
                    }
                }
                if self.bytes.get(at) != Some(&b':') {
                    return Err(BAD);
                }
                let start = at + 1;
                let end = start.checked_add(len).ok_or(BAD)?;
                let payload = self.bytes.get(start..end).ok_or(BAD)?;
                self.pos = end;
                Ok(Token::Bytes(payload))
            }
            _ => Err(BAD),
        }
    }

    /// Reads a token that must start a value (not `e`).
    pub(crate) fn value(&mut self) -> Result<Token<'a>> {
        match self.token()? {
            Token::End => Err(BAD),
            token => Ok(token),
        }
    }

    /// Reads `-?[1-9][0-9]*` or `0`, then `e`; returns the digits with their sign.
    fn integer(&mut self) -> Result<&'a [u8]> {
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let mut at = usize::from(rest.first() == Some(&b'-'));
        match rest.get(at) {
            Some(b'0') if at == 0 => at += 1,
            Some(b'1'..=b'9') => {
                at += 1;
                while rest.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
            }
            _ => return Err(BAD),
        }
        if rest.get(at) != Some(&b'e') {
            return Err(BAD);
        }
        self.pos = start + at + 1;
        Ok(rest.get(..at).unwrap_or_default())
    }

    /// Checks that a list or dictionary may open inside `open` open ones; returns the new
    /// count.
    pub(crate) fn open(&self, open: usize) -> Result<usize> {
        if open >= self.max_depth {
            Err(RejectReason::Bencode)
        } else {
            Ok(open + 1)
        }
    }

    /// The next key of the dictionary being read, or `None` at its end. `previous` is the last
    /// key read from it (keys must increase strictly); it is updated.
    pub(crate) fn key(&mut self, previous: &mut Option<&'a [u8]>) -> Result<Option<&'a [u8]>> {
        match self.token()? {
            Token::End => Ok(None),
            Token::Bytes(key) => {
                if previous.is_some_and(|p| p >= key) {
                    return Err(BAD);
                }
                *previous = Some(key);
                Ok(Some(key))
            }
            _ => Err(BAD),
        }
    }

    /// Reads (and checks) the rest of a value whose first token was `first`, inside `open`
    /// open lists and dictionaries.
    pub(crate) fn skip(&mut self, first: Token<'a>, open: usize) -> Result<()> {
        match first {
            Token::Int(_) | Token::Bytes(_) => Ok(()),
            Token::End => Err(BAD),
            Token::List => {
                let open = self.open(open)?;
                loop {
                    match self.token()? {
                        Token::End => return Ok(()),
                        item => self.skip(item, open)?,
                    }
                }
            }
            Token::Dict => {
                let open = self.open(open)?;
                let mut previous = None;
                while self.key(&mut previous)?.is_some() {
                    let value = self.value()?;
                    self.skip(value, open)?;
                }
                Ok(())
            }
        }
    }
}

/// Parses canonical integer digits (as [`Token::Int`] gives them) as an `i64`; `None` if out
/// of range.
pub(crate) fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, magnitude) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if magnitude.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &c in magnitude {
        let digit = i64::from(c.wrapping_sub(b'0'));
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Whether `bytes` is exactly one canonical bencoded value within `max_depth` levels.
#[cfg(any(test, feature = "decode-oracle"))]
pub(crate) fn is_single_value(bytes: &[u8], max_depth: usize) -> bool {
    let mut reader = Reader::new(bytes, max_depth);
    reader
        .value()
        .and_then(|first| reader.skip(first, 0))
        .is_ok()
        && reader.at_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(bytes: &[u8]) -> Result<Vec<Token<'_>>> {
        let mut reader = Reader::new(bytes, 32);
        let mut out = Vec::new();
        while !reader.at_end() {
            out.push(reader.token()?);
        }
        Ok(out)
    }

    #[test]
    fn reads_canonical_tokens() {
        assert_eq!(
            tokens(b"d1:ai-12e0:li0eee").unwrap(),
            vec![
                Token::Dict,
                Token::Bytes(b"a"),
                Token::Int(b"-12"),
                Token::Bytes(b""),
                Token::List,
                Token::Int(b"0"),
                Token::End,
                Token::End,
            ]
        );
    }

    #[test]
    fn refuses_padding_and_truncation() {
        for bad in [
            &b"i-0e"[..],
            b"i01e",
            b"ie",
            b"i-e",
            b"i12",
            b"01:a",
            b"2:a",
            b"x",
            b"99999999999999999999999:a",
            b"1a",
        ] {
            assert!(tokens(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn single_values() {
        assert!(is_single_value(b"d1:ai1e1:bli2eee", 32));
        assert!(is_single_value(b"i-5e", 32));
        assert!(!is_single_value(b"d1:bi1e1:ai2ee", 32)); // unsorted
        assert!(!is_single_value(b"d1:ai1e1:ai2ee", 32)); // duplicate
        assert!(!is_single_value(b"d1:ae", 32)); // missing value
        assert!(!is_single_value(b"di1ei2ee", 32)); // integer key
        assert!(!is_single_value(b"i1ei2e", 32)); // two values
        assert!(!is_single_value(b"", 32));
        assert!(!is_single_value(b"e", 32));
        assert!(is_single_value(b"llee", 2));
        assert!(!is_single_value(b"llleee", 2));
    }

    #[test]
    fn integers_parse_like_std() {
        for text in [
            "0",
            "7",
            "-7",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(parse_i64(text.as_bytes()), text.parse().ok(), "{text}");
        }
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b""), None);
    }
}
