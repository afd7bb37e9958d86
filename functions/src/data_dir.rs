//! The local server's data folder holds password hashes (`store.redb`), the token signing key,
//! uploaded and exported customer files and, when asked for, reset tokens: only the user who
//! runs the server may read it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

/// Makes `dir` (created if missing) and everything already in it private to the owner, and sets
/// the process's file-creation mask so that whatever the server writes later (the store file,
/// sort runs, uploads, exports, error reports) is created private too.
///
/// The mask is process-wide on purpose: the local server is the only thing in its process that
/// writes files, and a mask cannot be forgotten by a new file the way a per-file mode can.
pub fn make_private(dir: &Path) -> io::Result<()> {
    // SAFETY: umask only swaps the process's creation mask; it cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(dir)?;
    restrict(dir)
}

/// Folders `0700`, files `0600`, below and including `path` (symbolic links are left alone:
/// their targets are not ours to change).
fn restrict(path: &Path) -> io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        set_mode(path, &metadata, PRIVATE_DIR)?;
        for entry in std::fs::read_dir(path)? {
            restrict(&entry?.path())?;
        }
    } else if metadata.is_file() {
        set_mode(path, &metadata, PRIVATE_FILE)?;
    }
    Ok(())
}

fn set_mode(path: &Path, metadata: &std::fs::Metadata, mode: u32) -> io::Result<()> {
    if metadata.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
