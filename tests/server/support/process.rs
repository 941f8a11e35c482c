//! The real `wagate` binary as a child process: started with a config file, found by the
//! address it prints, stopped with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

#[path = "../../../engine/build_support/source_hash.rs"]
mod source_hash;

/// The `wagate` binary cargo built for this test program (`CARGO_BIN_EXE_wagate`: the same
/// run, the same sources), once it is shown to be built from the sources beside these tests
/// (another checkout sharing the target directory could have replaced it since).
pub(crate) fn wagate_binary() -> Result<PathBuf> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_wagate"));
    static CHECKED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| built_from_these_sources(&binary).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(binary)
}

/// The `engine/` folder: the manifest of the `wagate` package, whose test this is.
pub(crate) fn engine_sources() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The hash of the binary's sources, as `source_hash` computes it.
pub(crate) fn source_hash_of(engine: &Path) -> Result<u64> {
    source_hash::source_hash(engine).with_context(|| format!("hashing {}", engine.display()))
}

/// Fails unless `binary` says it was built from the sources in [`engine_sources`].
pub(crate) fn built_from_these_sources(binary: &Path) -> Result<()> {
    let said = Command::new(binary)
        .arg("--source-hash")
        .output()
        .with_context(|| format!("running {} --source-hash", binary.display()))?;
    let built = String::from_utf8_lossy(&said.stdout).trim().to_string();
    let here = format!("{:016x}", source_hash_of(&engine_sources())?);
    if built != here {
        bail!(
            "{} was built from other sources (hash {built:?}) than those in {} ({here}): build \
             it again (`cargo test --release --workspace` builds it before this test)",
            binary.display(),
            engine_sources().display()
        );
    }
    Ok(())
}

pub(crate) struct WagateProcess {
    child: Child,
    pub(crate) base: String,
    /// The gRPC endpoint (`http://127.0.0.1:PORT`).
    pub(crate) grpc: String,
}

impl WagateProcess {
    /// Starts `wagate serve --config <config> ARGS...` and waits for it to listen; its log
    /// (standard error) appended to `log` when given (else this process's own standard error).
    pub(crate) fn start_logging(
        config: &Path,
        args: &[String],
        log: Option<&Path>,
    ) -> Result<WagateProcess> {
        Self::starting(config, args, log, false)
    }

    /// A cluster node (`[cluster]` in `config`): its fronts' addresses.
    pub(crate) fn start_node(config: &Path, args: &[String], log: &Path) -> Result<WagateProcess> {
        Self::starting(config, args, Some(log), true)
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub(crate) fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} failed");
        }
        Ok(())
    }

    fn starting(
        config: &Path,
        args: &[String],
        log: Option<&Path>,
        node: bool,
    ) -> Result<WagateProcess> {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(wagate_binary()?)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .arg("--http.listen")
            .arg("127.0.0.1:0")
            .arg("--grpc.listen")
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting wagate")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(base) = line.trim().strip_prefix("wagate listening on ") else {
            let status = child.wait()?;
            bail!("wagate did not start ({status}); it printed {line:?}");
        };
        let base = base.to_string();
        line.clear();
        stdout.read_line(&mut line)?;
        let Some(grpc) = line.trim().strip_prefix("wagate grpc listening on ") else {
            bail!("wagate printed {line:?} where the gRPC address was expected");
        };
        let grpc = grpc.to_string();
        if node {
            line.clear();
            stdout.read_line(&mut line)?;
            if !line.starts_with("wagate cluster node ") {
                bail!("wagate printed {line:?} where its node name was expected");
            }
        }
        Ok(WagateProcess { base, grpc, child })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM (a graceful stop).
    pub(crate) fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(())
    }

    /// Waits for the process to exit, up to `limit`.
    pub(crate) fn wait(mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("wagate did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub(crate) fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Terminates and waits; the exit status.
    pub(crate) fn stop(self) -> Result<ExitStatus> {
        self.terminate()?;
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for WagateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_hash_changes_with_any_byte_of_the_sources_and_only_with_them() -> Result<()> {
        let engine = std::env::temp_dir().join(format!("wagate-hash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&engine);
        std::fs::create_dir_all(engine.join("src/server"))?;
        std::fs::create_dir_all(engine.join("tests"))?;
        std::fs::write(engine.join("Cargo.toml"), "[package]\n")?;
        std::fs::write(engine.join("src/server/app.rs"), "fn a() {}\n")?;
        let first = source_hash_of(&engine)?;
        assert_eq!(
            source_hash_of(&engine)?,
            first,
            "the same sources, the same hash"
        );
        std::fs::write(engine.join("tests/other.rs"), "not part of the binary")?;
        assert_eq!(
            source_hash_of(&engine)?,
            first,
            "tests are not the binary's sources"
        );
        std::fs::write(engine.join("src/server/app.rs"), "fn b() {}\n")?;
        let edited = source_hash_of(&engine)?;
        assert_ne!(edited, first, "an edit");
        std::fs::rename(engine.join("src/server/app.rs"), engine.join("src/app.rs"))?;
        assert_ne!(source_hash_of(&engine)?, edited, "a move");
        let moved = source_hash_of(&engine)?;
        std::fs::create_dir_all(engine.join("store/src"))?;
        std::fs::write(engine.join("store/src/lib.rs"), "fn c() {}\n")?;
        assert_eq!(
            source_hash_of(&engine)?,
            moved,
            "a directory without a Cargo.toml is no crate"
        );
        std::fs::write(engine.join("store/Cargo.toml"), "[package]\n")?;
        assert_ne!(source_hash_of(&engine)?, moved, "a member crate's sources");
        std::fs::remove_dir_all(&engine)?;
        Ok(())
    }

    #[test]
    fn the_server_binary_is_built_from_the_sources_beside_these_tests() -> Result<()> {
        built_from_these_sources(&wagate_binary()?)
    }
}
