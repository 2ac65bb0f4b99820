//! The environment variables cargo hands a process it runs (`cargo run`, a test) that a cargo
//! started from that process must not see: build scripts (ring's, through octocrab and rustls)
//! watch them and would rebuild everything above them on every call. One list, read by xtask
//! and by the integration tests (which include this file by path: they cannot link the binary).

/// True for a variable a nested cargo must not inherit.
pub fn is_inherited_cargo_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
        )
}

/// The variables of this process's environment that a nested cargo must not inherit.
pub fn inherited_cargo_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os().map(|(k, _)| k).filter(|k| is_inherited_cargo_variable(&k.to_string_lossy())).collect()
}
