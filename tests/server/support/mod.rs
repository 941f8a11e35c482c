//! What the server tests share: a fixture that starts the real binary beside a stand-in for
//! Meta, the stand-in itself, and HTTP clients (hyper's and a raw TCP one).

pub(crate) mod campaigns;
pub(crate) mod fixture;
pub(crate) mod meta_stub;
pub(crate) mod nats;
pub(crate) mod process;
pub(crate) mod raw_http;
pub(crate) mod web;
pub(crate) mod webdriver;

/// `count` loopback ports free now, all different: each held until all are chosen (a port let
/// go at once may be handed out again by the next bind, and two servers given one port make a
/// cluster of two, too few for three replicas).
pub(crate) fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let held: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    held.iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}
