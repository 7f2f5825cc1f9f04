//! The container's memory limit, read from the cgroup files (Linux).
//!
//! cgroup v2: the least of `memory.max` and `memory.high` along the
//! process's path (from `/proc/self/cgroup`'s `0::` line) up to the root of
//! `/sys/fs/cgroup`. cgroup v1: the least `memory.limit_in_bytes` along the
//! path of the `memory` controller under `/sys/fs/cgroup/memory`. `max`, and
//! v1's "no limit" (a page-rounded `i64::MAX`), are no limit.
//!
//! Every function takes the root of the file tree (`/` in use, a fake tree
//! in tests). Paths are built and files read in stack buffers: reading never
//! allocates while the paths stay below the standard library's stack
//! threshold for paths (384 bytes).

use std::path::Path;

use crate::pacing::proc_memory;

/// The longest path built, root included; a longer cgroup path reads as
/// missing.
const PATH_MAX: usize = 1024;
/// `/proc/self/cgroup` is one line per hierarchy; a longer file is cut.
const FILE_BUF: usize = 4096;
/// v1 writes "no limit" as `i64::MAX` rounded down to a page; any figure
/// from here up is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// The container's memory limit under `root` in bytes, or `None` where no
/// cgroup file sets one (not Linux, no cgroup mounted, `max` everywhere).
///
/// ```
/// // A fake tree: cgroup v2, the process in /app, limited to 512 MiB.
/// let root = std::env::temp_dir().join(format!("gcmalloc-doc-cgroup-{}", std::process::id()));
/// std::fs::create_dir_all(root.join("proc/self")).unwrap();
/// std::fs::create_dir_all(root.join("sys/fs/cgroup/app")).unwrap();
/// std::fs::write(root.join("proc/self/cgroup"), "0::/app\n").unwrap();
/// std::fs::write(root.join("sys/fs/cgroup/app/memory.max"), "536870912\n").unwrap();
/// assert_eq!(gcmalloc::container_memory_limit(&root), Some(512 << 20));
/// # std::fs::remove_dir_all(&root).unwrap();
/// ```
pub fn container_memory_limit(root: &Path) -> Option<usize> {
    let mut buf = [0u8; FILE_BUF];
    let mut path = StackPath::new(root)?;
    path.push(b"proc/self/cgroup")?;
    let len = read_file(&path, &mut buf)?;
    let mut least: Option<u64> = None;
    for line in buf[..len].split(|&b| b == b'\n') {
        let found = match parse_line(line) {
            Some((Version::V2, cgroup)) => {
                least_along(root, b"sys/fs/cgroup", cgroup, &[b"memory.max", b"memory.high"])
            }
            Some((Version::V1, cgroup)) => {
                least_along(root, b"sys/fs/cgroup/memory", cgroup, &[b"memory.limit_in_bytes"])
            }
            None => None,
        };
        least = min_some(least, found);
    }
    least.map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
}

#[derive(Debug, PartialEq)]
enum Version {
    V1,
    V2,
}

/// A `/proc/self/cgroup` line, `id:controllers:path`: v2's `0::path`, or a
/// v1 hierarchy whose controllers include `memory`.
fn parse_line(line: &[u8]) -> Option<(Version, &[u8])> {
    let mut fields = line.splitn(3, |&b| b == b':');
    let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
    if id == b"0" && controllers.is_empty() {
        return Some((Version::V2, path));
    }
    controllers.split(|&b| b == b',').any(|c| c == b"memory").then_some((Version::V1, path))
}

/// The least limit in `files` in the cgroup's folder under `mount` and in
/// each of its parents up to `mount` itself.
fn least_along(root: &Path, mount: &[u8], cgroup: &[u8], files: &[&[u8]]) -> Option<u64> {
    let mut least = None;
    let mut rest = cgroup.strip_suffix(b"/").unwrap_or(cgroup);
    loop {
        for file in files {
            let limit = (|| {
                let mut path = StackPath::new(root)?;
                path.push(mount)?;
                path.push(rest)?;
                path.push(file)?;
                read_limit(&path)
            })();
            least = min_some(least, limit);
        }
        match rest.iter().rposition(|&b| b == b'/') {
            Some(slash) => rest = &rest[..slash],
            None if !rest.is_empty() => rest = b"",
            None => return least,
        }
    }
}

/// A limit file's figure; `None` for `max`, v1's "no limit", or a missing
/// or unreadable file.
fn read_limit(path: &StackPath) -> Option<u64> {
    let mut buf = [0u8; 64];
    let len = read_file(path, &mut buf)?;
    let text = std::str::from_utf8(&buf[..len]).ok()?.trim();
    text.parse::<u64>().ok().filter(|&bytes| bytes < V1_UNLIMITED)
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn read_file(path: &StackPath, buf: &mut [u8]) -> Option<usize> {
    proc_memory::read_into(path.as_str()?, buf)
}

/// A path built in a stack buffer, components joined with `/`.
struct StackPath {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl StackPath {
    fn new(root: &Path) -> Option<StackPath> {
        let mut path = StackPath { buf: [0; PATH_MAX], len: 0 };
        path.append(root.to_str()?.as_bytes())?;
        Some(path)
    }

    /// Appends `/component` (slashes at its ends dropped; empty: nothing).
    fn push(&mut self, component: &[u8]) -> Option<()> {
        let start = component.iter().position(|&b| b != b'/').unwrap_or(component.len());
        let component = &component[start..];
        if component.is_empty() {
            return Some(());
        }
        if self.buf[..self.len].last() != Some(&b'/') {
            self.append(b"/")?;
        }
        self.append(component)
    }

    fn append(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len()).filter(|&end| end <= PATH_MAX)?;
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.buf[..self.len]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_their_version() {
        assert_eq!(parse_line(b"0::/user.slice/app"), Some((Version::V2, &b"/user.slice/app"[..])));
        assert_eq!(parse_line(b"4:cpu,memory:/docker/abc"), Some((Version::V1, &b"/docker/abc"[..])));
        assert_eq!(parse_line(b"3:cpuset:/docker/abc"), None);
        assert_eq!(parse_line(b""), None);
    }

    #[test]
    fn paths_join_with_one_slash() {
        let mut p = StackPath::new(Path::new("/")).unwrap();
        p.push(b"sys/fs/cgroup").unwrap();
        p.push(b"/a/b").unwrap();
        p.push(b"").unwrap();
        p.push(b"memory.max").unwrap();
        assert_eq!(p.as_str(), Some("/sys/fs/cgroup/a/b/memory.max"));
        assert!(p.push(&[b'x'; PATH_MAX]).is_none(), "too long a path reads as missing");
    }
}
