//! Where the settings come from: the layers a load reads — the embedded defaults, the file named
//! by `--config` or `CODEX_RELAY_CONFIG`, the environment — read again by a reload, and the origin
//! of each effective value, for `codex-relay config show`.
//!
//! Origins are the `config` crate's own: every value it builds remembers its layer (a file's path,
//! "the environment", nothing for the embedded defaults), so no layer is loaded twice to compare.
//! A value shown is masked when it is a secret: a setting named like one, or the password of a URL.

use std::fmt;
use std::path::{Path, PathBuf};

use config::builder::DefaultState;
use config::{ConfigBuilder, Environment, File, FileFormat, Source, Value, ValueKind};
use serde::Serialize;
use serde_json::Value as Json;

use super::{embedded, Settings, SettingsError, CONFIG_FILE_ENV};

/// The layers a relay reads its settings from: which file, if any, lies over the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsSource {
    file: Option<PathBuf>,
}

/// Where one effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    /// The environment variable that set it.
    Env(String),
}

/// One effective setting as `config show` prints it: its value (masked when secret) and origin.
#[derive(Debug, Clone, Serialize)]
pub struct ShownSetting {
    pub key: String,
    pub value: Json,
    /// `default`, `file:PATH` or `env:VAR`.
    pub source: String,
}

/// What a secret's value is shown as.
pub const MASKED: &str = "********";

impl SettingsSource {
    /// `file` when given, else the file `CODEX_RELAY_CONFIG` names, else none.
    pub fn new(file: Option<&Path>) -> SettingsSource {
        let named = || std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from);
        SettingsSource {
            file: file.map(Path::to_path_buf).or_else(named),
        }
    }

    /// Exactly `path` over the defaults, whatever `CODEX_RELAY_CONFIG` says.
    pub fn file(path: impl Into<PathBuf>) -> SettingsSource {
        SettingsSource {
            file: Some(path.into()),
        }
    }

    /// The settings file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads every layer now and checks the result as startup does.
    pub fn load(&self) -> Result<Settings, SettingsError> {
        let mut settings = Settings::checked(layers(self.path())?)?;
        settings.source = self.clone();
        Ok(settings)
    }

    /// The effective settings, checked as [`Self::load`] checks them, each value with its origin
    /// and secrets masked, sorted by key.
    pub fn shown(&self) -> Result<Vec<ShownSetting>, SettingsError> {
        let config = layers(self.path())?.build()?;
        Settings::checked_config(config.clone())?;
        let mut shown = Vec::new();
        flatten("", config.collect()?, self.path(), &mut shown);
        shown.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(shown)
    }
}

/// Every layer: the embedded defaults, then `file` when there is one, then the
/// `CODEX_RELAY__SECTION__KEY` environment variables.
fn layers(file: Option<&Path>) -> Result<ConfigBuilder<DefaultState>, SettingsError> {
    let mut builder = embedded();
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    // `…_FILE` variants are read here, so the environment layer sees only plain variables.
    let variables = super::env_files::environment(&embedded().build()?)?;
    let environment = Environment::with_prefix(ENV_PREFIX)
        .source(Some(variables.into_iter().collect()))
        .prefix_separator(ENV_SEPARATOR)
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("models.catalog")
        .with_list_parse_key("models.hidden");
    Ok(builder.add_source(environment))
}

/// `CODEX_RELAY__SECTION__KEY`: the prefix and separator of the environment layer.
const ENV_PREFIX: &str = "CODEX_RELAY";
const ENV_SEPARATOR: &str = "__";

/// Appends every leaf of `table` under `prefix` (`section.key`); an empty table is a leaf.
/// `file` is the settings file, named as the operator gave it.
fn flatten(
    prefix: &str,
    table: config::Map<String, Value>,
    file: Option<&Path>,
    out: &mut Vec<ShownSetting>,
) {
    for (name, value) in table {
        let key = match prefix {
            "" => name,
            _ => format!("{prefix}.{name}"),
        };
        match value.kind {
            ValueKind::Table(inner) if !inner.is_empty() => flatten(&key, inner, file, out),
            _ => out.push(shown(key, &value, file)),
        }
    }
}

fn shown(key: String, value: &Value, file: Option<&Path>) -> ShownSetting {
    let origin = origin_of(&key, value.origin(), file);
    let json = json_of(&value.kind);
    let value = if is_secret(&key) {
        Json::from(MASKED)
    } else {
        without_url_password(json)
    };
    ShownSetting {
        source: origin.to_string(),
        key,
        value,
    }
}

/// The `config` crate names its layers: nothing for the embedded defaults, the environment as
/// such, the file by a path of its own making (the one file layer is shown as `file` names it).
fn origin_of(key: &str, origin: Option<&str>, file: Option<&Path>) -> Origin {
    match origin {
        None => Origin::Default,
        Some("the environment") => Origin::Env(env_var_of(key)),
        Some(path) => Origin::File(file.map_or_else(|| PathBuf::from(path), Path::to_path_buf)),
    }
}

/// `server.listen` → `CODEX_RELAY__SERVER__LISTEN`.
pub fn env_var_of(key: &str) -> String {
    let path = key.to_uppercase().replace('.', ENV_SEPARATOR);
    format!("{ENV_PREFIX}{ENV_SEPARATOR}{path}")
}

fn json_of(kind: &ValueKind) -> Json {
    match kind {
        ValueKind::Nil => Json::Null,
        ValueKind::Boolean(b) => Json::from(*b),
        ValueKind::I64(n) => Json::from(*n),
        ValueKind::U64(n) => Json::from(*n),
        ValueKind::I128(n) => Json::from(n.to_string()),
        ValueKind::U128(n) => Json::from(n.to_string()),
        ValueKind::Float(f) => Json::from(*f),
        ValueKind::String(s) => Json::from(s.as_str()),
        ValueKind::Array(items) => items.iter().map(|v| json_of(&v.kind)).collect(),
        ValueKind::Table(table) => table
            .iter()
            .map(|(k, v)| (k.clone(), json_of(&v.kind)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// True for a setting whose value is a secret by its name (a token, a password, a private key).
/// None of today's settings is; the rule is here so that one added later is masked at once.
pub fn is_secret(key: &str) -> bool {
    let name = key.rsplit('.').next().unwrap_or(key);
    ["token", "secret", "password", "private_key", "api_key"]
        .iter()
        .any(|word| name == *word || name.ends_with(&format!("_{word}")))
}

/// A URL's password masked (`https://user:pass@host` → `https://user:********@host`), wherever a
/// string value is one: a proxy or an upstream may carry its credentials so.
fn without_url_password(value: Json) -> Json {
    let Json::String(text) = &value else {
        return value;
    };
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(MASKED));
            Json::from(url.to_string())
        }
        _ => value,
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file:{}", path.display()),
            Origin::Env(var) => write!(f, "env:{var}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(shown: &'a [ShownSetting], key: &str) -> &'a ShownSetting {
        shown.iter().find(|s| s.key == key).unwrap()
    }

    #[test]
    fn each_value_names_its_layer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "[limits]\ndefault_key_rpm = 7\n[models.aliases]\ncodex = \"gpt-5.5\"\n",
        )
        .unwrap();
        let shown = SettingsSource::file(&path).shown().unwrap();
        let rpm = find(&shown, "limits.default_key_rpm");
        assert_eq!(rpm.value, 7);
        assert!(rpm.source.starts_with("file:"), "{}", rpm.source);
        assert!(rpm.source.ends_with("relay.toml"), "{}", rpm.source);
        assert_eq!(find(&shown, "models.aliases.codex").value, "gpt-5.5");
        let listen = find(&shown, "server.listen");
        assert_eq!(
            (listen.source.as_str(), &listen.value),
            ("default", &Json::from("127.0.0.1:8080"))
        );
        assert_eq!(find(&shown, "models.catalog").value[0], "gpt-5.5");
    }

    #[test]
    fn secrets_are_masked_by_name_and_in_urls() {
        assert!(is_secret("admin.bootstrap_token") && is_secret("tls.private_key"));
        assert!(!is_secret("oauth.token_timeout_secs") && !is_secret("metrics.per_key"));
        let masked = without_url_password(Json::from("https://relay:hunter2@proxy.example/x"));
        assert_eq!(masked, "https://relay:********@proxy.example/x");
        let plain = Json::from("https://proxy.example/x");
        assert_eq!(without_url_password(plain.clone()), plain);
    }

    #[test]
    fn environment_variables_are_named_after_their_key() {
        assert_eq!(env_var_of("server.listen"), "CODEX_RELAY__SERVER__LISTEN");
        assert_eq!(
            Origin::Env(env_var_of("log.level")).to_string(),
            "env:CODEX_RELAY__LOG__LEVEL"
        );
    }
}
