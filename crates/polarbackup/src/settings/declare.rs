//! The machinery behind `settings!`: one declaration per setting becomes a clap flag, an
//! environment variable, a config file key, a typed field, and one precedence merge with its
//! validation (defaults < file < environment < flags); and secrets, which only the
//! environment and the config file (private, like a `.pgpass`) may give.

use crate::cli::{FullBackupEveryArg, LogFormat, OnOff, RamModeArg};
use crate::locations::{MetadataUrl, RepositoryUrl};
use anyhow::{anyhow, Context, Result};
use clap::ValueEnum;
use serde::de::DeserializeOwned;
use std::ffi::OsString;
use std::fmt::{Debug, Display};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Names the config file itself; it is not a setting, so it has no file key or default.
pub const CONFIG_ENV: &str = "POLARBACKUP_CONFIG";

/// Reads one environment variable; the real process environment, or a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// One setting as declared: what the flag, the environment, the file and the help show.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The config file key; the flag is `--` and this with `-` for `_`.
    pub name: &'static str,
    pub env: &'static str,
    /// Parsed like a value from the environment.
    pub default: &'static str,
    pub help: &'static str,
    /// A valid value other than the default, for the generated tests.
    #[cfg(test)]
    pub sample: &'static str,
    /// A value to refuse, for the generated tests.
    #[cfg(test)]
    pub invalid: &'static str,
}

impl Spec {
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// The help as `serve` shows it, for commands that share the flag.
    pub fn help_with_env(&self) -> String {
        format!(
            "{} [default: {}] [env: {}]",
            self.help, self.default, self.env
        )
    }
}

/// A secret the config file or the environment gives, never a flag.
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec {
    /// The config file key.
    pub name: &'static str,
    pub env: &'static str,
}

/// A secret's text; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// An address setting that may be unset: the empty text (the default) means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct OptionalAddr(pub Option<SocketAddr>);

impl std::str::FromStr for OptionalAddr {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(OptionalAddr(None));
        }
        s.parse().map(|a| OptionalAddr(Some(a)))
    }
}

impl TryFrom<String> for OptionalAddr {
    type Error = std::net::AddrParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A file setting that may be unset: the empty text (the default) means none.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "PathBuf")]
pub struct OptionalFile(pub Option<PathBuf>);

impl From<PathBuf> for OptionalFile {
    fn from(p: PathBuf) -> Self {
        OptionalFile((!p.as_os_str().is_empty()).then_some(p))
    }
}

impl std::str::FromStr for OptionalFile {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(PathBuf::from(s).into())
    }
}

/// A secret from the environment (unless empty), else the config file.
pub fn pick_secret(spec: &SecretSpec, env: Env, file: Option<Secret>) -> Result<Option<Secret>> {
    match env(spec.env) {
        Some(raw) if !raw.is_empty() => {
            let text = raw
                .into_string()
                .map_err(|_| anyhow!("{} (for {}) is not UTF-8", spec.env, spec.name))?;
            Ok(Some(Secret(text)))
        }
        _ => Ok(file.filter(|s| !s.0.is_empty())),
    }
}

/// A config file that holds secrets (`keys`) must be private to its owner, as libpq wants of
/// a `.pgpass`: anyone else who can read it has them.
pub fn check_private(path: &Path, keys: &[&str]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading config file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "config file {} holds secrets ({}) but its group or others may read it (mode {:o}): \
             make it private with chmod 600",
            path.display(),
            keys.join(", "),
            mode & 0o777
        );
    }
    Ok(())
}

/// A setting's type: parsed from text (defaults, environment) like clap parses the flag, and
/// read from the file by serde.
pub trait SettingValue: Sized + Clone + Debug + DeserializeOwned {
    fn parse(text: &str) -> Result<Self, String>;

    /// Whether this value carries a secret (so a config file giving it must be private).
    fn holds_secret(&self) -> bool {
        false
    }

    /// Refuses what a flag may not give: argv is visible to every user of the machine.
    fn on_command_line(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Parsing never fails, so neither clap nor the environment's path quotes the text (it may
/// hold a password); the setting's check parses it and says what is wrong without quoting.
impl SettingValue for MetadataUrl {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(MetadataUrl::new(text))
    }

    fn holds_secret(&self) -> bool {
        self.has_password()
    }

    fn on_command_line(&self) -> Result<(), String> {
        if self.has_password() {
            return Err(crate::locations::ARGV_PASSWORD.into());
        }
        Ok(())
    }
}

impl SettingValue for RepositoryUrl {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(RepositoryUrl::new(text))
    }
}

macro_rules! from_str_values {
    ($($ty:ty),*) => {$(
        impl SettingValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                text.parse().map_err(|e| format!("{e}"))
            }
        }
    )*};
}
from_str_values!(
    u32,
    usize,
    String,
    PathBuf,
    SocketAddr,
    super::Days,
    OptionalFile,
    OptionalAddr
);

macro_rules! enum_values {
    ($($ty:ty),*) => {$(
        impl SettingValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                <$ty as ValueEnum>::from_str(text, false).map_err(|_| {
                    let names: Vec<String> = <$ty as ValueEnum>::value_variants()
                        .iter()
                        .filter_map(|v| v.to_possible_value())
                        .map(|p| p.get_name().to_owned())
                        .collect();
                    format!("expected one of: {}", names.join(", "))
                })
            }
        }
    )*};
}
enum_values!(LogFormat, OnOff, RamModeArg, FullBackupEveryArg);

/// A check that accepts every value of the type.
pub fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

pub fn within<T: PartialOrd + Display>(v: &T, range: RangeInclusive<T>) -> Result<(), String> {
    if range.contains(v) {
        Ok(())
    } else {
        Err(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        ))
    }
}

/// The config file named by `--config` or `POLARBACKUP_CONFIG`, if any.
pub fn config_path(flag: Option<&Path>, env: Env) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| env(CONFIG_ENV).map(PathBuf::from))
}

/// Parses the config file; unknown keys are refused (serde's `deny_unknown_fields`), so a
/// typo does not pass silently.
pub fn read_file<F: DeserializeOwned + Default>(path: Option<&Path>) -> Result<F> {
    let Some(path) = path else {
        return Ok(F::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// One setting's value: the flag, else the environment, else the file, else the default;
/// then its check, with an error that says where the value came from. Only the value in
/// effect is read from the environment (as clap does).
pub fn pick<T: SettingValue>(
    spec: &Spec,
    check: fn(&T) -> Result<(), String>,
    flag: Option<T>,
    env: Env,
    file: Option<T>,
    file_path: Option<&Path>,
) -> Result<T> {
    let path = file_path.map_or_else(String::new, |p| p.display().to_string());
    // The file is checked whole, even where the environment or a flag overrides it.
    if let Some(v) = &file {
        check(v).map_err(|e| anyhow!("{} = {v:?} in {path}: {e}", spec.name))?;
    }
    let (value, from) = if let Some(v) = flag {
        v.on_command_line()
            .map_err(|e| anyhow!("{} = {v:?} (from {}): {e}", spec.name, spec.flag()))?;
        (v, spec.flag())
    } else if let Some(raw) = env(spec.env) {
        let text = raw
            .into_string()
            .map_err(|_| anyhow!("{} (from {}): not UTF-8", spec.name, spec.env))?;
        let v = T::parse(&text)
            .map_err(|e| anyhow!("{} = {text:?} (from {}): {e}", spec.name, spec.env))?;
        (v, spec.env.to_owned())
    } else if let Some(v) = file {
        (v, format!("{} in {path}", spec.name))
    } else {
        let v = T::parse(spec.default)
            .map_err(|e| anyhow!("the default {} {:?}: {e}", spec.name, spec.default))?;
        (v, "the default".to_owned())
    };
    check(&value).map_err(|e| anyhow!("{} = {value:?} (from {from}): {e}", spec.name))?;
    Ok(value)
}

/// Declares every `serve` setting and secret once. Generates `ServeArgs` (the flags), the
/// file's keys, `Settings` (the typed result), `Secrets`, `Settings::resolve` (the merge),
/// `spec::NAME`/`spec::ALL` and `secret_spec::NAME`/`secret_spec::ALL`.
macro_rules! settings {
    (
    secrets {$(
        $secret:ident {
            env: $secret_env:literal,
            help: $secret_help:literal $(,)?
        }
    )*}
    $(
        $name:ident: $ty:ty {
            default: $default:literal,
            env: $env:literal,
            help: $help:literal,
            check: $check:expr,
            sample: $sample:literal,
            invalid: $invalid:literal $(,)?
        }
    )*) => {
        /// `polarbackup serve`'s flags. Each beats its environment variable, which beats the
        /// config file, which beats the default.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct ServeArgs {
            // Not a setting: it names the file that holds them.
            #[arg(long, help = format!(
                "TOML configuration file; the environment and flags override it [env: {}]",
                $crate::settings::declare::CONFIG_ENV,
            ))]
            pub config: Option<std::path::PathBuf>,
            $(
                #[arg(
                    long,
                    help = concat!($help, " [default: ", $default, "] [env: ", $env, "]")
                )]
                pub $name: Option<$ty>,
            )*
        }

        /// The keys a config file may hold.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $( $name: Option<$ty>, )*
            $( $secret: Option<$crate::settings::declare::Secret>, )*
        }

        impl FileSettings {
            /// The keys that hold a secret.
            fn secret_keys(&self) -> Vec<&'static str> {
                #[allow(unused_imports)]
                use $crate::settings::declare::SettingValue as _;
                let mut keys = Vec::new();
                $( if self.$name.as_ref().is_some_and(|v| v.holds_secret()) {
                    keys.push(stringify!($name));
                } )*
                $( if self.$secret.is_some() {
                    keys.push(stringify!($secret));
                } )*
                keys
            }
        }

        /// The secrets, from the environment or else the config file; never flags.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Secrets {
            $( pub $secret: Option<$crate::settings::declare::Secret>, )*
        }

        /// Everything `serve` needs, after layering and validation.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Settings {
            $( pub $name: $ty, )*
            pub secrets: Secrets,
        }

        impl Settings {
            /// Merges flags, the environment `env`, the config file and the defaults.
            pub fn resolve(
                args: &ServeArgs,
                env: $crate::settings::declare::Env,
            ) -> anyhow::Result<Settings> {
                let path = $crate::settings::declare::config_path(args.config.as_deref(), env);
                let file: FileSettings = $crate::settings::declare::read_file(path.as_deref())?;
                let secret_keys = file.secret_keys();
                if let (Some(path), false) = (&path, secret_keys.is_empty()) {
                    $crate::settings::declare::check_private(path, &secret_keys)?;
                }
                Ok(Settings {
                    $(
                        $name: $crate::settings::declare::pick::<$ty>(
                            &spec::$name,
                            $check,
                            args.$name.clone(),
                            env,
                            file.$name,
                            path.as_deref(),
                        )?,
                    )*
                    secrets: Secrets {$(
                        $secret: $crate::settings::declare::pick_secret(
                            &secret_spec::$secret,
                            env,
                            file.$secret,
                        )?,
                    )*},
                })
            }

            /// Each setting's name and value, for tests that go over all of them.
            #[cfg(test)]
            pub fn values(&self) -> Vec<(&'static str, String)> {
                vec![$( (stringify!($name), format!("{:?}", self.$name)), )*]
            }
        }

        /// The declarations, by setting name (named like the fields; `ALL` serves the tests).
        #[allow(non_upper_case_globals, dead_code)]
        pub mod spec {
            use $crate::settings::declare::Spec;
            $(
                pub const $name: Spec = Spec {
                    name: stringify!($name),
                    env: $env,
                    default: $default,
                    help: $help,
                    #[cfg(test)]
                    sample: $sample,
                    #[cfg(test)]
                    invalid: $invalid,
                };
            )*
            pub const ALL: &[Spec] = &[$( $name, )*];
        }

        /// The secrets' declarations, by config file key.
        #[allow(non_upper_case_globals, dead_code)]
        pub mod secret_spec {
            use $crate::settings::declare::SecretSpec;
            $(
                pub const $secret: SecretSpec = SecretSpec {
                    name: stringify!($secret),
                    env: $secret_env,
                };
            )*
            pub const ALL: &[SecretSpec] = &[$( $secret, )*];
        }

        /// What `serve --help` says of the secrets.
        pub const SECRETS_HELP: &str = concat!(
            "Secrets come only from the environment or the config file (which must then be \
             private, mode 0600), never from flags:",
            $( "\n  ", $secret_env, " (file key ", stringify!($secret), "): ", $secret_help, )*
        );
    };
}
pub(crate) use settings;
