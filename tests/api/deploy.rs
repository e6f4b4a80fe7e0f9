//! The Kubernetes manifests (deploy/kubernetes/base) hold what DESIGN §10
//! promises of every pod, and their configuration covers template.env: the
//! non-secret settings in the ConfigMap's env file, the secret ones only as
//! empty names in the Secret's example. `scripts/deploy.sh check` validates
//! the rendered overlays against the Kubernetes schemas; this test reads the
//! files themselves, so it needs no tool.

use std::{collections::BTreeSet, path::Path};

use serde::Deserialize;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `NAME=value` lines of an env file: (name, value).
fn env_file(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap_or_else(|| panic!("{path}: {l}"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

fn names(vars: &[(String, String)]) -> BTreeSet<String> {
    vars.iter().map(|(n, _)| n.clone()).collect()
}

/// Every object of every YAML file in deploy/kubernetes/base.
fn base_objects() -> Vec<Value> {
    let dir = root().join("deploy/kubernetes/base");
    let mut objects = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = Value::deserialize(doc).unwrap();
                if !value.is_null() {
                    objects.push(value);
                }
            }
        }
    }
    objects
}

#[test]
fn the_configmap_and_the_secret_cover_template_env_between_them() {
    let template = names(&env_file("template.env"));
    let config = env_file("deploy/kubernetes/base/config.env");
    let secret = env_file("deploy/kubernetes/base/secret.env.example");
    let (config_names, secret_names) = (names(&config), names(&secret));
    assert_eq!(
        config.len(),
        config_names.len(),
        "a name twice in config.env"
    );
    let both: Vec<_> = config_names.intersection(&secret_names).collect();
    assert!(both.is_empty(), "in the ConfigMap and the Secret: {both:?}");
    let covered: BTreeSet<_> = config_names.union(&secret_names).cloned().collect();
    assert_eq!(
        covered, template,
        "deploy/kubernetes/base/{{config.env,secret.env.example}} vs template.env"
    );
    assert_eq!(
        secret_names,
        BTreeSet::from(
            [
                "JWT_SECRET",
                "INTERNAL_KEY",
                "DATABASE_URL",
                "AMQP_URL",
                "REDIS_PASSWORD",
                "REDIS_SENTINEL_PASSWORD",
                "SMTP_PASSWORD"
            ]
            .map(String::from)
        )
    );
    for (name, value) in &secret {
        assert!(value.is_empty(), "secret.env.example publishes {name}");
    }
    let production = config.iter().find(|(n, _)| n == "APP_ENV").unwrap();
    assert_eq!(production.1, "production");
    // The migration Job migrates; `serve` waits for it.
    let migrate = config
        .iter()
        .find(|(n, _)| n == "MIGRATE_ON_START")
        .unwrap();
    assert_eq!(migrate.1, "false");
}

/// The uid the image runs as (`USER uid:gid` of the Dockerfile).
fn image_uid() -> i64 {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile sets USER");
    user.split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("a numeric USER")
}

#[test]
fn every_pod_runs_as_the_image_user_read_only_without_privileges_and_with_resources() {
    let uid = image_uid();
    let objects = base_objects();
    let mut commands = BTreeSet::new();
    for object in objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
    {
        let name = format!("{} {}", object["kind"], object["metadata"]["name"]);
        let pod = &object["spec"]["template"]["spec"];
        let security = &pod["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{name}");
        assert_eq!(security["runAsUser"], uid, "{name}: the Dockerfile's USER");
        assert_eq!(
            security["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        for container in pod["containers"].as_array().unwrap() {
            let security = &container["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(
                security["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}"
            );
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][kind][resource].is_string(),
                        "{name}: resources.{kind}.{resource}"
                    );
                }
            }
            let env: Vec<_> = container["envFrom"].as_array().unwrap().iter().collect();
            assert_eq!(
                env[0]["configMapRef"]["name"], "smap-identity-config",
                "{name}"
            );
            assert_eq!(
                env[1]["secretRef"]["name"], "smap-identity-secrets",
                "{name}"
            );
            let command = container["args"][0].as_str().unwrap().to_owned();
            if command == "serve" || command == "consume" {
                assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/live");
                assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
                assert_eq!(container["startupProbe"]["httpGet"]["path"], "/live");
            }
            if command == "serve" {
                assert_eq!(object["spec"]["replicas"], 3);
            }
            commands.insert((object["kind"].as_str().unwrap().to_owned(), command));
        }
        if object["kind"] == "Deployment" {
            let spread = pod["topologySpreadConstraints"].as_array().unwrap();
            assert!(!spread.is_empty(), "{name}: topology spread");
            assert_eq!(
                spread[0]["labelSelector"]["matchLabels"],
                object["spec"]["selector"]["matchLabels"],
                "{name}: spreads its own pods"
            );
        }
    }
    let expected: BTreeSet<_> = [
        ("Deployment", "serve"),
        ("Deployment", "consume"),
        ("Job", "migrate"),
    ]
    .map(|(k, c)| (k.to_owned(), c.to_owned()))
    .into();
    assert_eq!(commands, expected);
    // Each Deployment has its autoscaler and its disruption budget.
    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        let name = &deployment["metadata"]["name"];
        let hpa = objects
            .iter()
            .find(|o| {
                o["kind"] == "HorizontalPodAutoscaler"
                    && o["spec"]["scaleTargetRef"]["name"] == *name
            })
            .unwrap_or_else(|| panic!("no HorizontalPodAutoscaler for {name}"));
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        assert!(hpa["spec"]["minReplicas"].as_i64() <= deployment["spec"]["replicas"].as_i64());
        assert!(
            objects.iter().any(|o| o["kind"] == "PodDisruptionBudget"
                && o["spec"]["selector"] == deployment["spec"]["selector"]),
            "no PodDisruptionBudget for {name}"
        );
    }
}
