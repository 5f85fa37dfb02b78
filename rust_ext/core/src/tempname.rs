//! The one naming rule of temporary files, shared with Python (`dolma.atomic.temp_name`).
//!
//! A file is written to a hidden sibling `.<name>.tmp-<host>-<pid>-<8 hex digits>` and renamed over its final
//! name when complete. The host and process id say which run owns the temporary, so a later run on the same
//! machine can remove what a killed run left behind without ever touching a live run's work in progress
//! (`dolma.atomic.remove_dead_temporaries`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest host part of a temporary name (Linux host names are at most 64 bytes).
const MAX_HOST: usize = 64;

/// A host name as it appears in temporary names: every character other than an ASCII letter, digit, `.`, `-`
/// or `_` becomes `_`; at most 64 characters; `localhost` when empty.
pub fn host_tag_of(name: &str) -> String {
    let tag: String = name
        .chars()
        .take(MAX_HOST)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    if tag.is_empty() {
        "localhost".to_string()
    } else {
        tag
    }
}

/// This machine's host tag.
pub fn host_tag() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| host_tag_of(&hostname()))
}

#[cfg(unix)]
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(not(unix))]
fn hostname() -> String {
    std::env::var("COMPUTERNAME").or_else(|_| std::env::var("HOSTNAME")).unwrap_or_default()
}

/// Eight hex digits that differ between the temporaries of one process (and, started from the clock, likely
/// from other processes' as well).
fn nonce() -> u32 {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        AtomicU32::new(nanos ^ std::process::id().rotate_left(16))
    });
    next.fetch_add(0x9E37_79B9, Ordering::Relaxed)
}

/// The temporary name of `target`: `.<file name>.tmp-<host>-<pid>-<nonce>` in the same directory.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let file = format!(".{name}.tmp-{}-{}-{:08x}", host_tag(), std::process::id(), nonce());
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(file),
        _ => PathBuf::from(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_siblings_naming_host_and_pid() {
        let temp = temp_path(Path::new("/data/filters/x.bin"));
        assert_eq!(temp.parent(), Some(Path::new("/data/filters")));
        let name = temp.file_name().unwrap().to_str().unwrap().to_string();
        let prefix = format!(".x.bin.tmp-{}-{}-", host_tag(), std::process::id());
        assert!(name.starts_with(&prefix), "{name}");
        let nonce = &name[prefix.len()..];
        assert_eq!(nonce.len(), 8);
        assert!(nonce.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(temp_path(Path::new("x.bin")), temp_path(Path::new("x.bin")));
    }

    #[test]
    fn host_tags_keep_only_safe_characters() {
        assert_eq!(host_tag_of("node-7.cluster.local"), "node-7.cluster.local");
        assert_eq!(host_tag_of("a b/c\u{e9}"), "a_b_c_");
        assert_eq!(host_tag_of(""), "localhost");
        assert_eq!(host_tag_of(&"h".repeat(100)).len(), 64);
    }
}
