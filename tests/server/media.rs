//! Media through wagate's base URL against mock-meta: a file uploaded in Meta's multipart form
//! reaches Meta when Meta would take it and never when it would not; a media id is read,
//! downloaded and deleted by the tenant whose number it belongs to, and by no other.

use anyhow::Result;
use hyper::Method;
use serde_json::Value;

use crate::support::fixture::*;
use crate::support::web::Answer;

const BOUNDARY: &str = "form-boundary-7MA4YWxkTrZu0gW";

/// Meta's upload form: the file first (as pywa and the Graph docs write it), then the rest.
fn form(mime: &str, file: &[u8], product: &str) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
         Content-Type: {mime}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\n\
             {product}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n\
             {mime}\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    body
}

async fn upload(f: &Fixture, token: &str, number: u64, body: Vec<u8>) -> Result<Answer> {
    let auth = format!("Bearer {token}");
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    f.web
        .request(
            Method::POST,
            &f.url(&format!("/v23.0/{number}/media")),
            &[
                ("authorization", auth.as_str()),
                ("content-type", content_type.as_str()),
            ],
            body,
        )
        .await
}

async fn mock_report(f: &Fixture, base: &str) -> Result<Value> {
    Ok(f.web.get(&format!("{base}/mock/report"), "").await?.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_file_is_read_downloaded_and_deleted_by_its_owner_and_by_no_one_else(
) -> Result<()> {
    let (_mock, base, mut f) = with_plain_mock_meta("media-life").await?;
    let file: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let uploaded = upload(&f, ALPHA, NUMBER_A, form("image/jpeg", &file, "whatsapp")).await?;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    let id = uploaded.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!id.is_empty(), "{}", uploaded.text());
    assert_eq!(mock_report(&f, &base).await?["media_files"], 1);

    let read = f.web.get(&f.url(&format!("/v23.0/{id}")), ALPHA).await?;
    assert_eq!(read.status, 200, "{}", read.text());
    let url = read.json()["url"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        url,
        f.url(&format!("/wagate/v1/media/{id}/content")),
        "{}",
        read.text()
    );
    assert_eq!(read.json()["mime_type"], "image/jpeg");
    assert_eq!(read.json()["file_size"], file.len());

    let downloaded = f.web.get(&url, ALPHA).await?;
    assert_eq!(downloaded.status, 200, "{}", downloaded.text());
    assert_eq!(downloaded.body.as_ref(), file.as_slice());
    assert_eq!(downloaded.headers["content-type"], "image/jpeg");

    // Another tenant (its own number asked of Meta) can neither read, fetch nor delete it.
    for answer in [
        f.web.get(&f.url(&format!("/v23.0/{id}")), BETA).await?,
        f.web.get(&url, BETA).await?,
        f.web
            .request(
                Method::DELETE,
                &f.url(&format!("/v23.0/{id}?phone_number_id={NUMBER_A}")),
                &[("authorization", &format!("Bearer {BETA}"))],
                Vec::new(),
            )
            .await?,
    ] {
        assert_eq!(answer.code(), Some(100), "{}", answer.text());
    }
    // Another kind of object named with one's own number is not media: Meta is not asked.
    let number_b = f
        .web
        .get(
            &f.url(&format!("/v23.0/{NUMBER_B}?phone_number_id={NUMBER_A}")),
            ALPHA,
        )
        .await?;
    assert_eq!(number_b.code(), Some(100), "{}", number_b.text());
    assert_eq!(mock_report(&f, &base).await?["media_files"], 1);

    let deleted = f
        .web
        .request(
            Method::DELETE,
            &f.url(&format!("/v23.0/{id}")),
            &[("authorization", &format!("Bearer {ALPHA}"))],
            Vec::new(),
        )
        .await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["success"], true);
    assert_eq!(mock_report(&f, &base).await?["media_files"], 0);
    assert_ne!(f.web.get(&url, ALPHA).await?.status, 200);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_meta_would_refuse_never_reaches_meta() -> Result<()> {
    let (_mock, base, mut f) = with_plain_mock_meta("media-refused").await?;
    let small = vec![1u8; 1_000];
    let over_five_mb = vec![2u8; 5 * 1024 * 1024 + 1];
    for (body, code, reason) in [
        (
            form("image/gif", &small, "whatsapp"),
            131_053,
            "not take files of type",
        ),
        (
            form("image/jpeg", &over_five_mb, "whatsapp"),
            131_053,
            "larger than",
        ),
        (
            form("image/png", &small, "telegram"),
            100,
            "messaging_product",
        ),
        (b"not a form".to_vec(), 100, "cannot be read"),
    ] {
        let refused = upload(&f, ALPHA, NUMBER_A, body).await?;
        assert_eq!(refused.code(), Some(code), "{}", refused.text());
        assert!(refused.text().contains(reason), "{}", refused.text());
    }
    // A number the tenant does not own: refused as Meta refuses an object one may not use.
    let foreign = upload(&f, ALPHA, NUMBER_B, form("image/png", &small, "whatsapp")).await?;
    assert_eq!(foreign.code(), Some(100), "{}", foreign.text());
    assert_eq!(mock_report(&f, &base).await?["media_files"], 0);

    // The same server takes a good file right after, so nothing was left half-done.
    let taken = upload(&f, ALPHA, NUMBER_A, form("image/png", &small, "whatsapp")).await?;
    assert_eq!(taken.status, 200, "{}", taken.text());
    assert_eq!(mock_report(&f, &base).await?["media_files"], 1);
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(
        metrics.contains(r#"wagate_meta_graph_request_duration_seconds_count{call="media_upload",answer="2xx"} 1"#),
        "{metrics}"
    );
    f.stop()
}
