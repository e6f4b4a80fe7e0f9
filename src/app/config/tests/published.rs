//! Nothing the repository publishes (compose file, template.env, README,
//! docs, examples, scripts) looks like a secret unless `PUBLISHED_SECRETS`
//! lists it, so production refuses it.

use super::*;

/// A literal value at the start of `raw` (quotes stripped); references
/// (`$VAR`, `%VAR%`, `<placeholder>`) are not literals.
fn literal(raw: &str) -> Option<String> {
    let value: String = raw
        .trim_start()
        .trim_start_matches(['"', '\'', '`'])
        .chars()
        .take_while(|c| !c.is_whitespace() && !"\"'`,}".contains(*c))
        .collect();
    (!value.is_empty() && !value.starts_with(['$', '%', '<'])).then_some(value)
}

/// The length of the upper-case variable name at the start of `s`.
fn name_len(s: &str) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        .count()
}

fn secret_name(name: &str) -> bool {
    name.contains("SECRET")
        // `PASSWORD_HASH_*` tune the hasher: numbers, not secrets.
        || (name.contains("PASSWORD") && !name.starts_with("PASSWORD_HASH_"))
        || name.ends_with("_PASS")
        || name.ends_with("_KEY")
        || name.ends_with("TOKEN")
}

/// Secret-looking literals in `text`: the value of an upper-case
/// variable named like a secret (`NAME=value`, `NAME: value`, and the
/// default of `${NAME:-value}` anywhere), of an `X-Internal-Key:`
/// header, and the password of a `scheme://user:password@` URL.
/// References (`$VAR`, `${VAR:?message}`, `$(command)`) are not literals.
fn secret_looking_values(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        assigned_values(line, &mut found);
        for (at, _) in line.match_indices("${") {
            let inner = &line[at + 2..];
            let (name, rest) = inner.split_at(name_len(inner));
            let default = rest.strip_prefix(":-").or_else(|| rest.strip_prefix('-'));
            if let Some(default) = default.filter(|_| secret_name(name)) {
                found.extend(literal(default));
            }
        }
        let lower = line.to_ascii_lowercase();
        for (at, _) in lower.match_indices("x-internal-key:") {
            found.extend(literal(&line[at + "x-internal-key:".len()..]));
        }
        for (at, _) in line.match_indices("://") {
            let authority: String = line[at + 3..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"/\"'`)".contains(*c))
                .collect();
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && let Some((_, password)) = userinfo.split_once(':')
            {
                found.extend(literal(password));
            }
        }
    }
    found
}

/// `NAME=value` and `NAME: value` of a secret-named variable in `line`.
fn assigned_values(line: &str, found: &mut Vec<String>) {
    let mut i = 0;
    while i < line.len() {
        let len = name_len(&line[i..]);
        if len == 0 {
            i += line[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let (name, rest) = line[i..].split_at(len);
        let value = rest.strip_prefix('=').or_else(|| rest.strip_prefix(": "));
        if let Some(value) = value.filter(|v| secret_name(name) && !v.starts_with("${")) {
            found.extend(literal(value));
        }
        i += len;
    }
}

#[test]
fn the_scanner_finds_secret_looking_values() {
    let text = "JWT_SECRET=abc\n  GF_SECURITY_ADMIN_PASSWORD: admin\n\
                KEY='X-Internal-Key: k1'\nX: ${INTERNAL_KEY:-d1}\n\
                see postgres://u:p1@db/x and `amqp://guest:g2@mq`\n\
                JWT_SECRET: ${JWT_SECRET:?create .env}\nINTERNAL_KEY=\n\
                db://u:${DB_PASSWORD:-d2}@h -a \"$REDIS_PASSWORD\" \
                `JWT_SECRET`/`INTERNAL_KEY` for v in JWT_SECRET; do echo \"$v=$(openssl)\"\n\
                PASSWORD_HASH_MAX_WAIT_MS=2000";
    assert_eq!(
        secret_looking_values(text),
        ["abc", "admin", "k1", "d1", "p1", "g2", "d2"]
    );
}

/// The files users copy from; each secret-looking value in them must be
/// one production refuses.
#[test]
fn every_secret_published_in_the_repository_is_refused_in_production() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("docker-compose.yml"),
        root.join("template.env"),
        root.join("README.md"),
        root.join("Dockerfile"),
    ];
    let mut dirs = vec![
        root.join("deploy"),
        root.join("docs"),
        root.join("examples"),
        root.join("scripts"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let (mut seen, mut scanned, mut values) = (std::collections::BTreeSet::new(), 0, 0);
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        scanned += 1;
        for value in secret_looking_values(&text) {
            values += 1;
            assert!(
                PUBLISHED_SECRETS.contains(&value.as_str()),
                "{}: `{value}` looks like a secret; add it to PUBLISHED_SECRETS \
                 (production must refuse it) or stop publishing it",
                file.display()
            );
            seen.insert(value);
        }
    }
    eprintln!("scanned {scanned} files: {values} secret-looking values, distinct {seen:?}");
    // The scan reads what it should: the README's development key and
    // the example URLs' passwords.
    for expected in [DEV_INTERNAL_KEY, "guest", "smap", "admin"] {
        assert!(seen.contains(expected), "{expected} not found: {seen:?}");
    }
}
