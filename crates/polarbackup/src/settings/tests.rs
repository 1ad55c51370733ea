//! Tests that go over every declared setting, so a new one is covered by adding it.

use super::declare::{Spec, CONFIG_ENV};
use super::*;
use crate::cli::{Cli, Command};
use crate::locations::Metadata;
use clap::{CommandFactory, Parser};
use std::collections::HashMap;
use std::ffi::OsString;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    File,
    Env,
    Flag,
}

/// Layers, lowest first.
const LAYERS: [Layer; 3] = [Layer::File, Layer::Env, Layer::Flag];

/// Where the layers of one `serve` invocation come from.
struct Inputs {
    dir: tempfile::TempDir,
    file: String,
    env: HashMap<String, String>,
    argv: Vec<String>,
}

impl Inputs {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tmp"),
            file: String::new(),
            env: HashMap::new(),
            argv: vec!["polarbackup".into(), "serve".into()],
        }
    }

    fn set(&mut self, spec: &Spec, layer: Layer, text: &str) -> &mut Self {
        match layer {
            Layer::File => {
                self.file += &format!("{} = {}\n", spec.name, toml_literal(text));
            }
            Layer::Env => {
                self.env.insert(spec.env.into(), text.into());
            }
            Layer::Flag => self.argv.extend([spec.flag(), text.into()]),
        }
        self
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("polarbackup.toml")
    }

    /// Parses the flags as the binary does, then resolves; errors as one line each.
    fn resolve(&self) -> std::result::Result<Settings, String> {
        let mut argv = self.argv.clone();
        if !self.file.is_empty() {
            std::fs::write(self.config_path(), &self.file).expect("write the config file");
            argv.extend(["--config".into(), self.config_path().display().to_string()]);
        }
        let cli = Cli::try_parse_from(&argv).map_err(|e| e.to_string())?;
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {argv:?}");
        };
        Settings::resolve(&args.settings, &|name| {
            self.env.get(name).map(OsString::from)
        })
        .map_err(|e| format!("{e:#}"))
    }
}

/// Integers as TOML integers, everything else as a TOML string.
fn toml_literal(text: &str) -> String {
    if text.parse::<i64>().is_ok() {
        text.to_owned()
    } else {
        toml::Value::String(text.to_owned()).to_string()
    }
}

fn value_of(settings: &Settings, name: &str) -> String {
    settings
        .values()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no setting {name}"))
        .1
}

fn resolved(inputs: &Inputs, what: &str) -> Settings {
    inputs
        .resolve()
        .unwrap_or_else(|e| panic!("{what}: refused: {e}"))
}

#[test]
fn every_setting_is_declared_once_with_the_conventional_names() {
    let mut seen = std::collections::HashSet::new();
    for spec in spec::ALL {
        assert!(seen.insert(spec.name), "{} declared twice", spec.name);
        assert_eq!(
            spec.env,
            format!("POLARBACKUP_{}", spec.name.to_uppercase()),
            "{}",
            spec.name
        );
        assert_ne!(
            spec.sample, spec.default,
            "{}: sample is the default",
            spec.name
        );
    }
    let names: Vec<&str> = Settings::resolve(&ServeArgs::default(), &|_| None)
        .expect("defaults")
        .values()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, spec::ALL.iter().map(|s| s.name).collect::<Vec<_>>());
}

#[test]
fn every_setting_follows_default_then_file_then_env_then_flag() {
    let defaults = resolved(&Inputs::new(), "nothing set");
    for spec in spec::ALL {
        let default = value_of(&defaults, spec.name);
        let sample = value_of(
            &resolved(Inputs::new().set(spec, Layer::Flag, spec.sample), "flag"),
            spec.name,
        );
        assert_ne!(
            sample, default,
            "{}: the sample reads as the default",
            spec.name
        );
        // Every non-empty set of layers: the highest one wins, whether it holds the sample
        // (the others the default) or the default (the others the sample).
        for mask in 1..(1u8 << LAYERS.len()) {
            let given: Vec<Layer> = (0..LAYERS.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| LAYERS[i])
                .collect();
            let top = *given.last().expect("non-empty");
            for (top_text, rest_text, want) in [
                (spec.sample, spec.default, &sample),
                (spec.default, spec.sample, &default),
            ] {
                let mut inputs = Inputs::new();
                for &layer in &given {
                    let text = if layer == top { top_text } else { rest_text };
                    inputs.set(spec, layer, text);
                }
                let what = format!("{} with {given:?}, {top:?} = {top_text:?}", spec.name);
                let got = resolved(&inputs, &what);
                assert_eq!(&value_of(&got, spec.name), want, "{what}");
                // Nothing leaks into the other settings.
                for (name, value) in got.values() {
                    if name != spec.name {
                        assert_eq!(value, value_of(&defaults, name), "{what}: {name}");
                    }
                }
            }
        }
    }
}

#[test]
fn every_setting_refuses_an_invalid_value_from_every_layer_and_says_where() {
    for spec in spec::ALL {
        for layer in LAYERS {
            let mut inputs = Inputs::new();
            inputs.set(spec, layer, spec.invalid);
            let what = format!("{} = {:?} in {layer:?}", spec.name, spec.invalid);
            let err = match inputs.resolve() {
                Ok(s) => panic!("{what}: accepted as {}", value_of(&s, spec.name)),
                Err(e) => e,
            };
            let place = match layer {
                Layer::File => inputs.config_path().display().to_string(),
                Layer::Env => spec.env.to_owned(),
                Layer::Flag => spec.flag(),
            };
            assert!(
                err.contains(&place),
                "{what}: {err:?} does not name {place}"
            );
            assert!(
                err.contains(spec.name) || err.contains(&spec.flag()),
                "{what}: {err:?}"
            );
            assert!(err.contains(spec.invalid), "{what}: {err:?}");
        }
    }
}

#[test]
fn a_file_value_is_checked_even_when_a_flag_overrides_it() {
    for spec in spec::ALL {
        let mut inputs = Inputs::new();
        inputs
            .set(spec, Layer::File, spec.invalid)
            .set(spec, Layer::Flag, spec.sample);
        assert!(inputs.resolve().is_err(), "{}", spec.name);
    }
}

#[test]
fn unknown_or_mistyped_file_keys_are_refused() {
    for (file, needle) in [
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("config = \"other.toml\"\n", "config"),
        ("[serve]\nworkers = 1\n", "serve"),
        ("workers = \"many\"\n", "workers"),
        ("job_history_days = -1\n", "job_history_days"),
        ("scheduler = true\n", "scheduler"),
        ("workers = 1\nworkers = 2\n", "workers"),
        ("workers = \n", "workers"),
    ] {
        let mut inputs = Inputs::new();
        inputs.file = file.into();
        let err = inputs.resolve().expect_err(file);
        assert!(err.contains(needle), "{file:?}: {err}");
        assert!(
            err.contains(&inputs.config_path().display().to_string()),
            "{file:?}: {err}"
        );
    }
}

#[test]
fn the_config_file_comes_from_the_flag_or_else_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let from_env = dir.path().join("env.toml");
    let from_flag = dir.path().join("flag.toml");
    std::fs::write(&from_env, "workers = 3\n").expect("write");
    std::fs::write(&from_flag, "workers = 4\n").expect("write");
    let env: HashMap<&str, OsString> = [(CONFIG_ENV, from_env.clone().into_os_string())].into();
    let lookup = |name: &str| env.get(name).cloned();
    let by_env = Settings::resolve(&ServeArgs::default(), &lookup).expect("env file");
    assert_eq!(by_env.workers, 3);
    let args = ServeArgs {
        config: Some(from_flag),
        ..ServeArgs::default()
    };
    assert_eq!(
        Settings::resolve(&args, &lookup)
            .expect("flag file")
            .workers,
        4
    );
    let missing = ServeArgs {
        config: Some(dir.path().join("missing.toml")),
        ..ServeArgs::default()
    };
    let err = format!(
        "{:#}",
        Settings::resolve(&missing, &lookup).expect_err("missing")
    );
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn the_help_shows_every_settings_flag_default_and_variable() {
    Cli::command().debug_assert();
    let help = Cli::command()
        .find_subcommand_mut("serve")
        .expect("serve")
        .render_long_help()
        .to_string();
    for spec in spec::ALL {
        for needle in [
            spec.flag(),
            format!("[default: {}] [env: {}]", spec.default, spec.env),
        ] {
            assert!(help.contains(&needle), "no {needle} in\n{help}");
        }
    }
    assert!(help.contains(CONFIG_ENV), "{help}");
}

#[test]
fn the_settings_become_the_api_http_and_worker_configs() {
    let mut inputs = Inputs::new();
    for (name, text) in [
        ("job_history_days", "3"),
        ("workers", "5"),
        ("lease_secs", "45"),
        ("scheduler", "off"),
        ("ram_mode", "soft"),
        ("region", "cn-shanghai"),
        ("host_id", "backup.example.com"),
        ("header_timeout_secs", "2"),
        ("stall_secs", "7"),
        ("listen", "127.0.0.1:9000"),
        ("data_dir", "/srv/pb"),
    ] {
        let spec = spec::ALL.iter().find(|s| s.name == name).expect(name);
        inputs.set(spec, Layer::Flag, text);
    }
    let parts =
        resolved(&inputs, "flags").into_parts(DiagnosticKey(vec![7; 32]), LinkSecret(vec![9; 32]));
    assert_eq!(parts.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(parts.data_dir, PathBuf::from("/srv/pb"));
    assert_eq!(parts.api.job_history, SignedDuration::from_hours(72));
    assert_eq!(parts.api.region, "cn-shanghai");
    assert_eq!(parts.api.host_id, "backup.example.com");
    assert_eq!(parts.api.ram.mode, RamMode::Soft);
    assert_eq!(parts.api.ram.diagnostic_key.as_bytes(), &[7; 32]);
    assert_eq!(parts.api.links.secret.as_bytes(), &[9; 32]);
    assert_eq!(parts.api.links.lifetime, SignedDuration::from_hours(1));
    assert!(
        !format!("{:?}", parts.api).contains("[9, 9"),
        "the secret shows in Debug"
    );
    assert_eq!(parts.http.header_read_timeout, Duration::from_secs(2));
    assert_eq!(parts.workers.concurrency, 5);
    assert_eq!(parts.workers.lease, SignedDuration::from_secs(45));
    assert!(!parts.workers.scheduler);
    assert_eq!(parts.stall, Duration::from_secs(7));
}

const PASSWORD: &str = "hunter2-s3cret";

fn metadata_url_spec() -> &'static Spec {
    &spec::metadata_url
}

/// `serve`'s settings from `argv` (after `polarbackup serve`), an environment and a config
/// file written with `mode`.
fn resolve_with(
    argv: &[&str],
    env: &[(&str, &str)],
    file: Option<(&str, u32)>,
) -> std::result::Result<Settings, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let mut args: Vec<String> = ["polarbackup", "serve"].map(String::from).to_vec();
    args.extend(argv.iter().map(|a| a.to_string()));
    if let Some((text, mode)) = file {
        let path = dir.path().join("polarbackup.toml");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        args.extend(["--config".into(), path.display().to_string()]);
    }
    let cli = Cli::try_parse_from(&args).map_err(|e| e.to_string())?;
    let Command::Serve(args) = cli.command else {
        panic!("not serve");
    };
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::resolve(&args.settings, &|name| env.get(name).map(OsString::from))
        .map_err(|e| format!("{e:#}"))
}

fn locations(settings: &Settings) -> crate::backends::Locations {
    crate::backends::Locations::from_settings(settings).expect("locations")
}

fn pg_password(settings: &Settings) -> Option<String> {
    match locations(settings).metadata {
        crate::locations::Metadata::Postgres(pg) => pg.password,
        other => panic!("not postgres: {other:?}"),
    }
}

#[test]
fn a_password_in_a_metadata_url_flag_is_refused_without_echoing_it() {
    for url in [
        format!("postgres://pb:{PASSWORD}@db.example.com/meta"),
        // Not even a URL that fails to parse is quoted.
        format!("postgres://pb:{PASSWORD}@db.example.com:notaport/meta"),
        format!("postgresql://pb:{PASSWORD}@[::1]:5432/meta?sslmode=require"),
    ] {
        let err = resolve_with(&["--metadata-url", &url], &[], None).expect_err(&url);
        assert!(!err.contains(PASSWORD), "{url}: echoed: {err}");
        assert!(err.contains("--metadata-url"), "{err}");
        assert!(err.contains("visible to every user"), "{err}");
        assert!(err.contains("PGPASSWORD"), "{err}");
    }
    // The same URL from the environment is how a password is given.
    let url = format!("postgres://pb:{PASSWORD}@db.example.com/meta");
    let settings =
        resolve_with(&[], &[(metadata_url_spec().env, &url)], None).expect("from the env");
    assert_eq!(pg_password(&settings).as_deref(), Some(PASSWORD));
    assert!(!format!("{settings:?}").contains(PASSWORD), "{settings:?}");
    // A flag without one (the password from PGPASSWORD) is fine, and beats the environment.
    let settings = resolve_with(
        &["--metadata-url", "postgres://pb@flag.example.com/meta"],
        &[
            (metadata_url_spec().env, &url),
            ("PGPASSWORD", "from-pgpassword"),
        ],
        None,
    )
    .expect("flag without a password");
    let Metadata::Postgres(pg) = locations(&settings).metadata else {
        panic!("not postgres");
    };
    assert_eq!(pg.host, "flag.example.com");
    assert_eq!(pg.password.as_deref(), Some("from-pgpassword"));
}

#[test]
fn invalid_metadata_urls_from_the_environment_or_file_are_refused_without_echoing_a_password() {
    let bad = format!("postgres://pb:{PASSWORD}@db.example.com/meta?sslmode=sometimes");
    let err = resolve_with(&[], &[(metadata_url_spec().env, &bad)], None).expect_err("env");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(
        err.contains("POLARBACKUP_METADATA_URL") && err.contains("sslmode"),
        "{err}"
    );
    let file = format!("metadata_url = {:?}\n", bad);
    let err = resolve_with(&[], &[], Some((&file, 0o600))).expect_err("file");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(
        err.contains("metadata_url") && err.contains("sslmode"),
        "{err}"
    );
}

#[test]
fn the_metadata_password_comes_from_the_url_then_pgpassword_then_the_file() {
    let bare = "postgres://pb@db.example.com/meta";
    let with = format!("postgres://pb:{PASSWORD}@db.example.com/meta");
    let file_password = "metadata_password = \"from-file\"\n";
    let env_url = (metadata_url_spec().env, bare);
    for (what, env, file, want) in [
        ("none", vec![env_url], None, None),
        (
            "file",
            vec![env_url],
            Some(file_password.to_owned()),
            Some("from-file"),
        ),
        (
            "PGPASSWORD beats the file",
            vec![env_url, ("PGPASSWORD", "from-env")],
            Some(file_password.to_owned()),
            Some("from-env"),
        ),
        (
            "an empty PGPASSWORD is unset",
            vec![env_url, ("PGPASSWORD", "")],
            Some(file_password.to_owned()),
            Some("from-file"),
        ),
        (
            "the URL's own beats PGPASSWORD",
            vec![("PGPASSWORD", "from-env")],
            Some(format!("metadata_url = {with:?}\n")),
            Some(PASSWORD),
        ),
    ] {
        let file = file.as_deref().map(|f| (f, 0o600));
        let settings = resolve_with(&[], &env, file).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(pg_password(&settings).as_deref(), want, "{what}");
        let shown = format!("{settings:?}");
        for secret in ["from-file", "from-env", PASSWORD] {
            assert!(!shown.contains(secret), "{what}: {shown}");
        }
    }
}

#[test]
fn s3_credentials_come_from_the_environment_or_the_file_never_flags() {
    let file = "aws_access_key_id = \"AKIAFILE\"\naws_secret_access_key = \"file-secret\"\n";
    let settings = resolve_with(&[], &[], Some((file, 0o600))).expect("file");
    let secrets = &settings.secrets;
    assert_eq!(
        secrets.aws_access_key_id.as_ref().map(|s| s.expose()),
        Some("AKIAFILE")
    );
    assert_eq!(
        secrets.aws_secret_access_key.as_ref().map(|s| s.expose()),
        Some("file-secret")
    );
    let settings = resolve_with(
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ],
        Some((file, 0o600)),
    )
    .expect("env");
    let secrets = &settings.secrets;
    assert_eq!(
        secrets.aws_secret_access_key.as_ref().map(|s| s.expose()),
        Some("env-secret")
    );
    assert!(
        !format!("{settings:?}").contains("secret\""),
        "{settings:?}"
    );
    for spec in secret_spec::ALL {
        let flag = format!("--{}", spec.name.replace('_', "-"));
        let err = resolve_with(&[&flag, "x"], &[], None).expect_err(&flag);
        assert!(err.contains(&flag), "{err}");
    }
    let help = Cli::command()
        .find_subcommand_mut("serve")
        .expect("serve")
        .render_long_help()
        .to_string();
    for spec in secret_spec::ALL {
        assert!(help.contains(spec.env), "{} not in\n{help}", spec.env);
    }
}

#[test]
fn an_s3_repository_takes_its_key_pair_from_the_environment_or_the_file() {
    let url = "s3://backups/pb?endpoint=http://127.0.0.1:8333&region=us-east-1";
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
    ];
    let settings = resolve_with(&["--repository-url", url], &env, None).expect("s3");
    let loc = locations(&settings);
    assert_eq!(
        loc.repository,
        polarbackup_repo::RepoUrl::S3 {
            bucket: "backups".into(),
            prefix: "pb".into(),
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: "us-east-1".into(),
        }
    );
    let creds = loc.s3_credentials.clone().expect("credentials");
    assert_eq!(
        (
            creds.access_key_id.as_str(),
            creds.secret_access_key.as_str()
        ),
        ("AKIAENV", "env-secret")
    );
    assert!(!format!("{loc:?}").contains("env-secret"), "{loc:?}");
    assert!(loc.repository_shown().starts_with("s3://backups/pb?"));

    let file = "aws_access_key_id = \"AKIAFILE\"\naws_secret_access_key = \"file-secret\"\n";
    let settings =
        resolve_with(&["--repository-url", url], &[], Some((file, 0o600))).expect("file");
    let creds = locations(&settings).s3_credentials.expect("credentials");
    assert_eq!(creds.access_key_id, "AKIAFILE");

    // Half a key pair, or none, is refused before anything is opened, naming what is missing.
    for (env, missing) in [
        (&env[..1], "AWS_SECRET_ACCESS_KEY"),
        (&env[1..], "AWS_ACCESS_KEY_ID"),
        (&[][..], "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
    ] {
        let settings = resolve_with(&["--repository-url", url], env, None).expect("settings");
        let err = crate::backends::Locations::from_settings(&settings)
            .expect_err(missing)
            .to_string();
        assert!(err.ends_with(&format!("missing: {missing}")), "{err}");
        assert!(!err.contains("env-secret"), "{err}");
    }
    // A file:// repository needs none.
    let settings = resolve_with(&[], &[], None).expect("defaults");
    assert!(locations(&settings).s3_credentials.is_none());
}

#[test]
fn a_config_file_with_secrets_must_be_private() {
    let with_url = format!("metadata_url = \"postgres://pb:{PASSWORD}@db/meta\"\n");
    for file in [
        with_url.as_str(),
        "metadata_password = \"pw\"\n",
        "aws_secret_access_key = \"pw\"\n",
    ] {
        for mode in [0o644, 0o640, 0o604] {
            let err = resolve_with(&[], &[], Some((file, mode))).expect_err(file);
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains(PASSWORD), "{err}");
        }
        resolve_with(&[], &[], Some((file, 0o600))).expect(file);
        resolve_with(&[], &[], Some((file, 0o400))).expect(file);
    }
    // A file without secrets may be readable by all.
    resolve_with(&[], &[], Some(("workers = 3\n", 0o644))).expect("no secrets");
    resolve_with(
        &[],
        &[],
        Some(("metadata_url = \"postgres://pb@db/meta\"\n", 0o644)),
    )
    .expect("a URL without a password");
}

#[test]
fn the_default_locations_are_in_the_data_dir_and_relative_urls_too() {
    let settings = resolve_with(&["--data-dir", "/srv/pb"], &[], None).expect("defaults");
    let loc = locations(&settings);
    assert_eq!(
        loc.metadata,
        Metadata::Sqlite(PathBuf::from("/srv/pb/metadata.sqlite"))
    );
    assert_eq!(
        loc.repository,
        polarbackup_repo::RepoUrl::File(PathBuf::from("/srv/pb/repo"))
    );
    assert_eq!(loc.metadata_shown(), "sqlite:///srv/pb/metadata.sqlite");
    assert_eq!(loc.repository_shown(), "file:///srv/pb/repo");
    let settings = resolve_with(
        &[
            "--data-dir",
            "/srv/pb",
            "--metadata-url",
            "sqlite:///var/lib/meta.db",
            "--repository-url",
            "file://backups/here",
        ],
        &[],
        None,
    )
    .expect("urls");
    let loc = locations(&settings);
    assert_eq!(
        loc.metadata,
        Metadata::Sqlite(PathBuf::from("/var/lib/meta.db"))
    );
    assert_eq!(
        loc.repository,
        polarbackup_repo::RepoUrl::File(PathBuf::from("/srv/pb/backups/here"))
    );
}

#[test]
fn admin_and_restore_resolve_locations_as_serve_does() {
    use crate::cli::{AccountCommand, AdminCommand};
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("pb.toml");
    std::fs::write(
        &file,
        "data_dir = \"/from/file\"\nrepository_url = \"file:///file/repo\"\n",
    )
    .expect("write");
    let file = file.display().to_string();
    let cases: [(&[&str], &str, &str); 3] = [
        (&[], "/from/file/metadata.sqlite", "/file/repo"),
        (
            &["--data-dir", "/from/flag"],
            "/from/flag/metadata.sqlite",
            "/file/repo",
        ),
        (
            &[
                "--metadata-url",
                "sqlite:///m.db",
                "--repository-url",
                "file://r",
            ],
            "/m.db",
            "/from/file/r",
        ),
    ];
    for (flags, metadata, repository) in cases {
        let mut argv = vec![
            "polarbackup",
            "admin",
            "account",
            "create",
            "--config",
            &file,
        ];
        argv.extend(flags);
        let cli = Cli::try_parse_from(&argv).expect("admin parses");
        let Command::Admin(AdminCommand::Account(AccountCommand::Create { data, .. })) =
            cli.command
        else {
            panic!("not account create");
        };
        let settings = data.settings().expect("settings");
        let loc = locations(&settings);
        assert_eq!(
            loc.metadata,
            Metadata::Sqlite(PathBuf::from(metadata)),
            "{flags:?}"
        );
        assert_eq!(
            loc.repository,
            polarbackup_repo::RepoUrl::File(PathBuf::from(repository)),
            "{flags:?}"
        );
    }
    let mut argv = vec![
        "polarbackup",
        "restore",
        "--backup-id",
        "7",
        "--target-dir",
        "/t",
    ];
    let url = format!("postgres://pb:{PASSWORD}@db/meta");
    argv.extend(["--metadata-url", &url]);
    let cli = Cli::try_parse_from(&argv).expect("restore parses");
    let Command::Restore(args) = cli.command else {
        panic!("not restore");
    };
    let err = format!(
        "{:#}",
        args.data.settings().expect_err("a password in a flag")
    );
    assert!(
        err.contains("visible to every user") && !err.contains(PASSWORD),
        "{err}"
    );
}
