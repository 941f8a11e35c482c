//! A real headless Chromium (Debian's `chromium`), driven over the W3C WebDriver protocol
//! through Debian's `chromedriver`: started on a free loopback port for one test, in a fresh
//! profile directory, with the flags this machine's closed network needs; stopped when
//! dropped. Only what the console's tests use: open a page, find, click, type, read, run a
//! script, wait for a condition, take a screenshot.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper::Method;
use serde_json::{json, Value};

use super::web::Web;

/// How long a wait for the page may take.
const PAGE_WAIT: Duration = Duration::from_secs(20);

pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    web: Web,
    profile: PathBuf,
}

/// A found element's WebDriver reference.
#[derive(Clone)]
pub(crate) struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub(crate) async fn start(profile: &Path) -> Result<Browser> {
        let port = super::free_ports(1)?[0];
        // A process group of its own, so that the browser it starts goes with it.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("chromedriver (Debian's chromium-driver) is needed for the console's tests")?;
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            web: Web::default(),
            profile: profile.to_path_buf(),
        };
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let ready = browser
                .web
                .get(&format!("{}/status", browser.base), "")
                .await
                .map(|a| a.json()["value"]["ready"] == true);
            if ready.unwrap_or(false) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver never became ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_dir_all(&browser.profile);
        std::fs::create_dir_all(&browser.profile)?;
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1280,1000",
                         format!("--user-data-dir={}", browser.profile.display())]
            }
        } } });
        let created = browser.call(Method::POST, "/session", caps).await?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no WebDriver session")?
            .to_string();
        Ok(browser)
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let body = if method == Method::GET {
            String::new()
        } else {
            body.to_string()
        };
        let answer = self
            .web
            .request(method, &url, &[("content-type", "application/json")], body)
            .await?;
        let json = answer.json();
        if answer.status != 200 {
            bail!("WebDriver {path}: {} {json}", answer.status);
        }
        Ok(json["value"].clone())
    }

    async fn session_call(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub(crate) async fn goto(&self, url: &str) -> Result<()> {
        self.session_call(Method::POST, "/url", json!({ "url": url }))
            .await
            .map(|_| ())
    }

    /// The first element `css` selects, waiting for it to appear.
    pub(crate) async fn find(&self, css: &str) -> Result<Element> {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let found = self
                .session_call(
                    Method::POST,
                    "/element",
                    json!({ "using": "css selector", "value": css }),
                )
                .await;
            if let Ok(found) = found {
                if let Some((_, id)) = found.as_object().and_then(|o| o.iter().next()) {
                    return Ok(Element(id.as_str().unwrap_or_default().to_string()));
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no element {css} appeared");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.session_call(
            Method::POST,
            &format!("/element/{}/click", element.0),
            json!({}),
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.session_call(
            Method::POST,
            &format!("/element/{}/clear", element.0),
            json!({}),
        )
        .await?;
        self.session_call(
            Method::POST,
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await
        .map(|_| ())
    }

    /// Presses a key (WebDriver's code, e.g. `\u{E004}` for Tab) where the focus is.
    pub(crate) async fn press(&self, key: &str) -> Result<()> {
        self.chord(&[key]).await
    }

    /// Presses `keys` together (e.g. Shift and Tab), released in reverse.
    pub(crate) async fn chord(&self, keys: &[&str]) -> Result<()> {
        let mut steps: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "type": "keyDown", "value": k }))
            .collect();
        steps.extend(
            keys.iter()
                .rev()
                .map(|k| json!({ "type": "keyUp", "value": k })),
        );
        let actions = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": steps }] });
        self.session_call(Method::POST, "/actions", actions)
            .await
            .map(|_| ())
    }

    pub(crate) async fn text(&self, css: &str) -> Result<String> {
        let element = self.find(css).await?;
        let text = self
            .session_call(
                Method::GET,
                &format!("/element/{}/text", element.0),
                json!({}),
            )
            .await?;
        Ok(text.as_str().unwrap_or_default().to_string())
    }

    /// Runs `script` in the page (`arguments` as given) and returns what it returns.
    pub(crate) async fn run(&self, script: &str, args: Value) -> Result<Value> {
        self.session_call(
            Method::POST,
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Waits until the text `css` selects satisfies `done`; the text.
    pub(crate) async fn wait_text(&self, css: &str, done: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let text = self.text(css).await.unwrap_or_default();
            if done(&text) {
                return Ok(text);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{css} never read as wanted; it reads {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The page's URL.
    pub(crate) async fn url(&self) -> Result<String> {
        Ok(self
            .session_call(Method::GET, "/url", json!({}))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The browser's cookie `name` for the page's site (HTTP-only ones too).
    pub(crate) async fn cookie(&self, name: &str) -> Result<Value> {
        self.session_call(Method::GET, &format!("/cookie/{name}"), json!({}))
            .await
    }

    /// A PNG of the page.
    pub(crate) async fn screenshot(&self) -> Result<Vec<u8>> {
        let png = self
            .session_call(Method::GET, "/screenshot", json!({}))
            .await?;
        decode_base64(png.as_str().unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: killed alone, chromedriver left its Chromium running (dozens of
        // processes after a few runs of the suite).
        // `-s KILL --` before the group's negative id: procps' kill reads `-KILL -<id>` as
        // the signal and a group named by the id's first digit.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.driver.id()))
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text.bytes().filter(|b| !b" \n\r=".contains(b)).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c).context("not base64")? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[test]
fn base64_decodes_as_written() {
    assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
    assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
}
