//! A real NATS JetStream cluster for cluster mode's tests: three Debian `nats-server`
//! processes on loopback ports, JetStream on each (its store in the test's directory), routed
//! to one another; any one may be killed. Stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub(crate) struct NatsCluster {
    servers: Vec<Option<Child>>,
    pub(crate) client_ports: Vec<u16>,
}

impl NatsCluster {
    /// Three servers of cluster `wagate` under `dir`.
    pub(crate) fn start(dir: &Path) -> Result<NatsCluster> {
        let ports = super::free_ports(6)?;
        let (clients, routes) = (ports[..3].to_vec(), ports[3..].to_vec());
        let all_routes = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut servers = Vec::new();
        for i in 0..3 {
            let store = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&store)?;
            let config = dir.join(format!("n{i}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: wagate\n listen: 127.0.0.1:{}\n routes: [{all_routes}] }}\n",
                    clients[i],
                    store.display(),
                    routes[i]
                ),
            )?;
            // Its own words kept beside its store: why a server would not start or join.
            let log = std::fs::File::create(dir.join(format!("n{i}.log")))?;
            let server = Command::new("nats-server")
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("nats-server (Debian's nats-server) is needed for cluster mode's tests")?;
            servers.push(Some(server));
        }
        Ok(NatsCluster {
            servers,
            client_ports: clients,
        })
    }

    /// A client of server `i`, once it answers.
    pub(crate) async fn client(&self, i: usize) -> Result<async_nats::Client> {
        let url = format!("127.0.0.1:{}", self.client_ports[i]);
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            if let Ok(client) = async_nats::connect(&url).await {
                return Ok(client);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nats-server {i} never took a connection");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills server `i` (SIGKILL).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut server) = self.servers[i].take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
