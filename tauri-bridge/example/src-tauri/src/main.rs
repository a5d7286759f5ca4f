// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    tauri::Builder::default()
        .plugin(tauri_plugin_shell::init())
        .plugin(tauri_plugin_mobile_worship::init())
        .run(tauri::generate_context!())
        .expect("error while running the mobile-worship example");
}
