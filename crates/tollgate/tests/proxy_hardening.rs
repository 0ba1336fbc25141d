//! Request-smuggling guards and resource limits: ambiguous framing is
//! answered 400 and never reaches the backend.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use support::backend::Backend;
use support::client::raw;
use support::gateway::Gateway;

async fn setup() -> (Backend, Gateway) {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[("TOLLGATE_CLIENT_HEADER_TIMEOUT", "1000")]);
    (b, gw)
}

fn status_line(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let (b, gw) = setup().await;
    let cases: &[&[u8]] = &[
        // differing Content-Length (identical duplicates are one value, RFC 9110 §8.6)
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        // invalid Content-Length
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
        // obsolete line folding
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
        // invalid header name
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        // transfer-encoding that is not chunked
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
        // two Host headers
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ];
    for case in cases {
        let resp = raw(gw.proxy, case).await;
        assert!(
            status_line(&resp).starts_with("HTTP/1.1 400"),
            "{:?} -> {resp:?}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        0,
        "an ambiguous request reached the backend"
    );
}

/// Content-Length together with Transfer-Encoding (in either order) is the
/// classic smuggling shape: refused with 400, the connection closed, nothing
/// forwarded, and nothing read behind it.
#[tokio::test(flavor = "multi_thread")]
async fn content_length_with_chunked_is_400_and_never_forwarded() {
    let (b, gw) = setup().await;
    for req in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"[..],
    ] {
        let resp = raw(gw.proxy, req).await;
        assert!(status_line(&resp).starts_with("HTTP/1.1 400"), "{resp}");
        assert!(resp.to_ascii_lowercase().contains("connection: close"), "{resp}");
        assert!(!resp.contains("/smuggled"), "a second request was read after an ambiguous one: {resp}");
        assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "{resp}");
    }
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        0,
        "an ambiguous request reached the backend"
    );
}

/// Requests pipelined on one connection are answered in order, HTTP/1.0
/// clients get an answer they can read, and a request body is read exactly
/// to its length before the next request starts.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let (b, gw) = setup().await;
    let resp = raw(
        gw.proxy,
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /three HTTP/1.0\r\n\r\n",
    )
    .await;
    let one = resp.find("\"uri\":\"/one\"").expect(&resp);
    let two = resp.find("\"uri\":\"/two\"").expect(&resp);
    let three = resp.find("\"uri\":\"/three\"").expect(&resp);
    assert!(one < two && two < three, "{resp}");
    assert_eq!(resp.matches("HTTP/1.1 200").count(), 3, "{resp}");
    assert!(resp.contains("\"body_len\":5"), "{resp}");
    assert_eq!(b.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_chunk_size_never_becomes_a_valid_request_upstream() {
    let (b, gw) = setup().await;
    let resp = raw(
        gw.proxy,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    // The backend may have seen the request head, but never a complete body:
    // either the client gets 400/502, or the connection is cut.
    assert!(
        !resp.contains("\"body_len\""),
        "a malformed body was answered as valid: {resp}"
    );
    let _ = b;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_are_431_and_long_targets_414() {
    let (_b, gw) = setup().await;
    let big = "x".repeat(40 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    let resp = raw(gw.proxy, req.as_bytes()).await;
    assert!(
        status_line(&resp).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&resp)
    );

    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let resp = raw(gw.proxy, many.as_bytes()).await;
    assert!(
        status_line(&resp).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&resp)
    );

    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let resp = raw(gw.proxy, long.as_bytes()).await;
    assert!(
        status_line(&resp).starts_with("HTTP/1.1 414"),
        "{}",
        status_line(&resp)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_header_senders_and_idle_keepalive_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_b, gw) = setup().await;
    // Slowloris: a partial head and then nothing.
    let mut s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let t = std::time::Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "connection not closed after the header timeout");
    assert!(t.elapsed() < std::time::Duration::from_secs(4));

    // Idle keep-alive connection after one request.
    let mut s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "idle keep-alive connection not closed");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[("TOLLGATE_MAX_CONNECTIONS", "2")]);
    let _c1 = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let _c2 = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut c3 = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let _ = c3.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(std::time::Duration::from_secs(3), c3.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok() && buf.is_empty(),
        "third connection was served: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

/// A backend and a gateway proxying every path to it.
async fn gateway_before_one_backend() -> (Backend, Gateway) {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    (b, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_rapid_reset_flood_leaves_other_clients_served() {
    let (b, gw) = gateway_before_one_backend().await;
    let addr = gw.proxy;
    // The attacker, on a thread and runtime of its own (so it cannot slow
    // the test's client down): h2c, opening streams and cancelling each at
    // once (CVE-2023-44487), as fast as the connection allows, for 3 s.
    let attacker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let Ok((client, conn)) = h2::client::handshake(tcp).await else {
                return 0usize;
            };
            tokio::spawn(conn);
            let mut client = client;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            let mut sent = 0;
            while std::time::Instant::now() < deadline {
                let Ok(ready) = client.ready().await else {
                    break;
                };
                client = ready;
                let req = http::Request::get(format!("http://{addr}/slow/200"))
                    .body(())
                    .unwrap();
                // Dropping both handles at once resets the stream (CANCEL).
                let Ok(handles) = client.send_request(req, true) else {
                    break;
                };
                drop(handles);
                sent += 1;
            }
            sent
        })
    });
    // Meanwhile an ordinary client keeps being answered promptly.
    let worst = slowest_answer(addr, 20).await;
    let sent = attacker.join().unwrap();
    eprintln!("rapid reset: {sent} streams opened and cancelled; slowest other answer {worst:?}; {} reached the backend", b.hits.load(Ordering::SeqCst));
    assert!(sent > 100, "the attacker only opened {sent} streams");
    assert!(
        worst < std::time::Duration::from_secs(1),
        "slowest answer {worst:?}"
    );
    // The cancelled streams did not pile up at the backend: far fewer
    // requests reached it than streams were opened.
    let reached = b.hits.load(Ordering::SeqCst);
    assert!(
        reached < sent,
        "{reached} of {sent} cancelled streams reached the backend"
    );
}

/// One raw HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `high`.
fn hpack_int(high: u8, n: u32, mut v: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// The client preface, an empty SETTINGS frame, and the request head of
/// stream `stream` (GET / on authority `a`) as the start of a header block.
fn h2_preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    out
}

/// Reads frames until the server closes or sends GOAWAY; returns whether a
/// GOAWAY came, within `limit`.
async fn h2_goaway_or_close(s: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 16384];
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == 0x7 {
                return true;
            }
            buf.drain(..9 + len);
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return false,
        }
    }
}

/// An ordinary client checking the gateway at `addr` stays prompt: the
/// slowest of `n` answers, one every 100 ms.
async fn slowest_answer(addr: std::net::SocketAddr, n: usize) -> std::time::Duration {
    let client = support::client::http1();
    let mut worst = std::time::Duration::ZERO;
    for _ in 0..n {
        let started = std::time::Instant::now();
        let got = support::client::get(&client, &format!("http://{addr}/x"), &[]).await;
        assert_eq!(got.status, 200);
        worst = worst.max(started.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_continuation_flood_is_cut_off_and_other_clients_stay_served() {
    use tokio::io::AsyncWriteExt;
    let (b, gw) = gateway_before_one_backend().await;
    let addr = gw.proxy;
    let flood = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&h2_preface()).await.unwrap();
        // HEADERS without END_HEADERS, then CONTINUATION frames of
        // literal headers that never end the block (CVE-2024-27316 class):
        // up to 64 MiB if nothing stops it.
        let head = [0x82, 0x86, 0x84, 0x41, 0x01, b'a'];
        s.write_all(&h2_frame(0x1, 0x1, 1, &head)).await.unwrap();
        let mut block = Vec::new();
        while block.len() < 16_000 {
            block.push(0x00);
            hpack_int(0, 7, 5, &mut block);
            block.extend_from_slice(b"x-pad");
            hpack_int(0, 7, 200, &mut block);
            block.extend(std::iter::repeat_n(b'p', 200));
        }
        let frame = h2_frame(0x9, 0, 1, &block);
        let mut written = 0usize;
        for _ in 0..4096 {
            if s.write_all(&frame).await.is_err() {
                break;
            }
            written += frame.len();
        }
        let cut = h2_goaway_or_close(&mut s, std::time::Duration::from_secs(5)).await;
        (written, cut)
    });
    let worst = slowest_answer(addr, 10).await;
    let (written, cut) = flood.await.unwrap();
    eprintln!("CONTINUATION flood: {written} bytes written before the cut; slowest other answer {worst:?}");
    assert!(cut, "the server neither sent GOAWAY nor closed");
    assert!(written < 64 << 20, "the whole flood was accepted");
    assert!(
        worst < std::time::Duration::from_secs(1),
        "slowest answer {worst:?}"
    );
    assert_eq!(b.hits.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_the_client_makes_the_server_reset_end_in_goaway_made_you_reset() {
    use tokio::io::AsyncWriteExt;
    let (b, gw) = gateway_before_one_backend().await;
    let addr = gw.proxy;
    let attack = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&h2_preface()).await.unwrap();
        // Each stream: a complete GET, then a WINDOW_UPDATE of 0 on it, a
        // protocol error the server answers by resetting the stream
        // (CVE-2025-8671). 2,000 of them unless the server stops it.
        let head = [0x82, 0x86, 0x84, 0x41, 0x01, b'a'];
        let mut sent = 0usize;
        for i in 0..2000u32 {
            let id = 1 + 2 * i;
            let mut burst = h2_frame(0x1, 0x1 | 0x4, id, &head);
            burst.extend(h2_frame(0x8, 0, id, &0u32.to_be_bytes()));
            if s.write_all(&burst).await.is_err() {
                break;
            }
            sent += 1;
        }
        let cut = h2_goaway_or_close(&mut s, std::time::Duration::from_secs(5)).await;
        (sent, cut)
    });
    let worst = slowest_answer(addr, 10).await;
    let (sent, cut) = attack.await.unwrap();
    eprintln!(
        "MadeYouReset: {sent} streams sent; {} reached the backend; slowest other answer {worst:?}",
        b.hits.load(Ordering::SeqCst)
    );
    assert!(cut, "the server neither sent GOAWAY nor closed");
    assert!(
        worst < std::time::Duration::from_secs(1),
        "slowest answer {worst:?}"
    );
    // Far fewer than the 2,000 streams were proxied.
    assert!(b.hits.load(Ordering::SeqCst) < 1000);
}
