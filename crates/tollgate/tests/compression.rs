//! The compression plugin with a real backend and real curl decoders:
//! gzip, brotli and zstd round-trip byte-exact, chosen by Accept-Encoding
//! quality; small or other answers pass unchanged; encoded answers are never
//! encoded twice and are decoded for clients that cannot read them; a large
//! answer streams in bounded memory; cached answers are encoded per client.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::{Backend, RawBackend};
use support::client::{admin_service_with_plugin, created, http1};
use support::curl::curl;
use support::gateway::Gateway;

/// The backend's `/answer?_len=n` body.
fn text(n: usize) -> Vec<u8> {
    b"Tollgate compresses text answers; this line repeats. "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

async fn gateway_for(url: &str, form: &str) -> Gateway {
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    admin_service_with_plugin(
        &c,
        &gw.admin_url(),
        url,
        "/z",
        &format!("name=compression{form}"),
    )
    .await;
    gw
}

#[tokio::test(flavor = "multi_thread")]
async fn each_coding_round_trips_byte_exact_through_curls_decoders() {
    let b = Backend::start("b").await;
    let gw = gateway_for(&b.url(), "").await;
    let url = format!("{}/z/answer?_len=200000", gw.url());
    for coding in ["gzip", "br", "zstd"] {
        let accept = format!("Accept-Encoding: {coding}");
        let got = curl(&url, &["--compressed", "-H", &accept]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-encoding"), Some(coding));
        assert_eq!(got.header("vary"), Some("Accept-Encoding"));
        assert_eq!(got.header("content-length"), None, "streamed");
        assert!(got.body == text(200_000), "{coding}: body differs");
        // Without --compressed curl shows the bytes on the wire: smaller.
        let raw = curl(&url, &["-H", &accept]).await;
        assert!(raw.body.len() < 20_000, "{coding}: {}", raw.body.len());
    }
    // Qualities first, then the configured order (zstd, br, gzip).
    let pick = |ae: &'static str| {
        let url = url.clone();
        async move {
            let got = curl(&url, &["-H", &format!("Accept-Encoding: {ae}")]).await;
            got.header("content-encoding").map(str::to_owned)
        }
    };
    assert_eq!(pick("gzip, br").await.as_deref(), Some("br"));
    assert_eq!(pick("gzip, br;q=0.5").await.as_deref(), Some("gzip"));
    assert_eq!(
        pick("gzip, deflate, br, zstd").await.as_deref(),
        Some("zstd")
    );
    assert_eq!(pick("identity").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn small_answers_other_types_and_encoded_answers_pass_unchanged() {
    let b = Backend::start("b").await;
    let gw = gateway_for(&b.url(), "&config.min_length=1000").await;
    let base = format!("{}/z/answer", gw.url());
    let gz = ["-H", "Accept-Encoding: gzip"];

    let small = curl(&format!("{base}?_len=999"), &gz).await;
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.body, text(999));
    let png = curl(&format!("{base}?_len=5000&Content-Type=image/png"), &gz).await;
    assert_eq!(png.header("content-encoding"), None);
    assert_eq!(png.header("vary"), None);
    let no_transform = curl(&format!("{base}?_len=5000&Cache-Control=no-transform"), &gz).await;
    assert_eq!(no_transform.header("content-encoding"), None);
    // Already encoded by the backend (here with a made-up body): untouched.
    let encoded = curl(&format!("{base}?_len=5000&Content-Encoding=gzip"), &gz).await;
    assert_eq!(encoded.header("content-encoding"), Some("gzip"));
    assert_eq!(encoded.body, text(5000), "not encoded a second time");
    // No Accept-Encoding: identity, but the answer says it varies.
    let plain = curl(&format!("{base}?_len=5000"), &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.body, text(5000));
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_answers_are_decoded_for_clients_that_do_not_accept_gzip() {
    // A backend that always answers gzip, made by the system's gzip tool.
    let original = text(50_000);
    let dir = support::gateway::temp_dir("gz");
    std::fs::write(dir.join("t"), &original).unwrap();
    let gz = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .arg(dir.join("t"))
        .output()
        .unwrap()
        .stdout;
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-encoding: gzip\r\n\
         etag: \"v1\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    answer.extend_from_slice(&gz);
    let raw = RawBackend::start(Some(Box::leak(answer.into_boxed_slice()))).await;
    let gw = gateway_for(&format!("http://{}", raw.addr), "").await;
    let url = format!("{}/z/file", gw.url());

    let plain = curl(&url, &["-H", "Accept-Encoding: identity"]).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("etag"), Some("W/\"v1\""));
    assert!(plain.body == original, "decoded byte-exact");
    let passed = curl(&url, &["-H", "Accept-Encoding: gzip"]).await;
    assert_eq!(passed.header("content-encoding"), Some("gzip"));
    assert!(passed.body == gz, "passed as the backend sent it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_answer_is_compressed_as_it_streams_in_bounded_memory() {
    let b = Backend::start("b").await;
    let gw = gateway_for(&b.url(), "").await;
    let before = gw.rss_kib();
    let len = 100 * 1024 * 1024;
    let url = format!("{}/z/answer?_len={len}", gw.url());
    let got = curl(&url, &["--compressed", "-H", "Accept-Encoding: gzip"]).await;
    assert_eq!(got.body.len(), len);
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    let peak = gw.peak_rss_kib();
    println!("gateway RSS {before} KiB before, peak {peak} KiB for {len} bytes gzip'd");
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_answers_are_stored_plain_and_encoded_per_client() {
    let b = Backend::start("b").await;
    let gw = gateway_for(&b.url(), "").await;
    let c = http1();
    created(
        &c,
        &format!("{}/services/s/plugins", gw.admin_url()),
        "name=proxy-cache&config.strategy=memory",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let url = format!("{}/z/answer?_len=30000", gw.url());
    let first = curl(&url, &["--compressed", "-H", "Accept-Encoding: br"]).await;
    assert_eq!(first.header("x-cache-status"), Some("Miss"));
    assert_eq!(first.header("content-encoding"), Some("br"));
    let plain = curl(&url, &[]).await;
    assert_eq!(plain.header("x-cache-status"), Some("Hit"));
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("content-length"), Some("30000"));
    let gz = curl(&url, &["--compressed", "-H", "Accept-Encoding: gzip"]).await;
    assert_eq!(gz.header("x-cache-status"), Some("Hit"));
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(first.body == text(30_000) && plain.body == first.body && gz.body == first.body);
}
