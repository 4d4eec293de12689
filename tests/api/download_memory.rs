//! Downloads under memory pressure (issue 14): the maps of a local store's blocks are capped
//! (`download_map_mib`), so many slow readers share them or fall back to buffered reads, and
//! every one still gets exactly its bytes. A link's check is remembered for a moment, but a
//! cancel is seen by the very next request.

use futures_util::StreamExt;

use crate::helpers::{Backend, TestApp, pseudo_random};

crate::on_both_backends!(many_slow_readers_past_the_map_cap_get_exact_bytes, a_cancel_ends_a_link_at_once);

const SIZE: usize = 3 * 1024 * 1024 + 4321;

async fn deliverable(app: &TestApp, image: Vec<u8>) -> (String, String) {
    app.seed_catalog().await;
    app.firmware("1.0.0", image, true).await;
    let done = app.ready_deliverable("0.1.0").await;
    (done.id(), done.body["payload"]["download_link"].as_str().unwrap().to_owned())
}

/// Reads a download a chunk at a time with a pause after each, as a device on a slow link.
async fn slow_read(app: &TestApp, link: &str, range: Option<(usize, usize)>) -> (u16, Vec<u8>) {
    let mut req = app.client.get(link);
    if let Some((start, end)) = range {
        req = req.header("Range", format!("bytes={start}-{end}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let mut body = Vec::new();
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    (status, body)
}

async fn many_slow_readers_past_the_map_cap_get_exact_bytes(backend: Backend) {
    // a 1 MiB cap: one block mapped at a time, the rest read buffered
    let app = TestApp::spawn_with(backend, |s| s.download_map_mib = 1).await;
    let image = pseudo_random(SIZE, 77);
    let (_, link) = deliverable(&app, image.clone()).await;
    let mut readers = Vec::new();
    for i in 0..24usize {
        let range = match i % 3 {
            0 => None,
            1 => Some((i * 100_003 % SIZE, (i * 100_003 % SIZE + 1_500_000).min(SIZE - 1))),
            _ => Some((SIZE - 1 - i, SIZE - 1)),
        };
        let (app, link) = (&app, link.clone());
        readers.push(async move { (range, slow_read(app, &link, range).await) });
    }
    for (range, (status, body)) in futures_util::future::join_all(readers).await {
        let (want_status, want) = match range {
            None => (200, &image[..]),
            Some((start, end)) => (206, &image[start..=end]),
        };
        assert_eq!(status, want_status, "{range:?}");
        assert!(body == want, "{range:?}: {} bytes came back, not the image's", body.len());
    }
}

async fn a_cancel_ends_a_link_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let image = pseudo_random(100_000, 78);
    let (id, link) = deliverable(&app, image.clone()).await;
    // ranges in a row, as a device streaming the image asks
    for start in [0usize, 1000, 2000] {
        let (status, body) = slow_read(&app, &link, Some((start, start + 999))).await;
        assert_eq!((status, &body[..]), (206, &image[start..start + 1000]));
    }
    app.post(&format!("/api/v1/firmware-update/{id}/cancel"), serde_json::json!({})).await.expect(200);
    let r = app.client.get(&link).header("Range", "bytes=0-999").send().await.unwrap();
    assert_ne!(r.status().as_u16(), 206, "the canceled session's link still served a range");
}
