// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use tauri_plugin_log::{Target, TargetKind};

fn main() {
    tauri::Builder::default()
        // First, so that the other plugins' set-up is logged too: the sidecar's stderr lines
        // (target `mobile_worship_sidecar`, at their own level) and the plugin's supervision
        // (`tauri_plugin_mobile_worship`, `sidecar_client`) go to the terminal and to the
        // platform's log folder (`<app log dir>/Mobile Worship Example.log`; on Linux
        // `$XDG_DATA_HOME/org.mobileworship.example/logs/`).
        .plugin(
            tauri_plugin_log::Builder::new()
                .targets([
                    Target::new(TargetKind::Stdout),
                    Target::new(TargetKind::LogDir { file_name: None }),
                ])
                .level(log::LevelFilter::Info)
                .build(),
        )
        .plugin(tauri_plugin_shell::init())
        .plugin(tauri_plugin_mobile_worship::init())
        .run(tauri::generate_context!())
        .expect("error while running the mobile-worship example");
}
