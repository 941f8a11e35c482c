//! Bakes the hash of the sources into the build (`WAGATE_SOURCE_HASH`, printed by
//! `wagate --source-hash`).

#[path = "build_support/source_hash.rs"]
mod source_hash;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    for source in source_hash::sources(&engine)? {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!(
        "cargo:rustc-env=WAGATE_SOURCE_HASH={:016x}",
        source_hash::source_hash(&engine)?
    );
    Ok(())
}
