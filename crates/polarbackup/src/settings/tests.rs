//! Tests that go over every declared setting, so a new one is covered by adding it.

use super::declare::{Spec, CONFIG_ENV};
use super::*;
use crate::cli::{Cli, Command};
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
        Settings::resolve(&args, &|name| self.env.get(name).map(OsString::from))
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
}
