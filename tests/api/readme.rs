//! The README's progress walk-through, run as written (its `sh` block, with
//! the port of a freshly started `smap-identity`), and its answers checked.

use std::process::Command;

use crate::process::Service;

/// The first ```sh block after `heading` in README.md.
fn sh_block_after(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let from = readme
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in README"));
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("its end");
    rest[start..start + end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_progress_walk_through_works_as_written() {
    let service = Service::start(&[]).await;
    let script = sh_block_after("## Try the progress API")
        .replace("localhost:8080", &service.base.replace("http://", ""));
    assert!(script.contains("curl"), "{script}");

    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash").args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The answers the README's comments promise, in order.
    let expected = [
        r#""status":"INITIALIZING""#,
        r#""status":"PROCESSING","total":3,"done":2,"errors":1,"percent":66.67"#,
        r#""COMPLETED""#,
        r#""field":"total""#,
        r#""status":"healthy""#,
        "events_published_total{routing_key=\"job.completed\"} 1",
    ];
    let mut at = 0;
    for needle in expected {
        let found = stdout[at..].find(needle).unwrap_or_else(|| {
            panic!("`{needle}` not in the walk-through's output after byte {at}:\n{stdout}")
        });
        at += found + needle.len();
    }
    let (_, lines) = service.stop().await;
    assert!(
        lines.iter().any(|l| l.contains("job.completed")),
        "the log shows the job.completed event"
    );
}

/// Runs `script` with bash in `dir`; its stdout.
async fn bash(script: String, dir: std::path::PathBuf) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_account_walk_through_works_with_the_code_from_the_log() {
    let service = Service::start(&[]).await;
    let script = sh_block_after("## Try an account")
        .replace("localhost:8080", &service.base.replace("http://", ""));
    // The README reads the code from the log between two steps; so does this test.
    let (register, rest) = script
        .split_once("# The log now shows the e-mail")
        .expect("the step that reads the log");
    let dir = std::env::temp_dir().join(format!("smap-readme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    let registered = bash(register.to_owned(), dir.clone()).await;
    assert!(
        registered.contains(r#""status":"unverified""#),
        "{registered}"
    );
    let code = service.code_from_log().await;
    // The rest of the walk-through, with the real code for the README's 123456.
    let json = register
        .lines()
        .find(|l| l.starts_with("JSON="))
        .expect("the JSON header variable");
    let rest = format!("{json}\n{}", rest.replace("123456", &code));
    let answers = bash(rest, dir.clone()).await;

    let expected = [
        r#""status":"active""#,
        r#""token":""#,
        r#""status":"trialing""#,
        r#""code":"free""#,
    ];
    let mut at = 0;
    for needle in expected {
        let found = answers[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in the answers after byte {at}:\n{answers}"));
        at += found + needle.len();
    }
    let jar = std::fs::read_to_string(dir.join("jar")).unwrap();
    assert!(
        jar.contains("smap_auth_token"),
        "the login cookie is in the jar"
    );
    let (_, lines) = service.stop().await;
    assert!(
        !lines.join("\n").contains("ann@example.com"),
        "the address is masked in the log"
    );
}

/// `text` with compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`
/// replaced from `env`; the variables a `:?` found unset or empty (compose
/// then refuses to start, printing the message).
fn interpolate(
    text: &str,
    env: &std::collections::HashMap<String, String>,
) -> (String, Vec<String>) {
    let (mut out, mut missing, mut rest) = (String::new(), Vec::new(), text);
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("a closing brace") + at;
        let inner = &rest[at + 2..end];
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let (name, op) = inner.split_at(name_len);
        let value = env.get(name).filter(|v| !v.is_empty()).cloned();
        out.push_str(&match (value, op) {
            (Some(v), _) => v,
            (None, op) if op.starts_with(":-") => op[2..].to_owned(),
            (None, op) if op.starts_with(":?") => {
                missing.push(name.to_owned());
                String::new()
            }
            (None, _) => String::new(),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    (out, missing)
}

/// The password of `scheme://user:password@host`.
fn url_password(url: &str) -> &str {
    let userinfo = url.split_once("://").unwrap().1.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1
}

#[tokio::test]
async fn the_compose_stack_runs_in_production_after_the_readme_step() {
    use std::collections::HashMap;
    // The README's step, run as written, up to `docker compose up` (no
    // Docker here): it writes `.env`.
    let block = sh_block_after("## The stack for users");
    let (step, _) = block
        .split_once("docker compose up")
        .expect("the step before `docker compose up`");
    let dir = std::env::temp_dir().join(format!("smap-compose-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    bash(step.to_owned(), dir.clone()).await;
    let dotenv: HashMap<String, String> = std::fs::read_to_string(dir.join(".env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);

    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    // Without `.env` compose stops on each secret, naming it.
    let (_, missing) = interpolate(&compose, &HashMap::new());
    for var in [
        "JWT_SECRET",
        "INTERNAL_KEY",
        "POSTGRES_PASSWORD",
        "RABBITMQ_PASSWORD",
    ] {
        assert!(
            missing.iter().any(|m| m == var),
            "{var} not required: {missing:?}"
        );
        assert!(
            dotenv[var].len() >= 32,
            "{var} from the README step: {dotenv:?}"
        );
    }
    let (text, missing) = interpolate(&compose, &dotenv);
    assert!(missing.is_empty(), "{missing:?}");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let service = |name: &str| {
        let env = doc["services"][name]["environment"]
            .as_object()
            .unwrap()
            .clone();
        env.into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
            .collect::<HashMap<_, _>>()
    };
    let identity = service("identity");
    assert_eq!(identity["APP_ENV"], "production");
    // The service's configuration from compose: accepted by production.
    let settings =
        smap_identity::app::config::Settings::from_lookup(|var| identity.get(var).cloned())
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(settings.app_env.is_production() && !settings.uses_dev_secrets());
    // The service and the servers agree on the passwords.
    assert_eq!(
        url_password(&identity["DATABASE_URL"]),
        service("postgres")["POSTGRES_PASSWORD"]
    );
    assert_eq!(
        url_password(&identity["AMQP_URL"]),
        service("rabbitmq")["RABBITMQ_DEFAULT_PASS"]
    );
}
