//! The process's memory as the OS sees it: `VmRSS + VmSwap` from
//! `/proc/self/status` (Linux). This is what CPython 3.14t's first GC gate
//! read, and what [`MemorySource::Rss`](crate::MemorySource::Rss) returns.

use std::fs::File;
use std::io::Read;

/// `/proc/self/status` is about 1.5 KiB on current kernels; a larger file is
/// cut here, and fields past the cut read as missing.
const STATUS_BUF: usize = 8 * 1024;

/// Resident plus swapped-out bytes of this process, or `None` where
/// `/proc/self/status` cannot be read (not Linux, no procfs).
///
/// Costs an open, a read and a close (a few microseconds); it does not
/// allocate: the path is converted on the stack and the file is read into a
/// stack buffer.
pub(crate) fn rss_and_swap() -> Option<usize> {
    let mut buf = [0u8; STATUS_BUF];
    let len = read_into("/proc/self/status", &mut buf)?;
    let status = &buf[..len];
    let rss_kib = status_field_kib(status, b"VmRSS:")?;
    let swap_kib = status_field_kib(status, b"VmSwap:").unwrap_or(0);
    Some((rss_kib + swap_kib) * 1024)
}

/// Reads the file at `path` into `buf` (cut at its size); its length, or
/// `None` where it cannot be read. No allocation for paths shorter than
/// the standard library's stack threshold (384 bytes).
pub(crate) fn read_into(path: &str, buf: &mut [u8]) -> Option<usize> {
    let mut file = File::open(path).ok()?;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(len)
}

/// The value of a `Name:   1234 kB` line, in KiB.
fn status_field_kib(status: &[u8], name: &[u8]) -> Option<usize> {
    let line = status.split(|&b| b == b'\n').find(|line| line.starts_with(name))?;
    let digits = line[name.len()..].iter().skip_while(|b| b.is_ascii_whitespace()).take_while(|b| b.is_ascii_digit());
    let mut value: usize = 0;
    let mut any = false;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_in_kib() {
        let status = b"Name:\tx\nVmHWM:\t  900 kB\nVmRSS:\t  812 kB\nVmSwap:\t      4 kB\n";
        assert_eq!(status_field_kib(status, b"VmRSS:"), Some(812));
        assert_eq!(status_field_kib(status, b"VmSwap:"), Some(4));
        assert_eq!(status_field_kib(status, b"VmPTE:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rss_grows_when_memory_is_touched() {
        let before = rss_and_swap().expect("procfs readable on Linux");
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let during = rss_and_swap().unwrap();
        assert!(during >= before + (48 << 20), "before {before}, during {during}");
        drop(block);
    }
}
