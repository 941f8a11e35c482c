//! The hash of the sources a `wagate` binary is built from, so that the process tests can tell
//! the binary they are about to start was built from the sources beside them, not from an older
//! edit or another checkout sharing the target directory. Shared, as this one file, by
//! `engine/build.rs` (which bakes the hash into the binary: `wagate --source-hash`) and by
//! `wagate-tests` (which computes it again before starting the binary).

use std::path::{Path, PathBuf};

/// What the binary is built from, relative to `engine/`.
pub(crate) const SOURCES: &[&str] = &[
    "Cargo.toml",
    "build.rs",
    "build_support",
    "src",
    "proto",
    "rules/Cargo.toml",
    "rules/src",
    "rules/profiles",
];

/// FNV-1a (64 bits) over every source file's path relative to `engine` and its bytes, in path
/// order.
pub(crate) fn source_hash(engine: &Path) -> std::io::Result<u64> {
    let mut files = Vec::new();
    for source in SOURCES {
        collect(&engine.join(source), &mut files)?;
    }
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for file in files {
        let relative = file.strip_prefix(engine).unwrap_or(&file).to_string_lossy();
        let bytes = std::fs::read(&file)?;
        for byte in relative.bytes().chain([0]).chain(bytes) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(hash)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            collect(&entry?.path(), files)?;
        }
    } else if path.is_file() {
        files.push(path.to_path_buf());
    }
    Ok(())
}
