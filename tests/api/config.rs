//! Configuration layers, aliases, validation messages, and `im-server config` output.

use std::path::Path;
use std::process::Command;

use im_server::config::{ConfigSources, Settings};

fn sources(dir: &Path, env: &[(&str, &str)]) -> ConfigSources {
    ConfigSources {
        config_path: None,
        dir: dir.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn load(dir: &Path, env: &[(&str, &str)]) -> im_server::config::Loaded {
    Settings::load(&sources(dir, env)).expect("config loads")
}

fn source_of(loaded: &im_server::config::Loaded, key: &str) -> String {
    Settings::provenance(loaded)
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, _, s)| s)
        .unwrap_or_else(|| panic!("no key {key}"))
}

#[test]
fn each_layer_overrides_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(load(d, &[]).settings.server.port, 3000);
    assert_eq!(source_of(&load(d, &[]), "server.port"), "default");

    std::fs::write(
        d.join("im-server.toml"),
        "[server]\nport = 4001\n[auth]\nleeway_secs = 7\n",
    )
    .unwrap();
    let l = load(d, &[]);
    assert_eq!(l.settings.server.port, 4001);
    assert!(
        source_of(&l, "server.port").contains("TOML"),
        "{}",
        source_of(&l, "server.port")
    );

    std::fs::write(d.join(".env"), "IM_SERVER__PORT=4002\n").unwrap();
    let l = load(d, &[]);
    assert_eq!(l.settings.server.port, 4002);
    assert_eq!(source_of(&l, "server.port"), ".env file");
    assert_eq!(
        l.settings.auth.leeway_secs, 7,
        "untouched keys keep the TOML value"
    );

    let l = load(d, &[("IM_SERVER__PORT", "4003")]);
    assert_eq!(l.settings.server.port, 4003);
    assert_eq!(source_of(&l, "server.port"), "environment (IM_*)");

    let l = load(d, &[("IM_SERVER__PORT", "4003"), ("PORT", "4004")]);
    assert_eq!(l.settings.server.port, 4004);
    assert_eq!(source_of(&l, "server.port"), "environment (alias)");
}

#[test]
fn every_alias_sets_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let l = load(
        dir.path(),
        &[
            ("PORT", "4100"),
            ("HOST", "127.0.0.9"),
            ("DATABASE_URL", "sqlite://x.db"),
            ("REDIS_URL", "redis://127.0.0.1:1/?protocol=resp3"),
            ("JWT_SECRET", "alias-secret-0123456789-0123456789"),
            ("FRONTEND_URL", "http://a.example, http://b.example"),
            ("NODE_ENV", "production"),
        ],
    );
    let s = &l.settings;
    assert_eq!(s.server.port, 4100);
    assert_eq!(s.server.host, "127.0.0.9");
    assert_eq!(s.database.url, "sqlite://x.db");
    assert_eq!(
        s.redis.url.as_deref(),
        Some("redis://127.0.0.1:1/?protocol=resp3")
    );
    assert_eq!(
        s.auth.jwt_secret.as_ref().unwrap().expose(),
        "alias-secret-0123456789-0123456789"
    );
    assert_eq!(
        s.cors.origins.as_deref(),
        Some(
            &[
                "http://a.example".to_string(),
                "http://b.example".to_string()
            ][..]
        )
    );
    assert!(s.is_production());
    let l = load(dir.path(), &[("IM_PROFILE", "production")]);
    assert!(l.settings.is_production());
    // .env aliases work too, below the real environment.
    std::fs::write(
        dir.path().join(".env"),
        "PORT=4200\nJWT_SECRET=from-dotenv\n",
    )
    .unwrap();
    let l = load(dir.path(), &[("PORT", "4300")]);
    assert_eq!(l.settings.server.port, 4300);
    assert_eq!(l.settings.auth.jwt_secret.unwrap().expose(), "from-dotenv");
}

fn validation_error(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), env)
        .settings
        .validate()
        .unwrap_err()
        .to_string()
}

#[test]
fn each_validation_failure_is_one_line_naming_the_key() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("NODE_ENV", "production")], "auth.jwt_secret: "),
        (
            vec![("NODE_ENV", "production"), ("JWT_SECRET", "short")],
            "auth.jwt_secret: ",
        ),
        (
            vec![
                ("IM_AUTH__JWT_SECRET_ENCODING", "base64"),
                ("JWT_SECRET", "!!!not base64!!!"),
            ],
            "auth.jwt_secret: ",
        ),
        (
            vec![("IM_AUTH__ALGORITHMS", "HS256,XS999")],
            "auth.algorithms: ",
        ),
        (vec![("IM_AUTH__ALGORITHMS", "RS256")], "auth.algorithms: "),
        (vec![("NODE_ENV", "staging")], "server.profile: "),
        (
            vec![("IM_SERVER__TRUST_PROXY", "10.0.0.0/33")],
            "server.trust_proxy: ",
        ),
        (
            vec![("IM_SOCKETIO__MAX_QUEUE_BYTES", "1000")],
            "socketio.max_queue_bytes: ",
        ),
        (
            vec![("IM_SOCKETIO__SLOW_CONSUMER_TIMEOUT_MS", "0")],
            "socketio.slow_consumer_timeout_ms: ",
        ),
    ];
    for (env, prefix) in cases {
        let msg = validation_error(&env);
        assert!(msg.starts_with(prefix), "{env:?} gave {msg:?}");
        assert!(!msg.contains('\n'), "one line: {msg:?}");
        assert!(!msg.contains("!!!not base64!!!"), "secret leaked: {msg}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = Settings::load(&sources(dir.path(), &[("IM_AUTH__FAILURE_MODE", "loose")]))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("auth.failure_mode: "), "{err}");
}

#[test]
fn unknown_toml_keys_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("im-server.toml"),
        "[auth]\njwt_secert = \"x\"\n[nope]\na = 1\n",
    )
    .unwrap();
    let l = load(dir.path(), &[]);
    assert_eq!(
        l.unknown_keys,
        vec!["auth.jwt_secert".to_string(), "nope".to_string()]
    );
}

#[test]
fn secrets_show_only_fingerprints() {
    let s = im_server::config::Secret::new("super-secret-value-0123456789");
    for shown in [
        format!("{s:?}"),
        format!("{s}"),
        serde_json::to_string(&s).unwrap(),
    ] {
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("sha256:"), "{shown}");
    }
    assert_eq!(s.fingerprint().len(), "sha256:".len() + 12);
}

fn im_server_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_im-server"))
}

#[test]
fn config_command_prints_values_and_sources_but_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("im-server.toml"),
        "[server]\nport = 4555\napi_key = \"api-key-secret-value\"\n",
    )
    .unwrap();
    let out = im_server_bin()
        .arg("config")
        .current_dir(dir.path())
        .env_clear()
        .env("JWT_SECRET", "config-cmd-secret-0123456789abcdef")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("config-cmd-secret"), "{stdout}");
    assert!(!stdout.contains("api-key-secret-value"), "{stdout}");
    let fp = im_server::config::fingerprint(b"config-cmd-secret-0123456789abcdef");
    assert!(
        stdout.contains(&format!("# jwt secret fingerprint: {fp}")),
        "{stdout}"
    );
    let port_line = stdout
        .lines()
        .find(|l| l.starts_with("server.port"))
        .unwrap();
    assert!(
        port_line.contains("4555") && port_line.contains("TOML"),
        "{port_line}"
    );
    let secret_line = stdout
        .lines()
        .find(|l| l.starts_with("auth.jwt_secret "))
        .unwrap();
    assert!(secret_line.contains("environment (alias)"), "{secret_line}");
}

#[test]
fn serve_fails_fast_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = im_server_bin()
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("NODE_ENV", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap();
    assert!(last.starts_with("error: auth.jwt_secret: "), "{stderr}");

    let out = im_server_bin()
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", "postgres://im:im@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .trim()
            .lines()
            .last()
            .unwrap()
            .starts_with("error: database.url: "),
        "{stderr}"
    );
    assert!(!stderr.contains("im:im@"), "password in {stderr}");

    let out = im_server_bin()
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("REDIS_URL", "redis://127.0.0.1:1/?protocol=resp3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .trim()
            .lines()
            .last()
            .unwrap()
            .starts_with("error: redis.url: "),
        "{stderr}"
    );
}
