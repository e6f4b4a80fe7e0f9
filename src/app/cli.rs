//! The command line: `smap-identity [serve|all]`; no subcommand means `all`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "smap-identity",
    version,
    about = "SMAP Identity Service: accounts, plans, subscriptions and SMAP events"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve,
    /// Everything in one process: the HTTP API and the workers (the default).
    All,
    /// Only the e-mail consumers (needs AMQP_URL); HTTP serves the system
    /// routes only: /live, /ready, /health, /metrics.
    Consume,
    /// Apply the database migrations (needs DATABASE_URL).
    Migrate,
    /// RabbitMQ topology tooling for the migration (needs AMQP_URL).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Administration of accounts (needs DATABASE_URL).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum EventsCommand {
    /// Declare the exchanges, queues and bindings (idempotent).
    Declare,
    /// Print exchanges, queues with message counts, and bindings.
    Status,
    /// Delete the legacy exchange and queue; refuses while dual-publishing or
    /// while the legacy queue holds messages.
    CleanupLegacy,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AdminCommand {
    /// Make the account with this e-mail an administrator.
    Grant { email: String },
    /// Make the administrator with this e-mail a plain user again; effective
    /// on the next request of each of their sessions.
    Revoke { email: String },
}

impl Cli {
    pub fn subcommand(&self) -> Command {
        self.command.clone().unwrap_or(Command::All)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn no_subcommand_means_all() {
        assert_eq!(
            Cli::parse_from(["smap-identity"]).subcommand(),
            Command::All
        );
        assert_eq!(
            Cli::parse_from(["smap-identity", "serve"]).subcommand(),
            Command::Serve
        );
        assert_eq!(
            Cli::parse_from(["smap-identity", "migrate"]).subcommand(),
            Command::Migrate
        );
        assert_eq!(
            Cli::parse_from(["smap-identity", "admin", "grant", "a@b.co"]).subcommand(),
            Command::Admin {
                command: AdminCommand::Grant {
                    email: "a@b.co".into()
                }
            }
        );
        assert!(Cli::try_parse_from(["smap-identity", "events"]).is_err());
    }

    #[test]
    fn help_lists_only_the_subcommands_that_work() {
        let names: Vec<String> = <Cli as CommandFactory>::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert_eq!(
            names,
            ["serve", "all", "consume", "migrate", "events", "admin"]
        );
    }
}
