"""The pieces as app developers take them: packages, not paths into this repository.

- `npm pack` of frontend-hook/ (its `prepack` builds ESM and type declarations into
  dist/), installed from the tarball into a fresh Vite + React + TypeScript app in a
  temporary folder outside the repository, next to the Tauri plugin's JS bindings
  (`npm pack` of the guest-js package inside the plugin's .crate): the app's page
  imports `useWebRTC`, `ConnectionStatus`, `WebPeer`, `webPeerTransport`, the CSS and
  the bindings, and must pass `tsc` (strict, the Vite template's settings, under
  `moduleResolution` `bundler` and `nodenext`) and `vite build`; Node's own ESM
  loader (which a consumer's vitest uses for dependencies) must load the package.
- `cargo package -p sidecar-client -p tauri-plugin-mobile-worship`, verify step
  included (each .crate built on its own, the plugin against the packaged client
  through cargo's temporary local registry), then a scratch Tauri app crate outside
  the repository on the unpacked .crate files: its `tauri-build` finds the plugin's
  packaged permissions (a capability naming `mobile-worship:default` and one
  `allow-` permission) and `cargo check` passes against the plugin's and the
  client's public API.

Builds reuse the workspace's target folder (tauri-bridge/target, with its dev profile's
`debug = 0`), so on a warm machine only what differs is compiled. Needs node, npm and
cargo (skips saying which is missing), and the npm registry and crates.io or their
caches. Run by scripts/test-rust.sh after the workspace is built.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "frontend-hook"
BRIDGE = REPO / "tauri-bridge"
CRATES = ("sidecar-client", "tauri-plugin-mobile-worship")

# A cold machine compiles Tauri (minutes on two cores); a warm one takes well under one.
pytestmark = pytest.mark.timeout(1500)

_missing = [tool for tool in ("node", "npm", "cargo") if shutil.which(tool) is None]
if _missing:
    pytest.skip(
        f"{', '.join(_missing)} not on PATH: packaging the hook (npm) and the crates (cargo) "
        "needs Node.js 20.19+ with npm and Rust 1.90+",
        allow_module_level=True,
    )


def run(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    stdout_only: bool = False,
) -> str:
    """Runs `cmd` in `cwd` and returns its output (with stderr unless `stdout_only`);
    fails with the end of both when it fails."""
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stdout_only else subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        output = done.stdout + (done.stderr or "")
        pytest.fail(f"`{' '.join(cmd)}` in {cwd} exited {done.returncode}:\n{output[-6000:]}")
    return done.stdout


def npm_pack(folder: Path, destination: Path) -> tuple[Path, set[str]]:
    """`npm pack` of `folder` into `destination`: the tarball and the files in it."""
    out = run(
        ["npm", "pack", "--json", "--pack-destination", str(destination)], folder, stdout_only=True
    )
    # `prepack`'s own output comes first; npm's JSON report is the rest.
    start = out.index("[\n") if out.startswith("[\n") else out.index("\n[\n") + 1
    (report,) = json.loads(out[start:])
    return destination / report["filename"], {f["path"] for f in report["files"]}


def outside_repo(path: Path) -> Path:
    assert not path.resolve().is_relative_to(REPO), f"{path} is inside the repository"
    return path


# The workspace's target folder (the one set for every build, if any) and dev profile:
# `cargo package`'s verify step and the scratch app reuse what the workspace's build
# compiled with the same features.
CARGO_ENV = {
    "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR") or str(BRIDGE / "target"),
    "CARGO_PROFILE_DEV_DEBUG": "0",
    "CARGO_TERM_COLOR": "never",
}


def crate_version() -> str:
    manifest = tomllib.loads((BRIDGE / "Cargo.toml").read_text())
    return str(manifest["workspace"]["package"]["version"])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return outside_repo(tmp_path_factory.mktemp("packaging"))


@pytest.fixture(scope="module")
def crates(scratch: Path) -> dict[str, Path]:
    """`cargo package` of both crates (verified), unpacked as an app developer would."""
    run(
        ["cargo", "package", "--locked", "--allow-dirty", *(a for c in CRATES for a in ("-p", c))],
        BRIDGE,
        CARGO_ENV,
    )
    version = crate_version()
    unpacked: dict[str, Path] = {}
    (scratch / "crates").mkdir()
    for name in CRATES:
        crate = Path(CARGO_ENV["CARGO_TARGET_DIR"]) / "package" / f"{name}-{version}.crate"
        copy = scratch / "crates" / crate.name
        shutil.copyfile(crate, copy)
        with tarfile.open(copy) as archive:
            archive.extractall(scratch / "crates", filter="data")
        unpacked[name] = scratch / "crates" / f"{name}-{version}"
    return unpacked


def test_the_plugin_crate_carries_what_an_app_needs(crates: dict[str, Path]) -> None:
    plugin = crates["tauri-plugin-mobile-worship"]
    files = {p.relative_to(plugin).as_posix() for p in plugin.rglob("*") if p.is_file()}
    for needed in (
        "build.rs",
        "package.json",
        "guest-js/index.ts",
        "guest-js/sidecar-types.ts",
        "permissions/default.toml",
        "permissions/schemas/schema.json",
        "permissions/autogenerated/commands/start_peer.toml",
        "README.md",
    ):
        assert needed in files, f"{needed} is missing from the plugin's .crate: {sorted(files)}"
    # The bindings stand alone: nothing reaches out of the crate (the repository's frontend-hook/).
    for source in (plugin / "guest-js").glob("*.ts"):
        outward = re.findall(r"""from\s+["'](\.\./[^"']*)""", source.read_text())
        assert not outward, f"{source.name} imports from outside the crate: {outward}"
    # The client is named by version (the path is gone), so an app patches or vendors it.
    manifest = tomllib.loads((plugin / "Cargo.toml").read_text())
    assert manifest["dependencies"]["sidecar-client"] == {"version": crate_version()}


def test_a_scratch_tauri_app_builds_on_the_crates(scratch: Path, crates: dict[str, Path]) -> None:
    app = scratch / "app-rs"
    (app / "src").mkdir(parents=True)
    (app / "capabilities").mkdir()
    client, plugin = crates["sidecar-client"], crates["tauri-plugin-mobile-worship"]
    (app / "Cargo.toml").write_text(
        f"""[package]
name = "scratch-app"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
tauri = {{ version = "2.12", default-features = false }}
tauri-plugin-shell = "2.6"
tauri-plugin-mobile-worship = {{ path = "{plugin}" }}
sidecar-client = {{ path = "{client}" }}

[build-dependencies]
tauri-build = "2.7"

# The plugin's packaged manifest names sidecar-client by version: the .crate beside it.
[patch.crates-io]
sidecar-client = {{ path = "{client}" }}

[workspace]
"""
    )
    (app / "build.rs").write_text("fn main() {\n    tauri_build::build();\n}\n")
    (app / "tauri.conf.json").write_text(
        json.dumps(
            {
                "productName": "Scratch",
                "version": "0.0.0",
                "identifier": "org.example.scratch",
                "build": {"frontendDist": "dist"},
                "app": {"windows": [{"label": "main", "title": "Scratch"}]},
                "bundle": {"active": False},
            }
        )
    )
    # tauri-build checks every permission named here against the plugins' packaged ones.
    (app / "capabilities" / "default.json").write_text(
        json.dumps(
            {
                "identifier": "default",
                "windows": ["main"],
                "permissions": [
                    "mobile-worship:default",
                    "mobile-worship:allow-ping-peer",
                    "core:event:allow-listen",
                    "core:event:allow-unlisten",
                ],
            }
        )
    )
    (app / "src" / "lib.rs").write_text(
        """//! An app's setup with the plugin, as tauri-bridge/README.md shows it (any runtime).
use sidecar_client::{ClientConfig, SidecarCommand};
use tauri_plugin_mobile_worship::{Builder as MobileWorship, MobileWorshipExt};

pub fn with_peer_layer<R: tauri::Runtime>(app: tauri::Builder<R>) -> tauri::Builder<R> {
    app.plugin(tauri_plugin_shell::init())
        .plugin(tauri_plugin_mobile_worship::init())
}

pub fn with_python_sidecar<R: tauri::Runtime>(app: tauri::Builder<R>) -> tauri::Builder<R> {
    let plugin = MobileWorship::new()
        .command(SidecarCommand::new("mobile-worship-sidecar"))
        .client_config(ClientConfig::default())
        .build();
    app.plugin(tauri_plugin_shell::init()).plugin(plugin)
}

pub fn sidecar_status<R: tauri::Runtime>(app: &tauri::AppHandle<R>) -> String {
    format!("{:?}", app.mobile_worship().status())
}
"""
    )
    # The workspace's lock as a start: the versions this repository tests, nothing newer.
    shutil.copyfile(BRIDGE / "Cargo.lock", app / "Cargo.lock")
    run(["cargo", "check"], app, CARGO_ENV)


def exact_pins(*names: str) -> dict[str, str]:
    """frontend-hook's own exact versions (in npm's cache wherever its tests ran)."""
    manifest = json.loads((HOOK / "package.json").read_text())
    pins = {**manifest["dependencies"], **manifest["devDependencies"]}
    chosen = {name: pins[name] for name in names}
    for name, version in chosen.items():
        assert version[0].isdigit(), f"frontend-hook pins {name} loosely: {version}"
    return chosen


APP_TSX = """import { StrictMode, useEffect } from "react";
import { createRoot } from "react-dom/client";
import {
  ConnectionStatus,
  useWebRTC,
  WebPeer,
  webPeerTransport,
  type PeerInfo,
  type UseWebRTCResult,
} from "@mobile-worship/webrtc-hook";
import "@mobile-worship/webrtc-hook/ConnectionStatus.css";
import {
  getLeaderStatus,
  onEvent,
  type MobileWorshipEvents,
} from "tauri-plugin-mobile-worship-api";

const peer = new WebPeer({ url: "ws://10.0.0.5:3010/signal" });
const transport = webPeerTransport(peer);

function App() {
  const webrtc: UseWebRTCResult = useWebRTC({ transport });
  const me: PeerInfo | null = webrtc.self;
  useEffect(() => {
    const heard: Promise<() => void> = onEvent("webrtc:message", (e) => {
      const message: MobileWorshipEvents["webrtc:message"] = e.payload;
      console.log(message.from, message.payload);
    });
    return () => void heard.then((unlisten) => unlisten());
  }, []);
  return (
    <>
      <button onClick={() => void webrtc.startPeer({ name: "Lobby", peer_type: "display" })}>
        Join
      </button>
      <button onClick={() => void getLeaderStatus().then((s) => console.log(s.state))}>
        Leader
      </button>
      <p>{me?.name ?? "not joined"}</p>
      <ConnectionStatus {...webrtc} variant="display" />
    </>
  );
}

const root = document.getElementById("root");
if (root) createRoot(root).render(<StrictMode><App /></StrictMode>);
"""

# The Vite react-ts template's compiler options (tsconfig.app.json).
TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "useDefineForClassFields": True,
        "lib": ["ES2022", "DOM", "DOM.Iterable"],
        "module": "ESNext",
        "types": ["vite/client"],
        "skipLibCheck": True,
        "moduleResolution": "bundler",
        "allowImportingTsExtensions": True,
        "verbatimModuleSyntax": True,
        "moduleDetection": "force",
        "noEmit": True,
        "jsx": "react-jsx",
        "strict": True,
        "noUnusedLocals": True,
        "noUnusedParameters": True,
        "erasableSyntaxOnly": True,
        "noFallthroughCasesInSwitch": True,
        "noUncheckedSideEffectImports": True,
    },
    "include": ["src"],
}


def test_a_fresh_vite_react_app_builds_on_the_packages(
    scratch: Path, crates: dict[str, Path]
) -> None:
    app = scratch / "app-web"
    (app / "src").mkdir(parents=True)
    if not (HOOK / "node_modules" / "typescript").is_dir():  # `prepack` builds with it
        run(["npm", "ci", "--no-audit", "--no-fund"], HOOK)
    hook_tgz, shipped = npm_pack(HOOK, app)
    assert {"dist/index.js", "dist/index.d.ts", "dist/ConnectionStatus.css"} <= shipped
    assert not [f for f in shipped if f.startswith(("src/", "test/", "display/", "scripts/"))]
    # The plugin's JS bindings, as the .crate carries them.
    bindings_tgz, bindings = npm_pack(crates["tauri-plugin-mobile-worship"], app)
    assert {"guest-js/index.ts", "guest-js/sidecar-types.ts"} <= bindings

    pins = exact_pins(
        "react",
        "react-dom",
        "@tauri-apps/api",
        "typescript",
        "vite",
        "@types/react",
        "@types/react-dom",
    )
    dev = ("typescript", "vite", "@types/react", "@types/react-dom")
    (app / "package.json").write_text(
        json.dumps(
            {
                "name": "scratch-app",
                "private": True,
                "version": "0.0.0",
                "type": "module",
                "dependencies": {k: v for k, v in pins.items() if k not in dev},
                "devDependencies": {k: v for k, v in pins.items() if k in dev},
            },
            indent=2,
        )
    )
    (app / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    (app / "tsconfig.nodenext.json").write_text(
        json.dumps(
            {
                "extends": "./tsconfig.json",
                # and every .d.ts checked (@tauri-apps/api's need a newer lib than ES2022)
                "compilerOptions": {
                    "module": "NodeNext",
                    "moduleResolution": "NodeNext",
                    "skipLibCheck": False,
                    "lib": ["ESNext", "DOM", "DOM.Iterable"],
                },
            }
        )
    )
    (app / "vite.config.ts").write_text(
        'import { defineConfig } from "vite";\n\n'
        "export default defineConfig({\n"
        '  esbuild: { jsx: "automatic" },\n'
        '  build: { target: "es2022" },\n'
        "});\n"
    )
    (app / "index.html").write_text(
        '<!doctype html>\n<html lang="en">\n'
        '  <head><meta charset="UTF-8" /><title>Scratch</title></head>\n'
        '  <body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body>\n'
        "</html>\n"
    )
    (app / "src" / "main.tsx").write_text(APP_TSX)

    run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            f"./{hook_tgz.name}",
            f"./{bindings_tgz.name}",
        ],
        app,
    )
    run(["npx", "--no-install", "tsc", "-p", "tsconfig.json"], app)
    run(["npx", "--no-install", "tsc", "-p", "tsconfig.nodenext.json"], app)
    run(["npx", "--no-install", "vite", "build", "--logLevel", "warn"], app)
    assets = list((app / "dist" / "assets").iterdir())
    assert [a for a in assets if a.suffix == ".js"] and [a for a in assets if a.suffix == ".css"]
    # Node's ESM loader, as a consumer's vitest loads dependencies: every import resolves.
    loaded = run(
        [
            "node",
            "--input-type=module",
            "-e",
            'const m = await import("@mobile-worship/webrtc-hook");'
            "console.log(typeof m.useWebRTC, typeof m.WebPeer, typeof m.pairing.Initiator);",
        ],
        app,
    )
    assert loaded.split() == ["function", "function", "function"]
