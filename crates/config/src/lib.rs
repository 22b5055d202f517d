//! TOML configuration loading shared by the agent and the hub.
//!
//! Both processes read one TOML file, refuse unknown keys (`#[serde(deny_unknown_fields)]` on their types) and
//! report a bad value by its key path (`cameras[0].lines[1].in_side`), so an operator can find it. Both ship a
//! complete example file (`config/*.example.toml`) that a test keeps complete with [`missing_keys`].

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses `text` as `T`. The error is (key path, message); a problem with the file as a whole has the key
/// `(top level)`.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().message().to_string();
        let key = if key == "." {
            "(top level)".to_string()
        } else {
            key
        };
        (key, message)
    })
}

/// The keys `parsed` has when serialised (every field with a value, defaults included) that the example file's
/// `text` does not write, as `key.path = value` (the value it takes), so a failing test says what to add. Tables in arrays are compared element by element, so the example's
/// first camera must show every camera key. Keys whose value is unset (`None`) are not serialised and so not
/// required; an example documents those as comments.
pub fn missing_keys<T: Serialize>(parsed: &T, text: &str) -> Result<Vec<String>, String> {
    let known =
        toml::Value::try_from(parsed).map_err(|e| format!("serialising the config: {e}"))?;
    let written: toml::Value =
        toml::from_str(text).map_err(|e| format!("parsing the example: {e}"))?;
    let mut missing = Vec::new();
    compare(&known, &written, "", &mut missing);
    Ok(missing)
}

fn compare(known: &toml::Value, written: &toml::Value, path: &str, missing: &mut Vec<String>) {
    match (known, written) {
        (toml::Value::Table(k), toml::Value::Table(w)) => {
            for (key, value) in k {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match w.get(key) {
                    Some(v) => compare(value, v, &here, missing),
                    None => missing.push(format!("{here} = {value}")),
                }
            }
        }
        (toml::Value::Array(k), toml::Value::Array(w)) => {
            for (i, (kv, wv)) in k.iter().zip(w).enumerate() {
                compare(kv, wv, &format!("{path}[{i}]"), missing);
            }
        }
        // A value written in another shape (a table given as a string shorthand) is the example's choice.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Site {
        id: String,
        #[serde(default = "ten")]
        interval_s: u32,
        #[serde(default)]
        cameras: Vec<Camera>,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Camera {
        id: String,
        #[serde(default)]
        fps: f64,
    }

    fn ten() -> u32 {
        10
    }

    #[test]
    fn errors_name_the_key_path() {
        let (key, msg) = parse::<Site>("id = \"a\"\n[[cameras]]\nid = 3\n").unwrap_err();
        assert_eq!(key, "cameras[0].id", "{msg}");
        let (key, msg) = parse::<Site>("id = \"a\"\ncolour = 1\n").unwrap_err();
        assert_eq!(key, "colour", "{msg}");
        let (key, _) = parse::<Site>("id = ").unwrap_err();
        assert_eq!(key, "(top level)");
    }

    #[test]
    fn missing_keys_lists_defaults_the_example_leaves_out() {
        let text = "id = \"a\"\n[[cameras]]\nid = \"c\"\n";
        let site: Site = parse(text).unwrap();
        assert_eq!(
            missing_keys(&site, text).unwrap(),
            ["cameras[0].fps = 0.0", "interval_s = 10"]
        );
        let full = "id = \"a\"\ninterval_s = 10\n[[cameras]]\nid = \"c\"\nfps = 0.0\n";
        let site: Site = parse(full).unwrap();
        assert!(
            missing_keys(&site, full).unwrap().is_empty(),
            "`note` is unset, so optional"
        );
    }
}
