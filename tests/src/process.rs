//! The real `wagate` binary as a child process: started with a config file, found by the
//! address it prints, stopped with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// `target/release/wagate`, next to this test's own executable's directory.
pub fn wagate_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable has no grandparent directory")?;
    let binary = dir.join("wagate");
    if !binary.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p wagate`",
            binary.display()
        );
    }
    Ok(binary)
}

pub struct WagateProcess {
    child: Child,
    pub base: String,
    /// The gRPC endpoint (`http://127.0.0.1:PORT`).
    pub grpc: String,
}

impl WagateProcess {
    /// Starts `wagate serve --config <config>` and waits for it to listen.
    pub fn start(config: &Path) -> Result<WagateProcess> {
        Self::start_with(config, &[])
    }

    /// Like [`WagateProcess::start`], with more command-line arguments (key overrides).
    pub fn start_with(config: &Path, args: &[String]) -> Result<WagateProcess> {
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
            .stderr(Stdio::inherit())
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
        Ok(WagateProcess {
            base,
            grpc: grpc.to_string(),
            child,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) -> Result<()> {
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
    pub fn wait(mut self, limit: Duration) -> Result<ExitStatus> {
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
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Terminates and waits; the exit status.
    pub fn stop(self) -> Result<ExitStatus> {
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
