//! Where `btdht node` keeps its state: `--state FILE`, else the default file under the user's
//! data directory ([`default_path`]), or nowhere with `--no-state`; and the start-up check
//! that the file can be kept there ([`check_state_file`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::CliError;

/// The default state file for the environment `var` reads: `$XDG_DATA_HOME/btdht/state.json`
/// when XDG_DATA_HOME is set and absolute, else `$HOME/.local/share/btdht/state.json` when
/// HOME is; `None` when neither is an absolute path.
pub(crate) fn default_path(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let data =
        absolute("XDG_DATA_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local/share")))?;
    Some(data.join("btdht").join("state.json"))
}

/// The default state file of this process's environment ([`default_path`]).
pub(crate) fn default_path_from_env() -> Option<PathBuf> {
    default_path(|name| std::env::var_os(name))
}

/// The state file a node keeps, checked (see [`check_state_file`]): `given` (`--state`),
/// none with `no_state`, else the default one, whose directory is created (mode 0700).
/// Every refusal is a usage error that names the file.
pub(crate) fn resolve(given: Option<&Path>, no_state: bool) -> Result<Option<PathBuf>, CliError> {
    if no_state {
        return Ok(None);
    }
    if let Some(path) = given {
        return match check_state_file(path) {
            Ok(()) => Ok(Some(path.to_path_buf())),
            Err(problem) => Err(CliError::usage(format!(
                "--state {}: {problem}; nothing was started",
                path.display()
            ))),
        };
    }
    let Some(path) = default_path_from_env() else {
        return Err(CliError::usage(
            "no --state given and neither XDG_DATA_HOME nor HOME is an absolute path: give \
             --state FILE or --no-state; nothing was started",
        ));
    };
    let refused = |problem: String| {
        CliError::usage(format!(
            "default state file {}: {problem}; nothing was started (give --state FILE or \
             --no-state)",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir)
            .map_err(|e| refused(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    check_state_file(&path).map_err(refused)?;
    Ok(Some(path))
}

/// Creates `dir` and its missing parents, readable by the user only where the OS has modes.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Checks at start that the node can keep its state in `path`: the file is absent or a btdht
/// state (never overwrite another program's file), and its directory exists and is writable.
/// Returns what is wrong otherwise.
pub(crate) fn check_state_file(path: &Path) -> Result<(), String> {
    use std::fs;
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err("is a directory, not a file".into()),
        Ok(_) => {
            if let Err(e) = btdht::driver::load(path) {
                return Err(format!(
                    "is not a btdht state file ({e}); it is left untouched: move it away or \
                     choose another file"
                ));
            }
            fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot be written: {e}"))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot be read: {e}")),
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    // The state is saved through a temporary file and a rename in the same directory.
    let probe = dir.join(format!(".btdht-state-check.{}", std::process::id()));
    match fs::File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("directory {} is not writable: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_default_is_under_xdg_data_home_if_absolute_else_under_home() {
        let both = [("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")];
        assert_eq!(
            default_path(env(&both)),
            Some(PathBuf::from("/data/btdht/state.json"))
        );
        for xdg in [None, Some(""), Some("relative/data")] {
            let mut vars = vec![("HOME", "/home/u")];
            if let Some(xdg) = xdg {
                vars.push(("XDG_DATA_HOME", xdg));
            }
            assert_eq!(
                default_path(env(&vars)),
                Some(PathBuf::from("/home/u/.local/share/btdht/state.json")),
                "XDG_DATA_HOME {xdg:?}"
            );
        }
        assert_eq!(default_path(env(&[("HOME", "")])), None);
        assert_eq!(default_path(env(&[("HOME", "home")])), None);
        assert_eq!(default_path(env(&[])), None);
    }
}
