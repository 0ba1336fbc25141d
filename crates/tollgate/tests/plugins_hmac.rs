//! hmac-auth on the proxy: Kong's `Authorization: hmac …` format, the date
//! window, enforced headers, and wrong signatures.
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine;
use hmac::{Hmac, Mac};
use support::backend::Backend;
use support::client::{get, http1, post_form};
use support::gateway::Gateway;

fn http_date(offset: i64) -> String {
    // IMF-fixdate for now + offset seconds.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset;
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    format!(
        "{wd}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        months[(m - 1) as usize],
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn sign(secret: &str, date: &str, request_line: &str) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("date: {date}\n{request_line}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn hmac_auth_checks_signature_date_and_enforced_headers() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/h").await;
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=alice")
            .await
            .status,
        201
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/consumers/alice/hmac-auth"),
            "username=alice&secret=hmac-secret"
        )
        .await
        .status,
        201
    );
    let got = post_form(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=hmac-auth&config.enforce_headers=date",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let url = format!("{}/h/x?q=1", gw.url());
    let date = http_date(0);
    let auth = |sig: &str, headers: &str| {
        format!(
            r#"hmac username="alice", algorithm="hmac-sha256", headers="{headers}", signature="{sig}""#
        )
    };

    let sig = sign("hmac-secret", &date, "GET /h/x?q=1 HTTP/1.1");
    let ok = get(
        &c,
        &url,
        &[
            ("date", &date),
            ("authorization", &auth(&sig, "date request-line")),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "alice");

    let bad = get(
        &c,
        &url,
        &[
            ("date", &date),
            ("authorization", &auth("AAAA", "date request-line")),
        ],
    )
    .await;
    assert_eq!(
        (bad.status, bad.json()["message"].as_str().unwrap()),
        (401, "HMAC signature does not match")
    );
    // Signed with another secret.
    let other = sign("not-the-secret", &date, "GET /h/x?q=1 HTTP/1.1");
    assert_eq!(
        get(
            &c,
            &url,
            &[
                ("date", &date),
                ("authorization", &auth(&other, "date request-line"))
            ]
        )
        .await
        .status,
        401
    );
    // Date outside the 300 s clock skew (a replayed request).
    let old = http_date(-1000);
    let sig_old = sign("hmac-secret", &old, "GET /h/x?q=1 HTTP/1.1");
    let stale = get(
        &c,
        &url,
        &[
            ("date", &old),
            ("authorization", &auth(&sig_old, "date request-line")),
        ],
    )
    .await;
    assert_eq!(stale.status, 401);
    assert!(
        stale.json()["message"].as_str().unwrap().contains("date"),
        "{}",
        stale.text()
    );
    // `date` is enforced: a signature over the request line only is refused.
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"hmac-secret").unwrap();
    m.update(b"GET /h/x?q=1 HTTP/1.1");
    let line_only = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    assert_eq!(
        get(
            &c,
            &url,
            &[
                ("date", &date),
                ("authorization", &auth(&line_only, "request-line"))
            ]
        )
        .await
        .status,
        401
    );
    // No credentials at all.
    assert_eq!(get(&c, &url, &[]).await.json()["message"], "Unauthorized");
}
