//! A RabbitMQ cluster (issue 14, DESIGN §10 "Clustered servers"): three
//! nodes started by `scripts/services.sh` on 127.0.0.1 (own ports, node
//! names and cookie, `rabbitmqctl join_cluster`), quorum queues
//! (`AMQP_QUEUE_TYPE=quorum`) and `AMQP_URL` listing the three nodes. The
//! node the service is connected to — which also leads every queue, since
//! the service declared them there — is killed with SIGKILL under
//! registration load: counted are the 201s, the e-mails at the SMTP sink
//! (none missing, none twice) and the time until the service publishes on
//! a surviving node.
//!
//! Built with the default features only: forming a cluster costs ~45 s of
//! both cores, and the queues it checks include the legacy one.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    helpers::{PASSWORD, Remote, ServersWithSink},
    process::Service,
    real_email_lease::recipients,
    servers::{amqp_url, emails_in, fresh_database, redis, services},
};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 30;
/// The SIGKILL comes after this many 201s.
const KILL_AFTER: usize = 40;

/// Three free-looking ports in a row (their Erlang distribution ports are
/// 20 000 higher), overridable when another run uses them.
fn cluster_ports() -> [u16; 3] {
    let base = std::env::var("SMAP_TEST_RABBIT_CLUSTER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5711u16);
    [base, base + 1, base + 2]
}

/// Stops the cluster even when an assertion fails first.
struct Cluster {
    dir: String,
    ports: [u16; 3],
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir()
            .join(format!(
                "smap-rabbit-cluster-{}",
                uuid::Uuid::new_v4().simple()
            ))
            .to_string_lossy()
            .into_owned();
        let ports = cluster_ports();
        let cluster = Cluster { dir, ports };
        let started = Instant::now();
        cluster.run("rabbitmq-cluster-start");
        eprintln!("3-node RabbitMQ cluster formed in {:?}", started.elapsed());
        cluster
    }

    fn args(&self, command: &str) -> Vec<String> {
        let mut args = vec![command.to_owned(), self.dir.clone()];
        args.extend(self.ports.iter().map(u16::to_string));
        args
    }

    fn run(&self, command: &str) {
        let args = self.args(command);
        services(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("amqp://guest:guest@127.0.0.1:{p}/%2f"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill(&self, port: u16) {
        services(&["rabbitmq-cluster-kill", &self.dir, &port.to_string()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(crate::servers::services_script())
            .args(self.args("rabbitmq-cluster-stop"))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The node named by the last "connected"/"reconnected to RabbitMQ" line,
/// and how many such lines there are.
fn connected_node(lines: &[String]) -> (Option<String>, usize) {
    let connects: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("connected to RabbitMQ; topology declared"))
        .collect();
    let node = connects.last().and_then(|l| {
        let at = l.find("127.0.0.1:")?;
        Some(
            l[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect(),
        )
    });
    (node, connects.len())
}

/// `smap-identity events status` against `url`: its output.
fn events_status(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_smap-identity"))
        .args(["events", "status"])
        .env_clear()
        .env("AMQP_URL", url)
        .env("AMQP_QUEUE_TYPE", "quorum")
        .env("RUST_LOG", "warn")
        .output()
        .expect("smap-identity runs");
    assert!(
        output.status.success(),
        "events status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connected_cluster_node_killed_under_registration_load_every_201_gets_its_email_once() {
    // The shared servers must be there (CI), the cluster is this test's own.
    let (Some(_), Some(redis_settings), Some(db)) = (amqp_url(), redis(), fresh_database().await)
    else {
        return;
    };
    let cluster = Cluster::start();
    let url = cluster.url();
    let servers = ServersWithSink::start("smap-cluster", &db, &url, &redis_settings)
        .with("AMQP_QUEUE_TYPE", "quorum");
    let (env, maildir) = (servers.env(), &servers.maildir);
    let service = Service::start(&env).await;
    let (first, _) = connected_node(&service.lines());
    let first = first.expect("the service logs the node it connected to");
    let status = events_status(&url);
    for queue in ["smtp_send_email_v2", "email.errors", "smtp_send_email"] {
        assert!(
            status.contains(&format!("queue {queue}: quorum")),
            "{queue} is a quorum queue:\n{status}"
        );
    }

    // Act: 4 clients register; after KILL_AFTER 201s the node goes.
    let created_count = Arc::new(AtomicUsize::new(0));
    let base = service.base.clone();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (base, created_count) = (base.clone(), created_count.clone());
            tokio::spawn(async move {
                let api = Remote::new(&base);
                let mut created = Vec::new();
                let mut other = Vec::new();
                for i in 0..PER_CLIENT {
                    let email = format!("cluster-{c}-{i}@example.com");
                    let (status, _) = api.register(&email, PASSWORD).await;
                    if status == 201 {
                        created.push(email);
                        created_count.fetch_add(1, Ordering::SeqCst);
                    } else {
                        other.push((email, status));
                    }
                }
                (created, other)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while created_count.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, connects_before) = connected_node(&service.lines());
    let port: u16 = first
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("host:port");
    cluster.kill(port);
    let killed = Instant::now();
    let at_kill = created_count.load(Ordering::SeqCst);
    // The service is on another node when it logs a new connection there.
    let failover = loop {
        let (node, connects) = connected_node(&service.lines());
        if connects > connects_before && node.as_deref() != Some(first.as_str()) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no reconnection to a surviving node within 30 s:\n{}",
            service.lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut created = BTreeSet::new();
    let mut other = Vec::new();
    for client in clients {
        let (c, o) = client.await.expect("client");
        created.extend(c);
        other.extend(o);
    }
    let wait = Instant::now() + Duration::from_secs(90);
    while recipients(maildir).len() < created.len() && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second copy (a redelivery after the kill) would be here by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = recipients(maildir);
    // `events` walks the list too: its first node is the dead one.
    let status_after = events_status(&url);
    let (_, lines) = service.stop().await;

    // Assert
    let users = emails_in(&db).await;
    let mut per_user: BTreeMap<&str, usize> = BTreeMap::new();
    for to in &mails {
        *per_user.entry(to.as_str()).or_default() += 1;
    }
    let doubled = per_user.values().filter(|n| **n > 1).count();
    let missing: Vec<&String> = created
        .iter()
        .filter(|e| !per_user.contains_key(e.as_str()))
        .collect();
    eprintln!(
        "cluster: killed {first} after {at_kill} × 201; on a surviving node after {failover:?}; \
         {} × 201, {} other answers {:?}, {} accounts, {} e-mails to {} recipients, {} missing, \
         {doubled} recipient(s) with more than one",
        created.len(),
        other.len(),
        other.iter().map(|(_, s)| *s).collect::<BTreeSet<_>>(),
        users.len(),
        mails.len(),
        per_user.len(),
        missing.len()
    );
    assert!(
        failover <= Duration::from_secs(10),
        "on a surviving node within 10 s: {failover:?}\n{}",
        lines.join("\n")
    );
    assert_eq!(
        created.len() + other.len(),
        CLIENTS * PER_CLIENT,
        "every request answered"
    );
    assert!(
        other.is_empty(),
        "registration keeps answering 201 while a node dies (outbox): {other:?}"
    );
    assert_eq!(users, created, "every 201 has its account, nothing else");
    assert!(missing.is_empty(), "no e-mail missing: {missing:?}");
    assert_eq!(doubled, 0, "no e-mail twice");
    assert_eq!(mails.len(), created.len());
    assert!(
        status_after.contains("queue smtp_send_email_v2: quorum"),
        "{status_after}"
    );
    let _ = std::fs::remove_dir_all(maildir);
}
