//! The hash of the sources a `wagate` binary is built from, so that the process tests can tell
//! the binary they are about to start was built from the sources beside them, not from an older
//! edit or another checkout sharing the target directory. Shared, as this one file, by
//! `engine/build.rs` (which bakes the hash into the binary: `wagate --source-hash`) and by
//! `wagate-tests` (which computes it again before starting the binary).

use std::path::{Path, PathBuf};

/// What the binary is built from, relative to `engine/` and to each crate directory under it
/// (`rules/`, `store/`, ...): a crate's tests, examples and benches are not.
const PARTS: &[&str] = &[
    "Cargo.toml",
    "build.rs",
    "build_support",
    "src",
    "proto",
    "profiles",
];

/// The paths the binary is built from: `engine/`'s own parts and those of every crate directory
/// directly under it (a directory with a `Cargo.toml`).
pub(crate) fn sources(engine: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut crates = vec![engine.to_path_buf()];
    for entry in std::fs::read_dir(engine)? {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file() {
            crates.push(path);
        }
    }
    crates.sort();
    Ok(crates
        .iter()
        .flat_map(|dir| PARTS.iter().map(move |part| dir.join(part)))
        .filter(|path| path.exists())
        .collect())
}

/// FNV-1a (64 bits) over every source file's path relative to `engine` and its bytes, in path
/// order.
pub(crate) fn source_hash(engine: &Path) -> std::io::Result<u64> {
    let mut files = Vec::new();
    for source in sources(engine)? {
        collect(&source, &mut files)?;
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
