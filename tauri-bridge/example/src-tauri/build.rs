//! tauri-build copies `bundle.externalBin` (`binaries/mobile-worship-sidecar-<target
//! triple>`) next to the app binary and fails when it is missing.  The real file is the
//! frozen (PyInstaller) sidecar that `build/` at the repository root produces; until it is
//! there, a small development shim is written in its place that runs the repository's
//! Python sidecar (`.venv/bin/mobile-worship-sidecar`, else `uv run`), or `$MW_SIDECAR_BIN`.
//! `binaries/` is git-ignored: nothing generated here is committed.
//!
//! The one-folder PyInstaller build also has `binaries/mobile-worship-sidecar-internal/`,
//! which the executable looks for beside itself; tauri-build copies only the executable
//! into the target folder, so that folder is mirrored there too (for `cargo run`).

use std::env;
use std::path::{Path, PathBuf};

const SIDECAR: &str = "mobile-worship-sidecar";

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
    if path.exists() {
        return;
    }
    if windows || !cfg!(unix) {
        panic!(
            "{} is missing: build the frozen sidecar (see build/ at the repository root) and copy it there",
            path.display()
        );
    }
    let repo =
        manifest_dir.ancestors().nth(3).expect("example/src-tauri is three levels below the repository root");
    write_shim(&path, repo);
    println!(
        "cargo:warning=wrote a development shim {} that runs the Python sidecar; put the frozen binary there for a release",
        path.display()
    );
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
fn write_shim(path: &Path, repo: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let repo = repo.display().to_string().replace('\'', r"'\''");
    let script = format!(
        r#"#!/bin/sh
# Development stand-in for the frozen {SIDECAR}, written by example/src-tauri/build.rs.
# Replace it with the binary built by build/ (PyInstaller) to ship the app.
if [ -n "$MW_SIDECAR_BIN" ]; then exec $MW_SIDECAR_BIN "$@"; fi
ROOT='{repo}'
if [ -x "$ROOT/.venv/bin/{SIDECAR}" ]; then exec "$ROOT/.venv/bin/{SIDECAR}" "$@"; fi
exec uv run --quiet --project "$ROOT" {SIDECAR} "$@"
"#
    );
    std::fs::create_dir_all(path.parent().unwrap()).expect("create binaries/");
    std::fs::write(path, script).expect("write the sidecar shim");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod the sidecar shim");
}

#[cfg(not(unix))]
fn write_shim(_path: &Path, _repo: &Path) {
    unreachable!()
}
