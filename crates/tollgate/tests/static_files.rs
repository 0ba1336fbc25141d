//! The static-files plugin serving a real folder: index files and content
//! types, folder redirects, single and multipart ranges, 304s from ETag and
//! Last-Modified, precompressed siblings, try_files fallbacks, listings,
//! and no way out of the root (`..`, encoded dots, symbolic links).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use support::client::{get, http1, raw, send};
use support::gateway::Gateway;

/// A site folder inside a parent that also holds a secret file, with a
/// symbolic link inside the site pointing at it.
fn site() -> (PathBuf, Vec<u8>) {
    let parent = support::gateway::temp_dir("site");
    std::fs::write(parent.join("secret.txt"), "TOP SECRET").unwrap();
    let root = parent.join("www");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("app/index.html"), "<h1>spa shell</h1>").unwrap();
    std::fs::write(root.join("docs/readme.txt"), "read me").unwrap();
    std::fs::write(root.join("app.js"), "console.log(1);\n".repeat(200)).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let css = "body { color: black; }\n".repeat(100);
    std::fs::write(root.join("style.css"), &css).unwrap();
    let gz = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .arg(root.join("style.css"))
        .output()
        .unwrap()
        .stdout;
    std::fs::write(root.join("style.css.gz"), gz).unwrap();
    std::os::unix::fs::symlink(parent.join("secret.txt"), root.join("leak")).unwrap();
    std::os::unix::fs::symlink(root.join("app.js"), root.join("inside.js")).unwrap();
    (root, big)
}

fn config(root: &Path) -> String {
    let r = root.display();
    format!(
        r#"_format_version: "3.0"
routes:
  - name: site
    paths: [/site]
    plugins:
      - name: static-files
        config: {{ root: "{r}" }}
  - name: spa
    paths: [/spa]
    plugins:
      - name: static-files
        config: {{ root: "{r}/app", try_files: ["$uri", "$uri/", "/index.html"] }}
  - name: strict
    paths: [/strict]
    plugins:
      - name: static-files
        config: {{ root: "{r}", try_files: ["$uri", "=404"] }}
  - name: list
    paths: [/list]
    plugins:
      - name: static-files
        config: {{ root: "{r}", directory_listing: true, cache_control: "max-age=60" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn files_index_folders_and_methods_as_nginx_serves_them() {
    let (root, _) = site();
    let gw = Gateway::start(&config(&root), &[]);
    let c = http1();
    let u = |p: &str| format!("{}{p}", gw.url());

    let home = get(&c, &u("/site/"), &[]).await;
    assert_eq!((home.status, home.text().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(home.header("content-type"), Some("text/html"));
    let js = get(&c, &u("/site/app.js"), &[]).await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().contains("javascript"));
    assert_eq!(js.header("content-length"), Some("3200"));
    assert_eq!(js.header("accept-ranges"), Some("bytes"));

    let folder = get(&c, &u("/site/docs?x=1"), &[]).await;
    assert_eq!(folder.status, 301);
    assert_eq!(folder.header("location"), Some("/site/docs/?x=1"));
    assert_eq!(
        get(&c, &u("/site/docs/"), &[]).await.status,
        403,
        "no listing"
    );
    assert_eq!(get(&c, &u("/site/nothing.txt"), &[]).await.status, 404);
    let post = send(
        &c,
        "POST",
        &u("/site/app.js"),
        Some(("text/plain", "x")),
        &[],
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = send(&c, "HEAD", &u("/site/app.js"), None, &[]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("3200"));

    let listing = get(&c, &u("/list/docs/"), &[]).await;
    assert_eq!(listing.status, 200);
    assert!(listing
        .text()
        .contains("<a href=\"readme.txt\">readme.txt</a>"));
    let file = get(&c, &u("/list/app.js"), &[]).await;
    assert_eq!(file.header("cache-control"), Some("max-age=60"));
}

#[tokio::test(flavor = "multi_thread")]
async fn single_multipart_and_unsatisfiable_ranges() {
    let (root, big) = site();
    let gw = Gateway::start(&config(&root), &[]);
    let c = http1();
    let url = format!("{}/site/big.bin", gw.url());

    let whole = get(&c, &url, &[]).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == big, "streamed whole");

    let first = get(&c, &url, &[("range", "bytes=0-99")]).await;
    assert_eq!(first.status, 206);
    assert_eq!(first.header("content-range"), Some("bytes 0-99/300000"));
    assert_eq!(&first.body[..], &big[..100]);
    let tail = get(&c, &url, &[("range", "bytes=-100")]).await;
    assert_eq!(&tail.body[..], &big[299_900..]);
    let open = get(&c, &url, &[("range", "bytes=100000-")]).await;
    assert_eq!(
        open.header("content-range"),
        Some("bytes 100000-299999/300000")
    );
    assert!(open.body[..] == big[100_000..]);

    let multi = get(&c, &url, &[("range", "bytes=0-9, 200000-200009")]).await;
    assert_eq!(multi.status, 206);
    let ct = multi.header("content-type").unwrap().to_owned();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let body = multi.body.to_vec();
    let parts: Vec<&[u8]> = split(&body, format!("--{boundary}").as_bytes());
    // Preamble, two parts, and the closing "--".
    assert_eq!(parts.len(), 4, "{}", String::from_utf8_lossy(&body));
    for (part, (a, b)) in parts[1..3]
        .iter()
        .zip([(0usize, 9usize), (200_000, 200_009)])
    {
        let text = String::from_utf8_lossy(part);
        assert!(
            text.contains(&format!("Content-Range: bytes {a}-{b}/300000")),
            "{text}"
        );
        let data_at = find(part, b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&part[data_at..data_at + 10], &big[a..=b]);
    }
    assert_eq!(
        multi
            .header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        body.len()
    );

    let none = get(&c, &url, &[("range", "bytes=300000-")]).await;
    assert_eq!(none.status, 416);
    assert_eq!(none.header("content-range"), Some("bytes */300000"));
    let stale = get(
        &c,
        &url,
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!((stale.status, stale.body.len()), (200, 300_000));
    let etag = whole.header("etag").unwrap();
    let fresh = get(&c, &url, &[("range", "bytes=0-9"), ("if-range", etag)]).await;
    assert_eq!(fresh.status, 206);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(hay, sep) {
        out.push(&hay[..i]);
        hay = &hay[i + sep.len()..];
    }
    out.push(hay);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn etag_and_last_modified_answer_304() {
    let (root, _) = site();
    let gw = Gateway::start(&config(&root), &[]);
    let c = http1();
    let url = format!("{}/site/app.js", gw.url());
    let first = get(&c, &url, &[]).await;
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.contains('-'), "{etag}");

    let same = get(&c, &url, &[("if-none-match", &etag)]).await;
    assert_eq!((same.status, same.body.len()), (304, 0));
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    let weak = format!("W/{etag}");
    assert_eq!(get(&c, &url, &[("if-none-match", &weak)]).await.status, 304);
    assert_eq!(
        get(&c, &url, &[("if-none-match", "\"x\"")]).await.status,
        200
    );
    assert_eq!(
        get(&c, &url, &[("if-modified-since", &modified)])
            .await
            .status,
        304
    );
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    assert_eq!(
        get(&c, &url, &[("if-modified-since", old)]).await.status,
        200
    );
    // If-None-Match wins over If-Modified-Since.
    let both = get(
        &c,
        &url,
        &[("if-none-match", "\"x\""), ("if-modified-since", &modified)],
    )
    .await;
    assert_eq!(both.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn precompressed_siblings_go_to_clients_that_accept_them() {
    let (root, _) = site();
    let gw = Gateway::start(&config(&root), &[]);
    let c = http1();
    let url = format!("{}/site/style.css", gw.url());
    let gz = get(&c, &url, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("content-type"), Some("text/css"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gz.body, std::fs::read(root.join("style.css.gz")).unwrap());
    let plain = get(&c, &url, &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, std::fs::read(root.join("style.css")).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn try_files_falls_back_for_single_page_apps_or_answers_its_code() {
    let (root, _) = site();
    let gw = Gateway::start(&config(&root), &[]);
    let c = http1();
    let u = |p: &str| format!("{}{p}", gw.url());
    let deep = get(&c, &u("/spa/users/42/settings"), &[]).await;
    assert_eq!(
        (deep.status, deep.text().as_str()),
        (200, "<h1>spa shell</h1>")
    );
    let strict = get(&c, &u("/strict/users/42"), &[]).await;
    assert_eq!(strict.status, 404);
    assert_eq!(get(&c, &u("/strict/app.js"), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_outside_the_root_is_served() {
    let (root, _) = site();
    let gw = Gateway::start(&config(&root), &[]);
    let addr: std::net::SocketAddr = gw.url().trim_start_matches("http://").parse().unwrap();
    for path in [
        "/site/../secret.txt",
        "/site/%2e%2e/secret.txt",
        "/site/%2E%2E%2Fsecret.txt",
        "/site/..%2fsecret.txt",
        "/site/docs/..%2f..%2fsecret.txt",
        "/site/%252e%252e/secret.txt",
        "/site/..%5csecret.txt",
        "/site/leak",
        "/spa/..%2f..%2fsecret.txt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(addr, req.as_bytes()).await;
        let status = answer.split_whitespace().nth(1).unwrap_or("");
        assert!(!answer.contains("TOP SECRET"), "{path} leaked: {answer}");
        assert!(["400", "404"].contains(&status), "{path}: {status}");
    }
    // A link that stays inside the root is followed.
    let c = http1();
    assert_eq!(
        get(&c, &format!("{}/site/inside.js", gw.url()), &[])
            .await
            .status,
        200
    );
}
