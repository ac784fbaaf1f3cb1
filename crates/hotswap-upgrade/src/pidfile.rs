//! The pid file: always names the process that currently serves.

use std::io::Write;
use std::path::Path;

/// Writes our pid to `path` atomically (a reader sees the old pid or the
/// new one, never a partial file).
pub(crate) fn write(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Readable by the scripts and service managers that look for it (a
    // temporary file starts owner-only).
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    writeln!(tmp, "{}", std::process::id())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Removes `path` if it still names this process (a successor may have
/// written its own pid there already).
pub(crate) fn remove_if_ours(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_our_pid_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hotswap.pid");
        write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().parse::<u32>().unwrap(), std::process::id());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        std::fs::write(&path, "1\n").unwrap(); // a successor's pid
        remove_if_ours(&path);
        assert!(path.exists());
        write(&path).unwrap();
        remove_if_ours(&path);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary file left"
        );
    }
}
