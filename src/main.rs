//! `smap-identity`: reads the configuration, installs logging and runs the
//! chosen subcommand until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use smap_identity::app::{
    cli::{AdminCommand, Cli, Command},
    commands,
    config::Settings,
    startup::Application,
    telemetry,
};

// Multi-threaded tokio, not actix's single-threaded runtime: the server
// spawns its own workers, and database migrations need a multi-thread runtime.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("smap-identity: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings);
    match run(cli.subcommand(), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "smap-identity failed");
            eprintln!("smap-identity: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve | Command::All => {
            tracing::info!(?command, env = ?settings.app_env, "starting smap-identity");
            let mut settings = settings;
            settings.start_consumers = command == Command::All;
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let applied = commands::migrate(&settings).await?;
            println!(
                "migrations applied: {}",
                if applied.is_empty() {
                    "none pending".to_owned()
                } else {
                    applied.join(", ")
                }
            );
        }
        Command::Admin {
            command: AdminCommand::Grant { email },
        } => {
            commands::grant_admin(&settings, &email).await?;
            println!("{email} is now an administrator");
        }
    }
    Ok(())
}
