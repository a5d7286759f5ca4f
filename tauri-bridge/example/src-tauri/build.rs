//! tauri-build copies `bundle.externalBin` (`binaries/mobile-worship-sidecar-<target
//! triple>`) next to the app binary and fails when it is missing.  Which sidecar that is,
//! is chosen explicitly:
//!
//! - by default, the frozen (PyInstaller) sidecar that `build/build_sidecar.py` at the
//!   repository root puts there; the build stops with instructions when it is missing or
//!   is the development stand-in;
//! - with the Cargo feature `dev-sidecar`, a development stand-in (a shell script, no path
//!   of any checkout in it) that runs `mobile-worship-sidecar` from `PATH`, e.g. the
//!   repository's `.venv/bin` or `uv run`; it is written afresh at every build.
//!
//! `binaries/` is git-ignored: nothing generated here is committed.
//!
//! The one-folder PyInstaller build also has `binaries/mobile-worship-sidecar-internal/`,
//! which the executable looks for beside itself; tauri-build copies only the executable
//! into the target folder, so that folder is mirrored there too (for `cargo run`).

use std::env;
use std::path::{Path, PathBuf};

const SIDECAR: &str = "mobile-worship-sidecar";
/// The stand-in's second line: how a build tells it from the frozen binary.
const SHIM_MARK: &[u8] = b"# Development stand-in for the frozen";

fn main() {
    ensure_sidecar();
    tauri_build::build();
    mirror_contents_dir();
}

fn ensure_sidecar() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let windows = target.contains("windows");
    let file = format!("{SIDECAR}-{target}{}", if windows { ".exe" } else { "" });
    let path = manifest_dir.join("binaries").join(&file);
    println!("cargo:rerun-if-changed={}", path.display());
    if env::var_os("CARGO_FEATURE_DEV_SIDECAR").is_some() {
        if windows || !cfg!(unix) {
            panic!(
                "the dev-sidecar stand-in is a shell script: on Windows, build the frozen sidecar \
                 (build/build_sidecar.py), or run a debug build with MW_SIDECAR_BIN set"
            );
        }
        write_shim(&path);
        println!("cargo:warning=dev-sidecar: the app runs `{SIDECAR}` from PATH (see build.rs)");
        return;
    }
    let head = std::fs::read(&path).map(|b| b.into_iter().take(256).collect::<Vec<u8>>());
    match head {
        Err(_) => panic!(
            "{} is missing: build the frozen sidecar with `uv run --group build python \
             build/build_sidecar.py` at the repository root, or build with `--features dev-sidecar` \
             to run the Python sidecar from PATH",
            path.display()
        ),
        Ok(head) if head.windows(SHIM_MARK.len()).any(|w| w == SHIM_MARK) => panic!(
            "{} is the development stand-in, but the feature dev-sidecar is off: build the frozen \
             sidecar (build/build_sidecar.py) or build with `--features dev-sidecar`",
            path.display()
        ),
        Ok(_) => {}
    }
}

/// Copies `binaries/mobile-worship-sidecar-internal/` (if any) beside the executable that
/// tauri-build copied into the target folder.
fn mirror_contents_dir() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let src = manifest_dir.join("binaries").join(format!("{SIDECAR}-internal"));
    println!("cargo:rerun-if-changed={}", src.display());
    if !src.is_dir() {
        return;
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let Some(target_dir) = out_dir.ancestors().nth(3) else { return };
    let dest = target_dir.join(format!("{SIDECAR}-internal"));
    if dest.exists() {
        std::fs::remove_dir_all(&dest).expect("remove the old sidecar contents folder");
    }
    copy_tree(&src, &dest).expect("copy the sidecar contents folder");
}

fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &to)?;
            #[cfg(not(unix))]
            std::fs::copy(entry.path(), &to).map(|_| ())?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn write_shim(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mark = std::str::from_utf8(SHIM_MARK).expect("ASCII");
    let script = format!(
        r#"#!/bin/sh
{mark} {SIDECAR}, written by example/src-tauri/build.rs
# (Cargo feature dev-sidecar).  It runs the sidecar found on PATH, e.g. with
# PATH="$REPO/.venv/bin:$PATH", or under `uv run`.
if ! command -v {SIDECAR} >/dev/null 2>&1; then
  echo "{SIDECAR} is not on PATH (the app was built with the dev-sidecar feature)" >&2
  exit 127
fi
exec {SIDECAR} "$@"
"#
    );
    std::fs::create_dir_all(path.parent().expect("binaries/")).expect("create binaries/");
    // a frozen binary or an old stand-in may be there: replace it, never write through it
    let _ = std::fs::remove_file(path);
    std::fs::write(path, script).expect("write the sidecar stand-in");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the sidecar stand-in");
}

#[cfg(not(unix))]
fn write_shim(_path: &Path) {
    unreachable!()
}
