//! [`ScratchDir`]: a fresh directory under the system's temp dir for config
//! files, certificates and server data, removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own under [`std::env::temp_dir`], removed (with its
/// contents) on drop.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<temp>/testkit-<kind>-<pid>-<n>`, empty.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub(crate) fn new(kind: &str) -> ScratchDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("testkit-{kind}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create scratch dir {}: {e}", path.display()));
        ScratchDir(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// A subdirectory, created when missing.
    pub(crate) fn subdir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create scratch dir {}: {e}", path.display()));
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
