//! A log file that rotates by size: `name.log` is always the current file, older ones are
//! `name.log.1` (newest) … `name.log.N`. Used for comfydeck's own log and ComfyUI's.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_KEEP: usize = 5;

#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
            file,
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let mut log = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            writeln!(log, "line {i:02} {}", "x".repeat(40)).unwrap();
        }
        log.flush().unwrap();
        assert!(path.exists());
        assert!(dir.path().join("app.log.1").exists());
        assert!(dir.path().join("app.log.2").exists());
        assert!(
            !dir.path().join("app.log.3").exists(),
            "only `keep` old files"
        );
        let current = fs::read_to_string(&path).unwrap();
        assert!(
            current.contains("line 09"),
            "newest line is in the current file"
        );
        assert!(current.len() <= 100);
    }

    #[test]
    fn reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        writeln!(RotatingFile::open(&path, 1000, 3).unwrap(), "one").unwrap();
        writeln!(RotatingFile::open(&path, 1000, 3).unwrap(), "two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\ntwo\n");
    }
}
