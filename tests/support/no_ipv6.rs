//! A wrapper that runs a program as if the kernel had no IPv6 (`tests/support/no_ipv6.c`),
//! compiled with the C compiler Rust links with. Shared by the probe's and the webhook's tests
//! (`#[path]` include).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The wrapper, built once per test binary into `tmp` (its `CARGO_TARGET_TMPDIR`).
pub fn wrapper(tmp: &Path) -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|dir| dir.join("tests/support/no_ipv6.c").is_file())
            .expect("the repository root")
            .join("tests/support/no_ipv6.c");
        // One per process: test binaries run at the same time must not write one file.
        let out = tmp.join(format!("no_ipv6-{}", std::process::id()));
        let output = Command::new("cc")
            .arg("-O2")
            .arg("-o")
            .arg(&out)
            .arg(&source)
            .output()
            .expect("cc, the C compiler Rust links with");
        assert!(
            output.status.success(),
            "cannot build {}: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        out
    })
}
