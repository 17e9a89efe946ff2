//! Running commands as steps of a task.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Announces a step, so a long log shows which one is running (or failed).
pub fn step(title: &str) {
    println!("==> {title}");
}

/// The cargo that runs this task (cargo sets `CARGO`), in the workspace root.
pub fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root);
    command
}

/// Runs a command with inherited output; a non-zero exit is an error.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("cannot start `{}`", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Runs a command and captures its output; a non-zero exit is an error carrying its stderr.
pub fn capture(command: &mut Command) -> Result<Output> {
    let output = command.output().with_context(|| format!("cannot start `{}`", describe(command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
