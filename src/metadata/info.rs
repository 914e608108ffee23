//! The info dictionary of a torrent: parsing it into [`Info`], and the `.torrent` file around it.
//!
//! Both layouts are read: BEP 3's (`length`, or `files` with `path` lists) and BEP 52's
//! (`meta version` 2 with a `file tree`); a hybrid torrent has both, and its v1 file list is
//! used. Names and paths prefer the `.utf-8` keys when they are valid UTF-8, and are decoded
//! lossily otherwise. BEP 47 padding files are left out of the files and the size. The number
//! of files kept is capped (the total size still counts them all). The dictionary is read with
//! the crate's strict bencode reader, within a nesting limit.

use std::fmt;

use crate::krpc::reader::{Reader, Token, parse_i64};

/// Nesting allowed in an info dictionary (a v2 file tree nests once per directory level).
pub const MAX_DEPTH: usize = 64;
/// The default cap on the files kept in [`Info::files`].
pub const DEFAULT_MAX_FILES: usize = 10_000;

/// The metadata version of a torrent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    /// BEP 3 only.
    V1,
    /// BEP 52 only.
    V2,
    /// Both layouts (BEP 52 hybrid).
    Hybrid,
}

impl MetaVersion {
    /// `"v1"`, `"v2"` or `"hybrid"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetaVersion::V1 => "v1",
            MetaVersion::V2 => "v2",
            MetaVersion::Hybrid => "hybrid",
        }
    }
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Its path components under the torrent's name (empty for a single-file torrent).
    pub path: Vec<String>,
    /// Its length in bytes.
    pub length: u64,
}

impl FileEntry {
    /// The path components joined with `/`.
    pub fn path_string(&self) -> String {
        self.path.join("/")
    }
}

/// A parsed info dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name (the file's name, or the top directory's).
    pub name: String,
    /// The sum of the lengths of all its files (padding files excluded).
    pub total_size: u64,
    /// The piece length.
    pub piece_length: u64,
    /// Its files, at most the cap given to [`Info::parse`].
    pub files: Vec<FileEntry>,
    /// How many files it has in all (more than `files.len()` when capped).
    pub file_count: u64,
    /// The `private` flag (BEP 27).
    pub private: bool,
    /// Its metadata version.
    pub version: MetaVersion,
}

/// Why an info dictionary was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoError {
    /// Not one well-formed bencoded value within the nesting limit.
    Bencode,
    /// Not a dictionary.
    NotADict,
    /// A required key is missing.
    Missing(&'static str),
    /// A key has a value of the wrong type or range.
    Invalid(&'static str),
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoError::Bencode => f.write_str("not valid bencode"),
            InfoError::NotADict => f.write_str("not a dictionary"),
            InfoError::Missing(key) => write!(f, "no `{key}`"),
            InfoError::Invalid(key) => write!(f, "invalid `{key}`"),
        }
    }
}

impl std::error::Error for InfoError {}

/// The bytes of a `.torrent` file holding `info` as it is: `d4:info<info>e`. Nothing else is
/// added, so the file's info-hash is the hash of `info`.
pub fn torrent_file(info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(info.len() + 8);
    out.extend_from_slice(b"d4:info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// A bencoded value borrowed from the input.
enum Value<'a> {
    Int(&'a [u8]),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    fn read(reader: &mut Reader<'a>, first: Token<'a>, open: usize) -> Result<Self, InfoError> {
        Ok(match first {
            Token::Int(digits) => Value::Int(digits),
            Token::Bytes(bytes) => Value::Bytes(bytes),
            Token::End => return Err(InfoError::Bencode),
            Token::List => {
                let open = reader.open(open).map_err(|_| InfoError::Bencode)?;
                let mut items = Vec::new();
                loop {
                    match reader.token().map_err(|_| InfoError::Bencode)? {
                        Token::End => break,
                        token => items.push(Value::read(reader, token, open)?),
                    }
                }
                Value::List(items)
            }
            Token::Dict => {
                let open = reader.open(open).map_err(|_| InfoError::Bencode)?;
                let mut entries = Vec::new();
                let mut previous = None;
                while let Some(key) = reader.key(&mut previous).map_err(|_| InfoError::Bencode)? {
                    let token = reader.value().map_err(|_| InfoError::Bencode)?;
                    entries.push((key, Value::read(reader, token, open)?));
                }
                Value::Dict(entries)
            }
        })
    }

    fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Dict(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Value::Int(digits) => parse_i64(digits),
            _ => None,
        }
    }

    fn bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// A text value: the `.utf-8` variant when it is valid UTF-8, else the plain one, lossily.
fn text(dict: &Value<'_>, key: &'static str, utf8_key: &str) -> Option<String> {
    if let Some(Ok(s)) = dict
        .get(utf8_key.as_bytes())
        .and_then(Value::bytes)
        .map(std::str::from_utf8)
    {
        return Some(s.to_owned());
    }
    dict.get(key.as_bytes())
        .and_then(Value::bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn length(value: Option<&Value<'_>>, key: &'static str) -> Result<u64, InfoError> {
    let value = value.ok_or(InfoError::Missing(key))?;
    value
        .int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(InfoError::Invalid(key))
}

/// Files counted while parsing, keeping at most `cap`.
struct Files {
    kept: Vec<FileEntry>,
    count: u64,
    total: u64,
    cap: usize,
}

impl Files {
    fn push(&mut self, path: impl FnOnce() -> Vec<String>, len: u64) -> Result<(), InfoError> {
        self.count += 1;
        self.total = self
            .total
            .checked_add(len)
            .ok_or(InfoError::Invalid("length"))?;
        if self.kept.len() < self.cap {
            self.kept.push(FileEntry {
                path: path(),
                length: len,
            });
        }
        Ok(())
    }
}

impl Info {
    /// Parses an info dictionary, keeping at most `max_files` files.
    pub fn parse(bytes: &[u8], max_files: usize) -> Result<Info, InfoError> {
        let mut reader = Reader::new(bytes, MAX_DEPTH);
        let first = reader.value().map_err(|_| InfoError::Bencode)?;
        let root = Value::read(&mut reader, first, 0)?;
        if !reader.at_end() {
            return Err(InfoError::Bencode);
        }
        if !matches!(root, Value::Dict(_)) {
            return Err(InfoError::NotADict);
        }
        let name = text(&root, "name", "name.utf-8").ok_or(InfoError::Missing("name"))?;
        let piece_length = length(root.get(b"piece length"), "piece length")?;
        if piece_length == 0 {
            return Err(InfoError::Invalid("piece length"));
        }
        let private = root.get(b"private").and_then(Value::int) == Some(1);
        let v2 = match root.get(b"meta version") {
            None => false,
            Some(v) => match v.int() {
                Some(2) => true,
                _ => return Err(InfoError::Invalid("meta version")),
            },
        };
        let v1 = root.get(b"pieces").is_some();
        let version = match (v1, v2) {
            (true, true) => MetaVersion::Hybrid,
            (false, true) => MetaVersion::V2,
            _ => MetaVersion::V1,
        };
        let mut files = Files {
            kept: Vec::new(),
            count: 0,
            total: 0,
            cap: max_files,
        };
        if version == MetaVersion::V2 {
            let tree = root
                .get(b"file tree")
                .ok_or(InfoError::Missing("file tree"))?;
            let mut path = Vec::new();
            walk_tree(tree, &mut path, &mut files)?;
        } else if let Some(list) = root.get(b"files") {
            let Value::List(entries) = list else {
                return Err(InfoError::Invalid("files"));
            };
            for entry in entries {
                if !matches!(entry, Value::Dict(_)) {
                    return Err(InfoError::Invalid("files"));
                }
                let len = length(entry.get(b"length"), "length")?;
                let padding = entry
                    .get(b"attr")
                    .and_then(Value::bytes)
                    .is_some_and(|a| a.contains(&b'p'));
                if padding {
                    continue;
                }
                let raw = match entry.get(b"path.utf-8") {
                    Some(Value::List(parts))
                        if parts
                            .iter()
                            .all(|p| p.bytes().is_some_and(|b| std::str::from_utf8(b).is_ok())) =>
                    {
                        parts
                    }
                    _ => match entry.get(b"path") {
                        Some(Value::List(parts)) => parts,
                        _ => return Err(InfoError::Invalid("path")),
                    },
                };
                if raw.is_empty() || raw.iter().any(|p| p.bytes().is_none()) {
                    return Err(InfoError::Invalid("path"));
                }
                files.push(
                    || {
                        raw.iter()
                            .filter_map(Value::bytes)
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .collect()
                    },
                    len,
                )?;
            }
        } else {
            let len = length(root.get(b"length"), "length")?;
            files.push(Vec::new, len)?;
        }
        Ok(Info {
            name,
            total_size: files.total,
            piece_length,
            files: files.kept,
            file_count: files.count,
            private,
            version,
        })
    }
}

/// Walks a BEP 52 file tree: a directory maps names to subtrees; a file is a name whose
/// dictionary has the empty key, mapping to `{length, pieces root}`.
fn walk_tree(tree: &Value<'_>, path: &mut Vec<String>, files: &mut Files) -> Result<(), InfoError> {
    let Value::Dict(entries) = tree else {
        return Err(InfoError::Invalid("file tree"));
    };
    for (name, node) in entries {
        if name.is_empty() {
            return Err(InfoError::Invalid("file tree"));
        }
        path.push(String::from_utf8_lossy(name).into_owned());
        if let Some(file) = node.get(b"") {
            let len = length(file.get(b"length"), "length")?;
            let padding = file
                .get(b"attr")
                .and_then(Value::bytes)
                .is_some_and(|a| a.contains(&b'p'));
            if !padding {
                files.push(|| path.clone(), len)?;
            }
        } else {
            walk_tree(node, path, files)?;
        }
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_file_v1() {
        let info = Info::parse(
            b"d6:lengthi1000e4:name5:a.txt12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1ee",
            10,
        )
        .unwrap();
        assert_eq!(info.name, "a.txt");
        assert_eq!(info.total_size, 1000);
        assert_eq!(info.piece_length, 16384);
        assert_eq!(
            info.files,
            vec![FileEntry {
                path: vec![],
                length: 1000
            }]
        );
        assert!(info.private);
        assert_eq!(info.version, MetaVersion::V1);
    }

    #[test]
    fn multi_file_v1_with_utf8_names_padding_and_cap() {
        let bytes = b"d5:filesld6:lengthi5e4:pathl1:a1:bee\
d4:attr1:p6:lengthi3e4:pathl4:.pad1:3ee\
d6:lengthi7e4:pathl2:\xffxe10:path.utf-8l2:yzeee\
4:name3:\xe9t\xe910:name.utf-85:\xc3\xa9t\xc3\xa912:piece lengthi4e6:pieces0:e";
        let info = Info::parse(bytes, 1).unwrap();
        assert_eq!(info.name, "été");
        assert_eq!(info.total_size, 12);
        assert_eq!(info.file_count, 2);
        assert_eq!(info.files.len(), 1);
        assert_eq!(info.files[0].path_string(), "a/b");
        let all = Info::parse(bytes, 10).unwrap();
        assert_eq!(all.files[1].path, vec!["yz".to_string()]);
        assert!(!all.private);
    }

    #[test]
    fn v2_and_hybrid() {
        let v2 = b"d9:file treed1:bd0:d6:lengthi6eee3:dird1:ad0:d6:lengthi4e\
11:pieces root32:rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrreeee12:meta versioni2e4:name1:t\
12:piece lengthi16384ee";
        let info = Info::parse(v2, 10).unwrap();
        assert_eq!(info.version, MetaVersion::V2);
        assert_eq!(info.total_size, 10);
        let paths: Vec<String> = info.files.iter().map(FileEntry::path_string).collect();
        assert_eq!(paths, ["b", "dir/a"]);
    }

    #[test]
    fn refuses_bad_dictionaries() {
        assert_eq!(Info::parse(b"li1ee", 10), Err(InfoError::NotADict));
        assert_eq!(Info::parse(b"d4:name", 10), Err(InfoError::Bencode));
        assert_eq!(Info::parse(b"d4:name1:ae1:x", 10), Err(InfoError::Bencode));
        assert_eq!(
            Info::parse(b"d4:name1:a12:piece lengthi1ee", 10),
            Err(InfoError::Missing("length"))
        );
        assert_eq!(
            Info::parse(b"d6:lengthi-1e4:name1:a12:piece lengthi1ee", 10),
            Err(InfoError::Invalid("length"))
        );
        assert_eq!(
            Info::parse(b"d6:lengthi1e12:piece lengthi1ee", 10),
            Err(InfoError::Missing("name"))
        );
        let deep = format!("d4:name1:a1:x{}{}e", "l".repeat(100), "e".repeat(100));
        assert_eq!(Info::parse(deep.as_bytes(), 10), Err(InfoError::Bencode));
    }

    #[test]
    fn torrent_file_wraps_the_info_unchanged() {
        assert_eq!(torrent_file(b"d1:ai1ee"), b"d4:infod1:ai1eee");
    }
}
