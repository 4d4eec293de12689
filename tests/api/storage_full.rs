//! A full disk (issue 9, defect 8). A 24 MiB tmpfs holds the data: the SQLite database and
//! the objects, or, on PostgreSQL, the objects and a tablespace the test's tables live in.
//! A write that finds no space answers `507 storage_full` (never `500`), `/readyz` says so,
//! nothing partial is left behind, and writes resume once space is freed.
//!
//! Mounting a tmpfs needs root (our CI machines run tests as root). Where it cannot be
//! mounted, the test says so and passes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestEnv, files_under, pseudo_random};

crate::on_both_backends!(a_full_disk_answers_storage_full_and_recovers);

/// A small tmpfs, unmounted on drop (after the tablespace on it, if any, is dropped).
pub struct SmallDisk {
    dir: tempfile::TempDir,
    /// (server URL, tablespace name) of a PostgreSQL tablespace on the disk.
    tablespace: Option<(String, String)>,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir, tablespace: None })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A PostgreSQL tablespace in `<disk>/pg`, owned by the server's user; returns its name.
    fn tablespace(&mut self) -> String {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let server_url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let location = self.path().join("pg");
        std::fs::create_dir(&location).unwrap();
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, "postgres"]).output().expect("id postgres");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("the postgres user's ids")
        };
        std::os::unix::fs::chown(&location, Some(id("-u")), Some(id("-g"))).unwrap();
        let name = format!("ts_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::PgConnection::establish(&server_url).unwrap();
        conn.batch_execute(&format!("CREATE TABLESPACE {name} LOCATION '{}'", location.display())).unwrap();
        self.tablespace = Some((server_url, name.clone()));
        name
    }

    /// Fills the disk with a file of zeros until it says no; returns the file.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [1024 * 1024, 4096, 512] {
            while file.write_all(&vec![0u8; chunk]).is_ok() {}
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let Some((url, name)) = &self.tablespace {
            use diesel::Connection;
            use diesel::connection::SimpleConnection;
            if let Ok(mut conn) = diesel::PgConnection::establish(url) {
                let _ = conn.batch_execute(&format!("DROP TABLESPACE IF EXISTS {name}"));
            }
        }
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn staging_or_images(objects: &Path) -> Vec<PathBuf> {
    files_under(objects)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains('#') || p.starts_with(objects.join("images")))
        .collect()
}

async fn a_full_disk_answers_storage_full_and_recovers(backend: Backend) {
    let Some(mut disk) = SmallDisk::mount("24m") else {
        eprintln!("skipped: a tmpfs cannot be mounted here (needs root)");
        return;
    };
    let env = TestEnv::new(backend);
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", disk.path().join("devicehub.sqlite3").display()),
        Backend::Postgres => format!("{}%20-cdefault_tablespace%3D{}", env.database_url, disk.tablespace()),
    };
    let objects = disk.path().join("objects");
    let (data, store) = (disk.path().to_path_buf(), objects.display().to_string());
    let app = TestApp::start(env, move |s| {
        s.data_dir = data;
        s.database_url = database_url;
        s.object_store = store;
    })
    .await;
    app.seed_catalog().await;
    let fw = app
        .post("/api/v1/firmware", json!({"model": "CAFEBABE", "version": "1.0.0", "channels": ["BAADFOOD"]}))
        .await
        .expect(201)
        .id();
    let ready = app.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(ready.body["status"], "ready");

    let filler = disk.fill();
    let image = pseudo_random(1024 * 1024 + 5, 8);

    // an upload finds no space: a clear answer, and nothing of it stays
    app.upload(&fw, image.clone(), "").await.expect_error(507, "storage_full");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !staging_or_images(&objects).is_empty() {
        assert!(std::time::Instant::now() < deadline, "left behind: {:?}", staging_or_images(&objects));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.get(&format!("/api/v1/firmware/{fw}")).await.expect(200).body["has_image"], false);

    // so does a database write, once the database needs a page more
    let mut refused = None;
    for n in 0..500 {
        let r = app.post("/api/v1/products", json!({"tid": format!("F{n}"), "name": "filler product"})).await;
        match r.status {
            201 => continue,
            507 => {
                refused = Some(n);
                assert_eq!(r.code(), "storage_full", "{}", r.body);
                break;
            }
            other => panic!("a database write on a full disk answered {other}: {}", r.body),
        }
    }
    assert!(refused.is_some(), "500 database writes on a full disk all succeeded");

    let ready = app.call(Method::GET, "/readyz", None, None).await.expect(503);
    assert_eq!(ready.body["status"], "storage_full", "{}", ready.body);

    // space freed: ready again, and writes resume
    std::fs::remove_file(filler).unwrap();
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    app.post("/api/v1/products", json!({"tid": "after", "name": "written after space was freed"})).await.expect(201);
    app.upload(&fw, image.clone(), "").await.expect(200);
    let r = app
        .client
        .get(app.url(&format!("/api/v1/firmware/{fw}/image")))
        .header("Authorization", format!("Token {}", crate::helpers::ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.bytes().await.unwrap() == image, "the image stored after the disk filled up is not the one uploaded");

    let env = app.stop().await;
    drop(env); // the test's schema goes before its tablespace
    drop(disk);
}
