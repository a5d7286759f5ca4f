//! The room keys this app keeps across restarts, one per room: what `webrtc:room_key`
//! (created, rotated) and `webrtc:paired` gave it, so the next start joins the keyed room
//! without pairing again.
//!
//! Tauri v2 offers no secure store of its own (the stronghold plugin is a vault behind a
//! password of its own, which a projection laptop would have to ask for at every start),
//! so the keys live in one JSON file in the app's data directory, readable and writable
//! by the user only: created with mode 0600 on Unix (and within the user's profile, whose
//! ACL admits only that user, on Windows), written to a temporary file and renamed over
//! the old one so that a crash never leaves half a key. The keys are never logged.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file of the keys, `room-keys.json` in the app's data directory.
pub const FILE_NAME: &str = "room-keys.json";
/// Rooms remembered at most (a device belongs to one or two).
const MAX_ROOMS: usize = 16;

/// Writes of this process go one at a time (two notifications at once must not
/// lose a key); another process of the same app is not expected.
static WRITING: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
}

impl KeyStore {
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join(FILE_NAME) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> BTreeMap<String, String> {
        fs::read(&self.path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// The key kept for `room`, if any.
    pub fn get(&self, room: &str) -> Option<String> {
        self.load().remove(room)
    }

    /// Keep `key` for `room` (it replaces the one kept).
    pub fn put(&self, room: &str, key: &str) -> std::io::Result<()> {
        let _one_at_a_time = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys = self.load();
        keys.insert(room.to_owned(), key.to_owned());
        while keys.len() > MAX_ROOMS {
            let first = keys.keys().find(|r| r.as_str() != room).cloned();
            match first {
                Some(r) => keys.remove(&r),
                None => break,
            };
        }
        self.write(&keys)
    }

    /// Forget the key of `room` (a person chose "forget", or the room refused it).
    pub fn forget(&self, room: &str) -> std::io::Result<()> {
        let _one_at_a_time = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys = self.load();
        if keys.remove(room).is_some() {
            self.write(&keys)?;
        }
        Ok(())
    }

    fn write(&self, keys: &BTreeMap<String, String>) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        // A name of its own (a leftover of a crash is never reused with its mode).
        let tmp = self.path.with_extension(format!("json.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?; // whatever the umask
        }
        file.write_all(&serde_json::to_vec(keys).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_kept_per_room_replaced_and_forgotten_in_a_file_only_its_user_reads() {
        let dir = std::env::temp_dir().join(format!("mw-keystore-{}", std::process::id()));
        let store = KeyStore::new(&dir);
        assert_eq!(store.get("main"), None);
        store.put("main", "k1").unwrap();
        store.put("youth", "k2").unwrap();
        store.put("main", "k3").unwrap();
        assert_eq!(store.get("main").as_deref(), Some("k3"));
        assert_eq!(store.get("youth").as_deref(), Some("k2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.forget("main").unwrap();
        assert_eq!(store.get("main"), None);
        assert_eq!(store.get("youth").as_deref(), Some("k2"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
