//! `kubectl-sidekiq`: the kubectl plugin of sidekiq-guard.

#![forbid(unsafe_code)]

mod cli;
mod error;
mod inject;
mod manifests;
mod offline;
mod validate;

use std::error::Error as _;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = stdout.lock();
    let mut err = io::stderr().lock();
    let mut stdin = io::stdin().lock();
    let result = match &cli.command {
        Command::Inject(args) => inject::run(args, &mut stdin, &mut out, &mut err).map(|()| false),
        Command::Validate(args) => validate::run(args, &mut stdin, &mut out, &mut err, color),
    }
    .and_then(|failed| out.flush().map(|()| failed).map_err(Error::Output));
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(err, "error: {}", chain(&error));
            ExitCode::from(2)
        }
    }
}

/// `outer: cause: root cause`.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
