//! Marks the PostgreSQL half of the integration tests as runnable when `DATABASE_URL`
//! points at PostgreSQL at build time. Without it they are listed as
//! "ignored, DATABASE_URL is unset: PostgreSQL tests skipped" instead of passing silently.
//!
//! Likewise the browser test of the web UI runs when Chromium and its WebDriver
//! (`chromium`, `chromedriver`, Debian's `chromium chromium-driver`) are on the `PATH` at build
//! time, or when `DEVICEHUB_REQUIRE_BROWSER=1` says it must (CI: then a missing browser fails
//! the test instead of skipping it). Otherwise it is listed as ignored, with the reason.
//!
//! The DMF tests (hawkBit over AMQP) run when `AMQP_URL` points at a RabbitMQ at build time;
//! without it they are listed as "ignored, AMQP_URL is unset: DMF tests skipped".
//! The same for the delivery procedures' checks against the stock tools a device uses
//! (`minisign`, `zstd`; Debian's `minisign zstd`): run when both are on the `PATH`, or
//! when `DEVICEHUB_REQUIRE_TOOLS=1` (CI) says they must.

use std::path::Path;

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(devicehub_pg_tests)");
    println!("cargo::rustc-check-cfg=cfg(devicehub_browser_tests)");
    println!("cargo::rustc-check-cfg=cfg(devicehub_amqp_tests)");
    println!("cargo::rerun-if-env-changed=AMQP_URL");
    println!("cargo::rustc-check-cfg=cfg(devicehub_tool_tests)");
    println!("cargo::rerun-if-env-changed=DEVICEHUB_REQUIRE_TOOLS");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-env-changed=DEVICEHUB_REQUIRE_BROWSER");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=migrations");
    let pg = std::env::var("DATABASE_URL").is_ok_and(|url| url.starts_with("postgres"));
    if pg {
        println!("cargo::rustc-cfg=devicehub_pg_tests");
    }
    if std::env::var("AMQP_URL").is_ok_and(|url| url.starts_with("amqp")) {
        println!("cargo::rustc-cfg=devicehub_amqp_tests");
    }
    let required = std::env::var("DEVICEHUB_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let browser = (on_path("chromium") || Path::new("/usr/bin/chromium").is_file())
        && (on_path("chromedriver") || Path::new("/usr/bin/chromedriver").is_file());
    if browser || required {
        println!("cargo::rustc-cfg=devicehub_browser_tests");
    }
    let tools = on_path("minisign") && on_path("zstd");
    if tools || std::env::var("DEVICEHUB_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=devicehub_tool_tests");
    }
}
