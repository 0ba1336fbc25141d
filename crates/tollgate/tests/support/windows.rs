//! Checks of rate-limiting windows against the clock, shared by the local
//! and Redis tests.

use super::client::{get, HttpClient};

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// For a route limited to 10 a second with a sliding window: 12 requests
/// right after a second begins let exactly 10 through; halfway through the
/// next second about half of those still count, so 3 to 7 of 10 more pass
/// (fixed windows would let all 10 through).
pub async fn assert_sliding_second_of_ten(c: &HttpClient, url: &str) {
    let ms = || now_ms() % 1000;
    while ms() > 50 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let first_second = now_ms() / 1000;
    let mut passed = 0;
    for _ in 0..12 {
        if get(c, url, &[]).await.status == 200 {
            passed += 1;
        }
    }
    assert_eq!(passed, 10);
    while now_ms() / 1000 == first_second || ms() < 500 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        now_ms() / 1000,
        first_second + 1,
        "the test machine stalled"
    );
    let mut later = 0;
    for _ in 0..10 {
        let g = get(c, url, &[]).await;
        if g.status == 200 {
            later += 1;
        } else {
            assert_eq!(g.status, 429);
        }
    }
    assert!((3..=7).contains(&later), "{later} passed");
}
