//! The broker connection the agent and the hub both make: where the broker is, how to log in, and whether to
//! use TLS. Both processes write these keys flat under `[mqtt]` (the field is `#[serde(flatten)]`ed into each
//! process's own `[mqtt]` type, which adds what only that process needs: the agent's inflight window, the
//! hub's embedded broker), and both turn them into `rumqttc` options here, so a login or TLS fix lands once.

use std::path::PathBuf;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use serde::{Deserialize, Serialize};

/// A value under `[mqtt]` that cannot be used, by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("mqtt.{key} {path}: {source}")]
    File {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mqtt.{key}: {message}")]
    Invalid {
        key: &'static str,
        message: &'static str,
    },
}

impl ConnectionError {
    /// What is wrong, without the key.
    pub fn message(&self) -> String {
        match self {
            ConnectionError::File { path, source, .. } => format!("{}: {source}", path.display()),
            ConnectionError::Invalid { message, .. } => message.to_string(),
        }
    }

    /// The key path in the config file (`mqtt.password_file`).
    pub fn key(&self) -> String {
        match self {
            ConnectionError::File { key, .. } | ConnectionError::Invalid { key, .. } => {
                format!("mqtt.{key}")
            }
        }
    }
}

/// `host`, `port`, the login and TLS under `[mqtt]`.
///
/// Each field names itself in its own type errors: flattened into the process's `[mqtt]`, serde no longer
/// tracks the key path below the table, so the loader alone would report only `mqtt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connection {
    #[serde(deserialize_with = "keyed::host")]
    pub host: String,
    #[serde(deserialize_with = "keyed::port")]
    pub port: u16,
    #[serde(deserialize_with = "keyed::username")]
    pub username: Option<String>,
    #[serde(deserialize_with = "keyed::password")]
    pub password: Option<String>,
    /// File holding the password, so it need not sit in the config.
    #[serde(deserialize_with = "keyed::password_file")]
    pub password_file: Option<PathBuf>,
    /// TLS with the system roots, or with `ca_file` when given.
    #[serde(deserialize_with = "keyed::tls")]
    pub tls: bool,
    #[serde(deserialize_with = "keyed::ca_file")]
    pub ca_file: Option<PathBuf>,
}

/// Deserialisers that put the key in front of a type error (`port: invalid type: string "x", expected u16`).
mod keyed {
    use std::path::PathBuf;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    fn named<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
        key: &str,
    ) -> Result<T, D::Error> {
        T::deserialize(d).map_err(|e| D::Error::custom(format!("{key}: {e}")))
    }

    pub fn host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        named(d, "host")
    }
    pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        named(d, "port")
    }
    pub fn username<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        named(d, "username")
    }
    pub fn password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        named(d, "password")
    }
    pub fn password_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        named(d, "password_file")
    }
    pub fn tls<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        named(d, "tls")
    }
    pub fn ca_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        named(d, "ca_file")
    }
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            password_file: None,
            tls: false,
            ca_file: None,
        }
    }
}

impl Connection {
    /// Checks what can be checked without the network or the files.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        if self.host.trim().is_empty() {
            return Err(ConnectionError::Invalid {
                key: "host",
                message: "must name the broker's host",
            });
        }
        if self.port == 0 {
            return Err(ConnectionError::Invalid {
                key: "port",
                message: "must be a TCP port (1-65535)",
            });
        }
        Ok(())
    }

    /// The password: `password` as written, or the trimmed contents of `password_file`.
    pub fn password(&self) -> Result<Option<String>, ConnectionError> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|source| ConnectionError::File {
                    key: "password_file",
                    path: f.clone(),
                    source,
                }),
            (None, None) => Ok(None),
        }
    }

    /// Client options for this broker, logged in and over TLS as configured. Session, inflight and packet limits
    /// are the caller's: the agent and the hub want different ones.
    pub fn options(
        &self,
        client_id: &str,
        keep_alive: Duration,
    ) -> Result<MqttOptions, ConnectionError> {
        let mut o = MqttOptions::new(client_id, self.host.clone(), self.port);
        o.set_keep_alive(keep_alive);
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password()?.unwrap_or_default());
        }
        if self.tls {
            let tls = match &self.ca_file {
                Some(ca) => TlsConfiguration::SimpleNative {
                    ca: std::fs::read(ca).map_err(|source| ConnectionError::File {
                        key: "ca_file",
                        path: ca.clone(),
                        source,
                    })?,
                    client_auth: None,
                },
                None => TlsConfiguration::Native,
            };
            o.set_transport(Transport::tls_with_config(tls));
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process's `[mqtt]` as the agent and the hub write theirs: shared keys flattened beside its own.
    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    struct Section {
        #[serde(flatten)]
        connection: Connection,
        keep_alive_s: u64,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                connection: Connection::default(),
                keep_alive_s: 15,
            }
        }
    }

    #[test]
    fn shared_keys_sit_flat_beside_the_process_own_and_unknown_keys_are_refused() {
        let s: Section = checkpoint_config::parse(
            "host = \"broker.example\"\nport = 8883\ntls = true\nusername = \"pier.a1\"\nkeep_alive_s = 30\n",
        )
        .unwrap();
        assert_eq!(s.connection.host, "broker.example");
        assert_eq!(s.connection.port, 8883);
        assert!(s.connection.tls);
        assert_eq!(s.connection.username.as_deref(), Some("pier.a1"));
        assert_eq!(s.keep_alive_s, 30);
        let (key, msg) = checkpoint_config::parse::<Section>("hots = \"x\"\n").unwrap_err();
        assert!(msg.contains("hots"), "{key}: {msg}");
        // A type error names its key even through the flattening.
        let (_, msg) = checkpoint_config::parse::<Section>("port = \"x\"\n").unwrap_err();
        assert!(msg.starts_with("port: ") && msg.contains("u16"), "{msg}");
        let (_, msg) = checkpoint_config::parse::<Section>("tls = \"yes\"\n").unwrap_err();
        assert!(msg.starts_with("tls: "), "{msg}");
        let partial: Section = checkpoint_config::parse("username = \"hub\"\n").unwrap();
        assert_eq!(partial.connection.username.as_deref(), Some("hub"));
        assert_eq!(
            partial.connection.password, None,
            "keys left out keep their defaults"
        );
        // Serialised flat too, so the example-config check sees the keys where the file writes them.
        let text = toml::to_string(&s).unwrap();
        assert!(
            text.contains("host = \"broker.example\"") && !text.contains("connection"),
            "{text}"
        );
    }

    #[test]
    fn the_password_comes_from_the_config_or_its_file_and_a_missing_file_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mut c = Connection {
            password_file: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(c.password().unwrap().as_deref(), Some("s3cret"));
        c.password = Some("inline".into());
        assert_eq!(
            c.password().unwrap().as_deref(),
            Some("inline"),
            "written beats file"
        );
        let missing = Connection {
            username: Some("hub".into()),
            password_file: Some(dir.path().join("absent")),
            ..Default::default()
        };
        let e = missing.options("hub", Duration::from_secs(15)).unwrap_err();
        assert_eq!(e.key(), "mqtt.password_file");
        let e = Connection {
            tls: true,
            ca_file: Some(dir.path().join("absent-ca.pem")),
            ..Default::default()
        }
        .options("hub", Duration::from_secs(15))
        .unwrap_err();
        assert_eq!(e.key(), "mqtt.ca_file");
    }

    #[test]
    fn options_carry_the_address_login_and_keep_alive() {
        let c = Connection {
            host: "10.0.0.5".into(),
            port: 1884,
            username: Some("pier.a1".into()),
            password: Some("pw".into()),
            ..Default::default()
        };
        let o = c.options("pier-a1", Duration::from_secs(20)).unwrap();
        assert_eq!(o.broker_address(), ("10.0.0.5".to_string(), 1884));
        let login = o.credentials().expect("a login");
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("pier.a1", "pw")
        );
        assert_eq!(o.keep_alive(), Duration::from_secs(20));
        assert_eq!(o.client_id(), "pier-a1");
    }

    #[test]
    fn validation_names_the_key() {
        let e = Connection {
            host: " ".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key(), "mqtt.host");
        let e = Connection {
            port: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key(), "mqtt.port");
    }
}
