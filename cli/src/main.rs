use std::{io::Write, process::ExitCode};

use clap::Parser;
use hookctl::args::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let outcome = hookctl::run(cli, &mut stdout).await;
    let _ = stdout.flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hookctl: {err}");
            ExitCode::FAILURE
        }
    }
}
