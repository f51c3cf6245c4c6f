//! A wrapper that runs a program as if the kernel had no IPv6 (`tests/support/no_ipv6.c`),
//! compiled with `$CC`, else `cc` (a Rust toolchain links with it, and Debian's gcc brings the
//! kernel headers the filter needs). Shared by the probe's and the webhook's tests (`#[path]`
//! include).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The wrapper, built once into `tmp` (a test binary's `CARGO_TARGET_TMPDIR`) and checked to
/// work, so that a machine where seccomp filters cannot be installed says so at once.
pub fn wrapper(tmp: &Path) -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("tests/support/no_ipv6.c"))
            .find(|file| file.is_file())
            .expect("tests/support/no_ipv6.c above the crate");
        let mut hasher = DefaultHasher::new();
        std::fs::read(&source).unwrap().hash(&mut hasher);
        compiler().hash(&mut hasher);
        // Named after its source and compiler, so that test binaries running at once share one build
        // (each writes its own file and renames it into place).
        let out = tmp.join(format!("no_ipv6-{:016x}", hasher.finish()));
        if !out.is_file() {
            build(&source, &out);
        }
        let check = Command::new(&out).arg("true").output().unwrap();
        assert!(
            check.status.success(),
            "{} cannot run a program without IPv6: {}",
            out.display(),
            String::from_utf8_lossy(&check.stderr)
        );
        out
    })
}

fn build(source: &Path, out: &Path) {
    let partial = out.with_extension(format!("{}", std::process::id()));
    let cc = compiler();
    let mut words = cc.split_whitespace();
    let output = Command::new(words.next().unwrap_or("cc"))
        .args(words)
        .arg("-O2")
        .arg("-o")
        .arg(&partial)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} ($CC, else cc): {e}"));
    assert!(
        output.status.success(),
        "cannot build {}: {}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, out).unwrap();
}

/// `$CC`, else `cc`. Like make, it may hold arguments after the program (`ccache gcc`,
/// `gcc -m64`), split at whitespace.
fn compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|cc| !cc.trim().is_empty())
        .unwrap_or_else(|| "cc".to_owned())
}
