//! proxy-cache against a real backend: Kong's Miss/Hit/Refresh/Bypass
//! sequence and headers, TTL expiry, RFC 9111 directives with
//! `cache_control`, Vary, coalesced misses counted at the backend, purges
//! through the Admin API, and the memory budget under 10,000 keys.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::backend::Backend;
use support::client::{admin_service_with_plugin, get, http1, send, HttpClient};
use support::gateway::Gateway;

/// A gateway whose route `/c` goes to `backend` through proxy-cache
/// configured by `form` (an Admin API form, `config.` fields).
async fn cached(backend: &Backend, form: &str, env: &[(&str, &str)]) -> (Gateway, HttpClient) {
    let gw = Gateway::start_sqlite(env);
    let c = http1();
    let plugin = if form.contains("config.strategy") {
        format!("name=proxy-cache{form}")
    } else {
        format!("name=proxy-cache&config.strategy=memory{form}")
    };
    admin_service_with_plugin(&c, &gw.admin_url(), &backend.url(), "/c", &plugin).await;
    (gw, c)
}

fn status(g: &support::client::Got) -> &str {
    g.header("x-cache-status").unwrap_or("-")
}

#[tokio::test(flavor = "multi_thread")]
async fn miss_then_hit_with_kong_headers_and_bypass_for_what_is_not_cacheable() {
    let b = Backend::start("b").await;
    let (gw, c) = cached(&b, "", &[]).await;
    let url = format!("{}/c/answer", gw.url());

    let miss = get(&c, &url, &[]).await;
    assert_eq!((miss.status, status(&miss)), (200, "Miss"));
    let key = miss.header("x-cache-key").unwrap().to_owned();
    assert_eq!(key.len(), 64, "a sha256 in hex: {key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));

    let hit = get(&c, &url, &[]).await;
    assert_eq!(status(&hit), "Hit");
    assert_eq!(hit.text(), miss.text(), "the stored body");
    assert_eq!(hit.header("x-cache-key"), Some(key.as_str()));
    assert_eq!(hit.header("content-type"), Some("text/plain"));
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(age <= 1, "{age}");
    assert!(hit.header("x-request-id").is_some());
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        1,
        "the hit did not go upstream"
    );

    // Another query string is another key.
    let other = get(&c, &format!("{url}?page=2"), &[]).await;
    assert_eq!(status(&other), "Miss");
    assert_ne!(other.header("x-cache-key"), Some(key.as_str()));

    // Methods, statuses and content types outside the config pass by.
    let post = send(&c, "POST", &url, Some(("text/plain", "x")), &[]).await;
    assert_eq!(status(&post), "Bypass");
    let err = get(&c, &format!("{url}?_status=500"), &[]).await;
    assert_eq!((err.status, status(&err)), (500, "Bypass"));
    let again = get(&c, &format!("{url}?_status=500"), &[]).await;
    assert_eq!(
        status(&again),
        "Bypass",
        "a 500 was not stored: {:?}",
        again.headers
    );
    let binary = format!("{url}?Content-Type=application/octet-stream");
    assert_eq!(status(&get(&c, &binary, &[]).await), "Bypass");
    assert_eq!(status(&get(&c, &binary, &[]).await), "Bypass");
    // 404 is cacheable by default (Kong's [200, 301, 404]).
    let nf = format!("{url}?_status=404");
    assert_eq!(status(&get(&c, &nf, &[]).await), "Miss");
    let nf_hit = get(&c, &nf, &[]).await;
    assert_eq!((nf_hit.status, status(&nf_hit)), (404, "Hit"));

    // HEAD is its own key; its hit keeps the length of the stored answer.
    let head = send(&c, "HEAD", &url, None, &[]).await;
    assert_eq!(status(&head), "Miss");
    let head_hit = send(&c, "HEAD", &url, None, &[]).await;
    assert_eq!(status(&head_hit), "Hit");
    assert!(head_hit.body.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_expire_after_cache_ttl_and_are_refreshed() {
    let b = Backend::start("b").await;
    let (gw, c) = cached(&b, "&config.cache_ttl=1", &[]).await;
    let url = format!("{}/c/answer", gw.url());
    let first = get(&c, &url, &[]).await;
    assert_eq!(status(&first), "Miss");
    assert_eq!(status(&get(&c, &url, &[]).await), "Hit");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refresh = get(&c, &url, &[]).await;
    assert_eq!(status(&refresh), "Refresh");
    assert_ne!(refresh.text(), first.text(), "fetched again");
    let hit = get(&c, &url, &[]).await;
    assert_eq!((status(&hit), hit.text()), ("Hit", refresh.text()));
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_control_directives_decide_what_is_stored_and_for_how_long() {
    let b = Backend::start("b").await;
    let (gw, c) = cached(&b, "&config.cache_control=true", &[]).await;
    let base = format!("{}/c/answer", gw.url());
    let twice = |q: &'static str, req: &'static [(&'static str, &'static str)]| {
        let (c, url) = (c.clone(), format!("{base}?{q}"));
        async move {
            let a = get(&c, &url, req).await;
            let b = get(&c, &url, req).await;
            (status(&a).to_owned(), status(&b).to_owned())
        }
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    // Answers that say not to store are passed on.
    for q in [
        "Cache-Control=no-store",
        "Cache-Control=private",
        "Cache-Control=no-cache",
        "Cache-Control=max-age%3D0",
        "Vary=*",
        "Set-Cookie=s%3D1",
    ] {
        assert_eq!(twice(q, &[]).await, pair("Bypass", "Bypass"), "{q}");
    }
    // Requests that say not to use the cache go upstream.
    assert_eq!(
        twice("n=1", &[("cache-control", "no-cache")]).await,
        pair("Bypass", "Bypass")
    );
    assert_eq!(
        twice("n=2", &[("authorization", "Basic eDp5")]).await,
        pair("Bypass", "Bypass")
    );
    // s-maxage wins over max-age; the entry is fresh for one second.
    let q = "Cache-Control=max-age%3D600,%20s-maxage%3D1";
    assert_eq!(twice(q, &[]).await, pair("Miss", "Hit"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        status(&get(&c, &format!("{base}?{q}"), &[]).await),
        "Refresh"
    );
    // A request's max-age asks for a younger copy.
    let q = "Cache-Control=max-age%3D600&n=3";
    assert_eq!(twice(q, &[]).await, pair("Miss", "Hit"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let young = get(
        &c,
        &format!("{base}?{q}"),
        &[("cache-control", "max-age=0")],
    )
    .await;
    assert_eq!(status(&young), "Refresh");
    // only-if-cached on a miss is a 504.
    let only = get(
        &c,
        &format!("{base}?n=4"),
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(only.status, 504);

    // Vary: a stored answer serves only requests with the same values.
    let vary = format!("{base}?Vary=Accept-Language&n=5");
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(status(&get(&c, &vary, &en).await), "Miss");
    assert_eq!(status(&get(&c, &vary, &en).await), "Hit");
    assert_eq!(status(&get(&c, &vary, &fr).await), "Miss");
    assert_eq!(status(&get(&c, &vary, &fr).await), "Hit");
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_query_params_vary_headers_and_ignore_uri_case_shape_the_key() {
    let b = Backend::start("b").await;
    let form = "&config.vary_query_params[]=page&config.vary_headers[]=x-tenant\
                &config.ignore_uri_case=true";
    let (gw, c) = cached(&b, form, &[]).await;
    let url = |q: &str| format!("{}/c/answer?{q}", gw.url());
    let t1 = [("x-tenant", "one")];
    let first = get(&c, &url("page=1&utm=a"), &t1).await;
    assert_eq!(status(&first), "Miss");
    let same = get(&c, &url("utm=b&page=1"), &t1).await;
    assert_eq!(status(&same), "Hit", "utm is not part of the key");
    assert_eq!(same.header("x-cache-key"), first.header("x-cache-key"));
    let other_tenant = get(&c, &url("page=1"), &[("x-tenant", "two")]).await;
    assert_eq!(status(&other_tenant), "Miss");
    let upper = get(&c, &format!("{}/c/ANSWER?page=1", gw.url()), &t1).await;
    assert_eq!(
        upper.header("x-cache-key"),
        first.header("x-cache-key"),
        "case-insensitive path"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_simultaneous_misses_send_one_request_upstream() {
    let b = Backend::start("b").await;
    let (gw, c) = cached(&b, "&config.vary_query_params[]=k", &[]).await;
    let url = format!("{}/c/answer?k=1&_delay=400", gw.url());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move { get(&c, &url, &[]).await }));
    }
    let mut bodies = std::collections::HashSet::new();
    let mut statuses = std::collections::HashMap::new();
    for t in tasks {
        let g = t.await.unwrap();
        assert_eq!(g.status, 200);
        bodies.insert(g.text());
        *statuses.entry(status(&g).to_owned()).or_insert(0) += 1;
    }
    assert_eq!(b.hits.load(Ordering::SeqCst), 1, "{statuses:?}");
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(statuses.get("Miss"), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get("Hit"), Some(&99), "{statuses:?}");
}

/// A gateway with cache_control on, and an entry for `url` (answered with
/// `max-age=1, EXTENSION=30`) that has gone stale: (backend, gateway,
/// client, url, the stored answer).
async fn gone_stale(
    extension: &str,
) -> (Backend, Gateway, HttpClient, String, support::client::Got) {
    let b = Backend::start("b").await;
    let form = "&config.cache_control=true&config.vary_query_params[]=k";
    let (gw, c) = cached(&b, form, &[]).await;
    let cc = format!("Cache-Control=max-age%3D1,%20{extension}%3D30");
    let url = format!("{}/c/answer?k=1&{cc}", gw.url());
    let old = get(&c, &url, &[]).await;
    assert_eq!(status(&old), "Miss");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    (b, gw, c, url, old)
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_while_revalidate_serves_the_old_copy_while_one_request_refreshes() {
    let (_b, _gw, c, url, old) = gone_stale("stale-while-revalidate").await;
    // One request refreshes slowly; meanwhile others get the stale copy.
    let slow = {
        let (c, url) = (c.clone(), format!("{url}&_delay=800"));
        tokio::spawn(async move { get(&c, &url, &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let stale = get(&c, &url, &[]).await;
    assert_eq!(status(&stale), "Stale");
    assert_eq!(stale.text(), old.text());
    assert!(started.elapsed() < Duration::from_millis(500));
    let refreshed = slow.await.unwrap();
    assert_eq!(status(&refreshed), "Refresh");
    let hit = get(&c, &url, &[]).await;
    assert_eq!((status(&hit), hit.text()), ("Hit", refreshed.text()));
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_are_purged_one_by_one_or_all_through_the_admin_api() {
    let b = Backend::start("b").await;
    let (gw, c) = cached(&b, "", &[]).await;
    let admin = gw.admin_url();
    let one = format!("{}/c/answer?n=1", gw.url());
    let two = format!("{}/c/answer?n=2", gw.url());
    let key = get(&c, &one, &[])
        .await
        .header("x-cache-key")
        .unwrap()
        .to_owned();
    get(&c, &two, &[]).await;

    let entry = get(&c, &format!("{admin}/proxy-cache/{key}"), &[]).await;
    assert_eq!(entry.status, 200, "{}", entry.text());
    assert_eq!(entry.json()["status"], 200);
    assert_eq!(entry.json()["headers"]["content-type"], "text/plain");

    let del = send(
        &c,
        "DELETE",
        &format!("{admin}/proxy-cache/{key}"),
        None,
        &[],
    )
    .await;
    assert_eq!(del.status, 204);
    let gone = get(&c, &format!("{admin}/proxy-cache/{key}"), &[]).await;
    assert_eq!(gone.status, 404);
    let again = send(
        &c,
        "DELETE",
        &format!("{admin}/proxy-cache/{key}"),
        None,
        &[],
    )
    .await;
    assert_eq!(again.status, 404);
    assert_eq!(status(&get(&c, &one, &[]).await), "Miss");
    assert_eq!(status(&get(&c, &two, &[]).await), "Hit");

    let all = send(&c, "DELETE", &format!("{admin}/proxy-cache"), None, &[]).await;
    assert_eq!(all.status, 204);
    assert_eq!(status(&get(&c, &one, &[]).await), "Miss");
    assert_eq!(status(&get(&c, &two, &[]).await), "Miss");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_budget_holds_under_ten_thousand_distinct_keys() {
    let b = Backend::start("b").await;
    let (gw, c) = cached(&b, "", &[("TOLLGATE_MEM_CACHE_SIZE", "1m")]).await;
    let base = gw.url();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (c, base) = (c.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..10_000).step_by(16) {
                let g = get(&c, &format!("{base}/c/answer?_len=1000&i={i}"), &[]).await;
                assert_eq!(g.status, 200);
                assert_eq!(g.body.len(), 1000);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let usage = get(&c, &format!("{}/proxy-cache", gw.admin_url()), &[]).await;
    let store = &usage.json()["data"][0];
    let (bytes, budget) = (
        store["bytes"].as_u64().unwrap(),
        store["budget"].as_u64().unwrap(),
    );
    assert_eq!(budget, 1 << 20);
    assert!(bytes <= budget, "{bytes} > {budget}");
    let entries = store["entries"].as_u64().unwrap();
    assert!(entries > 100 && entries < 10_000, "{entries}");
    println!("10,000 keys: {entries} entries kept, {bytes} of {budget} bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_serves_the_old_copy_instead_of_a_backend_failure() {
    let (_b, _gw, c, url, old) = gone_stale("stale-if-error").await;
    let failing = get(&c, &format!("{url}&_status=503"), &[]).await;
    assert_eq!((failing.status, status(&failing)), (200, "Stale"));
    assert_eq!(failing.text(), old.text());
    // A working backend refreshes it.
    let fresh = get(&c, &url, &[]).await;
    assert_eq!((fresh.status, status(&fresh)), (200, "Refresh"));
    assert_ne!(fresh.text(), old.text());
}

/// The files of the disk strategy's default store.
fn disk_files(gw: &Gateway) -> Vec<std::path::PathBuf> {
    let dir = gw.dir.join("prefix/proxy-cache/kong_db_cache");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                // Files being written are `.tmp` until renamed into place.
                .filter(|p| p.extension().is_none_or(|e| e != "tmp"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn the_disk_strategy_keeps_bodies_in_files_within_its_budget() {
    let b = Backend::start("b").await;
    let env = [("TOLLGATE_PROXY_CACHE_DISK_SIZE", "4m")];
    let (gw, c) = cached(&b, "&config.strategy=disk", &env).await;
    let url = format!("{}/c/answer?_len=300000", gw.url());
    let miss = get(&c, &url, &[]).await;
    assert_eq!(status(&miss), "Miss");
    support::eventually("the body is written", Duration::from_secs(5), || async {
        !disk_files(&gw).is_empty()
    })
    .await;
    let files = disk_files(&gw);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 300_000);
    // A hit streams the file (larger than one read).
    let hit = get(&c, &url, &[]).await;
    assert_eq!(status(&hit), "Hit");
    assert!(hit.body == miss.body);
    assert_eq!(hit.header("content-length"), Some("300000"));
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);

    // 60 answers of 100 KB in a 4 MB store: older files are removed.
    for i in 0..60 {
        let g = get(&c, &format!("{}/c/answer?_len=100000&i={i}", gw.url()), &[]).await;
        assert_eq!(g.status, 200);
    }
    let usage = get(&c, &format!("{}/proxy-cache", gw.admin_url()), &[]).await;
    let store = &usage.json()["data"][0];
    assert_eq!(store["strategy"], "disk");
    assert!(store["bytes"].as_u64().unwrap() <= 4 << 20, "{store}");
    support::eventually(
        "evicted files are removed",
        Duration::from_secs(5),
        || async {
            let on_disk: u64 = disk_files(&gw)
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            if on_disk > 4 << 20 {
                let u = get(&c, &format!("{}/proxy-cache", gw.admin_url()), &[]).await;
                println!(
                    "{} files, {on_disk} bytes; index {}",
                    disk_files(&gw).len(),
                    u.text()
                );
            }
            on_disk <= 4 << 20
        },
    )
    .await;

    // A purge removes the files.
    let all = send(
        &c,
        "DELETE",
        &format!("{}/proxy-cache", gw.admin_url()),
        None,
        &[],
    )
    .await;
    assert_eq!(all.status, 204);
    support::eventually(
        "purged files are removed",
        Duration::from_secs(5),
        || async { disk_files(&gw).is_empty() },
    )
    .await;
}
