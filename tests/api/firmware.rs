//! Firmware: versions, channels, image upload integrity, release immutability.

use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, Resp, TestApp, files_under, pseudo_random, sha256_hex};

crate::on_both_backends!(
    firmware_versions_and_channels,
    image_upload_records_matching_hashes,
    checksum_mismatch_keeps_nothing,
    size_limit_refuses_and_keeps_nothing,
    large_image_is_streamed,
    released_firmware_is_immutable,
    firmware_lists_filter,
);

async fn firmware_versions_and_channels(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = app.seed_catalog().await;
    let fw = app
        .post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0", "channels": ["BAADFOOD"]}))
        .await
        .expect(201);
    assert_eq!(fw.body["state"], "draft");
    assert_eq!(fw.body["model"], cat.model);
    assert_eq!(fw.body["channels"], json!([cat.channel]));
    assert_eq!(fw.body["has_image"], false);

    // versions are semver and unique per model
    app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"}))
        .await
        .expect_error(409, "already_exists");
    app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0"})).await.expect_error(400, "invalid");
    app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "banana"})).await.expect_error(400, "invalid");
    app.post("/api/v1/firmware", json!({"model": "NOPE", "version": "1.0.1"}))
        .await
        .expect_error(422, "unknown_reference");
    app.post("/api/v1/firmware", json!({"model": cat.model, "version": "1.0.1", "channels": ["NOPE"]}))
        .await
        .expect_error(422, "unknown_reference");
    // a channel of another product is refused
    app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201);
    app.post("/api/v1/channels", json!({"tid": "OTHER", "name": "other", "product": "P2"})).await.expect(201);
    app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.1", "channels": ["OTHER"]}))
        .await
        .expect_error(422, "unknown_reference");
    // the same version on another model is fine
    app.post("/api/v1/models", json!({"tid": "M2", "name": "two", "product": "P1"})).await.expect(201);
    app.post("/api/v1/firmware", json!({"model": "M2", "version": "1.0.0"})).await.expect(201);

    let id = fw.id();
    let beta =
        app.post("/api/v1/channels", json!({"tid": "beta", "name": "beta", "product": "P1"})).await.expect(201).id();
    let changed = app
        .patch(&format!("/api/v1/firmware/{id}"), json!({"version": "1.0.0-rc.1", "channels": ["beta"]}))
        .await
        .expect(200);
    assert_eq!(changed.body["version"], "1.0.0-rc.1");
    assert_eq!(changed.body["channels"], json!([beta]));
    app.get("/api/v1/firmware/not-a-uuid").await.expect_error(404, "not_found");
    app.get(&format!("/api/v1/firmware/{}", uuid::Uuid::new_v4())).await.expect_error(404, "not_found");
    // a channel in use by firmware cannot be deleted
    app.delete("/api/v1/channels/beta").await.expect_error(409, "in_use");
    app.delete(&format!("/api/v1/firmware/{id}")).await.expect(204);
    app.delete("/api/v1/channels/beta").await.expect(204);
}

async fn image_upload_records_matching_hashes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let id = app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"})).await.expect(201).id();
    let image = pseudo_random(3 * 1024 * 1024 + 17, 1);
    let sha = sha256_hex(&image);
    let uploaded =
        app.upload(&id, image.clone(), &format!("?sha256={}&filename=fw.swu", sha.to_uppercase())).await.expect(200);
    assert_eq!(uploaded.body["size"], image.len());
    assert_eq!(uploaded.body["sha256"], sha);
    assert_eq!(uploaded.body["md5"], hex::encode(<md5::Md5 as md5::Digest>::digest(&image)));
    assert_eq!(uploaded.body["sha1"], hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&image)));
    assert_eq!(uploaded.body["filename"], "fw.swu");
    assert_eq!(uploaded.body["has_image"], true);

    // the bytes on disk are the bytes sent
    let stored: Vec<_> = files_under(&app.env.objects_dir().join("images")).into_iter().collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(sha256_hex(&std::fs::read(&stored[0]).unwrap()), sha);

    // a draft's image may be replaced; the old object goes away
    let second = pseudo_random(1000, 2);
    let replaced = app.upload(&id, second.clone(), "").await.expect(200);
    assert_eq!(replaced.body["sha256"], sha256_hex(&second));
    assert_eq!(replaced.body["filename"], "CAFEBABE-1.0.0.bin", "default file name from model and version");
    let stored = files_under(&app.env.objects_dir().join("images"));
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), second);

    // validation of the options, and an empty image
    app.upload(&id, vec![1, 2, 3], "?sha256=abc").await.expect_error(400, "invalid");
    app.upload(&id, vec![1, 2, 3], "?filename=../etc/passwd").await.expect_error(400, "invalid");
    app.upload(&id, vec![], "").await.expect_error(422, "empty_image");
    assert_eq!(app.get(&format!("/api/v1/firmware/{id}")).await.body["sha256"], sha256_hex(&second));
    app.upload(&uuid::Uuid::new_v4().to_string(), vec![1], "").await.expect_error(404, "not_found");
}

async fn checksum_mismatch_keeps_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let id = app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"})).await.expect(201).id();
    let before = files_under(&app.env.objects_dir());
    let image = pseudo_random(2 * 1024 * 1024, 3);
    let wrong = sha256_hex(b"something else");
    let r = app.upload(&id, image.clone(), &format!("?sha256={wrong}")).await.expect_error(422, "checksum_mismatch");
    assert!(r.body["detail"].as_str().unwrap().contains(&sha256_hex(&image)));
    assert_eq!(files_under(&app.env.objects_dir()), before, "no object kept");
    let fw = app.get(&format!("/api/v1/firmware/{id}")).await.expect(200);
    assert_eq!(fw.body["has_image"], false);
    assert!(fw.body["sha256"].is_null());

    // with an image in place, a failed replacement keeps the old one
    let good = pseudo_random(1234, 4);
    app.upload(&id, good.clone(), "").await.expect(200);
    let before = files_under(&app.env.objects_dir());
    app.upload(&id, image, &format!("?sha256={wrong}")).await.expect_error(422, "checksum_mismatch");
    assert_eq!(files_under(&app.env.objects_dir()), before);
    assert_eq!(app.get(&format!("/api/v1/firmware/{id}")).await.body["sha256"], sha256_hex(&good));
}

async fn size_limit_refuses_and_keeps_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.max_image_size = 64 * 1024).await;
    app.seed_catalog().await;
    let id = app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"})).await.expect(201).id();
    let before = files_under(&app.env.objects_dir());
    // announced by Content-Length: refused before reading
    app.upload(&id, vec![0u8; 64 * 1024 + 1], "").await.expect_error(413, "payload_too_large");
    // chunked, no length: refused while streaming
    let chunks = futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![7u8; 8 * 1024])));
    let r = app
        .client
        .put(app.url(&format!("/api/v1/firmware/{id}/image")))
        .header("Authorization", format!("Token {ADMIN_TOKEN}"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    Resp::from(r).await.expect_error(413, "payload_too_large");
    assert_eq!(files_under(&app.env.objects_dir()), before);
    // exactly at the limit is fine
    app.upload(&id, vec![1u8; 64 * 1024], "").await.expect(200);
}

async fn large_image_is_streamed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let id = app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"})).await.expect(201).id();
    // 96 MiB sent as a chunked stream, never materialised on the client side either
    const CHUNK: usize = 1024 * 1024;
    const CHUNKS: usize = 96;
    let chunk = pseudo_random(CHUNK, 5);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    for _ in 0..CHUNKS {
        sha2::Digest::update(&mut hasher, &chunk);
    }
    let expected = hex::encode(sha2::Digest::finalize(hasher));
    let body = futures_util::stream::iter(0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let r = app
        .client
        .put(app.url(&format!("/api/v1/firmware/{id}/image?sha256={expected}")))
        .header("Authorization", format!("Token {ADMIN_TOKEN}"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await.expect(200);
    assert_eq!(r.body["size"], CHUNK * CHUNKS);
    assert_eq!(r.body["sha256"], expected);
    let stored = files_under(&app.env.objects_dir().join("images"));
    assert_eq!(std::fs::metadata(&stored[0]).unwrap().len(), (CHUNK * CHUNKS) as u64);
}

async fn released_firmware_is_immutable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    let id = app.post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0"})).await.expect(201).id();
    // no image, no release
    app.post(&format!("/api/v1/firmware/{id}/release"), json!({})).await.expect_error(422, "image_missing");
    let image = pseudo_random(4096, 6);
    app.upload(&id, image.clone(), "").await.expect(200);
    let released = app.post(&format!("/api/v1/firmware/{id}/release/"), json!({})).await.expect(200);
    assert_eq!(released.body["state"], "released");
    assert!(released.body["released_at"].is_string());
    // releasing again is a safe repeat
    let again = app.post(&format!("/api/v1/firmware/{id}/release"), json!({})).await.expect(200);
    assert_eq!(again.body["released_at"], released.body["released_at"]);

    let objects = files_under(&app.env.objects_dir());
    let r = app.upload(&id, pseudo_random(4096, 7), "").await.expect_error(409, "firmware_released");
    assert_eq!(r.body["state"], "released");
    assert_eq!(files_under(&app.env.objects_dir()), objects, "nothing written");
    app.patch(&format!("/api/v1/firmware/{id}"), json!({"version": "1.0.1"}))
        .await
        .expect_error(409, "firmware_released");
    // promoting to another channel is still allowed
    let beta =
        app.post("/api/v1/channels", json!({"tid": "beta", "name": "beta", "product": "P1"})).await.expect(201).id();
    let moved =
        app.patch(&format!("/api/v1/firmware/{id}"), json!({"channels": ["BAADFOOD", "beta"]})).await.expect(200);
    assert_eq!(moved.body["channels"].as_array().unwrap().len(), 2);
    assert!(moved.body["channels"].as_array().unwrap().contains(&json!(beta)));
    let fw = app.get(&format!("/api/v1/firmware/{id}")).await.expect(200);
    assert_eq!(fw.body["sha256"], sha256_hex(&image));
    assert_eq!(fw.body["version"], "1.0.0");
}

async fn firmware_lists_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_catalog().await;
    app.post("/api/v1/channels", json!({"tid": "beta", "name": "beta", "product": "P1"})).await.expect(201);
    app.post("/api/v1/models", json!({"tid": "M2", "name": "two", "product": "P1"})).await.expect(201);
    app.firmware("1.0.0", vec![1], true).await;
    app.firmware("1.1.0", vec![2], false).await;
    app.post("/api/v1/firmware", json!({"model": "M2", "version": "2.0.0", "channels": ["beta"]})).await.expect(201);

    let count = |q: &str| {
        let app = &app;
        let q = q.to_owned();
        async move { app.get(&format!("/api/v1/firmware{q}")).await.expect(200).body["count"].as_i64().unwrap() }
    };
    assert_eq!(count("").await, 3);
    assert_eq!(count("?model=CAFEBABE").await, 2);
    assert_eq!(count("?model=M2").await, 1);
    assert_eq!(count("?channel=BAADFOOD").await, 2);
    assert_eq!(count("?channel=beta").await, 1);
    assert_eq!(count("?state=released").await, 1);
    assert_eq!(count("?state=draft&model=CAFEBABE").await, 1);
    assert_eq!(count("?version=1.1.0").await, 1);
    assert_eq!(count("?version=v1.1").await, 1, "lenient version filter");
    app.get("/api/v1/firmware?state=gone").await.expect_error(400, "invalid_query");
    app.get("/api/v1/firmware?channel=NOPE").await.expect_error(422, "unknown_reference");
}
