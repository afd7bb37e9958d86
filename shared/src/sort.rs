//! Sorting more lines than memory should hold: sorted runs spilled to files, then merged.
//!
//! What a bulk load needs to write an index in key order, which touches each page of a B-tree
//! once, where writing it in arrival order touches a page per entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Runs merged into one at a time, and so about the most files open at once: a billion lines
/// in runs of 100,000 stay under 200 open files.
const FAN_IN: usize = 64;

/// Lines (without `\n`) sorted bytewise, at most `run_lines` of them in memory at a time.
pub struct ExternalSort {
    dir: SpillDir,
    run_lines: usize,
    /// The lines not yet spilled, one after another, and where each one is in it. One buffer
    /// kept from run to run: a `String` per line, all freed at each spill, was most of what a
    /// bulk load allocated and gave back (5.3 GB handed back to the system in a 1,000,000-row
    /// import, each time paid for again in page faults).
    text: String,
    lines: Vec<(usize, usize)>,
    /// Spilled runs and their level: `FAN_IN` runs of one level merge into one of the next.
    runs: Vec<(u32, PathBuf)>,
    files_made: usize,
}

impl ExternalSort {
    /// Spills into a directory of its own under `parent` (made at the first spill, removed
    /// when the sort is done).
    pub fn new(parent: &Path, run_lines: usize) -> Self {
        ExternalSort {
            dir: SpillDir(parent.join(format!("sort-{}", ulid::Ulid::new()))),
            run_lines: run_lines.max(1),
            text: String::new(),
            lines: Vec::new(),
            runs: Vec::new(),
            files_made: 0,
        }
    }

    pub fn push(&mut self, line: &str) -> io::Result<()> {
        self.push_parts(&[line])
    }

    /// Pushes the line made of `parts`, copied straight into the buffer.
    pub fn push_parts(&mut self, parts: &[&str]) -> io::Result<()> {
        let start = self.text.len();
        for part in parts {
            self.text.push_str(part);
        }
        debug_assert!(
            !self.text[start..].contains('\n'),
            "a line holds no newline"
        );
        self.lines.push((start, self.text.len()));
        if self.lines.len() >= self.run_lines {
            self.spill()?;
        }
        Ok(())
    }

    /// The lines in memory, sorted, and the buffer emptied for the next run (its capacity kept).
    fn sorted_in_memory<T>(
        &mut self,
        take: impl FnOnce(&mut Self, &mut dyn Iterator<Item = &str>) -> T,
    ) -> T {
        let (mut text, mut lines) = (
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.lines),
        );
        lines.sort_unstable_by(|a, b| text[a.0..a.1].cmp(&text[b.0..b.1]));
        let taken = take(self, &mut lines.iter().map(|&(at, end)| &text[at..end]));
        text.clear();
        lines.clear();
        (self.text, self.lines) = (text, lines);
        taken
    }

    /// Writes sorted lines to a new run file.
    fn write_run<L: AsRef<str>>(
        &mut self,
        lines: impl Iterator<Item = io::Result<L>>,
    ) -> io::Result<PathBuf> {
        if self.files_made == 0 {
            std::fs::create_dir_all(&self.dir.0)?;
        }
        let path = self.dir.0.join(format!("run-{}", self.files_made));
        self.files_made += 1;
        let mut out = BufWriter::new(File::create(&path)?);
        for line in lines {
            out.write_all(line?.as_ref().as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(path)
    }

    fn spill(&mut self) -> io::Result<()> {
        let path = self.sorted_in_memory(|sort, lines| sort.write_run(lines.map(Ok)))?;
        self.runs.push((0, path));
        // Runs of equal level merge as soon as there are `FAN_IN` of them, so each line is
        // rewritten once per level and few files are ever open.
        while let Some(level) = self.full_level() {
            let (merged, kept): (Vec<_>, Vec<_>) =
                self.runs.drain(..).partition(|(l, _)| *l == level);
            self.runs = kept;
            let paths: Vec<PathBuf> = merged.into_iter().map(|(_, p)| p).collect();
            let mut merging = Merge::open(&paths, Vec::new())?;
            let path = self.write_run(std::iter::from_fn(|| merging.next_line().transpose()))?;
            for used in paths {
                std::fs::remove_file(used)?;
            }
            self.runs.push((level + 1, path));
        }
        Ok(())
    }

    fn full_level(&self) -> Option<u32> {
        let mut counts = std::collections::BTreeMap::new();
        for (level, _) in &self.runs {
            *counts.entry(*level).or_insert(0usize) += 1;
        }
        counts
            .into_iter()
            .find(|(_, n)| *n >= FAN_IN)
            .map(|(l, _)| l)
    }

    /// Every line pushed, in order, repeats once.
    pub fn finish(mut self) -> io::Result<Sorted> {
        let memory = self.sorted_in_memory(|_, lines| lines.map(str::to_owned).collect());
        let paths: Vec<PathBuf> = self.runs.iter().map(|(_, p)| p.clone()).collect();
        let merge = Merge::open(&paths, memory)?;
        Ok(Sorted {
            _dir: self.dir,
            merge,
            ahead: None,
        })
    }
}

/// Sorted runs in files and one in memory, read as one sorted sequence.
struct Merge {
    readers: Vec<io::Lines<BufReader<File>>>,
    heads: BinaryHeap<Reverse<(String, usize)>>,
    memory: std::iter::Peekable<std::vec::IntoIter<String>>,
}

impl Merge {
    fn open(paths: &[PathBuf], memory: Vec<String>) -> io::Result<Merge> {
        let mut readers = Vec::with_capacity(paths.len());
        for path in paths {
            readers.push(BufReader::new(File::open(path)?).lines());
        }
        let mut heads = BinaryHeap::new();
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some(line) = reader.next().transpose()? {
                heads.push(Reverse((line, run)));
            }
        }
        Ok(Merge {
            readers,
            heads,
            memory: memory.into_iter().peekable(),
        })
    }

    fn next_line(&mut self) -> io::Result<Option<String>> {
        let from_memory = match (self.memory.peek(), self.heads.peek()) {
            (Some(m), Some(Reverse((h, _)))) => m <= h,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_memory {
            return Ok(self.memory.next());
        }
        // The run's next line takes the head's place and sinks once: a pop and a push sifted
        // twice, and comparing lines was a third of writing a bulk load's search entries.
        let Some(mut head) = self.heads.peek_mut() else {
            return Ok(None);
        };
        let run = head.0.1;
        match self.readers[run].next().transpose()? {
            Some(next) => Ok(Some(std::mem::replace(&mut head.0.0, next))),
            None => Ok(Some(PeekMut::pop(head).0.0)),
        }
    }
}

/// A sort's spill directory, removed with the sort (or with its merged lines once it is done).
struct SpillDir(PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The merged lines; the spill files go when this is dropped.
pub struct Sorted {
    _dir: SpillDir,
    merge: Merge,
    /// The line after the last one returned, read to skip repeats.
    ahead: Option<String>,
}

impl Sorted {
    fn next_distinct(&mut self) -> io::Result<Option<String>> {
        let Some(line) = self
            .ahead
            .take()
            .map_or_else(|| self.merge.next_line(), |l| Ok(Some(l)))?
        else {
            return Ok(None);
        };
        loop {
            match self.merge.next_line()? {
                Some(next) if next == line => continue,
                next => {
                    self.ahead = next;
                    return Ok(Some(line));
                }
            }
        }
    }
}

impl Iterator for Sorted {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_distinct().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrambled(n: u64) -> Vec<String> {
        (0..n)
            .map(|i| format!("{:08x}", (i * 2_654_435_761) % 1_000_003 % 5_000))
            .collect()
    }

    /// Every line the sort was given, read back from it.
    fn merged(sort: ExternalSort) -> Vec<String> {
        sort.finish()
            .expect("merge")
            .collect::<io::Result<_>>()
            .expect("read")
    }

    fn sorted_once(mut lines: Vec<String>) -> Vec<String> {
        lines.sort();
        lines.dedup();
        lines
    }

    #[test]
    fn spilled_runs_merge_into_one_sorted_list_without_repeats() {
        let parent = std::env::temp_dir();
        let lines = scrambled(20_000);
        let mut sort = ExternalSort::new(&parent, 97);
        for line in &lines {
            sort.push(line).expect("push");
        }
        // 206 runs of 97 lines: three merged levels' worth, never more than FAN_IN of one level.
        assert!(
            sort.files_made > 3 * FAN_IN,
            "made {} files",
            sort.files_made
        );
        assert!(
            sort.runs.len() < 2 * FAN_IN,
            "{} runs left",
            sort.runs.len()
        );
        assert!(sort.runs.iter().any(|(level, _)| *level == 1));
        let files = std::fs::read_dir(&sort.dir.0).expect("spill dir").count();
        assert_eq!(files, sort.runs.len(), "merged runs are removed");
        let dir = sort.dir.0.clone();
        assert_eq!(merged(sort), sorted_once(lines));
        assert!(!dir.exists(), "spill files are removed");
    }

    #[test]
    fn runs_of_any_number_and_length_merge_in_order() {
        // The last merge takes 1 to 49 runs (the one in memory among them, a merged one in some),
        // which run out at different times.
        for run_lines in [1, 2, 3, 5, 7, 13, 50] {
            for total in [0, 1, 2, 9, 40, 97] {
                let lines = scrambled(total);
                let mut sort = ExternalSort::new(&std::env::temp_dir(), run_lines);
                for line in &lines {
                    sort.push(line).expect("push");
                }
                assert_eq!(
                    merged(sort),
                    sorted_once(lines),
                    "{total} lines in runs of {run_lines}"
                );
            }
        }
    }

    #[test]
    fn a_sort_that_fits_in_memory_writes_no_file() {
        let mut sort = ExternalSort::new(&std::env::temp_dir(), 100);
        for line in ["b", "a", "c", "a"] {
            sort.push(line).expect("push");
        }
        assert!(sort.runs.is_empty());
        assert!(!sort.dir.0.exists(), "no spill directory either");
        let merged: Vec<String> = sort.finish().expect("merge").map(Result::unwrap).collect();
        assert_eq!(merged, ["a", "b", "c"]);
    }
}
