//! `smap-identity`: reads the configuration, installs logging and runs the
//! chosen subcommand until SIGINT/SIGTERM.

#![warn(clippy::too_many_lines)]

use std::process::ExitCode;

use clap::Parser;
use smap_identity::app::{
    cli::{AdminCommand, Cli, Command, EventsCommand},
    commands,
    config::Settings,
    events_tool,
    startup::{self, Application},
    telemetry,
};
use smap_identity::domain::account::Role;

// Multi-threaded tokio, not actix's single-threaded runtime: the server
// spawns its own workers, and database migrations need a multi-thread runtime.
fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smap-identity: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async_main());
    // Dropping a runtime waits for its blocking threads without limit; a
    // trace flush that did not return in time (`Telemetry::shutdown` gave
    // up on it after 6 s) would keep the process alive after SIGTERM.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("smap-identity: {error}");
            return ExitCode::from(2);
        }
    };
    // The long-running processes refuse in-memory adapters in production.
    if matches!(
        cli.subcommand(),
        Command::Serve | Command::All | Command::Consume
    ) && let Err(error) = settings.require_servers()
    {
        eprintln!("smap-identity: {error}");
        return ExitCode::from(2);
    }
    let telemetry = match telemetry::init(&settings) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("smap-identity: {error}");
            return ExitCode::from(2);
        }
    };
    let result = run(cli.subcommand(), settings).await;
    // Spans still queued go out before the process ends.
    telemetry.shutdown().await;
    match result {
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
        Command::Consume => {
            anyhow::ensure!(
                settings.amqp_url.is_some(),
                "AMQP_URL is not set: `consume` reads RabbitMQ queues"
            );
            tracing::info!(env = ?settings.app_env, "starting the e-mail consumers");
            startup::run_consume(&settings).await?;
        }
        Command::Events { command } => {
            let report = match command {
                EventsCommand::Declare => events_tool::declare(&settings).await?,
                EventsCommand::Status => events_tool::status(&settings).await?,
                EventsCommand::CleanupLegacy => events_tool::cleanup_legacy(&settings).await?,
            };
            println!("{report}");
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
            commands::set_role(&settings, &email, Role::Admin).await?;
            println!("{email} is now an administrator");
        }
        Command::Admin {
            command: AdminCommand::Revoke { email },
        } => {
            commands::set_role(&settings, &email, Role::User).await?;
            println!("{email} is no longer an administrator");
        }
    }
    Ok(())
}
