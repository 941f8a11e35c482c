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
