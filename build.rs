//! Marks the PostgreSQL half of the integration tests as runnable when `DATABASE_URL`
//! points at PostgreSQL at build time. Without it they are listed as
//! "ignored, DATABASE_URL is unset: PostgreSQL tests skipped" instead of passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(devicehub_pg_tests)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=migrations");
    let pg = std::env::var("DATABASE_URL").is_ok_and(|url| url.starts_with("postgres"));
    if pg {
        println!("cargo::rustc-cfg=devicehub_pg_tests");
    }
}
