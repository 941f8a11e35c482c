//! A real third-party Cloud API client (pywa, from PyPI, installed by `tests/ensure-deps.sh`)
//! driven against wagate with nothing changed but its base URL: every call it makes reaches
//! mock-meta through wagate and comes back in the shapes the client parses, and a text outside
//! the window raises the client's own re-engagement error (Meta's 131047, said by wagate).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::WAIT;
use crate::support::fixture::*;

/// Where `tests/ensure-deps.sh` installs the client.
fn client_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/client-venv/bin/python")
}

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/server/clients/pywa_drop_in.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywa_works_against_wagate_with_only_its_base_url_changed() -> Result<()> {
    let python = client_python();
    anyhow::ensure!(
        python.exists(),
        "{} is missing: run tests/ensure-deps.sh (it installs pywa from PyPI)",
        python.display()
    );
    let (_mock, base, mut f) = with_mock_meta(
        "drop-in-pywa",
        wagate_loadgen::mock_meta::Faults::default(),
        &["--clock.mode", "system"],
    )
    .await?;
    let ana = person(1);
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    // Ana writes through Meta: the window opens on both sides; her message is the one read.
    let inbound = json!({ "phone_number_id": NUMBER_A.to_string(), "from": ana, "text": "hi" });
    f.web
        .post(&format!("{base}/mock/inbound"), "", &inbound, &[])
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.contact(NUMBER_A, &ana).await?["window_open"] != true {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no inbound webhook");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let stranger = person(2);
    let env = [
        ("WAGATE_URL", f.url("")),
        ("TOKEN", ALPHA.to_string()),
        ("PHONE_ID", NUMBER_A.to_string()),
        ("WABA_ID", "1".to_string()),
        ("PERSON", ana.clone()),
        ("STRANGER", stranger),
        ("INBOUND_WAMID", "wamid.in.0".to_string()),
    ];
    let script = client_script();
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .arg("120")
            .arg(python)
            .arg(script)
            .envs(env)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    anyhow::ensure!(
        ran.status.success(),
        "pywa failed ({}):\n{stdout}\n{stderr}",
        ran.status
    );
    let done: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("pywa printed: {stdout}\n{stderr}"))?;

    // Each send was accepted with its own message id (wagate's, given at acceptance).
    let ids: std::collections::HashSet<&str> = ["text", "template", "image", "interactive"]
        .iter()
        .filter_map(|send| done[*send].as_str().filter(|id| !id.is_empty()))
        .collect();
    assert_eq!(ids.len(), 4, "{done}");
    assert_eq!(done["read"], true, "{done}");
    assert_eq!(done["typing"], true, "{done}");
    assert_eq!(
        done["media_url"],
        f.url(&format!(
            "/wagate/v1/media/{}/content",
            done["uploaded_media_id"].as_str().unwrap_or_default()
        )),
        "{done}"
    );
    assert_eq!(done["media_mime_type"], "image/png", "{done}");
    assert_eq!(done["downloaded_matches"], true, "{done}");
    assert!(
        done["templates"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "order_update")),
        "{done}"
    );
    assert!(
        done["created_template"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{done}"
    );
    assert_eq!(done["phone_number"]["id"], NUMBER_A.to_string(), "{done}");
    assert_eq!(
        done["outside_window"], "ReEngagementMessage 131047",
        "{done}"
    );

    // The four sends reached Meta, once each, breaking none of its rules; the read mark and
    // the typing indicator went too; the created template is known to wagate as pending.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = f.web.get(&format!("{base}/mock/report"), "").await?.json();
        if seen["accepted"] == 4 {
            assert_eq!(seen["violations"], 0, "{seen}");
            assert_eq!(seen["duplicates"], 0, "{seen}");
            assert_eq!(seen["read_marks"], 2, "{seen}");
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{seen}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pickup = template_send(&ana, "pickup_ready", &["Ana"]);
    let early = f.send(ALPHA, NUMBER_A, &pickup, &[]).await?;
    assert_eq!(
        early.json()["error"]["wagate_reason"],
        "template_not_approved",
        "{}",
        early.text()
    );
    f.stop()
}
