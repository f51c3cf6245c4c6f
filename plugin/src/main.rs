//! `kubectl-sidekiq`: the kubectl plugin of sidekiq-guard.

#![forbid(unsafe_code)]

mod check;
mod cli;
mod cluster;
mod drain;
mod error;
mod inject;
mod live;
mod manifests;
mod offline;
mod output;
mod sources;
mod status;
mod table;
mod validate;

use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = Cli::from_args();
    if let Command::Inject(args) = &cli.command
        && args.files.files.is_empty()
    {
        missing_filename("inject");
    }
    let stdout = io::stdout();
    // no-color.org: NO_COLOR counts when set and not empty; a dumb terminal has no colours.
    let color = stdout.is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb");
    // The commands whose exit status is a verdict finish their work past a closed stdout, and
    // past a closed stderr (`2>&1 | head`), where their summary and progress go.
    let verdict = matches!(
        cli.command,
        Command::Validate(_) | Command::Drain(_) | Command::Check(_)
    );
    let mut out = Output::new(stdout.lock(), verdict);
    let mut err = Output::new(io::stderr().lock(), verdict);
    let mut stdin = io::stdin().lock();
    let result = match &cli.command {
        Command::Inject(args) => {
            inject::run(&cli.cluster, args, &mut stdin, &mut out, &mut err).map(|()| false)
        }
        Command::Validate(args) if args.files.files.is_empty() => {
            block_on(live::run(&cli, args, &mut out, &mut err, color))
        }
        Command::Validate(args) => {
            validate::run(&cli.cluster, args, &mut stdin, &mut out, &mut err, color)
        }
        Command::Status(args) => {
            block_on(status::run(&cli, args, &mut out, &mut err, color)).map(|()| false)
        }
        Command::Drain(args) => block_on(drain::run(&cli, args, &mut out, &mut err)),
        Command::Check(args) => block_on(check::run(&cli, args, &mut out, color)),
    }
    .and_then(|failed| out.flush().map(|()| failed).map_err(Error::Output));
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        // `status … | head`, `inject … | head`: the reader has what it wanted.
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            // An error may quote a Redis record or an API server's message.
            let message = sidekiq_guard::errors::chain(&error);
            let _ = writeln!(
                err,
                "error: {}",
                sidekiq_guard::errors::printable_lines(message)
            );
            ExitCode::from(2)
        }
    }
}

/// The commands that talk to a cluster or Redis run on one thread: they wait on the network,
/// and a single-threaded runtime keeps the plugin small and quick to start.
pub(crate) fn block_on<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?
        .block_on(future)
}

/// Exits like clap does for a missing required argument (`-f` is optional for `validate`).
fn missing_filename(subcommand: &str) -> ! {
    let mut command = Cli::command();
    command.build();
    let message = "the following required arguments were not provided:\n  --filename <FILE|DIR|->";
    match command.find_subcommand_mut(subcommand) {
        Some(sub) => sub
            .error(clap::error::ErrorKind::MissingRequiredArgument, message)
            .exit(),
        None => command
            .error(clap::error::ErrorKind::MissingRequiredArgument, message)
            .exit(),
    }
}
