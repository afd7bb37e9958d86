//! Sorted runs of bare keys kept beside the embedded file, for indexes that tolerate stale
//! entries (search). A bulk load's millions of search entries written one by one into the
//! B-tree were most of its time even in key order (redb: 46 s of a 1,000,000-customer load);
//! written as one sorted file they cost a sequential write.
//!
//! A segment is immutable. Its keys are `pk \0 sk` (a partition never holds `\0`, so the bytes
//! sort as the (pk, sk) pairs do), prefix-compressed within blocks of about `BLOCK_BYTES`; an
//! index of each block's first key and place follows the blocks, then a fixed footer. Only the
//! index is kept in memory (some 2 MB for a 1,000,000-customer load).
//!
//! Layout: blocks of entries `varint shared · varint rest length · rest`; the index, per block
//! `varint first-key length · first key · varint offset · varint length`; the footer, three
//! little-endian u64: the index's offset, the number of keys, and `MAGIC`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Key;

const MAGIC: u64 = u64::from_le_bytes(*b"CUSSEG01");
const FOOTER_BYTES: usize = 24;
/// Bytes of entries per block: one read per range start, a small index.
const BLOCK_BYTES: usize = 16 * 1024;

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("segment {} is corrupt: {what}", path.display()),
    )
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint at `*at`, moving past it; `None` when the bytes end first.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
}

/// Whether a key can go into a segment: its partition must not hold the separator.
pub fn fits(key: &Key) -> bool {
    !key.pk.contains('\0')
}

fn joined(pk: &str, sk: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(pk.len() + 1 + sk.len());
    bytes.extend_from_slice(pk.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(sk.as_bytes());
    bytes
}

/// Writes a segment from keys in ascending order (repeats are dropped).
pub struct SegmentWriter {
    path: PathBuf,
    out: BufWriter<File>,
    block: Vec<u8>,
    block_first: Vec<u8>,
    last: Vec<u8>,
    scratch: Vec<u8>,
    index: Vec<u8>,
    offset: u64,
    count: u64,
}

impl SegmentWriter {
    pub fn create(path: &Path) -> io::Result<SegmentWriter> {
        Ok(SegmentWriter {
            path: path.to_owned(),
            out: BufWriter::with_capacity(256 * 1024, File::create(path)?),
            block: Vec::with_capacity(BLOCK_BYTES + 1024),
            block_first: Vec::new(),
            last: Vec::new(),
            scratch: Vec::new(),
            index: Vec::new(),
            offset: 0,
            count: 0,
        })
    }

    pub fn push(&mut self, key: &Key) -> io::Result<()> {
        if !fits(key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a segment key's partition holds a NUL: {:?}", key.pk),
            ));
        }
        // Joined in a buffer kept from key to key: no allocation per key.
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        bytes.extend_from_slice(key.pk.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(key.sk.as_bytes());
        let pushed = self.push_joined(&bytes);
        self.scratch = bytes;
        pushed
    }

    /// Pushes a key as its joined bytes.
    fn push_joined(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.count > 0 {
            match bytes.cmp(self.last.as_slice()) {
                std::cmp::Ordering::Equal => return Ok(()),
                std::cmp::Ordering::Less => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "segment keys out of order at {}",
                            String::from_utf8_lossy(bytes)
                        ),
                    ));
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        let shared = if self.block.is_empty() {
            self.block_first.clear();
            self.block_first.extend_from_slice(bytes);
            0
        } else {
            self.last
                .iter()
                .zip(bytes)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.block, shared as u64);
        put_varint(&mut self.block, (bytes.len() - shared) as u64);
        self.block.extend_from_slice(&bytes[shared..]);
        self.last.clear();
        self.last.extend_from_slice(bytes);
        self.count += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.out.write_all(&self.block)?;
        put_varint(&mut self.index, self.block_first.len() as u64);
        self.index.extend_from_slice(&self.block_first);
        put_varint(&mut self.index, self.offset);
        put_varint(&mut self.index, self.block.len() as u64);
        self.offset += self.block.len() as u64;
        self.block.clear();
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the index and footer and waits for the disk: the segment may be registered once
    /// this returns.
    pub fn finish(mut self) -> io::Result<Segment> {
        self.end_block()?;
        let index = std::mem::take(&mut self.index);
        self.out.write_all(&index)?;
        let mut footer = Vec::with_capacity(FOOTER_BYTES);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&self.count.to_le_bytes());
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        self.out.write_all(&footer)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        Segment::open(&self.path)
    }
}

/// The first key of a block, and where the block lies.
struct Block {
    first: Vec<u8>,
    offset: u64,
    len: usize,
}

/// An open segment: its file and its block index.
pub struct Segment {
    path: PathBuf,
    file: File,
    blocks: Vec<Block>,
    count: u64,
    bytes: u64,
    /// The first and last partitions it holds: a query of any other partition reads nothing
    /// (a block read per query of a customer's own partition made an export three times slower).
    partitions: Option<(String, String)>,
}

impl Segment {
    pub fn open(path: &Path) -> io::Result<Segment> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if size < FOOTER_BYTES as u64 {
            return Err(corrupt(path, "shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER_BYTES];
        file.read_exact_at(&mut footer, size - FOOTER_BYTES as u64)?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&footer[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let (index_at, count, magic) = (word(0), word(1), word(2));
        if magic != MAGIC || index_at > size - FOOTER_BYTES as u64 {
            return Err(corrupt(path, "no valid footer"));
        }
        let mut index = vec![0u8; (size - FOOTER_BYTES as u64 - index_at) as usize];
        file.read_exact_at(&mut index, index_at)?;
        let mut blocks = Vec::new();
        let mut at = 0;
        while at < index.len() {
            let block = (|| {
                let len = usize::try_from(varint(&index, &mut at)?).ok()?;
                let first = index.get(at..at.checked_add(len)?)?.to_vec();
                at += len;
                let offset = varint(&index, &mut at)?;
                let len = usize::try_from(varint(&index, &mut at)?).ok()?;
                (offset.checked_add(len as u64)? <= index_at).then_some(Block {
                    first,
                    offset,
                    len,
                })
            })()
            .ok_or_else(|| corrupt(path, "bad block index"))?;
            blocks.push(block);
        }
        let mut segment = Segment {
            path: path.to_owned(),
            file,
            blocks,
            count,
            bytes: size,
            partitions: None,
        };
        if let (Some(first), Some(last_block)) =
            (segment.blocks.first(), segment.blocks.len().checked_sub(1))
        {
            let first = segment.split(&first.first)?.0.to_owned();
            let last_keys = segment.block_keys(last_block)?;
            let last = last_keys
                .last()
                .ok_or_else(|| corrupt(path, "empty block"))?;
            let last = segment.split(last)?.0.to_owned();
            segment.partitions = Some((first, last));
        }
        Ok(segment)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The file's size: what merging it costs.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Calls `each` with every key of block `at` in order, as joined bytes decoded into one
    /// buffer kept from key to key, until it answers false; whether it read the whole block.
    fn each_key(
        &self,
        at: usize,
        mut each: impl FnMut(&[u8]) -> io::Result<bool>,
    ) -> io::Result<bool> {
        let block = &self.blocks[at];
        let mut bytes = vec![0u8; block.len];
        self.file.read_exact_at(&mut bytes, block.offset)?;
        let mut key: Vec<u8> = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (shared, tail) = (|| {
                let shared = usize::try_from(varint(&bytes, &mut at)?).ok()?;
                let rest = usize::try_from(varint(&bytes, &mut at)?).ok()?;
                let tail = bytes.get(at..at.checked_add(rest)?)?;
                at += rest;
                Some((shared, tail))
            })()
            .filter(|(shared, _)| *shared <= key.len())
            .ok_or_else(|| corrupt(&self.path, "bad block"))?;
            key.truncate(shared);
            key.extend_from_slice(tail);
            if !each(&key)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The keys of block `at`, each as its joined bytes.
    fn block_keys(&self, at: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.each_key(at, |key| {
            keys.push(key.to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }

    fn split<'k>(&self, joined: &'k [u8]) -> io::Result<(&'k str, &'k str)> {
        let bad = || corrupt(&self.path, "bad key");
        let at = joined.iter().position(|b| *b == 0).ok_or_else(bad)?;
        let pk = std::str::from_utf8(&joined[..at]).map_err(|_| bad())?;
        let sk = std::str::from_utf8(&joined[at + 1..]).map_err(|_| bad())?;
        Ok((pk, sk))
    }

    /// Up to `limit` keys of partition `pk` with `lo ≤ sk ≤ hi`, past `after` (exclusive), in
    /// the direction of reading. Read backward, the range is read forward and its last keys
    /// kept: search, the one reader, reads forward.
    pub fn range(&self, wanted: &Range<'_>) -> io::Result<Vec<Key>> {
        match &self.partitions {
            Some((first, last)) if wanted.pk >= first.as_str() && wanted.pk <= last.as_str() => {}
            _ => return Ok(Vec::new()),
        }
        let lower = match (wanted.after, wanted.forward) {
            (Some(after), true) if after > wanted.lo => after,
            _ => wanted.lo,
        };
        let start = joined(wanted.pk, lower);
        let first = self
            .blocks
            .partition_point(|b| b.first.as_slice() <= start.as_slice())
            .saturating_sub(1);
        let mut found = VecDeque::new();
        for at in first..self.blocks.len() {
            let read_on = self.each_key(at, |joined| {
                let (pk, sk) = self.split(joined)?;
                if pk < wanted.pk || (pk == wanted.pk && sk < wanted.lo) {
                    return Ok(true);
                }
                if pk > wanted.pk || sk > wanted.hi {
                    return Ok(false);
                }
                match (wanted.after, wanted.forward) {
                    (Some(after), true) if sk <= after => return Ok(true),
                    (Some(after), false) if sk >= after => return Ok(false),
                    _ => {}
                }
                found.push_back(Key::new(pk, sk));
                if wanted.forward && found.len() >= wanted.limit {
                    return Ok(false);
                }
                if found.len() > wanted.limit {
                    found.pop_front();
                }
                Ok(true)
            })?;
            if !read_on {
                break;
            }
        }
        Ok(in_reading_order(found, wanted.forward))
    }

    /// Every key in order, as joined bytes (for merging segments).
    fn keys(&self) -> impl Iterator<Item = io::Result<Vec<u8>>> + '_ {
        (0..self.blocks.len()).flat_map(move |at| match self.block_keys(at) {
            Ok(keys) => keys.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    }
}

fn in_reading_order(found: VecDeque<Key>, forward: bool) -> Vec<Key> {
    let mut found: Vec<Key> = found.into();
    if !forward {
        found.reverse();
    }
    found
}

/// What [`Segment::range`] reads.
pub struct Range<'q> {
    pub pk: &'q str,
    pub lo: &'q str,
    pub hi: &'q str,
    pub after: Option<&'q str>,
    pub forward: bool,
    pub limit: usize,
}

/// Merges segments into one new segment at `path` (repeats once).
pub fn merge(segments: &[&Segment], path: &Path) -> io::Result<Segment> {
    let mut writer = SegmentWriter::create(path)?;
    let mut sources: Vec<_> = segments.iter().map(|s| s.keys()).collect();
    let mut heads: Vec<Option<Vec<u8>>> = sources
        .iter_mut()
        .map(|keys| keys.next().transpose())
        .collect::<io::Result<_>>()?;
    // A handful of segments: the smallest head by a linear look.
    while let Some(best) = (0..heads.len())
        .filter(|i| heads[*i].is_some())
        .min_by(|a, b| heads[*a].cmp(&heads[*b]))
    {
        let next = sources[best].next().transpose()?;
        if let Some(key) = std::mem::replace(&mut heads[best], next) {
            writer.push_joined(&key)?;
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("segment-{name}-{}", ulid::Ulid::new()))
    }

    fn keys(n: usize) -> Vec<Key> {
        let mut keys: Vec<Key> = (0..n)
            .map(|i| {
                Key::new(
                    format!("SFX#{}", (b'a' + (i % 7) as u8) as char),
                    format!("{i:08}\u{1}cus"),
                )
            })
            .collect();
        keys.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        keys
    }

    fn write(path: &Path, keys: &[Key]) -> Segment {
        let mut w = SegmentWriter::create(path).expect("create");
        for k in keys {
            w.push(k).expect("push");
        }
        w.finish().expect("finish")
    }

    fn all(pk: &str) -> Range<'_> {
        Range {
            pk,
            lo: "",
            hi: "\u{10FFFF}",
            after: None,
            forward: true,
            limit: usize::MAX - 1,
        }
    }

    #[test]
    fn ranges_read_back_what_was_written_across_blocks() {
        let path = temp("ranges");
        let written = keys(20_000);
        let segment = write(&path, &written);
        assert!(segment.blocks.len() > 5, "{} blocks", segment.blocks.len());
        assert_eq!(segment.count(), 20_000);
        let reopened = Segment::open(&path).expect("reopen");
        let b: Vec<Key> = written
            .iter()
            .filter(|k| k.pk == "SFX#b")
            .cloned()
            .collect();
        assert_eq!(reopened.range(&all("SFX#b")).unwrap(), b);
        // A prefix, paged forward from an exclusive start.
        let prefix: Vec<&Key> = b.iter().filter(|k| k.sk.starts_with("0001")).collect();
        let page = reopened
            .range(&Range {
                lo: "0001",
                hi: "0001\u{10FFFF}",
                after: Some(&prefix[9].sk),
                limit: 5,
                ..all("SFX#b")
            })
            .unwrap();
        assert_eq!(
            page,
            prefix[10..15]
                .iter()
                .map(|k| (*k).clone())
                .collect::<Vec<_>>()
        );
        // Backward: the keys before the start, nearest first.
        let back = reopened
            .range(&Range {
                after: Some(&b[100].sk),
                forward: false,
                limit: 3,
                ..all("SFX#b")
            })
            .unwrap();
        assert_eq!(back, [b[99].clone(), b[98].clone(), b[97].clone()]);
        assert!(reopened.range(&all("SFX#z")).unwrap().is_empty());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn repeats_go_and_disorder_is_refused() {
        let path = temp("order");
        let mut w = SegmentWriter::create(&path).expect("create");
        w.push(&Key::new("a", "2")).unwrap();
        w.push(&Key::new("a", "2")).unwrap();
        assert!(w.push(&Key::new("a", "1")).is_err());
        assert!(w.push(&Key::new("b\0", "1")).is_err());
        assert_eq!(w.count(), 1);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn merged_segments_hold_every_key_once_and_a_torn_file_is_refused() {
        let (p1, p2, p3) = (temp("m1"), temp("m2"), temp("m3"));
        let written = keys(9_000);
        // Overlapping: the keys both hold come out once.
        let s1 = write(&p1, &written[..6_000]);
        let s2 = write(&p2, &written[3_000..]);
        let merged = merge(&[&s1, &s2], &p3).expect("merge");
        assert_eq!(merged.count(), 9_000);
        let everything: Vec<Key> = [
            "SFX#a", "SFX#b", "SFX#c", "SFX#d", "SFX#e", "SFX#f", "SFX#g",
        ]
        .iter()
        .flat_map(|pk| merged.range(&all(pk)).unwrap())
        .collect();
        assert_eq!(everything, written);
        let bytes = std::fs::read(&p3).unwrap();
        std::fs::write(&p3, &bytes[..bytes.len() - 5]).unwrap();
        assert!(Segment::open(&p3).is_err());
        for p in [p1, p2, p3] {
            let _ = std::fs::remove_file(p);
        }
    }
}
