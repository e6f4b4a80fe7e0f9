//! N replicas on one set of servers (issue 14, DESIGN §10 "Clustered
//! servers"): three `smap-identity all` processes — three outbox relays,
//! three expiry sweeps, three sets of e-mail consumers — on one PostgreSQL
//! database, one Redis and one RabbitMQ virtual host, under registration
//! load from 4 clients spread across them. Counted: accounts, events (and
//! their ids) on a probe queue, e-mails at the SMTP sink.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use smap_identity::adapters::bus::topology::EVENTS_EXCHANGE;

use crate::{
    helpers::{PASSWORD, Remote, ServersWithSink},
    process::Service,
    real_email_lease::recipients,
    servers::{Probe, Vhost, amqp_url, body, emails_in, fresh_database, message_id, redis},
};

const REPLICAS: usize = 3;
const CLIENTS: usize = 4;
const PER_CLIENT: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_under_registration_load_send_one_email_and_one_event_id_per_registration() {
    let (Some(amqp), Some(redis_settings), Some(db)) =
        (amqp_url(), redis(), fresh_database().await)
    else {
        return;
    };
    let vhost = Vhost::new(&amqp, "replicas");
    let servers = ServersWithSink::start("smap-replicas", &db, &vhost.url, &redis_settings);
    let (env, maildir) = (servers.env(), &servers.maildir);
    // Started at once on the fresh database: they take turns migrating it.
    let replicas =
        futures_util::future::join_all((0..REPLICAS).map(|_| Service::start(&env))).await;
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let mut events = Probe::bind(&vhost.url, EVENTS_EXCHANGE, "email.verification.requested").await;

    // Act: each client sends its registrations round-robin over the replicas.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let bases = bases.clone();
            tokio::spawn(async move {
                let replicas: Vec<Remote> = bases.iter().map(|b| Remote::new(b)).collect();
                let mut created = Vec::new();
                for i in 0..PER_CLIENT {
                    let email = format!("replica-{c}-{i}@example.com");
                    let (status, _) = replicas[(c + i) % replicas.len()]
                        .register(&email, PASSWORD)
                        .await;
                    assert_eq!(status, 201, "{email}");
                    created.push(email);
                }
                created
            })
        })
        .collect();
    let mut created = BTreeSet::new();
    for client in clients {
        created.extend(client.await.expect("client"));
    }
    let total = CLIENTS * PER_CLIENT;
    let deadline = Instant::now() + Duration::from_secs(60);
    while recipients(maildir).len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second copy (another replica's relay or consumer) would be here by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deliveries = events
        .collect(Duration::from_secs(5), usize::MAX, |d| {
            body(d)["payload"]["data"]["recipient"]
                .as_str()
                .is_some_and(|r| r.starts_with("replica-"))
        })
        .await;
    let mails = recipients(maildir);
    for replica in replicas {
        replica.stop().await;
    }

    // Assert
    let users = emails_in(&db).await;
    let mut ids_per_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in &deliveries {
        let recipient = body(d)["payload"]["data"]["recipient"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ids_per_user
            .entry(recipient)
            .or_default()
            .insert(message_id(d));
    }
    let mut mails_per_user: BTreeMap<String, usize> = BTreeMap::new();
    for to in &mails {
        *mails_per_user.entry(to.clone()).or_default() += 1;
    }
    eprintln!(
        "{REPLICAS} replicas, {CLIENTS} clients: {} × 201, {} accounts, {} event messages \
         ({} distinct ids), {} e-mails to {} recipients",
        created.len(),
        users.len(),
        deliveries.len(),
        ids_per_user.values().map(BTreeSet::len).sum::<usize>(),
        mails.len(),
        mails_per_user.len()
    );
    assert_eq!(created.len(), total);
    assert_eq!(users, created, "every 201 has its account, nothing else");
    for email in &created {
        assert_eq!(
            ids_per_user.get(email).map(BTreeSet::len),
            Some(1),
            "one event id for {email}"
        );
        assert_eq!(
            mails_per_user.get(email).copied(),
            Some(1),
            "one e-mail for {email}"
        );
    }
    assert_eq!(mails.len(), total, "no e-mail twice, none missing");
    let _ = std::fs::remove_dir_all(maildir);
}
